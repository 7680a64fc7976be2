//! Pay-as-you-go sessions (opt-in, `[egress.payment]`).
//!
//! A session is one tunnel: the inner QUIC connections arriving from one
//! ingress UDP source (the ingress opens a socket per tunnel), kept for
//! `tunnel_memory_secs` after its last connection ended
//! ([`TunnelSessions`]), so a client cannot shed an unpaid session by
//! reconnecting. It is metered by a [`Meter`] (one token per quantum of bytes
//! or time; a due token must arrive within a grace window and before the
//! session carries its unpaid allowance, or one more quantum once it paid)
//! and paid inside the encrypted connection, so the ingress never sees
//! payments and the egress never learns who paid (Privacy Pass tokens are
//! unlinkable to their issuance, RFC 9576 §3.3). While a session's first
//! payment is being checked, its new flows wait for the verdict, so a client
//! that pays at once never runs into its allowance.
//!
//! # The payment request
//! `POST /.well-known/openrelay/pay` with `Authorization: PrivateToken
//! token=...` (RFC 9577 §2.2). The token must be for this relay's challenge:
//! the configured issuer, and `origin_info` naming this relay by its key pin
//! (RFC 9577 §2.1.1), so a token collected here can be redeemed only for this
//! relay (see the issuer's settlement). A valid, unspent token pays one
//! quantum, and the response is *held* until the next token is due soon
//! (a quarter of a quantum left, or due): the answer `200` then tells the
//! client to pay again, so a paying client is never held up and needs no
//! meter of its own. Refusals are answered at once, as the ingress answers
//! admission refusals ([`openrelay_tokens::gate`]): 401 with a
//! `WWW-Authenticate: PrivateToken` challenge (how a client learns this
//! relay's challenge), 400 for a malformed token, 503 if the double-spend
//! set is unreachable.
//!
//! A session whose due token does not arrive within the grace window is
//! closed with QUIC application error [`PAYMENT_OVERDUE`] and the reason
//! `payment overdue`. Collected tokens are kept in the [`Ledger`] until
//! they are settled at the issuer ([`crate::settle`]).
//!
//! The issuer's keys are those the validator-signed directory lists for it
//! when the relay has a `[directory]` (RFC 9576 §6 key consistency), else
//! fetched from the issuer (or read from a local file); they are followed as
//! they rotate. Until they arrive, payments are refused with 503 "issuer
//! keys not yet available" and unpaid sessions run their grace.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openrelay_config::{DirectoryConfig, PaymentConfig};
use openrelay_issuer_client::keyfeed::{self, KeySource};
use openrelay_tokens::TokenChallenge;
use openrelay_tokens::gate::{GateError, Refusal, TokenGate};
use openrelay_tokens::spent::open_store;
use openrelay_transport::identity::Identity;
use openrelay_transport::server::{self, ServerStream};
use openrelay_transport::tcp_pump::PumpCounters;
use openrelay_transport::udp_bridge::BridgeCounters;
use openrelay_types::{ErrorKind, HasKind};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::ledger::{Ledger, LedgerError};
use crate::meter::{Meter, PaymentTerms, Standing, TunnelSessions};
use crate::settle::Settler;
use crate::{EgressStats, PROXY_NAME};

/// The payment request's path.
pub use openrelay_tokens::PAYMENT_PATH as PAY_PATH;

/// The QUIC application error code a session is closed with when a due
/// token did not arrive in time (in no registered HTTP/3 range).
pub const PAYMENT_OVERDUE: u32 = 0x4f52_5001;

/// The embedded double-spend set of payment tokens in the state directory.
pub const SPENT_FILE: &str = "payment-spent-tokens.redb";

/// How often a session's standing is checked while it is paid up.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How often while a token is due: a session that does not pay is closed
/// within this of reaching its allowance (what it moves meanwhile is the
/// overshoot, a few MiB at most on the fastest link).
const DUE_CHECK_INTERVAL: Duration = Duration::from_millis(10);
/// Ended sessions remembered at most (the oldest are forgotten first):
/// a few hundred bytes each.
const REMEMBERED_TUNNELS: usize = 32_768;

/// Why payments could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// The issuer keys or the challenge are unusable.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The double-spend set could not be opened.
    #[error(transparent)]
    Store(#[from] openrelay_tokens::SpentError),
    /// The ledger could not be opened.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The relay key could not be taken for settlement.
    #[error(transparent)]
    Identity(#[from] openrelay_transport::identity::IdentityError),
    /// The `[directory]` settings are unusable.
    #[error(transparent)]
    Directory(#[from] keyfeed::FollowConfigError),
}

impl HasKind for PaymentError {
    fn kind(&self) -> ErrorKind {
        match self {
            PaymentError::Gate(e) => e.kind(),
            PaymentError::Store(e) => e.kind(),
            PaymentError::Ledger(e) => e.kind(),
            PaymentError::Identity(e) => e.kind(),
            PaymentError::Directory(e) => e.kind(),
        }
    }
}

/// One metered session (a tunnel's).
#[derive(Debug)]
pub(crate) struct Session {
    meter: Mutex<Meter>,
    started: Instant,
    /// TCP payload carried for this session.
    pub(crate) tcp: PumpCounters,
    /// UDP payload carried for this session.
    pub(crate) udp: Arc<BridgeCounters>,
    /// Signalled when the standing may have changed.
    changed: Notify,
    /// Payments being checked now.
    paying: AtomicUsize,
    /// The counters as last added to the relay's totals and ledger.
    accounted: Mutex<[u64; 4]>,
}

/// Counts a payment as being checked while alive.
struct Paying<'a>(&'a Session);

impl Drop for Paying<'_> {
    fn drop(&mut self) {
        self.0.paying.fetch_sub(1, Ordering::Relaxed);
        self.0.changed.notify_waiters();
    }
}

impl Session {
    fn new(terms: PaymentTerms) -> Self {
        Session {
            meter: Mutex::new(Meter::new(terms)),
            started: Instant::now(),
            tcp: PumpCounters::default(),
            udp: Arc::new(BridgeCounters::default()),
            changed: Notify::new(),
            paying: AtomicUsize::new(0),
            accounted: Mutex::new([0; 4]),
        }
    }

    /// Whether a new flow may open: not once the session is overdue, and
    /// only after the verdict on a first payment being checked (a client
    /// that pays at once is then never closed for what its first flows
    /// carried meanwhile). Bounded: the enforcer closes a session whose
    /// token is late.
    pub(crate) async fn admit_flow(&self) -> bool {
        loop {
            let changed = self.changed.notified();
            if let Standing::Overdue { .. } = self.standing() {
                return false;
            }
            if self.meter().paid() > 0 || self.paying.load(Ordering::Relaxed) == 0 {
                return true;
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(DUE_CHECK_INTERVAL) => {}
            }
        }
    }

    fn meter(&self) -> MutexGuard<'_, Meter> {
        lock(&self.meter)
    }

    fn counters(&self) -> [u64; 4] {
        [
            &self.tcp.from_tcp,
            &self.tcp.to_tcp,
            &self.udp.bytes_in,
            &self.udp.bytes_out,
        ]
        .map(|c| c.load(Ordering::Relaxed))
    }

    fn bytes(&self) -> u64 {
        self.counters().iter().fold(0, |a, b| a.saturating_add(*b))
    }

    fn standing(&self) -> Standing {
        let bytes = self.bytes();
        self.meter().observe(bytes, self.started.elapsed())
    }

    /// Adds what the session carried since the last call to `stats`;
    /// returns how many bytes that was.
    fn account(&self, stats: &EgressStats) -> u64 {
        let now = self.counters();
        let before = std::mem::replace(&mut *lock(&self.accounted), now);
        let totals = [
            &stats.tcp.from_tcp,
            &stats.tcp.to_tcp,
            &stats.udp.bytes_in,
            &stats.udp.bytes_out,
        ];
        let mut added = 0u64;
        for ((total, now), before) in totals.iter().zip(now).zip(before) {
            let delta = now.saturating_sub(before);
            total.fetch_add(delta, Ordering::Relaxed);
            added = added.saturating_add(delta);
        }
        added
    }
}

type Tunnels = TunnelSessions<SocketAddr, Arc<Session>, Instant>;

/// The egress's payment desk: the token gate, the terms, the open sessions.
#[derive(Debug)]
pub struct Payments {
    gate: Arc<TokenGate>,
    /// Where the issuer keys come from, and how often they are fetched.
    keys: Option<(KeySource, Duration)>,
    ledger: Arc<Ledger>,
    terms: PaymentTerms,
    settlement: Option<Settler>,
    /// Sessions by tunnel source.
    tunnels: Mutex<Tunnels>,
    /// The session of each live connection, by its stable id.
    connections: Mutex<HashMap<usize, Arc<Session>>>,
}

impl Payments {
    /// Sets up payments for the relay of `identity`, credited at settlement
    /// to `operator` (its operator key with a registry, else its name);
    /// with `directory`, only the issuer keys it lists are accepted.
    pub fn open(
        config: &PaymentConfig,
        identity: &Identity,
        operator: &str,
        state_dir: &Path,
        directory: Option<&DirectoryConfig>,
    ) -> Result<Self, PaymentError> {
        let relay = identity.pin().to_string();
        let tokens = &config.tokens;
        let spent = open_store(
            tokens.redis_url.as_deref(),
            &tokens
                .spent_path
                .clone()
                .unwrap_or_else(|| state_dir.join(SPENT_FILE)),
        )?;
        let gate = TokenGate::new(
            &TokenChallenge::for_relay(&tokens.issuer_name, &relay),
            spent,
        )?;
        let source = KeySource::from_config(tokens, directory)?;
        if let Some(keys) = source.as_ref().and_then(KeySource::read_local) {
            gate.set_keys(keys);
        }
        Ok(Payments {
            gate: Arc::new(gate),
            keys: source.map(|s| (s, Duration::from_secs(tokens.keys_refresh_secs))),
            ledger: Arc::new(Ledger::open(state_dir)?),
            terms: PaymentTerms::new(
                config.quantum_mib.saturating_mul(1 << 20),
                Duration::from_secs(config.quantum_secs),
                Duration::from_secs(config.grace_secs),
                config.unpaid_allowance_kib.saturating_mul(1 << 10),
            ),
            tunnels: Mutex::new(TunnelSessions::new(
                Duration::from_secs(config.tunnel_memory_secs),
                REMEMBERED_TUNNELS,
            )),
            connections: Mutex::new(HashMap::new()),
            settlement: match &config.settle_at {
                Some(issuer) => Some(Settler {
                    issuer: issuer.clone(),
                    every: Duration::from_secs(config.settle_secs),
                    identity: identity.duplicate()?,
                    operator: operator.to_owned(),
                }),
                None => None,
            },
        })
    }

    /// Settles collected tokens at the issuer every `settle_secs` (forever;
    /// abort to stop); see [`crate::settle`].
    pub async fn settle(self: Arc<Self>) {
        if let Some(settler) = &self.settlement {
            settler
                .run(Arc::clone(&self.ledger), Arc::clone(&self.gate))
                .await;
        }
    }

    /// Keeps the issuer keys current (forever; abort to stop).
    pub async fn refresh_keys(self: Arc<Self>) {
        if let Some((source, refresh)) = self.keys.clone() {
            keyfeed::follow(Arc::clone(&self.gate), source, refresh).await;
        }
    }

    /// The session of `connection`'s tunnel, attaching the connection to it
    /// at its first request: a new session, or the one the tunnel's earlier
    /// connections left (within `tunnel_memory_secs`), meter and all.
    pub(crate) fn session(
        self: &Arc<Self>,
        connection: &quinn::Connection,
        stats: &Arc<crate::Shared>,
    ) -> Arc<Session> {
        let id = connection.stable_id();
        let mut connections = lock(&self.connections);
        if let Some(session) = connections.get(&id) {
            return Arc::clone(session);
        }
        // The tunnel's source address is kept in memory only, never logged.
        let tunnel = connection.remote_address();
        let (session, _, _forgotten) = lock(&self.tunnels).attach(&tunnel, Instant::now(), || {
            Arc::new(Session::new(self.terms))
        });
        connections.insert(id, Arc::clone(&session));
        tokio::spawn(Arc::clone(self).enforce(
            id,
            tunnel,
            Arc::clone(&session),
            connection.clone(),
            Arc::clone(stats),
        ));
        session
    }

    /// Closes the connection once its session is overdue; ends with the
    /// connection, leaving the session to its tunnel.
    async fn enforce(
        self: Arc<Self>,
        id: usize,
        tunnel: SocketAddr,
        session: Arc<Session>,
        connection: quinn::Connection,
        shared: Arc<crate::Shared>,
    ) {
        loop {
            let standing = session.standing();
            if let Standing::Overdue { paid } = standing {
                info!(paid, "session closed: payment overdue");
                connection.close(PAYMENT_OVERDUE.into(), b"payment overdue");
                break;
            }
            if standing.wants_token(&self.terms) {
                session.changed.notify_waiters();
            }
            let next = match standing {
                Standing::Due { .. } => DUE_CHECK_INTERVAL,
                _ => CHECK_INTERVAL,
            };
            tokio::select! {
                _ = connection.closed() => break,
                () = tokio::time::sleep(next) => {}
            }
        }
        lock(&self.connections).remove(&id);
        // Sessions forgotten now carried nothing since their last
        // connection ended, when they were accounted.
        let _forgotten = lock(&self.tunnels).detach(&tunnel, Instant::now());
        if let Err(e) = self.ledger.carried(session.account(&shared.stats)) {
            warn!(error = %e, "bytes carried not recorded");
        }
        session.changed.notify_waiters();
    }

    /// Serves one payment request on `session`; see the [module
    /// documentation](self).
    pub(crate) async fn pay(
        &self,
        request: http::Request<()>,
        mut stream: ServerStream,
        session: Arc<Session>,
    ) {
        session.paying.fetch_add(1, Ordering::Relaxed);
        let checking = Paying(&session);
        let token = match self.gate.admit(request.headers()).await {
            Ok(token) => token,
            Err(refusal) => {
                debug!(reason = refusal.details(), "payment refused");
                return refuse(stream, &refusal, &self.gate).await;
            }
        };
        // Spent already (the gate's double-spend set): a failure to keep it
        // for settlement costs this relay the token, not the client.
        if let Err(e) = self.ledger.collect(&token) {
            warn!(error = %e, "collected token not kept for settlement");
        }
        session.meter().pay();
        let paid = session.meter().paid();
        drop(checking);
        debug!(paid, "payment accepted");
        // Hold the answer until the next token is wanted (or the session
        // ends): the answer is the client's cue to pay again.
        while !session.standing().wants_token(&self.terms) {
            let changed = session.changed.notified();
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(CHECK_INTERVAL) => {}
            }
        }
        let response = http::Response::builder()
            .status(http::StatusCode::OK)
            .header("openrelay-paid-quanta", paid.to_string())
            .body(());
        if let Ok(response) = response {
            let _ = stream.send_response(response).await;
            let _ = stream.finish().await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Answers a refused payment (the token is never logged).
async fn refuse(stream: ServerStream, refusal: &Refusal, gate: &TokenGate) {
    let (status, details, challenge) = gate.answer(refusal);
    server::respond_denied(stream, status, PROXY_NAME, details, challenge).await;
}
