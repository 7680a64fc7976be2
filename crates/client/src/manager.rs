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
//!
//! When a request for a path fails altogether (every attempt, or a refusal
//! no other relay would change, such as an ingress asking for an access
//! token the wallet does not hold), the next build waits out a back-off
//! ([`crate::backoff`]); requests meanwhile fail at once with the reason.
//! A success, tokens arriving in the wallet or a new relay list end the
//! wait. Failures are logged as warnings when their cause changes, not per
//! attempt.
//!
//! With the full-device VPN's kill switch the client's own packets may
//! reach only the addresses an [`IngressFilter`] admits: the manager keeps
//! it at the listed ingresses plus those of live paths, admitting a new
//! ingress before any path can be built to it.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use openrelay_config::{ClientConfig, PathConfig, RelayEntry};
use openrelay_types::RelayRole;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::account::Account;
use crate::backoff::BuildBackoff;
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
    /// Building keeps failing: the next attempt waits out a back-off.
    #[error("no relay path: {last} (next attempt in {}s)", retry_in.as_secs_f32().ceil())]
    BackingOff {
        /// Why the last attempt failed.
        last: BuildError,
        /// Time until the next attempt.
        retry_in: Duration,
    },
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

/// Where the client's own packets may go. The full-device VPN's kill switch
/// implements it: the client's marked packets reach only the addresses it
/// was last given.
pub trait IngressFilter: Send + Sync + std::fmt::Debug {
    /// From now on admit exactly `ingresses` (QUIC addresses of ingress
    /// relays), replacing the previous set in one step; in force when it
    /// returns. Failures are the implementation's to report (the filter
    /// then keeps its previous set, failing closed for new ingresses).
    fn admit_only(&self, ingresses: &BTreeSet<SocketAddr>);
}

/// Why path building is failing, while it is.
#[derive(Debug)]
struct Failing {
    /// The last attempt's error.
    last: BuildError,
    /// Access tokens in the wallet after it (an increase ends the back-off).
    access_tokens: usize,
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
    /// When the next build may start.
    backoff: Mutex<BuildBackoff<Instant>>,
    /// Why builds fail, while they do.
    failing: Mutex<Option<Failing>>,
    /// The kill switch's admitted ingresses, with the full-device VPN.
    ingress_filter: OnceLock<Arc<dyn IngressFilter>>,
    /// Held while the filter is changed, so that changes never interleave.
    filter_update: Mutex<()>,
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
    /// Why building a path failed last, while no path is up.
    pub no_path: Option<BuildError>,
    /// Time until the next build may start, while backing off.
    pub next_attempt_in: Option<Duration>,
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

fn ingress_addresses(relays: &[RelayEntry]) -> impl Iterator<Item = SocketAddr> + '_ {
    relays
        .iter()
        .filter(|r| r.role == RelayRole::Ingress)
        .map(|r| r.addr)
}

/// Whether two build errors have one cause (so the second is not worth
/// another warning): every access refusal is one cause, whichever ingress
/// said it (they all ask for the same tokens).
fn same_cause(a: &BuildError, b: &BuildError) -> bool {
    match (a, b) {
        (BuildError::AccessRefused { .. }, BuildError::AccessRefused { .. }) => true,
        (a, b) => a == b,
    }
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
            last_established: Mutex::new(None),
            backoff: Mutex::new(BuildBackoff::new(fastrand::Rng::new())),
            failing: Mutex::new(None),
            ingress_filter: OnceLock::new(),
            filter_update: Mutex::new(()),
        }
    }

    /// Keeps `filter` at the ingresses the client may use from now on (once;
    /// a second filter is ignored). The filter's current set should already
    /// admit the config's ingresses: paths may be under way.
    pub fn filter_ingresses(&self, filter: Arc<dyn IngressFilter>) {
        if self.ingress_filter.set(filter).is_err() {
            warn!("an ingress filter is already installed; ignoring another");
        }
        self.refresh_ingress_filter();
    }

    /// The ingresses the client's packets may reach: those of the relay
    /// list and those of paths still up (a path whose ingress left the list
    /// keeps working until it is replaced and its flows end).
    fn admitted_ingresses(&self) -> BTreeSet<SocketAddr> {
        let relays = self
            .relays
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut admitted: BTreeSet<SocketAddr> = ingress_addresses(&relays).collect();
        drop(relays);
        admitted.extend(
            lock(&self.paths)
                .values()
                .chain(lock(&self.retired).iter().map(|(p, _)| p))
                .filter(|p| p.is_alive())
                .map(|p| p.ingress.addr),
        );
        admitted
    }

    /// Brings the ingress filter (if any) up to date.
    fn refresh_ingress_filter(&self) {
        if let Some(filter) = self.ingress_filter.get() {
            let _one_change = lock(&self.filter_update);
            filter.admit_only(&self.admitted_ingresses());
        }
    }

    /// Replaces the relay list (from a verified directory with `times`). A
    /// path whose relay left is replaced (or, for a departed ingress,
    /// repaired) when next asked for; other paths stay. Once the directory
    /// is past `times.usable_until`, paths are refused
    /// ([`PathError::DirectoryExpired`]) except to fetch a fresh directory.
    /// With an ingress filter, new ingresses are admitted before the plan
    /// can choose them, and departed ones dropped after it no longer can.
    pub fn set_relays(&self, relays: Vec<RelayEntry>, times: Option<DirectoryTimes>) {
        let filter = self
            .ingress_filter
            .get()
            .map(|filter| (filter, lock(&self.filter_update)));
        if let Some((filter, _)) = &filter {
            let mut widened = self.admitted_ingresses();
            widened.extend(ingress_addresses(&relays));
            filter.admit_only(&widened);
        }
        let changed = {
            let mut current = self
                .relays
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let changed = *current != relays;
            lock(&self.plan).set_candidates(candidates(&relays));
            *current = relays;
            changed
        };
        *lock(&self.directory) = times;
        if let Some((filter, _)) = &filter {
            filter.admit_only(&self.admitted_ingresses());
        }
        if changed {
            // Relays that were not there may work.
            lock(&self.backoff).reset();
        }
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
        let now = openrelay_types::unix_now();
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

    /// Access tokens in the wallet for the listed ingresses' operators (0
    /// without an account).
    fn access_tokens(&self) -> usize {
        let Some(account) = &self.account else {
            return 0;
        };
        let relays = self
            .relays
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut challenges: Vec<_> = relays
            .iter()
            .filter(|relay| relay.role == RelayRole::Ingress)
            .filter_map(|relay| account.access_challenge(relay))
            .collect();
        drop(relays);
        challenges.sort_by_key(|c| c.origin_info.clone());
        challenges.dedup();
        account.wallet().counts(&challenges).into_iter().sum()
    }

    /// `Ok` if a build may start now; else the back-off's error. A wait
    /// caused by an access refusal ends as soon as the wallet holds more
    /// access tokens than after that refusal.
    fn check_backoff(&self) -> Result<(), PathError> {
        let now = Instant::now();
        let Err(retry_in) = lock(&self.backoff).check(now) else {
            return Ok(());
        };
        let failing = lock(&self.failing);
        let Some(failing) = failing.as_ref() else {
            return Ok(());
        };
        if matches!(failing.last, BuildError::AccessRefused { .. })
            && self.access_tokens() > failing.access_tokens
        {
            info!("access tokens arrived; building a path now");
            lock(&self.backoff).reset();
            return Ok(());
        }
        Err(PathError::BackingOff {
            last: failing.last.clone(),
            retry_in,
        })
    }

    /// Logs a failed build attempt: a warning when its cause differs from
    /// the last failure's, else at debug level.
    fn note_failure(&self, error: &BuildError) {
        let mut failing = lock(&self.failing);
        let known = failing.as_ref().is_some_and(|f| same_cause(&f.last, error));
        if known {
            debug!(error = %error, "path build failed");
        } else {
            warn!(error = %error, "path build failed");
        }
        *failing = Some(Failing {
            last: error.clone(),
            access_tokens: self.access_tokens(),
        });
    }

    /// A request for a path failed: back off before the next build.
    fn back_off(&self) {
        let wait = lock(&self.backoff).failed(Instant::now());
        debug!(
            wait_ms = wait.as_millis() as u64,
            "next path build after a back-off"
        );
    }

    /// A path was built: failures are over.
    fn build_succeeded(&self) {
        lock(&self.backoff).reset();
        *lock(&self.failing) = None;
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
            self.check_backoff()?;
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
                    self.build_succeeded();
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
                    self.note_failure(&e);
                    if !self.blame(&e, &ingress, &egress) {
                        lock(&self.plan).discard(generation);
                    }
                    // A refused access token is the wallet's state, not the
                    // relay's fault: back off until the refill loop (which
                    // stocks every ingress operator's pool) has run, rather
                    // than trying ingress after ingress now.
                    let final_refusal = matches!(e, BuildError::AccessRefused { .. });
                    last_error = Some(e);
                    if final_refusal {
                        break;
                    }
                }
            }
        }
        self.back_off();
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
        // Drops the ingresses of paths that closed and left the list.
        self.refresh_ingress_filter();
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
        let no_path = match state {
            PathState::Connected => None,
            _ => lock(&self.failing).as_ref().map(|f| f.last.clone()),
        };
        let next_attempt_in = no_path
            .as_ref()
            .and_then(|_| lock(&self.backoff).check(Instant::now()).err());
        PathSnapshot {
            state,
            latest: latest.or_else(|| live.first().cloned()),
            live_paths: live.len(),
            open_flows: live.iter().map(|p| p.open_flows()).sum(),
            no_path,
            next_attempt_in,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use openrelay_types::KeyPin;
    use std::sync::Weak;

    fn relay(n: u8, role: RelayRole) -> RelayEntry {
        RelayEntry {
            name: format!("{role}-{n}"),
            role,
            operator: format!("operator-{n}"),
            addr: SocketAddr::from(([192, 0, 2, n], 4433)),
            key: KeyPin::from_ed25519([n; 32]),
            operator_key: None,
            country: None,
            city: None,
            network: None,
            bandwidth_bps: None,
        }
    }

    /// Records every set it is given, with the ingresses the manager listed
    /// at that moment.
    #[derive(Debug, Default)]
    struct Recorder {
        manager: OnceLock<Weak<PathManager>>,
        calls: Mutex<Vec<(BTreeSet<SocketAddr>, BTreeSet<SocketAddr>)>>,
    }

    impl IngressFilter for Recorder {
        fn admit_only(&self, ingresses: &BTreeSet<SocketAddr>) {
            let manager = self.manager.get().unwrap().upgrade().unwrap();
            let listed = ingress_addresses(&manager.relays.read().unwrap()).collect();
            lock(&self.calls).push((ingresses.clone(), listed));
        }
    }

    #[test]
    fn the_filter_admits_a_new_ingress_before_the_plan_can_choose_it_and_drops_a_departed_one_after()
     {
        let entry = |r: RelayEntry| {
            format!(
                "[[relay]]\nname = \"{}\"\nrole = \"{}\"\noperator = \"{}\"\naddr = \"{}\"\nkey = \"{}\"\n",
                r.name, r.role, r.operator, r.addr, r.key
            )
        };
        let config = ClientConfig::from_toml(&format!(
            "state_dir = \"/nonexistent/openrelay-test\"\n{}{}",
            entry(relay(1, RelayRole::Ingress)),
            entry(relay(9, RelayRole::Egress))
        ))
        .unwrap();
        let manager = Arc::new(PathManager::new(&config, None));
        let recorder = Arc::new(Recorder::default());
        recorder.manager.set(Arc::downgrade(&manager)).unwrap();
        manager.filter_ingresses(Arc::clone(&recorder) as Arc<dyn IngressFilter>);
        manager.set_relays(
            vec![relay(2, RelayRole::Ingress), relay(9, RelayRole::Egress)],
            None,
        );
        let calls = lock(&recorder.calls).clone();
        let (a, b) = (
            relay(1, RelayRole::Ingress).addr,
            relay(2, RelayRole::Ingress).addr,
        );
        let sets: Vec<BTreeSet<SocketAddr>> = calls.iter().map(|(set, _)| set.clone()).collect();
        assert_eq!(sets, vec![[a].into(), [a, b].into(), [b].into()]);
        for (admitted, listed) in &calls {
            assert!(
                admitted.is_superset(listed),
                "a listed ingress was not admitted: {admitted:?} vs {listed:?}"
            );
        }
    }
}
