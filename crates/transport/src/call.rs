//! A small pinned HTTP/3 client for openrelay's own services (the registry,
//! the token issuer): a QUIC connection to one address whose key is pinned as
//! for relays, then any number of requests on it, each with a bounded
//! response body. The one way every caller opens a connection to a service:
//! [`PinnedConnection::open`] from a fresh local socket (relays, validators,
//! the issuer, tools), [`PinnedConnection::connect`] over a given endpoint
//! (a client's, tunnelled through its relays).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes};
use openrelay_types::{ErrorKind, HasKind, KeyPin};

use crate::endpoint::{self, OUTER_MTU, Tuning};
use crate::error_kind;
use crate::h3guard::{self, ClientRequests};
use crate::task::AbortOnDrop;
use crate::tls::TlsError;
use crate::udp;

/// Largest response body accepted (a full directory is well under this).
pub const MAX_RESPONSE: usize = 32 << 20;

/// Why a call to a service failed. Its text names kinds of QUIC and HTTP/3
/// failures ([`error_kind`]), never the libraries' text, which quotes what
/// the peer sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No local UDP socket for the connection.
    #[error("cannot open a local UDP socket")]
    Socket(#[source] std::io::Error),
    /// The TLS configuration for the pinned key could not be made.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// quinn refused to start the connection (e.g. the endpoint is closed).
    #[error("cannot start the connection")]
    Connect(#[source] quinn::ConnectError),
    /// The QUIC handshake failed (unreachable, or another key than the pin).
    #[error("handshake failed: {0}")]
    Handshake(&'static str),
    /// HTTP/3 could not be set up on the connection.
    #[error("HTTP/3 failed: {0}")]
    Http3(&'static str),
    /// The request could not be built (a header value is not valid).
    #[error("invalid request")]
    InvalidRequest(#[source] http::Error),
    /// The request or its response failed on the stream.
    #[error("request failed: {0}")]
    Request(&'static str),
    /// The response body is larger than [`MAX_RESPONSE`].
    #[error("response too large")]
    ResponseTooLarge,
    /// The call took longer than its caller allowed.
    #[error("timed out")]
    TimedOut,
}

impl HasKind for CallError {
    fn kind(&self) -> ErrorKind {
        match self {
            CallError::Socket(_) | CallError::Connect(_) => ErrorKind::Local,
            CallError::Tls(_) => ErrorKind::Config,
            CallError::InvalidRequest(_) => ErrorKind::Internal,
            CallError::Handshake(_)
            | CallError::Http3(_)
            | CallError::Request(_)
            | CallError::TimedOut => ErrorKind::Unreachable,
            CallError::ResponseTooLarge => ErrorKind::PeerMisbehaved,
        }
    }
}

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

/// An HTTP/3 connection to a pinned service; closed when dropped (its
/// driver task with it).
pub struct PinnedConnection {
    addr: SocketAddr,
    connection: quinn::Connection,
    requests: ClientRequests,
    _driver: AbortOnDrop<()>,
    /// The endpoint [`PinnedConnection::open`] made for this connection
    /// alone (dropped after the connection, which closes first).
    _endpoint: Option<quinn::Endpoint>,
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
    }
}

impl PinnedConnection {
    /// Connects from a fresh local UDP socket to `addr`, which must prove
    /// `pin`: for callers whose address is public anyway (relays,
    /// validators, the issuer, operators' tools).
    pub async fn open(addr: SocketAddr, pin: KeyPin) -> Result<Self, CallError> {
        let quic = udp::endpoint(udp::local_for(None, addr), None).map_err(CallError::Socket)?;
        let mut connection = Self::connect(&quic, addr, pin, OUTER_MTU).await?;
        connection._endpoint = Some(quic);
        Ok(connection)
    }

    /// Connects over `quic` to `addr`, which must prove `pin`.
    /// `mtu` must fit what that endpoint can carry.
    pub async fn connect(
        quic: &quinn::Endpoint,
        addr: SocketAddr,
        pin: KeyPin,
        mtu: u16,
    ) -> Result<Self, CallError> {
        let tuning = Tuning::client(Duration::from_secs(10), Duration::from_secs(2), mtu);
        let config = endpoint::client_config(pin, &tuning)?;
        let connection = quic
            .connect_with(config, addr, &addr.ip().to_string())
            .map_err(CallError::Connect)?
            .await
            .map_err(|e| CallError::Handshake(error_kind::quic(&e)))?;
        let (mut driver, requests) = h3guard::client(&connection)
            .await
            .map_err(|e| CallError::Http3(error_kind::connection(&e)))?;
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        }));
        Ok(PinnedConnection {
            addr,
            connection,
            requests,
            _driver: driver,
            _endpoint: None,
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
    ) -> Result<Response, CallError> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("https://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(()).map_err(CallError::InvalidRequest)?;
        let failed = |e: h3::error::StreamError| CallError::Request(error_kind::stream(&e));
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
                return Err(CallError::ResponseTooLarge);
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
