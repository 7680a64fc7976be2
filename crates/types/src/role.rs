//! What a relay does.

use serde::{Deserialize, Serialize};

/// What a relay does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayRole {
    /// Sees clients, forwards opaque datagrams to egress relays.
    Ingress,
    /// Sees destinations, never clients.
    Egress,
}

impl RelayRole {
    /// `ingress` or `egress`, as `Display` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            RelayRole::Ingress => "ingress",
            RelayRole::Egress => "egress",
        }
    }
}

impl std::fmt::Display for RelayRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
