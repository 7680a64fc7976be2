//! Exact probabilities.
//!
//! The chance `q` that one path is compromised (ingress and egress both held
//! by the adversary) is the sum, over all (egress, ingress) pairs, of the
//! pair's selection probability where both are adversarial. Paths are drawn
//! as the client draws them, egress first. Whether a relay is adversarial
//! depends only on its operator, and a policy's choice depends only on
//! operator totals, so the sum is grouped by egress operator `o`:
//!
//! ```text
//! q = Σ_{o adversarial} P(egress operator = o) · A_ingress(≠o) / W_ingress(≠o)
//! ```
//!
//! where `W_ingress(≠o)` is the ingress weight the policy allows after an
//! egress of `o` (all of it without operator diversity, all but `o`'s
//! with it) and `A_ingress(≠o)` the adversary's part of it. That is the
//! pair enumeration in `O(operators)` instead of `O(ingress × egress)`
//! (the tests check it against the literal pair enumeration).
//!
//! Paths are independent draws, so after `n` paths
//! `P(some path compromised) = 1 - (1 - q)ⁿ`.

use crate::error::{NoValidPath, SimError};
use crate::policy::{Policy, operator_scales};
use crate::population::{Population, Role};

/// Per-path probabilities under one policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathOdds {
    /// P(the ingress is the adversary's).
    pub ingress: f64,
    /// P(the egress is the adversary's).
    pub egress: f64,
    /// P(both are): the path is compromised.
    pub per_path: f64,
}

/// Which egress operators can start a path: with operator diversity, an
/// operator that runs every ingress relay cannot. Decided on relay counts
/// (exact), not on float sums.
pub(crate) fn egress_eligible(population: &Population, policy: Policy) -> Vec<bool> {
    let ingress_total: usize = population.operators().iter().map(|o| o.ingress.len()).sum();
    population
        .operators()
        .iter()
        .map(|o| {
            !o.egress.is_empty() && (!policy.operator_diverse || ingress_total > o.ingress.len())
        })
        .collect()
}

/// Each operator's weight in `role` as the policy draws it: its mass,
/// scaled by the operator cap where the policy has one, over the operators
/// `eligible` marks (the others weigh 0).
pub(crate) fn role_masses(
    population: &Population,
    policy: Policy,
    role: Role,
    eligible: &[bool],
) -> Vec<f64> {
    let w = policy.weighting;
    let scales = operator_scales(population, w, role, eligible);
    population
        .operators()
        .iter()
        .zip(eligible)
        .zip(&scales)
        .map(|((o, &ok), scale)| {
            if ok {
                w.operator_mass(o, role) * scale
            } else {
                0.0
            }
        })
        .collect()
}

pub(crate) fn no_valid_path(policy: Policy) -> SimError {
    SimError::NoValidPath(NoValidPath { policy })
}

/// The exact per-path probabilities of `policy` on `population`.
pub fn path_odds(population: &Population, policy: Policy) -> Result<PathOdds, SimError> {
    let ops = population.operators();
    let eligible = egress_eligible(population, policy);
    let egress_mass = role_masses(population, policy, Role::Egress, &eligible);
    let ingress_mass = role_masses(population, policy, Role::Ingress, &vec![true; ops.len()]);
    let egress_total: f64 = egress_mass.iter().sum();
    if egress_total <= 0.0 {
        return Err(no_valid_path(policy));
    }
    let ingress_total: f64 = ingress_mass.iter().sum();
    let ingress_adversary: f64 = ops
        .iter()
        .zip(&ingress_mass)
        .filter(|(o, _)| o.adversary)
        .map(|(_, m)| m)
        .sum();
    let mut odds = PathOdds {
        ingress: 0.0,
        egress: 0.0,
        per_path: 0.0,
    };
    for ((op, &m_eg), &m_in) in ops.iter().zip(&egress_mass).zip(&ingress_mass) {
        if m_eg <= 0.0 {
            continue;
        }
        let p = m_eg / egress_total;
        let (allowed, adversary) = if policy.operator_diverse {
            // Subtract rather than re-sum the others: O(1) per operator.
            let own_adversary = if op.adversary { m_in } else { 0.0 };
            (ingress_total - m_in, ingress_adversary - own_adversary)
        } else {
            (ingress_total, ingress_adversary)
        };
        // `allowed > 0` by eligibility; clamp rounding below zero.
        let p_ingress = (adversary / allowed).clamp(0.0, 1.0);
        odds.ingress += p * p_ingress;
        if op.adversary {
            odds.egress += p;
            odds.per_path += p * p_ingress;
        }
    }
    odds.ingress = odds.ingress.clamp(0.0, 1.0);
    odds.egress = odds.egress.clamp(0.0, 1.0);
    odds.per_path = odds.per_path.clamp(0.0, 1.0);
    Ok(odds)
}

/// `P(at least one of `paths` independent paths is compromised)` =
/// `1 - (1 - q)ⁿ`, computed as `-expm1(n · ln(1 - q))` so that tiny `q`
/// and huge `n` keep their precision.
pub fn prob_any(per_path: f64, paths: u64) -> f64 {
    if paths == 0 || per_path <= 0.0 {
        return 0.0;
    }
    if per_path >= 1.0 {
        return 1.0;
    }
    (-(paths as f64 * (-per_path).ln_1p()).exp_m1()).clamp(0.0, 1.0)
}

/// The fewest paths after which some path is compromised with probability
/// at least `target`: `n = ceil(ln(1 - p) / ln(1 - q))`, then corrected by
/// one step if float rounding put the ceiling on the wrong side. `None`
/// when `q = 0` (never); saturates at `u64::MAX`.
pub fn paths_to_target(per_path: f64, target: f64) -> Option<u64> {
    if per_path <= 0.0 || target <= 0.0 {
        return if target <= 0.0 { Some(0) } else { None };
    }
    if per_path >= 1.0 {
        return Some(1);
    }
    if target >= 1.0 {
        return None;
    }
    let ratio = (-target).ln_1p() / (-per_path).ln_1p();
    if !ratio.is_finite() || ratio >= u64::MAX as f64 {
        return Some(u64::MAX);
    }
    let mut n = (ratio.ceil() as u64).max(1);
    if n > 1 && prob_any(per_path, n - 1) >= target {
        n -= 1;
    } else if prob_any(per_path, n) < target {
        n = n.saturating_add(1);
    }
    Some(n)
}

/// The published formula for random selection with adversary share `s` of
/// the servers of each role: `(1 - s²)ⁿ = 1 - p`, solved for `n`.
pub fn random_closed_form_paths(share: f64, target: f64) -> Option<u64> {
    paths_to_target(share * share, target)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::policy::Weighting;
    use crate::population::Operator;
    use proptest::prelude::*;

    /// The literal definition: enumerate every (egress relay, ingress relay)
    /// pair with its selection probability.
    fn enumerate_pairs(pop: &Population, policy: Policy) -> Option<PathOdds> {
        let ops = pop.operators();
        let eligible = egress_eligible(pop, policy);
        let all = vec![true; ops.len()];
        let relays = |role: Role, keep: &[bool]| -> Vec<(usize, f64)> {
            let scales = operator_scales(pop, policy.weighting, role, keep);
            ops.iter()
                .enumerate()
                .filter(|(i, _)| keep[*i])
                .flat_map(|(i, o)| {
                    let scale = scales[i];
                    policy
                        .weighting
                        .relay_weights(o, role)
                        .map(move |w| (i, w * scale))
                })
                .collect()
        };
        let egress = relays(Role::Egress, &eligible);
        let ingress = relays(Role::Ingress, &all);
        let total_eg: f64 = egress.iter().map(|r| r.1).sum();
        if total_eg == 0.0 {
            return None;
        }
        let mut odds = PathOdds {
            ingress: 0.0,
            egress: 0.0,
            per_path: 0.0,
        };
        for &(oe, we) in &egress {
            let allowed = |oi: usize| !policy.operator_diverse || oi != oe;
            let total_in: f64 = ingress.iter().filter(|r| allowed(r.0)).map(|r| r.1).sum();
            for &(oi, wi) in ingress.iter().filter(|r| allowed(r.0)) {
                let p = we / total_eg * wi / total_in;
                if ops[oe].adversary {
                    odds.egress += p;
                }
                if ops[oi].adversary {
                    odds.ingress += p;
                    if ops[oe].adversary {
                        odds.per_path += p;
                    }
                }
            }
        }
        Some(odds)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 + 1e-9 * a.abs().max(b.abs())
    }

    #[test]
    fn reproduces_the_published_1733() {
        assert_eq!(random_closed_form_paths(0.02, 0.5), Some(1733));
        let pop = Population::uniform(100, 10, 0.02).unwrap();
        let odds = path_odds(&pop, Policy::RANDOM).unwrap();
        assert!(close(odds.per_path, 0.0004), "{odds:?}");
        assert_eq!(paths_to_target(odds.per_path, 0.5), Some(1733));
        assert!(prob_any(odds.per_path, 1733) >= 0.5);
        assert!(prob_any(odds.per_path, 1732) < 0.5);
    }

    #[test]
    fn paths_to_target_is_the_smallest_n() {
        for (q, p) in [
            (0.5, 0.75),
            (0.1, 0.5),
            (1e-6, 0.99),
            (0.3, 0.3),
            (0.999, 0.5),
        ] {
            let n = paths_to_target(q, p).unwrap();
            assert!(prob_any(q, n) >= p, "q={q} p={p} n={n}");
            assert!(n == 1 || prob_any(q, n - 1) < p, "q={q} p={p} n={n}");
        }
        assert_eq!(paths_to_target(0.0, 0.5), None);
        assert_eq!(paths_to_target(1.0, 0.5), Some(1));
        assert_eq!(paths_to_target(1e-300, 0.5), Some(u64::MAX));
    }

    #[test]
    fn operator_diversity_stops_a_single_operator_adversary() {
        let pop = Population::uniform(20, 3, 0.2).unwrap();
        for w in [
            Weighting::Relay,
            Weighting::Operator,
            Weighting::Stake,
            Weighting::Capped,
        ] {
            let policy = Policy {
                operator_diverse: true,
                weighting: w,
            };
            let odds = path_odds(&pop, policy).unwrap();
            assert_eq!(odds.per_path, 0.0, "{policy}");
            assert!(
                odds.ingress > 0.0 && odds.egress > 0.0,
                "{policy}: {odds:?}"
            );
            assert_eq!(prob_any(odds.per_path, u64::MAX), 0.0);
            assert_eq!(paths_to_target(odds.per_path, 0.5), None);
        }
    }

    #[test]
    fn sybil_splitting_gains_by_count_not_by_stake() {
        let pop = Population::uniform(100, 10, 0.02).unwrap();
        let s = 0.02;
        let mut last = (0.0, 0.0);
        for k in [1, 2, 5, 10, 20] {
            let split = pop.split_adversary(k).unwrap();
            let diverse = path_odds(&split, Policy::OPERATOR_DIVERSE).unwrap();
            let staked = path_odds(&split, Policy::STAKE_WEIGHTED).unwrap();
            // Counting operators: every identity is one more voice.
            assert!(diverse.per_path >= last.0, "k={k}");
            assert!(close(diverse.egress, k as f64 / (98 + k) as f64), "k={k}");
            // Stake: the adversary's chance to be picked (first, as the
            // egress) is its stake share, however it splits, and compromise
            // stays at most the random baseline s² (it tends to s² as k
            // grows: s²(k-1)/(k-s)).
            assert!(close(staked.egress, s), "k={k}: {staked:?}");
            assert!(
                staked.per_path <= s * s * (1.0 + 1e-12),
                "k={k}: {staked:?}"
            );
            let expected = s * s * (k as f64 - 1.0) / (k as f64 - s);
            assert!(close(staked.per_path, expected), "k={k}: {staked:?}");
            last = (diverse.per_path, staked.per_path);
        }
        // At 20 identities counting operators makes compromise ~50× the
        // random baseline; stake weighting keeps it below the baseline.
        assert!(last.0 > 40.0 * s * s, "{last:?}");
        assert!(last.1 < s * s);
    }

    /// Issue 11, item 7: two made-up operators claiming `u64::MAX` get at
    /// most the capped share of each role, so at most its square of paths.
    #[test]
    fn the_cap_bounds_an_attacker_pair_claiming_huge_bandwidth() {
        use openrelay_directory::weight::MAX_OPERATOR_SHARE;
        let mut ops: Vec<Operator> = (0..50)
            .map(|i| Operator {
                name: format!("honest-{i}"),
                adversary: false,
                ingress: vec![1000.0],
                egress: vec![1000.0],
            })
            .collect();
        ops.push(Operator {
            name: "evil-ingress".into(),
            adversary: true,
            ingress: vec![u64::MAX as f64 / 1e6],
            egress: vec![],
        });
        ops.push(Operator {
            name: "evil-egress".into(),
            adversary: true,
            ingress: vec![],
            egress: vec![u64::MAX as f64 / 1e6],
        });
        let pop = Population::new(ops).unwrap();
        let uncapped = path_odds(&pop, Policy::STAKE_WEIGHTED).unwrap();
        assert!(uncapped.per_path > 0.99, "{uncapped:?}");
        let capped = path_odds(&pop, Policy::CAPPED).unwrap();
        let c = MAX_OPERATOR_SHARE;
        // The egress is drawn at its capped share; the ingress at its capped
        // share among the ingresses an egress leaves (a little more after an
        // honest egress, whose own ingress is left out).
        assert!(close(capped.egress, c), "{capped:?}");
        assert!(
            capped.ingress >= c && capped.ingress <= c / (1.0 - 1.0 / 50.0),
            "{capped:?}"
        );
        assert!(close(capped.per_path, c * c), "{capped:?}");
    }

    #[test]
    fn paths_are_never_silently_same_operator() {
        let pop = Population::new(vec![
            Operator {
                name: "only".into(),
                adversary: true,
                ingress: vec![1.0],
                egress: vec![1.0],
            },
            Operator {
                name: "empty".into(),
                adversary: false,
                ingress: vec![],
                egress: vec![],
            },
        ])
        .unwrap();
        assert!(matches!(
            path_odds(&pop, Policy::STAKE_WEIGHTED),
            Err(SimError::NoValidPath(NoValidPath { policy })) if policy == Policy::STAKE_WEIGHTED
        ));
        assert_eq!(path_odds(&pop, Policy::RANDOM).unwrap().per_path, 1.0);
    }

    fn arb_population() -> impl Strategy<Value = Population> {
        proptest::collection::vec(
            (
                any::<bool>(),
                proptest::collection::vec(1.0f64..100.0, 0..4),
                proptest::collection::vec(1.0f64..100.0, 0..4),
            ),
            1..6,
        )
        .prop_filter_map("needs both roles and an adversary", |ops| {
            let ops = ops
                .into_iter()
                .enumerate()
                .map(|(i, (adversary, ingress, egress))| Operator {
                    name: format!("op{i}"),
                    adversary,
                    ingress,
                    egress,
                })
                .collect();
            Population::new(ops).ok()
        })
    }

    fn arb_policy() -> impl Strategy<Value = Policy> {
        (
            any::<bool>(),
            prop_oneof![
                Just(Weighting::Relay),
                Just(Weighting::Operator),
                Just(Weighting::Stake),
                Just(Weighting::Capped)
            ],
        )
            .prop_map(|(operator_diverse, weighting)| Policy {
                operator_diverse,
                weighting,
            })
    }

    proptest! {
        #[test]
        fn grouped_sum_equals_pair_enumeration(pop in arb_population(), policy in arb_policy()) {
            let literal = enumerate_pairs(&pop, policy);
            match path_odds(&pop, policy) {
                Ok(odds) => {
                    let literal = literal.unwrap();
                    prop_assert!(close(odds.per_path, literal.per_path), "{odds:?} {literal:?}");
                    prop_assert!(close(odds.ingress, literal.ingress), "{odds:?} {literal:?}");
                    prop_assert!(close(odds.egress, literal.egress), "{odds:?} {literal:?}");
                }
                Err(_) => prop_assert!(literal.is_none()),
            }
        }

        #[test]
        fn monotone_in_paths(q in 0.0f64..=1.0, n in 0u64..1_000_000, extra in 1u64..1000) {
            prop_assert!(prob_any(q, n) <= prob_any(q, n + extra));
        }

        #[test]
        fn monotone_in_share(a in 0.001f64..0.999, b in 0.001f64..0.999, n in 1u64..100_000) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(prob_any(lo * lo, n) <= prob_any(hi * hi, n));
            if let (Some(x), Some(y)) = (random_closed_form_paths(lo, 0.5), random_closed_form_paths(hi, 0.5)) {
                prop_assert!(x >= y);
            }
        }

        #[test]
        fn more_adversary_relays_never_lower_compromise(
            slots in 5usize..40, more in 1usize..5, policy in arb_policy(),
        ) {
            let base = Population::uniform(slots, 2, 2.0 / (2 * slots) as f64).unwrap();
            let bigger = Population::uniform(slots, 2, (2 + more).min(2 * slots - 1) as f64 / (2 * slots) as f64).unwrap();
            for k in [1, 2] {
                let (a, b) = (base.split_adversary(k).unwrap(), bigger.split_adversary(k).unwrap());
                if let (Ok(x), Ok(y)) = (path_odds(&a, policy), path_odds(&b, policy)) {
                    prop_assert!(x.per_path <= y.per_path + 1e-15, "{policy} k={k}: {x:?} {y:?}");
                }
            }
        }
    }
}
