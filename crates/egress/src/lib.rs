#![doc = include_str!("../README.md")]

mod connect;
mod dns;
mod failure_log;
mod host;
pub mod ledger;
pub mod meter;
pub mod payment;
mod resolve;
pub mod settle;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use h3::ext::Protocol;
use openrelay_config::{EgressConfig, EgressRelayConfig, PaymentConfig, RelayCommon};
use openrelay_policy::{DenyRule, DestinationPolicy, Ports};
use openrelay_transport::endpoint::{INNER_MTU, Tuning};
use openrelay_transport::identity::Identity;
use openrelay_transport::limits::ServerLimits;
use openrelay_transport::server::{self, RequestContext, RequestHandler, ServerStream, StartError};
use openrelay_transport::service::Service;
use openrelay_transport::tcp_pump::PumpCounters;
use openrelay_transport::throttle_for_tests::ThrottleForTests;
use openrelay_transport::udp_bridge::BridgeCounters;
use openrelay_types::{ErrorKind, HasKind};
use openrelay_wire::proxy_status::ProxyErrorType;
use tracing::{debug, info, warn};

use crate::host::PolicyCell;
use crate::payment::{PAY_PATH, Payments};
use crate::resolve::{LookupSlots, Resolver};

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
    /// Payments could not be set up.
    #[error("payment: {0}")]
    Payment(#[from] payment::PaymentError),
    /// The host's own addresses could not be read (so they could not be
    /// refused).
    #[error("cannot read this host's addresses: {0}")]
    HostAddresses(std::io::Error),
    /// The resolver could not be set up.
    #[error("resolver: {0}")]
    Resolver(#[from] hickory_resolver::net::NetError),
}

impl HasKind for EgressError {
    fn kind(&self) -> ErrorKind {
        match self {
            EgressError::Start(e) => e.kind(),
            EgressError::Payment(e) => e.kind(),
            EgressError::HostAddresses(_) => ErrorKind::Local,
            // The system's resolver configuration is unusable.
            EgressError::Resolver(_) => ErrorKind::Config,
        }
    }
}

/// Settings of a running egress, derived from its config file.
#[derive(Debug, Clone)]
pub struct EgressSettings {
    /// UDP listen address.
    pub listen: SocketAddr,
    /// Which destinations are refused (the running egress adds its host's
    /// addresses and keeps them current).
    pub policy: DestinationPolicy,
    /// Infrastructure the config names by host name (a Redis URL's host):
    /// resolved when the egress starts, then refused like the rest.
    pub infrastructure_names: Vec<String>,
    /// Give up connecting to a destination after this long.
    pub connect_timeout: Duration,
    /// Close UDP flows idle this long.
    pub udp_idle_timeout: Duration,
    /// Most concurrent flows per client connection.
    pub max_flows_per_connection: u32,
    /// Source address of outgoing connections, used for destinations it
    /// can reach (a loopback address only for loopback destinations).
    pub outbound_bind: Option<IpAddr>,
    /// The nameservers names are resolved with and DNS queries (`POST
    /// /dns-query`) go to (the first).
    pub nameservers: Vec<SocketAddr>,
    /// A lookup or forwarded query gives up after this long.
    pub dns_timeout: Duration,
    /// Most lookups and forwarded queries in flight.
    pub max_dns_lookups: usize,
    /// Pay-as-you-go terms and tokens; `None`: free.
    pub payment: Option<PaymentConfig>,
    /// The validator-signed directory: with it, payment tokens are accepted
    /// only under the keys it lists for their issuer.
    pub directory: Option<openrelay_config::DirectoryConfig>,
    /// The relay's state directory (payment double-spend set, ledger).
    pub state_dir: PathBuf,
    /// The operator (credited at settlement).
    pub operator: String,
    /// Congestion controller of the inner connections (this relay sends
    /// the downloads on them).
    pub congestion: openrelay_config::CongestionControl,
    /// Connection, stream and time limits.
    pub limits: ServerLimits,
    /// A throughput limit for tests (`[throttle_for_tests]`); none by default.
    pub throttle_for_tests: Option<openrelay_config::ThrottleForTestsConfig>,
}

impl EgressSettings {
    /// Settings from a relay config file.
    pub fn from_config(config: &EgressRelayConfig) -> Result<Self, EgressError> {
        let (egress, config) = (&config.role, &config.common);
        let deny_ports = egress
            .deny_ports
            .clone()
            .unwrap_or_else(|| DestinationPolicy::DEFAULT_DENY_PORTS.to_vec());
        let listen_ip = config.listen.ip();
        let nameservers = resolve::configured_nameservers(egress.dns_resolver);
        let deny = egress
            .deny
            .iter()
            .map(|entry| DenyRule {
                net: entry.net(),
                ports: entry
                    .ports()
                    .map_or(Ports::All, |ports| Ports::Only(ports.to_vec())),
            })
            .collect();
        let (infrastructure, infrastructure_names) = infrastructure(config, egress, &nameservers);
        Ok(EgressSettings {
            listen: config.listen,
            policy: DestinationPolicy::new(egress.dangerously_allow_networks.clone(), deny_ports)
                .with_deny(deny)
                .with_infrastructure(infrastructure),
            infrastructure_names,
            connect_timeout: Duration::from_secs(egress.connect_timeout_secs),
            udp_idle_timeout: Duration::from_secs(egress.udp_idle_timeout_secs),
            max_flows_per_connection: egress.max_flows_per_connection,
            outbound_bind: egress
                .outbound_bind
                .or((!listen_ip.is_unspecified()).then_some(listen_ip)),
            nameservers,
            dns_timeout: Duration::from_secs(egress.dns_timeout_secs),
            max_dns_lookups: usize::try_from(egress.max_dns_lookups).unwrap_or(usize::MAX),
            payment: egress.payment.clone(),
            directory: config.directory.clone(),
            state_dir: config.state_dir.clone(),
            operator: config.operator.clone(),
            congestion: config.congestion,
            limits: ServerLimits::egress(egress.max_flows_per_connection)
                .with_config(&config.limits),
            throttle_for_tests: config.throttle_for_tests.clone(),
        })
    }
}

/// The operator's infrastructure that `config` names, as deny rules (and
/// host names to resolve at start): the registry and validators it
/// publishes to, the registry whose directory it follows, and the issuer it
/// settles with and takes keys from, every
/// port but their QUIC service's (clients reach those through the relays);
/// its Redis and its nameservers, every
/// port (the egress asks its nameservers itself, and answers clients' DNS
/// through `/dns-query`, where query types are checked).
fn infrastructure(
    config: &RelayCommon,
    egress: &EgressConfig,
    nameservers: &[SocketAddr],
) -> (Vec<DenyRule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut names = Vec::new();
    let publish = config.publish.as_ref();
    let payment = egress.payment.as_ref();
    let services = publish
        .map(|publish| publish.registry.addr)
        .into_iter()
        .chain(
            publish
                .into_iter()
                .flat_map(|p| p.validators.iter().map(|v| v.addr)),
        )
        .chain(config.directory.as_ref().map(|d| d.registry.addr))
        .chain(payment.and_then(|p| p.settle_at.as_ref()).map(|i| i.addr))
        .chain(
            payment
                .and_then(|p| p.tokens.issuer.as_ref())
                .map(|i| i.addr),
        );
    for service in services {
        rules.push(DenyRule::host_except(service.ip(), service.port()));
    }
    let redis = egress
        .payment
        .as_ref()
        .and_then(|payment| payment.tokens.redis_url.as_deref())
        .and_then(openrelay_tokens::spent::redis_host);
    match redis.map(|host| host.parse::<IpAddr>().map_err(|_| host)) {
        Some(Ok(ip)) => rules.push(DenyRule::all_ports(ip.into())),
        Some(Err(name)) => names.push(name),
        None => {}
    }
    for server in nameservers {
        rules.push(DenyRule::all_ports(server.ip().into()));
    }
    (rules, names)
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
    /// The destination policy in force (with the host's addresses now).
    pub(crate) policy: Arc<PolicyCell>,
    pub(crate) resolver: Resolver,
    /// Shared by lookups and forwarded DNS queries.
    pub(crate) slots: Arc<LookupSlots>,
    /// `[throttle_for_tests]`, if on.
    pub(crate) throttle: Option<Arc<ThrottleForTests>>,
    /// Which flow failures are logged.
    pub(crate) failures: std::sync::Mutex<failure_log::FailureTally>,
}

impl Shared {
    /// The test throttle for flows of `context`'s connection (its peer is
    /// an ingress), unless off or the peer is exempt.
    pub(crate) fn throttle_for(&self, context: &RequestContext) -> Option<Arc<ThrottleForTests>> {
        self.throttle
            .as_ref()
            .filter(|throttle| throttle.applies_to(context.connection.remote_address().ip()))
            .cloned()
    }
}

/// The lookup slots' name for the egress's own lookups (no client
/// connection has this QUIC `stable_id`, an address).
const OWN_LOOKUPS: usize = usize::MAX;

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
    service: Service,
    settings: EgressSettings,
    payments: Option<Arc<Payments>>,
    policy: Arc<PolicyCell>,
    resolver: Resolver,
    slots: Arc<LookupSlots>,
}

impl Egress {
    /// Binds the QUIC endpoint with the relay's identity.
    pub fn bind(settings: EgressSettings, identity: &Identity) -> Result<Self, EgressError> {
        let tuning =
            Tuning::relay(Duration::from_secs(30), INNER_MTU).with_congestion(settings.congestion);
        let service = Service::bind(settings.listen, identity, &tuning, settings.limits.clone())?;
        let payments = settings
            .payment
            .as_ref()
            .map(|config| {
                Payments::open(
                    config,
                    identity,
                    &settings.operator,
                    &settings.state_dir,
                    settings.directory.as_ref(),
                )
                .map(Arc::new)
            })
            .transpose()?;
        // The host's addresses are known (and watched) before the first
        // request.
        let policy = Arc::new(PolicyCell::new(settings.policy.clone()));
        host::watch(&policy).map_err(EgressError::HostAddresses)?;
        if settings.nameservers.is_empty() {
            warn!("no nameserver (dns_resolver, /etc/resolv.conf): names will not resolve");
        }
        let slots = Arc::new(LookupSlots::new(settings.max_dns_lookups));
        let resolver = Resolver::new(
            &settings.nameservers,
            settings.dns_timeout,
            Arc::clone(&slots),
        )?;
        Ok(Egress {
            service,
            settings,
            payments,
            policy,
            resolver,
            slots,
        })
    }

    /// The bound address (useful when listening on port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.service.local_addr()
    }

    /// Runs `task` (e.g. the relay's publisher) in the background for as
    /// long as the relay serves (see [`Service::spawn`]).
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.service.spawn(task);
    }

    /// Serves clients until `shutdown` resolves, then closes connections.
    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) {
        if let Some(payments) = &self.payments {
            self.service.spawn(Arc::clone(payments).refresh_keys());
            self.service.spawn(Arc::clone(payments).settle());
        }
        refuse_named_infrastructure(&self.settings, &self.resolver, &self.policy).await;
        let shared = Arc::new(Shared {
            throttle: ThrottleForTests::start(self.settings.throttle_for_tests.as_ref()),
            settings: self.settings,
            stats: EgressStats::default(),
            payments: self.payments,
            policy: self.policy,
            resolver: self.resolver,
            slots: self.slots,
            failures: std::sync::Mutex::new(failure_log::FailureTally::new(failure_log::INTERVAL)),
        });
        info!(payments = shared.payments.is_some(), "egress relay serving");
        let served = self.service.serve(Arc::clone(&shared), shutdown).await;
        let stats = &shared.stats;
        info!(
            connections = served.connections,
            connections_refused = served.refused,
            retries = served.retries,
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

/// Resolves the infrastructure named by host name and refuses its
/// addresses. A name that does not resolve now is said loudly: its host is
/// then not refused (list it in `deny`).
async fn refuse_named_infrastructure(
    settings: &EgressSettings,
    resolver: &Resolver,
    policy: &PolicyCell,
) {
    for name in &settings.infrastructure_names {
        match resolver.lookup(name, OWN_LOOKUPS).await {
            Ok(addresses) => policy.update(|policy| {
                let mut rules = policy.infrastructure().to_vec();
                rules.extend(
                    addresses
                        .into_iter()
                        .map(|ip| DenyRule::all_ports(ip.into())),
                );
                policy.with_infrastructure(rules)
            }),
            Err(e) => warn!(
                error = %e,
                "the Redis host does not resolve: it is not refused as a destination (add it to egress.deny)"
            ),
        }
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
            let connection = context.connection.stable_id();
            dns::answer(request, stream, shared, counters, connection).await;
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

/// Logs a flow failure, at most one line per kind per
/// [`failure_log::INTERVAL`] with the failures since the last one.
pub(crate) fn log_flow_error(error: &FlowError, shared: &Shared) {
    let kind = error.kind_name();
    let count = shared
        .failures
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record(kind, std::time::Instant::now());
    if let Some(count) = count {
        warn!(
            kind,
            count, "flows failed (count: since the last line of this kind)"
        );
    }
}
