//! Collusion simulator for openrelay paths.
//!
//! A path's privacy fails when one adversary holds both its ingress and its
//! egress relay. This crate answers, for a relay population (operators,
//! their relays and advertised bandwidth, which operators the adversary
//! controls) and a selection policy: how likely is one path to be
//! compromised, and how many paths until some path is, with a given
//! probability?
//!
//! - [`exact`]: the per-path probability `q` from the population and policy
//!   (an exact sum over ingress/egress pairs), then `1 - (1 - q)ⁿ` for `n`
//!   independent paths. For random selection and adversary share `s` that is
//!   the published `(1 - s²)ⁿ = 1 - p` (2% of servers: 1733 paths for 50%).
//! - [`monte_carlo`]: the same probability by drawing paths like a client
//!   (seeded, reproducible), with a 95% interval, as an independent check.
//! - [`policy`]: random, operator-diverse (openrelay's rule: never one
//!   operator on both hops), stake-weighted and capped selection, to show
//!   what operator diversity buys against one operator, what a Sybil
//!   adversary splitting into many identities takes back, what stake
//!   weighting restores, and what the clients' cap on self-declared bandwidth
//!   (`capped`: clipped to 10 Gbit/s, no operator above `max(10 %, 1/k)` of a
//!   draw) leaves an adversary that claims huge bandwidth. Paths are drawn as
//!   clients draw them, egress first.
//! - [`report`] and [`svg`]: the table, JSON and plot behind `openrelay sim`.
//!
//! Pure computation: no printing, and file access only to read a population
//! file. See `docs/collusion.md` for the model and its limits.
//!
//! # Example
//!
//! ```
//! use openrelay_sim::{Policy, Population, exact};
//!
//! let population = Population::uniform(100, 10, 0.02).unwrap();
//! let q = exact::path_odds(&population, Policy::RANDOM).unwrap().per_path;
//! assert_eq!(exact::paths_to_target(q, 0.5), Some(1733));
//! // Operator diversity: a single-operator adversary never holds both hops.
//! let q = exact::path_odds(&population, Policy::OPERATOR_DIVERSE).unwrap().per_path;
//! assert_eq!(q, 0.0);
//! ```

mod error;
pub mod exact;
pub mod monte_carlo;
pub mod policy;
pub mod population;
pub mod report;
pub mod svg;

pub use error::{NoValidPath, PopulationError, SimError};
pub use policy::{Policy, Weighting};
pub use population::{Operator, Population, Role};
pub use report::{PopulationSource, Report, SimOptions, run};
