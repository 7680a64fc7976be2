//! Configuration files of openrelay processes (TOML), and the values they carry.
//!
//! Every file is parsed strictly (`deny_unknown_fields`): a misspelt field is an
//! error, not a silently ignored default. Errors name the field, so an operator
//! can fix the file without reading code. Commented examples live in
//! `examples/` at the repository root and are parsed by this crate's tests.

mod account;
mod admission;
mod congestion;
mod deny;
mod issuer;
mod limits;
mod payment;
mod registry;
mod tun;

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use openrelay_types::{KeyPin, RelayRole};
use serde::{Deserialize, Serialize};

pub use account::AccountConfig;
pub use admission::AdmissionConfig;
pub use congestion::CongestionControl;
pub use deny::{DenyEntry, Net};
pub use issuer::{IssuerConfig, SettlementRelays};
pub use limits::LimitsConfig;
pub use payment::PaymentConfig;
pub use registry::{
    DirectoryConfig, KeyPublishConfig, MAX_ISSUERS_LIMIT, MAX_RELAYS_LIMIT, PublicationLimits,
    PublishConfig, RegistryConfig, ValidatorConfig,
};
pub use tun::{MIN_TUN_MTU, TunConfig, TunDnsConfig};

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema; the message
    /// names the field and the line.
    #[error("{origin}: {message}")]
    Parse {
        /// The file, or `<string>`.
        origin: String,
        /// The parser's message (names the field and its position).
        message: String,
    },
    /// A field parsed but its value is not acceptable.
    #[error("{origin}: field `{field}`: {reason}")]
    Invalid {
        /// The file, or `<string>`.
        origin: String,
        /// Dotted path of the field, e.g. `ingress.egress_relays`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            origin: String::new(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn with_origin(self, origin: &str) -> Self {
        match self {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                origin: origin.to_owned(),
                message,
            },
            ConfigError::Invalid { field, reason, .. } => ConfigError::Invalid {
                origin: origin.to_owned(),
                field,
                reason,
            },
            other => other,
        }
    }
}

/// Logging settings shared by every process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter directive, e.g. `info` or `openrelay_egress=debug`.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// Append logs to this file instead of standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
            file: None,
        }
    }
}

/// `openrelay relay --config FILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// `ingress` or `egress`.
    pub role: RelayRole,
    /// The operator running this relay (its name; keys come with the registry).
    pub operator: String,
    /// The operator's public key (`ed25519:...`, its id in the registry and
    /// the directory). A token-gated ingress scopes its access tokens to it
    /// (RFC 9577 `origin_info`), so tokens it collects open nothing at
    /// another operator's ingress; clients know it from the directory (or
    /// their `[[relay]]` entries). Default: the public key of
    /// `publish.operator_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_key: Option<KeyPin>,
    /// UDP address the QUIC server listens on.
    pub listen: SocketAddr,
    /// Where the relay keeps its key; created on first start.
    pub state_dir: PathBuf,
    /// Threads serving connections (default: one per CPU core; 1 runs a
    /// single-threaded runtime, best when several processes share few cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_threads: Option<usize>,
    /// Congestion controller of the connections this relay sends on (an
    /// ingress: outer connections; an egress: inner ones).
    #[serde(default)]
    pub congestion: CongestionControl,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Connection, stream and time limits (defaults by role).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: LimitsConfig,
    /// Settings used when `role = "ingress"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressConfig>,
    /// Settings used when `role = "egress"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressConfig>,
    /// Publishing this relay's descriptor to a registry (optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishConfig>,
    /// The validator-signed directory (fetched from the registry directly:
    /// a relay is no user to hide), verified k of n as clients verify it.
    /// With it, the token gates (`[ingress.admission]`,
    /// `[egress.payment.tokens]`) accept only the keys the directory lists
    /// for their issuer (RFC 9576 §6 key consistency), whatever the issuer
    /// itself serves; without it they take the issuer's keys from the issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryConfig>,
}

/// Ingress relay settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressConfig {
    /// The egress relays this ingress forwards to; any other target is refused
    /// (the ingress is not an open UDP proxy).
    pub egress_relays: Vec<SocketAddr>,
    /// Most tunnels one client address (IPv4, or IPv6 /64) may hold open at
    /// once without token admission.
    #[serde(default = "default_max_tunnels_per_client")]
    pub max_tunnels_per_client: usize,
    /// With token admission, the ceiling per address instead: each tunnel
    /// is paid with a token, and one address may be a whole carrier-grade
    /// NAT, so the token is what counts; this only keeps one address from
    /// taking every socket.
    #[serde(default = "default_max_tunnels_per_address_with_tokens")]
    pub max_tunnels_per_address_with_tokens: usize,
    /// A tunnel that carries no datagram for this long is closed.
    #[serde(default = "default_tunnel_idle_timeout_secs")]
    pub tunnel_idle_timeout_secs: u64,
    /// Source address for datagrams to egress relays (default: the listen address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_bind: Option<IpAddr>,
    /// Privacy Pass admission: each tunnel request must carry a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<AdmissionConfig>,
}

fn default_max_tunnels_per_client() -> usize {
    16
}
fn default_max_tunnels_per_address_with_tokens() -> usize {
    1024
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}
fn default_tunnel_idle_timeout_secs() -> u64 {
    120
}

/// Egress relay settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// Networks allowed as destinations although the default policy refuses
    /// them: special-purpose addresses (loopback, private, link-local, ...),
    /// the relay host's own addresses, the infrastructure its config names.
    /// `deny` still wins.
    #[serde(default)]
    pub allow: Vec<ipnet::IpNet>,
    /// Destinations refused even where `allow` names them (the operator's
    /// own networks and hosts): nets, addresses, or nets with ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<DenyEntry>,
    /// Destination ports refused; default: the policy's standard list (25, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_ports: Option<Vec<u16>>,
    /// Give up connecting to a destination after this long.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// A UDP flow that carries nothing for this long is closed.
    #[serde(default = "default_udp_idle_timeout_secs")]
    pub udp_idle_timeout_secs: u64,
    /// Most flows (streams) one client connection may hold open at once.
    #[serde(default = "default_max_flows_per_connection")]
    pub max_flows_per_connection: u32,
    /// Source address for connections to destinations (default: the listen address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_bind: Option<IpAddr>,
    /// The resolver the egress asks: for the names of CONNECT and
    /// connect-udp targets, and with clients' DNS queries (`POST
    /// /dns-query`, RFC 8484 wire format); default: the `nameserver`s of
    /// /etc/resolv.conf. Refused as a destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_resolver: Option<SocketAddr>,
    /// A name lookup (or a client's DNS query) gives up after this long.
    #[serde(default = "default_dns_timeout_secs")]
    pub dns_timeout_secs: u64,
    /// Most name lookups in flight at once; one client connection may hold
    /// a quarter of them.
    #[serde(default = "default_max_dns_lookups")]
    pub max_dns_lookups: u32,
    /// Pay-as-you-go (Privacy Pass tokens per quantum); absent: free.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentConfig>,
}

fn default_connect_timeout_secs() -> u64 {
    10
}
fn default_udp_idle_timeout_secs() -> u64 {
    60
}
fn default_max_flows_per_connection() -> u32 {
    1024
}
fn default_dns_timeout_secs() -> u64 {
    5
}
fn default_max_dns_lookups() -> u32 {
    512
}

impl Default for EgressConfig {
    fn default() -> Self {
        EgressConfig {
            allow: Vec::new(),
            deny: Vec::new(),
            deny_ports: None,
            connect_timeout_secs: default_connect_timeout_secs(),
            udp_idle_timeout_secs: default_udp_idle_timeout_secs(),
            max_flows_per_connection: default_max_flows_per_connection(),
            outbound_bind: None,
            dns_resolver: None,
            dns_timeout_secs: default_dns_timeout_secs(),
            max_dns_lookups: default_max_dns_lookups(),
            payment: None,
        }
    }
}

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
    /// Threads running the client (default 1: one path is driven by one task,
    /// and a single thread avoids cross-thread wake-ups on every packet).
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
}

fn default_client_worker_threads() -> usize {
    1
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

/// A service's (registry's, issuer's) address and the key its TLS handshake
/// must prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEndpoint {
    /// The registry's QUIC address.
    pub addr: SocketAddr,
    /// Its public key (printed by `openrelay registry` at start-up).
    pub key: KeyPin,
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        origin: String::new(),
        message: e.to_string().trim_end().to_owned(),
    })
}

impl RelayConfig {
    /// Reads and validates a relay config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(&read(path)?).map_err(|e| e.with_origin(&path.display().to_string()))
    }

    /// Parses and validates relay config text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: RelayConfig = parse(text).map_err(|e| e.with_origin("<string>"))?;
        config.validate().map_err(|e| e.with_origin("<string>"))?;
        Ok(config)
    }

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
        let directory = self.directory.is_some();
        match self.role {
            RelayRole::Ingress => {
                if self.egress.is_some() {
                    return Err(ConfigError::invalid(
                        "egress",
                        "an ingress relay takes an [ingress] section, not [egress]",
                    ));
                }
                let Some(ingress) = &self.ingress else {
                    return Err(ConfigError::invalid(
                        "ingress",
                        "missing: an ingress relay needs an [ingress] section listing `egress_relays`",
                    ));
                };
                if ingress.egress_relays.is_empty() {
                    return Err(ConfigError::invalid(
                        "ingress.egress_relays",
                        "must list at least one egress relay address",
                    ));
                }
                for (field, value) in [
                    (
                        "ingress.max_tunnels_per_client",
                        ingress.max_tunnels_per_client,
                    ),
                    (
                        "ingress.max_tunnels_per_address_with_tokens",
                        ingress.max_tunnels_per_address_with_tokens,
                    ),
                ] {
                    if value == 0 {
                        return Err(ConfigError::invalid(field, "must be at least 1"));
                    }
                }
                if ingress.tunnel_idle_timeout_secs == 0 {
                    return Err(ConfigError::invalid(
                        "ingress.tunnel_idle_timeout_secs",
                        "must be at least 1",
                    ));
                }
                if let Some(admission) = &ingress.admission {
                    admission.validate()?;
                    admission.validate_key_source("ingress.admission", directory)?;
                    if self.operator_key.is_none() && self.publish.is_none() {
                        return Err(ConfigError::invalid(
                            "operator_key",
                            "a token-gated ingress ([ingress.admission]) scopes access tokens to its operator's key: give `operator_key` (or [publish] with the operator's key file)",
                        ));
                    }
                }
            }
            RelayRole::Egress => {
                if self.ingress.is_some() {
                    return Err(ConfigError::invalid(
                        "ingress",
                        "an egress relay takes an [egress] section, not [ingress]",
                    ));
                }
                let egress = self.egress.clone().unwrap_or_default();
                for (field, value) in [
                    ("egress.connect_timeout_secs", egress.connect_timeout_secs),
                    ("egress.udp_idle_timeout_secs", egress.udp_idle_timeout_secs),
                    ("egress.dns_timeout_secs", egress.dns_timeout_secs),
                    ("egress.max_dns_lookups", u64::from(egress.max_dns_lookups)),
                    (
                        "egress.max_flows_per_connection",
                        u64::from(egress.max_flows_per_connection),
                    ),
                ] {
                    if value == 0 {
                        return Err(ConfigError::invalid(field, "must be at least 1"));
                    }
                }
                if let Some(payment) = &egress.payment {
                    payment.validate()?;
                    payment
                        .tokens
                        .validate_key_source("egress.payment.tokens", directory)?;
                }
            }
        }
        Ok(())
    }

    /// The egress settings (defaults when the section is absent).
    pub fn egress_settings(&self) -> EgressConfig {
        self.egress.clone().unwrap_or_default()
    }

    /// Serialises the config as TOML.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::invalid("<config>", e.to_string()))
    }
}

impl ClientConfig {
    /// Reads and validates a client config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::from_toml(&read(path)?).map_err(|e| e.with_origin(&path.display().to_string()))
    }

    /// Parses and validates client config text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: ClientConfig = parse(text).map_err(|e| e.with_origin("<string>"))?;
        config.validate().map_err(|e| e.with_origin("<string>"))?;
        Ok(config)
    }

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

    /// Serialises the config as TOML.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::invalid("<config>", e.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
