//! A small HTTP/3 client for talking to a registry (relays publishing,
//! validators fetching proposals, clients fetching directories): one QUIC
//! connection per call, the registry's key pinned as for relays.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes};
use openrelay_config::KeyPin;
use openrelay_transport::endpoint::{self, OUTER_INITIAL_MTU, Tuning};
use openrelay_transport::udp;

/// Largest response body accepted (a full directory is well under this).
pub const MAX_RESPONSE: usize = 32 << 20;
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
        self.call_via(&endpoint, OUTER_INITIAL_MTU, method, path, body)
            .await
    }

    /// The same call over `endpoint`, e.g. one whose packets travel inside a
    /// connect-udp flow through the relays, so the registry never learns who
    /// asked. `initial_mtu` must fit what that endpoint can carry.
    pub async fn call_via(
        &self,
        endpoint: &quinn::Endpoint,
        initial_mtu: u16,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), CallError> {
        let failed = |reason: String| CallError::Failed {
            addr: self.addr,
            reason,
        };
        let exchange = self.exchange(endpoint, initial_mtu, method, path, body);
        match tokio::time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(failed("timed out".into())),
        }
    }

    async fn exchange(
        &self,
        quic: &quinn::Endpoint,
        initial_mtu: u16,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let tuning = Tuning::client(Duration::from_secs(10), Duration::from_secs(2), initial_mtu);
        let config = endpoint::client_config(self.pin, &tuning).map_err(|e| e.to_string())?;
        let connection = quic
            .connect_with(config, self.addr, &self.addr.ip().to_string())
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let (mut driver, mut requests) =
            h3::client::new(h3_quinn::Connection::new(connection.clone()))
                .await
                .map_err(|e| e.to_string())?;
        let drive = tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        let request = http::Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.addr))
            .body(())
            .map_err(|e| e.to_string())?;
        let result = async {
            let mut stream = requests
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            if !body.is_empty() {
                stream
                    .send_data(Bytes::from(body))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            stream.finish().await.map_err(|e| e.to_string())?;
            let response = stream.recv_response().await.map_err(|e| e.to_string())?;
            let mut received = Vec::new();
            while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
                if received.len() + chunk.remaining() > MAX_RESPONSE {
                    return Err("response too large".to_owned());
                }
                while chunk.has_remaining() {
                    let piece = chunk.chunk();
                    received.extend_from_slice(piece);
                    let n = piece.len();
                    chunk.advance(n);
                }
            }
            Ok((response.status().as_u16(), received))
        }
        .await;
        connection.close(quinn::VarInt::from_u32(0x100), b"done");
        drive.abort();
        result
    }
}
