//! `openrelay issuer --config FILE`: the token issuer (OPAQUE accounts,
//! Privacy Pass issuance, RFC 9578).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use openrelay_types::KeyPin;

use crate::renamed::{self, Renamed};
use crate::{ConfigError, DirectoryConfig, LimitsConfig, LogConfig, ServiceEndpoint, is_default};

/// Fields of an issuer file under their old names.
const RENAMED: &[Renamed] = &[
    renamed::special_purpose_endpoints(&["directory"]),
    renamed::special_purpose_endpoints(&["settlement", "directory"]),
];

/// The longest `key_rotation_secs`: a key's tokens are accepted for two
/// periods, which must stay within the relays' bound on a key's lifetime
/// (60 days, `openrelay_tokens::keys::MAX_KEY_LIFETIME_SECS`).
pub const MAX_KEY_ROTATION_SECS: u64 = 30 * 24 * 3600;
/// The largest `registration_puzzle_bits` (about 4 × 10^9 hashes).
pub const MAX_PUZZLE_BITS: u8 = 32;
/// The longest operator name (as a settlement carries it).
const MAX_OPERATOR: usize = 255;

/// The issuer's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// UDP address of the issuer's HTTP/3 server.
    pub listen: SocketAddr,
    /// Its TLS key, accounts (`issuer.redb`), token keys (`token-keys/`) and
    /// the directory it publishes for relays (`issuer-directory.json`).
    pub state_dir: PathBuf,
    /// The name relays put in their token challenges (`issuer_name`).
    pub issuer_name: String,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// How long a token key signs; its tokens are accepted one period more.
    #[serde(default = "default_key_rotation_secs")]
    pub key_rotation_secs: u64,
    /// Most tokens one account may obtain per `token_period_secs`.
    #[serde(default = "default_tokens_per_period")]
    pub tokens_per_period: u32,
    /// The period of `tokens_per_period`.
    #[serde(default = "default_token_period_secs")]
    pub token_period_secs: u64,
    /// Accounts allowed another number of tokens per `token_period_secs`
    /// than `tokens_per_period`, by name: measuring validators' probe
    /// accounts (`[measure.account] username`), which test every relay
    /// every epoch and need about 3 tokens per relay per epoch
    /// (docs/measurement.md, "Tokens on probes"). The issuer's operator
    /// adds a name once the validator's operator asked for it; until the
    /// validator registered it, anyone could, so a name here whose
    /// registration the validator then finds taken must be renamed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub account_quotas: BTreeMap<String, u32>,
    /// How long a login session may request tokens.
    #[serde(default = "default_session_lifetime_secs")]
    pub session_lifetime_secs: u64,
    /// The proof of work a registration costs: a solution must hash (SHA-256)
    /// to this many leading zero bits, about 2^bits hashes on the client
    /// (0 to 32). Each account gets `tokens_per_period` tokens, so this is
    /// the price of tokens for someone who makes accounts in bulk.
    #[serde(default = "default_registration_puzzle_bits")]
    pub registration_puzzle_bits: u8,
    /// Which relays may settle collected tokens (and read the ledger) for
    /// which operator. Absent: settlements are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settlement: Option<SettlementRelays>,
    /// Connection, stream and time limits (service defaults).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: LimitsConfig,
    /// Where the issuer publishes its signed token key set (RFC 9576 §6 key
    /// consistency): the registry and every validator. Needs `[directory]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<KeyPublishConfig>,
    /// The validator-signed directory the issuer follows (verified k of n):
    /// it signs tokens only with keys the directory lists for it, and hands
    /// the directory to clients that ask (they check its signatures, not the
    /// issuer). Needs `[publish]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectoryConfig>,
}

/// Where the issuer learns which relays belong to which operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SettlementRelays {
    /// `[settlement.directory]`: the validator-signed directory (fetched
    /// from the registry, verified k of n, refreshed); the operator is
    /// named by its key (`ed25519:...`), and its relays are those the
    /// directory lists for it.
    Directory(DirectoryConfig),
    /// `[settlement.relays]`: operator name → its relays' keys, for a
    /// network without a registry.
    Relays(BTreeMap<String, Vec<KeyPin>>),
}
fn default_key_rotation_secs() -> u64 {
    7 * 24 * 3600
}
fn default_tokens_per_period() -> u32 {
    1000
}
fn default_token_period_secs() -> u64 {
    24 * 3600
}
fn default_session_lifetime_secs() -> u64 {
    600
}
fn default_registration_puzzle_bits() -> u8 {
    22
}

/// Where a token issuer publishes its signed token key set (RFC 9576 §6 key
/// consistency): the registry and every validator, as relays publish their
/// descriptors, so that a set is listed only when most validators saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPublishConfig {
    /// The registry.
    pub registry: ServiceEndpoint,
    /// Every validator (its address and TLS key).
    pub validators: Vec<ServiceEndpoint>,
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

/// A server name as token challenges carry it (RFC 9577 §2.1.1.1): host or
/// host:port, printable ASCII without userinfo (`@`) or list commas.
pub(crate) fn is_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'@' && b != b',')
}

crate::config_file!(IssuerConfig, RENAMED, "an issuer");

impl IssuerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !is_server_name(&self.issuer_name) {
            return Err(ConfigError::invalid(
                "issuer_name",
                "must be a server name (host or host:port)",
            ));
        }
        for (field, value) in [
            ("key_rotation_secs", self.key_rotation_secs),
            ("tokens_per_period", u64::from(self.tokens_per_period)),
            ("token_period_secs", self.token_period_secs),
            ("session_lifetime_secs", self.session_lifetime_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be at least 1"));
            }
        }
        for (username, quota) in &self.account_quotas {
            if username.is_empty() || *quota == 0 {
                return Err(ConfigError::invalid(
                    format!("account_quotas.{username}"),
                    "names an account and allows it at least 1 token per period",
                ));
            }
        }
        if self.key_rotation_secs > MAX_KEY_ROTATION_SECS {
            return Err(ConfigError::invalid(
                "key_rotation_secs",
                format!("at most {MAX_KEY_ROTATION_SECS} (30 days)"),
            ));
        }
        if self.registration_puzzle_bits > MAX_PUZZLE_BITS {
            return Err(ConfigError::invalid(
                "registration_puzzle_bits",
                format!("at most {MAX_PUZZLE_BITS}"),
            ));
        }
        match (&self.publish, &self.directory) {
            (Some(publish), Some(directory)) => {
                publish.validate()?;
                directory.validate_at("directory")?;
            }
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "directory",
                    "[publish] needs [directory]: the issuer signs only with keys it sees listed",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "publish",
                    "[directory] needs [publish]: the issuer signs only with keys the directory \
                     lists, and nothing is listed unless it publishes",
                ));
            }
            (None, None) => {}
        }
        match &self.settlement {
            Some(SettlementRelays::Directory(directory)) => {
                directory.validate_at("settlement.directory")?;
            }
            Some(SettlementRelays::Relays(operators)) => {
                for (operator, relays) in operators {
                    if operator.is_empty() || operator.len() > MAX_OPERATOR {
                        return Err(ConfigError::invalid(
                            "settlement.relays",
                            format!("operator names are 1 to {MAX_OPERATOR} bytes"),
                        ));
                    }
                    if relays.is_empty() {
                        return Err(ConfigError::invalid(
                            format!("settlement.relays.{operator}"),
                            "must list at least one relay key",
                        ));
                    }
                }
            }
            None => {}
        }
        self.limits.validate()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/issuer.toml");

    #[test]
    fn the_example_parses_and_round_trips() {
        let config = IssuerConfig::from_toml(EXAMPLE).unwrap();
        assert_eq!(config.issuer_name, "issuer.example:4450");
        assert_eq!(config.tokens_per_period, 1000);
        assert_eq!(config.registration_puzzle_bits, 22);
        assert!(matches!(
            config.settlement,
            Some(SettlementRelays::Directory(ref d)) if d.threshold == 2
        ));
        assert_eq!(
            IssuerConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
            config
        );
    }

    fn field_of(error: ConfigError) -> String {
        match error {
            ConfigError::Invalid { field, .. } => field,
            ConfigError::Parse { source, .. } => source.to_string(),
            other => other.to_string(),
        }
    }

    #[test]
    fn errors_name_the_field() {
        for (from, to, field) in [
            (
                "tokens_per_period = 1000",
                "tokens_per_period = 0",
                "tokens_per_period",
            ),
            (
                "key_rotation_secs = 604800",
                "key_rotation_secs = 0",
                "key_rotation_secs",
            ),
            (
                "issuer_name = \"issuer.example:4450\"",
                "issuer_name = \"a@b\"",
                "issuer_name",
            ),
            (
                "session_lifetime_secs = 600",
                "session_lifetime_secs = 600\ncolour = 1",
                "colour",
            ),
            (
                "key_rotation_secs = 604800",
                "key_rotation_secs = 18446744073709551615",
                "key_rotation_secs",
            ),
            (
                "registration_puzzle_bits = 22",
                "registration_puzzle_bits = 33",
                "registration_puzzle_bits",
            ),
            (
                "threshold = 2",
                "threshold = 4",
                "settlement.directory.threshold",
            ),
        ] {
            assert!(EXAMPLE.contains(from), "{from}");
            // The first occurrence (`threshold` is also in [directory]).
            let text = EXAMPLE.replacen(from, to, 1);
            let error = IssuerConfig::from_toml(&text).unwrap_err();
            assert!(field_of(error).contains(field), "{field}");
        }
    }

    #[test]
    fn settlement_relays_can_be_listed_instead() {
        let text = EXAMPLE
            .split("[settlement.directory]")
            .next()
            .unwrap()
            .to_owned()
            + "[settlement.relays]\n\"operator-1\" = [\"ed25519:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA\"]\n";
        let config = IssuerConfig::from_toml(&text).unwrap();
        let Some(SettlementRelays::Relays(operators)) = &config.settlement else {
            panic!("{:?}", config.settlement);
        };
        assert_eq!(operators["operator-1"].len(), 1);
        assert_eq!(
            IssuerConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
            config
        );
        let empty = text.replace(
            "[\"ed25519:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA\"]",
            "[]",
        );
        let error = IssuerConfig::from_toml(&empty).unwrap_err();
        assert!(field_of(error).contains("settlement.relays.operator-1"));
    }
}
