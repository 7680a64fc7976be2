#![doc = include_str!("../README.md")]

mod aggregate;
mod epoch;
mod lane;
mod params;
mod report;
mod state;

pub use aggregate::{WeightedCapacity, weighted_low_median};
pub use epoch::{EpochMargins, EpochStep, EpochTiming, ReportFate, TimingError, ValidatorEpochs};
pub use lane::{TestLanes, test_lanes};
pub use params::{
    BPS_WHOLE, MeasureParams, UNMEASURED_WEIGHT_BPS, UNMEASURED_WEIGHT_CAP_BPS, assigned_measurers,
    selection_bandwidth, unmeasured_weight,
};
pub use report::{
    COMMITMENT_DOMAIN, Commitment, Epoch, MAX_RELAYS_PER_REVEAL, MAX_VALIDATORS, Measurement,
    REVEAL_VERSION, RelayId, Reveal, RevealError, ValidatorId, ValidatorReport, verify_reveal,
};
pub use state::{
    ApplyError, EpochOutcome, EpochVerdict, ExplainedReport, Explanation, Liveness, Mark,
    MeasureState, MeasuredBandwidth, RelayAdvert, RelaySlash, SlashApproval, SnapshotError,
    ValidatorSlash,
};
