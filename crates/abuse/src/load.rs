//! The scale of one ingress (issue 16 item 3): many concurrent tunnels,
//! each a client's path with traffic, not an idle stream.
//!
//! Every tunnel is its own outer QUIC connection (one client, one
//! connection) with a connect-udp tunnel to an egress relay and a real QUIC
//! connection with that egress inside it ([`Tunnel`]), which pings the
//! egress every `keep_alive`: each ping and its acknowledgement cross the
//! ingress, a keep-alive echo. The report gives the ingress's resident
//! memory and CPU per tunnel, the set-up rate, whether the tunnels stay up
//! and echo while held, and whether a new legitimate client still gets
//! through with all of them open. Egress flows at scale are
//! [`crate::idle::measure`]'s (flows sharing inner connections, each with a
//! datagram).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Semaphore};

use crate::h3raw;
use crate::monitor::{self, Sample};
use crate::probe::{Prober, Tunnel, Via};
use crate::target::Target;

/// How the tunnels are opened and held.
#[derive(Debug, Clone)]
pub struct TunnelLoad {
    /// Tunnels to open.
    pub count: usize,
    /// Client addresses to open them from (in turn; the ingress caps the
    /// tunnels of one address).
    pub sources: Vec<IpAddr>,
    /// Egress relays to tunnel to (in turn), all on the ingress's list.
    pub egresses: Vec<Via>,
    /// Tunnels being set up at once.
    pub concurrency: usize,
    /// Each tunnel's inner connection pings its egress this often.
    pub keep_alive: Duration,
    /// How long every tunnel is held open (with its keep-alive) before the
    /// loaded reading.
    pub hold: Duration,
    /// `authorization` field values (RFC 9577 §2.2), one per tunnel, for
    /// an ingress with token admission; empty: none sent.
    pub authorizations: Vec<String>,
    /// Where the legitimate client comes from.
    pub legit_from: IpAddr,
}

/// What the tunnels cost the ingress.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TunnelReport {
    /// Tunnels asked for.
    pub requested: usize,
    /// Tunnels set up (inner handshake done).
    pub opened: u64,
    /// Tunnels refused or failed.
    pub failed: u64,
    /// The first failure, if any.
    pub first_failure: Option<String>,
    /// Seconds it took to set them up.
    pub setup_secs: f64,
    /// The ingress before the first tunnel.
    pub baseline: Sample,
    /// The ingress when the last tunnel was set up.
    pub set_up: Sample,
    /// The ingress at the end of the hold.
    pub held: Sample,
    /// Seconds the tunnels were held.
    pub hold_secs: f64,
    /// Tunnels still up at the end of the hold.
    pub up_after_hold: u64,
    /// Datagrams the inner connections received during the hold (the
    /// egress's answers to their keep-alives, through the ingress).
    pub echoes: u64,
    /// CPU ticks the generator itself used setting the tunnels up.
    pub generator_setup_ticks: u64,
    /// Legitimate tunnels (new connection, tunnel, inner handshake) tried
    /// and succeeded with every tunnel open.
    pub legit_tried: u32,
    /// Of those, the ones that got through.
    pub legit_ok: u32,
    /// The ingress a few seconds after every tunnel was closed.
    pub closed: Option<Sample>,
}

impl TunnelReport {
    /// Resident bytes per open tunnel (loaded, at the end of the hold,
    /// less baseline).
    pub fn rss_per_tunnel(&self) -> f64 {
        per(self.held.rss.saturating_sub(self.baseline.rss), self.opened)
    }

    /// Ingress CPU seconds per tunnel set up (handshake and request).
    pub fn cpu_per_tunnel(&self) -> f64 {
        per(
            self.set_up
                .cpu_ticks
                .saturating_sub(self.baseline.cpu_ticks),
            self.opened,
        ) / monitor::TICKS_PER_SECOND
    }

    /// Tunnels set up per second.
    pub fn setup_rate(&self) -> f64 {
        if self.setup_secs <= 0.0 {
            return 0.0;
        }
        self.opened as f64 / self.setup_secs
    }

    /// The ingress's CPU while holding the tunnels, in percent of a core.
    pub fn hold_cpu_percent(&self) -> f64 {
        monitor::cpu_percent(
            &self.set_up,
            &self.held,
            Duration::from_secs_f64(self.hold_secs),
        )
    }
}

fn per(total: u64, count: u64) -> f64 {
    if count == 0 {
        return 0.0;
    }
    total as f64 / count as f64
}

/// Why the load could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The target process could not be read.
    #[error("cannot read /proc/{0}")]
    NoProcess(u32),
    /// No client endpoint could be bound.
    #[error("no client address could be bound")]
    NoSource,
    /// No egress to tunnel to.
    #[error("no egress relay to tunnel to")]
    NoEgress,
}

/// Opens `load.count` tunnels through `ingress` (process `pid`), holds them
/// for `load.hold` while a legitimate client tries to get through, measures,
/// closes them and measures again.
pub async fn tunnels(
    ingress: &Target,
    load: &TunnelLoad,
    pid: u32,
) -> Result<TunnelReport, LoadError> {
    if load.egresses.is_empty() {
        return Err(LoadError::NoEgress);
    }
    let endpoints: Vec<quinn::Endpoint> = load
        .sources
        .iter()
        .filter_map(|source| h3raw::client_endpoint(*source).ok())
        .collect();
    if endpoints.is_empty() {
        return Err(LoadError::NoSource);
    }
    let me = std::process::id();
    let baseline = monitor::sample(pid).ok_or(LoadError::NoProcess(pid))?;
    let generator_before = monitor::sample(me).map_or(0, |s| s.cpu_ticks);
    let held: Arc<Mutex<Vec<Tunnel>>> = Arc::default();
    let failed = Arc::new(AtomicU64::new(0));
    let first_failure: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(load.concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(load.count);
    for i in 0..load.count {
        let endpoint = endpoints[i % endpoints.len()].clone();
        let via = load.egresses[i % load.egresses.len()];
        let authorization = load.authorizations.get(i).cloned();
        let (ingress, held) = (ingress.clone(), Arc::clone(&held));
        let (failed, first_failure) = (Arc::clone(&failed), Arc::clone(&first_failure));
        let keep_alive = load.keep_alive;
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let extra: Vec<(&str, &str)> = authorization
                .as_deref()
                .map(|value| ("authorization", value))
                .into_iter()
                .collect();
            match Tunnel::open(&endpoint, &ingress, via, &extra, keep_alive).await {
                Ok(tunnel) => held.lock().await.push(tunnel),
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut first) = first_failure.lock() {
                        first.get_or_insert_with(|| e.to_string());
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let setup_secs = started.elapsed().as_secs_f64();
    let set_up = monitor::sample(pid).ok_or(LoadError::NoProcess(pid))?;
    let generator_setup_ticks = monitor::sample(me)
        .map_or(0, |s| s.cpu_ticks)
        .saturating_sub(generator_before);
    let received = |tunnels: &[Tunnel]| -> u64 {
        tunnels
            .iter()
            .map(|t| t.inner.stats().udp_rx.datagrams)
            .sum()
    };
    let echoes_before = received(&held.lock().await);
    // The legitimate client tries a few times during the hold.
    let hold_started = Instant::now();
    let prober = Prober::new(
        ingress.clone(),
        load.legit_from,
        Some(load.egresses[0]),
        None,
    );
    let (mut legit_tried, mut legit_ok) = (0, 0);
    let probes = 5u32;
    for _ in 0..probes {
        legit_tried += 1;
        legit_ok += u32::from(prober.probe().await.is_ok());
        tokio::time::sleep(load.hold / (probes + 1)).await;
    }
    tokio::time::sleep(load.hold.saturating_sub(hold_started.elapsed())).await;
    let hold_secs = hold_started.elapsed().as_secs_f64();
    let held_sample = monitor::sample(pid).ok_or(LoadError::NoProcess(pid))?;
    let mut tunnels = std::mem::take(&mut *held.lock().await);
    let opened = tunnels.len() as u64;
    let echoes = received(&tunnels).saturating_sub(echoes_before);
    let up_after_hold = tunnels.iter().filter(|t| t.is_up()).count() as u64;
    for tunnel in &tunnels {
        tunnel.close();
    }
    // Let the close frames go out before the endpoints are dropped.
    tokio::time::sleep(Duration::from_secs(3)).await;
    tunnels.clear();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first_failure = first_failure.lock().ok().and_then(|f| f.clone());
    Ok(TunnelReport {
        requested: load.count,
        opened,
        failed: failed.load(Ordering::Relaxed),
        first_failure,
        setup_secs,
        baseline,
        set_up,
        held: held_sample,
        hold_secs,
        up_after_hold,
        echoes,
        generator_setup_ticks,
        legit_tried,
        legit_ok,
        closed: monitor::sample(pid),
    })
}
