//! One simulator run: the selected scenario and the comparison of policies,
//! rendered as text or JSON. Returns strings; printing is the caller's.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::error::{NoValidPath, PopulationError, SimError};
use crate::exact::{PathOdds, path_odds, paths_to_target, prob_any, random_closed_form_paths};
use crate::monte_carlo::{Estimate, estimate};
use crate::policy::Policy;
use crate::population::{Population, Summary, check_share};

/// Where the relay population comes from.
#[derive(Debug, Clone)]
pub enum PopulationSource {
    /// [`Population::uniform`]: `operators × relays_per_operator` relays per
    /// role, the adversary holding `adversary_share` of them as one operator.
    Uniform {
        /// Operators' worth of relays.
        operators: usize,
        /// Relays per operator and role.
        relays_per_operator: usize,
        /// The adversary's share of the servers of each role.
        adversary_share: f64,
    },
    /// A population file ([`Population::load`]).
    File(PathBuf),
    /// A directory file ([`Population::from_directory`]) and the operator
    /// keys the adversary controls (none: the heaviest operator).
    Directory {
        /// The file: a signed directory or a directory body.
        path: PathBuf,
        /// Operator keys (`ed25519:…`).
        adversaries: Vec<String>,
    },
    /// A population built in code.
    Given(Population),
}

/// What to simulate. Fields mirror the `openrelay sim` flags.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// The selected policy (`--policy`, `--stake-weighted`).
    pub policy: Policy,
    /// The relays (`--operators`, `--relays-per-operator`,
    /// `--adversary-share`, `--population`).
    pub population: PopulationSource,
    /// Split the adversary into this many identities for the selected
    /// policy and the comparison's Sybil rows (`--sybil-identities`).
    /// `None`: the selected policy sees the adversary as given, the
    /// comparison splits it into [`DEFAULT_SYBIL_IDENTITIES`] (or as many
    /// as it has relays, if fewer).
    pub sybil_identities: Option<usize>,
    /// The probability of compromise whose path count is reported
    /// (`--target-probability`).
    pub target_probability: f64,
    /// The number of paths at which probabilities are reported (`--paths`).
    /// `None`: the random policy's paths to the target (the published
    /// figure), or [`FALLBACK_PATHS`] if random never reaches it.
    pub paths: Option<u64>,
    /// Monte Carlo runs per scenario; 0 skips Monte Carlo (`--trials`).
    pub trials: u64,
    /// The Monte Carlo seed; every scenario starts from it (`--seed`).
    pub seed: u64,
}

/// Sybil identities in the comparison when none are asked for.
pub const DEFAULT_SYBIL_IDENTITIES: usize = 10;
/// Paths reported when neither asked for nor derivable.
pub const FALLBACK_PATHS: u64 = 1000;
/// Monte Carlo runs per scenario by default: a 95% interval of at most
/// ±2.2 percentage points, in well under a second per scenario.
pub const DEFAULT_TRIALS: u64 = 2000;
/// At most this many paths per Monte Carlo run and this many runs: beyond,
/// a run would take hours, so it is refused rather than left hanging.
pub const MAX_MONTE_CARLO_DRAWS: u64 = 50_000_000_000;

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            policy: Policy::RANDOM,
            population: PopulationSource::Uniform {
                operators: 100,
                relays_per_operator: 10,
                adversary_share: 0.02,
            },
            sybil_identities: None,
            target_probability: 0.5,
            paths: None,
            trials: DEFAULT_TRIALS,
            seed: 1,
        }
    }
}

/// How the adversary appears in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adversary {
    /// As the population gives it, in this many operator identities.
    AsGiven(usize),
    /// Split into this many Sybil identities.
    Sybil(usize),
}

impl Adversary {
    /// E.g. `1 operator`, `10 identities`.
    pub fn label(self) -> String {
        match self {
            Adversary::AsGiven(1) => "1 operator".to_owned(),
            Adversary::AsGiven(n) => format!("{n} operators"),
            Adversary::Sybil(1) => "1 identity".to_owned(),
            Adversary::Sybil(n) => format!("{n} identities"),
        }
    }

    /// The number of identities.
    pub fn identities(self) -> usize {
        match self {
            Adversary::AsGiven(n) | Adversary::Sybil(n) => n,
        }
    }
}

/// The numbers of one scenario (a policy and an adversary form).
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// The policy.
    pub policy: Policy,
    /// The adversary's form.
    pub adversary: Adversary,
    /// Exact per-path probabilities, or why the policy has no path here.
    pub odds: Result<PathOdds, NoValidPath>,
    /// Exact `P(some path of n compromised)`.
    pub after_n: f64,
    /// Exact paths until the target probability; `None`: never.
    pub paths_to_target: Option<u64>,
    /// The Monte Carlo estimate of `after_n`, if trials were asked for.
    pub monte_carlo: Option<Estimate>,
}

/// The result of [`run`].
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The population as built (before any Sybil split).
    pub population: Summary,
    /// The adversary share asked for, for a built population.
    pub requested_share: Option<f64>,
    /// The target probability.
    pub target: f64,
    /// The number of paths `n` probabilities are reported at.
    pub paths: u64,
    /// The selected scenario.
    pub selected: Scenario,
    /// Sybil identities in the comparison's split rows.
    pub sybil_identities: usize,
    /// Every compared policy, adversary as given, then split.
    pub comparison: Vec<Scenario>,
}

/// Builds the population and computes every scenario.
pub fn run(options: &SimOptions) -> Result<Report, SimError> {
    let target = options.target_probability;
    if !(target.is_finite() && target > 0.0 && target < 1.0) {
        return Err(SimError::parameter(
            "--target-probability",
            format!("must be strictly between 0 and 1, not {target}"),
        ));
    }
    let (population, requested_share) = match &options.population {
        PopulationSource::Uniform {
            operators,
            relays_per_operator,
            adversary_share,
        } => (
            Population::uniform(*operators, *relays_per_operator, *adversary_share)?,
            Some(*adversary_share),
        ),
        PopulationSource::File(path) => (Population::load(path)?, None),
        PopulationSource::Directory { path, adversaries } => {
            let bytes = std::fs::read(path).map_err(|source| PopulationError::Read {
                path: path.clone(),
                source,
            })?;
            let population = Population::from_directory(&bytes, adversaries)
                .map_err(|e| e.with_origin(&path.display().to_string()))?;
            (population, None)
        }
        PopulationSource::Given(population) => (population.clone(), None),
    };
    let summary = population.summary();
    let as_given = Adversary::AsGiven(summary.adversary_operators);
    let most = summary.adversary_ingress.max(summary.adversary_egress);
    let sybil_identities = match options.sybil_identities {
        Some(k) => k,
        None => DEFAULT_SYBIL_IDENTITIES.min(most).max(1),
    };
    let split = population.split_adversary(sybil_identities)?;
    let paths = match options.paths {
        Some(n) => n,
        None => path_odds(&population, Policy::RANDOM)
            .ok()
            .and_then(|odds| paths_to_target(odds.per_path, target))
            .filter(|&n| n <= MAX_MONTE_CARLO_DRAWS)
            .unwrap_or(FALLBACK_PATHS),
    };
    if options.trials > 0 && options.trials.saturating_mul(paths) > MAX_MONTE_CARLO_DRAWS {
        return Err(SimError::parameter(
            "--trials",
            format!(
                "{} trials × {paths} paths exceeds {MAX_MONTE_CARLO_DRAWS} draws; use fewer trials or paths (0 trials skips Monte Carlo)",
                options.trials
            ),
        ));
    }
    let scenario = |policy: Policy, adversary: Adversary| -> Result<Scenario, SimError> {
        let pop = match adversary {
            Adversary::AsGiven(_) => &population,
            Adversary::Sybil(_) => &split,
        };
        let odds = match path_odds(pop, policy) {
            Ok(odds) => odds,
            Err(SimError::NoValidPath(none)) => {
                return Ok(Scenario {
                    policy,
                    adversary,
                    odds: Err(none),
                    after_n: 0.0,
                    paths_to_target: None,
                    monte_carlo: None,
                });
            }
            Err(e) => return Err(e),
        };
        let monte_carlo = if options.trials > 0 {
            Some(estimate(pop, policy, paths, options.trials, options.seed)?)
        } else {
            None
        };
        Ok(Scenario {
            policy,
            adversary,
            odds: Ok(odds),
            after_n: prob_any(odds.per_path, paths),
            paths_to_target: paths_to_target(odds.per_path, target),
            monte_carlo,
        })
    };
    let mut forms = vec![as_given];
    // Splitting one operator into one identity would repeat the rows.
    if !(sybil_identities == 1 && summary.adversary_operators == 1) {
        forms.push(Adversary::Sybil(sybil_identities));
    }
    let mut comparison = Vec::new();
    for policy in Policy::COMPARED {
        for &form in &forms {
            comparison.push(scenario(policy, form)?);
        }
    }
    let selected_form = match options.sybil_identities {
        Some(k) => Adversary::Sybil(k),
        None => as_given,
    };
    let selected = match comparison
        .iter()
        .find(|s| s.policy == options.policy && s.adversary == selected_form)
    {
        Some(s) => s.clone(),
        None => scenario(options.policy, selected_form)?,
    };
    if let Err(none) = selected.odds {
        return Err(none.into());
    }
    Ok(Report {
        population: summary,
        requested_share,
        target,
        paths,
        selected,
        sybil_identities,
        comparison,
    })
}

/// The closed form checked against: for a built population under the
/// random policy, the published `(1 - s²)ⁿ = 1 - p` solved for `n`.
pub fn closed_form(report: &Report) -> Option<(f64, Option<u64>)> {
    let share = report.requested_share?;
    check_share(share).ok()?;
    Some((share, random_closed_form_paths(share, report.target)))
}

fn describe(policy: Policy) -> String {
    use crate::policy::Weighting;
    let pick = match policy.weighting {
        Weighting::Relay => "each relay equally likely",
        Weighting::Operator => "each operator equally likely, then one of its relays",
        Weighting::Stake => "relays in proportion to advertised bandwidth (stake)",
        Weighting::Capped => {
            "relays by bandwidth clipped to 10 Gbit/s, no operator above max(10 %, 1/k) of a draw (openrelay's clients)"
        }
    };
    if policy.operator_diverse {
        format!("egress, then an ingress of another operator; {pick}")
    } else {
        format!("egress and ingress drawn independently; {pick}")
    }
}

fn paths_text(n: Option<u64>) -> String {
    n.map_or_else(|| "never".to_owned(), |n| n.to_string())
}

fn prob_text(p: f64) -> String {
    if p == 0.0 {
        "0".to_owned()
    } else {
        format!("{p:.4}")
    }
}

fn mc_text(mc: &Estimate) -> String {
    let (lo, hi) = mc.interval();
    format!(
        "{} [{}, {}]",
        prob_text(mc.value()),
        prob_text(lo),
        prob_text(hi)
    )
}

impl Report {
    /// The text report: a summary of the selected scenario with a
    /// `paths=<n>` line, then the comparison table.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let p = &self.population;
        let _ = writeln!(
            out,
            "population: {} operators, {} ingress and {} egress relays; adversary: {} operator{} with {} ingress and {} egress relays ({} and {} of relays, {} and {} of stake)",
            p.operators,
            p.ingress,
            p.egress,
            p.adversary_operators,
            if p.adversary_operators == 1 { "" } else { "s" },
            p.adversary_ingress,
            p.adversary_egress,
            percent(p.adversary_ingress as f64 / p.ingress as f64),
            percent(p.adversary_egress as f64 / p.egress as f64),
            percent(p.adversary_ingress_stake),
            percent(p.adversary_egress_stake),
        );
        let s = &self.selected;
        let _ = writeln!(
            out,
            "policy: {} ({}); adversary as {}",
            s.policy,
            describe(s.policy),
            s.adversary.label()
        );
        if let Ok(odds) = &s.odds {
            let _ = writeln!(
                out,
                "per-path probability of compromise (exact): q = {} (ingress adversarial {}, egress adversarial {})",
                if odds.per_path == 0.0 {
                    "0".to_owned()
                } else {
                    format!("{:.6e}", odds.per_path)
                },
                prob_text(odds.ingress),
                prob_text(odds.egress)
            );
        }
        if let Some((share, n)) = closed_form(self)
            && s.policy == Policy::RANDOM
        {
            let _ = writeln!(
                out,
                "published formula (1 - s^2)^n = 1 - p with s = {share}, p = {}: n = {}",
                self.target,
                paths_text(n)
            );
        }
        let _ = writeln!(out, "paths={}", paths_text(s.paths_to_target));
        let _ = writeln!(
            out,
            "  (fewest paths for P(at least one path compromised) >= {})",
            self.target
        );
        let _ = write!(
            out,
            "after n = {} paths: exact {}",
            self.paths,
            prob_text(s.after_n)
        );
        if let Some(mc) = &s.monte_carlo {
            let _ = write!(
                out,
                ", Monte Carlo {} (95% CI; {} trials, seed {})",
                mc_text(mc),
                mc.trials,
                mc.seed
            );
        }
        out.push_str("\n\n");
        let _ = writeln!(
            out,
            "comparison at n = {} paths, target p = {}; the split rows show the adversary's relays and stake spread over {} Sybil identities:",
            self.paths, self.target, self.sybil_identities
        );
        let header = [
            "policy",
            "adversary",
            "P(ingress)",
            "P(egress)",
            "per-path q",
            "P(any of n)",
            "paths to p",
            "Monte Carlo [95% CI]",
        ];
        let mut rows = vec![header.map(str::to_owned).to_vec()];
        for sc in &self.comparison {
            let mut row = vec![sc.policy.to_string(), sc.adversary.label()];
            match &sc.odds {
                Ok(odds) => {
                    row.push(prob_text(odds.ingress));
                    row.push(prob_text(odds.egress));
                    row.push(if odds.per_path == 0.0 {
                        "0".to_owned()
                    } else {
                        format!("{:.3e}", odds.per_path)
                    });
                    row.push(prob_text(sc.after_n));
                    row.push(paths_text(sc.paths_to_target));
                    row.push(
                        sc.monte_carlo
                            .as_ref()
                            .map_or_else(|| "-".to_owned(), mc_text),
                    );
                }
                Err(_) => {
                    row.push("no valid path".to_owned());
                    row.extend(std::iter::repeat_n("-".to_owned(), 5));
                }
            }
            rows.push(row);
        }
        let widths: Vec<usize> = (0..header.len())
            .map(|c| {
                rows.iter()
                    .map(|r| r.get(c).map_or(0, |x| x.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in &rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                let w = widths.get(c).copied().unwrap_or(0);
                // Text columns left-aligned, numbers right-aligned.
                if c < 2 {
                    let _ = write!(line, "{cell:<w$}  ");
                } else {
                    let _ = write!(line, "{cell:>w$}  ");
                }
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let _ = writeln!(
            out,
            "P(ingress), P(egress): chance that a path's ingress (egress) is the adversary's; per-path q: both are (exact)."
        );
        if let Some(mc) = self.comparison.iter().find_map(|sc| sc.monte_carlo) {
            let _ = writeln!(
                out,
                "Monte Carlo: {} runs of n paths per scenario, each from seed {} (rows that differ only in identities the policy ignores agree exactly); 95% Wilson interval.",
                mc.trials, mc.seed
            );
        }
        let _ = writeln!(
            out,
            "random: {}\noperator-diverse: {}\nstake-weighted: {}\ncapped: {}",
            describe(Policy::RANDOM),
            describe(Policy::OPERATOR_DIVERSE),
            describe(Policy::STAKE_WEIGHTED),
            describe(Policy::CAPPED)
        );
        out
    }

    /// One JSON object with everything in the text report (no external
    /// dependency: the values are numbers and fixed names).
    pub fn to_json(&self) -> String {
        let p = &self.population;
        let mut out = String::from("{");
        let _ = write!(
            out,
            "\"population\":{{\"operators\":{},\"ingress_relays\":{},\"egress_relays\":{},\"adversary_operators\":{},\"adversary_ingress_relays\":{},\"adversary_egress_relays\":{},\"adversary_ingress_stake_share\":{},\"adversary_egress_stake_share\":{}}}",
            p.operators,
            p.ingress,
            p.egress,
            p.adversary_operators,
            p.adversary_ingress,
            p.adversary_egress,
            num(p.adversary_ingress_stake),
            num(p.adversary_egress_stake),
        );
        let _ = write!(
            out,
            ",\"requested_adversary_share\":{},\"target_probability\":{},\"n\":{},\"paths\":{}",
            self.requested_share.map_or_else(|| "null".to_owned(), num),
            num(self.target),
            self.paths,
            self.selected
                .paths_to_target
                .map_or_else(|| "null".to_owned(), |n| n.to_string()),
        );
        if let Some((share, n)) = closed_form(self) {
            let _ = write!(
                out,
                ",\"published_formula\":{{\"share\":{},\"paths\":{}}}",
                num(share),
                n.map_or_else(|| "null".to_owned(), |n| n.to_string())
            );
        }
        let _ = write!(
            out,
            ",\"selected\":{},\"sybil_identities\":{},\"comparison\":[",
            scenario_json(&self.selected),
            self.sybil_identities
        );
        for (i, sc) in self.comparison.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&scenario_json(sc));
        }
        out.push_str("]}");
        out
    }
}

fn percent(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// A JSON number (`null` for a non-finite value, which cannot occur).
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".to_owned()
    }
}

fn scenario_json(sc: &Scenario) -> String {
    let mut out = format!(
        "{{\"policy\":\"{}\",\"operator_diverse\":{},\"weighting\":\"{}\",\"adversary\":\"{}\",\"identities\":{},\"sybil\":{}",
        sc.policy,
        sc.policy.operator_diverse,
        sc.policy.weighting.as_str(),
        sc.adversary.label(),
        sc.adversary.identities(),
        matches!(sc.adversary, Adversary::Sybil(_)),
    );
    match &sc.odds {
        Ok(odds) => {
            let _ = write!(
                out,
                ",\"valid\":true,\"p_ingress\":{},\"p_egress\":{},\"per_path\":{},\"p_any_of_n\":{},\"paths_to_target\":{}",
                num(odds.ingress),
                num(odds.egress),
                num(odds.per_path),
                num(sc.after_n),
                sc.paths_to_target
                    .map_or_else(|| "null".to_owned(), |n| n.to_string()),
            );
        }
        Err(_) => out.push_str(",\"valid\":false"),
    }
    if let Some(mc) = &sc.monte_carlo {
        let (lo, hi) = mc.interval();
        let _ = write!(
            out,
            ",\"monte_carlo\":{{\"trials\":{},\"hits\":{},\"seed\":{},\"estimate\":{},\"ci95_low\":{},\"ci95_high\":{}}}",
            mc.trials,
            mc.hits,
            mc.seed,
            num(mc.value()),
            num(lo),
            num(hi)
        );
    }
    out.push('}');
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn quick() -> SimOptions {
        SimOptions {
            trials: 0,
            ..SimOptions::default()
        }
    }

    #[test]
    fn headline_prints_paths_1733() {
        let report = run(&quick()).unwrap();
        assert_eq!(report.selected.paths_to_target, Some(1733));
        assert_eq!(report.paths, 1733);
        let text = report.render_text();
        assert!(text.lines().any(|l| l == "paths=1733"), "{text}");
        assert!(text.contains("n = 1733"), "{text}");
        assert_eq!(report.comparison.len(), 8);
    }

    #[test]
    fn comparison_shows_diversity_and_stake_effects() {
        let report = run(&quick()).unwrap();
        let q = |policy: Policy, sybil: bool| {
            report
                .comparison
                .iter()
                .find(|s| s.policy == policy && matches!(s.adversary, Adversary::Sybil(_)) == sybil)
                .unwrap()
                .odds
                .unwrap()
                .per_path
        };
        let baseline = q(Policy::RANDOM, false);
        assert_eq!(q(Policy::OPERATOR_DIVERSE, false), 0.0);
        assert_eq!(q(Policy::STAKE_WEIGHTED, false), 0.0);
        assert!(q(Policy::OPERATOR_DIVERSE, true) > 10.0 * baseline);
        assert!(q(Policy::STAKE_WEIGHTED, true) <= baseline);
        assert!(q(Policy::CAPPED, true) <= baseline);
    }

    #[test]
    fn json_is_one_object_with_the_paths() {
        let report = run(&SimOptions {
            trials: 10,
            paths: Some(50),
            ..SimOptions::default()
        })
        .unwrap();
        let json = report.to_json();
        assert!(json.starts_with('{') && json.ends_with('}'));
        assert!(json.contains("\"paths\":1733"), "{json}");
        assert!(json.contains("\"n\":50"), "{json}");
        assert_eq!(json.matches("\"monte_carlo\"").count(), 9);
        assert_eq!(json.matches('{').count(), json.matches('}').count());
        assert!(!json.contains("NaN") && !json.contains("inf"));
    }

    #[test]
    fn parameters_are_checked() {
        for options in [
            SimOptions {
                target_probability: 1.0,
                ..quick()
            },
            SimOptions {
                sybil_identities: Some(0),
                ..quick()
            },
            SimOptions {
                population: PopulationSource::Uniform {
                    operators: 100,
                    relays_per_operator: 10,
                    adversary_share: -0.1,
                },
                ..quick()
            },
            SimOptions {
                trials: u64::MAX,
                ..quick()
            },
        ] {
            let e = run(&options).unwrap_err();
            assert!(matches!(e, SimError::Parameter { .. }), "{e:?}");
            assert!(e.to_string().starts_with("--"), "{e}");
        }
    }

    #[test]
    fn selected_sybil_scenario_and_other_weightings() {
        let report = run(&SimOptions {
            policy: Policy::RANDOM.with_weighting(crate::policy::Weighting::Stake),
            sybil_identities: Some(4),
            ..quick()
        })
        .unwrap();
        assert_eq!(report.selected.adversary, Adversary::Sybil(4));
        assert_eq!(report.sybil_identities, 4);
        assert_eq!(report.selected.paths_to_target, Some(1733));
        assert!(report.render_text().contains("random/stake"));
    }
}
