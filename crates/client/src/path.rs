//! One path through the network: the outer QUIC connection to the ingress, a
//! connect-udp tunnel through it to the egress (RFC 9298), and the inner QUIC +
//! HTTP/3 connection to the egress carried in that tunnel's datagrams. The
//! ingress sees only the outer connection; the egress sees the inner one
//! arriving from the ingress's address.

use openrelay_types::error::{ErrorKind, HasKind};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openrelay_config::PathConfig;

use crate::relay::Relay;
use openrelay_directory::DirectoryError;
use openrelay_transport::datagrams::{DatagramRouter, DatagramSender, Route, RouteError};
use openrelay_transport::endpoint::{self, INNER_MTU, OUTER_MTU, Tuning};
use openrelay_transport::tunnel_socket::TunnelSocket;
use openrelay_transport::{h3guard, h3util, udp};
use openrelay_wire::target::Target;

use crate::access::{AccessTokens, MissingAccess};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// An h3 request handle (cheap to clone), its streams guarded.
pub type InnerRequests = h3guard::ClientRequests;
type OuterStream = h3guard::ClientStream;

/// Packets queued from the tunnel towards the inner QUIC stack.
const TUNNEL_QUEUE: usize = 8192;

/// Which hop of a path failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// Client to ingress (or the ingress itself).
    Ingress,
    /// Ingress to egress (or the egress itself).
    Egress,
}

/// Why a handshake with a relay failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// It took longer than `path.handshake_timeout_ms`.
    #[error("timed out")]
    TimedOut,
    /// The QUIC connection could not be started.
    #[error(transparent)]
    Connect(#[from] quinn::ConnectError),
    /// The QUIC connection failed (including a key that is not the pinned
    /// one).
    #[error(transparent)]
    Connection(#[from] quinn::ConnectionError),
    /// HTTP/3 failed on the connection.
    #[error(transparent)]
    Http3(#[from] h3::error::ConnectionError),
    /// The tunnel request failed.
    #[error(transparent)]
    Request(#[from] h3::error::StreamError),
    /// The relay's SETTINGS do not allow what a path needs (RFC 9297
    /// §2.1.1, RFC 9220).
    #[error("peer does not support HTTP datagrams and extended CONNECT")]
    NoDatagrams,
    /// The tunnel request could not be formed.
    #[error(transparent)]
    Http(#[from] http::Error),
    /// The tunnel's datagrams could not be routed.
    #[error(transparent)]
    Route(#[from] RouteError),
}

impl HasKind for HandshakeFailure {
    fn kind(&self) -> ErrorKind {
        match self {
            HandshakeFailure::TimedOut
            | HandshakeFailure::Connect(_)
            | HandshakeFailure::Connection(_)
            | HandshakeFailure::Http3(_)
            | HandshakeFailure::Request(_) => ErrorKind::Unreachable,
            HandshakeFailure::NoDatagrams => ErrorKind::PeerMisbehaved,
            HandshakeFailure::Http(_) | HandshakeFailure::Route(_) => ErrorKind::Internal,
        }
    }
}

impl HandshakeFailure {
    /// Whether `self` and `other` are one failure for the log (QUIC errors
    /// compared as they are; the rest by kind).
    fn same_as(&self, other: &HandshakeFailure) -> bool {
        match (self, other) {
            (HandshakeFailure::Connect(a), HandshakeFailure::Connect(b)) => a == b,
            (HandshakeFailure::Connection(a), HandshakeFailure::Connection(b)) => a == b,
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
        }
    }
}

/// Why a path could not be set up on this host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalFailure {
    /// A socket (or the tunnel's local address).
    #[error(transparent)]
    Socket(#[from] std::io::Error),
    /// The TLS configuration.
    #[error(transparent)]
    Tls(#[from] openrelay_transport::tls::TlsError),
    /// The tunnel's datagram sender.
    #[error(transparent)]
    Route(#[from] RouteError),
}

impl HasKind for LocalFailure {
    fn kind(&self) -> ErrorKind {
        match self {
            LocalFailure::Socket(_) | LocalFailure::Tls(_) => ErrorKind::Local,
            LocalFailure::Route(_) => ErrorKind::Internal,
        }
    }
}

/// Why a path could not be built. Names relays, never destinations.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A QUIC handshake failed or timed out.
    #[error("{hop:?} relay {relay}: handshake failed: {reason}")]
    Handshake {
        /// The hop.
        hop: Hop,
        /// The relay's name.
        relay: String,
        /// What failed.
        reason: Arc<HandshakeFailure>,
    },
    /// The ingress wants an access token and got none, or a bad one
    /// (RFC 9577: 401 with a `PrivateToken` challenge). Not the relay's
    /// fault: it is not blamed.
    #[error("ingress relay {relay} requires an access token ({details}); {hint}")]
    AccessRefused {
        /// The ingress's name.
        relay: String,
        /// The ingress's Proxy-Status details, e.g. "token required".
        details: String,
        /// What the user can do about it.
        hint: &'static str,
    },
    /// The ingress refused the tunnel to the egress.
    #[error("ingress relay {relay} refused the tunnel: HTTP {status}")]
    TunnelRefused {
        /// The ingress's name.
        relay: String,
        /// The status it answered.
        status: u16,
    },
    /// Local setup failed (socket, TLS config).
    #[error("local setup failed: {0}")]
    Local(Arc<LocalFailure>),
    /// The relay's own signatures over what the directory says of it (its
    /// descriptor by the relay, its operator and its QUIC key; its
    /// operator's profile) do not verify, though the directory's validators
    /// signed it: refused before any packet is sent to it, and excluded
    /// like a relay that failed (checked once per directory,
    /// `ListedRelay::check_signatures`).
    #[error("{hop:?} relay {relay}: its directory listing does not verify: {source}")]
    BadListing {
        /// The hop.
        hop: Hop,
        /// The relay's name.
        relay: String,
        /// Which signature failed (boxed: a rare error, kept out of
        /// every `Result` a path returns).
        source: Box<DirectoryError>,
    },
}

impl HasKind for BuildError {
    fn kind(&self) -> ErrorKind {
        match self {
            BuildError::Handshake { reason, .. } => reason.kind(),
            BuildError::AccessRefused { .. } => ErrorKind::NotAuthenticated,
            BuildError::TunnelRefused { .. } => ErrorKind::Refused,
            BuildError::Local(failure) => failure.kind(),
            BuildError::BadListing { .. } => ErrorKind::NotAuthenticated,
        }
    }
}

macro_rules! local_failure {
    ($($error:ty),*) => {$(
        impl From<$error> for BuildError {
            fn from(error: $error) -> Self {
                BuildError::Local(Arc::new(error.into()))
            }
        }
    )*};
}
local_failure!(
    std::io::Error,
    openrelay_transport::tls::TlsError,
    RouteError
);

impl PartialEq for BuildError {
    /// One failure for the log: same variant, relay and status, and the
    /// same handshake failure (`HandshakeFailure::same_as`).
    fn eq(&self, other: &BuildError) -> bool {
        use BuildError::*;
        match (self, other) {
            (
                Handshake { hop, relay, reason },
                Handshake {
                    hop: h,
                    relay: r,
                    reason: why,
                },
            ) => hop == h && relay == r && reason.same_as(why),
            (
                AccessRefused {
                    relay,
                    details,
                    hint,
                },
                AccessRefused {
                    relay: r,
                    details: d,
                    hint: h,
                },
            ) => relay == r && details == d && hint == h,
            (
                TunnelRefused { relay, status },
                TunnelRefused {
                    relay: r,
                    status: s,
                },
            ) => relay == r && status == s,
            (Local(a), Local(b)) => std::mem::discriminant(&**a) == std::mem::discriminant(&**b),
            (
                BadListing { hop, relay, source },
                BadListing {
                    hop: h,
                    relay: r,
                    source: s,
                },
            ) => hop == h && relay == r && source == s,
            _ => false,
        }
    }
}

impl BuildError {
    /// The hop to blame.
    pub fn hop(&self) -> Option<Hop> {
        match self {
            BuildError::Handshake { hop, .. } | BuildError::BadListing { hop, .. } => Some(*hop),
            BuildError::TunnelRefused { .. } => Some(Hop::Ingress),
            BuildError::AccessRefused { .. } => None,
            BuildError::Local(_) => None,
        }
    }
}

/// A working path.
pub struct Path {
    /// The ingress relay.
    pub ingress: Relay,
    /// The egress relay.
    pub egress: Relay,
    outer: quinn::Connection,
    inner: quinn::Connection,
    requests: InnerRequests,
    inner_router: Arc<DatagramRouter>,
    tunnel_stream: tokio::sync::Mutex<OuterStream>,
    // h3 closes a client connection when its last SendRequest is dropped.
    _outer_requests: InnerRequests,
    _tunnel_route: Route,
    _inner_endpoint: quinn::Endpoint,
    _outer_endpoint: quinn::Endpoint,
    tasks: Vec<JoinHandle<()>>,
    built_at: std::time::Instant,
    open_flows: std::sync::atomic::AtomicU64,
}

/// A flow's hold on its path: keeps the path alive and counted while the
/// flow is open.
#[derive(Debug)]
pub struct PathUse(Arc<Path>);

impl Drop for PathUse {
    fn drop(&mut self) {
        self.0
            .open_flows
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Path")
            .field("ingress", &self.ingress.name)
            .field("egress", &self.egress.name)
            .finish_non_exhaustive()
    }
}

impl Drop for Path {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn with_timeout<T>(
    limit: Duration,
    hop: Hop,
    relay: &Relay,
    future: impl Future<Output = Result<T, HandshakeFailure>>,
) -> Result<T, BuildError> {
    let reason = match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(reason)) => reason,
        Err(_) => HandshakeFailure::TimedOut,
    };
    Err(BuildError::Handshake {
        hop,
        relay: relay.name.clone(),
        reason: Arc::new(reason),
    })
}

/// The `details` parameter of a response's Proxy-Status (RFC 9209 §2.1.5),
/// or empty.
fn proxy_status_details(response: &http::Response<()>) -> String {
    response
        .headers()
        .get("proxy-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("details=").nth(1))
        .map(|d| d.trim_matches('"').to_owned())
        .unwrap_or_default()
}

/// A router for `connection`'s HTTP datagrams and the task feeding it
/// until the connection ends (the outer tunnel and the inner connection
/// each have one).
fn spawn_router(connection: &quinn::Connection) -> (Arc<DatagramRouter>, JoinHandle<()>) {
    let router = DatagramRouter::new();
    let task = tokio::spawn({
        let router = Arc::clone(&router);
        let connection = connection.clone();
        async move {
            router.run(connection).await;
        }
    });
    (router, task)
}

/// Starts HTTP/3 on `connection` and waits until the peer's SETTINGS allow
/// extended CONNECT and datagrams. The connection driver runs in a task.
async fn start_h3(
    connection: &quinn::Connection,
) -> Result<(InnerRequests, JoinHandle<()>), HandshakeFailure> {
    let (mut driver, requests) = h3guard::client(connection).await?;
    let task = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    if !h3util::wait_for_datagram_support(&requests, Duration::from_secs(5)).await {
        task.abort();
        return Err(HandshakeFailure::NoDatagrams);
    }
    Ok((requests, task))
}

/// The outer half of a path: the QUIC connection to the ingress and the
/// connect-udp tunnel requested through it to the egress (RFC 9298), not
/// yet carrying anything, its answer perhaps not yet in
/// ([`Tunnel::admitted`]).
struct Tunnel {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    // h3 closes a client connection when its last SendRequest is dropped.
    requests: InnerRequests,
    stream: OuterStream,
    route: Route,
    /// The tunnel's datagrams, towards the inner connection.
    incoming: mpsc::Receiver<Bytes>,
    /// The h3 driver and the datagram router.
    tasks: Vec<JoinHandle<()>>,
    /// What to tell the user if the ingress refuses the token shown.
    access_hint: &'static str,
}

impl Tunnel {
    /// Connects to `ingress` (a fresh UDP socket, so successive paths share
    /// no source port the ingress could link) and asks it for a tunnel to
    /// `egress`, showing an access token of `access` (if any). Returns as
    /// soon as the request is sent: the tunnel's datagrams may follow it
    /// at once (RFC 9298 §5), its answer is [`Tunnel::admitted`].
    async fn open(
        ingress: &Relay,
        egress: &Relay,
        bind: Option<IpAddr>,
        config: &PathConfig,
        access: Option<&dyn AccessTokens>,
    ) -> Result<Tunnel, BuildError> {
        let limit = Duration::from_millis(config.handshake_timeout_ms);
        let tuning = Tuning::client(
            Duration::from_millis(config.idle_timeout_ms),
            Duration::from_millis(config.keepalive_ms),
            OUTER_MTU,
        )
        .with_congestion(config.congestion);
        let endpoint = udp::endpoint(udp::local_for(bind, ingress.addr), None)?;
        let client_config = endpoint::client_config(ingress.pin(), &tuning)?;
        let server_name = ingress.addr.ip().to_string();
        let mut shown = Err(MissingAccess::NoAccount);
        let (connection, requests, tasks, stream, route, incoming) =
            with_timeout(limit, Hop::Ingress, ingress, async {
                let connection = endpoint
                    .connect_with(client_config, ingress.addr, &server_name)?
                    .await?;
                let (mut requests, driver) = start_h3(&connection).await?;
                let (router, router_task) = spawn_router(&connection);
                let tasks = vec![driver, router_task];
                let mut request = h3util::connect_udp_request(
                    &ingress.addr.to_string(),
                    &Target::from_socket_addr(egress.addr),
                )?;
                // The access token rides on the tunnel request itself: no
                // extra round trip (RFC 9577 §2.2). Taken only now, so a
                // failed handshake costs none.
                if let Some(access) = access {
                    shown = access.authorization(ingress);
                }
                if let Ok(credentials) = &shown
                    && let Ok(value) = http::HeaderValue::try_from(credentials.as_str())
                {
                    request
                        .headers_mut()
                        .insert(http::header::AUTHORIZATION, value);
                }
                let stream = requests.send_request(request).await?;
                let (tx, incoming) = mpsc::channel::<Bytes>(TUNNEL_QUEUE);
                let route = router.register(stream.id().into_inner(), Arc::new(tx))?;
                Ok((connection, requests, tasks, stream, route, incoming))
            })
            .await?;
        Ok(Tunnel {
            endpoint,
            connection,
            requests,
            stream,
            route,
            incoming,
            tasks,
            access_hint: shown
                .err()
                .map_or("the token shown was refused", MissingAccess::hint),
        })
    }

    /// Waits for the ingress's answer to the tunnel request: `Ok` if it
    /// admitted the tunnel, else why not (the caller abandons the tunnel).
    async fn admitted(&mut self, ingress: &Relay, limit: Duration) -> Result<(), BuildError> {
        let stream = &mut self.stream;
        let response = with_timeout(limit, Hop::Ingress, ingress, async {
            Ok(stream.recv_response().await?)
        })
        .await?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status == http::StatusCode::UNAUTHORIZED {
            Err(BuildError::AccessRefused {
                relay: ingress.name.clone(),
                details: proxy_status_details(&response),
                hint: self.access_hint,
            })
        } else {
            Err(BuildError::TunnelRefused {
                relay: ingress.name.clone(),
                status: status.as_u16(),
            })
        }
    }

    /// Gives the tunnel up (the inner connection could not be set up).
    async fn abandon(mut self, reason: &[u8]) {
        let _ = self.stream.finish().await;
        self.connection
            .close(quinn::VarInt::from_u32(0x100), reason);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The inner half of a path: QUIC + HTTP/3 to the egress inside a tunnel's
/// datagrams, pinned to the egress's key.
struct Inner {
    endpoint: quinn::Endpoint,
    connection: quinn::Connection,
    requests: InnerRequests,
    router: Arc<DatagramRouter>,
    /// The h3 driver and the datagram router.
    tasks: Vec<JoinHandle<()>>,
}

impl Inner {
    /// Connects to `egress` through a tunnel: its datagrams go out through
    /// `sender` and come in on `incoming`; `local` is the outer socket's
    /// address.
    async fn connect(
        sender: DatagramSender,
        incoming: mpsc::Receiver<Bytes>,
        local: std::net::SocketAddr,
        egress: &Relay,
        config: &PathConfig,
    ) -> Result<Inner, BuildError> {
        let socket = TunnelSocket::new(sender, incoming, local, egress.addr);
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            None,
            Arc::new(socket),
            Arc::new(quinn::TokioRuntime),
        )?;
        // The inner connection notices a dead egress a little later than the
        // outer notices a dead ingress, so a dead ingress is blamed correctly.
        let tuning = Tuning::client(
            Duration::from_millis(config.idle_timeout_ms) + Duration::from_millis(500),
            Duration::from_millis(config.keepalive_ms),
            INNER_MTU,
        )
        .with_congestion(config.congestion);
        let client_config = endpoint::client_config(egress.pin(), &tuning)?;
        let server_name = egress.addr.ip().to_string();
        let limit = Duration::from_millis(config.handshake_timeout_ms);
        let (connection, requests, driver) = with_timeout(limit, Hop::Egress, egress, async {
            let connection = endpoint
                .connect_with(client_config, egress.addr, &server_name)?
                .await?;
            let (requests, driver) = start_h3(&connection).await?;
            Ok((connection, requests, driver))
        })
        .await?;
        let (router, router_task) = spawn_router(&connection);
        Ok(Inner {
            endpoint,
            connection,
            requests,
            router,
            tasks: vec![driver, router_task],
        })
    }
}

impl Path {
    /// Builds a path through `ingress` to `egress`: the tunnel
    /// (`Tunnel::open`, showing the ingress an access token of `access`,
    /// if any) and the inner connection in it (`Inner::connect`), whose
    /// handshake starts right behind the tunnel request, before the
    /// ingress answers it (RFC 9298 §5: a client MAY send datagrams
    /// optimistically; the ingress holds them until it admits the tunnel,
    /// and drops them if it refuses). That saves the round trip to the
    /// ingress the answer took.
    /// Nobody pays the egress: whoever wants to hears of the path once it
    /// is built and runs its payer with [`Path::attach`].
    pub async fn build(
        ingress: &Relay,
        egress: &Relay,
        bind: Option<IpAddr>,
        config: &PathConfig,
        access: Option<&dyn AccessTokens>,
    ) -> Result<Path, BuildError> {
        // Before anything is sent: both relays' own signatures, which the
        // client checks of the relays it uses only (docs/directory-format.md,
        // "Verifying a directory").
        for (relay, hop) in [(ingress, Hop::Ingress), (egress, Hop::Egress)] {
            relay
                .check_listing()
                .map_err(|source| BuildError::BadListing {
                    hop,
                    relay: relay.name.clone(),
                    source: Box::new(source),
                })?;
        }
        // Each phase's time, for the cold start's accounting (a debug
        // line; docs/BENCHMARKS.md "Cold start").
        let started = std::time::Instant::now();
        let mut tunnel = Tunnel::open(ingress, egress, bind, config, access).await?;
        let opened = started.elapsed();
        let incoming = std::mem::replace(&mut tunnel.incoming, mpsc::channel(1).1);
        let socket =
            DatagramSender::new(tunnel.connection.clone(), tunnel.stream.id().into_inner())
                .map_err(BuildError::from)
                .and_then(|sender| Ok((sender, tunnel.endpoint.local_addr()?)));
        let (sender, local) = match socket {
            Ok(socket) => socket,
            Err(e) => {
                tunnel.abandon(b"local failure").await;
                return Err(e);
            }
        };
        let limit = Duration::from_millis(config.handshake_timeout_ms);
        // A refusal ends the inner handshake at once (its endpoint is
        // dropped with the future).
        let built = tokio::try_join!(
            async {
                tunnel.admitted(ingress, limit).await?;
                Ok(started.elapsed())
            },
            async {
                let inner = Inner::connect(sender, incoming, local, egress, config).await?;
                Ok((inner, started.elapsed()))
            },
        );
        let inner = match built {
            Ok((admitted, (inner, connected))) => {
                tracing::debug!(
                    outer_us = opened.as_micros() as u64,
                    admitted_us = admitted.as_micros() as u64,
                    inner_us = connected.as_micros() as u64,
                    "path phases (since the build started): outer connection and request sent, tunnel admitted, inner connection up"
                );
                inner
            }
            Err(e) => {
                let reason: &[u8] = match &e {
                    BuildError::AccessRefused { .. } => b"no access",
                    BuildError::TunnelRefused { .. } => b"tunnel refused",
                    _ => b"egress unreachable",
                };
                tunnel.abandon(reason).await;
                return Err(e);
            }
        };
        let mut tasks = tunnel.tasks;
        tasks.extend(inner.tasks);
        Ok(Path {
            ingress: ingress.clone(),
            egress: egress.clone(),
            outer: tunnel.connection,
            inner: inner.connection,
            requests: inner.requests,
            inner_router: inner.router,
            tunnel_stream: tokio::sync::Mutex::new(tunnel.stream),
            _outer_requests: tunnel.requests,
            _tunnel_route: tunnel.route,
            _inner_endpoint: inner.endpoint,
            _outer_endpoint: tunnel.endpoint,
            tasks,
            built_at: std::time::Instant::now(),
            open_flows: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Runs `task` for as long as the path lives (e.g. its payer: a
    /// browsing path pays its egress, a refill path never does; see
    /// `docs/payments.md`).
    pub fn attach(&mut self, task: JoinHandle<()>) {
        self.tasks.push(task);
    }

    /// Registers a flow on this path until the returned hold is dropped.
    pub fn hold(self: &Arc<Self>) -> PathUse {
        self.open_flows
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        PathUse(Arc::clone(self))
    }

    /// Flows open on this path.
    pub fn open_flows(&self) -> u64 {
        self.open_flows.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How long ago the path was built.
    pub fn age(&self) -> std::time::Duration {
        self.built_at.elapsed()
    }

    /// A handle for opening requests on the inner connection.
    pub fn requests(&self) -> InnerRequests {
        self.requests.clone()
    }

    /// The inner connection (for datagram senders).
    pub fn inner(&self) -> &quinn::Connection {
        &self.inner
    }

    /// Routes the inner connection's datagrams to flows.
    pub fn inner_router(&self) -> &Arc<DatagramRouter> {
        &self.inner_router
    }

    /// Whether both connections are still up.
    pub fn is_alive(&self) -> bool {
        self.outer.close_reason().is_none() && self.inner.close_reason().is_none()
    }

    /// Whether the outer connection (the ingress hop) is down.
    pub fn outer_failed(&self) -> bool {
        self.outer.close_reason().is_some()
    }

    /// Resolves when the path dies, with the hop to blame. A tunnel stream
    /// ended by the ingress means it lost the egress.
    pub async fn failed(&self) -> Hop {
        let tunnel_ended = async {
            let mut stream = self.tunnel_stream.lock().await;
            // The ingress sends nothing on the tunnel stream; any end of it
            // (FIN, reset, connection loss) ends the tunnel.
            loop {
                match stream.recv_data().await {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => return,
                }
            }
        };
        tokio::select! {
            _ = self.outer.closed() => Hop::Ingress,
            _ = self.inner.closed() => {
                if self.outer.close_reason().is_some() { Hop::Ingress } else { Hop::Egress }
            }
            () = tunnel_ended => {
                if self.outer.close_reason().is_some() { Hop::Ingress } else { Hop::Egress }
            }
        }
    }

    /// Closes both connections.
    pub fn close(&self, reason: &'static str) {
        endpoint::log_connection_stats(&self.outer, "outer");
        endpoint::log_connection_stats(&self.inner, "inner");
        self.inner
            .close(quinn::VarInt::from_u32(0x100), reason.as_bytes());
        self.outer
            .close(quinn::VarInt::from_u32(0x100), reason.as_bytes());
    }
}
