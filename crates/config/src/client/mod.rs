//! `openrelay client --config FILE` (and `openrelay up`): the relays to
//! choose from or the directory to take them from, path building, the
//! account and the full-device VPN.

mod account;
mod trust;
mod tun;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use openrelay_types::{KeyPin, RelayRole};
use serde::{Deserialize, Serialize};

use crate::renamed::{self, Renamed};
use crate::{ConfigError, CongestionControl, DirectoryConfig, LogConfig};

pub use account::AccountConfig;
pub use trust::{AttestationMode, TrustPolicyConfig};
pub use tun::{MIN_TUN_MTU, TunConfig, TunDnsConfig};

/// Fields of a client file under their old names.
const RENAMED: &[Renamed] = &[renamed::special_purpose_endpoints(&["directory"])];

/// One relay the client may use (the embedded relay list, until the registry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayEntry {
    /// A name for status output and logs.
    pub name: String,
    /// `ingress` or `egress`.
    pub role: RelayRole,
    /// The relay's operator; a path never uses two relays of one operator.
    pub operator: String,
    /// The operator's public key (`ed25519:...`, as in the registry). A
    /// token-gated ingress takes only access tokens scoped to it, so the
    /// client needs it to show one (the directory always carries it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_key: Option<KeyPin>,
    /// The relay's QUIC address.
    pub addr: SocketAddr,
    /// The relay's public key; the TLS handshake must prove it.
    pub key: KeyPin,
    /// Where the relay is (ISO 3166-1 alpha-2), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Its city, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Its network (`AS<number>` or a label), if known: a path never uses two
    /// relays of one known network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Its advertised bandwidth in bits per second, if known: selection is
    /// weighted by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_bps: Option<u64>,
}

/// `openrelay client --config FILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Where the client keeps its state.
    pub state_dir: PathBuf,
    /// SOCKS5 listen address.
    #[serde(default = "default_socks")]
    pub socks: SocketAddr,
    /// HTTP proxy listen address.
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// Local address of the QUIC socket towards the ingress (default: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    /// Threads running the client (default: one per core). With two or more
    /// the inner connection's crypto (towards the egress) and the outer's
    /// (towards the ingress) run on different cores; 1 runs everything on
    /// one thread (no cross-thread wake-ups, for machines shared by many
    /// processes, such as a devnet).
    #[serde(default = "default_client_worker_threads")]
    pub worker_threads: usize,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Path building and failure detection.
    #[serde(default)]
    pub path: PathConfig,
    /// The relays to choose from (when no `[directory]` is configured).
    #[serde(rename = "relay", default)]
    pub relays: Vec<RelayEntry>,
    /// Take the relay list from a registry's signed directory instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryConfig>,
    /// The full-device VPN (`openrelay client --tun`, `openrelay up`).
    #[serde(default)]
    pub tun: TunConfig,
    /// The account's token issuer (Privacy Pass access and payment tokens);
    /// absent: no tokens (relays that require them refuse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountConfig>,
    /// What relays must prove beyond the directory's signatures (remote
    /// attestation).
    #[serde(default)]
    pub trust: TrustPolicyConfig,
}

fn default_client_worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn default_socks() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1080))
}
fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8118))
}

/// How the client builds paths and notices dead relays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathConfig {
    /// Give up building a path (both handshakes) after this many milliseconds.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u64,
    /// Consider a path dead after this many milliseconds without hearing from it.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// Send keep-alives this often so the idle timeout only fires on a dead relay.
    #[serde(default = "default_keepalive_ms")]
    pub keepalive_ms: u64,
    /// A relay that failed is not chosen again for this many seconds.
    #[serde(default = "default_failed_relay_quarantine_secs")]
    pub failed_relay_quarantine_secs: u64,
    /// Use only egress relays in this country (ISO 3166-1 alpha-2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_country: Option<String>,
    /// ... and in this city (needs `egress_country`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_city: Option<String>,
    /// The user's own country (ISO 3166-1 alpha-2). Without an
    /// `egress_country`, egresses there are preferred ("near my region") and
    /// others used only when no valid path has its egress there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_country: Option<String>,
    /// New flows move to a fresh path this many seconds after it was chosen;
    /// flows already open finish on their path.
    #[serde(default = "default_rotation_secs")]
    pub rotation_secs: u64,
    /// Give every site (registrable domain) its own egress: flows to
    /// different sites use different egress relays whenever enough exist,
    /// flows to one site keep theirs.
    #[serde(default)]
    pub per_site: bool,
    /// Congestion controller of the client's side of both connections of a
    /// path (outer to the ingress, inner to the egress).
    #[serde(default)]
    pub congestion: CongestionControl,
}

fn default_handshake_timeout_ms() -> u64 {
    2_000
}
fn default_idle_timeout_ms() -> u64 {
    3_000
}
fn default_keepalive_ms() -> u64 {
    500
}
fn default_failed_relay_quarantine_secs() -> u64 {
    60
}
fn default_rotation_secs() -> u64 {
    600
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            handshake_timeout_ms: default_handshake_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            keepalive_ms: default_keepalive_ms(),
            failed_relay_quarantine_secs: default_failed_relay_quarantine_secs(),
            egress_country: None,
            egress_city: None,
            home_country: None,
            rotation_secs: default_rotation_secs(),
            per_site: false,
            congestion: CongestionControl::default(),
        }
    }
}

impl PathConfig {
    /// Checks the settings (also after command-line overrides); errors name
    /// the `self.*` field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("path.handshake_timeout_ms", self.handshake_timeout_ms),
            ("path.idle_timeout_ms", self.idle_timeout_ms),
            ("path.keepalive_ms", self.keepalive_ms),
            ("path.rotation_secs", self.rotation_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be at least 1"));
            }
        }
        for (field, code) in [
            ("path.egress_country", &self.egress_country),
            ("path.home_country", &self.home_country),
        ] {
            if let Some(code) = code
                && !(code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
            {
                return Err(ConfigError::invalid(
                    field,
                    "must be an ISO 3166-1 alpha-2 country code such as \"CH\"",
                ));
            }
        }
        if self.egress_city.is_some() && self.egress_country.is_none() {
            return Err(ConfigError::invalid(
                "path.egress_city",
                "needs self.egress_country too",
            ));
        }
        if self.keepalive_ms >= self.idle_timeout_ms {
            return Err(ConfigError::invalid(
                "path.keepalive_ms",
                "must be shorter than self.idle_timeout_ms",
            ));
        }
        Ok(())
    }
}

crate::config_file!(ClientConfig, RENAMED, "a client");

impl ClientConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.worker_threads == 0 {
            return Err(ConfigError::invalid("worker_threads", "must be at least 1"));
        }
        self.tun.validate()?;
        if let Some(account) = &self.account {
            account.validate()?;
        }
        let mut names = HashSet::new();
        for (i, relay) in self.relays.iter().enumerate() {
            if relay.name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("relay[{i}].name"),
                    "must not be empty",
                ));
            }
            if relay.operator.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("relay[{i}].operator"),
                    "must not be empty",
                ));
            }
            if !names.insert(relay.name.as_str()) {
                return Err(ConfigError::invalid(
                    format!("relay[{i}].name"),
                    format!("{:?} is used by two relays", relay.name),
                ));
            }
        }
        let has_two_operator_path = self.relays.iter().any(|i| {
            i.role == RelayRole::Ingress
                && self
                    .relays
                    .iter()
                    .any(|e| e.role == RelayRole::Egress && e.operator != i.operator)
        });
        if let Some(directory) = &self.directory {
            directory.validate_at("directory")?;
        } else if !has_two_operator_path {
            return Err(ConfigError::invalid(
                "relay",
                "needs at least one ingress and one egress relay of different operators",
            ));
        }
        self.path.validate()?;
        // Port 0 (any free port) on both is fine: each gets its own port.
        if self.socks == self.http && self.socks.port() != 0 {
            return Err(ConfigError::invalid("http", "must differ from `socks`"));
        }
        Ok(())
    }
}
