#![doc = include_str!("../README.md")]

pub mod admission;
mod limiter;

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use h3::ext::Protocol;
use openrelay_config::{CongestionControl, IngressRelayConfig, ThrottleForTestsConfig};
use openrelay_log::Sensitive;
use openrelay_transport::endpoint::{OUTER_MTU, Tuning};
use openrelay_transport::identity::Identity;
use openrelay_transport::limits::ServerLimits;
use openrelay_transport::server::{self, RequestContext, RequestHandler, ServerStream, StartError};
use openrelay_transport::service::Service;
use openrelay_transport::throttle_for_tests::ThrottleForTests;
use openrelay_transport::udp;
use openrelay_transport::udp_bridge::{self, BridgeCounters};
use openrelay_types::{ErrorKind, HasKind};
use openrelay_wire::masque;
use openrelay_wire::proxy_status::ProxyErrorType;
use openrelay_wire::target::Host;
use tracing::{debug, info};

pub use admission::{Admission, AdmissionError, AdmissionSettings, Refusal};
pub use limiter::{TunnelLimiter, TunnelPermit};

/// The name this relay gives itself in Proxy-Status (RFC 9209 §2).
pub const PROXY_NAME: &str = "openrelay-ingress";

/// Why the ingress could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngressError {
    /// The QUIC server could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Token admission could not be set up.
    #[error("admission: {0}")]
    Admission(#[from] AdmissionError),
}

impl HasKind for IngressError {
    fn kind(&self) -> ErrorKind {
        match self {
            IngressError::Start(e) => e.kind(),
            IngressError::Admission(e) => e.kind(),
        }
    }
}

/// Settings of a running ingress.
#[derive(Debug, Clone)]
pub struct IngressSettings {
    /// UDP listen address.
    pub listen: SocketAddr,
    /// The only targets clients may reach.
    pub egress_relays: HashSet<SocketAddr>,
    /// Most tunnels per client address without token admission.
    pub max_tunnels_per_client: usize,
    /// Most tunnels per client address with token admission (see
    /// [`TunnelLimiter`]).
    pub max_tunnels_per_address_with_tokens: usize,
    /// Tunnels idle this long are closed.
    pub tunnel_idle_timeout: Duration,
    /// Source address of datagrams to egress relays.
    pub outbound_bind: Option<IpAddr>,
    /// Privacy Pass admission, if on.
    pub admission: Option<AdmissionSettings>,
    /// The relay's state directory (the embedded double-spend set's default home).
    pub state_dir: PathBuf,
    /// Congestion controller of the outer connections (this relay sends
    /// the downloads on them).
    pub congestion: CongestionControl,
    /// Connection, stream and time limits.
    pub limits: ServerLimits,
    /// A throughput limit for tests (`[throttle_for_tests]`); none by default.
    pub throttle_for_tests: Option<ThrottleForTestsConfig>,
}

impl IngressSettings {
    /// Settings from a relay config file.
    pub fn from_config(config: &IngressRelayConfig) -> Result<Self, IngressError> {
        let (ingress, config) = (&config.role, &config.common);
        let listen_ip = config.listen.ip();
        Ok(IngressSettings {
            listen: config.listen,
            egress_relays: ingress.egress_relays.iter().copied().collect(),
            max_tunnels_per_client: ingress.max_tunnels_per_client,
            max_tunnels_per_address_with_tokens: ingress.max_tunnels_per_address_with_tokens,
            tunnel_idle_timeout: Duration::from_secs(ingress.tunnel_idle_timeout_secs),
            outbound_bind: ingress
                .outbound_bind
                .or((!listen_ip.is_unspecified()).then_some(listen_ip)),
            admission: ingress
                .admission
                .clone()
                .map(|tokens| {
                    config
                        .operator_key
                        .map(|operator_key| AdmissionSettings {
                            tokens,
                            operator_key,
                            directory: config.directory.clone(),
                        })
                        .ok_or(AdmissionError::NoOperatorKey)
                })
                .transpose()?,
            state_dir: config.state_dir.clone(),
            congestion: config.congestion,
            limits: ServerLimits::ingress().with_config(&config.limits),
            throttle_for_tests: config.throttle_for_tests.clone(),
        })
    }

    /// Tunnels one client address may hold: with token admission the token
    /// counts, not the address (see [`TunnelLimiter`]).
    fn tunnels_per_address(&self) -> usize {
        match self.admission {
            Some(_) => self.max_tunnels_per_address_with_tokens,
            None => self.max_tunnels_per_client,
        }
    }
}

/// Aggregate counters.
#[derive(Debug, Default)]
pub struct IngressStats {
    /// Tunnels opened.
    pub tunnels: AtomicU64,
    /// Requests refused (wrong method, unknown target, over the limit).
    pub refused: AtomicU64,
    /// Tunnels refused for lack of file descriptors.
    pub out_of_descriptors: AtomicU64,
    /// Bytes relayed (towards egress relays: `bytes_out`).
    pub bytes: Arc<BridgeCounters>,
}

struct Shared {
    settings: IngressSettings,
    limiter: TunnelLimiter,
    stats: IngressStats,
    admission: Option<Arc<Admission>>,
    throttle: Option<Arc<ThrottleForTests>>,
}

impl RequestHandler for Shared {
    fn handle(
        self: Arc<Self>,
        request: http::Request<()>,
        stream: ServerStream,
        context: RequestContext,
    ) -> impl Future<Output = ()> + Send + 'static {
        handle_request(request, stream, context, self)
    }
}

/// A bound ingress relay.
#[derive(Debug)]
pub struct Ingress {
    service: Service,
    settings: IngressSettings,
    admission: Option<Arc<Admission>>,
    /// Where the admission's issuer keys come from.
    key_source: Option<openrelay_issuer_client::keyfeed::KeySource>,
}

impl Ingress {
    /// Binds the QUIC endpoint with the relay's identity, and sets up token
    /// admission if configured (reads the issuer keys, opens the
    /// double-spend set).
    pub fn bind(settings: IngressSettings, identity: &Identity) -> Result<Self, IngressError> {
        let opened = settings
            .admission
            .as_ref()
            .map(|config| admission::open(config, &settings.state_dir))
            .transpose()?;
        let (admission, key_source) = match opened {
            Some((gate, source)) => (Some(Arc::new(gate)), source),
            None => (None, None),
        };
        let tuning =
            Tuning::relay(Duration::from_secs(30), OUTER_MTU).with_congestion(settings.congestion);
        let service = Service::bind(settings.listen, identity, &tuning, settings.limits.clone())?;
        Ok(Ingress {
            service,
            settings,
            admission,
            key_source,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.service.local_addr()
    }

    /// Runs `task` (e.g. the relay's publisher) in the background for as
    /// long as the relay serves (see [`Service::spawn`]).
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.service.spawn(task);
    }

    /// Serves clients until `shutdown` resolves.
    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) {
        let shared = Arc::new(Shared {
            limiter: TunnelLimiter::new(self.settings.tunnels_per_address()),
            throttle: ThrottleForTests::start(self.settings.throttle_for_tests.as_ref()),
            settings: self.settings,
            stats: IngressStats::default(),
            admission: self.admission,
        });
        let refresh = shared
            .settings
            .admission
            .as_ref()
            .map_or(Duration::from_secs(60), |a| {
                Duration::from_secs(a.tokens.keys_refresh_secs)
            });
        if let Some((admission, source)) = shared.admission.clone().zip(self.key_source) {
            self.service
                .spawn(admission::follow_keys(admission, source, refresh));
        }
        info!(
            egress_relays = shared.settings.egress_relays.len(),
            tokens_required = shared.admission.is_some(),
            "ingress relay serving"
        );
        let served = self.service.serve(Arc::clone(&shared), shutdown).await;
        let stats = &shared.stats;
        info!(
            connections = served.connections,
            connections_refused = served.refused,
            retries = served.retries,
            tunnels = stats.tunnels.load(Ordering::Relaxed),
            refused = stats.refused.load(Ordering::Relaxed),
            out_of_descriptors = stats.out_of_descriptors.load(Ordering::Relaxed),
            bytes_out = stats.bytes.bytes_out.load(Ordering::Relaxed),
            bytes_in = stats.bytes.bytes_in.load(Ordering::Relaxed),
            "ingress relay stopped"
        );
    }
}

async fn refuse(
    stream: ServerStream,
    status: http::StatusCode,
    error: ProxyErrorType,
    reason: &'static str,
    shared: &Shared,
) {
    shared.stats.refused.fetch_add(1, Ordering::Relaxed);
    debug!(reason, "request refused");
    server::respond_error(stream, status, PROXY_NAME, Some(error)).await;
}

/// Answers a request without a valid token (see [`admission`]); the token
/// itself is never logged.
async fn refuse_admission(
    stream: ServerStream,
    refusal: &Refusal,
    admission: &Admission,
    shared: &Shared,
) {
    shared.stats.refused.fetch_add(1, Ordering::Relaxed);
    debug!(reason = refusal.details(), "request refused");
    let (status, details, challenge) = admission.answer(refusal);
    server::respond_denied(stream, status, PROXY_NAME, details, challenge).await;
}

/// Why a request is not forwarded (RFC 9298 §3.4 lets a proxy refuse any
/// target; this one forwards only to its egress relays).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetRefusal {
    /// Not an extended CONNECT with `:protocol = connect-udp`.
    #[error("not connect-udp")]
    NotConnectUdp,
    /// The connect-udp path does not parse (RFC 9298 §2).
    #[error("malformed target")]
    MalformedTarget,
    /// The target is a name; egress relays are addressed by IP.
    #[error("target is a name, not a relay address")]
    NameTarget,
    /// The target is no egress relay this ingress forwards to.
    #[error("target is not a known egress relay")]
    UnknownEgress,
}

impl TargetRefusal {
    /// A fixed text for logs (never the target itself).
    pub fn reason(self) -> &'static str {
        match self {
            TargetRefusal::NotConnectUdp => "not connect-udp",
            TargetRefusal::MalformedTarget => "malformed target",
            TargetRefusal::NameTarget => "target is a name, not a relay address",
            TargetRefusal::UnknownEgress => "target is not a known egress relay",
        }
    }

    /// The Proxy-Status error the refusal is answered with (RFC 9209 §2.3):
    /// a request of another kind is denied, any other target prohibited.
    pub fn proxy_error(self) -> ProxyErrorType {
        match self {
            TargetRefusal::NotConnectUdp => ProxyErrorType::HttpRequestDenied,
            TargetRefusal::MalformedTarget
            | TargetRefusal::NameTarget
            | TargetRefusal::UnknownEgress => ProxyErrorType::DestinationIpProhibited,
        }
    }
}

impl HasKind for TargetRefusal {
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}

/// Which egress relay a request asks for, if it is one we forward to.
pub fn requested_egress(
    request: &http::Request<()>,
    egress_relays: &HashSet<SocketAddr>,
) -> Result<SocketAddr, TargetRefusal> {
    if request.method() != http::Method::CONNECT
        || request.extensions().get::<Protocol>() != Some(&Protocol::CONNECT_UDP)
    {
        return Err(TargetRefusal::NotConnectUdp);
    }
    let target =
        masque::parse_udp_path(request.uri().path()).map_err(|_| TargetRefusal::MalformedTarget)?;
    let Host::Ip(ip) = target.host else {
        return Err(TargetRefusal::NameTarget);
    };
    let egress = SocketAddr::new(ip, target.port);
    if egress_relays.contains(&egress) {
        Ok(egress)
    } else {
        Err(TargetRefusal::UnknownEgress)
    }
}

async fn handle_request(
    request: http::Request<()>,
    mut stream: ServerStream,
    context: RequestContext,
    shared: Arc<Shared>,
) {
    // RFC 9298 §3.4 lets a proxy refuse any target; we forward only to egress
    // relays, so a refusal is 403 whatever was asked.
    let egress = match requested_egress(&request, &shared.settings.egress_relays) {
        Ok(egress) => egress,
        Err(refusal) => {
            let (error, reason) = (refusal.proxy_error(), refusal.reason());
            return refuse(stream, http::StatusCode::FORBIDDEN, error, reason, &shared).await;
        }
    };
    // The client's address, held only for the per-address limit. The slot
    // is taken before the token is checked: a refusal spends no token.
    let client = Sensitive(context.connection.remote_address().ip());
    let Some(_permit) = shared.limiter.acquire(client) else {
        return refuse(
            stream,
            http::StatusCode::TOO_MANY_REQUESTS,
            ProxyErrorType::HttpRequestDenied,
            "tunnel limit reached",
            &shared,
        )
        .await;
    };
    if let Some(admission) = &shared.admission
        && let Err(refusal) = admission.admit(request.headers()).await
    {
        return refuse_admission(stream, &refusal, admission, &shared).await;
    }
    // The head (with its token) is not needed again; an idle tunnel should
    // not keep it.
    drop(request);
    let socket = async {
        let socket = udp::bind(udp::local_for(shared.settings.outbound_bind, egress))?;
        socket.connect(egress).await?;
        // The datagrams held since before admission go out the moment the
        // bridge starts, through `try_send`, which fails on a socket whose
        // writability the runtime has not yet seen.
        socket.writable().await?;
        Ok::<_, std::io::Error>(socket)
    };
    let socket = match socket.await {
        Ok(socket) => socket,
        // Out of descriptors: this relay is full for now, the egress is
        // fine (RFC 9209 §2.3.12, 503); the relay keeps serving others.
        Err(e) if udp::out_of_descriptors(&e) => {
            shared
                .stats
                .out_of_descriptors
                .fetch_add(1, Ordering::Relaxed);
            return refuse(
                stream,
                http::StatusCode::SERVICE_UNAVAILABLE,
                ProxyErrorType::ConnectionLimitReached,
                "out of file descriptors",
                &shared,
            )
            .await;
        }
        Err(_) => {
            let error = Some(ProxyErrorType::DestinationUnavailable);
            return server::respond_error(stream, http::StatusCode::BAD_GATEWAY, PROXY_NAME, error)
                .await;
        }
    };
    if !server::respond_ok(&mut stream, true).await {
        return;
    }
    shared.stats.tunnels.fetch_add(1, Ordering::Relaxed);
    let throttle = shared
        .throttle
        .as_ref()
        .filter(|throttle| throttle.applies_to(context.connection.remote_address().ip()))
        .cloned();
    let end = udp_bridge::run(
        &context.router,
        context.connection.clone(),
        &mut stream,
        Arc::new(socket),
        shared.settings.tunnel_idle_timeout,
        Arc::clone(&shared.stats.bytes),
        throttle,
        context.shutdown.wait(),
    )
    .await;
    debug!(end = ?end.ok(), "tunnel closed");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(method: http::Method, path: &str, protocol: Option<Protocol>) -> http::Request<()> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("https://ingress.example{path}"))
            .body(())
            .unwrap();
        if let Some(protocol) = protocol {
            request.extensions_mut().insert(protocol);
        }
        request
    }

    #[test]
    fn only_connect_udp_to_known_egress_relays_is_forwarded() {
        let egress: SocketAddr = "192.0.2.20:4433".parse().unwrap();
        let known = HashSet::from([egress, "[2001:db8::20]:4433".parse().unwrap()]);
        let udp = Some(Protocol::CONNECT_UDP);
        let ok = request(
            http::Method::CONNECT,
            "/.well-known/masque/udp/192.0.2.20/4433/",
            udp,
        );
        assert_eq!(requested_egress(&ok, &known), Ok(egress));
        let v6 = request(
            http::Method::CONNECT,
            "/.well-known/masque/udp/2001%3Adb8%3A%3A20/4433/",
            udp,
        );
        assert!(requested_egress(&v6, &known).is_ok());
        for refused in [
            request(
                http::Method::CONNECT,
                "/.well-known/masque/udp/192.0.2.20/53/",
                udp,
            ),
            request(
                http::Method::CONNECT,
                "/.well-known/masque/udp/192.0.2.99/4433/",
                udp,
            ),
            request(
                http::Method::CONNECT,
                "/.well-known/masque/udp/egress.example/4433/",
                udp,
            ),
            request(
                http::Method::CONNECT,
                "/.well-known/masque/udp/192.0.2.20/4433/",
                None,
            ),
            request(
                http::Method::GET,
                "/.well-known/masque/udp/192.0.2.20/4433/",
                None,
            ),
            request(
                http::Method::CONNECT,
                "/.well-known/masque/ip/192.0.2.20/4433/",
                udp,
            ),
        ] {
            assert!(
                requested_egress(&refused, &known).is_err(),
                "{:?}",
                refused.uri()
            );
        }
        let not_udp = request(http::Method::GET, "/", None);
        let refusal = requested_egress(&not_udp, &known).unwrap_err();
        assert_eq!(refusal.proxy_error(), ProxyErrorType::HttpRequestDenied);
        for path in [
            "/.well-known/masque/udp/192.0.2.99/4433/",
            "/.well-known/masque/udp/egress.example/4433/",
            "/.well-known/masque/udp/192.0.2.20/x/",
        ] {
            let refused = request(http::Method::CONNECT, path, udp);
            let refusal = requested_egress(&refused, &known).unwrap_err();
            assert_eq!(
                refusal.proxy_error(),
                ProxyErrorType::DestinationIpProhibited,
                "{path}"
            );
        }
    }
}
