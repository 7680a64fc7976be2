//! `openrelay validator --config FILE`: a validator checks the registry's
//! proposals against the publications it saw and signs the directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use openrelay_types::KeyPin;
use serde::{Deserialize, Serialize};

use crate::registry::{RENAMED, check_threshold};
use crate::{ConfigError, LimitsConfig, LogConfig, PublicationLimits, ServiceEndpoint, is_default};

/// `openrelay validator --config FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorConfig {
    /// UDP address where relays publish to this validator.
    pub listen: SocketAddr,
    /// Its signing key (`validator.key`), TLS key and store
    /// (`validator.redb`: the relays it saw, what it signed).
    pub state_dir: PathBuf,
    /// The registry whose proposals it checks and signs.
    pub registry: ServiceEndpoint,
    /// Every validator's public key, this one's included: whose votes count
    /// when a proposal's relay list is checked.
    pub validators: Vec<KeyPin>,
    /// The fewest votes a proposal must carry (the clients' threshold).
    pub threshold: usize,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// How often it votes and asks for a new proposal.
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// The longest validity it signs a directory for.
    #[serde(default = "default_max_directory_lifetime_secs")]
    pub max_directory_lifetime_secs: u64,
    /// What relays may publish (the same as at the registry).
    #[serde(default)]
    pub publication: PublicationLimits,
    /// Connection, stream and time limits of its publication server
    /// (service defaults).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: LimitsConfig,
    /// The registry contract, read through this validator's own node: it
    /// signs only directories listing exactly the relays the chain has
    /// registered and covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<crate::chain::ChainConfig>,
    /// Measuring relays (`[measure]`): the probes' source address, never
    /// `listen`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<crate::MeasureConfig>,
}

fn default_poll_interval_secs() -> u64 {
    5
}
fn default_max_directory_lifetime_secs() -> u64 {
    7200
}

crate::config_file!(ValidatorConfig, RENAMED, "a validator");

impl ValidatorConfig {
    /// Only `state_dir` of a validator config file, which may be unfinished:
    /// a new validator prints its key (`--print-key`) before the file can
    /// list it among `validators`.
    pub fn load_state_dir(path: &Path) -> Result<PathBuf, ConfigError> {
        #[derive(Deserialize)]
        struct StateDirOnly {
            state_dir: PathBuf,
        }
        crate::load(path, |text| crate::parse::<StateDirOnly>(text, &[])).map(|only| only.state_dir)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_threshold(&self.validators, self.threshold)?;
        if let Some(chain) = &self.chain {
            chain.validate("chain")?;
        }
        if let Some(measure) = &self.measure {
            measure.validate(self.listen)?;
        }
        for (field, value) in [
            ("poll_interval_secs", self.poll_interval_secs),
            (
                "max_directory_lifetime_secs",
                self.max_directory_lifetime_secs,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be at least 1"));
            }
        }
        self.limits.validate()?;
        self.publication.validate()
    }
}
