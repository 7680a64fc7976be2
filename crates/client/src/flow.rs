//! Flows on the inner connection: a CONNECT request stream per TCP flow (RFC
//! 9114 §4.4), a connect-udp request per UDP flow (RFC 9298). Opening a flow
//! on a path that turns out dead marks the path failed and retries on a new
//! one, so a relay failure costs new flows a delay, not an error. Every path
//! a flow tries counts against one budget with the builds it waits for
//! ([`crate::controller::PATHS_PER_REQUEST`]).

use openrelay_types::error::{ErrorKind, HasKind};
use std::sync::Arc;

use bytes::Bytes;
use openrelay_transport::datagrams::{DatagramSender, Route, RouteError};
use openrelay_transport::h3util;
use openrelay_transport::tunnel_socket::TunnelSocket;
use openrelay_wire::proxy_status::{self, ProxyErrorType};
use openrelay_wire::target::Target;
use tokio::sync::mpsc;
use tracing::debug;

use crate::manager::{PathError, PathManager, PathTries, Purpose};
use crate::path::{Hop, Path, PathUse};
use crate::selection::SiteKey;

/// A CONNECT stream on the inner connection.
pub type InnerStream = openrelay_transport::h3guard::ClientStream;

/// Datagrams queued per UDP flow towards the app.
const UDP_QUEUE: usize = 1024;

/// Why a request on the inner connection failed (the path may have died).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The request stream failed.
    #[error(transparent)]
    Stream(#[from] h3::error::StreamError),
    /// The request could not be formed.
    #[error(transparent)]
    Http(#[from] http::Error),
    /// Its datagrams could not be routed.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// A UDP flow was opened without a datagram route.
    #[error("no datagram route")]
    NoRoute,
}

impl HasKind for RequestError {
    fn kind(&self) -> ErrorKind {
        match self {
            RequestError::Stream(_) => ErrorKind::Unreachable,
            RequestError::Http(_) | RequestError::Route(_) | RequestError::NoRoute => {
                ErrorKind::Internal
            }
        }
    }
}

/// What kind of failure a [`FlowError`] is: what the front-ends (SOCKS,
/// HTTP proxy, TUN) decide their answer by (as arti's `HasKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowErrorKind {
    /// No path to the relays (none valid, all failed, backing off, the
    /// directory expired).
    NoPath,
    /// The client is shutting down.
    ShuttingDown,
    /// The egress refused the destination.
    Refused,
    /// The request failed on a path that stayed up.
    Broken,
}

/// Why a flow could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// No path to the relays.
    #[error(transparent)]
    NoPath(#[from] PathError),
    /// The egress answered with an error status.
    #[error(transparent)]
    Refused(EgressRefusal),
    /// The request failed on a path that stayed up (or on every path the
    /// flow could try).
    #[error("the flow failed: {0}")]
    Broken(#[from] RequestError),
}

impl HasKind for FlowError {
    fn kind(&self) -> ErrorKind {
        match self {
            FlowError::NoPath(e) => e.kind(),
            FlowError::Refused { .. } => ErrorKind::Refused,
            FlowError::Broken(e) => e.kind(),
        }
    }
}

/// The egress's answer to a flow it refused: what the front-ends pass on
/// to the app.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the egress refused the flow: HTTP {status} ({})", error.map_or("no details", |e| e.as_str()))]
pub struct EgressRefusal {
    /// The response status.
    pub status: u16,
    /// Its Proxy-Status error type, if any (RFC 9209).
    pub error: Option<ProxyErrorType>,
    /// Its Proxy-Status field as received, to pass on to the app.
    pub upstream_status: Option<String>,
}

impl FlowError {
    /// What kind of failure this is: what the front-ends decide their
    /// answer by (with [`FlowError::refusal`] for the egress's details).
    pub fn kind(&self) -> FlowErrorKind {
        match self {
            FlowError::NoPath(PathError::Closed) => FlowErrorKind::ShuttingDown,
            FlowError::NoPath(_) => FlowErrorKind::NoPath,
            FlowError::Refused(_) => FlowErrorKind::Refused,
            FlowError::Broken(_) => FlowErrorKind::Broken,
        }
    }

    /// The egress's answer, when it refused the flow
    /// ([`FlowErrorKind::Refused`]).
    pub fn refusal(&self) -> Option<&EgressRefusal> {
        match self {
            FlowError::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }
}

/// Why no QUIC endpoint could be run through the relays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunnelError {
    /// No UDP flow to the peer.
    #[error("no path to tunnel through: {0}")]
    Flow(#[from] FlowError),
    /// The endpoint over the flow could not be made.
    #[error("cannot run QUIC over the flow: {0}")]
    Endpoint(#[from] std::io::Error),
}

impl HasKind for TunnelError {
    fn kind(&self) -> ErrorKind {
        match self {
            TunnelError::Flow(e) => HasKind::kind(e),
            TunnelError::Endpoint(_) => ErrorKind::Local,
        }
    }
}

/// A TCP flow: the CONNECT stream, and the path it lives on.
pub struct TcpFlow {
    /// The request stream carrying the bytes.
    pub stream: InnerStream,
    _path: PathUse,
}

impl std::fmt::Debug for TcpFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpFlow").finish_non_exhaustive()
    }
}

/// What keeps a UDP flow open after its datagrams were handed to a socket.
pub struct UdpFlowHold {
    _stream: InnerStream,
    _route: Route,
    _path: PathUse,
}

impl std::fmt::Debug for UdpFlowHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpFlowHold").finish_non_exhaustive()
    }
}

impl UdpFlow {
    /// Turns the flow into a virtual UDP socket towards `peer`, to run QUIC
    /// to `peer` through the relays; the hold keeps the flow open.
    pub fn into_socket(self, peer: std::net::SocketAddr) -> (TunnelSocket, UdpFlowHold) {
        let local = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        let socket = TunnelSocket::new(self.sender, self.incoming, local, peer);
        let hold = UdpFlowHold {
            _stream: self.stream,
            _route: self._route,
            _path: self._path,
        };
        (socket, hold)
    }
}

impl std::fmt::Debug for UdpFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpFlow").finish_non_exhaustive()
    }
}

/// A UDP flow: its request stream, datagram sender and incoming payloads.
pub struct UdpFlow {
    /// Kept open for the flow's lifetime (closing it ends the flow).
    pub stream: InnerStream,
    /// Sends UDP payloads to the destination.
    pub sender: DatagramSender,
    /// UDP payloads from the destination.
    pub incoming: mpsc::Receiver<Bytes>,
    _route: Route,
    _path: PathUse,
}

/// A request stream on the inner connection, with its datagram route for
/// connect-udp.
type Opened = (InnerStream, Option<(Route, mpsc::Receiver<Bytes>)>);

/// Why one request on one path did not open a flow.
enum Attempt {
    /// The egress answered with an error: final.
    Refused(FlowError),
    /// The request failed (the path may have died).
    Failed(RequestError),
}

/// Sends `request` on `path` and waits for the egress's answer.
async fn attempt(
    path: &Path,
    request: http::Request<()>,
    datagrams: bool,
    early_data: &Bytes,
) -> Result<Opened, Attempt> {
    let mut requests = path.requests();
    let sent = async {
        let mut stream = requests.send_request(request).await?;
        // Register before the response so no early datagram is lost.
        let route = if datagrams {
            let (tx, rx) = mpsc::channel(UDP_QUEUE);
            let route = path
                .inner_router()
                .register(stream.id().into_inner(), Arc::new(tx))?;
            Some((route, rx))
        } else {
            None
        };
        // Optimistic data (sent before the response) saves a round trip
        // through both relays. HTTP/3 frames it inside the request stream,
        // so a refused request's data is discarded, never misread as
        // another request as it could be after an HTTP/1.1 CONNECT.
        if !early_data.is_empty() {
            stream.send_data(early_data.clone()).await?;
        }
        let response = stream.recv_response().await?;
        Ok::<_, RequestError>((stream, response, route))
    };
    match sent.await {
        Ok((stream, response, route)) if response.status().is_success() => Ok((stream, route)),
        Ok((_, response, _)) => {
            // to_str: visible ASCII only, so it is safe to repeat in a header.
            let upstream_status = response
                .headers()
                .get("proxy-status")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Err(Attempt::Refused(FlowError::Refused(EgressRefusal {
                status: response.status().as_u16(),
                error: upstream_status
                    .as_deref()
                    .and_then(proxy_status::parse_error),
                upstream_status,
            })))
        }
        Err(e) => Err(Attempt::Failed(e)),
    }
}

async fn open(
    manager: &Arc<PathManager>,
    target: &Target,
    make_request: impl Fn(&Path) -> Result<http::Request<()>, http::Error>,
    datagrams: bool,
    early_data: &Bytes,
    purpose: Purpose,
) -> Result<
    (
        InnerStream,
        Arc<Path>,
        Option<(Route, mpsc::Receiver<Bytes>)>,
    ),
    FlowError,
> {
    let site = SiteKey::of(&target.host);
    let mut tries = PathTries::new();
    loop {
        let path = manager
            .path_within(Some(&site), purpose, &mut tries)
            .await?;
        let request = make_request(&path).map_err(RequestError::from)?;
        match attempt(&path, request, datagrams, early_data).await {
            Ok((stream, route)) => return Ok((stream, path, route)),
            Err(Attempt::Refused(refused)) => return Err(refused),
            Err(Attempt::Failed(e)) if !path.is_alive() && tries.left() => {
                debug!(error = %e, "path died while opening a flow; retrying");
                let hop = if path.outer_failed() {
                    Hop::Ingress
                } else {
                    Hop::Egress
                };
                manager.path_failed(&path, hop);
            }
            Err(Attempt::Failed(e)) => return Err(FlowError::Broken(e)),
        }
    }
}

/// Opens a TCP flow to `target` through the egress. `early_data` (bytes the
/// app already sent, e.g. a proxied HTTP request) goes out with the request
/// instead of after the response.
pub async fn open_tcp(
    manager: &Arc<PathManager>,
    target: &Target,
    early_data: &Bytes,
) -> Result<TcpFlow, FlowError> {
    debug!(destination = %target.authority(), "opening tcp flow");
    let started = std::time::Instant::now();
    let (stream, path, _) = open(
        manager,
        target,
        |_| h3util::connect_tcp_request(target),
        false,
        early_data,
        Purpose::Traffic,
    )
    .await?;
    debug!(
        setup_us = started.elapsed().as_micros() as u64,
        "tcp flow opened"
    );
    Ok(TcpFlow {
        stream,
        _path: path.hold(),
    })
}

/// Opens a TCP flow to `target` on `path` only (a validator's probe
/// measures one given path): no other path is tried. `early_data` goes out
/// with the request, as in [`open_tcp`].
pub async fn open_tcp_on(
    path: &Arc<Path>,
    target: &Target,
    early_data: &Bytes,
) -> Result<TcpFlow, FlowError> {
    let request = h3util::connect_tcp_request(target).map_err(RequestError::from)?;
    match attempt(path, request, false, early_data).await {
        Ok((stream, _)) => Ok(TcpFlow {
            stream,
            _path: path.hold(),
        }),
        Err(Attempt::Refused(refused)) => Err(refused),
        Err(Attempt::Failed(e)) => Err(FlowError::Broken(e)),
    }
}

/// A QUIC endpoint whose packets to `peer` cross the relays in a UDP flow,
/// so the registry sees an egress relay, never the user; for fetching the
/// directory, so allowed on the relays of an expired directory
/// ([`Purpose::DirectoryFetch`]). The hold keeps the flow open; drop it
/// after the endpoint.
pub async fn directory_tunnel_endpoint(
    manager: &Arc<PathManager>,
    peer: std::net::SocketAddr,
) -> Result<(quinn::Endpoint, UdpFlowHold), TunnelError> {
    let flow = open_udp_for(
        manager,
        &Target::from_socket_addr(peer),
        Purpose::DirectoryFetch,
    )
    .await?;
    Ok(endpoint_over(flow, peer)?)
}

/// A QUIC endpoint to `peer` through a UDP flow on `path` only (a
/// refill's own path): no other path is tried.
pub async fn tunnel_endpoint_on(
    path: &Arc<Path>,
    peer: std::net::SocketAddr,
) -> Result<(quinn::Endpoint, UdpFlowHold), TunnelError> {
    let flow = open_udp_on(path, &Target::from_socket_addr(peer)).await?;
    Ok(endpoint_over(flow, peer)?)
}

/// A QUIC endpoint over `flow`, whose packets go to `peer`.
fn endpoint_over(
    flow: UdpFlow,
    peer: std::net::SocketAddr,
) -> std::io::Result<(quinn::Endpoint, UdpFlowHold)> {
    let (socket, hold) = flow.into_socket(peer);
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        quinn::EndpointConfig::default(),
        None,
        Arc::new(socket),
        Arc::new(quinn::TokioRuntime),
    )?;
    Ok((endpoint, hold))
}

/// The connect-udp request for `target` on `path`.
fn udp_request(path: &Path, target: &Target) -> Result<http::Request<()>, http::Error> {
    h3util::connect_udp_request(&path.egress.addr.to_string(), target)
}

/// Opens a UDP flow to `target` through the egress.
pub async fn open_udp(manager: &Arc<PathManager>, target: &Target) -> Result<UdpFlow, FlowError> {
    open_udp_for(manager, target, Purpose::Traffic).await
}

async fn open_udp_for(
    manager: &Arc<PathManager>,
    target: &Target,
    purpose: Purpose,
) -> Result<UdpFlow, FlowError> {
    debug!(destination = %target.authority(), "opening udp flow");
    let (stream, path, route) = open(
        manager,
        target,
        |path| udp_request(path, target),
        true,
        &Bytes::new(),
        purpose,
    )
    .await?;
    udp_flow(stream, &path, route)
}

/// Opens a UDP flow to `target` on `path` only.
pub async fn open_udp_on(path: &Arc<Path>, target: &Target) -> Result<UdpFlow, FlowError> {
    let request = udp_request(path, target).map_err(RequestError::from)?;
    match attempt(path, request, true, &Bytes::new()).await {
        Ok((stream, route)) => udp_flow(stream, path, route),
        Err(Attempt::Refused(refused)) => Err(refused),
        Err(Attempt::Failed(e)) => Err(FlowError::Broken(e)),
    }
}

fn udp_flow(
    stream: InnerStream,
    path: &Arc<Path>,
    route: Option<(Route, mpsc::Receiver<Bytes>)>,
) -> Result<UdpFlow, FlowError> {
    let (route, incoming) = route.ok_or(RequestError::NoRoute)?;
    let sender = DatagramSender::new(path.inner().clone(), stream.id().into_inner())
        .map_err(RequestError::from)?;
    Ok(UdpFlow {
        stream,
        sender,
        incoming,
        _route: route,
        _path: path.hold(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::path::BuildError;

    /// A flow's failure reports the kind of its cause (arti's `HasKind`):
    /// callers decide on the kind, not on the variants or the text.
    #[test]
    fn a_flow_error_reports_its_causes_kind() {
        let refused = BuildError::AccessRefused {
            relay: "ingress-1".into(),
            details: "401".into(),
            hint: "",
        };
        let backing_off = FlowError::NoPath(PathError::BackingOff {
            last: refused,
            retry_in: Duration::from_secs(1),
        });
        assert_eq!(backing_off.kind(), FlowErrorKind::NoPath);
        assert_eq!(HasKind::kind(&backing_off), ErrorKind::NotAuthenticated);
        let closed = FlowError::NoPath(PathError::Closed);
        assert_eq!(closed.kind(), FlowErrorKind::ShuttingDown);
        let egress = FlowError::Refused(EgressRefusal {
            status: 403,
            error: None,
            upstream_status: None,
        });
        assert_eq!(egress.kind(), FlowErrorKind::Refused);
        assert_eq!(HasKind::kind(&egress), ErrorKind::Refused);
        assert!(egress.refusal().is_some() && closed.refusal().is_none());
        let tunnel = TunnelError::Flow(FlowError::NoPath(PathError::AllDied));
        assert_eq!(tunnel.kind(), ErrorKind::Unreachable);
    }
}
