//! Where a service (the registry, a validator, the token issuer) is and the
//! key its TLS handshake must prove.

use std::net::SocketAddr;

use openrelay_types::KeyPin;
use serde::{Deserialize, Serialize};

/// A service's QUIC address and the key its TLS handshake must prove: the
/// registry's, a validator's or the token issuer's (`{ addr, key }`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEndpoint {
    /// The service's QUIC address.
    pub addr: SocketAddr,
    /// Its public key (each service prints its own at start-up).
    pub key: KeyPin,
}
