//! `[throttle_for_tests]`: a throughput limit on everything the relay
//! forwards, for measurement tests and benchmarks only (issue 14: relays
//! with known capacity, and a relay that throttles everyone but the
//! addresses it believes are validators). Never on unless the section is
//! present; the relay warns at start when it is.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The least rate accepted: below about one full-size QUIC packet per
/// second a relay carries nothing useful and the bucket's burst (which is
/// at least one packet) would dominate the rate.
pub const MIN_THROTTLE_BPS: u64 = 64_000;

/// `[throttle_for_tests]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleForTestsConfig {
    /// Bits per second the relay forwards, all flows and both directions
    /// together (a token bucket over forwarded payload bytes).
    pub bps: u64,
    /// Peers the limit does not apply to, by IP address (the connection's
    /// source as the relay sees it): the "serve validators fast, everyone
    /// else slow" attack the probes must defeat.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exempt_sources: Vec<IpAddr>,
}

impl ThrottleForTestsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.bps < MIN_THROTTLE_BPS {
            return Err(ConfigError::invalid(
                "throttle_for_tests.bps",
                format!(
                    "must be at least {MIN_THROTTLE_BPS} (bits per second); remove the section \
                     for no limit"
                ),
            ));
        }
        Ok(())
    }
}
