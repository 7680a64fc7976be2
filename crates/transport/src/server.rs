//! The HTTP/3 server loop both relays run: accept QUIC connections, speak
//! HTTP/3 with extended CONNECT and datagrams enabled (RFC 9220 / RFC 9297
//! §2.1.1 settings), route each connection's datagrams, and hand every request
//! to the relay's [`RequestHandler`]. Shutdown is one signal every flow can
//! wait on.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use openrelay_wire::proxy_status::{self, ProxyErrorType};
use tokio::sync::watch;
use tracing::debug;

use crate::datagrams::DatagramRouter;
use crate::endpoint::{self, Tuning, log_connection_stats};
use crate::identity::Identity;
use crate::tls::TlsError;
use crate::udp;

/// A request stream on the server side.
pub type ServerStream = h3::server::RequestStream<h3_quinn::BidiStream<Bytes>, Bytes>;

/// Resolves once the server is shutting down; cheap to clone into every flow.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Waits for shutdown.
    pub async fn wait(&self) {
        let mut receiver = self.0.clone();
        // A dropped sender also means shutdown.
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

/// What a request handler may use of its connection.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// The QUIC connection (for datagram senders; its peer address is
    /// sensitive in a relay and must not be logged).
    pub connection: quinn::Connection,
    /// The connection's datagram router.
    pub router: Arc<DatagramRouter>,
    /// The server's shutdown signal.
    pub shutdown: Shutdown,
}

/// A relay's request logic.
pub trait RequestHandler: Send + Sync + 'static {
    /// Serves one request to completion.
    fn handle(
        self: Arc<Self>,
        request: http::Request<()>,
        stream: ServerStream,
        context: RequestContext,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// Why a relay's QUIC server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A relay's QUIC endpoint on `listen`, authenticated by `identity`.
pub fn bind(
    listen: SocketAddr,
    identity: &Identity,
    tuning: &Tuning,
) -> Result<quinn::Endpoint, StartError> {
    let server_config = endpoint::server_config(identity, tuning)?;
    udp::endpoint(listen, Some(server_config)).map_err(|source| StartError::Bind {
        addr: listen,
        source,
    })
}

/// Connections accepted by [`serve`].
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Connections whose handshake completed.
    pub connections: AtomicU64,
}

/// Serves `endpoint` with `handler` until `shutdown` resolves, then closes
/// every connection and waits briefly for the close to be sent.
pub async fn serve<H: RequestHandler>(
    endpoint: quinn::Endpoint,
    handler: Arc<H>,
    counters: Arc<ServerCounters>,
    shutdown: impl Future<Output = ()>,
) {
    let (trigger, receiver) = watch::channel(false);
    let signal = Shutdown(receiver);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                tokio::spawn(connection(
                    incoming,
                    Arc::clone(&handler),
                    Arc::clone(&counters),
                    signal.clone(),
                ));
            }
            () = &mut shutdown => break,
        }
    }
    let _ = trigger.send(true);
    endpoint.close(quinn::VarInt::from_u32(0x100), b"shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
}

async fn connection<H: RequestHandler>(
    incoming: quinn::Incoming,
    handler: Arc<H>,
    counters: Arc<ServerCounters>,
    shutdown: Shutdown,
) {
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(e) => {
            debug!(error = %e, "handshake failed");
            return;
        }
    };
    counters.connections.fetch_add(1, Ordering::Relaxed);
    let h3_connection = h3::server::builder()
        .enable_extended_connect(true)
        .enable_datagram(true)
        .build::<_, Bytes>(h3_quinn::Connection::new(connection.clone()))
        .await;
    let mut h3_connection = match h3_connection {
        Ok(c) => c,
        Err(e) => {
            debug!(error = %e, "HTTP/3 setup failed");
            return;
        }
    };
    let router = DatagramRouter::new();
    let datagram_task = tokio::spawn(Arc::clone(&router).run(connection.clone()));
    let context = RequestContext {
        connection: connection.clone(),
        router,
        shutdown: shutdown.clone(),
    };
    loop {
        tokio::select! {
            accepted = h3_connection.accept() => match accepted {
                Ok(Some(resolver)) => {
                    let handler = Arc::clone(&handler);
                    let context = context.clone();
                    tokio::spawn(async move {
                        match resolver.resolve_request().await {
                            Ok((request, stream)) => handler.handle(request, stream, context).await,
                            Err(e) => debug!(error = %e, "malformed request"),
                        }
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    debug!(error = %e, "connection ended");
                    break;
                }
            },
            () = shutdown.wait() => break,
        }
    }
    datagram_task.abort();
    log_connection_stats(&connection, "client");
}

/// Answers `stream` with `status` and, if given, a Proxy-Status naming
/// `proxy_name` and the error (RFC 9209 §2), then ends the stream.
pub async fn respond_error(
    mut stream: ServerStream,
    status: http::StatusCode,
    proxy_name: &str,
    error: Option<ProxyErrorType>,
) {
    let mut response = http::Response::builder().status(status);
    if let Some(error) = error {
        response = response.header("proxy-status", proxy_status::format(proxy_name, error));
    }
    if let Ok(response) = response.body(()) {
        let _ = stream.send_response(response).await;
        let _ = stream.finish().await;
    }
}

/// Answers a request refused for its credentials: `status`, `Proxy-Status:
/// <proxy_name>; error=http_request_denied; details="<details>"` (RFC 9209
/// §2.1.5; `details` is a fixed text, never a credential) and, when given, a
/// `WWW-Authenticate` challenge (RFC 9110 §11.6.1); then ends the stream.
pub async fn respond_denied(
    mut stream: ServerStream,
    status: http::StatusCode,
    proxy_name: &str,
    details: &str,
    challenge: Option<String>,
) {
    let proxy_status = format!(
        "{}; details=\"{details}\"",
        proxy_status::format(proxy_name, ProxyErrorType::HttpRequestDenied),
    );
    let mut response = http::Response::builder()
        .status(status)
        .header("proxy-status", proxy_status);
    if let Some(challenge) = challenge {
        response = response.header(http::header::WWW_AUTHENTICATE, challenge);
    }
    if let Ok(response) = response.body(()) {
        let _ = stream.send_response(response).await;
        let _ = stream.finish().await;
    }
}

/// Answers `stream` with 200 and, for connect-udp, `Capsule-Protocol: ?1`
/// (RFC 9298 §3.3). Returns false if the client is gone.
pub async fn respond_ok(stream: &mut ServerStream, capsule_protocol: bool) -> bool {
    let mut response = http::Response::builder().status(http::StatusCode::OK);
    if capsule_protocol {
        response = response.header(crate::h3util::CAPSULE_PROTOCOL, "?1");
    }
    match response.body(()) {
        Ok(response) => stream.send_response(response).await.is_ok(),
        Err(_) => false,
    }
}

/// Answers `stream` with `status` and `body`, then ends the stream.
pub async fn respond(stream: ServerStream, status: http::StatusCode, body: Bytes) {
    if let Ok(response) = http::Response::builder().status(status).body(()) {
        send(stream, response, body).await;
    }
}

/// Answers `stream` with `response` (status and header fields) and `body`,
/// then ends the stream.
pub async fn send(mut stream: ServerStream, response: http::Response<()>, body: Bytes) {
    if stream.send_response(response).await.is_err() {
        return;
    }
    if !body.is_empty() && stream.send_data(body).await.is_err() {
        return;
    }
    let _ = stream.finish().await;
}

/// Reads a request body of at most `limit` bytes; `None` if it is larger or
/// the stream fails.
pub async fn read_body(stream: &mut ServerStream, limit: usize) -> Option<Vec<u8>> {
    use bytes::Buf;
    let mut body = Vec::new();
    loop {
        match stream.recv_data().await {
            Ok(Some(mut chunk)) => {
                if body.len() + chunk.remaining() > limit {
                    return None;
                }
                while chunk.has_remaining() {
                    let piece = chunk.chunk();
                    body.extend_from_slice(piece);
                    let n = piece.len();
                    chunk.advance(n);
                }
            }
            Ok(None) => return Some(body),
            Err(_) => return None,
        }
    }
}
