//! The two request kinds the egress serves, and how their failures map to HTTP
//! statuses and Proxy-Status error types (RFC 9209 §2.3), so the client can
//! give its app a precise answer (a SOCKS reply code, an HTTP status).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use openrelay_policy::Refusal;
use openrelay_transport::server::{self, RequestContext, ServerStream};
use openrelay_transport::{tcp_pump, udp, udp_bridge};
use openrelay_wire::masque;
use openrelay_wire::proxy_status::{self, ProxyErrorType};
use openrelay_wire::target::Target;
use tokio::net::{TcpSocket, TcpStream};

use crate::payment::Session;
use crate::{PROXY_NAME, Shared, log_flow_error, log_refusal};

/// Why a flow could not be opened. Carries no address or name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The request target does not parse.
    #[error("malformed request target")]
    BadTarget,
    /// The destination policy refused it.
    #[error("refused by policy: {0}")]
    Refused(Refusal),
    /// The name does not resolve (or resolves to nothing usable).
    #[error("name resolution failed")]
    DnsFailed,
    /// The resolver did not answer in time.
    #[error("name resolution timed out")]
    DnsTimeout,
    /// The destination actively refused the connection.
    #[error("connection refused")]
    ConnectionRefused,
    /// The destination did not answer in time.
    #[error("connection timed out")]
    ConnectionTimeout,
    /// No route to the destination.
    #[error("destination unreachable")]
    Unreachable,
    /// This relay has no file descriptor left for the socket.
    #[error("out of file descriptors")]
    OutOfDescriptors,
    /// Another socket error.
    #[error("socket error: {0:?}")]
    Io(std::io::ErrorKind),
}

impl FlowError {
    /// The Proxy-Status error type (RFC 9209 §2.3).
    pub fn proxy_error(&self) -> ProxyErrorType {
        match self {
            FlowError::BadTarget => ProxyErrorType::HttpRequestDenied,
            FlowError::Refused(Refusal::Port) => ProxyErrorType::HttpRequestDenied,
            FlowError::Refused(_) => ProxyErrorType::DestinationIpProhibited,
            FlowError::DnsFailed => ProxyErrorType::DnsError,
            FlowError::DnsTimeout => ProxyErrorType::DnsTimeout,
            FlowError::ConnectionRefused => ProxyErrorType::ConnectionRefused,
            FlowError::ConnectionTimeout => ProxyErrorType::ConnectionTimeout,
            FlowError::Unreachable => ProxyErrorType::DestinationIpUnroutable,
            // The relay is full for now (503), not the destination's fault.
            FlowError::OutOfDescriptors => ProxyErrorType::ConnectionLimitReached,
            FlowError::Io(_) => ProxyErrorType::DestinationUnavailable,
        }
    }

    /// The response status. Policy refusals are 403 (RFC 9209 §2.3.4 would
    /// suggest 502 for a prohibited IP, but a refusal by policy is not a
    /// gateway failure, and apps show 403 as "forbidden"); Proxy-Status still
    /// says exactly why.
    pub fn status(&self) -> http::StatusCode {
        match self {
            FlowError::BadTarget => http::StatusCode::BAD_REQUEST,
            FlowError::Refused(_) => http::StatusCode::FORBIDDEN,
            other => http::StatusCode::from_u16(proxy_status::http_status(other.proxy_error()))
                .unwrap_or(http::StatusCode::BAD_GATEWAY),
        }
    }

    /// A fixed name for logs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            FlowError::BadTarget => "bad_target",
            FlowError::Refused(_) => "refused",
            FlowError::DnsFailed => "dns_error",
            FlowError::DnsTimeout => "dns_timeout",
            FlowError::ConnectionRefused => "connection_refused",
            FlowError::ConnectionTimeout => "connection_timeout",
            FlowError::Unreachable => "unreachable",
            FlowError::OutOfDescriptors => "out_of_descriptors",
            FlowError::Io(_) => "io",
        }
    }

    fn from_io(error: &std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        if udp::out_of_descriptors(error) {
            return FlowError::OutOfDescriptors;
        }
        match error.kind() {
            ConnectionRefused => FlowError::ConnectionRefused,
            TimedOut => FlowError::ConnectionTimeout,
            NetworkUnreachable | HostUnreachable | AddrNotAvailable => FlowError::Unreachable,
            kind => FlowError::Io(kind),
        }
    }
}

async fn fail(stream: ServerStream, error: FlowError, shared: &Shared) {
    match &error {
        FlowError::Refused(_) | FlowError::BadTarget => {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            log_refusal(error.kind_name());
        }
        _ => {
            shared.stats.failed.fetch_add(1, Ordering::Relaxed);
            log_flow_error(&error, shared);
        }
    }
    server::respond_error(
        stream,
        error.status(),
        PROXY_NAME,
        Some(error.proxy_error()),
    )
    .await;
}

async fn connect_one(destination: SocketAddr, bind: Option<IpAddr>) -> std::io::Result<TcpStream> {
    udp::connect_from(bind, destination, |local| async move {
        let socket = if destination.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(local)?;
        socket.set_nodelay(true)?;
        socket.connect(destination).await
    })
    .await
}

/// Tries each address in order within one overall timeout.
async fn connect_tcp(
    addresses: &[SocketAddr],
    bind: Option<IpAddr>,
    timeout: Duration,
) -> Result<TcpStream, FlowError> {
    let attempt = async {
        let mut last = FlowError::Unreachable;
        for &address in addresses {
            match connect_one(address, bind).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = FlowError::from_io(&e),
            }
        }
        Err(last)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(Err(FlowError::ConnectionTimeout))
}

/// A UDP socket connected to the first of `addresses` a socket can be
/// connected to (an IPv6 address fails at once on a host without IPv6).
async fn connect_udp(
    addresses: &[SocketAddr],
    bind: Option<IpAddr>,
) -> Result<tokio::net::UdpSocket, FlowError> {
    let mut last = FlowError::Unreachable;
    for &address in addresses {
        let socket = udp::connect_from(bind, address, |local| async move {
            let socket = udp::bind(local)?;
            socket.connect(address).await?;
            Ok(socket)
        });
        match socket.await {
            Ok(socket) => return Ok(socket),
            Err(e) => last = FlowError::from_io(&e),
        }
    }
    Err(last)
}

/// `CONNECT host:port` (RFC 9114 §4.4): a TCP tunnel in the request stream's
/// DATA frames. A TCP error becomes a stream reset with H3_CONNECT_ERROR.
pub(crate) async fn tcp(
    request: http::Request<()>,
    mut stream: ServerStream,
    context: RequestContext,
    shared: Arc<Shared>,
    session: Option<Arc<Session>>,
) {
    if let Some(session) = &session
        && !session.admit_flow().await
    {
        return; // overdue: the connection is being closed
    }
    let started = std::time::Instant::now();
    let target = match request
        .uri()
        .authority()
        .map(|a| Target::parse_authority(a.as_str()))
    {
        Some(Ok(target)) => target,
        _ => return fail(stream, FlowError::BadTarget, &shared).await,
    };
    drop(request);
    let settings = &shared.settings;
    let tcp = match crate::resolve::permitted_addresses(
        &target,
        &shared.policy.get(),
        &shared.resolver,
        context.connection.stable_id(),
    )
    .await
    {
        Ok(addresses) => {
            connect_tcp(&addresses, settings.outbound_bind, settings.connect_timeout).await
        }
        Err(e) => Err(e),
    };
    let tcp = match tcp {
        Ok(tcp) => tcp,
        Err(e) => return fail(stream, e, &shared).await,
    };
    if !server::respond_ok(&mut stream, false).await {
        return;
    }
    // Setup time only: the destination is never logged by a relay.
    tracing::debug!(
        setup_us = started.elapsed().as_micros() as u64,
        "tcp flow opened"
    );
    shared.stats.tcp_flows.fetch_add(1, Ordering::Relaxed);
    let (send, recv) = stream.split();
    let throttle = shared.throttle_for(&context);
    tokio::select! {
        // A paying session meters its own bytes (added to the totals when
        // it ends).
        () = tcp_pump::pump(tcp, send, recv, Bytes::new(), session.as_ref().map_or(&shared.stats.tcp, |s| &s.tcp), throttle.as_deref()) => {}
        () = context.shutdown.wait() => {}
    }
}

/// connect-udp (RFC 9298 §3.4): resolve, check, then bridge datagrams to a
/// UDP socket connected to the first permitted address.
pub(crate) async fn udp(
    request: http::Request<()>,
    mut stream: ServerStream,
    context: RequestContext,
    shared: Arc<Shared>,
    session: Option<Arc<Session>>,
) {
    if let Some(session) = &session
        && !session.admit_flow().await
    {
        return; // overdue: the connection is being closed
    }
    let target = match masque::parse_udp_path(request.uri().path()) {
        Ok(target) => target,
        Err(_) => return fail(stream, FlowError::BadTarget, &shared).await,
    };
    // The head is not needed again; an idle flow should not keep it.
    drop(request);
    let settings = &shared.settings;
    let addresses = match crate::resolve::permitted_addresses(
        &target,
        &shared.policy.get(),
        &shared.resolver,
        context.connection.stable_id(),
    )
    .await
    {
        Ok(addresses) => addresses,
        Err(e) => return fail(stream, e, &shared).await,
    };
    let socket = match connect_udp(&addresses, settings.outbound_bind).await {
        Ok(socket) => Arc::new(socket),
        Err(e) => return fail(stream, e, &shared).await,
    };
    // Datagrams the client sends before our 200 arrives may be dropped
    // (RFC 9298 §5); the bridge registers its route before it returns.
    if !server::respond_ok(&mut stream, true).await {
        return;
    }
    shared.stats.udp_flows.fetch_add(1, Ordering::Relaxed);
    let end = udp_bridge::run(
        &context.router,
        context.connection.clone(),
        &mut stream,
        socket,
        settings.udp_idle_timeout,
        Arc::clone(session.as_ref().map_or(&shared.stats.udp, |s| &s.udp)),
        shared.throttle_for(&context),
        context.shutdown.wait(),
    )
    .await;
    tracing::debug!(end = ?end.ok(), "udp flow ended");
}
