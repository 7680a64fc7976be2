//! `[ingress]`: an ingress relay's settings.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{AdmissionConfig, RelayCommon};
use crate::ConfigError;

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
fn default_tunnel_idle_timeout_secs() -> u64 {
    120
}

impl IngressConfig {
    /// Checks the section (with the relay's other settings it depends on).
    pub(super) fn validate(&self, common: &RelayCommon) -> Result<(), ConfigError> {
        if self.egress_relays.is_empty() {
            return Err(ConfigError::invalid(
                "ingress.egress_relays",
                "must list at least one egress relay address",
            ));
        }
        for (field, value) in [
            (
                "ingress.max_tunnels_per_client",
                self.max_tunnels_per_client,
            ),
            (
                "ingress.max_tunnels_per_address_with_tokens",
                self.max_tunnels_per_address_with_tokens,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be at least 1"));
            }
        }
        if self.tunnel_idle_timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "ingress.tunnel_idle_timeout_secs",
                "must be at least 1",
            ));
        }
        if let Some(admission) = &self.admission {
            admission.validate_at("ingress.admission")?;
            admission.validate_key_source("ingress.admission", common.directory.is_some())?;
            if common.operator_key.is_none() && common.publish.is_none() {
                return Err(ConfigError::invalid(
                    "operator_key",
                    "a token-gated ingress ([ingress.admission]) scopes access tokens to its operator's key: give `operator_key` (or [publish] with the operator's key file)",
                ));
            }
        }
        Ok(())
    }
}
