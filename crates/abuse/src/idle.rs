//! What an idle tunnel (ingress) or idle UDP flow (egress) costs the
//! target: open many, let them sit, and divide the growth of the target's
//! resident memory by their number.
//!
//! At the ingress each tunnel has its own outer connection (one client, one
//! connection: the realistic case), so the figure includes QUIC and HTTP/3
//! connection state. At the egress flows share inner connections, as a
//! client's flows do (up to `flows_per_connection` each).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openrelay_transport::datagrams::DatagramSender;
use openrelay_wire::masque;
use openrelay_wire::target::Target as WireTarget;
use tokio::sync::{Mutex, Semaphore};

use crate::h3raw::{self, RawConnection};
use crate::monitor::{self, Sample};
use crate::target::{Role, Target};

/// How idle units are opened.
#[derive(Debug, Clone)]
pub struct IdleOptions {
    /// Tunnels or flows to open.
    pub count: usize,
    /// Client addresses to open them from (in turn).
    pub sources: Vec<IpAddr>,
    /// Connections being set up at once.
    pub concurrency: usize,
    /// Flows per connection (egress).
    pub flows_per_connection: usize,
    /// Quiet time before the loaded reading.
    pub settle: Duration,
    /// Egress: send one datagram on each flow once it is open, so each
    /// flow carries traffic to its destination.
    pub datagram_per_flow: bool,
}

/// What the idle units cost.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdleReport {
    /// The target's role.
    pub role: Role,
    /// Units asked for.
    pub requested: usize,
    /// Units the target accepted.
    pub opened: u64,
    /// Units refused or failed.
    pub failed: u64,
    /// Seconds it took to open them.
    pub open_secs: f64,
    /// The target before the first unit was opened.
    pub baseline: Sample,
    /// The target when the last unit was opened.
    pub opened_at: Sample,
    /// The target with every unit open and idle.
    pub loaded: Sample,
    /// The target a few seconds after every unit was closed.
    pub closed: Option<Sample>,
}

impl IdleReport {
    /// Resident bytes per open unit (loaded less baseline).
    pub fn per_unit(&self) -> f64 {
        if self.opened == 0 {
            return 0.0;
        }
        self.loaded.rss.saturating_sub(self.baseline.rss) as f64 / self.opened as f64
    }

    /// CPU seconds the target spent per unit opened (handshakes, requests
    /// and sockets, while they were being opened).
    pub fn cpu_per_unit(&self) -> f64 {
        if self.opened == 0 {
            return 0.0;
        }
        let ticks = self
            .opened_at
            .cpu_ticks
            .saturating_sub(self.baseline.cpu_ticks);
        ticks as f64 / monitor::TICKS_PER_SECOND / self.opened as f64
    }
}

/// Why the idle measurement could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdleError {
    /// The target process could not be read.
    #[error("cannot read /proc/{0}")]
    NoProcess(u32),
    /// Only relays carry tunnels and flows.
    #[error("idle tunnels and flows are for ingress and egress relays")]
    NotARelay,
    /// No client endpoint could be bound.
    #[error("no client address could be bound")]
    NoSource,
}

type Held = Arc<Mutex<Vec<(RawConnection, Vec<(quinn::SendStream, quinn::RecvStream)>)>>>;

/// Opens `options.count` idle tunnels (ingress, to `tunnel_to`, an egress
/// relay it forwards to) or UDP flows (egress, to `tunnel_to`, a UDP
/// address), measures process `pid`, closes them and measures again.
pub async fn measure(
    target: &Target,
    tunnel_to: SocketAddr,
    options: &IdleOptions,
    pid: u32,
) -> Result<IdleReport, IdleError> {
    let per_connection = match target.role {
        Role::Ingress => 1,
        Role::Egress => options.flows_per_connection.max(1),
        Role::Registry | Role::Issuer => return Err(IdleError::NotARelay),
    };
    let endpoints: Vec<quinn::Endpoint> = options
        .sources
        .iter()
        .filter_map(|source| h3raw::client_endpoint(*source).ok())
        .collect();
    if endpoints.is_empty() {
        return Err(IdleError::NoSource);
    }
    let baseline = monitor::sample(pid).ok_or(IdleError::NoProcess(pid))?;
    let authority = target.addr.to_string();
    let path = masque::udp_path(&WireTarget::from_socket_addr(tunnel_to));
    let head = Arc::new(h3raw::headers_frame(&h3raw::connect_udp_fields(
        &authority, &path,
    )));
    let held: Held = Arc::default();
    let (opened, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let started = Instant::now();
    let connections = options.count.div_ceil(per_connection);
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let units = per_connection.min(options.count - i * per_connection);
        let endpoint = endpoints[i % endpoints.len()].clone();
        let (target, head, held) = (target.clone(), Arc::clone(&head), Arc::clone(&held));
        let (opened, failed) = (Arc::clone(&opened), Arc::clone(&failed));
        let datagram_per_flow = options.datagram_per_flow && target.role == Role::Egress;
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let connection = RawConnection::connect(
                &endpoint,
                target.addr,
                target.key,
                target.role.mtu(),
                Duration::from_secs(20),
            )
            .await;
            let Ok(connection) = connection else {
                failed.fetch_add(units as u64, Ordering::Relaxed);
                return;
            };
            // A target that refuses a flow may also withhold the stream
            // credit for the next: every flow has a deadline.
            let flows = futures_util::future::join_all((0..units).map(|_| {
                tokio::time::timeout(Duration::from_secs(20), async {
                    let (send, mut recv) = connection.request(&head).await.ok()?;
                    match h3raw::response_accepted(&mut recv, Duration::from_secs(20)).await {
                        Ok(true) => Some((send, recv)),
                        _ => None,
                    }
                })
            }))
            .await;
            let flows = flows.into_iter().map(|flow| flow.ok().flatten());
            let streams: Vec<_> = flows.flatten().collect();
            if datagram_per_flow {
                for (send, _) in &streams {
                    if let Ok(sender) =
                        DatagramSender::new(connection.connection.clone(), u64::from(send.id()))
                    {
                        let _ = sender.send(b"openrelay-abuse flow");
                    }
                }
            }
            opened.fetch_add(streams.len() as u64, Ordering::Relaxed);
            failed.fetch_add((units - streams.len()) as u64, Ordering::Relaxed);
            held.lock().await.push((connection, streams));
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let open_secs = started.elapsed().as_secs_f64();
    let opened_at = monitor::sample(pid).ok_or(IdleError::NoProcess(pid))?;
    tokio::time::sleep(options.settle).await;
    let loaded = monitor::sample(pid).ok_or(IdleError::NoProcess(pid))?;
    for (connection, _) in held.lock().await.drain(..) {
        connection.close();
    }
    tokio::time::sleep(options.settle).await;
    Ok(IdleReport {
        role: target.role,
        requested: options.count,
        opened: opened.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        open_secs,
        baseline,
        opened_at,
        loaded,
        closed: monitor::sample(pid),
    })
}
