//! The registry's side of the configuration: what a relay publishes
//! (`[publish]`), where a client takes its relay list from (`[directory]`),
//! the registry (`openrelay registry`) and the validators
//! (`openrelay validator`), and the publication rules the registry and every
//! validator apply alike (`[publication]`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use openrelay_types::KeyPin;
use serde::{Deserialize, Serialize};

use crate::{ConfigError, LimitsConfig, LogConfig, RegistryEndpoint, is_default, parse, read};

/// The most relays a directory can list (`openrelay_directory::MAX_RELAYS`,
/// which depends on this crate, not the other way round; a test there checks
/// that the two agree).
pub const MAX_RELAYS_LIMIT: usize = 20_000;
/// The most issuers a directory lists key sets of
/// (`openrelay_directory::MAX_ISSUERS`; a test there checks they agree).
pub const MAX_ISSUERS_LIMIT: usize = 64;

/// How a relay describes itself to a registry and the validators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// The registry.
    pub registry: RegistryEndpoint,
    /// Every validator (its address and TLS key): a relay is listed only
    /// when most validators saw it publish, so it publishes to each of them
    /// too (a registry cannot then hide it from them).
    #[serde(default)]
    pub validators: Vec<RegistryEndpoint>,
    /// The operator's signing key (hex); every descriptor needs its signature.
    pub operator_key_file: PathBuf,
    /// The operator's public name.
    pub operator_name: String,
    /// How to reach the operator (e.g. `mailto:`).
    pub operator_contact: String,
    /// The operator's jurisdiction (ISO 3166-1 alpha-2).
    pub jurisdiction: String,
    /// Where the relay is (ISO 3166-1 alpha-2).
    pub country: String,
    /// Its city.
    pub city: String,
    /// Its network: `AS<number>` or a label.
    pub network: String,
    /// Advertised bandwidth, bits per second.
    pub bandwidth_bps: u64,
    /// The address clients use (default: the listen address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<SocketAddr>,
    /// Republish this often (well under the registry's descriptor TTL).
    #[serde(default = "default_refresh_secs")]
    pub refresh_secs: u64,
    /// Each descriptor is valid this long (longer than a directory lives).
    #[serde(default = "default_descriptor_lifetime_secs")]
    pub descriptor_lifetime_secs: u64,
}

fn default_refresh_secs() -> u64 {
    60
}
fn default_descriptor_lifetime_secs() -> u64 {
    86_400
}

impl PublishConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.refresh_secs == 0 || self.refresh_secs >= self.descriptor_lifetime_secs {
            return Err(ConfigError::invalid(
                "publish.refresh_secs",
                "must be at least 1 and shorter than publish.descriptor_lifetime_secs",
            ));
        }
        if self.validators.is_empty() {
            return Err(ConfigError::invalid(
                "publish.validators",
                "must list every validator ([[publish.validators]] with addr and key): a relay \
                 is listed only when most validators saw it publish",
            ));
        }
        Ok(())
    }
}

/// Where a client gets its relay list: a registry's directory, trusted only
/// with the signatures of `threshold` of `validators`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The registry serving the directory.
    pub registry: RegistryEndpoint,
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
    /// special-purpose addresses. Only for a network of your own (the
    /// devnet): otherwise a directory could make this client send packets to
    /// hosts inside its own network.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_special_purpose_endpoints: bool,
}

fn default_directory_max_age_secs() -> u64 {
    7200
}
fn default_directory_refresh_secs() -> u64 {
    30
}

/// Where a token issuer publishes its signed token key set (RFC 9576 §6 key
/// consistency): the registry and every validator, as relays publish their
/// descriptors, so that a set is listed only when most validators saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPublishConfig {
    /// The registry.
    pub registry: RegistryEndpoint,
    /// Every validator (its address and TLS key).
    pub validators: Vec<RegistryEndpoint>,
    /// Publish the current set again this often (and at once whenever the
    /// keys change).
    #[serde(default = "default_key_publish_refresh_secs")]
    pub refresh_secs: u64,
}

fn default_key_publish_refresh_secs() -> u64 {
    60
}

impl KeyPublishConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.validators.is_empty() {
            return Err(ConfigError::invalid(
                "publish.validators",
                "must list every validator ([[publish.validators]] with addr and key): a key \
                 set is listed only when most validators saw it",
            ));
        }
        if self.refresh_secs == 0 {
            return Err(ConfigError::invalid(
                "publish.refresh_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }
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
    /// other special-purpose addresses. Only for a network of your own (the
    /// devnet).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_special_purpose_endpoints: bool,
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
            allow_special_purpose_endpoints: false,
            issuers: Vec::new(),
            min_token_key_period_secs: default_min_token_key_period_secs(),
        }
    }
}

impl PublicationLimits {
    fn validate(&self) -> Result<(), ConfigError> {
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
fn check_threshold(validators: &[KeyPin], threshold: usize) -> Result<(), ConfigError> {
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
}

fn default_directory_lifetime_secs() -> u64 {
    3600
}
fn default_proposal_interval_secs() -> u64 {
    10
}

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
    pub registry: RegistryEndpoint,
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
}

fn default_poll_interval_secs() -> u64 {
    5
}
fn default_max_directory_lifetime_secs() -> u64 {
    7200
}

impl RegistryConfig {
    /// Reads and validates a registry config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(&read(path)?).map_err(|e| e.with_origin(&path.display().to_string()))
    }

    /// Parses and validates registry config text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: RegistryConfig = parse(text).map_err(|e| e.with_origin("<string>"))?;
        config.validate().map_err(|e| e.with_origin("<string>"))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_threshold(&self.validators, self.threshold)?;
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

    /// Serialises the config as TOML.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::invalid("<config>", e.to_string()))
    }
}

impl ValidatorConfig {
    /// Reads and validates a validator config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(&read(path)?).map_err(|e| e.with_origin(&path.display().to_string()))
    }

    /// Parses and validates validator config text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: ValidatorConfig = parse(text).map_err(|e| e.with_origin("<string>"))?;
        config.validate().map_err(|e| e.with_origin("<string>"))?;
        Ok(config)
    }

    /// Only `state_dir` of a validator config file, which may be unfinished:
    /// a new validator prints its key (`--print-key`) before the file can
    /// list it among `validators`.
    pub fn load_state_dir(path: &Path) -> Result<PathBuf, ConfigError> {
        #[derive(Deserialize)]
        struct StateDirOnly {
            state_dir: PathBuf,
        }
        let text = read(path)?;
        let only: StateDirOnly =
            parse(&text).map_err(|e| e.with_origin(&path.display().to_string()))?;
        Ok(only.state_dir)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_threshold(&self.validators, self.threshold)?;
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

    /// Serialises the config as TOML.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::invalid("<config>", e.to_string()))
    }
}
