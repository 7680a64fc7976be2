//! `openrelay sim`: the collusion simulator.

use std::path::PathBuf;

use anyhow::Context;

/// Flags of `openrelay sim`; the model is in docs/collusion.md.
#[derive(Debug, clap::Args)]
pub(crate) struct SimArgs {
    /// Selection policy: random, operator-diverse, stake-weighted or capped
    /// (what openrelay clients do: clipped bandwidth, operator shares capped).
    #[arg(long, default_value = "random")]
    policy: openrelay_sim::Policy,
    /// Weight the selected policy's choice by advertised bandwidth (stake).
    #[arg(long)]
    stake_weighted: bool,
    /// The adversary's share of the relays of each role (built population; default 0.02).
    #[arg(long, conflicts_with = "population")]
    adversary_share: Option<f64>,
    /// Report the number of paths until this probability of compromise.
    #[arg(long, default_value_t = 0.5)]
    target_probability: f64,
    /// Report probabilities after N paths (default: random's paths to the target).
    #[arg(long, value_name = "N")]
    paths: Option<u64>,
    /// Monte Carlo runs per scenario (0: exact values only).
    #[arg(long, value_name = "T", default_value_t = openrelay_sim::report::DEFAULT_TRIALS)]
    trials: u64,
    /// Monte Carlo seed.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Built population: operators' worth of relays.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        conflicts_with = "population"
    )]
    operators: usize,
    /// Built population: relays per operator and role.
    #[arg(
        long,
        value_name = "R",
        default_value_t = 10,
        conflicts_with = "population"
    )]
    relays_per_operator: usize,
    /// Split the adversary into K operator identities (a Sybil).
    #[arg(long, value_name = "K")]
    sybil_identities: Option<usize>,
    /// A population file (TOML; see crates/sim/examples/population.toml).
    #[arg(long, value_name = "FILE", conflicts_with = "directory")]
    population: Option<PathBuf>,
    /// The population a directory lists (a signed directory as the registry
    /// serves it and clients cache it, or a directory body), weighted as
    /// clients weigh it (stake-capped in a directory with a chain section).
    /// Signatures are not checked.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["operators", "relays_per_operator", "adversary_share"])]
    directory: Option<PathBuf>,
    /// With --directory: an operator key (ed25519:…) the adversary controls;
    /// repeat for colluding operators. Default: the operator whose relays
    /// weigh most.
    #[arg(long, value_name = "KEY", requires = "directory")]
    adversary: Vec<String>,
    /// Also write the comparison as an SVG line plot to FILE.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
}

/// `openrelay sim`: maps flags to [`openrelay_sim::SimOptions`], prints
/// the report, writes the plot.
pub(crate) fn run(args: SimArgs) -> anyhow::Result<()> {
    let population = match (args.population, args.directory) {
        (Some(path), _) => openrelay_sim::PopulationSource::File(path),
        (None, Some(path)) => openrelay_sim::PopulationSource::Directory {
            path,
            adversaries: args.adversary,
        },
        (None, None) => openrelay_sim::PopulationSource::Uniform {
            operators: args.operators,
            relays_per_operator: args.relays_per_operator,
            adversary_share: args.adversary_share.unwrap_or(0.02),
        },
    };
    let policy = if args.stake_weighted {
        args.policy.with_weighting(openrelay_sim::Weighting::Stake)
    } else {
        args.policy
    };
    let report = openrelay_sim::run(&openrelay_sim::SimOptions {
        policy,
        population,
        sybil_identities: args.sybil_identities,
        target_probability: args.target_probability,
        paths: args.paths,
        trials: args.trials,
        seed: args.seed,
    })?;
    if let Some(path) = &args.plot {
        std::fs::write(path, openrelay_sim::svg::plot(&report))
            .with_context(|| format!("cannot write the plot to {}", path.display()))?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render_text());
        if let Some(path) = &args.plot {
            println!("plot written to {}", path.display());
        }
    }
    Ok(())
}
