//! Keeps the client's paths. Which relays new flows use is the
//! [`PathPlan`]'s decision (rotation, exclusion of failed relays, per-site
//! isolation, the egress region); the manager builds the planned paths,
//! watches them, and retires a path once the plan moves on from it: a retired
//! path takes no new flows and is closed when its last flow ends, so rotation
//! never cuts an open connection.
//!
//! A relay that fails (handshake, or a live path dying) is excluded for
//! `failed_relay_quarantine_secs`; the plan then repairs or replaces every
//! path that used it, never pairing one operator's relays.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use openrelay_config::{ClientConfig, PathConfig, RelayEntry, RelayRole};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::account::Account;
use crate::control::PathState;
use crate::path::{BuildError, Hop, Path};
use crate::selection::{
    Candidate, EgressRegion, PathChoice, PathPlan, PlanConfig, PlannedPath, SelectionError, SiteKey,
};

/// Paths tried before giving up on one request for a path.
const MAX_BUILD_ATTEMPTS: usize = 4;

/// A retired path with no flows is closed only after this long, so a flow
/// that took the path just before it retired can register on it first.
const RETIRE_GRACE: Duration = Duration::from_secs(2);

/// How often retired paths are reaped and rotation is checked.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

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
    /// The relay directory in use is past its validity (or older than
    /// `directory.max_age_secs`) and no fresh one arrived: no path is built
    /// on an outdated relay list.
    #[error(
        "the relay directory expired {expired_secs_ago} s ago (it was issued {age_secs} s ago) and \
         no fresh one could be fetched, so no path is built on an outdated relay list; check the \
         network connection and the registry named in [directory] (the client keeps fetching \
         and resumes by itself when a fresh directory arrives)"
    )]
    DirectoryExpired {
        /// Seconds since the directory was issued.
        age_secs: u64,
        /// Seconds since it stopped being usable.
        expired_secs_ago: u64,
    },
}

/// When the relay list in use came from a directory: when it was issued
/// and until when it may carry traffic (its `valid_until`, or its issue time
/// plus `directory.max_age_secs` if that is earlier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryTimes {
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds (exclusive).
    pub usable_until: u64,
}

/// What a path is wanted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The user's traffic (and anything else): only on a current relay list.
    Traffic,
    /// Fetching a fresh directory. Allowed on the relays of an expired one:
    /// the fetched directory is trusted for its validators' signatures, not
    /// for the path it came through, and without this a client whose
    /// directory expired could never recover.
    DirectoryFetch,
}

/// Owns the client's paths.
#[derive(Debug)]
pub struct PathManager {
    plan: Mutex<PathPlan<Instant>>,
    // Replaced when a newer directory arrives; the plan holds the same
    // relays as candidates.
    relays: RwLock<Vec<RelayEntry>>,
    directory: Mutex<Option<DirectoryTimes>>,
    bind: Option<IpAddr>,
    config: PathConfig,
    account: Option<Arc<Account>>,
    /// Built paths, by the plan generation they serve.
    paths: Mutex<HashMap<u64, Arc<Path>>>,
    /// One build at a time per generation: concurrent flows wait for it.
    builds: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
    /// Paths the plan moved on from, with when; closed once their flows end.
    retired: Mutex<Vec<(Arc<Path>, Instant)>>,
    closed: AtomicBool,
    // The path last handed out, for status reports, and how many builds are
    // under way.
    published: Mutex<Option<Arc<Path>>>,
    building: AtomicUsize,
}

/// The manager's state as a status report sees it.
#[derive(Debug, Clone)]
pub struct PathSnapshot {
    /// Whether traffic can flow.
    pub state: PathState,
    /// The path last handed out to a flow, if it is up.
    pub latest: Option<Arc<Path>>,
    /// Paths up: those new flows use and retired ones still carrying flows.
    pub live_paths: usize,
    /// Flows open on all of them.
    pub open_flows: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the user asked of path selection, from the config.
fn plan_config(path: &PathConfig) -> PlanConfig {
    let region = match (&path.egress_country, &path.egress_city, &path.home_country) {
        (Some(country), Some(city), _) => EgressRegion::City {
            country: country.clone(),
            city: city.clone(),
        },
        (Some(country), None, _) => EgressRegion::Country(country.clone()),
        (None, _, Some(home)) => EgressRegion::Near {
            home_country: home.clone(),
        },
        (None, _, None) => EgressRegion::Any,
    };
    PlanConfig {
        region,
        rotation: Duration::from_secs(path.rotation_secs),
        per_site: path.per_site,
    }
}

fn candidates(relays: &[RelayEntry]) -> Vec<Candidate> {
    relays.iter().map(Candidate::from).collect()
}

impl PathManager {
    /// A manager for the client's relay list and path settings; with an
    /// account, paths show access tokens and pay their egress.
    pub fn new(config: &ClientConfig, account: Option<Arc<Account>>) -> Self {
        PathManager {
            plan: Mutex::new(PathPlan::new(
                candidates(&config.relays),
                plan_config(&config.path),
                fastrand::Rng::new(),
            )),
            relays: RwLock::new(config.relays.clone()),
            directory: Mutex::new(None),
            bind: config.bind,
            config: config.path.clone(),
            account,
            paths: Mutex::new(HashMap::new()),
            builds: Mutex::new(HashMap::new()),
            retired: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            published: Mutex::new(None),
            building: AtomicUsize::new(0),
        }
    }

    /// Replaces the relay list (from a verified directory with `times`). A
    /// path whose relay left is replaced (or, for a departed ingress,
    /// repaired) when next asked for; other paths stay. Once the directory
    /// is past `times.usable_until`, paths are refused
    /// ([`PathError::DirectoryExpired`]) except to fetch a fresh directory.
    pub fn set_relays(&self, relays: Vec<RelayEntry>, times: Option<DirectoryTimes>) {
        lock(&self.plan).set_candidates(candidates(&relays));
        *self
            .relays
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = relays;
        *lock(&self.directory) = times;
    }

    /// When the directory in use was issued (None: relays from the config).
    pub fn directory_issued_at(&self) -> Option<u64> {
        lock(&self.directory).map(|t| t.issued_at)
    }

    /// Refuses traffic on an expired directory's relays.
    fn check_directory(&self, purpose: Purpose) -> Result<(), PathError> {
        let Some(times) = *lock(&self.directory) else {
            return Ok(());
        };
        let now = crate::directory::unix_now();
        if purpose == Purpose::Traffic && now >= times.usable_until {
            return Err(PathError::DirectoryExpired {
                age_secs: now.saturating_sub(times.issued_at),
                expired_secs_ago: now - times.usable_until,
            });
        }
        Ok(())
    }

    /// The plan's path for new flows to `site` (None: flows not isolated by
    /// site). Retires built paths the plan no longer keeps.
    fn planned(&self, site: Option<&SiteKey>) -> Result<PlannedPath<Instant>, PathError> {
        let mut plan = lock(&self.plan);
        let now = Instant::now();
        let ask = |plan: &mut PathPlan<Instant>| match site {
            Some(site) => plan.assign(site, now),
            None => plan.current(now),
        };
        let planned = loop {
            match ask(&mut plan) {
                Ok(planned) => break planned,
                // Every usable pair has a failed relay. They may be back:
                // give back the one that failed longest ago and try again,
                // so one that just failed is retried last (still never one
                // operator's pair).
                Err(e) if !plan.release_oldest_exclusion() => return Err(e.into()),
                Err(_) => {}
            }
        };
        self.retire_unplanned(plan);
        Ok(planned)
    }

    /// Retires the built paths of generations `plan` no longer keeps.
    fn retire_unplanned(&self, plan: MutexGuard<'_, PathPlan<Instant>>) {
        let kept: Vec<u64> = plan.kept_generations().collect();
        drop(plan);
        lock(&self.builds).retain(|generation, _| kept.contains(generation));
        let unplanned: Vec<Arc<Path>> = {
            let mut paths = lock(&self.paths);
            let gone: Vec<u64> = paths
                .keys()
                .copied()
                .filter(|g| !kept.contains(g))
                .collect();
            gone.iter().filter_map(|g| paths.remove(g)).collect()
        };
        for path in unplanned {
            self.retire(path);
        }
    }

    fn retire(&self, path: Arc<Path>) {
        info!(ingress = %path.ingress.name, egress = %path.egress.name, "path retired; it takes no new flows");
        lock(&self.retired).push((path, Instant::now()));
    }

    /// The relay entries of a planned path.
    fn entries(&self, choice: &PathChoice) -> Result<(RelayEntry, RelayEntry), PathError> {
        let relays = self
            .relays
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let relay = |role, id: &str| {
            relays
                .iter()
                .find(|r| r.role == role && r.key.to_string() == id)
                .cloned()
                .ok_or_else(|| PathError::AllFailed(format!("relay {id} is not in the relay list")))
        };
        Ok((
            relay(RelayRole::Ingress, &choice.ingress.id)?,
            relay(RelayRole::Egress, &choice.egress.id)?,
        ))
    }

    fn exclude(&self, relay: &RelayEntry) {
        let until = Instant::now() + Duration::from_secs(self.config.failed_relay_quarantine_secs);
        lock(&self.plan).exclude(&relay.key.to_string(), until);
    }

    fn check_open(&self) -> Result<(), PathError> {
        if self.closed.load(Ordering::Relaxed) {
            Err(PathError::Closed)
        } else {
            Ok(())
        }
    }

    /// The path for new flows not isolated by site, building it if needed.
    pub async fn current(self: &Arc<Self>) -> Result<Arc<Path>, PathError> {
        self.path_for(None).await
    }

    /// The path for a new flow to `site` (with per-site isolation; otherwise
    /// every site shares one path), building it if needed.
    pub async fn path_for(
        self: &Arc<Self>,
        site: Option<&SiteKey>,
    ) -> Result<Arc<Path>, PathError> {
        self.path_for_purpose(site, Purpose::Traffic).await
    }

    /// [`PathManager::path_for`], for `purpose`.
    pub async fn path_for_purpose(
        self: &Arc<Self>,
        site: Option<&SiteKey>,
        purpose: Purpose,
    ) -> Result<Arc<Path>, PathError> {
        let mut last_error: Option<BuildError> = None;
        for _ in 0..MAX_BUILD_ATTEMPTS {
            self.check_open()?;
            self.check_directory(purpose)?;
            let planned = self.planned(site)?;
            let generation = planned.generation;
            if let Some(path) = self.built(generation) {
                return Ok(path);
            }
            let build = Arc::clone(lock(&self.builds).entry(generation).or_default());
            let _one_build = build.lock().await;
            // Built by a flow that held the lock before us?
            if let Some(path) = self.built(generation) {
                return Ok(path);
            }
            self.check_open()?;
            let (ingress, egress) = self.entries(&planned.choice)?;
            self.building.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let result = Path::build(
                &ingress,
                &egress,
                self.bind,
                &self.config,
                self.account.as_ref(),
            )
            .await;
            self.building.fetch_sub(1, Ordering::Relaxed);
            match result {
                Ok(path) => {
                    let setup_us = started.elapsed().as_micros() as u64;
                    info!(ingress = %ingress.name, egress = %egress.name, setup_us, "path established");
                    let path = Arc::new(path);
                    self.watch(&path);
                    self.adopt(generation, &path);
                    *lock(&self.published) = Some(Arc::clone(&path));
                    return Ok(path);
                }
                Err(e) => {
                    warn!(error = %e, "path build failed");
                    match e.hop() {
                        Some(Hop::Ingress) => self.exclude(&ingress),
                        Some(Hop::Egress) => self.exclude(&egress),
                        None => lock(&self.plan).discard(generation),
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(PathError::AllFailed(
            last_error.map(|e| e.to_string()).unwrap_or_default(),
        ))
    }

    /// The live built path of `generation`. A dead one is treated as failed
    /// (its watcher may not have run yet), so the plan moves on from it.
    fn built(&self, generation: u64) -> Option<Arc<Path>> {
        let path = lock(&self.paths).get(&generation).cloned()?;
        if path.is_alive() {
            *lock(&self.published) = Some(Arc::clone(&path));
            return Some(path);
        }
        let hop = if path.outer_failed() {
            Hop::Ingress
        } else {
            Hop::Egress
        };
        self.fail(&path, hop);
        None
    }

    /// Files a new path under `generation`, or retires it at once if the
    /// plan moved on while it was being built (the flow that asked for it
    /// still uses it).
    fn adopt(&self, generation: u64, path: &Arc<Path>) {
        let still_planned = lock(&self.plan).kept_generations().any(|g| g == generation);
        if still_planned {
            lock(&self.paths).insert(generation, Arc::clone(path));
        } else {
            self.retire(Arc::clone(path));
        }
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
                manager.fail(&path, hop);
            }
        });
    }

    /// Marks `path` dead: its failing relay is excluded and the plan repairs
    /// or replaces every path that used it. Idempotent; a path the manager
    /// retired or closed itself is not blamed on a relay.
    pub fn path_failed(&self, path: &Arc<Path>, hop: Hop) {
        self.fail(path, hop);
    }

    fn fail(&self, path: &Arc<Path>, hop: Hop) {
        let removed = {
            let mut paths = lock(&self.paths);
            let generation = paths
                .iter()
                .find(|(_, p)| Arc::ptr_eq(p, path))
                .map(|(g, _)| *g);
            generation.and_then(|g| paths.remove(&g))
        };
        if removed.is_none() {
            return;
        }
        let relay = match hop {
            Hop::Ingress => &path.ingress,
            Hop::Egress => &path.egress,
        };
        warn!(relay = %relay.name, hop = ?hop, "relay failed; switching path");
        self.exclude(relay);
        path.close("path failed");
        let mut published = lock(&self.published);
        if published.as_ref().is_some_and(|p| Arc::ptr_eq(p, path)) {
            *published = None;
        }
    }

    /// Closes retired paths whose flows have ended. When rotation is due:
    /// without per-site isolation, builds the next path at once so the
    /// first flow after it does not wait for the handshakes; with it, retires
    /// the expired paths (a site's next flow gets a fresh one).
    async fn maintain(self: &Arc<Self>) {
        let now = Instant::now();
        lock(&self.retired).retain(|(path, since)| {
            let done = !path.is_alive()
                || (path.open_flows() == 0 && now.duration_since(*since) >= RETIRE_GRACE);
            if done {
                debug!(ingress = %path.ingress.name, egress = %path.egress.name, "retired path closed");
                path.close("path rotated");
            }
            !done
        });
        let prebuild = {
            let mut plan = lock(&self.plan);
            let due = plan.next_rotation().is_some_and(|at| at <= now);
            let per_site = plan.config().per_site;
            if due && per_site {
                plan.forget_expired(now);
                self.retire_unplanned(plan);
            }
            due && !per_site
        };
        if prebuild && let Err(e) = self.current().await {
            debug!(error = %e, "no path after rotation yet");
        }
    }

    /// Runs [`PathManager::maintain`] until the manager closes.
    pub async fn run_maintenance(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(MAINTENANCE_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.closed.load(Ordering::Relaxed) {
            ticks.tick().await;
            self.maintain().await;
        }
    }

    /// The egress relays of the paths up (new flows' and retired ones').
    pub fn live_egresses(&self) -> Vec<RelayEntry> {
        let mut egresses: Vec<RelayEntry> = lock(&self.paths)
            .values()
            .chain(lock(&self.retired).iter().map(|(p, _)| p))
            .filter(|p| p.is_alive())
            .map(|p| p.egress.clone())
            .collect();
        egresses.sort_by(|a, b| a.name.cmp(&b.name));
        egresses.dedup_by(|a, b| a.key == b.key);
        egresses
    }

    /// The current state, without waiting for a path build to finish.
    pub fn snapshot(&self) -> PathSnapshot {
        let latest = lock(&self.published).clone().filter(|p| p.is_alive());
        let mut live: Vec<Arc<Path>> = lock(&self.paths)
            .values()
            .filter(|p| p.is_alive())
            .cloned()
            .collect();
        live.extend(
            lock(&self.retired)
                .iter()
                .filter(|(p, _)| p.is_alive())
                .map(|(p, _)| Arc::clone(p)),
        );
        let state = if !live.is_empty() {
            PathState::Connected
        } else if self.building.load(Ordering::Relaxed) > 0 {
            PathState::Connecting
        } else {
            PathState::Disconnected
        };
        PathSnapshot {
            state,
            latest: latest.or_else(|| live.first().cloned()),
            live_paths: live.len(),
            open_flows: live.iter().map(|p| p.open_flows()).sum(),
        }
    }

    /// Closes every path and refuses new ones.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        *lock(&self.published) = None;
        let paths: Vec<Arc<Path>> = lock(&self.paths).drain().map(|(_, p)| p).collect();
        let retired: Vec<Arc<Path>> = lock(&self.retired).drain(..).map(|(p, _)| p).collect();
        for path in paths.iter().chain(&retired) {
            path.close("client shutting down");
        }
    }
}
