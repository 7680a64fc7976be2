//! What a server allows its peers, in one place: connections in total and
//! per address, handshakes from unproven addresses, streams per connection,
//! and time for handshakes, request heads and request bodies
//! ([`ServerLimits`]); the I/O-free bookkeeping that enforces the
//! connection limits when a connection arrives ([`ConnectionGate`]); and the
//! request-stream allowance that follows a connection's use
//! ([`StreamAllowance`]).
//!
//! # Spoofed addresses
//!
//! A QUIC Initial can carry any source address. Counting it against that
//! address would let an attacker lock a victim out by spoofing it, so only
//! addresses the peer has proven count per address: the completed
//! handshake proves one (RFC 9000 §8.1), and so does a Retry token
//! (RFC 9000 §8.1.2). Handshakes from unproven addresses count only towards
//! the total and towards [`ServerLimits::max_unvalidated_handshakes`];
//! beyond that many at once, newcomers must first answer a stateless Retry
//! (one round trip, no state kept), which a spoofer cannot. A refused
//! Initial costs a victim nothing.
//!
//! # Addresses
//!
//! One IPv4 address, or one IPv6 /64 (what a single subscriber usually
//! gets: counting single IPv6 addresses would give one household 2^64
//! allowances). IPv4-mapped IPv6 addresses (a dual-stack socket's view of
//! IPv4 peers) count as their IPv4 address.
//!
//! # A full server
//!
//! Caps per address alone let a few addresses fill the total (four at the
//! registry's and issuer's defaults), locking everyone else out. So a full
//! server makes room by fair share: a connection from a proven address
//! holding at least two fewer connections than the address holding the
//! most is admitted, and that address's oldest connection is told to leave
//! ([`ConnectionPermit::evicted`]; the server closes it with
//! H3_EXCESSIVE_LOAD). Holding a server then takes about as many addresses
//! as it has connections, and a full server refuses only newcomers whose
//! address already holds about its share. Unproven newcomers at a full
//! server must first prove their address (a Retry), so a spoofed source
//! evicts nobody.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use openrelay_config::LimitsConfig;

/// Limits of one server; see the [module documentation](self). The
/// defaults depend on who the peers are ([`ServerLimits::ingress`],
/// [`ServerLimits::egress`], [`ServerLimits::service`]); a `[limits]`
/// section overrides them ([`ServerLimits::with_config`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections at once, handshaking or established.
    pub max_connections: usize,
    /// Established connections (and handshakes from proven addresses) at
    /// once per [`AddressKey`].
    pub max_connections_per_address: usize,
    /// Handshakes at once from unproven addresses before newcomers must
    /// answer a Retry.
    pub max_unvalidated_handshakes: usize,
    /// A handshake not complete after this long is abandoned.
    pub handshake_timeout: Duration,
    /// A request head not complete after this long is refused
    /// (H3_REQUEST_REJECTED: not processed, safe to retry).
    pub request_head_timeout: Duration,
    /// A request body (not a CONNECT tunnel) not complete this long after
    /// its head is cut off (H3_REQUEST_CANCELLED).
    pub request_body_timeout: Duration,
    /// Request streams per connection at once (QUIC stream limit).
    pub max_concurrent_bidi_streams: u32,
    /// Request streams a new connection may open at once; raised with its
    /// use up to [`Self::max_concurrent_bidi_streams`] ([`StreamAllowance`]).
    pub initial_concurrent_bidi_streams: u32,
    /// Unidirectional streams per connection at once: HTTP/3 needs three
    /// (control, QPACK encoder and decoder, RFC 9114 §6.2), peers grease
    /// with a few more.
    pub max_concurrent_uni_streams: u32,
    /// Bytes a peer may send on one stream ahead of what the server reads.
    pub stream_receive_window: u32,
    /// Bytes a peer may send on all its streams ahead of what the server
    /// reads: the most stream data one connection can park here.
    pub connection_receive_window: u32,
}

impl ServerLimits {
    /// An ingress: its peers are clients, several behind one address when a
    /// carrier NAT shares it, each with a connection per path. The
    /// per-address cap is as high as an address's token-paid tunnels may go
    /// (`ingress.max_tunnels_per_address_with_tokens`), as each tunnel is
    /// one connection. Its streams carry request heads only (tunnelled
    /// packets are datagrams, outside stream flow control), so small
    /// receive windows cost no throughput and bound what a connection can
    /// park to 1 MiB.
    pub fn ingress() -> Self {
        ServerLimits {
            max_connections: 16_384,
            max_connections_per_address: 1024,
            max_unvalidated_handshakes: 256,
            max_concurrent_bidi_streams: 20,
            // A path's outer connection carries one tunnel.
            initial_concurrent_bidi_streams: 4,
            stream_receive_window: 256 << 10,
            connection_receive_window: 1 << 20,
            ..ServerLimits::common()
        }
    }

    /// An egress: its peers are ingress relays, each carrying many clients'
    /// tunnels from one address (a socket per tunnel), so the per-address
    /// cap is high; `egress.max_flows_per_connection` gives the streams.
    /// Uploads of TCP flows are stream data: the receive windows stay at
    /// the bandwidth-delay product of a fast path
    /// ([`crate::endpoint::STREAM_RECEIVE_WINDOW`]).
    pub fn egress(max_flows_per_connection: u32) -> Self {
        ServerLimits {
            max_connections: 32_768,
            max_connections_per_address: 8192,
            max_unvalidated_handshakes: 1024,
            max_concurrent_bidi_streams: max_flows_per_connection,
            // A page load's burst of flows starts without waiting for more.
            initial_concurrent_bidi_streams: 32,
            ..ServerLimits::common()
        }
    }

    /// The registry and the issuer: clients reach them through egress
    /// relays (many clients per address), relays and validators directly.
    /// Requests are small (publications, settlements), answers large.
    pub fn service() -> Self {
        ServerLimits {
            max_connections: 4096,
            max_connections_per_address: 1024,
            max_unvalidated_handshakes: 128,
            max_concurrent_bidi_streams: 64,
            initial_concurrent_bidi_streams: 8,
            stream_receive_window: 1 << 20,
            connection_receive_window: 4 << 20,
            ..ServerLimits::common()
        }
    }

    fn common() -> Self {
        ServerLimits {
            max_connections: 0,
            max_connections_per_address: 0,
            max_unvalidated_handshakes: 0,
            handshake_timeout: Duration::from_secs(10),
            request_head_timeout: Duration::from_secs(10),
            request_body_timeout: Duration::from_secs(30),
            max_concurrent_bidi_streams: 0,
            initial_concurrent_bidi_streams: 0,
            max_concurrent_uni_streams: 8,
            stream_receive_window: crate::endpoint::STREAM_RECEIVE_WINDOW,
            connection_receive_window: crate::endpoint::CONNECTION_RECEIVE_WINDOW,
        }
    }

    /// These limits with a `[limits]` section's fields applied.
    pub fn with_config(mut self, config: &LimitsConfig) -> Self {
        let secs = Duration::from_secs;
        if let Some(v) = config.max_connections {
            self.max_connections = v;
        }
        if let Some(v) = config.max_connections_per_address {
            self.max_connections_per_address = v;
        }
        if let Some(v) = config.max_unvalidated_handshakes {
            self.max_unvalidated_handshakes = v;
        }
        if let Some(v) = config.handshake_timeout_secs {
            self.handshake_timeout = secs(v);
        }
        if let Some(v) = config.request_head_timeout_secs {
            self.request_head_timeout = secs(v);
        }
        if let Some(v) = config.request_body_timeout_secs {
            self.request_body_timeout = secs(v);
        }
        if let Some(v) = config.max_streams_per_connection {
            self.max_concurrent_bidi_streams = v;
        }
        if let Some(v) = config.max_uni_streams_per_connection {
            self.max_concurrent_uni_streams = v;
        }
        self.max_connections_per_address =
            self.max_connections_per_address.min(self.max_connections);
        self.initial_concurrent_bidi_streams = self
            .initial_concurrent_bidi_streams
            .min(self.max_concurrent_bidi_streams);
        self
    }
}

/// How many request streams one connection's peer may open at once.
///
/// quinn keeps a slot in two hash tables for every stream a peer may open,
/// allocated when the allowance is given and never shrunk: an egress that
/// allowed `max_flows_per_connection` (1,024) streams from the start held
/// about 120 KiB for every connection, idle or hostile. A connection
/// therefore starts with [`ServerLimits::initial_concurrent_bidi_streams`];
/// once half of its allowance is taken by requests whose heads arrived,
/// the allowance doubles (up to
/// [`ServerLimits::max_concurrent_bidi_streams`]) until less than half is,
/// so a burst of requests seldom waits a round trip for more, and memory
/// follows the most requests a connection really made. It never shrinks:
/// quinn's tables would not give the memory back. Heads that never
/// complete do not count, or a slowloris peer would raise it to the
/// maximum for free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamAllowance {
    current: u32,
    max: u32,
}

impl StreamAllowance {
    /// A new connection's allowance under `limits` (at least one stream
    /// when any is allowed).
    pub fn new(limits: &ServerLimits) -> Self {
        let max = limits.max_concurrent_bidi_streams;
        StreamAllowance {
            current: limits.initial_concurrent_bidi_streams.max(1).min(max),
            max,
        }
    }

    /// Streams the peer may open at once now.
    pub fn current(&self) -> u32 {
        self.current
    }

    /// `open` requests of the connection are open now; returns the raised
    /// allowance to give the peer, if it grows.
    pub fn on_open(&mut self, open: u32) -> Option<u32> {
        let mut next = self.current;
        while next < self.max && open.saturating_mul(2) >= next {
            next = next.saturating_mul(2).max(1);
        }
        next = next.min(self.max);
        (next > self.current).then(|| {
            self.current = next;
            next
        })
    }
}

/// Whom a per-address limit counts: an IPv4 address or an IPv6 /64. Its
/// `Debug` output hides the address (relays never log who).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// An IPv4 address (also when seen as IPv4-mapped IPv6).
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl AddressKey {
    /// The key of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => AddressKey::V4(v4),
            IpAddr::V6(v6) => AddressKey::V6Prefix((u128::from(v6) >> 64) as u64),
        }
    }
}

impl fmt::Debug for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AddressKey([scrubbed])")
    }
}

/// What to do with an arriving connection.
#[derive(Debug)]
pub enum Admission {
    /// Accept it; the permit holds its place until dropped.
    Accept(ConnectionPermit),
    /// Ask the client to prove its address first (QUIC Retry).
    Retry,
    /// Refuse it (QUIC CONNECTION_REFUSED), for this reason.
    Refuse(Refusal),
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The server holds [`ServerLimits::max_connections`].
    #[error("connection limit reached")]
    Full,
    /// The address holds [`ServerLimits::max_connections_per_address`].
    #[error("per-address connection limit reached")]
    AddressFull,
    /// Too many unproven handshakes, and this client already did a Retry
    /// (so its address is proven: it cannot be; quinn says so).
    #[error("too many handshakes in progress")]
    Busy,
}

impl Refusal {
    /// A fixed name for logs.
    pub fn kind_name(self) -> &'static str {
        match self {
            Refusal::Full => "server_full",
            Refusal::AddressFull => "address_full",
            Refusal::Busy => "handshakes_full",
        }
    }
}

/// Connections told to leave a full server but not gone yet, at most: each
/// lets one newcomer in past the total until it closes.
const MAX_EVICTING: usize = 64;

#[derive(Debug, Default)]
struct GateState {
    total: usize,
    unvalidated: usize,
    /// Connections told to leave that are still open (counted in `total`,
    /// no longer at their address).
    evicting: usize,
    /// The counted connections of each address, oldest first.
    per_address: HashMap<AddressKey, Vec<Arc<Eviction>>>,
}

impl GateState {
    fn at_address(&self, key: &AddressKey) -> usize {
        self.per_address.get(key).map_or(0, Vec::len)
    }

    /// Makes room for a newcomer from `key` at a full server: tells the
    /// oldest connection of the address holding the most to leave, if that
    /// address holds at least two more than `key` does.
    fn evict_for(&mut self, key: &AddressKey) -> bool {
        if self.evicting >= MAX_EVICTING {
            return false;
        }
        let newcomer = self.at_address(key);
        let Some((top, held)) = self
            .per_address
            .iter()
            .max_by_key(|(_, held)| held.len())
            .map(|(top, held)| (*top, held.len()))
        else {
            return false;
        };
        if top == *key || held < newcomer + 2 {
            return false;
        }
        let Some(victims) = self.per_address.get_mut(&top) else {
            return false;
        };
        let victim = victims.remove(0);
        if victims.is_empty() {
            self.per_address.remove(&top);
        }
        victim.evicted.store(true, Ordering::Relaxed);
        victim.notify.notify_one();
        self.evicting += 1;
        true
    }
}

/// How a gate tells one connection to leave.
#[derive(Debug, Default)]
struct Eviction {
    evicted: AtomicBool,
    notify: Notify,
}

/// Counts a server's connections and decides on arriving ones; see the
/// [module documentation](self).
#[derive(Debug)]
pub struct ConnectionGate {
    limits: ServerLimits,
    state: Mutex<GateState>,
}

impl ConnectionGate {
    /// A gate enforcing `limits`.
    pub fn new(limits: ServerLimits) -> Arc<Self> {
        Arc::new(ConnectionGate {
            limits,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides on a connection from `ip`, whose address is `validated`
    /// (by a Retry token) or not; `may_retry` is false once it answered a
    /// Retry.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, validated: bool, may_retry: bool) -> Admission {
        let key = AddressKey::of(ip);
        let mut state = self.state();
        if state.at_address(&key) >= self.limits.max_connections_per_address {
            return Admission::Refuse(Refusal::AddressFull);
        }
        if state.total >= self.limits.max_connections {
            // Room is made only for a proven address (module docs).
            if !validated {
                return match may_retry {
                    true => Admission::Retry,
                    false => Admission::Refuse(Refusal::Full),
                };
            }
            if !state.evict_for(&key) {
                return Admission::Refuse(Refusal::Full);
            }
        }
        let eviction = Arc::new(Eviction::default());
        if !validated {
            if state.unvalidated >= self.limits.max_unvalidated_handshakes {
                return match may_retry {
                    true => Admission::Retry,
                    false => Admission::Refuse(Refusal::Busy),
                };
            }
            state.unvalidated += 1;
        } else {
            state
                .per_address
                .entry(key)
                .or_default()
                .push(Arc::clone(&eviction));
        }
        state.total += 1;
        Admission::Accept(ConnectionPermit {
            gate: Arc::clone(self),
            key,
            counted: validated,
            unvalidated: !validated,
            eviction,
        })
    }

    /// Connections held now: (total, handshakes from unproven addresses,
    /// addresses counted).
    #[cfg(test)]
    fn counts(&self) -> (usize, usize, usize) {
        let state = self.state();
        (state.total, state.unvalidated, state.per_address.len())
    }

    #[cfg(test)]
    fn at_address(&self, ip: IpAddr) -> usize {
        self.state().at_address(&AddressKey::of(ip))
    }
}

/// One connection's place at a [`ConnectionGate`]; dropping it frees it.
#[derive(Debug)]
pub struct ConnectionPermit {
    gate: Arc<ConnectionGate>,
    key: AddressKey,
    /// Counted towards its address.
    counted: bool,
    /// Counted as an unproven handshake.
    unvalidated: bool,
    eviction: Arc<Eviction>,
}

impl ConnectionPermit {
    /// The handshake completed: the address is proven and now counts.
    /// Refused if its address is already full (several handshakes from it
    /// raced through while unproven).
    pub fn established(&mut self) -> Result<(), Refusal> {
        let mut state = self.gate.state();
        if self.unvalidated {
            self.unvalidated = false;
            state.unvalidated -= 1;
        }
        if self.counted {
            return Ok(());
        }
        if state.at_address(&self.key) >= self.gate.limits.max_connections_per_address {
            return Err(Refusal::AddressFull);
        }
        state
            .per_address
            .entry(self.key)
            .or_default()
            .push(Arc::clone(&self.eviction));
        self.counted = true;
        Ok(())
    }

    /// Resolves once the gate has told this connection to leave, to make
    /// room at a full server (module docs); the connection should close.
    pub async fn evicted(&self) {
        if !self.eviction.evicted.load(Ordering::Relaxed) {
            self.eviction.notify.notified().await;
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut state = self.gate.state();
        state.total -= 1;
        if self.unvalidated {
            state.unvalidated -= 1;
        }
        if self.eviction.evicted.load(Ordering::Relaxed) {
            state.evicting -= 1;
        } else if self.counted
            && let Some(held) = state.per_address.get_mut(&self.key)
        {
            held.retain(|other| !Arc::ptr_eq(other, &self.eviction));
            if held.is_empty() {
                state.per_address.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize, unvalidated: usize) -> ServerLimits {
        ServerLimits {
            max_connections: total,
            max_connections_per_address: per_address,
            max_unvalidated_handshakes: unvalidated,
            ..ServerLimits::service()
        }
    }

    fn accept(admission: Admission) -> ConnectionPermit {
        match admission {
            Admission::Accept(permit) => permit,
            other => panic!("{other:?}"),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys_are_ipv4_addresses_and_ipv6_slash_64s() {
        assert_eq!(
            AddressKey::of(ip("2001:db8:1:2::1")),
            AddressKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            AddressKey::of(ip("2001:db8:1:2::1")),
            AddressKey::of(ip("2001:db8:1:3::1"))
        );
        assert_ne!(
            AddressKey::of(ip("192.0.2.1")),
            AddressKey::of(ip("192.0.2.2"))
        );
        // A dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d; they are
        // not one /64.
        assert_eq!(
            AddressKey::of(ip("::ffff:192.0.2.1")),
            AddressKey::of(ip("192.0.2.1"))
        );
        assert_ne!(
            AddressKey::of(ip("::ffff:192.0.2.1")),
            AddressKey::of(ip("::ffff:192.0.2.2"))
        );
        assert!(!format!("{:?}", AddressKey::of(ip("192.0.2.1"))).contains("192"));
    }

    #[test]
    fn the_address_cap_counts_proven_addresses_only() {
        let gate = ConnectionGate::new(limits(100, 2, 100));
        let a = ip("192.0.2.1");
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut permit = accept(gate.admit(a, false, true));
            permit.established().unwrap();
            held.push(permit);
        }
        // Full: refused at arrival, proven or not (a spoofed Initial from a
        // full address costs its owner nothing).
        assert!(matches!(
            gate.admit(a, false, true),
            Admission::Refuse(Refusal::AddressFull)
        ));
        assert!(matches!(
            gate.admit(a, true, false),
            Admission::Refuse(Refusal::AddressFull)
        ));
        // Another address is unaffected.
        accept(gate.admit(ip("192.0.2.2"), false, true));
        // Unproven handshakes from one address do not fill it...
        let mut racing: Vec<_> = (0..5)
            .map(|_| accept(gate.admit(ip("198.51.100.1"), false, true)))
            .collect();
        assert_eq!(gate.counts().2, 1, "only the proven address is counted");
        // ... until they complete: the third is refused then.
        racing[0].established().unwrap();
        racing[1].established().unwrap();
        assert_eq!(racing[2].established(), Err(Refusal::AddressFull));
        drop(held.pop());
        accept(gate.admit(a, false, true)).established().unwrap();
    }

    #[test]
    fn many_unproven_handshakes_make_newcomers_retry() {
        let gate = ConnectionGate::new(limits(100, 10, 2));
        let _a = accept(gate.admit(ip("192.0.2.1"), false, true));
        let _b = accept(gate.admit(ip("192.0.2.2"), false, true));
        assert!(matches!(
            gate.admit(ip("192.0.2.3"), false, true),
            Admission::Retry
        ));
        // After a Retry the address is proven and counted at once.
        let _c = accept(gate.admit(ip("192.0.2.3"), true, false));
        assert_eq!(gate.counts(), (3, 2, 1));
    }

    #[test]
    fn the_total_cap_holds_and_permits_free_their_places() {
        let gate = ConnectionGate::new(limits(2, 2, 10));
        let a = accept(gate.admit(ip("192.0.2.1"), true, false));
        let _b = accept(gate.admit(ip("192.0.2.2"), false, true));
        assert!(matches!(
            gate.admit(ip("192.0.2.3"), true, false),
            Admission::Refuse(Refusal::Full)
        ));
        drop(a);
        let _c = accept(gate.admit(ip("192.0.2.3"), true, false));
        drop(_b);
        drop(_c);
        assert_eq!(gate.counts(), (0, 0, 0));
    }

    /// Whether `permit` was told to leave (without waiting).
    fn was_evicted(permit: &ConnectionPermit) -> bool {
        use std::future::Future;
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let evicted = std::pin::pin!(permit.evicted());
        evicted.poll(&mut cx).is_ready()
    }

    #[test]
    fn a_full_server_makes_room_by_fair_share() {
        let gate = ConnectionGate::new(limits(5, 4, 10));
        let (a, b, c) = (ip("192.0.2.1"), ip("192.0.2.2"), ip("192.0.2.3"));
        // One address holds four of five places, another the fifth.
        let mut held_a: Vec<_> = (0..4).map(|_| accept(gate.admit(a, true, false))).collect();
        let held_b = accept(gate.admit(b, true, false));
        // An unproven newcomer must prove its address first.
        assert!(matches!(gate.admit(c, false, true), Admission::Retry));
        // A proven one gets in; the top address's oldest connection leaves.
        let held_c = accept(gate.admit(c, true, false));
        assert!(was_evicted(&held_a[0]));
        assert!(held_a[1..].iter().all(|p| !was_evicted(p)));
        assert!(!was_evicted(&held_b) && !was_evicted(&held_c));
        assert_eq!(gate.at_address(a), 3);
        // The top address itself gains nothing by coming again.
        assert!(matches!(
            gate.admit(a, true, false),
            Admission::Refuse(Refusal::Full)
        ));
        // Another newcomer evicts again: a holds 2 now.
        let held_d = accept(gate.admit(ip("192.0.2.4"), true, false));
        assert!(was_evicted(&held_a[1]));
        // Shares are even (a 2, b 1, c 1, d 1): nobody else gets in.
        assert!(matches!(
            gate.admit(b, true, false),
            Admission::Refuse(Refusal::Full)
        ));
        // Evicted connections that close give back only the overshoot.
        held_a.drain(..2);
        assert_eq!(gate.counts(), (5, 0, 4));
        drop((held_a, held_b, held_c, held_d));
        assert_eq!(gate.counts(), (0, 0, 0));
    }

    #[test]
    fn the_stream_allowance_starts_small_and_doubles_at_half_use() {
        let mut allowance = StreamAllowance::new(&ServerLimits::egress(1024));
        assert_eq!(allowance.current(), 32);
        assert_eq!(allowance.on_open(15), None);
        assert_eq!(allowance.on_open(16), Some(64));
        assert_eq!(allowance.on_open(20), None);
        // A burst that arrived at once: raised past twice its size.
        assert_eq!(allowance.on_open(64), Some(256));
        assert_eq!(allowance.on_open(1000), Some(1024));
        assert_eq!(allowance.on_open(1024), None);
        // Never shrinks.
        assert_eq!(allowance.on_open(0), None);
        assert_eq!(allowance.current(), 1024);
        // A configured maximum below the initial allowance wins.
        let small = ServerLimits {
            max_concurrent_bidi_streams: 3,
            ..ServerLimits::egress(1024)
        };
        assert_eq!(StreamAllowance::new(&small).current(), 3);
        let none = ServerLimits {
            max_concurrent_bidi_streams: 0,
            ..ServerLimits::egress(1024)
        };
        let mut none = StreamAllowance::new(&none);
        assert_eq!((none.current(), none.on_open(5)), (0, None));
    }

    proptest::proptest! {
        /// Whatever the peer does (it can hold at most the allowance), the
        /// allowance stays within the maximum, never shrinks, and after
        /// each opening leaves room for as many streams again as are open,
        /// unless it is at the maximum.
        #[test]
        fn the_stream_allowance_keeps_headroom_within_the_maximum(
            initial in 0u32..64,
            max in 0u32..4096,
            opens in proptest::collection::vec(0u32..5000, 1..64),
        ) {
            let limits = ServerLimits {
                max_concurrent_bidi_streams: max,
                initial_concurrent_bidi_streams: initial,
                ..ServerLimits::egress(1024)
            };
            let mut allowance = StreamAllowance::new(&limits);
            for open in opens {
                let before = allowance.current();
                let open = open.min(before);
                let raised = allowance.on_open(open);
                let now = allowance.current();
                proptest::prop_assert!(now <= max && now >= before);
                proptest::prop_assert_eq!(raised.is_some(), now > before);
                proptest::prop_assert!(now == max || now > open.saturating_mul(2));
            }
        }
    }

    #[test]
    fn config_overrides_defaults() {
        let config = LimitsConfig {
            max_connections: Some(10),
            max_connections_per_address: Some(4),
            request_head_timeout_secs: Some(2),
            ..LimitsConfig::default()
        };
        let limits = ServerLimits::ingress().with_config(&config);
        assert_eq!(limits.max_connections, 10);
        assert_eq!(limits.max_connections_per_address, 4);
        assert_eq!(limits.request_head_timeout, Duration::from_secs(2));
        assert_eq!(limits.max_concurrent_bidi_streams, 20);
        // The per-address cap never exceeds the total.
        let small = LimitsConfig {
            max_connections: Some(5),
            ..LimitsConfig::default()
        };
        assert_eq!(
            ServerLimits::egress(64)
                .with_config(&small)
                .max_connections_per_address,
            5
        );
    }
}
