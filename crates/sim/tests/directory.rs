//! `openrelay sim --directory FILE` (issue 13, item 5): the population a
//! directory lists, weighted as clients weigh it, stake-capped with a chain
//! section; a Sybil operator splitting its stake over many small relays
//! gains nothing.
#![allow(clippy::unwrap_used)]

use openrelay_directory::Directory;
use openrelay_sim::{Policy, Population, exact};
use openrelay_testkit::fixtures::*;
use openrelay_types::RelayRole;

const SYBIL: u8 = 3;

/// Operators 0, 1, 2 with one ingress and one egress of 1 Gbit/s each;
/// operator 3 with `sybil_relays` relays of `sybil_bps` each, half of them
/// ingress; every operator's stake covers exactly what it lists.
fn chain_directory(sybil_relays: u8, sybil_bps: u64) -> Directory {
    let mut operators = vec![profile(0), profile(1), profile(2), profile(SYBIL)];
    operators.sort_by_key(|p| p.profile().operator());
    let mut descriptors = Vec::new();
    for o in 0..3u8 {
        descriptors.push(descriptor(2 * o, o, RelayRole::Ingress));
        descriptors.push(descriptor(2 * o + 1, o, RelayRole::Egress));
    }
    for i in 0..sybil_relays {
        let relay = 10 + i;
        let role = if i % 2 == 0 {
            RelayRole::Ingress
        } else {
            RelayRole::Egress
        };
        let mut fields = descriptor_fields(relay, SYBIL, role);
        fields.bandwidth_bps = sybil_bps;
        descriptors.push(sign(fields, relay, SYBIL));
    }
    with_chain(directory_with(1, operators, descriptors), 7, 0)
}

fn mass(population: &Population, name: &str) -> (f64, f64) {
    let op = population
        .operators()
        .iter()
        .find(|op| op.name == name)
        .unwrap();
    (op.ingress.iter().sum(), op.egress.iter().sum())
}

#[test]
fn a_directory_file_is_the_population_weighted_as_clients_weigh_it() {
    let directory = chain_directory(120, 20_000_000);
    let signed = signed(&directory, &[0, 1]).to_bytes();
    for bytes in [signed, directory.to_bytes()] {
        let population = Population::from_directory(&bytes, &[]).unwrap();
        assert_eq!(population.operators().len(), 4);
        // The Sybil's 120 relays of 20 Mbit/s weigh its 2.4 Gbit/s, and
        // it is the heaviest, so the default adversary.
        let sybil = operator_key(SYBIL).id().to_string();
        assert_eq!(mass(&population, &sybil), (1200.0, 1200.0));
        let adversaries: Vec<&str> = population
            .operators()
            .iter()
            .filter(|op| op.adversary)
            .map(|op| op.name.as_str())
            .collect();
        assert_eq!(adversaries, [sybil.as_str()]);
    }
    // Named adversaries; an unknown or malformed key is a clear error.
    let bytes = directory.to_bytes();
    let two = [
        operator_key(0).id().to_string(),
        operator_key(1).id().to_string(),
    ];
    let population = Population::from_directory(&bytes, &two).unwrap();
    assert_eq!(population.summary().adversary_operators, 2);
    let unknown = Population::from_directory(&bytes, &[operator_key(9).id().to_string()]);
    assert!(unknown.unwrap_err().to_string().contains("not listed"));
    assert!(Population::from_directory(&bytes, &["ed25519:nope".into()]).is_err());
    assert!(Population::from_directory(b"garbage", &[]).is_err());
}

#[test]
fn splitting_stake_over_many_relays_buys_a_sybil_nothing() {
    // Stake for 2 Gbit/s as one 1 Gbit/s relay per role, or as a hundred
    // relays of 20 Mbit/s: the same odds of holding both hops, under every
    // weighted policy the simulator compares.
    let few =
        Population::from_directory(&chain_directory(2, 1_000_000_000).to_bytes(), &[]).unwrap();
    let many =
        Population::from_directory(&chain_directory(100, 20_000_000).to_bytes(), &[]).unwrap();
    for policy in [Policy::STAKE_WEIGHTED, Policy::CAPPED] {
        let a = exact::path_odds(&few, policy).unwrap().per_path;
        let b = exact::path_odds(&many, policy).unwrap().per_path;
        assert!((a - b).abs() < 1e-12, "{policy:?}: {a} vs {b}");
    }
}
