#![doc = include_str!("../README.md")]

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
