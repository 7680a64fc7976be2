//! `[measure]` of a validator: how it measures relays (issue 14).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use openrelay_types::KeyPin;
use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// `[measure]`: where the validator's probes come from and where its sink
/// and echo listen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasureConfig {
    /// The source address of the probes' paths. It must not be the
    /// validator's published service address (`listen`): a relay that
    /// knew the address probes come from could serve them fast and
    /// everyone else slow. (With `listen` on an unspecified address the
    /// published one is not known here: give relays another.)
    pub probe_bind: IpAddr,
    /// Where the prober's sink and echo listen (the egress under test
    /// connects there); default: `probe_bind`. Not the service address
    /// either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_bind: Option<IpAddr>,
    /// The validator's EVM account key (what `openrelay validator join`
    /// registered): it commits and reveals the epoch's reports and
    /// approves the slashes they lead to. Relative paths are under
    /// `state_dir`; default `evm.key` there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key_file: Option<PathBuf>,
    /// The directory the probes pick their relays and partner hops from,
    /// fetched and verified as clients do it.
    pub directory: crate::DirectoryConfig,
    /// Relays (by relay id, `ed25519:...`, as `openrelay operator status`
    /// shows it) the validator trusts to be the partner hop of its tests:
    /// its own, provisioned to carry more than any relay it tests. They
    /// must be listed in the directory like any relay, or the relays under
    /// test would refuse them (an ingress forwards only to listed egresses)
    /// or recognise the probes by them. Empty: partners are picked from
    /// the directory by what they are known to carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partners: Vec<KeyPin>,
    /// **Tests only, dishonest**: the validator reports these relays at
    /// these capacities whatever it measures (a validator inflating a
    /// friend), so tests can show that the verdict still fails the relay
    /// and penalises the validator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub misreport_for_tests: Vec<MisreportForTests>,
    /// `[measure.account]`: the probes' account at a token issuer, so they
    /// show access tokens and pay egresses as any client's paths do.
    /// Absent: the probes carry no tokens (only relays that require none
    /// can be measured; the others are not reported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<ProbeAccountConfig>,
}

/// One relay a dishonest test validator misreports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MisreportForTests {
    /// The relay's id.
    pub relay: KeyPin,
    /// The capacity reported, bits per second.
    pub capacity_bps: u64,
}

/// `[measure.account]`: the account a measuring validator's probes take
/// their tokens from. The validator creates it itself at the first start
/// (a random password kept in `password_file`) and logs in afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeAccountConfig {
    /// The issuer's address and the key its TLS handshake must prove.
    pub issuer: crate::ServiceEndpoint,
    /// The issuer's name in token challenges (the relays' `issuer_name`).
    pub issuer_name: String,
    /// The account's name at the issuer (the issuer's operator grants it
    /// a validator's quota by this name: `[issuer] account_quotas`).
    pub username: String,
    /// The account's password; written (mode 0600) at the first start.
    /// Relative paths are under `state_dir`; default
    /// `probe-account.secret` there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// The default name of a measuring validator's probe account password
/// file in its state directory.
pub const PROBE_PASSWORD_FILE: &str = "probe-account.secret";

/// The longest account name an issuer takes (`openrelay_issuer_client::MAX_USERNAME`).
const MAX_USERNAME: usize = 64;

impl ProbeAccountConfig {
    /// The password file of a validator whose state directory is
    /// `state_dir`.
    pub fn password_file(&self, state_dir: &std::path::Path) -> PathBuf {
        state_dir.join(
            self.password_file
                .as_deref()
                .unwrap_or(std::path::Path::new(PROBE_PASSWORD_FILE)),
        )
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !crate::issuer::is_server_name(&self.issuer_name) {
            return Err(ConfigError::invalid(
                "measure.account.issuer_name",
                "must be a server name (host or host:port), the relays' issuer_name",
            ));
        }
        let username_ok = !self.username.is_empty()
            && self.username.len() <= MAX_USERNAME
            && self.username.bytes().all(|b| b.is_ascii_graphic());
        if !username_ok {
            return Err(ConfigError::invalid(
                "measure.account.username",
                format!("must be 1 to {MAX_USERNAME} printable ASCII characters without spaces"),
            ));
        }
        if self
            .password_file
            .as_deref()
            .is_some_and(|p| p.as_os_str().is_empty() || p.ends_with(".."))
        {
            return Err(ConfigError::invalid(
                "measure.account.password_file",
                "must name a file",
            ));
        }
        Ok(())
    }
}

/// The default name of a validator's EVM account key file in its state
/// directory.
pub const ACCOUNT_KEY_FILE: &str = "evm.key";

impl MeasureConfig {
    /// The EVM account key file of a validator whose state directory is
    /// `state_dir`.
    pub fn account_key_file(&self, state_dir: &std::path::Path) -> PathBuf {
        state_dir.join(
            self.account_key_file
                .as_deref()
                .unwrap_or(std::path::Path::new(ACCOUNT_KEY_FILE)),
        )
    }

    /// The sink's and echo's address.
    pub fn sink_ip(&self) -> IpAddr {
        self.sink_bind.unwrap_or(self.probe_bind)
    }

    pub(crate) fn validate(&self, listen: SocketAddr) -> Result<(), ConfigError> {
        for (field, ip) in [
            ("measure.probe_bind", self.probe_bind),
            ("measure.sink_bind", self.sink_ip()),
        ] {
            if ip == listen.ip() {
                return Err(ConfigError::invalid(
                    field,
                    format!(
                        "must not be the validator's published service address ({ip}, from \
                         `listen`): relays would recognise probes by it"
                    ),
                ));
            }
            if ip.is_unspecified() {
                return Err(ConfigError::invalid(
                    field,
                    "must be an address of this host, not unspecified (the probes' source \
                     must be known to differ from the service address)",
                ));
            }
        }
        if let Some(account) = &self.account {
            account.validate()?;
        }
        Ok(())
    }
}
