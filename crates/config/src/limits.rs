//! `[limits]`: what a server (relay, registry, issuer) allows its peers.
//! Every field is optional; an absent one takes the default of the server's
//! role (`openrelay_transport::limits::ServerLimits`, documented in the
//! commented `examples/*.toml`).

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Connection, stream and time limits of a server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections at once, handshaking or established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Connections at once from one IPv4 address or one IPv6 /64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections_per_address: Option<usize>,
    /// Handshakes at once from addresses not yet proven; beyond this, new
    /// clients must first prove theirs with a QUIC Retry (one round trip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unvalidated_handshakes: Option<usize>,
    /// A QUIC handshake not complete after this long is abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_timeout_secs: Option<u64>,
    /// A request whose head (HEADERS) is not complete after this long is
    /// refused with H3_REQUEST_REJECTED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_head_timeout_secs: Option<u64>,
    /// A request body (other than a CONNECT tunnel) not complete this long
    /// after its head is cut off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body_timeout_secs: Option<u64>,
    /// Request streams one connection may have open at once (an egress
    /// defaults to `egress.max_flows_per_connection`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_streams_per_connection: Option<u32>,
    /// Unidirectional streams one connection may have open at once (HTTP/3
    /// needs 3: control and the two QPACK streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uni_streams_per_connection: Option<u32>,
}

impl LimitsConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let counts = [
            (
                "limits.max_connections",
                self.max_connections.map(|v| v as u64),
            ),
            (
                "limits.max_connections_per_address",
                self.max_connections_per_address.map(|v| v as u64),
            ),
            (
                "limits.max_unvalidated_handshakes",
                self.max_unvalidated_handshakes.map(|v| v as u64),
            ),
            ("limits.handshake_timeout_secs", self.handshake_timeout_secs),
            (
                "limits.request_head_timeout_secs",
                self.request_head_timeout_secs,
            ),
            (
                "limits.request_body_timeout_secs",
                self.request_body_timeout_secs,
            ),
            (
                "limits.max_streams_per_connection",
                self.max_streams_per_connection.map(u64::from),
            ),
        ];
        for (field, value) in counts {
            if value == Some(0) {
                return Err(ConfigError::invalid(field, "must be at least 1"));
            }
        }
        if self.max_uni_streams_per_connection.is_some_and(|v| v < 3) {
            return Err(ConfigError::invalid(
                "limits.max_uni_streams_per_connection",
                "must be at least 3 (HTTP/3 control stream and the two QPACK streams)",
            ));
        }
        if let (Some(all), Some(one)) = (self.max_connections, self.max_connections_per_address)
            && one > all
        {
            return Err(ConfigError::invalid(
                "limits.max_connections_per_address",
                "must not exceed limits.max_connections",
            ));
        }
        Ok(())
    }
}
