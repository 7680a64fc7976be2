//! `openrelay registry --config FILE`, and the publication rules the
//! registry and every validator apply alike (`[publication]`).

use std::net::SocketAddr;
use std::path::PathBuf;

use openrelay_types::KeyPin;
use serde::{Deserialize, Serialize};

use crate::renamed::{self, Renamed};
use crate::{
    ConfigError, LimitsConfig, LogConfig, MAX_ISSUERS_LIMIT, MAX_RELAYS_LIMIT, is_default,
};

/// Fields of a registry or validator file under their old names.
pub(crate) const RENAMED: &[Renamed] = &[renamed::special_purpose_endpoints(&["publication"])];

/// The rules for publications, which the registry and every validator must
/// apply alike (`[publication]`): relays are listed by majority of the
/// validators' views, so a validator with other rules would simply disagree
/// with the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicationLimits {
    /// A descriptor not refreshed for this long is dropped.
    #[serde(default = "default_descriptor_ttl_secs")]
    pub descriptor_ttl_secs: u64,
    /// Most live relays one operator key may have; a further one is refused
    /// (HTTP 403) until one of them leaves.
    #[serde(default = "default_max_relays_per_operator")]
    pub max_relays_per_operator: usize,
    /// Most live relays in all (at most 20 000, what a directory can list); a
    /// further one is refused (HTTP 503, retry later).
    #[serde(default = "default_max_relays")]
    pub max_relays: usize,
    /// Accept relays whose endpoints are loopback, private, link-local or
    /// other special-purpose addresses. Weakens what a directory promises its
    /// clients: its relays could then point them at hosts inside their own
    /// networks. Only for a network of your own (the devnet). Formerly
    /// `allow_special_purpose_endpoints`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dangerously_allow_special_purpose_endpoints: bool,
    /// The token issuers whose key sets are accepted and listed (their
    /// identity keys, `ed25519:...`, the keys clients pin in `[account]
    /// issuer`), at most 64. Any other issuer's publication is refused
    /// (403): issuers are few, and an open list could be filled by anyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<KeyPin>,
    /// The shortest time one token key may sign (its issuing window: half
    /// its epoch). A key's tokens tell when they were issued to within this
    /// window, so a short one would let an issuer narrow its users down by
    /// the time they refilled.
    #[serde(default = "default_min_token_key_period_secs")]
    pub min_token_key_period_secs: u64,
}

fn default_descriptor_ttl_secs() -> u64 {
    600
}
fn default_min_token_key_period_secs() -> u64 {
    3600
}
fn default_max_relays_per_operator() -> usize {
    256
}
fn default_max_relays() -> usize {
    MAX_RELAYS_LIMIT
}

impl Default for PublicationLimits {
    fn default() -> Self {
        PublicationLimits {
            descriptor_ttl_secs: default_descriptor_ttl_secs(),
            max_relays_per_operator: default_max_relays_per_operator(),
            max_relays: default_max_relays(),
            dangerously_allow_special_purpose_endpoints: false,
            issuers: Vec::new(),
            min_token_key_period_secs: default_min_token_key_period_secs(),
        }
    }
}

impl PublicationLimits {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.descriptor_ttl_secs == 0 {
            return Err(ConfigError::invalid(
                "publication.descriptor_ttl_secs",
                "must be at least 1",
            ));
        }
        if self.max_relays == 0 || self.max_relays > MAX_RELAYS_LIMIT {
            return Err(ConfigError::invalid(
                "publication.max_relays",
                format!("must be between 1 and {MAX_RELAYS_LIMIT} (what a directory can list)"),
            ));
        }
        if self.max_relays_per_operator == 0 || self.max_relays_per_operator > self.max_relays {
            return Err(ConfigError::invalid(
                "publication.max_relays_per_operator",
                "must be between 1 and publication.max_relays",
            ));
        }
        if self.issuers.len() > MAX_ISSUERS_LIMIT {
            return Err(ConfigError::invalid(
                "publication.issuers",
                format!("at most {MAX_ISSUERS_LIMIT} (what a directory can list)"),
            ));
        }
        let mut issuers = self.issuers.clone();
        issuers.sort_by_key(|pin| *pin.as_bytes());
        if issuers.windows(2).any(|w| w.first() == w.get(1)) {
            return Err(ConfigError::invalid(
                "publication.issuers",
                "an issuer is listed twice",
            ));
        }
        if self.min_token_key_period_secs == 0 {
            return Err(ConfigError::invalid(
                "publication.min_token_key_period_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The validator threshold as both the registry and the validators check it.
pub(crate) fn check_threshold(validators: &[KeyPin], threshold: usize) -> Result<(), ConfigError> {
    if validators.is_empty() {
        return Err(ConfigError::invalid(
            "validators",
            "must list at least one validator key",
        ));
    }
    if threshold == 0 || threshold > validators.len() {
        return Err(ConfigError::invalid(
            "threshold",
            format!(
                "must be between 1 and the number of validators ({})",
                validators.len()
            ),
        ));
    }
    Ok(())
}

/// `openrelay registry --config FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// UDP address of the registry's HTTP/3 server.
    pub listen: SocketAddr,
    /// Its TLS key and its store (`registry.redb`).
    pub state_dir: PathBuf,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Public keys of the validators whose votes and signatures count.
    pub validators: Vec<KeyPin>,
    /// Signatures needed before a directory is served (k of n); also the
    /// fewest votes a proposal is built from.
    pub threshold: usize,
    /// How long each directory is valid.
    #[serde(default = "default_directory_lifetime_secs")]
    pub directory_lifetime_secs: u64,
    /// How often the registry proposes a new directory when relays changed.
    #[serde(default = "default_proposal_interval_secs")]
    pub proposal_interval_secs: u64,
    /// What relays may publish (the same as at every validator).
    #[serde(default)]
    pub publication: PublicationLimits,
    /// Connection, stream and time limits (service defaults).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: LimitsConfig,
    /// The registry contract to follow: with it, a relay is listed only if
    /// it is registered, staked and committed to its descriptor on chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<crate::chain::ChainConfig>,
}

fn default_directory_lifetime_secs() -> u64 {
    3600
}
fn default_proposal_interval_secs() -> u64 {
    10
}

crate::config_file!(RegistryConfig, RENAMED, "a registry");

impl RegistryConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_threshold(&self.validators, self.threshold)?;
        if let Some(chain) = &self.chain {
            chain.validate("chain")?;
        }
        for (field, value) in [
            ("directory_lifetime_secs", self.directory_lifetime_secs),
            ("proposal_interval_secs", self.proposal_interval_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be at least 1"));
            }
        }
        if self.proposal_interval_secs >= self.directory_lifetime_secs {
            return Err(ConfigError::invalid(
                "proposal_interval_secs",
                "must be shorter than directory_lifetime_secs",
            ));
        }
        self.limits.validate()?;
        self.publication.validate()
    }
}
