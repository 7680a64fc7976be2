//! Monte Carlo estimate: draw paths the way a client would and count.
//!
//! This deliberately shares no algebra with [`crate::exact`]: each path is
//! drawn relay by relay as a client draws it, egress first (alias tables over
//! relay weights, operator caps applied as factors), the ingress of an
//! operator-diverse path by rejecting same-operator draws, and a trial is
//! `n` such paths, a hit if any of them has an adversarial ingress and
//! egress. Agreement of the two within the confidence interval is then
//! evidence for both. Seeded with `fastrand`, so a run is reproducible.

use crate::error::SimError;
use crate::exact::{egress_eligible, no_valid_path, role_masses};
use crate::policy::{Policy, operator_scales};
use crate::population::{Population, Role};

/// 97.5th percentile of the standard normal: a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

/// The outcome of `trials` simulated runs of `paths` paths each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Runs simulated.
    pub trials: u64,
    /// Runs in which at least one path was compromised.
    pub hits: u64,
    /// Paths per run.
    pub paths: u64,
    /// The seed of the random generator.
    pub seed: u64,
}

impl Estimate {
    /// The estimated probability, `hits / trials` (0 for no trials).
    pub fn value(&self) -> f64 {
        if self.trials == 0 {
            0.0
        } else {
            self.hits as f64 / self.trials as f64
        }
    }

    /// The 95% Wilson score interval. Chosen over the textbook
    /// `p ± 1.96·√(p(1-p)/T)` because that one collapses to a point when
    /// no trial (or every trial) hits, which is exactly the operator-
    /// diversity case (`q = 0`) this simulator is about.
    pub fn interval(&self) -> (f64, f64) {
        if self.trials == 0 {
            return (0.0, 1.0);
        }
        let t = self.trials as f64;
        let p = self.value();
        let z2 = Z95 * Z95;
        let denom = 1.0 + z2 / t;
        let center = (p + z2 / (2.0 * t)) / denom;
        let half = Z95 * (p * (1.0 - p) / t + z2 / (4.0 * t * t)).sqrt() / denom;
        let low = if self.hits == 0 {
            0.0
        } else {
            (center - half).max(0.0)
        };
        let high = if self.hits == self.trials {
            1.0
        } else {
            (center + half).min(1.0)
        };
        (low, high)
    }

    /// Whether `p` lies in the 95% interval.
    pub fn contains(&self, p: f64) -> bool {
        let (low, high) = self.interval();
        low <= p && p <= high
    }
}

/// Simulates `trials` runs of `paths` independent paths under `policy`,
/// starting from `seed`. Costs up to `trials × paths` path draws (a run
/// stops at its first compromised path).
pub fn estimate(
    population: &Population,
    policy: Policy,
    paths: u64,
    trials: u64,
    seed: u64,
) -> Result<Estimate, SimError> {
    let sampler = Sampler::new(population, policy)?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut hits = 0;
    for _ in 0..trials {
        for _ in 0..paths {
            if sampler.compromised(&mut rng) {
                hits += 1;
                break;
            }
        }
    }
    Ok(Estimate {
        trials,
        hits,
        paths,
        seed,
    })
}

/// Walker's alias table (Vose's construction): O(1) weighted draws.
#[derive(Debug)]
struct Alias {
    prob: Vec<f64>,
    alias: Vec<usize>,
}

impl Alias {
    /// `weights` non-empty, each positive and finite.
    fn new(weights: &[f64]) -> Alias {
        let n = weights.len();
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = weights.iter().map(|w| w * n as f64 / total).collect();
        let mut prob = vec![1.0; n];
        let mut alias: Vec<usize> = (0..n).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s];
            alias[s] = l;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        // Whatever is left is 1 up to rounding: keep prob 1, alias itself.
        Alias { prob, alias }
    }

    fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let i = rng.usize(..self.prob.len());
        if rng.f64() < self.prob[i] {
            i
        } else {
            self.alias[i]
        }
    }
}

/// Relays of one role as a weighted table, each draw giving the operator.
#[derive(Debug)]
struct Table {
    alias: Alias,
    owner: Vec<usize>,
}

impl Table {
    /// The relays of the operators `include` accepts, their weights scaled
    /// by each operator's cap factor among the operators `cap_over` marks;
    /// `None` if no relay is included.
    fn new(
        population: &Population,
        policy: Policy,
        role: Role,
        cap_over: &[bool],
        include: impl Fn(usize) -> bool,
    ) -> Option<Table> {
        let scales = operator_scales(population, policy.weighting, role, cap_over);
        let (owner, weights): (Vec<usize>, Vec<f64>) = population
            .operators()
            .iter()
            .enumerate()
            .filter(|(i, _)| include(*i))
            .flat_map(|(i, op)| {
                let scale = scales[i];
                policy
                    .weighting
                    .relay_weights(op, role)
                    .map(move |w| (i, w * scale))
            })
            .unzip();
        (!owner.is_empty()).then(|| Table {
            alias: Alias::new(&weights),
            owner,
        })
    }

    fn operator(&self, rng: &mut fastrand::Rng) -> usize {
        self.owner[self.alias.sample(rng)]
    }
}

/// Draws paths under one policy.
#[derive(Debug)]
struct Sampler {
    operator_diverse: bool,
    adversary: Vec<bool>,
    egress: Table,
    ingress: Table,
    /// With operator diversity, the ingress table without the one operator
    /// (if any) that holds more than half the ingress weight: rejection
    /// after its egress relays would take many draws. (Weights as in
    /// `ingress`, only that operator left out.)
    dominant: Option<(usize, Table)>,
}

impl Sampler {
    fn new(population: &Population, policy: Policy) -> Result<Sampler, SimError> {
        let eligible = egress_eligible(population, policy);
        let all = vec![true; population.operators().len()];
        let egress = Table::new(population, policy, Role::Egress, &eligible, |i| eligible[i])
            .ok_or_else(|| no_valid_path(policy))?;
        let ingress = Table::new(population, policy, Role::Ingress, &all, |_| true)
            .ok_or_else(|| no_valid_path(policy))?;
        let mass = role_masses(population, policy, Role::Ingress, &all);
        let total: f64 = mass.iter().sum();
        let dominant = if policy.operator_diverse {
            mass.iter().position(|&m| m > total / 2.0).and_then(|d| {
                Some((
                    d,
                    Table::new(population, policy, Role::Ingress, &all, |i| i != d)?,
                ))
            })
        } else {
            None
        };
        Ok(Sampler {
            operator_diverse: policy.operator_diverse,
            adversary: population
                .operators()
                .iter()
                .map(|op| op.adversary)
                .collect(),
            egress,
            ingress,
            dominant,
        })
    }

    /// Draws one path; true if the adversary holds both of its relays.
    fn compromised(&self, rng: &mut fastrand::Rng) -> bool {
        let egress = self.egress.operator(rng);
        let ingress = match &self.dominant {
            Some((d, table)) if *d == egress => table.operator(rng),
            _ => loop {
                let ingress = self.ingress.operator(rng);
                if !self.operator_diverse || ingress != egress {
                    break ingress;
                }
            },
        };
        self.adversary[ingress] && self.adversary[egress]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::exact::{path_odds, prob_any};
    use crate::population::Operator;

    #[test]
    fn alias_draws_follow_the_weights() {
        let weights = [1.0, 2.0, 3.0, 0.5, 10.0];
        let alias = Alias::new(&weights);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts = [0u32; 5];
        let draws = 200_000;
        for _ in 0..draws {
            counts[alias.sample(&mut rng)] += 1;
        }
        let total: f64 = weights.iter().sum();
        for (c, w) in counts.iter().zip(weights) {
            let expected = w / total;
            let got = f64::from(*c) / f64::from(draws);
            assert!((got - expected).abs() < 0.005, "{got} vs {expected}");
        }
    }

    #[test]
    fn wilson_interval_behaves_at_the_edges() {
        let none = Estimate {
            trials: 1000,
            hits: 0,
            paths: 1,
            seed: 0,
        };
        let (lo, hi) = none.interval();
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 0.01, "{hi}");
        assert!(none.contains(0.0));
        let all = Estimate { hits: 1000, ..none };
        assert_eq!(all.interval().1, 1.0);
        let half = Estimate { hits: 500, ..none };
        let (lo, hi) = half.interval();
        assert!(
            (lo - 0.469).abs() < 0.001 && (hi - 0.531).abs() < 0.001,
            "{lo} {hi}"
        );
    }

    /// The exact value lies in the Monte Carlo 95% interval, for every
    /// compared policy, with and without Sybil splitting, on a population
    /// where compromise is likely enough to be measured in a few thousand
    /// short runs. Fixed seed: the test is deterministic.
    #[test]
    fn exact_agrees_with_monte_carlo() {
        let base = Population::uniform(20, 3, 0.1).unwrap();
        let paths = 30;
        for pop in [base.clone(), base.split_adversary(3).unwrap()] {
            for policy in Policy::COMPARED {
                let exact = prob_any(path_odds(&pop, policy).unwrap().per_path, paths);
                let mc = estimate(&pop, policy, paths, 4000, 42).unwrap();
                assert!(
                    mc.contains(exact),
                    "{policy}: exact {exact}, estimate {} {:?}",
                    mc.value(),
                    mc.interval()
                );
            }
        }
    }

    #[test]
    fn a_dominant_operator_is_sampled_without_endless_rejection() {
        let pop = Population::new(vec![
            Operator {
                name: "big".into(),
                adversary: true,
                ingress: vec![1.0; 5],
                egress: vec![1000.0; 5],
            },
            Operator {
                name: "small".into(),
                adversary: false,
                ingress: vec![1.0],
                egress: vec![1.0],
            },
            Operator {
                name: "sybil".into(),
                adversary: true,
                ingress: vec![1.0],
                egress: vec![1.0],
            },
        ])
        .unwrap();
        let policy = Policy::STAKE_WEIGHTED;
        let exact = prob_any(path_odds(&pop, policy).unwrap().per_path, 3);
        let mc = estimate(&pop, policy, 3, 4000, 1).unwrap();
        assert!(mc.contains(exact), "{exact} {:?}", mc.interval());
    }

    #[test]
    fn same_seed_same_estimate() {
        let pop = Population::uniform(10, 2, 0.2)
            .unwrap()
            .split_adversary(2)
            .unwrap();
        let a = estimate(&pop, Policy::OPERATOR_DIVERSE, 10, 500, 9).unwrap();
        let b = estimate(&pop, Policy::OPERATOR_DIVERSE, 10, 500, 9).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn single_operator_adversary_is_never_hit_with_diversity() {
        let pop = Population::uniform(10, 2, 0.3).unwrap();
        let mc = estimate(&pop, Policy::OPERATOR_DIVERSE, 200, 200, 3).unwrap();
        assert_eq!(mc.hits, 0);
    }
}
