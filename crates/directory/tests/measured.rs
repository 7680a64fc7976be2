//! Measured bandwidth in directories (issue 14, items 3 and 4): the chain
//! section's measurement field (format 5), and selection weights of
//! min(advertised, measured) before the stake cover, with the bootstrap
//! weight for relays never measured, by the one rule `openrelay-measure`
//! states.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use openrelay_directory::weight::directory_selection_bandwidths;
use openrelay_directory::{
    DIRECTORY_CHAIN_VERSION, Directory, FormatError, RelayMeasurement, verify_directory,
};
use openrelay_measure::{
    MeasureParams, MeasureState, Measurement, RelayAdvert, Reveal, ValidatorId, ValidatorReport,
};
use openrelay_testkit::fixtures::*;
use proptest::prelude::*;

/// Every fixture relay advertises this (`descriptor_fields`).
const ADVERTISED: u64 = 1_000_000_000;

fn measured(bps: u64) -> Option<RelayMeasurement> {
    Some(RelayMeasurement {
        measured_bps: bps,
        measured_epoch: 7,
        measured_at: T0 - 60,
    })
}

/// The fixtures' network with a chain section whose relay `i` (in relay
/// id order) carries `measurements[i]`.
fn measured_directory(measurements: &[Option<RelayMeasurement>]) -> Directory {
    let d = directory(1);
    let mut section = chain_section(&d, 100, 0);
    for (listed, m) in section.relays.iter_mut().zip(measurements) {
        listed.measured = *m;
    }
    d.with_chain(section).unwrap()
}

fn weights(d: &Directory) -> Vec<u64> {
    let verified = verify_directory(signed(d, &[0, 1]), &trust(2, 3), NOW, None).unwrap();
    let by_relay: Vec<u64> = verified
        .relays()
        .map(|r| r.selection_bandwidth_bps())
        .collect();
    assert_eq!(by_relay, directory_selection_bandwidths(d));
    by_relay
}

#[test]
fn a_relay_measured_at_a_tenth_of_its_claim_weighs_that_tenth() {
    let d = measured_directory(&[measured(ADVERTISED / 10), None, None, None]);
    let verified = verify_directory(signed(&d, &[0, 1]), &trust(2, 3), NOW, None).unwrap();
    let first = verified.relays().next().unwrap();
    assert_eq!(first.bandwidth_bps(), ADVERTISED);
    assert_eq!(first.selection_bandwidth_bps(), ADVERTISED / 10);
    assert_eq!(first.measured(), measured(ADVERTISED / 10));
    // Measuring more than it claims buys nothing beyond the claim.
    let d = measured_directory(&[measured(5 * ADVERTISED), None, None, None]);
    assert_eq!(weights(&d)[0], ADVERTISED);
}

#[test]
fn unmeasured_relays_get_the_bootstrap_weight() {
    let d = measured_directory(&[None, None, None, None]);
    // min(10 % of 1 Gbit/s, 20 Mbit/s).
    assert_eq!(weights(&d), vec![20_000_000; 4]);
    assert_eq!(
        openrelay_measure::unmeasured_weight(100_000_000),
        10_000_000
    );
}

#[test]
fn stake_cover_still_caps_measured_relays() {
    // Operator 2 (relays 2 and 3) covers 2 Gbit/s; lower it to 1 Gbit/s:
    // both relays measured at their full claim share it.
    let d = directory(1);
    let mut section = chain_section(&d, 100, 0);
    for listed in &mut section.relays {
        listed.measured = measured(ADVERTISED);
    }
    let operator_2 = operator_key(2).id();
    let relays_2: Vec<usize> = d
        .descriptors()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.descriptor().operator() == operator_2)
        .map(|(i, _)| i)
        .collect();
    // The registered bandwidth must stay covered: register 500 Mbit/s each.
    for &i in &relays_2 {
        section.relays[i].bandwidth_mbps = 500;
    }
    section
        .operators
        .iter_mut()
        .find(|o| o.operator == operator_2)
        .unwrap()
        .covered_mbps = 1000;
    // Descriptors advertise 1 Gbit/s above the 500 Mbit/s registered: the
    // format allows building it, verification refuses it, so weigh it
    // directly.
    let d = d.with_chain(section).unwrap();
    let w = directory_selection_bandwidths(&d);
    let total_2: u64 = relays_2.iter().map(|&i| w[i]).sum();
    assert_eq!(total_2, 1_000_000_000);
    // A relay measured at a tenth: the cover is split over what the two
    // carry (100 Mbit/s and 1 Gbit/s), so the measured one weighs less
    // than its measurement and the two still weigh exactly the cover.
    let mut section = d.chain().unwrap().clone();
    section.relays[relays_2[0]].measured = measured(100_000_000);
    let d = directory(1).with_chain(section).unwrap();
    let w = directory_selection_bandwidths(&d);
    assert_eq!(w[relays_2[0]] + w[relays_2[1]], 1_000_000_000);
    assert_eq!(w[relays_2[0]], 90_909_091);
}

/// The rule has one source: a relay's weight in a directory equals what
/// `MeasureState::selection_bps` explains after real epochs over reveals.
#[test]
fn directory_weights_agree_with_the_verdict_machine() {
    let d = directory(1);
    let relays: Vec<_> = d
        .descriptors()
        .iter()
        .map(|s| openrelay_measure::RelayId(*s.descriptor().relay().as_bytes()))
        .collect();
    let validators: BTreeMap<ValidatorId, u128> =
        (1..=3).map(|i| (ValidatorId([i; 32]), 100)).collect();
    let adverts: BTreeMap<_, _> = relays
        .iter()
        .map(|&r| {
            (
                r,
                RelayAdvert {
                    advertised_bps: ADVERTISED,
                    operator_stake: 1_000,
                    operator_advertised_bps: u128::from(ADVERTISED),
                },
            )
        })
        .collect();
    // Relay 0 carries a tenth, relay 1 more than it claims, relay 2 is
    // not reported (never measured), relay 3 carries 700 Mbit/s.
    let carried = [
        Some(ADVERTISED / 10),
        Some(2 * ADVERTISED),
        None,
        Some(700_000_000),
    ];
    let mut state = MeasureState::new(MeasureParams::devnet());
    let reveals: Vec<Reveal> = validators
        .keys()
        .map(|&v| {
            let reports = relays
                .iter()
                .zip(carried)
                .filter_map(|(&relay, c)| {
                    Some(ValidatorReport {
                        relay,
                        probes_sent: 10,
                        probes_answered: 10,
                        measurement: Measurement::Reachable {
                            capacity_bps: c?,
                            rtt_micros: 1_000,
                        },
                    })
                })
                .collect();
            Reveal::new(1, v, reports, v.0).unwrap()
        })
        .collect();
    let outcome = state
        .apply_epoch(1, &validators, &reveals, &adverts)
        .unwrap();
    let mut section = chain_section(&d, 100, 0);
    for (listed, relay) in section.relays.iter_mut().zip(&relays) {
        listed.measured = outcome.explanations[relay]
            .measured
            .map(|m| RelayMeasurement {
                measured_bps: m.bps,
                measured_epoch: m.epoch,
                measured_at: T0,
            });
    }
    let d = d.with_chain(section).unwrap();
    let w = weights(&d);
    for (i, relay) in relays.iter().enumerate() {
        assert_eq!(w[i], state.selection_bps(relay, ADVERTISED), "relay {i}");
        assert_eq!(w[i], outcome.explanations[relay].selection_bps, "relay {i}");
    }
    assert_eq!(w, vec![100_000_000, ADVERTISED, 20_000_000, 700_000_000]);
}

#[test]
fn the_measurement_field_is_strict() {
    let d = measured_directory(&[measured(1), None, measured(u64::MAX), None]);
    let bytes = d.to_bytes();
    assert_eq!(bytes[0], DIRECTORY_CHAIN_VERSION);
    assert_eq!(DIRECTORY_CHAIN_VERSION, 6);
    assert_eq!(Directory::from_bytes(&bytes).unwrap(), d);
    // The last relay's entry ends the relays: key, u32 bandwidth, tag 0;
    // then the (empty) releases' count.
    let tag_at = bytes.len() - 1 - 4;
    assert_eq!(bytes[tag_at], 0);
    for tag in [2u8, 0xff] {
        let mut bad = bytes.clone();
        bad[tag_at] = tag;
        assert!(matches!(
            Directory::from_bytes(&bad),
            Err(FormatError::Invalid {
                field: "chain relays",
                ..
            })
        ));
    }
    // Tag 1 without its three numbers is truncated.
    let mut cut = bytes.clone();
    cut[tag_at] = 1;
    assert_eq!(Directory::from_bytes(&cut), Err(FormatError::Truncated));
    // A version 4 body (no measurement field) is no longer read.
    let mut v4 = bytes.clone();
    v4[0] = 4;
    assert!(matches!(
        Directory::from_bytes(&v4),
        Err(FormatError::UnsupportedVersion { version: 4, .. })
    ));
    // A measurement of an epoch that ended after the directory was issued
    // (beyond the clock skew) is one no validator could have recorded.
    let later = Some(RelayMeasurement {
        measured_bps: 1,
        measured_epoch: 7,
        measured_at: T0 + openrelay_directory::MAX_CLOCK_SKEW_SECS + 1,
    });
    let dd = directory(1);
    let mut section = chain_section(&dd, 100, 0);
    section.relays[0].measured = later;
    assert!(matches!(
        dd.with_chain(section),
        Err(FormatError::Invalid {
            field: "chain relays",
            ..
        })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any measurements round-trip byte for byte, and a directory's weights
    /// are each min(advertised, measured) or the bootstrap weight, never
    /// above the claim (the fixtures' stakes cover every claim).
    #[test]
    fn measurements_round_trip_and_weigh_by_the_rule(
        ms in proptest::collection::vec(
            proptest::option::of((any::<u64>(), any::<u64>(), 0..=T0)), 4),
    ) {
        let measurements: Vec<Option<RelayMeasurement>> = ms
            .iter()
            .map(|m| m.map(|(bps, epoch, at)| RelayMeasurement {
                measured_bps: bps,
                measured_epoch: epoch,
                measured_at: at,
            }))
            .collect();
        let d = measured_directory(&measurements);
        let bytes = d.to_bytes();
        let back = Directory::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &d);
        prop_assert_eq!(back.to_bytes(), bytes);
        for (w, m) in directory_selection_bandwidths(&d).into_iter().zip(&measurements) {
            let expected = openrelay_measure::selection_bandwidth(
                ADVERTISED,
                m.map(|m| m.measured_bps),
            );
            prop_assert_eq!(w, expected);
            prop_assert!(w <= ADVERTISED);
        }
    }
}
