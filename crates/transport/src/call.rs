//! A small pinned HTTP/3 client for openrelay's own services (the registry,
//! the token issuer): a QUIC connection to one address whose key is pinned as
//! for relays, then any number of requests on it, each with a bounded
//! response body.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes};
use openrelay_types::KeyPin;
use tokio::task::JoinHandle;

use crate::endpoint::{self, Tuning};
use crate::error_kind;
use crate::h3guard::{self, ClientRequests};

/// Largest response body accepted (a full directory is well under this).
pub const MAX_RESPONSE: usize = 32 << 20;

/// A response: status, header fields and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

/// An HTTP/3 connection to a pinned service; closed when dropped.
pub struct PinnedConnection {
    addr: SocketAddr,
    connection: quinn::Connection,
    requests: ClientRequests,
    driver: JoinHandle<()>,
}

impl std::fmt::Debug for PinnedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedConnection")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for PinnedConnection {
    fn drop(&mut self) {
        self.connection
            .close(quinn::VarInt::from_u32(0x100), b"done");
        self.driver.abort();
    }
}

impl PinnedConnection {
    /// Connects over `quic` to `addr`, which must prove `pin`.
    /// `mtu` must fit what that endpoint can carry.
    pub async fn connect(
        quic: &quinn::Endpoint,
        addr: SocketAddr,
        pin: KeyPin,
        mtu: u16,
    ) -> Result<Self, String> {
        let tuning = Tuning::client(Duration::from_secs(10), Duration::from_secs(2), mtu);
        let config = endpoint::client_config(pin, &tuning).map_err(|e| e.to_string())?;
        // Errors carry kinds, not the libraries' text, which quotes what the
        // peer sent (see `error_kind`).
        let connection = quic
            .connect_with(config, addr, &addr.ip().to_string())
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| format!("handshake failed: {}", error_kind::quic(&e)))?;
        let (mut driver, requests) = h3guard::client(&connection)
            .await
            .map_err(|e| format!("HTTP/3 failed: {}", error_kind::connection(&e)))?;
        let driver = tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        });
        Ok(PinnedConnection {
            addr,
            connection,
            requests,
            driver,
        })
    }

    /// The QUIC connection (e.g. to see why the service closed it).
    pub fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// `method path` with `headers` and `body`; the response.
    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(http::HeaderName, String)],
        body: Vec<u8>,
    ) -> Result<Response, String> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(()).map_err(|e| e.to_string())?;
        let failed =
            |e: h3::error::StreamError| format!("request failed: {}", error_kind::stream(&e));
        let mut stream = self
            .requests
            .clone()
            .send_request(request)
            .await
            .map_err(failed)?;
        // A server that has answered may stop reading the request (RFC 9114
        // §4.1.1); the client must still take the complete response, so a
        // failure to send the rest is not an error by itself.
        let sent = async {
            if !body.is_empty() {
                stream.send_data(Bytes::from(body)).await?;
            }
            stream.finish().await
        };
        if let Err(e) = sent.await {
            tracing::debug!(
                error = error_kind::stream(&e),
                "request body not fully sent; reading the response"
            );
        }
        let response = stream.recv_response().await.map_err(failed)?;
        let mut received = Vec::new();
        while let Some(mut chunk) = stream.recv_data().await.map_err(failed)? {
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
        Ok(Response {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: received,
        })
    }
}
