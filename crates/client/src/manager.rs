//! Keeps one live path and replaces it when a relay dies, without user action:
//! a failed relay is avoided for a while (its quarantine) and the next path is
//! built from the remaining ingress/egress pairs of different operators.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openrelay_config::{ClientConfig, PathConfig, RelayEntry};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::path::{BuildError, Hop, Path};
use crate::selection;

/// Paths tried before giving up on one request for a path.
const MAX_BUILD_ATTEMPTS: usize = 4;

/// Why no path is available.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The relay list has no ingress/egress pair of different operators.
    #[error("no usable path: the relay list has no ingress and egress of different operators")]
    NoCandidate,
    /// Every attempt failed; the last error is given.
    #[error("no relay path could be built: {0}")]
    AllFailed(String),
    /// The client is shutting down.
    #[error("the client is shutting down")]
    Closed,
}

/// Owns the current path.
#[derive(Debug)]
pub struct PathManager {
    relays: Vec<RelayEntry>,
    bind: Option<IpAddr>,
    config: PathConfig,
    current: tokio::sync::Mutex<Option<Arc<Path>>>,
    quarantine: Mutex<HashMap<String, Instant>>,
    rng: Mutex<fastrand::Rng>,
    closed: std::sync::atomic::AtomicBool,
}

impl PathManager {
    /// A manager for the client's relay list.
    pub fn new(config: &ClientConfig) -> Self {
        PathManager {
            relays: config.relays.clone(),
            bind: config.bind,
            config: config.path.clone(),
            current: tokio::sync::Mutex::new(None),
            quarantine: Mutex::new(HashMap::new()),
            rng: Mutex::new(fastrand::Rng::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn quarantined(&self) -> HashMap<String, Instant> {
        let mut quarantine = self
            .quarantine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        quarantine.retain(|_, until| *until > now);
        quarantine.clone()
    }

    fn quarantine(&self, relay: &RelayEntry) {
        let until = Instant::now() + Duration::from_secs(self.config.failed_relay_quarantine_secs);
        self.quarantine
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(relay.name.clone(), until);
    }

    fn choose(&self) -> Option<selection::PathChoice> {
        let quarantined = self.quarantined();
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        selection::choose(
            &self.relays,
            |r| quarantined.contains_key(&r.name),
            |n| rng.usize(..n),
        )
        // Every pair has a quarantined relay: they may be back, so try them
        // again rather than fail (still never the same operator).
        .or_else(|| selection::choose(&self.relays, |_| false, |n| rng.usize(..n)))
    }

    /// The live path, building one if there is none.
    pub async fn current(self: &Arc<Self>) -> Result<Arc<Path>, PathError> {
        let mut slot = self.current.lock().await;
        if self.closed.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(PathError::Closed);
        }
        if let Some(path) = slot.as_ref().filter(|p| p.is_alive()) {
            return Ok(Arc::clone(path));
        }
        let mut last_error: Option<BuildError> = None;
        for _ in 0..MAX_BUILD_ATTEMPTS {
            let Some(choice) = self.choose() else {
                return Err(PathError::NoCandidate);
            };
            let (ingress, egress) = (&self.relays[choice.ingress], &self.relays[choice.egress]);
            match Path::build(ingress, egress, self.bind, &self.config).await {
                Ok(path) => {
                    info!(ingress = %ingress.name, egress = %egress.name, "path established");
                    let path = Arc::new(path);
                    *slot = Some(Arc::clone(&path));
                    self.watch(&path);
                    return Ok(path);
                }
                Err(e) => {
                    warn!(error = %e, "path build failed");
                    match e.hop() {
                        Some(Hop::Ingress) => self.quarantine(ingress),
                        Some(Hop::Egress) => self.quarantine(egress),
                        None => {}
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(PathError::AllFailed(
            last_error.map(|e| e.to_string()).unwrap_or_default(),
        ))
    }

    /// Watches `path` and reports its failure.
    fn watch(self: &Arc<Self>, path: &Arc<Path>) {
        let manager = Arc::downgrade(self);
        let watched = Arc::downgrade(path);
        let path = Arc::clone(path);
        tokio::spawn(async move {
            let hop = path.failed().await;
            drop(path);
            if let (Some(manager), Some(path)) = (manager.upgrade(), watched.upgrade()) {
                manager.path_failed(&path, hop).await;
            }
        });
    }

    /// Marks `path` dead: its failing relay is quarantined and the next
    /// request builds a new path. Idempotent.
    pub async fn path_failed(&self, path: &Arc<Path>, hop: Hop) {
        let relay = match hop {
            Hop::Ingress => &path.ingress,
            Hop::Egress => &path.egress,
        };
        let mut slot = self.current.lock().await;
        if slot.as_ref().is_some_and(|p| Arc::ptr_eq(p, path)) {
            warn!(relay = %relay.name, hop = ?hop, "relay failed; switching path");
            self.quarantine(relay);
            path.close("path failed");
            *slot = None;
        }
    }

    /// Closes the current path and refuses new ones.
    pub async fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(path) = self.current.lock().await.take() {
            path.close("client shutting down");
        }
    }
}
