//! A small HTTP/3 client for talking to a registry (relays publishing,
//! validators fetching proposals, clients fetching directories): one QUIC
//! connection per call, the registry's key pinned as for relays.

use std::net::SocketAddr;
use std::time::Duration;

use openrelay_transport::call::PinnedConnection;
use openrelay_transport::endpoint::OUTER_MTU;
use openrelay_transport::udp;
use openrelay_types::KeyPin;

/// Time one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to the registry failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The call did not complete (unreachable, wrong key, timed out, ...).
    #[error("registry at {addr}: {reason}")]
    Failed {
        /// The registry.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// A registry to call.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    addr: SocketAddr,
    pin: KeyPin,
}

impl RegistryClient {
    /// A client for the registry at `addr` holding `pin`.
    pub fn new(addr: SocketAddr, pin: KeyPin) -> Self {
        RegistryClient { addr, pin }
    }

    /// The registry's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `method path` with `body` over a direct UDP socket; returns the status
    /// and the response body. For relays and validators, whose addresses are
    /// public anyway; clients use [`RegistryClient::call_via`].
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), CallError> {
        let endpoint = udp::endpoint(udp::local_for(None, self.addr), None).map_err(|e| {
            CallError::Failed {
                addr: self.addr,
                reason: e.to_string(),
            }
        })?;
        self.call_via(&endpoint, OUTER_MTU, method, path, body)
            .await
    }

    /// The same call over `endpoint`, e.g. one whose packets travel inside a
    /// connect-udp flow through the relays, so the registry never learns who
    /// asked. `mtu` must fit what that endpoint can carry.
    pub async fn call_via(
        &self,
        endpoint: &quinn::Endpoint,
        mtu: u16,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), CallError> {
        let failed = |reason: String| CallError::Failed {
            addr: self.addr,
            reason,
        };
        let exchange = self.exchange(endpoint, mtu, method, path, body);
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(failed("timed out".into())),
        }
    }

    async fn exchange(
        &self,
        quic: &quinn::Endpoint,
        mtu: u16,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let connection = PinnedConnection::connect(quic, self.addr, self.pin, mtu).await?;
        let response = connection.request(method, path, &[], body).await?;
        Ok((response.status, response.body))
    }
}
