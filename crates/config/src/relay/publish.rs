//! `[publish]`: how a relay describes itself to a registry and the
//! validators.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::chain::EvmAddress;
use crate::{ConfigError, ServiceEndpoint};

/// How a relay describes itself to a registry and the validators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// The registry.
    pub registry: ServiceEndpoint,
    /// Every validator (its address and TLS key): a relay is listed only
    /// when most validators saw it publish, so it publishes to each of them
    /// too (a registry cannot then hide it from them).
    #[serde(default)]
    pub validators: Vec<ServiceEndpoint>,
    /// The operator's signing key (hex); every descriptor needs its signature.
    pub operator_key_file: PathBuf,
    /// The operator's public name.
    pub operator_name: String,
    /// How to reach the operator (e.g. `mailto:`).
    pub operator_contact: String,
    /// The operator's jurisdiction (ISO 3166-1 alpha-2).
    pub jurisdiction: String,
    /// The EVM account the operator registered its key and stakes from
    /// (`openrelay operator register`). A chain-backed registry lists this
    /// relay only if the operator's signed profile names it, so it is
    /// required there and may be left out where the registry is not on a
    /// chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_account: Option<EvmAddress>,
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
    /// `[publish.attestation]`: the TEE whose evidence each descriptor
    /// carries (default: none).
    #[serde(default)]
    pub attestation: RelayAttestationConfig,
}

/// Where a relay's attestation evidence comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RelayAttestationConfig {
    /// No TEE: descriptors carry no evidence (clients with `[trust]
    /// attestation = "require"` do not use the relay).
    #[default]
    None,
    /// No TEE either: a key stands in for one and signs the SHA-384 of the
    /// relay's own executable as its measurement. Proves nothing (whoever
    /// holds the key signs anything); for the devnet and CI, whose clients
    /// name the key as `[trust.tee] insecure_simulated_root`.
    InsecureSimulated {
        /// The simulated TEE's key: a file holding its 32-byte Ed25519 seed
        /// as 64 hex digits.
        key_file: PathBuf,
        /// Measure the executable with one byte appended, as a relay
        /// running a modified build would be measured (tests of clients
        /// refusing unapproved software).
        #[serde(default)]
        measure_modified_build_for_tests: bool,
    },
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
