//! Following the registry contract's events to the state at a confirmed
//! block, with reorgs handled to a configurable depth.
//!
//! As quinn-proto is to quinn: `ChainFollower` is the state machine (no
//! I/O: it takes blocks and their logs, says what to fetch next, and
//! gives the confirmed `ChainSnapshot`); `Follower` is the thin driver
//! polling a JSON-RPC node through alloy.

mod driver;
mod machine;
mod snapshot;
mod state;
#[cfg(test)]
mod tests;

pub use driver::{FollowError, Follower, FollowerConfig, Polled, read_params};
pub use machine::{BlockRef, ChainBlock, ChainFollower, Fed, FeedError};
pub use snapshot::{ChainSnapshot, CoveredRelay};
pub use state::{
    Inconsistency, OperatorState, RelayRef, RelayRole, RelayState, ValidatorCandidate,
    ValidatorMember, ValidatorSet,
};
