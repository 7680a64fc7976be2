//! `[egress]`: an egress relay's settings.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::{DenyEntry, PaymentConfig, RelayCommon};
use crate::ConfigError;

/// Egress relay settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    /// Networks anonymous users may reach although the default policy
    /// refuses them: special-purpose addresses (loopback, private,
    /// link-local, ...), the relay host's own addresses, the infrastructure
    /// its config names. Weakens the destination policy: every client of
    /// this egress, whoever they are, reaches these networks as if from the
    /// relay's host. For a lab or a network of your own. `deny` still wins.
    /// Formerly `allow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dangerously_allow_networks: Vec<ipnet::IpNet>,
    /// Destinations refused even where `dangerously_allow_networks` names
    /// them (the operator's own networks and hosts): nets, addresses, or
    /// nets with ports.
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
            dangerously_allow_networks: Vec::new(),
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

impl EgressConfig {
    /// Checks the section (with the relay's other settings it depends on).
    pub(super) fn validate(&self, common: &RelayCommon) -> Result<(), ConfigError> {
        for (field, value) in [
            ("egress.connect_timeout_secs", self.connect_timeout_secs),
            ("egress.udp_idle_timeout_secs", self.udp_idle_timeout_secs),
            ("egress.dns_timeout_secs", self.dns_timeout_secs),
            ("egress.max_dns_lookups", u64::from(self.max_dns_lookups)),
            (
                "egress.max_flows_per_connection",
                u64::from(self.max_flows_per_connection),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be at least 1"));
            }
        }
        if let Some(payment) = &self.payment {
            payment.validate()?;
            payment
                .tokens
                .validate_key_source("egress.payment.tokens", common.directory.is_some())?;
        }
        Ok(())
    }
}
