//! `openrelay relay --config FILE`: an ingress or an egress relay.
//!
//! A relay config is a [`RelayConfig`], an enum by role: an ingress carries
//! its [`IngressConfig`], an egress its [`EgressConfig`], and code that
//! serves one role takes that role's [`Relay`] (no "wrong role" case to
//! check at start). The file keeps its shape: `role = "ingress"` with an
//! `[ingress]` section, or `role = "egress"` with an optional `[egress]`
//! one. The file shape is parsed strictly and turned into the enum in one
//! place (`RelayFile`'s conversion), which refuses a section of the other
//! role naming it.
//!
//! Why not serde's internally tagged enum with the common fields
//! `#[serde(flatten)]`ed: both go through serde's buffered `Content`, which
//! loses the field names and line numbers of value errors (`listen =
//! "x"` would say only "invalid socket address syntax") and breaks
//! `deny_unknown_fields`.

mod admission;
mod deny;
mod egress;
mod ingress;
mod payment;
mod publish;
mod throttle;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use openrelay_types::{KeyPin, RelayRole};
use serde::{Deserialize, Serialize};

use crate::renamed::{self, Renamed};
use crate::{ConfigError, CongestionControl, DirectoryConfig, LimitsConfig, LogConfig, is_default};

pub use admission::AdmissionConfig;
pub use deny::{DenyEntry, Net};
pub use egress::EgressConfig;
pub use ingress::IngressConfig;
pub use payment::PaymentConfig;
pub use publish::{PublishConfig, RelayAttestationConfig};
pub use throttle::{MIN_THROTTLE_BPS, ThrottleForTestsConfig};

/// Fields of a relay file under their old names.
const RENAMED: &[Renamed] = &[
    renamed::EGRESS_ALLOW,
    renamed::special_purpose_endpoints(&["directory"]),
];

/// A relay's config: its role's settings and what every relay has.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayConfig {
    /// `role = "ingress"` with its `[ingress]` section.
    Ingress(IngressRelayConfig),
    /// `role = "egress"` with its `[egress]` section (defaults when absent).
    Egress(EgressRelayConfig),
}

/// A relay of one role: the role's settings (`R`) and the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Relay<R> {
    /// What every relay has.
    pub common: RelayCommon,
    /// The role's section.
    pub role: R,
}

/// An ingress relay's config.
pub type IngressRelayConfig = Relay<IngressConfig>;
/// An egress relay's config.
pub type EgressRelayConfig = Relay<EgressConfig>;

/// What every relay has, whatever its role (the file's top-level fields
/// and sections other than `[ingress]` and `[egress]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RelayCommon {
    /// The operator running this relay (its name; keys come with the registry).
    pub operator: String,
    /// The operator's public key (`ed25519:...`, its id in the registry and
    /// the directory). A token-gated ingress scopes its access tokens to it
    /// (RFC 9577 `origin_info`), so tokens it collects open nothing at
    /// another operator's ingress; clients know it from the directory (or
    /// their `[[relay]]` entries). Default: the public key of
    /// `publish.operator_key_file`.
    pub operator_key: Option<KeyPin>,
    /// UDP address the QUIC server listens on.
    pub listen: SocketAddr,
    /// Where the relay keeps its key; created on first start.
    pub state_dir: PathBuf,
    /// Threads serving connections (default: one per CPU core; 1 runs a
    /// single-threaded runtime, best when several processes share few cores).
    pub worker_threads: Option<usize>,
    /// Congestion controller of the connections this relay sends on (an
    /// ingress: outer connections; an egress: inner ones).
    pub congestion: CongestionControl,
    /// Logging.
    pub log: LogConfig,
    /// Connection, stream and time limits (defaults by role).
    pub limits: LimitsConfig,
    /// Publishing this relay's descriptor to a registry (optional).
    pub publish: Option<PublishConfig>,
    /// The validator-signed directory (fetched from the registry directly:
    /// a relay is no user to hide), verified k of n as clients verify it.
    /// With it, the token gates (`[ingress.admission]`,
    /// `[egress.payment.tokens]`) accept only the keys the directory lists
    /// for their issuer (RFC 9576 §6 key consistency), whatever the issuer
    /// itself serves; without it they take the issuer's keys from the issuer.
    pub directory: Option<DirectoryConfig>,
    /// A throughput limit for tests and benchmarks (`[throttle_for_tests]`);
    /// none unless the section is present.
    pub throttle_for_tests: Option<ThrottleForTestsConfig>,
}

/// The file's shape: `role` and a section per role (see the module docs).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayFile {
    role: RelayRole,
    operator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    operator_key: Option<KeyPin>,
    listen: SocketAddr,
    state_dir: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    worker_threads: Option<usize>,
    #[serde(default)]
    congestion: CongestionControl,
    #[serde(default)]
    log: LogConfig,
    #[serde(default, skip_serializing_if = "is_default")]
    limits: LimitsConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ingress: Option<IngressConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    egress: Option<EgressConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    publish: Option<PublishConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    directory: Option<DirectoryConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    throttle_for_tests: Option<ThrottleForTestsConfig>,
}

impl RelayFile {
    /// The config of the role the file names, checked; the one place where
    /// `role` and the sections meet.
    fn into_config(self) -> Result<RelayConfig, ConfigError> {
        let RelayFile {
            role,
            operator,
            operator_key,
            listen,
            state_dir,
            worker_threads,
            congestion,
            log,
            limits,
            ingress,
            egress,
            publish,
            directory,
            throttle_for_tests,
        } = self;
        let common = RelayCommon {
            operator,
            operator_key,
            listen,
            state_dir,
            worker_threads,
            congestion,
            log,
            limits,
            publish,
            directory,
            throttle_for_tests,
        };
        common.validate()?;
        match (role, ingress, egress) {
            (RelayRole::Ingress, _, Some(_)) => Err(ConfigError::invalid(
                "egress",
                "an ingress relay takes an [ingress] section, not [egress]",
            )),
            (RelayRole::Ingress, None, None) => Err(ConfigError::invalid(
                "ingress",
                "missing: an ingress relay needs an [ingress] section listing `egress_relays`",
            )),
            (RelayRole::Ingress, Some(ingress), None) => {
                ingress.validate(&common)?;
                Ok(RelayConfig::Ingress(Relay {
                    common,
                    role: ingress,
                }))
            }
            (RelayRole::Egress, Some(_), _) => Err(ConfigError::invalid(
                "ingress",
                "an egress relay takes an [egress] section, not [ingress]",
            )),
            (RelayRole::Egress, None, egress) => {
                let egress = egress.unwrap_or_default();
                egress.validate(&common)?;
                Ok(RelayConfig::Egress(Relay {
                    common,
                    role: egress,
                }))
            }
        }
    }

    fn from_config(config: &RelayConfig) -> Self {
        let (role, ingress, egress) = match config {
            RelayConfig::Ingress(relay) => (RelayRole::Ingress, Some(relay.role.clone()), None),
            RelayConfig::Egress(relay) => (RelayRole::Egress, None, Some(relay.role.clone())),
        };
        let RelayCommon {
            operator,
            operator_key,
            listen,
            state_dir,
            worker_threads,
            congestion,
            log,
            limits,
            publish,
            directory,
            throttle_for_tests,
        } = config.common().clone();
        RelayFile {
            role,
            operator,
            operator_key,
            listen,
            state_dir,
            worker_threads,
            congestion,
            log,
            limits,
            ingress,
            egress,
            publish,
            directory,
            throttle_for_tests,
        }
    }
}

impl RelayCommon {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.operator.trim().is_empty() {
            return Err(ConfigError::invalid("operator", "must not be empty"));
        }
        if self.worker_threads == Some(0) {
            return Err(ConfigError::invalid("worker_threads", "must be at least 1"));
        }
        self.limits.validate()?;
        if let Some(publish) = &self.publish {
            publish.validate()?;
        }
        if let Some(directory) = &self.directory {
            directory.validate_at("directory")?;
        }
        if let Some(throttle) = &self.throttle_for_tests {
            throttle.validate()?;
        }
        Ok(())
    }
}

impl RelayConfig {
    /// Reads and validates a relay config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        crate::load(path, Self::from_toml)
    }

    /// Parses and validates relay config text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        crate::from_text(text, RENAMED, RelayFile::into_config)
    }

    /// Serialises the config as TOML (the file shape `from_toml` reads).
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        crate::to_toml(&RelayFile::from_config(self))
    }

    /// The relay's role.
    pub fn role(&self) -> RelayRole {
        match self {
            RelayConfig::Ingress(_) => RelayRole::Ingress,
            RelayConfig::Egress(_) => RelayRole::Egress,
        }
    }

    /// What every relay has.
    pub fn common(&self) -> &RelayCommon {
        match self {
            RelayConfig::Ingress(relay) => &relay.common,
            RelayConfig::Egress(relay) => &relay.common,
        }
    }

    /// What every relay has, to change (e.g. the operator key resolved at start).
    pub fn common_mut(&mut self) -> &mut RelayCommon {
        match self {
            RelayConfig::Ingress(relay) => &mut relay.common,
            RelayConfig::Egress(relay) => &mut relay.common,
        }
    }
}
