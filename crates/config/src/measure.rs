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
        Ok(())
    }
}
