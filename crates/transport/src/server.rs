//! The HTTP/3 server loop every openrelay server runs (both relays, the
//! registry, the issuer): accept QUIC connections within the server's
//! [`ServerLimits`], speak HTTP/3 with extended CONNECT and datagrams enabled
//! (RFC 9220 / RFC 9297 §2.1.1 settings) over the frame guard
//! ([`crate::h3guard`]), route each connection's datagrams, and hand every
//! request whose head arrived in time to the server's [`RequestHandler`].
//! Shutdown is one signal every flow can wait on.
//!
//! Logs name error kinds ([`crate::error_kind`]), never a library error's
//! text: those quote peer data (a malformed `:authority` is a destination).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use openrelay_wire::h3frame::code;
use openrelay_wire::proxy_status::{self, ProxyErrorType};
use tokio::sync::watch;
use tracing::debug;

use crate::datagrams::DatagramRouter;
use crate::early_datagrams::EarlyLimits;
use crate::endpoint::{self, Tuning, log_connection_stats};
use crate::error_kind;
use crate::h3guard::{self, RequestDeadlines};
use crate::identity::Identity;
use crate::limits::{Admission, ConnectionGate, ConnectionPermit, ServerLimits, StreamAllowance};
use crate::tls::TlsError;
use crate::udp;

/// A request stream on the server side (its frames guarded), boxed: h3's
/// request stream is about 650 bytes, and every async function it is moved
/// into keeps a copy of it for as long as the request lives (an idle
/// tunnel held three); a box makes each copy a pointer.
pub type ServerStream = Box<h3guard::ServerStream>;

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

impl openrelay_types::HasKind for StartError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        match self {
            StartError::Bind { .. } => openrelay_types::ErrorKind::Local,
            StartError::Tls(e) => openrelay_types::HasKind::kind(e),
        }
    }
}

/// Connection attempts quinn keeps waiting for [`serve`] to decide on
/// (quinn's default, 65,536, is sized for slower decisions; ours are
/// immediate).
const MAX_INCOMING: usize = 4096;
/// Bytes quinn buffers per waiting connection attempt after its first
/// packet (0-RTT data, which we never accept), and for all of them.
const INCOMING_BUFFER: u64 = 16 << 10;
const INCOMING_BUFFER_TOTAL: u64 = 4 << 20;

/// A bound server: its QUIC endpoint and the limits [`serve`] enforces.
#[derive(Debug)]
pub struct Listener {
    endpoint: quinn::Endpoint,
    limits: ServerLimits,
}

impl Listener {
    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }
}

/// A server's QUIC endpoint on `listen`, authenticated by `identity`,
/// tuned by `tuning`, with the stream counts and receive windows of
/// `limits` (request streams: the initial allowance, see
/// [`StreamAllowance`]).
pub fn bind(
    listen: SocketAddr,
    identity: &Identity,
    tuning: &Tuning,
    limits: ServerLimits,
) -> Result<Listener, StartError> {
    let mut tuning = tuning.clone();
    tuning.max_concurrent_bidi_streams = StreamAllowance::new(&limits).current();
    tuning.max_concurrent_uni_streams = limits.max_concurrent_uni_streams;
    tuning.stream_receive_window = limits.stream_receive_window;
    tuning.connection_receive_window = limits.connection_receive_window;
    let mut server_config = endpoint::server_config(identity, &tuning)?;
    server_config
        .max_incoming(MAX_INCOMING)
        .incoming_buffer_size(INCOMING_BUFFER)
        .incoming_buffer_size_total(INCOMING_BUFFER_TOTAL);
    let endpoint =
        udp::endpoint(listen, Some(server_config)).map_err(|source| StartError::Bind {
            addr: listen,
            source,
        })?;
    Ok(Listener { endpoint, limits })
}

/// Connections seen by [`serve`].
#[derive(Debug, Default)]
pub struct ServerCounters {
    /// Connections whose handshake completed.
    pub connections: AtomicU64,
    /// Connection attempts refused by a connection limit.
    pub refused: AtomicU64,
    /// Connection attempts asked to prove their address (QUIC Retry).
    pub retries: AtomicU64,
}

/// Serves `listener` with `handler` until `shutdown` resolves, then closes
/// every connection and waits briefly for the close to be sent.
pub async fn serve<H: RequestHandler>(
    listener: Listener,
    handler: Arc<H>,
    counters: Arc<ServerCounters>,
    shutdown: impl Future<Output = ()>,
) {
    let Listener { endpoint, limits } = listener;
    let gate = ConnectionGate::new(limits.clone());
    let limits = Arc::new(limits);
    let (trigger, receiver) = watch::channel(false);
    let signal = Shutdown(receiver);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                let admission = gate.admit(
                    incoming.remote_address().ip(),
                    incoming.remote_address_validated(),
                    incoming.may_retry(),
                );
                match admission {
                    Admission::Accept(permit) => match incoming.accept() {
                        Ok(connecting) => {
                            tokio::spawn(connection(
                                connecting,
                                permit,
                                Arc::clone(&handler),
                                Arc::clone(&counters),
                                Arc::clone(&limits),
                                signal.clone(),
                            ));
                        }
                        Err(e) => debug!(error = error_kind::quic(&e), "handshake failed"),
                    },
                    // A stateless Retry: a client at a real address answers
                    // it with a token proving that address (RFC 9000 §8.1.2).
                    Admission::Retry => {
                        counters.retries.fetch_add(1, Ordering::Relaxed);
                        debug!("address validation asked (retry)");
                        if incoming.retry().is_err() {
                            debug!("connection attempt dropped: retry impossible");
                        }
                    }
                    Admission::Refuse(refusal) => {
                        counters.refused.fetch_add(1, Ordering::Relaxed);
                        debug!(reason = refusal.kind_name(), "connection refused");
                        incoming.refuse();
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    let _ = trigger.send(true);
    endpoint.close(quinn::VarInt::from_u32(0x100), b"shutting down");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
}

/// One connection, for as long as it lives: most of them are idle tunnels,
/// so what this task keeps matters (it is one per connection). Whatever
/// it awaits only once runs in a box of its own (the handshake and HTTP/3
/// setup take 5.5 KiB of futures, which the task would otherwise keep room
/// for all its life: an idle connection's task was 7.2 KiB, now 0.7 KiB
/// beside the 2.5 KiB HTTP/3 connection), and each request runs
/// in a task of its own ([`request`]).
async fn connection<H: RequestHandler>(
    connecting: quinn::Connecting,
    mut permit: ConnectionPermit,
    handler: Arc<H>,
    counters: Arc<ServerCounters>,
    limits: Arc<ServerLimits>,
    shutdown: Shutdown,
) {
    let deadlines = RequestDeadlines::new(limits.request_body_timeout);
    let established = Box::pin(establish(
        connecting,
        &mut permit,
        &counters,
        &limits,
        deadlines.clone(),
    ))
    .await;
    let Some((connection, mut h3_connection)) = established else {
        return;
    };
    // A client may send a connect-udp request's datagrams before its
    // response (RFC 9298 §5): they wait for the request's admission.
    let router = DatagramRouter::holding_early(EarlyLimits::RELAY);
    let datagram_task = tokio::spawn(Arc::clone(&router).run(connection.clone()));
    let context = RequestContext {
        connection: connection.clone(),
        router,
        shutdown: shutdown.clone(),
    };
    let requests = Arc::new(OpenRequests {
        open: AtomicU32::new(0),
        allowance: Mutex::new(StreamAllowance::new(&limits)),
    });
    let going_away = loop {
        // h3's `accept` future keeps room for its GOAWAY (two request
        // streams and a shutdown, 1.3 KiB) while it waits; polling for the
        // stream keeps none. Unlike `accept`, this leaves h3's grease flag
        // set, so every response ends with a reserved frame (a few bytes,
        // which peers must ignore: RFC 9114 §7.2.8, §9).
        let accepted = std::future::poll_fn(|cx| h3_connection.poll_accept_request_stream(cx));
        tokio::select! {
            accepted = accepted => match accepted {
                Ok(Some(stream)) => {
                    let resolver = h3_connection.create_resolver(h3::frame::FrameStream::new(
                        h3::stream::BufRecvStream::new(stream),
                    ));
                    // On timeout the unresolved stream is dropped, which
                    // rejects it (H3_REQUEST_REJECTED both ways).
                    let resolving = Box::pin(tokio::time::timeout(
                        limits.request_head_timeout,
                        resolver.resolve_request(),
                    ));
                    tokio::spawn(request(
                        resolving,
                        Arc::clone(&handler),
                        context.clone(),
                        deadlines.clone(),
                        Arc::clone(&requests),
                    ));
                }
                Ok(None) => break true,
                Err(e) => {
                    debug!(error = error_kind::connection(&e), "connection ended");
                    break false;
                }
            },
            () = shutdown.wait() => break false,
            // Room made for a newcomer at a full server (`limits` docs).
            () = permit.evicted() => {
                debug!("connection closed to make room");
                connection.close(
                    quinn::VarInt::from_u32(code::H3_EXCESSIVE_LOAD as u32),
                    b"evicted",
                );
                break false;
            }
        }
    };
    // The peer is going away: tell it which requests were accepted (RFC
    // 9114 §5.2), as h3's `accept` does.
    if going_away && let Err(e) = Box::pin(h3_connection.shutdown(0)).await {
        debug!(error = error_kind::connection(&e), "connection ended");
    }
    datagram_task.abort();
    log_connection_stats(&connection, "client");
    drop(permit);
}

/// The handshake (bounded in time), the address's place at the gate, and
/// HTTP/3 setup; `None` if any fails. The HTTP/3 connection (2.5 KiB) is
/// boxed so that the caller's future does not keep a second slot for it
/// beside the result.
async fn establish(
    connecting: quinn::Connecting,
    permit: &mut ConnectionPermit,
    counters: &ServerCounters,
    limits: &ServerLimits,
    deadlines: RequestDeadlines,
) -> Option<(quinn::Connection, Box<h3guard::ServerConnection>)> {
    // 0.5-RTT (RFC 9001 §4.1.1): HTTP/3 starts before the handshake
    // completes, so our SETTINGS leave with the handshake's last flight. A
    // client must see them before its first extended CONNECT or datagram
    // (RFC 9220 §3, RFC 9297 §2.1.1); sent once the client's Finished is
    // in, they cost every connection a round trip. Nothing but SETTINGS is
    // sent early (requests are read once the handshake is done; clients
    // get no 0-RTT, resumption being off), and the address still counts
    // only once the handshake has proved it.
    let handshake = async {
        let (connection, handshake_done) = match connecting.into_0rtt() {
            Ok((connection, done)) => (connection, Some(done)),
            // Never for an incoming connection (quinn), but if so: wait.
            Err(connecting) => (connecting.await?, None),
        };
        let h3_connection = h3guard::server(&connection, deadlines).await;
        if let Some(done) = handshake_done {
            done.await;
        }
        // A handshake that failed closed the connection.
        if let Some(e) = connection.close_reason() {
            return Err(e);
        }
        Ok((connection, h3_connection))
    };
    // Dropping the attempt on timeout closes it (quinn closes a connection
    // no handle refers to).
    let (connection, h3_connection) =
        match tokio::time::timeout(limits.handshake_timeout, handshake).await {
            Ok(Ok(established)) => established,
            Ok(Err(e)) => {
                debug!(error = error_kind::quic(&e), "handshake failed");
                return None;
            }
            Err(_) => {
                debug!("handshake timed out");
                return None;
            }
        };
    // The handshake proved the address: it counts from now on.
    if let Err(refusal) = permit.established() {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        debug!(reason = refusal.kind_name(), "connection refused");
        connection.close(
            quinn::VarInt::from_u32(code::H3_EXCESSIVE_LOAD as u32),
            refusal.kind_name().as_bytes(),
        );
        return None;
    }
    counters.connections.fetch_add(1, Ordering::Relaxed);
    match h3_connection {
        Ok(h3_connection) => Some((connection, Box::new(h3_connection))),
        Err(e) => {
            debug!(error = error_kind::connection(&e), "HTTP/3 setup failed");
            None
        }
    }
}

/// A connection's requests whose heads arrived and are not yet done, and
/// its request-stream allowance, which follows them. Requests count from
/// their complete head on: streams whose heads never finish (slowloris)
/// would otherwise raise the allowance to its maximum for free, and it
/// never shrinks.
struct OpenRequests {
    open: AtomicU32,
    allowance: Mutex<StreamAllowance>,
}

impl OpenRequests {
    /// Counts a request open until the returned guard is dropped, raising
    /// `connection`'s allowance if it is half used.
    fn open(self: Arc<Self>, connection: &quinn::Connection) -> OpenRequest {
        let open_now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let raised = self
            .allowance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .on_open(open_now);
        if let Some(raised) = raised {
            connection.set_max_concurrent_bi_streams(raised.into());
        }
        OpenRequest(self)
    }
}

/// A request counted open at its connection ([`OpenRequests`]) until
/// dropped.
struct OpenRequest(Arc<OpenRequests>);

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

type Resolving = Pin<
    Box<
        dyn Future<
                Output = Result<
                    Result<(http::Request<()>, h3guard::ServerStream), h3::error::StreamError>,
                    tokio::time::error::Elapsed,
                >,
            > + Send,
    >,
>;

/// One request: its head, read within the head timeout (`resolving`, boxed
/// and gone once the head is in), then the handler. The task keeps only
/// the handler's future and a few pointers.
async fn request<H: RequestHandler>(
    resolving: Resolving,
    handler: Arc<H>,
    context: RequestContext,
    deadlines: RequestDeadlines,
    requests: Arc<OpenRequests>,
) {
    let (handling, _open, router, stream_id) = match resolving.await {
        Ok(Ok((request, stream))) => {
            let open = requests.open(&context.connection);
            // A CONNECT stream is a tunnel: no end in time.
            if request.method() == http::Method::CONNECT {
                deadlines.exempt(stream.id().into_inner());
            }
            let stream_id = stream.id().into_inner();
            let router = Arc::clone(&context.router);
            (
                handler.handle(request, Box::new(stream), context),
                open,
                router,
                stream_id,
            )
        }
        Ok(Err(e)) => return debug!(error = error_kind::stream(&e), "malformed request"),
        Err(_) => return debug!("request head timed out"),
    };
    handling.await;
    // Whatever the request sent ahead of its admission and was not
    // forwarded (it was refused) is dropped now, not at its expiry.
    router.discard_early(stream_id);
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
