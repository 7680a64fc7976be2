//! Selection properties over thousands of seeded runs. Every random choice
//! comes from a seed, so a failure names the seed that reproduces it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use openrelay_config::RelayEntry;
use openrelay_types::{KeyPin, RelayRole};

use super::*;

const INGRESS: RelayRole = RelayRole::Ingress;
const EGRESS: RelayRole = RelayRole::Egress;

fn relay(
    id: &str,
    role: RelayRole,
    operator: &str,
    network: &str,
    country: &str,
    city: &str,
    bandwidth: u64,
) -> Relay {
    let known = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    Relay {
        id: rid(id),
        name: id.into(),
        role,
        operator: op(operator),
        network: known(network).map(|n| crate::relay::parse_network(&n)),
        region: crate::relay::Region {
            country: known(country).map(Into::into),
            city: known(city).map(Into::into),
        },
        bandwidth_bps: bandwidth,
        measured: None,
        addr: "192.0.2.1:4433".parse().unwrap(),
        attestation: crate::attestation::AttestationVerdict::NotChecked.into(),
        listing: None,
    }
}

/// The id of the relay named `name` (ids sort as names do).
fn rid(name: &str) -> RelayId {
    RelayId::from_pin(key_of(name))
}

/// The operator named `name` (in the config, without a key).
fn op(name: &str) -> Operator {
    Operator::Unlisted(name.into())
}

/// `operators` operators, each with one ingress and one egress, all in
/// distinct networks, in DE.
fn network(operators: usize) -> Vec<Relay> {
    (0..operators)
        .flat_map(|o| {
            [
                relay(
                    &format!("in{o}"),
                    INGRESS,
                    &format!("op{o}"),
                    &format!("as-in{o}"),
                    "DE",
                    "Berlin",
                    100,
                ),
                relay(
                    &format!("eg{o}"),
                    EGRESS,
                    &format!("op{o}"),
                    &format!("as-eg{o}"),
                    "DE",
                    "Berlin",
                    100,
                ),
            ]
        })
        .collect()
}

/// A random population: few operators, networks and regions so that
/// conflicts, empty regions and impossible requests are all common.
fn population(rng: &mut fastrand::Rng) -> Vec<Relay> {
    let operators = rng.usize(1..=4);
    let networks = ["", "as1", "as2", "as3"];
    let places = [
        ("DE", "Berlin"),
        ("DE", "Munich"),
        ("FR", "Paris"),
        ("US", "Boston"),
        ("", ""),
    ];
    let count = rng.usize(0..=10);
    (0..count)
        .map(|n| {
            let (country, city) = places[rng.usize(..places.len())];
            let bandwidth = if rng.u8(..10) == 0 {
                0
            } else {
                rng.u64(1..1000)
            };
            relay(
                &format!("r{n}"),
                if rng.bool() { INGRESS } else { EGRESS },
                &format!("op{}", rng.usize(..operators)),
                networks[rng.usize(..networks.len())],
                country,
                city,
                bandwidth,
            )
        })
        .collect()
}

fn random_region(rng: &mut fastrand::Rng) -> EgressRegion {
    let country = ["DE", "fr", "US", "JP"][rng.usize(..4)].to_owned();
    match rng.u8(..4) {
        0 => EgressRegion::Any,
        1 => EgressRegion::Country(country),
        2 => EgressRegion::City {
            country,
            city: ["Berlin", "munich", "Paris", "Boston", "Tokyo"][rng.usize(..5)].to_owned(),
        },
        _ => EgressRegion::Near {
            home_country: country,
        },
    }
}

/// All valid pairs by brute force, for a strict region.
fn valid_pairs<'a>(
    candidates: &'a [Relay],
    region: &EgressRegion,
    excluded: &dyn Fn(&Relay) -> bool,
) -> Vec<(&'a Relay, &'a Relay)> {
    let mut pairs = Vec::new();
    for i in candidates
        .iter()
        .filter(|c| c.role == INGRESS && !excluded(c))
    {
        for e in candidates
            .iter()
            .filter(|c| c.role == EGRESS && !excluded(c))
        {
            let same_network = i.network.is_some() && i.network == e.network;
            if region.contains(e) && i.operator != e.operator && !same_network {
                pairs.push((i, e));
            }
        }
    }
    pairs
}

fn assert_rules(choice: &PathChoice, excluded: &dyn Fn(&Relay) -> bool, seed: u64) {
    let (i, e) = (&choice.ingress, &choice.egress);
    assert_eq!(i.role, INGRESS, "seed {seed}");
    assert_eq!(e.role, EGRESS, "seed {seed}");
    assert_ne!(i.operator, e.operator, "same operator, seed {seed}");
    assert!(
        i.network.is_none() || i.network != e.network,
        "same network, seed {seed}"
    );
    assert!(
        !excluded(i) && !excluded(e),
        "excluded relay chosen, seed {seed}"
    );
}

#[test]
fn rules_hold_and_errors_are_exact_over_thousands_of_seeded_runs() {
    let (mut paths, mut errors) = (0, 0);
    for seed in 0..20_000 {
        let mut setup = fastrand::Rng::with_seed(seed);
        let candidates = population(&mut setup);
        let region = random_region(&mut setup);
        // Each relay excluded with probability 1/4.
        let mask = setup.u16(..) & setup.u16(..);
        let excluded = |c: &Relay| {
            let n: u32 = c.name[1..].parse().unwrap();
            mask & (1 << n) != 0
        };
        let strict = match &region {
            EgressRegion::Near { .. } => EgressRegion::Any,
            other => other.clone(),
        };
        let valid = valid_pairs(&candidates, &strict, &excluded);
        let mut rng = fastrand::Rng::with_seed(seed);
        match choose(&candidates, &region, excluded, &mut rng) {
            Ok(choice) => {
                paths += 1;
                assert_rules(&choice, &excluded, seed);
                assert!(region.contains(&choice.egress), "region, seed {seed}");
                assert!(
                    valid
                        .iter()
                        .any(|(i, e)| **i == choice.ingress && **e == choice.egress),
                    "seed {seed}"
                );
                if let EgressRegion::Near { home_country } = &region {
                    let home = EgressRegion::Country(home_country.clone());
                    if !valid_pairs(&candidates, &home, &excluded).is_empty() {
                        assert!(
                            home.contains(&choice.egress),
                            "near: home preferred, seed {seed}"
                        );
                    }
                }
            }
            Err(SelectionError::NoPath { reason }) => {
                errors += 1;
                assert!(
                    valid.is_empty(),
                    "error {reason} with valid pairs, seed {seed}"
                );
                let usable = |role| {
                    candidates
                        .iter()
                        .filter(move |c| c.role == role && !excluded(c))
                };
                match reason {
                    NoPathReason::NoIngress { .. } => assert_eq!(usable(INGRESS).count(), 0),
                    NoPathReason::NoEgress { region, .. } => {
                        assert_eq!(usable(EGRESS).filter(|e| region.contains(e)).count(), 0);
                    }
                    NoPathReason::OneOperator { operator } => {
                        assert!(usable(INGRESS).all(|c| c.operator == operator));
                        assert!(
                            usable(EGRESS)
                                .filter(|e| strict.contains(e))
                                .all(|c| c.operator == operator)
                        );
                    }
                    NoPathReason::NoCompatiblePair { .. } => {}
                }
            }
            // `choose` never judges attestation (the plan does).
            Err(e @ SelectionError::NoAttestedPath { .. }) => panic!("{e}, seed {seed}"),
        }
    }
    // Both outcomes are well represented.
    assert!(
        paths > 5_000 && errors > 5_000,
        "{paths} paths, {errors} errors"
    );
}

#[test]
fn one_operator_left_is_an_explicit_error_never_a_fallback() {
    let mut rng = fastrand::Rng::with_seed(1);
    let err = choose(&network(1), &EgressRegion::Any, |_| false, &mut rng).unwrap_err();
    assert_eq!(
        err,
        SelectionError::NoPath {
            reason: NoPathReason::OneOperator {
                operator: op("op0")
            }
        }
    );
    assert!(
        err.to_string().contains("only one operator left (op0)"),
        "{err}"
    );

    // Three operators, but every relay of two of them failed.
    let relays = network(3);
    let excluded = |c: &Relay| c.operator != op("op0");
    let err = choose(&relays, &EgressRegion::Any, excluded, &mut rng).unwrap_err();
    assert!(
        err.to_string().contains("only one operator left (op0)"),
        "{err}"
    );
}

#[test]
fn a_region_without_egress_is_an_explicit_error_naming_it() {
    let relays = network(3);
    let mut rng = fastrand::Rng::with_seed(1);
    let err = |region: EgressRegion, excluded: &dyn Fn(&Relay) -> bool| {
        choose(&relays, &region, excluded, &mut rng.clone())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(EgressRegion::Country("JP".into()), &|_| false),
        "no valid path: no egress relay in country JP"
    );
    assert_eq!(
        err(
            EgressRegion::City {
                country: "DE".into(),
                city: "Hamburg".into()
            },
            &|_| false
        ),
        "no valid path: no egress relay in Hamburg, DE"
    );
    assert_eq!(
        err(EgressRegion::Country("DE".into()), &|c| c.role == EGRESS),
        "no valid path: no usable egress relay in country DE (3 excluded after failures)"
    );
    assert_eq!(
        err(EgressRegion::Any, &|c| c.role == INGRESS),
        "no valid path: no usable ingress relay (3 excluded after failures)"
    );
    // Relays of two operators, all in one network.
    let mut shared = network(2);
    for relay in &mut shared {
        relay.network = Some(crate::relay::parse_network("as1"));
    }
    assert_eq!(
        choose(&shared, &EgressRegion::Any, |_| false, &mut rng).unwrap_err(),
        SelectionError::NoPath {
            reason: NoPathReason::NoCompatiblePair {
                region: EgressRegion::Any
            }
        }
    );
    // Regions compare case-insensitively.
    let city = EgressRegion::City {
        country: "de".into(),
        city: "BERLIN".into(),
    };
    assert!(choose(&relays, &city, |_| false, &mut rng).is_ok());
}

#[test]
fn near_prefers_home_and_falls_back_to_anywhere() {
    let mut relays = network(4);
    relays[1].region.country = Some("FR".into()); // eg0
    relays[3].region.country = Some("FR".into()); // eg1
    let fr = EgressRegion::Near {
        home_country: "FR".into(),
    };
    let jp = EgressRegion::Near {
        home_country: "JP".into(),
    };
    let mut rng = fastrand::Rng::with_seed(7);
    let mut seen = BTreeSet::new();
    for _ in 0..1_000 {
        assert_eq!(
            choose(&relays, &fr, |_| false, &mut rng)
                .unwrap()
                .egress
                .region
                .country
                .as_deref(),
            Some("FR")
        );
        seen.insert(choose(&relays, &jp, |_| false, &mut rng).unwrap().egress.id);
    }
    assert_eq!(seen.len(), 4, "no home egress: any egress");
    // Home egresses excluded: anywhere else.
    let excluded = |c: &Relay| c.region.country.as_deref() == Some("FR");
    assert_eq!(
        choose(&relays, &fr, excluded, &mut rng)
            .unwrap()
            .egress
            .region
            .country
            .as_deref(),
        Some("DE")
    );
}

/// Pearson's chi-square statistic of observed counts against shares.
fn chi_square(observed: &[u64], shares: &[f64]) -> f64 {
    let n: u64 = observed.iter().sum();
    observed
        .iter()
        .zip(shares)
        .map(|(&o, &p)| {
            let expected = p * n as f64;
            (o as f64 - expected).powi(2) / expected
        })
        .sum()
}

#[test]
fn choices_follow_the_bandwidth_shares() {
    // Egresses of twenty operators, ingresses of fifteen others, none with
    // more than a tenth of its role's bandwidth (so none is capped): all
    // compatible, so both marginals are the plain bandwidth shares.
    let egress_bw: Vec<u64> = (0..20).map(|n| 50 + 2 * n + (n % 3) * 7).collect();
    let ingress_bw: Vec<u64> = (11..=25).collect();
    let mut relays = Vec::new();
    for (n, bw) in egress_bw.iter().enumerate() {
        relays.push(relay(
            &format!("e{n}"),
            EGRESS,
            &format!("eop{n}"),
            "",
            "DE",
            "",
            *bw,
        ));
    }
    for (n, bw) in ingress_bw.iter().enumerate() {
        relays.push(relay(
            &format!("i{n}"),
            INGRESS,
            &format!("iop{n}"),
            "",
            "DE",
            "",
            *bw,
        ));
    }
    let draws = 40_000;
    let mut rng = fastrand::Rng::with_seed(42);
    let (mut egress_counts, mut ingress_counts) = (vec![0u64; 20], vec![0u64; 15]);
    for _ in 0..draws {
        let choice = choose(&relays, &EgressRegion::Any, |_| false, &mut rng).unwrap();
        egress_counts[choice.egress.name[1..].parse::<usize>().unwrap()] += 1;
        ingress_counts[choice.ingress.name[1..].parse::<usize>().unwrap()] += 1;
    }
    let shares = |bw: &[u64]| -> Vec<f64> {
        let total: u64 = bw.iter().sum();
        bw.iter().map(|&b| b as f64 / total as f64).collect()
    };
    // Critical values at p = 0.001: 43.82 (19 degrees of freedom), 36.12 (14).
    let egress_chi = chi_square(&egress_counts, &shares(&egress_bw));
    let ingress_chi = chi_square(&ingress_counts, &shares(&ingress_bw));
    assert!(egress_chi < 43.82, "{egress_counts:?}: chi² {egress_chi}");
    assert!(
        ingress_chi < 36.12,
        "{ingress_counts:?}: chi² {ingress_chi}"
    );
}

/// Issue 11, item 7: bandwidth claims are clipped and no operator gets more
/// than a tenth of a draw (or `1/k` of it with `k < 10` operators).
#[test]
fn an_operator_claiming_huge_bandwidth_gets_at_most_its_capped_share() {
    use openrelay_directory::weight::MAX_OPERATOR_SHARE;
    // Eleven operators at 1 Gbit/s and one claiming u64::MAX.
    let mut relays: Vec<Relay> = (0..11)
        .map(|n| {
            relay(
                &format!("e{n}"),
                EGRESS,
                &format!("op{n}"),
                "",
                "DE",
                "",
                1_000_000_000,
            )
        })
        .collect();
    relays.push(relay("big", EGRESS, "big", "", "DE", "", u64::MAX));
    let refs: Vec<&Relay> = relays.iter().collect();
    let weights = selection_weights(&refs);
    let total: f64 = weights.iter().sum();
    assert!(
        (weights[11] / total - MAX_OPERATOR_SHARE).abs() < 1e-12,
        "{weights:?}"
    );
    assert!(weights[..11].iter().all(|&w| w == 1e9), "{weights:?}");
    // Two relays of one operator share its capped weight in proportion.
    relays.push(relay("big2", EGRESS, "big", "", "DE", "", 10_000_000_000));
    let refs: Vec<&Relay> = relays.iter().collect();
    let weights = selection_weights(&refs);
    let total: f64 = weights.iter().sum();
    assert!(((weights[11] + weights[12]) / total - MAX_OPERATOR_SHARE).abs() < 1e-12);
    assert!((weights[11] - weights[12]).abs() < 1e-6 * weights[11]);
    // Three operators: a third each, whatever they claim.
    let few = [
        relay("a", EGRESS, "a", "", "", "", 1),
        relay("b", EGRESS, "b", "", "", "", 1_000),
        relay("c", EGRESS, "c", "", "", "", u64::MAX),
    ];
    let refs: Vec<&Relay> = few.iter().collect();
    let weights = selection_weights(&refs);
    assert!(
        weights.iter().all(|&w| (w - weights[0]).abs() < 1e-9 * w),
        "{weights:?}"
    );
}

#[test]
fn the_ingress_is_drawn_by_weight_among_those_compatible_with_the_egress() {
    // i0 shares e0's operator, i1 shares e1's network: P(i | e0) over
    // (i1, i2), P(i | e1) over (i0, i2), each by its weight in that draw.
    let relays = vec![
        relay("e0", EGRESS, "a", "as-a", "", "", 1),
        relay("e1", EGRESS, "b", "as-b", "", "", 1),
        relay("i0", INGRESS, "a", "as-x", "", "", 1),
        relay("i1", INGRESS, "c", "as-b", "", "", 2),
        relay("i2", INGRESS, "d", "", "", "", 5),
    ];
    let mut rng = fastrand::Rng::with_seed(3);
    let mut counts: BTreeMap<(RelayId, RelayId), u64> = BTreeMap::new();
    for _ in 0..20_000 {
        let c = choose(&relays, &EgressRegion::Any, |_| false, &mut rng).unwrap();
        *counts.entry((c.egress.id, c.ingress.id)).or_default() += 1;
    }
    let count = |e: &str, i: &str| counts.get(&(rid(e), rid(i))).copied().unwrap_or(0);
    assert_eq!(count("e0", "i0") + count("e1", "i1"), 0, "{counts:?}");
    let e0 = [count("e0", "i1"), count("e0", "i2")];
    let e1 = [count("e1", "i0"), count("e1", "i2")];
    let shares = |a: &Relay, b: &Relay| {
        let w = selection_weights(&[a, b]);
        [w[0] / (w[0] + w[1]), w[1] / (w[0] + w[1])]
    };
    // Egresses: equal weight, so half each (chi², 1 degree of freedom,
    // p = 0.001: 10.83); ingresses by their conditional shares.
    let totals = [e0.iter().sum(), e1.iter().sum()];
    assert!(chi_square(&totals, &[0.5, 0.5]) < 10.83, "{counts:?}");
    assert!(
        chi_square(&e0, &shares(&relays[3], &relays[4])) < 10.83,
        "{counts:?}"
    );
    assert!(
        chi_square(&e1, &shares(&relays[2], &relays[4])) < 10.83,
        "{counts:?}"
    );
}

#[test]
fn zero_bandwidth_relays_are_chosen_only_when_all_are_zero() {
    let mut relays = network(3);
    relays[1].bandwidth_bps = 0; // eg0
    let mut rng = fastrand::Rng::with_seed(5);
    for _ in 0..2_000 {
        assert_ne!(
            choose(&relays, &EgressRegion::Any, |_| false, &mut rng)
                .unwrap()
                .egress
                .id,
            rid("eg0")
        );
    }
    for relay in &mut relays {
        relay.bandwidth_bps = 0;
    }
    let seen: BTreeSet<_> = (0..2_000)
        .map(|_| {
            choose(&relays, &EgressRegion::Any, |_| false, &mut rng)
                .unwrap()
                .egress
                .id
        })
        .collect();
    assert_eq!(seen.len(), 3);
}

#[test]
fn huge_bandwidths_do_not_overflow() {
    let mut relays = network(3);
    for relay in &mut relays {
        relay.bandwidth_bps = u64::MAX;
    }
    let mut rng = fastrand::Rng::with_seed(5);
    let seen: BTreeSet<_> = (0..1_000)
        .map(|_| {
            choose(&relays, &EgressRegion::Any, |_| false, &mut rng)
                .unwrap()
                .egress
                .id
        })
        .collect();
    assert_eq!(seen.len(), 3);
}

#[test]
fn the_same_seed_gives_the_same_choices() {
    let mut setup = fastrand::Rng::with_seed(11);
    let relays: Vec<_> = (0..20).flat_map(|_| population(&mut setup)).collect();
    let run = |seed| {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..200)
            .map(|_| choose(&relays, &EgressRegion::Any, |_| false, &mut rng).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

/// A distinct key per relay name.
fn key_of(name: &str) -> KeyPin {
    let mut key = [0; 32];
    for (k, b) in key.iter_mut().zip(name.bytes()) {
        *k = b;
    }
    KeyPin::from_ed25519(key)
}

fn entry(name: &str, role: RelayRole, operator: &str) -> RelayEntry {
    RelayEntry {
        name: name.into(),
        role,
        operator: operator.into(),
        operator_key: None,
        addr: "192.0.2.1:4433".parse().unwrap(),
        key: key_of(name),
        country: None,
        city: None,
        network: None,
        bandwidth_bps: None,
    }
}

#[test]
fn embedded_relay_entries_become_relays_with_unknown_networks() {
    let entries = [
        entry("in-a", INGRESS, "a"),
        entry("eg-b", EGRESS, "b"),
        entry("eg-a", EGRESS, "a"),
    ];
    let candidates = crate::relay::from_config(&entries).unwrap();
    let mut expected = relay("in-a", INGRESS, "a", "", "", "", UNKNOWN_BANDWIDTH);
    expected.id = RelayId::from_pin(key_of("in-a"));
    // An entry has no descriptor, so no attestation evidence.
    expected.attestation = crate::attestation::AttestationVerdict::NoEvidence.into();
    assert_eq!(candidates[0], expected);
    // An unknown network conflicts with nothing: the only pair left is
    // the one the operator rule allows.
    assert!(candidates.iter().all(|c| c.network.is_none()));
    let mut rng = fastrand::Rng::with_seed(1);
    for _ in 0..100 {
        let choice = choose(&candidates, &EgressRegion::Any, |_| false, &mut rng).unwrap();
        assert_eq!(
            (choice.ingress.id, choice.egress.id),
            (rid("in-a"), rid("eg-b"))
        );
    }
    // No region is known, so a country request is refused, by name.
    let err = choose(
        &candidates,
        &EgressRegion::Country("DE".into()),
        |_| false,
        &mut rng,
    );
    assert!(err.unwrap_err().to_string().contains("country DE"));
}

// ---- PathPlan: rotation, exclusion, per-site isolation ----

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn plan(candidates: Vec<Relay>, config: PlanConfig, seed: u64) -> PathPlan<Duration> {
    PathPlan::new(candidates, config, fastrand::Rng::with_seed(seed))
}

fn site(name: &str) -> SiteKey {
    SiteKey::parse(name).unwrap()
}

#[test]
fn paths_rotate_at_the_interval_and_not_before() {
    for seed in 0..2_000 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let rotation = Duration::from_millis(rng.u64(1..10_000_000));
        let config = PlanConfig {
            rotation,
            ..PlanConfig::default()
        };
        let mut plan = plan(network(rng.usize(2..6)), config, seed);
        let t0 = Duration::from_millis(rng.u64(..1_000_000_000));
        assert_eq!(plan.next_rotation(), None);
        let first = plan.current(t0).unwrap();
        assert_eq!(first.chosen_at, t0);
        assert_eq!(plan.next_rotation(), Some(t0 + rotation));
        let before = t0 + Duration::from_nanos(rng.u64(..rotation.as_nanos() as u64));
        assert_eq!(plan.current(before).unwrap(), first, "seed {seed}");
        let at = t0 + rotation;
        let second = plan.current(at).unwrap();
        assert_ne!(second.generation, first.generation, "seed {seed}");
        assert_eq!(second.chosen_at, at);
        assert_eq!(
            plan.current(at + rotation / 2).unwrap(),
            second,
            "seed {seed}"
        );
    }
}

#[test]
fn the_default_rotation_is_ten_minutes() {
    assert_eq!(PlanConfig::default().rotation, secs(600));
    let mut plan = plan(network(2), PlanConfig::default(), 1);
    let first = plan.current(secs(0)).unwrap();
    assert_eq!(plan.current(secs(599)).unwrap(), first);
    assert_ne!(
        plan.current(secs(600)).unwrap().generation,
        first.generation
    );
}

#[test]
fn works_with_real_instants() {
    let mut plan: PathPlan<std::time::Instant> = PathPlan::new(
        network(2),
        PlanConfig::default(),
        fastrand::Rng::with_seed(1),
    );
    let t0 = std::time::Instant::now();
    let first = plan.current(t0).unwrap();
    assert_eq!(plan.current(t0 + secs(1)).unwrap(), first);
    assert_ne!(
        plan.current(t0 + secs(600)).unwrap().generation,
        first.generation
    );
}

#[test]
fn an_excluded_relay_is_never_chosen_until_its_exclusion_ends() {
    for seed in 0..500 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let config = PlanConfig {
            rotation: secs(10),
            ..PlanConfig::default()
        };
        let mut plan = plan(network(4), config, seed);
        let first = plan.current(secs(0)).unwrap();
        let failed = if rng.bool() {
            &first.choice.egress
        } else {
            &first.choice.ingress
        };
        let failed = failed.id;
        let until = secs(rng.u64(1..1_000));
        plan.exclude(failed, until);
        assert!(plan.is_excluded(&failed, secs(0)) && !plan.is_excluded(&failed, until));
        let mut now = secs(0);
        while now < until {
            let path = plan.current(now).unwrap();
            assert!(
                path.choice.ingress.id != failed && path.choice.egress.id != failed,
                "seed {seed}"
            );
            now += secs(rng.u64(1..20));
        }
        // Back in the pool afterwards: chosen again at some rotation.
        let back = (0..200).any(|n| {
            let path = plan.current(until + secs(10 * n)).unwrap();
            path.choice.ingress.id == failed || path.choice.egress.id == failed
        });
        assert!(back, "seed {seed}");
    }
}

#[test]
fn a_failed_ingress_is_replaced_and_the_egress_kept() {
    let mut plan = plan(network(4), PlanConfig::default(), 9);
    let first = plan.current(secs(0)).unwrap();
    plan.exclude(first.choice.ingress.id, secs(100));
    let repaired = plan.current(secs(1)).unwrap();
    assert_eq!(repaired.choice.egress, first.choice.egress);
    assert_ne!(repaired.choice.ingress, first.choice.ingress);
    assert_ne!(repaired.generation, first.generation);
    assert_eq!(
        repaired.chosen_at, first.chosen_at,
        "repair does not reset rotation"
    );
    // A failed egress replaces the whole path.
    plan.exclude(repaired.choice.egress.id, secs(100));
    let replaced = plan.current(secs(2)).unwrap();
    assert_ne!(replaced.choice.egress, repaired.choice.egress);
    assert_eq!(replaced.chosen_at, secs(2));
}

#[test]
fn no_path_left_is_an_error_and_recovers_when_exclusions_end() {
    let mut plan = plan(network(2), PlanConfig::default(), 1);
    plan.exclude(rid("eg0"), secs(50));
    plan.exclude(rid("eg1"), secs(60));
    let err = plan.current(secs(0)).unwrap_err();
    assert!(err.to_string().contains("2 excluded"), "{err}");
    assert!(plan.current(secs(55)).is_ok());
}

#[test]
fn with_no_path_left_the_relay_that_failed_longest_ago_comes_back_first() {
    let mut plan = plan(network(3), PlanConfig::default(), 1);
    plan.exclude(rid("eg1"), secs(40));
    plan.exclude(rid("eg0"), secs(50));
    plan.exclude(rid("eg2"), secs(60));
    assert!(plan.current(secs(0)).is_err());
    assert!(plan.release_oldest_exclusion());
    assert_eq!(plan.current(secs(0)).unwrap().choice.egress.id, rid("eg1"));
    assert!(plan.is_excluded(&rid("eg0"), secs(0)) && plan.is_excluded(&rid("eg2"), secs(0)));
    assert!(plan.release_oldest_exclusion() && plan.release_oldest_exclusion());
    assert!(!plan.release_oldest_exclusion());
}

#[test]
fn discard_and_candidate_changes_replace_the_path() {
    let mut plan = plan(network(3), PlanConfig::default(), 1);
    let first = plan.current(secs(0)).unwrap();
    plan.discard(first.generation);
    let second = plan.current(secs(0)).unwrap();
    assert_ne!(second.generation, first.generation);
    // The egress leaves the directory.
    let remaining = network(3)
        .into_iter()
        .filter(|c| c.id != second.choice.egress.id)
        .collect();
    plan.set_candidates(remaining);
    let third = plan.current(secs(1)).unwrap();
    assert_ne!(third.choice.egress.id, second.choice.egress.id);
    // A new region replaces it at once.
    plan.set_config(PlanConfig {
        region: EgressRegion::Country("FR".into()),
        ..PlanConfig::default()
    });
    assert!(
        plan.current(secs(2))
            .unwrap_err()
            .to_string()
            .contains("country FR")
    );
}

/// Egresses of distinct operators and networks, each compatible with one of
/// several ingresses.
fn wide_network(egresses: usize) -> Vec<Relay> {
    let mut relays = Vec::new();
    for n in 0..egresses {
        relays.push(relay(
            &format!("e{n}"),
            EGRESS,
            &format!("e-op{n}"),
            &format!("as-e{n}"),
            "DE",
            "",
            10 * (n as u64 + 1),
        ));
    }
    for n in 0..3 {
        relays.push(relay(
            &format!("i{n}"),
            INGRESS,
            &format!("i-op{n}"),
            &format!("as-i{n}"),
            "DE",
            "",
            50,
        ));
    }
    relays
}

fn per_site() -> PlanConfig {
    PlanConfig {
        per_site: true,
        ..PlanConfig::default()
    }
}

#[test]
fn different_sites_get_different_egresses_while_enough_exist() {
    for seed in 0..500 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let egresses = rng.usize(1..8);
        let sites = rng.usize(1..12);
        let mut plan = plan(wide_network(egresses), per_site(), seed);
        let mut load: BTreeMap<RelayId, usize> = BTreeMap::new();
        for s in 0..sites {
            let path = plan
                .assign(&site(&format!("site{s}.example")), secs(s as u64))
                .unwrap();
            *load.entry(path.choice.egress.id).or_default() += 1;
        }
        if sites <= egresses {
            assert!(load.values().all(|&n| n == 1), "seed {seed}: {load:?}");
        } else {
            // Shared least-loaded: every egress is used, loads differ by at most one.
            assert_eq!(load.len(), egresses, "seed {seed}");
            let (min, max) = (load.values().min().unwrap(), load.values().max().unwrap());
            assert!(max - min <= 1, "seed {seed}: {load:?}");
        }
    }
}

#[test]
fn subdomains_of_one_site_share_its_egress() {
    let mut plan = plan(wide_network(5), per_site(), 1);
    let a = plan.assign(&site("www.example.co.uk"), secs(0)).unwrap();
    let b = plan.assign(&site("img.example.co.uk"), secs(1)).unwrap();
    let c = plan.assign(&site("other.example"), secs(2)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.choice.egress, c.choice.egress);
}

#[test]
fn without_isolation_every_site_uses_the_current_path() {
    let mut plan = plan(wide_network(5), PlanConfig::default(), 1);
    let current = plan.current(secs(0)).unwrap();
    for s in 0..10 {
        assert_eq!(
            plan.assign(&site(&format!("s{s}.example")), secs(s))
                .unwrap(),
            current
        );
    }
}

#[test]
fn near_isolation_spills_to_other_countries_before_sharing() {
    let mut relays = wide_network(4);
    relays[0].region.country = Some("FR".into());
    let mut plan = plan(
        relays,
        PlanConfig {
            region: EgressRegion::Near {
                home_country: "FR".into(),
            },
            per_site: true,
            ..PlanConfig::default()
        },
        1,
    );
    assert_eq!(
        plan.assign(&site("a.example"), secs(0))
            .unwrap()
            .choice
            .egress
            .id,
        rid("e0")
    );
    let others: BTreeSet<_> = (1..4)
        .map(|s| {
            plan.assign(&site(&format!("s{s}.example")), secs(0))
                .unwrap()
                .choice
                .egress
                .id
        })
        .collect();
    assert_eq!(others.len(), 3);
    assert!(!others.contains(&rid("e0")));
    // All egresses used: the next site shares the least-loaded home egress.
    assert_eq!(
        plan.assign(&site("z.example"), secs(0))
            .unwrap()
            .choice
            .egress
            .id,
        rid("e0")
    );
}

/// A random script of site requests, failures and directory changes over
/// time, checked against a model of what stickiness and isolation promise.
#[test]
fn sites_are_sticky_and_isolated_over_random_scripts() {
    for seed in 0..300 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let rotation = secs(rng.u64(10..200));
        let all = wide_network(rng.usize(2..7));
        let config = PlanConfig {
            rotation,
            ..per_site()
        };
        let mut plan = plan(all.clone(), config, seed);
        let mut exclusions: HashMap<RelayId, Duration> = HashMap::new();
        let mut last: BTreeMap<String, PlannedPath<Duration>> = BTreeMap::new();
        let mut now = secs(0);
        for step in 0..200 {
            now += Duration::from_millis(rng.u64(..5_000));
            if rng.u8(..20) == 0 {
                let victim = all[rng.usize(..all.len())].id;
                let until = now + secs(rng.u64(1..100));
                plan.exclude(victim, until);
                let entry = exclusions.entry(victim).or_insert(until);
                *entry = (*entry).max(until);
                continue;
            }
            let excluded = |id: &RelayId| exclusions.get(id).is_some_and(|until| now < *until);
            let name = format!("site{}.example", rng.usize(..8));
            let live_elsewhere: Vec<&PlannedPath<Duration>> = last
                .iter()
                .filter(|(s, p)| {
                    **s != name && now - p.chosen_at < rotation && !excluded(&p.choice.egress.id)
                })
                .map(|(_, p)| p)
                .collect();
            let result = plan.assign(&site(&name), now);
            let Ok(path) = result else {
                // Only when no valid pair exists at all.
                let valid = valid_pairs(&all, &EgressRegion::Any, &|c| excluded(&c.id));
                assert!(valid.is_empty(), "seed {seed} step {step}");
                continue;
            };
            assert_rules(&path.choice, &|c| excluded(&c.id), seed);
            let previous = last.get(&name);
            let fresh = match previous {
                Some(prev)
                    if now - prev.chosen_at < rotation && !excluded(&prev.choice.egress.id) =>
                {
                    // Sticky: same egress, and the very same path unless its
                    // ingress failed.
                    assert_eq!(
                        path.choice.egress.id, prev.choice.egress.id,
                        "seed {seed} step {step}"
                    );
                    if !excluded(&prev.choice.ingress.id) {
                        assert_eq!(&path, prev, "seed {seed} step {step}");
                    }
                    false
                }
                Some(prev) => {
                    assert_ne!(path.generation, prev.generation, "seed {seed} step {step}");
                    assert_eq!(path.chosen_at, now);
                    true
                }
                None => true,
            };
            if fresh {
                let mut load: HashMap<RelayId, usize> = HashMap::new();
                for p in &live_elsewhere {
                    *load.entry(p.choice.egress.id).or_default() += 1;
                }
                let eligible: BTreeSet<RelayId> =
                    valid_pairs(&all, &EgressRegion::Any, &|c| excluded(&c.id))
                        .into_iter()
                        .map(|(_, e)| e.id)
                        .collect();
                let load_of = |id: &RelayId| load.get(id).copied().unwrap_or(0);
                let least = eligible.iter().map(load_of).min().unwrap();
                assert_eq!(
                    load_of(&path.choice.egress.id),
                    least,
                    "seed {seed} step {step}: isolation"
                );
            }
            last.insert(name, path);
        }
    }
}

#[test]
fn the_same_seed_replays_the_same_plan() {
    let script = |seed| {
        let mut plan = plan(wide_network(5), per_site(), seed);
        let mut out = Vec::new();
        for step in 0..300u64 {
            let now = secs(step * 7);
            if step % 50 == 0 {
                plan.exclude(rid(&format!("e{}", step % 5)), now + secs(30));
            }
            out.push(
                plan.assign(&site(&format!("s{}.example", step % 9)), now)
                    .unwrap(),
            );
        }
        out
    };
    assert_eq!(script(4), script(4));
    assert_ne!(script(4), script(5));
}

#[test]
fn next_rotation_is_the_earliest_kept_path() {
    let mut plan = plan(wide_network(5), per_site(), 1);
    plan.assign(&site("a.example"), secs(30)).unwrap();
    plan.assign(&site("b.example"), secs(10)).unwrap();
    assert_eq!(plan.next_rotation(), Some(secs(610)));
    assert!(plan.site(&site("a.example")).is_some());
    assert!(plan.site(&site("c.example")).is_none());
}

/// Refill paths (issue 11 item 11) over thousands of seeded setups: the
/// egress is never a browsing path's, the ingress is one the client holds
/// a token for, the usual rules hold, and when a pair with neither operator
/// of the browsing paths exists, that is what is chosen; when none exists at
/// all, the error says why.
#[test]
fn refill_paths_keep_apart_from_browsing_paths_over_seeded_runs() {
    let (mut chosen, mut apart) = (0, 0);
    for seed in 0..20_000 {
        let mut setup = fastrand::Rng::with_seed(seed);
        let candidates = population(&mut setup);
        let mask = setup.u16(..) & setup.u16(..);
        let excluded = |c: &Relay| {
            let n: u32 = c.name[1..].parse().unwrap();
            mask & (1 << n) != 0
        };
        let tokens = setup.u16(..) | setup.u16(..);
        let has_access = |c: &Relay| {
            let n: u32 = c.name[1..].parse().unwrap();
            tokens & (1 << n) != 0
        };
        // Up to three browsing paths drawn by the ordinary rules.
        let mut browsing = Vec::new();
        for _ in 0..setup.usize(0..=3) {
            if let Ok(path) = choose(&candidates, &EgressRegion::Any, |_| false, &mut setup) {
                browsing.push(path);
            }
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        let result = choose_refill(&candidates, &browsing, has_access, excluded, &mut rng);
        let browsing_egress = |c: &Relay| browsing.iter().any(|p| p.egress.id == c.id);
        let hard = |c: &Relay| {
            excluded(c)
                || (c.role == EGRESS && browsing_egress(c))
                || (c.role == INGRESS && !has_access(c))
        };
        let valid = valid_pairs(&candidates, &EgressRegion::Any, &hard);
        let separate = |i: &Relay, e: &Relay| {
            browsing
                .iter()
                .all(|p| p.ingress.operator != i.operator && p.egress.operator != e.operator)
        };
        match result {
            Ok(choice) => {
                chosen += 1;
                assert_rules(&choice, &hard, seed);
                assert!(
                    valid
                        .iter()
                        .any(|(i, e)| **i == choice.ingress && **e == choice.egress),
                    "seed {seed}"
                );
                if valid.iter().any(|(i, e)| separate(i, e)) {
                    apart += 1;
                    assert!(
                        separate(&choice.ingress, &choice.egress),
                        "a pair apart from every browsing operator existed, seed {seed}"
                    );
                }
            }
            Err(error) => {
                assert!(valid.is_empty(), "{error} with valid pairs, seed {seed}");
                let any = |role, skip: &dyn Fn(&Relay) -> bool| {
                    candidates
                        .iter()
                        .any(|c| c.role == role && !excluded(c) && !skip(c))
                };
                let expected_kind = if !any(EGRESS, &browsing_egress) {
                    "egress"
                } else if !any(INGRESS, &|c| !has_access(c)) {
                    "token"
                } else {
                    "rules"
                };
                let kind = match error {
                    RefillChoiceError::EveryEgressBrowsing => "egress",
                    RefillChoiceError::NoAccessToken => "token",
                    RefillChoiceError::NoPath(_) => "rules",
                };
                assert_eq!(kind, expected_kind, "seed {seed}");
            }
        }
    }
    // The setups exercise every branch.
    assert!(
        chosen > 2_000 && apart > 500,
        "{chosen} chosen, {apart} apart"
    );
}

#[test]
fn a_refill_uses_another_egress_and_ingress_operator_than_browsing() {
    // Three operators, a browsing path from operator 0's ingress to
    // operator 1's egress: the refill's egress is operator 0's or 2's, its
    // ingress operator 1's or 2's, never eg1.
    let candidates = network(3);
    let browsing = [PathChoice {
        ingress: candidates[0].clone(),
        egress: candidates[3].clone(),
    }];
    for seed in 0..200 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let choice = choose_refill(&candidates, &browsing, |_| true, |_| false, &mut rng).unwrap();
        assert_ne!(choice.egress.id, rid("eg1"));
        assert_ne!(choice.ingress.operator, op("op0"));
        assert_ne!(choice.egress.operator, op("op1"));
    }
    // Only the browsing egress left: no refill, and why.
    let mut rng = fastrand::Rng::with_seed(1);
    let only = |c: &Relay| c.role == EGRESS && c.id != rid("eg1");
    assert_eq!(
        choose_refill(&candidates, &browsing, |_| true, only, &mut rng),
        Err(RefillChoiceError::EveryEgressBrowsing)
    );
    assert_eq!(
        choose_refill(&candidates, &browsing, |_| false, |_| false, &mut rng),
        Err(RefillChoiceError::NoAccessToken)
    );
}
