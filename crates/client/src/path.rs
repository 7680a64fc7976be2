//! One path through the network: the outer QUIC connection to the ingress, a
//! connect-udp tunnel through it to the egress (RFC 9298), and the inner QUIC +
//! HTTP/3 connection to the egress carried in that tunnel's datagrams. The
//! ingress sees only the outer connection; the egress sees the inner one
//! arriving from the ingress's address.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openrelay_config::{PathConfig, RelayEntry};
use openrelay_transport::datagrams::{DatagramRouter, DatagramSender, Route};
use openrelay_transport::endpoint::{self, INNER_MTU, OUTER_MTU, Tuning};
use openrelay_transport::tunnel_socket::TunnelSocket;
use openrelay_transport::{h3guard, h3util, udp};
use openrelay_wire::target::Target;

use crate::account::{Account, MissingAccess};
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

/// Why a path could not be built. Names relays, never destinations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
        reason: String,
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
    Local(String),
}

impl BuildError {
    /// The hop to blame.
    pub fn hop(&self) -> Option<Hop> {
        match self {
            BuildError::Handshake { hop, .. } => Some(*hop),
            BuildError::TunnelRefused { .. } => Some(Hop::Ingress),
            BuildError::AccessRefused { .. } => None,
            BuildError::Local(_) => None,
        }
    }
}

/// A working path.
pub struct Path {
    /// The ingress relay.
    pub ingress: RelayEntry,
    /// The egress relay.
    pub egress: RelayEntry,
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
    relay: &RelayEntry,
    future: impl Future<Output = Result<T, String>>,
) -> Result<T, BuildError> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(reason)) => Err(BuildError::Handshake {
            hop,
            relay: relay.name.clone(),
            reason,
        }),
        Err(_) => Err(BuildError::Handshake {
            hop,
            relay: relay.name.clone(),
            reason: "timed out".into(),
        }),
    }
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

/// Starts HTTP/3 on `connection` and waits until the peer's SETTINGS allow
/// extended CONNECT and datagrams. The connection driver runs in a task.
async fn start_h3(
    connection: &quinn::Connection,
) -> Result<(InnerRequests, JoinHandle<()>), String> {
    let (mut driver, requests) = h3guard::client(connection)
        .await
        .map_err(|e| e.to_string())?;
    let task = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    if !h3util::wait_for_datagram_support(&requests, Duration::from_secs(5)).await {
        task.abort();
        return Err("peer does not support HTTP datagrams and extended CONNECT".into());
    }
    Ok((requests, task))
}

impl Path {
    /// Builds a path through `ingress` to `egress`, showing the ingress an
    /// access token of `account` (if any). Nobody pays the egress yet: a
    /// browsing path gets its payer with [`Path::pay_with`].
    pub async fn build(
        ingress: &RelayEntry,
        egress: &RelayEntry,
        bind: Option<IpAddr>,
        config: &PathConfig,
        account: Option<&Account>,
    ) -> Result<Path, BuildError> {
        let limit = Duration::from_millis(config.handshake_timeout_ms);
        let idle = Duration::from_millis(config.idle_timeout_ms);
        let keepalive = Duration::from_millis(config.keepalive_ms);
        let local = |e: &dyn std::fmt::Display| BuildError::Local(e.to_string());

        // Outer: a fresh UDP socket per path, so successive paths share no
        // source port the ingress could link.
        let outer_endpoint =
            udp::endpoint(udp::local_for(bind, ingress.addr), None).map_err(|e| local(&e))?;
        let outer_config = endpoint::client_config(
            ingress.key,
            &Tuning::client(idle, keepalive, OUTER_MTU).with_congestion(config.congestion),
        )
        .map_err(|e| local(&e))?;
        let server_name = ingress.addr.ip().to_string();
        let mut access = Err(MissingAccess::NoAccount);
        let (outer, outer_requests, outer_driver, outer_router_task, tunnel_stream, tunnel_rx) =
            with_timeout(limit, Hop::Ingress, ingress, async {
                let connecting = outer_endpoint
                    .connect_with(outer_config, ingress.addr, &server_name)
                    .map_err(|e| e.to_string())?;
                let outer = connecting.await.map_err(|e| e.to_string())?;
                let (mut requests, driver) = start_h3(&outer).await?;
                let router = DatagramRouter::new();
                let router_task = tokio::spawn({
                    let router = Arc::clone(&router);
                    let outer = outer.clone();
                    async move {
                        router.run(outer).await;
                    }
                });
                let mut request = h3util::connect_udp_request(
                    &ingress.addr.to_string(),
                    &Target::from_socket_addr(egress.addr),
                )
                .map_err(|e| e.to_string())?;
                // The access token rides on the tunnel request itself: no
                // extra round trip (RFC 9577 §2.2). Taken only now, so a
                // failed handshake costs none.
                if let Some(account) = account {
                    access = account.access_authorization(ingress);
                }
                if let Ok(credentials) = &access
                    && let Ok(value) = http::HeaderValue::try_from(credentials.as_str())
                {
                    request
                        .headers_mut()
                        .insert(http::header::AUTHORIZATION, value);
                }
                let mut stream = requests
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let stream_id = stream.id().into_inner();
                let (tx, rx) = mpsc::channel::<Bytes>(TUNNEL_QUEUE);
                let route = router
                    .register(stream_id, Arc::new(tx))
                    .map_err(|e| e.to_string())?;
                let response = stream.recv_response().await.map_err(|e| e.to_string())?;
                Ok((
                    outer,
                    requests,
                    driver,
                    (router_task, route),
                    (stream, response.status(), proxy_status_details(&response)),
                    rx,
                ))
            })
            .await?;
        let (router_task, tunnel_route) = outer_router_task;
        let (mut tunnel_stream, status, details) = tunnel_stream;
        let abort_outer = |reason: &[u8]| {
            outer.close(quinn::VarInt::from_u32(0x100), reason);
            outer_driver.abort();
            router_task.abort();
        };
        if status == http::StatusCode::UNAUTHORIZED {
            abort_outer(b"no access");
            return Err(BuildError::AccessRefused {
                relay: ingress.name.clone(),
                details,
                hint: access
                    .err()
                    .map_or("the token shown was refused", MissingAccess::hint),
            });
        }
        if !status.is_success() {
            abort_outer(b"tunnel refused");
            return Err(BuildError::TunnelRefused {
                relay: ingress.name.clone(),
                status: status.as_u16(),
            });
        }

        // Inner: QUIC to the egress over the tunnel, pinned to the egress key.
        let sender = DatagramSender::new(outer.clone(), tunnel_stream.id().into_inner())
            .map_err(|e| local(&e))?;
        let outer_local = outer_endpoint.local_addr().map_err(|e| local(&e))?;
        let socket = TunnelSocket::new(sender, tunnel_rx, outer_local, egress.addr);
        let inner_endpoint = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            None,
            Arc::new(socket),
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| local(&e))?;
        // The inner connection notices a dead egress a little later than the
        // outer notices a dead ingress, so a dead ingress is blamed correctly.
        let inner_config = endpoint::client_config(
            egress.key,
            &Tuning::client(idle + Duration::from_millis(500), keepalive, INNER_MTU)
                .with_congestion(config.congestion),
        )
        .map_err(|e| local(&e))?;
        let egress_name = egress.addr.ip().to_string();
        let inner_result = with_timeout(limit, Hop::Egress, egress, async {
            let connecting = inner_endpoint
                .connect_with(inner_config, egress.addr, &egress_name)
                .map_err(|e| e.to_string())?;
            let inner = connecting.await.map_err(|e| e.to_string())?;
            let (requests, driver) = start_h3(&inner).await?;
            Ok((inner, requests, driver))
        })
        .await;
        let (inner, requests, inner_driver) = match inner_result {
            Ok(parts) => parts,
            Err(e) => {
                let _ = tunnel_stream.finish().await;
                abort_outer(b"egress unreachable");
                return Err(e);
            }
        };
        let inner_router = DatagramRouter::new();
        let inner_router_task = tokio::spawn({
            let router = Arc::clone(&inner_router);
            let inner = inner.clone();
            async move {
                router.run(inner).await;
            }
        });
        let tasks = vec![outer_driver, router_task, inner_driver, inner_router_task];
        Ok(Path {
            ingress: ingress.clone(),
            egress: egress.clone(),
            outer,
            inner,
            requests,
            inner_router,
            tunnel_stream: tokio::sync::Mutex::new(tunnel_stream),
            _outer_requests: outer_requests,
            _tunnel_route: tunnel_route,
            _inner_endpoint: inner_endpoint,
            _outer_endpoint: outer_endpoint,
            tasks,
            built_at: std::time::Instant::now(),
            open_flows: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Pays the egress with `account`'s tokens as the path goes, until it
    /// closes (browsing paths; a refill path never pays: see
    /// `docs/payments.md`).
    pub fn pay_with(&mut self, account: &Arc<Account>) {
        self.tasks.push(tokio::spawn(
            Arc::clone(account).pay(self.requests.clone(), self.egress.clone()),
        ));
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
