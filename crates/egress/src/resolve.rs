//! Turning a requested target into addresses the policy permits. The port is
//! judged before any lookup, and every resolved address after it, so a name
//! pointing at loopback, a private network or this host is refused like the
//! address.
//!
//! Names are resolved with hickory-resolver: asynchronous, so a nameserver
//! that never answers costs a timer and a socket, not a thread. (Blocking
//! `getaddrinfo` on tokio's blocking pool, abandoned at a timeout, filled the
//! pool the payment store's writes also run on, and paying sessions were
//! closed.) Every lookup ends within the egress's DNS budget, waiting for a
//! slot included, and the lookups in flight are bounded: in total and per
//! client connection ([`LookupSlots`]), so one client cannot take every slot.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use openrelay_policy::DestinationPolicy;
use openrelay_wire::target::{Host, Target};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::connect::FlowError;

/// Lookups (and forwarded DNS queries) in flight: at most `total`, and at
/// most `per_connection` for one client connection. Waiting for a slot is
/// cheap (a queued future) and bounded by the caller's timeout.
#[derive(Debug)]
pub(crate) struct LookupSlots {
    total: Arc<Semaphore>,
    per_connection: usize,
    connections: Mutex<HashMap<usize, ConnectionSlots>>,
}

/// One connection's share, and how many lookups hold or wait for it.
#[derive(Debug)]
struct ConnectionSlots {
    share: Arc<Semaphore>,
    users: usize,
}

/// One lookup's slot; freed on drop.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    slots: &'a LookupSlots,
    connection: usize,
    _connection_permit: Option<OwnedSemaphorePermit>,
    _total_permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut connections = self.slots.connections();
        if let Some(entry) = connections.get_mut(&self.connection) {
            entry.users -= 1;
            // Forgotten with its last lookup: the map does not grow with
            // connections that have ended.
            if entry.users == 0 {
                connections.remove(&self.connection);
            }
        }
    }
}

impl LookupSlots {
    /// `total` slots, a quarter of them (at least one) per connection.
    pub(crate) fn new(total: usize) -> Self {
        LookupSlots {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_connection: (total / 4).max(1),
            connections: Mutex::new(HashMap::new()),
        }
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<usize, ConnectionSlots>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a slot for `connection` (its QUIC `stable_id`): first one
    /// of the connection's own, then one of the total.
    pub(crate) async fn acquire(&self, connection: usize) -> Slot<'_> {
        let share = {
            let mut connections = self.connections();
            let entry = connections
                .entry(connection)
                .or_insert_with(|| ConnectionSlots {
                    share: Arc::new(Semaphore::new(self.per_connection)),
                    users: 0,
                });
            entry.users += 1;
            Arc::clone(&entry.share)
        };
        // Counted above; uncounted by its drop, also if this is cancelled.
        let mut slot = Slot {
            slots: self,
            connection,
            _connection_permit: None,
            _total_permit: None,
        };
        // Neither semaphore is ever closed.
        slot._connection_permit = share.acquire_owned().await.ok();
        slot._total_permit = Arc::clone(&self.total).acquire_owned().await.ok();
        slot
    }
}

/// The egress's resolver.
pub(crate) struct Resolver {
    resolver: TokioResolver,
    budget: Duration,
    slots: Arc<LookupSlots>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
}

/// Answers are kept at most this long (whatever their TTL), so a site that
/// moved is found again soon, and what the shared cache says about other
/// clients' lookups fades.
const MAX_CACHED: Duration = Duration::from_secs(300);
/// Failures are kept at most this long.
const MAX_CACHED_FAILURE: Duration = Duration::from_secs(60);
/// Cached answers.
const CACHE_ENTRIES: u64 = 4096;

impl Resolver {
    /// A resolver asking `nameservers` (UDP, and TCP for truncated
    /// answers), each lookup ending within `budget`, slots shared with the
    /// egress's forwarded DNS queries.
    pub(crate) fn new(
        nameservers: &[SocketAddr],
        budget: Duration,
        slots: Arc<LookupSlots>,
    ) -> Result<Self, hickory_resolver::net::NetError> {
        let servers = nameservers
            .iter()
            .map(|server| {
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .into_iter()
                    .map(|mut connection| {
                        connection.port = server.port();
                        connection
                    })
                    .collect();
                NameServerConfig::new(server.ip(), true, connections)
            })
            .collect();
        // No search domains: a client's "intranet" is never completed with
        // the operator's own domain.
        let config = ResolverConfig::from_name_servers(servers);
        let mut options = ResolverOpts::default();
        // Two tries (one retry), half the budget each.
        options.attempts = 1;
        options.timeout = (budget / 2).max(Duration::from_millis(500));
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        // The host's /etc/hosts names the operator's machines, not the
        // internet.
        options.use_hosts_file = ResolveHosts::Never;
        options.cache_size = CACHE_ENTRIES;
        options.positive_max_ttl = Some(MAX_CACHED);
        options.negative_max_ttl = Some(MAX_CACHED_FAILURE);
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()?;
        Ok(Resolver {
            resolver,
            budget,
            slots,
        })
    }

    /// The addresses of `name`, A records first, within the budget.
    pub(crate) async fn lookup(
        &self,
        name: &str,
        connection: usize,
    ) -> Result<Vec<IpAddr>, FlowError> {
        // Fully qualified: one query per family, never a search list.
        let fqdn = if name.ends_with('.') {
            name.to_owned()
        } else {
            format!("{name}.")
        };
        let lookup = async {
            let _slot = self.slots.acquire(connection).await;
            self.resolver.lookup_ip(fqdn.as_str()).await
        };
        match tokio::time::timeout(self.budget, lookup).await {
            Err(_) => Err(FlowError::DnsTimeout),
            Ok(Err(hickory_resolver::net::NetError::Timeout)) => Err(FlowError::DnsTimeout),
            Ok(Err(_)) => Err(FlowError::DnsFailed),
            Ok(Ok(found)) => Ok(found.iter().collect()),
        }
    }
}

/// Addresses to try for `target`, in resolver order, all permitted by `policy`.
pub(crate) async fn permitted_addresses(
    target: &Target,
    policy: &DestinationPolicy,
    resolver: &Resolver,
    connection: usize,
) -> Result<Vec<SocketAddr>, FlowError> {
    policy.check_port(target.port).map_err(FlowError::Refused)?;
    let resolved: Vec<SocketAddr> = match &target.host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, target.port)],
        Host::Name(name) => resolver
            .lookup(name.as_str(), connection)
            .await?
            .into_iter()
            .map(|ip| SocketAddr::new(ip, target.port))
            .collect(),
    };
    if resolved.is_empty() {
        return Err(FlowError::DnsFailed);
    }
    let permitted = policy.filter(resolved).map_err(FlowError::Refused)?;
    if permitted.is_empty() {
        return Err(FlowError::DnsFailed);
    }
    Ok(permitted)
}

/// The `nameserver`s of a resolv.conf text (resolv.conf(5)), port 53. An
/// address with a zone (`fe80::1%eth0`) is skipped.
pub(crate) fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next()?.parse().ok())
                .flatten()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .collect()
}

/// The nameservers the egress asks: the configured one, else the system's.
pub(crate) fn configured_nameservers(configured: Option<SocketAddr>) -> Vec<SocketAddr> {
    match configured {
        Some(server) => vec![server],
        None => nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_are_read_in_order() {
        let text = "# generated\nsearch example\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nnameserver 2001:db8::53\noptions ndots:2\nnameserver\n";
        assert_eq!(
            nameservers(text),
            vec![
                "192.0.2.53:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap()
            ]
        );
        assert!(nameservers("").is_empty());
        assert_eq!(
            configured_nameservers(Some("127.0.0.1:5353".parse().unwrap())),
            vec!["127.0.0.1:5353".parse::<SocketAddr>().unwrap()]
        );
    }

    #[tokio::test]
    async fn slots_are_bounded_per_connection_and_in_total() {
        let slots = LookupSlots::new(8);
        // One connection gets a quarter.
        let held: Vec<_> = futures_util::future::join_all((0..2).map(|_| slots.acquire(1))).await;
        let third = tokio::time::timeout(Duration::from_millis(50), slots.acquire(1)).await;
        assert!(third.is_err(), "a connection past its share waits");
        // Others still get theirs, up to the total.
        let mut others = Vec::new();
        for connection in 2..5 {
            others.push(slots.acquire(connection).await);
            others.push(slots.acquire(connection).await);
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(50), slots.acquire(9))
                .await
                .is_err(),
            "the total is reached"
        );
        drop(others);
        drop(held);
        // Connections whose lookups all ended, or were given up, are
        // forgotten.
        assert!(slots.connections().is_empty());
        let _again = slots.acquire(1).await;
        assert_eq!(slots.connections().len(), 1);
    }
}
