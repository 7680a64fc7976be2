//! A small HTTP/3 client for talking to a registry (relays publishing,
//! validators fetching proposals, clients fetching directories): one QUIC
//! connection per call, the registry's key pinned as for relays.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use openrelay_transport::call::{self, PinnedConnection};
use openrelay_types::{ErrorKind, HasKind, KeyPin};

/// Time one call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to the registry failed. (Its text includes the reason, as
/// callers log it in one line.)
#[derive(Debug, thiserror::Error)]
#[error("registry at {addr}: {reason}")]
pub struct CallError {
    /// The registry.
    pub addr: SocketAddr,
    /// What went wrong.
    pub reason: call::CallError,
}

impl HasKind for CallError {
    fn kind(&self) -> ErrorKind {
        self.reason.kind()
    }
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

    /// `method path` with `body` over a fresh direct UDP socket; returns the
    /// status and the response body. For relays and validators, whose
    /// addresses are public anyway; clients use [`RegistryClient::call_via`].
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), CallError> {
        let connecting = PinnedConnection::open(self.addr, self.pin);
        self.within_time(async { Self::exchange(connecting.await?, method, path, body).await })
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
        let connecting = PinnedConnection::connect(endpoint, self.addr, self.pin, mtu);
        self.within_time(async { Self::exchange(connecting.await?, method, path, body).await })
            .await
    }

    /// `call` within [`CALL_TIMEOUT`].
    async fn within_time(
        &self,
        call: impl Future<Output = Result<(u16, Vec<u8>), call::CallError>>,
    ) -> Result<(u16, Vec<u8>), CallError> {
        let reason = match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(reason)) => reason,
            Err(_) => call::CallError::TimedOut,
        };
        Err(CallError {
            addr: self.addr,
            reason,
        })
    }

    async fn exchange(
        connection: PinnedConnection,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), call::CallError> {
        let response = connection.request(method, path, &[], body).await?;
        Ok((response.status, response.body))
    }
}
