//! Issue 14, item 2: the client draws relays by what the directory says
//! they carry: a relay measured at a tenth of its claim is drawn about a
//! tenth as often as its measured peers (seeded, so reproducible).
#![allow(clippy::unwrap_used)]

use openrelay_client::attestation::AttestationVerdict;
use openrelay_client::relay::Relay;
use openrelay_client::selection::{EgressRegion, choose};
use openrelay_directory::{RelayMeasurement, verify_directory};
use openrelay_testkit::fixtures::*;
use openrelay_types::RelayRole;

/// Eleven egress operators (one egress each, 1 Gbit/s advertised) and two
/// ingress operators; egress 0 measured at `first_bps`, the others at
/// their claim (or every relay unmeasured with `None`).
fn relays(first_bps: Option<u64>) -> Vec<Relay> {
    let mut profiles = Vec::new();
    let mut descriptors = Vec::new();
    for e in 0..11u8 {
        profiles.push(profile(e));
        descriptors.push(descriptor(e, e, RelayRole::Egress));
    }
    for i in 20..22u8 {
        profiles.push(profile(i));
        descriptors.push(descriptor(i, i, RelayRole::Ingress));
    }
    profiles.sort_by_key(|p| p.profile().operator());
    descriptors.sort_by_key(|d| d.descriptor().relay());
    let plain = directory_with(1, profiles, descriptors);
    let mut section = chain_section(&plain, 100, 0);
    let first = relay_key(0).id();
    for listed in &mut section.relays {
        listed.measured = match first_bps {
            None => None,
            Some(bps) => Some(RelayMeasurement {
                measured_bps: if listed.relay == first {
                    bps
                } else {
                    1_000_000_000
                },
                measured_epoch: 3,
                measured_at: T0 - 10,
            }),
        };
    }
    let d = plain.with_chain(section).unwrap();
    let verified = verify_directory(signed(&d, &[0, 1]), &trust(2, 3), NOW, None).unwrap();
    verified
        .relays()
        .map(|r| Relay::from_directory(&r, r.endpoints()[0], AttestationVerdict::NotChecked))
        .collect()
}

/// How often egress 0 is drawn in `draws` seeded paths.
fn share_of_first(relays: &[Relay], draws: u32) -> f64 {
    let first = relays.iter().find(|r| r.pin() == quic_pin(0)).unwrap().id;
    let mut rng = fastrand::Rng::with_seed(14);
    let hits = (0..draws)
        .filter(|_| {
            choose(relays, &EgressRegion::Any, |_| false, &mut rng)
                .unwrap()
                .egress
                .id
                == first
        })
        .count();
    hits as f64 / f64::from(draws)
}

#[test]
fn a_relay_measured_at_a_tenth_is_drawn_a_tenth_as_often() {
    let measured_low = relays(Some(100_000_000));
    let first = measured_low
        .iter()
        .find(|r| r.pin() == quic_pin(0))
        .unwrap();
    assert_eq!(first.bandwidth_bps, 100_000_000);
    assert_eq!(first.measured.unwrap().measured_bps, 100_000_000);
    // 100 Mbit/s of 10.1 Gbit/s: about 1 %.
    let low = share_of_first(&measured_low, 20_000);
    assert!((0.006..0.014).contains(&low), "drawn {low}");
    // Measured at its claim it is one of eleven equals (about 9 %).
    let full = share_of_first(&relays(Some(1_000_000_000)), 20_000);
    assert!((0.08..0.10).contains(&full), "drawn {full}");
    // Never measured: every relay at the bootstrap weight, equals again.
    let unmeasured = relays(None);
    assert!(unmeasured.iter().all(|r| r.bandwidth_bps == 20_000_000));
    let boot = share_of_first(&unmeasured, 20_000);
    assert!((0.08..0.10).contains(&boot), "drawn {boot}");
}
