//! Directory trust: where a process takes the validator-signed directory
//! from and whose signatures it needs (`[directory]` of a client, a relay and
//! the issuer; `[settlement.directory]` of the issuer).

use openrelay_types::KeyPin;
use serde::{Deserialize, Serialize};

use crate::{ConfigError, ServiceEndpoint};

/// The most relays a directory can list (`openrelay_directory::MAX_RELAYS`,
/// which depends on this crate, not the other way round; a test there checks
/// that the two agree).
pub const MAX_RELAYS_LIMIT: usize = 20_000;
/// The most issuers a directory lists key sets of
/// (`openrelay_directory::MAX_ISSUERS`; a test there checks they agree).
pub const MAX_ISSUERS_LIMIT: usize = 64;

/// Where a client gets its relay list: a registry's directory, trusted only
/// with the signatures of `threshold` of `validators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The registry serving the directory.
    pub registry: ServiceEndpoint,
    /// Validators whose signatures count.
    pub validators: Vec<KeyPin>,
    /// Signatures required (k of n).
    pub threshold: usize,
    /// A directory older than this is refused, cached or not; once the one
    /// in use is this old (or past its own validity), no path is built until
    /// a fresh one arrives.
    #[serde(default = "default_directory_max_age_secs")]
    pub max_age_secs: u64,
    /// Fetch a newer directory this often.
    #[serde(default = "default_directory_refresh_secs")]
    pub refresh_secs: u64,
    /// Use relays whose endpoints are loopback, private, link-local or other
    /// special-purpose addresses. Weakens the client's guard against its
    /// directory: a directory could then make it send packets to hosts
    /// inside its own network. Only for a network of your own (the devnet).
    /// Formerly `allow_special_purpose_endpoints`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dangerously_allow_special_purpose_endpoints: bool,
}

fn default_directory_max_age_secs() -> u64 {
    7200
}
fn default_directory_refresh_secs() -> u64 {
    30
}

impl DirectoryConfig {
    /// Checks the settings; errors name the field under `section`.
    pub(crate) fn validate_at(&self, section: &str) -> Result<(), ConfigError> {
        if self.validators.is_empty() {
            return Err(ConfigError::invalid(
                format!("{section}.validators"),
                "must list at least one validator key",
            ));
        }
        if self.threshold == 0 || self.threshold > self.validators.len() {
            return Err(ConfigError::invalid(
                format!("{section}.threshold"),
                "must be between 1 and the number of validators",
            ));
        }
        if self.max_age_secs == 0 || self.refresh_secs == 0 {
            return Err(ConfigError::invalid(
                section,
                "max_age_secs and refresh_secs must be at least 1",
            ));
        }
        Ok(())
    }
}
