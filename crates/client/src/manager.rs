//! Keeps one live path and replaces it when a relay dies, without user action:
//! a failed relay is avoided for a while (its quarantine) and the next path is
//! built from the remaining ingress/egress pairs of different operators.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openrelay_config::{ClientConfig, PathConfig, RelayEntry, RelayRole};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::path::{BuildError, Hop, Path};
use crate::selection::{self, Candidate, EgressRegion, SelectionError};

/// Paths tried before giving up on one request for a path.
const MAX_BUILD_ATTEMPTS: usize = 4;

/// Why no path is available.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// No valid ingress/egress pair exists (e.g. one operator left); the
    /// reason says which rule could not be met.
    #[error(transparent)]
    NoPath(#[from] SelectionError),
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
    // Replaced when a newer directory arrives.
    relays: std::sync::RwLock<Vec<RelayEntry>>,
    directory_issued_at: Mutex<Option<u64>>,
    bind: Option<IpAddr>,
    config: PathConfig,
    current: tokio::sync::Mutex<Option<Arc<Path>>>,
    quarantine: Mutex<HashMap<String, Instant>>,
    rng: Mutex<fastrand::Rng>,
    closed: std::sync::atomic::AtomicBool,
    // The live path as last published, readable without waiting for a build
    // (for status reports), and whether a build is under way.
    published: Mutex<Option<Arc<Path>>>,
    building: std::sync::atomic::AtomicBool,
}

/// The manager's state as a status report sees it.
#[derive(Debug, Clone)]
pub enum PathSnapshot {
    /// A path is up.
    Connected(Arc<Path>),
    /// A path is being built.
    Connecting,
    /// No path; the next flow builds one.
    Disconnected,
}

impl PathManager {
    /// A manager for the client's relay list.
    pub fn new(config: &ClientConfig) -> Self {
        PathManager {
            relays: std::sync::RwLock::new(config.relays.clone()),
            directory_issued_at: Mutex::new(None),
            bind: config.bind,
            config: config.path.clone(),
            current: tokio::sync::Mutex::new(None),
            quarantine: Mutex::new(HashMap::new()),
            rng: Mutex::new(fastrand::Rng::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
            published: Mutex::new(None),
            building: std::sync::atomic::AtomicBool::new(false),
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

    /// Replaces the relay list (from a newer verified directory issued at
    /// `issued_at`). The current path stays until it fails or rotates.
    pub fn set_relays(&self, relays: Vec<RelayEntry>, issued_at: Option<u64>) {
        *self
            .relays
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = relays;
        *self
            .directory_issued_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = issued_at;
    }

    /// When the directory in use was issued (None: relays from the config).
    pub fn directory_issued_at(&self) -> Option<u64> {
        *self
            .directory_issued_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn choose(&self) -> Result<(RelayEntry, RelayEntry), PathError> {
        let quarantined = self.quarantined();
        let relays = self
            .relays
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let candidates: Vec<Candidate> = relays.iter().map(Candidate::from).collect();
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let region = match (&self.config.egress_country, &self.config.egress_city) {
            (Some(country), Some(city)) => EgressRegion::City {
                country: country.clone(),
                city: city.clone(),
            },
            (Some(country), None) => EgressRegion::Country(country.clone()),
            _ => EgressRegion::Any,
        };
        let choice = selection::choose(
            &candidates,
            &region,
            |c| quarantined.contains_key(&c.id),
            &mut rng,
        )
        // Every pair has a quarantined relay: they may be back, so try them
        // again rather than fail (still never the same operator).
        .or_else(|_| selection::choose(&candidates, &region, |_| false, &mut rng))?;
        // Candidates are made from `self.relays`, so the lookup finds them.
        let relay = |role, id: &str| {
            relays
                .iter()
                .find(|r| r.role == role && r.name == id)
                .cloned()
                .ok_or_else(|| PathError::AllFailed(format!("relay {id} is not in the relay list")))
        };
        Ok((
            relay(RelayRole::Ingress, &choice.ingress.id)?,
            relay(RelayRole::Egress, &choice.egress.id)?,
        ))
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
        let _building = BuildingFlag::set(&self.building);
        let mut last_error: Option<BuildError> = None;
        for _ in 0..MAX_BUILD_ATTEMPTS {
            let (ingress, egress) = self.choose()?;
            match Path::build(&ingress, &egress, self.bind, &self.config).await {
                Ok(path) => {
                    info!(ingress = %ingress.name, egress = %egress.name, "path established");
                    let path = Arc::new(path);
                    *slot = Some(Arc::clone(&path));
                    self.publish(Some(Arc::clone(&path)));
                    self.watch(&path);
                    return Ok(path);
                }
                Err(e) => {
                    warn!(error = %e, "path build failed");
                    match e.hop() {
                        Some(Hop::Ingress) => self.quarantine(&ingress),
                        Some(Hop::Egress) => self.quarantine(&egress),
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
            self.publish(None);
        }
    }

    fn publish(&self, path: Option<Arc<Path>>) {
        *self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = path;
    }

    /// The current state, without waiting for a path build to finish.
    pub fn snapshot(&self) -> PathSnapshot {
        let published = self
            .published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        match published.filter(|p| p.is_alive()) {
            Some(path) => PathSnapshot::Connected(path),
            None if self.building.load(std::sync::atomic::Ordering::Relaxed) => {
                PathSnapshot::Connecting
            }
            None => PathSnapshot::Disconnected,
        }
    }

    /// Closes the current path and refuses new ones.
    pub async fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.publish(None);
        if let Some(path) = self.current.lock().await.take() {
            path.close("client shutting down");
        }
    }
}

/// Marks a path build as under way until dropped (also on early return).
struct BuildingFlag<'a>(&'a std::sync::atomic::AtomicBool);

impl<'a> BuildingFlag<'a> {
    fn set(flag: &'a std::sync::atomic::AtomicBool) -> Self {
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
        BuildingFlag(flag)
    }
}

impl Drop for BuildingFlag<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}
