//! The egress relay: an HTTP/3 server that opens connections to destinations
//! for its clients. It serves
//!
//! * `CONNECT host:port` (RFC 9114 §4.4): a TCP tunnel on the request stream;
//! * extended CONNECT with `:protocol = connect-udp` (RFC 9298 §3.4): UDP
//!   payloads in HTTP Datagrams (RFC 9297), context ID 0;
//! * `POST /dns-query` (RFC 8484 §4.1): a DNS message, forwarded to this
//!   relay's resolver (the full-device VPN's DNS).
//!
//! With `[egress.payment]`, sessions are pay-as-you-go: `POST
//! /.well-known/openrelay/pay` with a Privacy Pass token per quantum (see
//! [`payment`]).
//!
//! Names are resolved here, so the client's DNS never leaves it in the clear.
//! Every destination passes the [`DestinationPolicy`] after resolution, so a
//! name cannot smuggle a client to loopback or private addresses.
//!
//! Privacy: the egress sees the ingress's address, never the client's; it logs
//! neither destinations nor peer addresses (only aggregate counts).

mod connect;
mod dns;
pub mod ledger;
pub mod meter;
pub mod payment;
mod resolve;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use h3::ext::Protocol;
use openrelay_config::{EgressConfig, PaymentConfig, RelayConfig};
use openrelay_policy::DestinationPolicy;
use openrelay_transport::endpoint::{INNER_MTU, Tuning};
use openrelay_transport::identity::Identity;
use openrelay_transport::limits::ServerLimits;
use openrelay_transport::server::{
    self, Listener, RequestContext, RequestHandler, ServerCounters, ServerStream, StartError,
};
use openrelay_transport::task::AbortOnDrop;
use openrelay_transport::tcp_pump::PumpCounters;
use openrelay_transport::udp_bridge::BridgeCounters;
use openrelay_wire::proxy_status::ProxyErrorType;
use tracing::{debug, info, warn};

use crate::payment::{PAY_PATH, Payments};

pub use connect::FlowError;

/// The name this relay gives itself in Proxy-Status (RFC 9209 §2).
pub const PROXY_NAME: &str = "openrelay-egress";

/// Why the egress could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EgressError {
    /// The QUIC server could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The relay was configured with another role.
    #[error("this config is for an {0} relay, not an egress")]
    WrongRole(openrelay_config::RelayRole),
    /// Payments could not be set up.
    #[error("payment: {0}")]
    Payment(#[from] payment::PaymentError),
}

/// Settings of a running egress, derived from its config file.
#[derive(Debug, Clone)]
pub struct EgressSettings {
    /// UDP listen address.
    pub listen: SocketAddr,
    /// Which destinations are refused.
    pub policy: DestinationPolicy,
    /// Give up connecting to a destination after this long.
    pub connect_timeout: Duration,
    /// Close UDP flows idle this long.
    pub udp_idle_timeout: Duration,
    /// Most concurrent flows per client connection.
    pub max_flows_per_connection: u32,
    /// Source address of outgoing connections.
    pub outbound_bind: Option<IpAddr>,
    /// Where DNS queries (`POST /dns-query`) go; `None`: the system's resolver.
    pub dns_resolver: Option<SocketAddr>,
    /// Pay-as-you-go terms and tokens; `None`: free.
    pub payment: Option<PaymentConfig>,
    /// The relay's state directory (payment double-spend set, ledger).
    pub state_dir: PathBuf,
    /// The operator (credited at settlement).
    pub operator: String,
    /// Congestion controller of the inner connections (this relay sends
    /// the downloads on them).
    pub congestion: openrelay_config::CongestionControl,
    /// Connection, stream and time limits.
    pub limits: ServerLimits,
}

impl EgressSettings {
    /// Settings from a relay config file.
    pub fn from_config(config: &RelayConfig) -> Result<Self, EgressError> {
        if config.role != openrelay_config::RelayRole::Egress {
            return Err(EgressError::WrongRole(config.role));
        }
        let egress: EgressConfig = config.egress_settings();
        let deny_ports = egress
            .deny_ports
            .clone()
            .unwrap_or_else(|| DestinationPolicy::DEFAULT_DENY_PORTS.to_vec());
        let listen_ip = config.listen.ip();
        Ok(EgressSettings {
            listen: config.listen,
            policy: DestinationPolicy::new(egress.allow.clone(), deny_ports),
            connect_timeout: Duration::from_secs(egress.connect_timeout_secs),
            udp_idle_timeout: Duration::from_secs(egress.udp_idle_timeout_secs),
            max_flows_per_connection: egress.max_flows_per_connection,
            outbound_bind: egress
                .outbound_bind
                .or((!listen_ip.is_unspecified()).then_some(listen_ip)),
            dns_resolver: egress.dns_resolver,
            payment: egress.payment.clone(),
            state_dir: config.state_dir.clone(),
            operator: config.operator.clone(),
            congestion: config.congestion,
            limits: ServerLimits::egress(egress.max_flows_per_connection)
                .with_config(&config.limits),
        })
    }
}

/// Aggregate counters (no per-client or per-destination data).
#[derive(Debug, Default)]
pub struct EgressStats {
    /// TCP flows opened.
    pub tcp_flows: AtomicU64,
    /// UDP flows opened.
    pub udp_flows: AtomicU64,
    /// Requests refused by the destination policy.
    pub refused: AtomicU64,
    /// Requests whose destination could not be reached.
    pub failed: AtomicU64,
    /// TCP payload bytes (to destinations: `to_tcp`).
    pub tcp: PumpCounters,
    /// UDP payload bytes (to destinations: `bytes_out`).
    pub udp: Arc<BridgeCounters>,
}

pub(crate) struct Shared {
    pub(crate) settings: EgressSettings,
    pub(crate) stats: EgressStats,
    pub(crate) payments: Option<Arc<Payments>>,
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

/// A bound egress relay, ready to serve.
#[derive(Debug)]
pub struct Egress {
    listener: Listener,
    settings: EgressSettings,
    payments: Option<Arc<Payments>>,
}

impl Egress {
    /// Binds the QUIC endpoint with the relay's identity.
    pub fn bind(settings: EgressSettings, identity: &Identity) -> Result<Self, EgressError> {
        let tuning =
            Tuning::relay(Duration::from_secs(30), INNER_MTU).with_congestion(settings.congestion);
        let listener = server::bind(settings.listen, identity, &tuning, settings.limits.clone())?;
        let payments = settings
            .payment
            .as_ref()
            .map(|config| {
                Payments::open(config, identity, &settings.operator, &settings.state_dir)
                    .map(Arc::new)
            })
            .transpose()?;
        Ok(Egress {
            listener,
            settings,
            payments,
        })
    }

    /// The bound address (useful when listening on port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves clients until `shutdown` resolves, then closes connections.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        // These end with this future, also when it is cancelled.
        let _keys = self
            .payments
            .as_ref()
            .map(|payments| AbortOnDrop(tokio::spawn(Arc::clone(payments).refresh_keys())));
        let _settle = self
            .payments
            .as_ref()
            .map(|payments| AbortOnDrop(tokio::spawn(Arc::clone(payments).settle())));
        let shared = Arc::new(Shared {
            settings: self.settings,
            stats: EgressStats::default(),
            payments: self.payments,
        });
        let counters = Arc::new(ServerCounters::default());
        info!(payments = shared.payments.is_some(), "egress relay serving");
        server::serve(
            self.listener,
            Arc::clone(&shared),
            Arc::clone(&counters),
            shutdown,
        )
        .await;
        let stats = &shared.stats;
        info!(
            connections = counters.connections.load(Ordering::Relaxed),
            connections_refused = counters.refused.load(Ordering::Relaxed),
            retries = counters.retries.load(Ordering::Relaxed),
            tcp_flows = stats.tcp_flows.load(Ordering::Relaxed),
            udp_flows = stats.udp_flows.load(Ordering::Relaxed),
            refused = stats.refused.load(Ordering::Relaxed),
            failed = stats.failed.load(Ordering::Relaxed),
            tcp_bytes_out = stats.tcp.to_tcp.load(Ordering::Relaxed),
            tcp_bytes_in = stats.tcp.from_tcp.load(Ordering::Relaxed),
            udp_bytes_out = stats.udp.bytes_out.load(Ordering::Relaxed),
            udp_bytes_in = stats.udp.bytes_in.load(Ordering::Relaxed),
            "egress relay stopped"
        );
    }
}

async fn handle_request(
    request: http::Request<()>,
    stream: ServerStream,
    context: RequestContext,
    shared: Arc<Shared>,
) {
    let protocol = request.extensions().get::<Protocol>().copied();
    let session = shared.payments.as_ref().map(|payments| {
        (
            Arc::clone(payments),
            payments.session(&context.connection, &shared),
        )
    });
    match (request.method(), protocol) {
        (&http::Method::CONNECT, None) => {
            connect::tcp(request, stream, context, shared, session.map(|(_, s)| s)).await;
        }
        (&http::Method::CONNECT, Some(p)) if p == Protocol::CONNECT_UDP => {
            connect::udp(request, stream, context, shared, session.map(|(_, s)| s)).await;
        }
        (&http::Method::POST, None) if request.uri().path() == PAY_PATH => match session {
            Some((payments, session)) => payments.pay(request, stream, session).await,
            None => {
                server::respond_error(stream, http::StatusCode::NOT_FOUND, PROXY_NAME, None).await;
            }
        },
        (&http::Method::POST, None) if request.uri().path() == openrelay_wire::dns::PATH => {
            // Queries and answers are metered as UDP, like the flows they
            // stand for.
            let counters = Arc::clone(session.as_ref().map_or(&shared.stats.udp, |(_, s)| &s.udp));
            dns::answer(request, stream, shared, counters).await;
        }
        (&http::Method::CONNECT, Some(_)) => {
            server::respond_error(stream, http::StatusCode::NOT_IMPLEMENTED, PROXY_NAME, None)
                .await;
        }
        _ => {
            server::respond_error(
                stream,
                http::StatusCode::METHOD_NOT_ALLOWED,
                PROXY_NAME,
                Some(ProxyErrorType::HttpRequestDenied),
            )
            .await;
        }
    }
}

pub(crate) fn log_refusal(reason: &'static str) {
    // The reason is a fixed string: never the destination.
    debug!(reason, "request refused");
}

pub(crate) fn log_flow_error(error: &FlowError) {
    warn!(kind = error.kind_name(), "flow failed");
}
