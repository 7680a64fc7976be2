//! Choosing the relays of a path. Pure and deterministic for a given random
//! source, so its rules are tested directly: an ingress and an egress of the
//! same operator are never paired, and excluded (recently failed) relays are
//! not chosen. Weighting, regions and per-site isolation come with the
//! registry; this is the part the data plane needs.

use openrelay_config::{RelayEntry, RelayRole};

/// Indices into the relay list of a chosen ingress and egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathChoice {
    /// The ingress relay.
    pub ingress: usize,
    /// The egress relay.
    pub egress: usize,
}

/// All ingress/egress pairs of different operators, skipping `excluded` relays.
pub fn candidates(
    relays: &[RelayEntry],
    excluded: impl Fn(&RelayEntry) -> bool,
) -> Vec<PathChoice> {
    let excluded = &excluded;
    let usable = |role| {
        relays
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.role == role && !excluded(r))
    };
    let mut pairs = Vec::new();
    for (i, ingress) in usable(RelayRole::Ingress) {
        for (e, egress) in usable(RelayRole::Egress) {
            if ingress.operator != egress.operator {
                pairs.push(PathChoice {
                    ingress: i,
                    egress: e,
                });
            }
        }
    }
    pairs
}

/// Picks one candidate uniformly with `pick(n)` returning a number below `n`.
pub fn choose(
    relays: &[RelayEntry],
    excluded: impl Fn(&RelayEntry) -> bool,
    pick: impl FnOnce(usize) -> usize,
) -> Option<PathChoice> {
    let pairs = candidates(relays, excluded);
    if pairs.is_empty() {
        return None;
    }
    pairs.get(pick(pairs.len())).copied()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use openrelay_config::KeyPin;
    use proptest::prelude::*;

    fn relay(name: &str, role: RelayRole, operator: &str) -> RelayEntry {
        RelayEntry {
            name: name.into(),
            role,
            operator: operator.into(),
            addr: "192.0.2.1:4433".parse().unwrap(),
            key: KeyPin::from_ed25519([1; 32]),
        }
    }

    fn network(operators: usize) -> Vec<RelayEntry> {
        (0..operators)
            .flat_map(|o| {
                [
                    relay(&format!("in{o}"), RelayRole::Ingress, &format!("op{o}")),
                    relay(&format!("eg{o}"), RelayRole::Egress, &format!("op{o}")),
                ]
            })
            .collect()
    }

    #[test]
    fn one_operator_has_no_path() {
        assert_eq!(choose(&network(1), |_| false, |_| 0), None);
    }

    #[test]
    fn exclusion_removes_the_failed_relay() {
        let relays = network(2);
        let pairs = candidates(&relays, |r| r.name == "eg1");
        assert_eq!(
            pairs,
            vec![PathChoice {
                ingress: 2,
                egress: 1
            }]
        );
        assert!(candidates(&relays, |r| r.name == "eg1" || r.name == "in1").is_empty());
    }

    proptest! {
        #[test]
        fn never_the_same_operator(operators in 2usize..8, seed in any::<u64>(), excluded in any::<u16>()) {
            let relays = network(operators);
            let mut rng = fastrand::Rng::with_seed(seed);
            let is_excluded = |r: &RelayEntry| {
                let index = relays.iter().position(|x| x.name == r.name).unwrap_or(0);
                excluded & (1 << (index % 16)) != 0
            };
            if let Some(choice) = choose(&relays, is_excluded, |n| rng.usize(..n)) {
                let (i, e) = (&relays[choice.ingress], &relays[choice.egress]);
                prop_assert_eq!(i.role, RelayRole::Ingress);
                prop_assert_eq!(e.role, RelayRole::Egress);
                prop_assert_ne!(&i.operator, &e.operator);
                prop_assert!(!is_excluded(i) && !is_excluded(e));
            }
        }
    }
}
