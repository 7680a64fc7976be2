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
    Candidate, EgressRegion, PathChoice, PathPlan, PlanConfig, PlannedPath, RefillChoiceError,
    SelectionError, SiteKey,
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
}

/// Why no refill path could be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefillPathError {
    /// No pair of relays qualifies (see [`crate::selection::choose_refill`]).
    #[error("no refill path: {0}")]
    NoPath(#[from] RefillChoiceError),
    /// The chosen path could not be built.
    #[error("the refill path failed: {0}")]
    Build(#[from] BuildError),
    /// The relay list changed under the choice, or the client is closing.
    #[error(transparent)]
    Path(#[from] PathError),
}

/// Owns the client's paths.
#[derive(Debug)]
pub struct PathManager {
    plan: Mutex<PathPlan<Instant>>,
    // Replaced when a newer directory arrives; the plan holds the same
    // relays as candidates.
    relays: RwLock<Vec<RelayEntry>>,
    directory_issued_at: Mutex<Option<u64>>,
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
    /// When the last browsing path was established: refills keep away from
    /// session starts ([`crate::refill`]).
    last_established: Mutex<Option<Instant>>,
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
            directory_issued_at: Mutex::new(None),
            bind: config.bind,
            config: config.path.clone(),
            account,
            paths: Mutex::new(HashMap::new()),
            builds: Mutex::new(HashMap::new()),
            retired: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            published: Mutex::new(None),
            building: AtomicUsize::new(0),
            last_established: Mutex::new(None),
        }
    }

    /// Replaces the relay list (from a newer verified directory issued at
    /// `issued_at`). A path whose relay left is replaced (or, for a departed
    /// ingress, repaired) when next asked for; other paths stay.
    pub fn set_relays(&self, relays: Vec<RelayEntry>, issued_at: Option<u64>) {
        lock(&self.plan).set_candidates(candidates(&relays));
        *self
            .relays
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = relays;
        *lock(&self.directory_issued_at) = issued_at;
    }

    /// When the directory in use was issued (None: relays from the config).
    pub fn directory_issued_at(&self) -> Option<u64> {
        *lock(&self.directory_issued_at)
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
        let mut last_error: Option<BuildError> = None;
        for _ in 0..MAX_BUILD_ATTEMPTS {
            self.check_open()?;
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
                self.account.as_deref(),
            )
            .await;
            self.building.fetch_sub(1, Ordering::Relaxed);
            match result {
                Ok(mut path) => {
                    let setup_us = started.elapsed().as_micros() as u64;
                    info!(ingress = %ingress.name, egress = %egress.name, setup_us, "path established");
                    *lock(&self.last_established) = Some(Instant::now());
                    if let Some(account) = &self.account {
                        path.pay_with(account);
                    }
                    let path = Arc::new(path);
                    self.watch(&path);
                    self.adopt(generation, &path);
                    *lock(&self.published) = Some(Arc::clone(&path));
                    return Ok(path);
                }
                Err(e) => {
                    warn!(error = %e, "path build failed");
                    if !self.blame(&e, &ingress, &egress) {
                        lock(&self.plan).discard(generation);
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

    /// The paths up: those new flows use and retired ones still carrying
    /// flows.
    fn live_paths(&self) -> Vec<Arc<Path>> {
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
        live
    }

    /// The relays of the paths up (new flows' and retired ones'), ingress
    /// and egress of each.
    pub fn live_relays(&self) -> Vec<(RelayEntry, RelayEntry)> {
        self.live_paths()
            .iter()
            .map(|p| (p.ingress.clone(), p.egress.clone()))
            .collect()
    }

    /// The relays new paths are chosen from.
    pub fn relays(&self) -> Vec<RelayEntry> {
        self.relays
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// When the last browsing path was established.
    pub fn last_established(&self) -> Option<Instant> {
        *lock(&self.last_established)
    }

    /// Builds a path for one token refill through an ingress for whose
    /// operator `account` holds an access token, apart from every browsing
    /// path ([`PathPlan::refill`]): this manager's, and `elsewhere` (the
    /// paths of another process, e.g. a running client's when `openrelay
    /// account login` runs beside it). The path is the caller's alone: never
    /// filed, never used for flows, and it pays nobody (`docs/payments.md`).
    /// A relay that fails the build is excluded as for any path.
    pub async fn build_refill_path(
        &self,
        account: &Account,
        elsewhere: &[(RelayEntry, RelayEntry)],
    ) -> Result<Path, RefillPathError> {
        self.check_open()?;
        let browsing: Vec<PathChoice> = self
            .live_relays()
            .iter()
            .chain(elsewhere)
            .map(|(ingress, egress)| PathChoice {
                ingress: Candidate::from(ingress),
                egress: Candidate::from(egress),
            })
            .collect();
        let with_access: Vec<String> = account
            .ingresses_with_access(&self.relays())
            .iter()
            .map(|ingress| ingress.key.to_string())
            .collect();
        let choice =
            lock(&self.plan).refill(&browsing, |c| with_access.contains(&c.id), Instant::now())?;
        let (ingress, egress) = self.entries(&choice)?;
        Path::build(&ingress, &egress, self.bind, &self.config, Some(account))
            .await
            .map_err(|e| {
                self.blame(&e, &ingress, &egress);
                e.into()
            })
    }

    /// Excludes the relay a failed build of `ingress`→`egress` is blamed
    /// on; false if none is.
    fn blame(&self, error: &BuildError, ingress: &RelayEntry, egress: &RelayEntry) -> bool {
        match error.hop() {
            Some(Hop::Ingress) => self.exclude(ingress),
            Some(Hop::Egress) => self.exclude(egress),
            None => return false,
        }
        true
    }

    /// The current state, without waiting for a path build to finish.
    pub fn snapshot(&self) -> PathSnapshot {
        let latest = lock(&self.published).clone().filter(|p| p.is_alive());
        let live = self.live_paths();
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
