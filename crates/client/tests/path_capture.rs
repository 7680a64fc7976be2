//! Issue 11, item 7: path capture by advertised bandwidth. One hundred honest
//! relays (fifty operators, an ingress and an egress each) and an attacker
//! pair: two made-up operators, one ingress and one egress, each claiming
//! `u64::MAX` bits per second. Before the fix the pair held both hops of
//! every path; now its chance is what the simulator computes for the capped
//! rule (`openrelay sim`, policy `capped`), at most `MAX_OPERATOR_SHARE²`.
#![allow(clippy::unwrap_used)]

use openrelay_client::relay::{Operator as RelayOperator, Region};
use openrelay_client::selection::{EgressRegion, Relay, RelayId, choose};
use openrelay_directory::weight::MAX_OPERATOR_SHARE;
use openrelay_sim::{Operator, Policy, Population, exact};
use openrelay_types::{KeyPin, RelayRole};

/// A distinct id per relay name.
fn id(name: &str) -> RelayId {
    let mut key = [0; 32];
    for (k, b) in key.iter_mut().zip(name.bytes()) {
        *k = b;
    }
    RelayId::from_pin(KeyPin::from_ed25519(key))
}

fn relay(name: &str, role: RelayRole, operator: &str, bandwidth: u64) -> Relay {
    Relay {
        id: id(name),
        name: name.to_owned(),
        role,
        operator: RelayOperator::Unlisted(operator.to_owned()),
        network: Some(openrelay_client::relay::parse_network(&format!(
            "net-{name}"
        ))),
        region: Region {
            country: Some("DE".into()),
            city: None,
        },
        bandwidth_bps: bandwidth,
        measured: None,
        addr: "192.0.2.1:4433".parse().unwrap(),
        attestation: openrelay_client::attestation::AttestationVerdict::NotChecked.into(),
        listing: None,
    }
}

#[test]
fn an_attacker_pair_claiming_huge_bandwidth_gets_only_its_capped_share() {
    // Honest bandwidths between 100 Mbit/s and 1 Gbit/s, seeded.
    let mut seeds = fastrand::Rng::with_seed(11);
    let honest: Vec<(u64, u64)> = (0..50)
        .map(|_| {
            (
                seeds.u64(100..=1000) * 1_000_000,
                seeds.u64(100..=1000) * 1_000_000,
            )
        })
        .collect();
    let mut relays = Vec::new();
    let mut operators = Vec::new();
    for (i, (ingress, egress)) in honest.iter().enumerate() {
        relays.push(relay(
            &format!("in{i}"),
            RelayRole::Ingress,
            &format!("op{i}"),
            *ingress,
        ));
        relays.push(relay(
            &format!("eg{i}"),
            RelayRole::Egress,
            &format!("op{i}"),
            *egress,
        ));
        operators.push(Operator {
            name: format!("op{i}"),
            adversary: false,
            // The simulator reads bandwidths as Mbit/s.
            ingress: vec![*ingress as f64 / 1e6],
            egress: vec![*egress as f64 / 1e6],
        });
    }
    relays.push(relay("evil-in", RelayRole::Ingress, "evil-a", u64::MAX));
    relays.push(relay("evil-eg", RelayRole::Egress, "evil-b", u64::MAX));
    for (name, ingress, egress) in [
        ("evil-a", vec![u64::MAX as f64 / 1e6], vec![]),
        ("evil-b", vec![], vec![u64::MAX as f64 / 1e6]),
    ] {
        operators.push(Operator {
            name: name.into(),
            adversary: true,
            ingress,
            egress,
        });
    }

    // The real selection code, seeded.
    let draws = 100_000u32;
    let mut rng = fastrand::Rng::with_seed(7);
    let both = (0..draws)
        .filter(|_| {
            let c = choose(&relays, &EgressRegion::Any, |_| false, &mut rng).unwrap();
            c.ingress.id == id("evil-in") && c.egress.id == id("evil-eg")
        })
        .count();
    let measured = both as f64 / f64::from(draws);

    // The simulator's exact figure for the same population under the rule
    // clients use, and the bound it must respect.
    let population = Population::new(operators).unwrap();
    let predicted = exact::path_odds(&population, Policy::CAPPED)
        .unwrap()
        .per_path;
    let bound = MAX_OPERATOR_SHARE * MAX_OPERATOR_SHARE;
    assert!(
        predicted <= bound * (1.0 + 1e-9),
        "predicted {predicted} > {bound}"
    );
    // Four standard deviations of the binomial estimate.
    let sigma = (predicted * (1.0 - predicted) / f64::from(draws)).sqrt();
    assert!(
        (measured - predicted).abs() <= 4.0 * sigma,
        "the attacker pair held both hops of {measured} of paths; the simulator predicts \
         {predicted} (± {:.5})",
        4.0 * sigma
    );
    // Uncapped (the old rule), the simulator gives it nearly every path.
    let uncapped = exact::path_odds(&population, Policy::STAKE_WEIGHTED)
        .unwrap()
        .per_path;
    assert!(uncapped > 0.99, "{uncapped}");
}
