#![doc = include_str!("../README.md")]

pub mod prober;
pub mod rate;
pub mod schedule;
pub mod servers;
pub mod tokens;

pub use prober::{MissingToken, Probe, ProbeFailure, ProbeSettings, ProbedRelay, Prober};
pub use rate::RateEstimate;
pub use schedule::{Lane, ProbeSchedule, ScheduleError, Slot};
