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

    /// `method path` with `body`; returns the status and the response body.
    pub async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), CallError> {
        let failed = |reason: String| CallError::Failed {
            addr: self.addr,
            reason,
        };
        match tokio::time::timeout(CALL_TIMEOUT, self.exchange(method, path, body)).await {
            Ok(result) => result.map_err(failed),
            Err(_) => Err(failed("timed out".into())),
        }
    }

    async fn exchange(
        &self,
        method: http::Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let local = udp::local_for(None, self.addr);
        let quic = udp::endpoint(local, None).map_err(|e| e.to_string())?;
        let tuning = Tuning::client(
            Duration::from_secs(10),
            Duration::from_secs(2),
            OUTER_INITIAL_MTU,
        );
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
