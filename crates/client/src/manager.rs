//! Runs the client's paths: the async driver of the
//! [`PathController`](crate::controller), which makes every decision
//! (which relays, when to build, rotate, retire, exclude, back off). The
//! manager feeds it events and carries out its commands: it builds paths
//! (each build a task of its own, so a flow that gives up does not cancel a
//! build others wait for), watches them, retires and closes them, and
//! keeps the kill switch's [`IngressFilter`] current. All its state sits
//! behind one lock, never held across an await.
//!
//! One retry policy: a request for a path tries at most
//! [`PATHS_PER_REQUEST`] paths (a built one it uses, or one it waits for
//! while it is built), then fails with the last error and builds back off
//! (`backoff`); an access refusal fails it at once. Flows count
//! their tries against the same budget ([`PathManager::path_within`]), so
//! one SOCKS request causes at most [`PATHS_PER_REQUEST`] path builds.
//! Failures are logged as warnings when their cause changes, not per
//! attempt.
//!
//! Whoever needs to hear of a built path (the payer) registers a
//! [`PathListener`]; the manager knows nothing of accounts.
//!
//! With the full-device VPN's kill switch the client's own packets may
//! reach only the addresses an [`IngressFilter`] admits: the manager keeps
//! it at the listed ingresses plus those of open paths, admitting a new
//! ingress before any path can be built to it.

use openrelay_types::error::{ErrorKind, HasKind};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use openrelay_config::{ClientConfig, PathConfig, TrustPolicyConfig};
use openrelay_types::RelayRole;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::access::AccessTokens;
use crate::controller::{CloseReason, Command, PathController, PathKey, Wanted};
pub use crate::controller::{DirectoryTimes, PATHS_PER_REQUEST, PathError, PathTries, Purpose};
use crate::path::{BuildError, Hop, Path};
use crate::relay::{Relay, RelayConfigError};
use crate::selection::{EgressRegion, PlanConfig, RefillChoiceError, SiteKey};

/// Longest time between two ticks of the controller (retired paths'
/// flows are counted at each).
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

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

/// Hears of every browsing path built (not refill paths).
pub trait PathListener: Send + Sync + std::fmt::Debug {
    /// `path` was just built; a task returned runs as long as the path
    /// (e.g. its payer).
    fn path_built(&self, path: &Path) -> Option<JoinHandle<()>>;
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
    /// The client is closing.
    #[error(transparent)]
    Path(#[from] PathError),
}

impl HasKind for RefillPathError {
    fn kind(&self) -> ErrorKind {
        match self {
            RefillPathError::NoPath(e) => e.kind(),
            RefillPathError::Build(e) => e.kind(),
            RefillPathError::Path(e) => e.kind(),
        }
    }
}

/// Whether traffic can flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// A path is up.
    Connected,
    /// A path is being built.
    Connecting,
    /// No path, and none being built (the next flow will try).
    Disconnected,
}

/// The manager's state as a status report sees it.
#[derive(Debug, Clone)]
pub struct PathSnapshot {
    /// Whether traffic can flow.
    pub state: Connectivity,
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

/// A build's outcome, for the flows waiting for it.
type BuildOutcome = Option<Result<Arc<Path>, BuildError>>;

/// Everything behind the manager's one lock.
#[derive(Debug)]
struct State {
    controller: PathController<Instant>,
    /// Built paths not closed yet (new flows' and retired ones), by key.
    paths: HashMap<PathKey, Arc<Path>>,
    /// Builds under way, for the flows that wait for them.
    builds: HashMap<PathKey, watch::Receiver<BuildOutcome>>,
    /// The path last handed out, for status reports.
    published: Option<Arc<Path>>,
}

/// Owns the client's paths.
#[derive(Debug)]
pub struct PathManager {
    state: Mutex<State>,
    bind: Option<IpAddr>,
    config: PathConfig,
    access: Option<Arc<dyn AccessTokens>>,
    listener: OnceLock<Arc<dyn PathListener>>,
    /// The kill switch's admitted ingresses, with the full-device VPN.
    ingress_filter: OnceLock<Arc<dyn IngressFilter>>,
}

/// What the user asked of path selection, from the config.
fn plan_config(path: &PathConfig, trust: &TrustPolicyConfig) -> PlanConfig {
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
        attestation: trust.attestation,
    }
}

/// The hop to blame for a path found dead.
fn dead_hop(path: &Path) -> Hop {
    if path.outer_failed() {
        Hop::Ingress
    } else {
        Hop::Egress
    }
}

impl PathManager {
    /// A manager for the client's relay list (its `[[relay]]` entries, as
    /// [`crate::relay::from_config`] maps them) and path settings; with
    /// `access`, tunnel requests show access tokens.
    pub fn new(
        config: &ClientConfig,
        access: Option<Arc<dyn AccessTokens>>,
    ) -> Result<Self, RelayConfigError> {
        let relays = crate::relay::from_config(&config.relays)?;
        Ok(Self::with_relays(config, relays, access))
    }

    /// A manager over `relays` (e.g. a cached directory's) with the
    /// client's path settings.
    pub fn with_relays(
        config: &ClientConfig,
        relays: Vec<Relay>,
        access: Option<Arc<dyn AccessTokens>>,
    ) -> Self {
        let controller = PathController::new(
            relays,
            plan_config(&config.path, &config.trust),
            Duration::from_secs(config.path.failed_relay_quarantine_secs),
            fastrand::Rng::new(),
        );
        PathManager {
            state: Mutex::new(State {
                controller,
                paths: HashMap::new(),
                builds: HashMap::new(),
                published: None,
            }),
            bind: config.bind,
            config: config.path.clone(),
            access,
            listener: OnceLock::new(),
            ingress_filter: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tells `listener` of every browsing path built from now on (once; a
    /// second listener is ignored).
    pub fn listen(&self, listener: Arc<dyn PathListener>) {
        if self.listener.set(listener).is_err() {
            warn!("a path listener is already installed; ignoring another");
        }
    }

    /// Keeps `filter` at the ingresses the client may use from now on (once;
    /// a second filter is ignored). The filter's current set should already
    /// admit the config's ingresses: paths may be under way.
    pub fn filter_ingresses(&self, filter: Arc<dyn IngressFilter>) {
        if self.ingress_filter.set(filter).is_err() {
            warn!("an ingress filter is already installed; ignoring another");
        }
        let state = self.lock();
        self.refresh_ingress_filter(&state);
    }

    /// Brings the ingress filter (if any) up to date.
    fn refresh_ingress_filter(&self, state: &State) {
        if let Some(filter) = self.ingress_filter.get() {
            filter.admit_only(&state.controller.admitted_ingresses());
        }
    }

    /// Replaces the relay list (from a verified directory with `times`). A
    /// path whose relay left is replaced (or, for a departed ingress,
    /// repaired) when next asked for; other paths stay. Once the directory
    /// is past `times.usable_until`, paths are refused
    /// ([`PathError::DirectoryExpired`]) except to fetch a fresh directory.
    /// With an ingress filter, new ingresses are admitted before the plan
    /// can choose them, and departed ones dropped after it no longer can.
    pub fn set_relays(&self, relays: Vec<Relay>, times: Option<DirectoryTimes>) {
        let mut state = self.lock();
        if let Some(filter) = self.ingress_filter.get() {
            let mut widened = state.controller.admitted_ingresses();
            widened.extend(
                relays
                    .iter()
                    .filter(|r| r.role == RelayRole::Ingress)
                    .map(|r| r.addr),
            );
            filter.admit_only(&widened);
        }
        state.controller.relays(relays, times);
        self.refresh_ingress_filter(&state);
    }

    /// When the directory in use was issued (None: relays from the config).
    pub fn directory_issued_at(&self) -> Option<u64> {
        self.lock().controller.directory_issued_at()
    }

    /// Carries out the controller's commands.
    fn apply(self: &Arc<Self>, state: &mut State) {
        let mut closed = false;
        while let Some(command) = state.controller.poll_command() {
            match command {
                Command::Build {
                    key,
                    ingress,
                    egress,
                } => {
                    let (outcome, waiting) = watch::channel(None);
                    state.builds.insert(key, waiting);
                    tokio::spawn(Arc::clone(self).build(key, ingress, egress, outcome));
                }
                Command::Retire { key } => {
                    if let Some(path) = state.paths.get(&key) {
                        info!(ingress = %path.ingress.name, egress = %path.egress.name, "path retired; it takes no new flows");
                    }
                }
                Command::Close { key, reason } => {
                    let Some(path) = state.paths.remove(&key) else {
                        continue;
                    };
                    if state
                        .published
                        .as_ref()
                        .is_some_and(|p| Arc::ptr_eq(p, &path))
                    {
                        state.published = None;
                    }
                    if reason == CloseReason::Rotated {
                        debug!(ingress = %path.ingress.name, egress = %path.egress.name, "retired path closed");
                    }
                    path.close(reason.as_str());
                    closed = true;
                }
            }
        }
        if closed {
            // Drops the ingresses of closed paths that left the list.
            self.refresh_ingress_filter(state);
        }
    }

    /// Builds the path `key` and reports the outcome to the controller and
    /// to the flows waiting for it.
    async fn build(
        self: Arc<Self>,
        key: PathKey,
        ingress: Relay,
        egress: Relay,
        outcome: watch::Sender<BuildOutcome>,
    ) {
        let started = Instant::now();
        let built = Path::build(
            &ingress,
            &egress,
            self.bind,
            &self.config,
            self.access.as_deref(),
        )
        .await;
        let now = Instant::now();
        let result = match built {
            Ok(mut path) => {
                let setup_us = now.duration_since(started).as_micros() as u64;
                info!(ingress = %ingress.name, egress = %egress.name, setup_us, "path established");
                if let Some(task) = self.listener.get().and_then(|l| l.path_built(&path)) {
                    path.attach(task);
                }
                let path = Arc::new(path);
                self.watch(key, &path);
                let mut state = self.lock();
                state.paths.insert(key, Arc::clone(&path));
                state.published = Some(Arc::clone(&path));
                state.controller.built(key, now);
                state.builds.remove(&key);
                self.apply(&mut state);
                Ok(path)
            }
            Err(e) => {
                let mut state = self.lock();
                let held = self.access_tokens(&state.controller);
                let failure = state.controller.build_failed(key, &e, held, now);
                if failure.new_cause {
                    warn!(error = %e, "path build failed");
                } else {
                    debug!(error = %e, "path build failed");
                }
                state.builds.remove(&key);
                self.apply(&mut state);
                Err(e)
            }
        };
        outcome.send_replace(Some(result));
    }

    /// Watches `path` and reports its death.
    fn watch(self: &Arc<Self>, key: PathKey, path: &Arc<Path>) {
        let manager = Arc::downgrade(self);
        let watched = Arc::downgrade(path);
        tokio::spawn(async move {
            let Some(path) = watched.upgrade() else {
                return;
            };
            let hop = path.failed().await;
            drop(path);
            if let Some(manager) = manager.upgrade() {
                manager.died(key, hop);
            }
        });
    }

    /// The path `key` died, `hop` to blame.
    fn died(self: &Arc<Self>, key: PathKey, hop: Hop) {
        let mut state = self.lock();
        if let Some(relay) = state.controller.died(key, hop, Instant::now()) {
            warn!(relay = %relay.name, hop = ?hop, "relay failed; switching path");
        }
        self.apply(&mut state);
    }

    /// Marks `path` dead: its failing relay is excluded and the plan repairs
    /// or replaces every path that used it. Idempotent; a path the manager
    /// retired or closed itself is not blamed on a relay.
    pub fn path_failed(self: &Arc<Self>, path: &Arc<Path>, hop: Hop) {
        let key = {
            let state = self.lock();
            state
                .paths
                .iter()
                .find(|(_, p)| Arc::ptr_eq(p, path))
                .map(|(key, _)| *key)
        };
        if let Some(key) = key {
            self.died(key, hop);
        }
    }

    /// Access tokens in the wallet for the listed ingresses (0 without
    /// access tokens).
    fn access_tokens(&self, controller: &PathController<Instant>) -> usize {
        let Some(access) = &self.access else {
            return 0;
        };
        controller
            .relay_list()
            .filter(|r| r.role == RelayRole::Ingress)
            .map(|r| access.held_for(r))
            .sum()
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
        self.path_within(site, purpose, &mut PathTries::new()).await
    }

    /// A path for `site` and `purpose`, each path tried taken from `tries`
    /// (shared by every path one request asks for: see the [module
    /// documentation](self)). When the tries are spent, or an access
    /// refusal makes more pointless, the request fails with the last error
    /// and builds back off.
    pub async fn path_within(
        self: &Arc<Self>,
        site: Option<&SiteKey>,
        purpose: Purpose,
        tries: &mut PathTries,
    ) -> Result<Arc<Path>, PathError> {
        let mut last: Option<BuildError> = None;
        while tries.take() {
            let waiting = {
                let mut state = self.lock();
                let now = Instant::now();
                if let Some(had) = state.controller.awaiting_access_tokens(now)
                    && self.access_tokens(&state.controller) > had
                {
                    info!("access tokens arrived; building a path now");
                    state.controller.access_tokens_arrived();
                }
                let wanted =
                    state
                        .controller
                        .flow_wanted(site, purpose, now, openrelay_types::unix_now());
                self.apply(&mut state);
                match wanted? {
                    Wanted::Ready(key) => match state.paths.get(&key).cloned() {
                        Some(path) if path.is_alive() => {
                            state.published = Some(Arc::clone(&path));
                            return Ok(path);
                        }
                        // Dead before its watcher said so: the plan moves on.
                        Some(path) => {
                            drop(state);
                            self.died(key, dead_hop(&path));
                            continue;
                        }
                        None => continue,
                    },
                    Wanted::Building(key) => state.builds.get(&key).cloned(),
                }
            };
            let Some(mut waiting) = waiting else {
                continue;
            };
            let outcome = match waiting.wait_for(Option::is_some).await {
                Ok(outcome) => outcome.clone(),
                // The build task is gone: the runtime is shutting down.
                Err(_) => return Err(PathError::Closed),
            };
            match outcome {
                Some(Ok(path)) => return Ok(path),
                Some(Err(e)) => {
                    // A refused access token is the wallet's state, not the
                    // relay's fault: back off until the refill loop (which
                    // stocks every ingress operator's pool) has run, rather
                    // than trying ingress after ingress now.
                    let final_refusal = matches!(e, BuildError::AccessRefused { .. });
                    last = Some(e);
                    if final_refusal {
                        break;
                    }
                }
                None => {}
            }
        }
        let wait = self.lock().controller.request_failed(Instant::now());
        debug!(
            wait_ms = wait.as_millis() as u64,
            "next path build after a back-off"
        );
        Err(last.map_or(PathError::AllDied, PathError::AllFailed))
    }

    /// Ticks the controller until the manager closes: retired paths whose
    /// flows ended are closed, rotation is carried out.
    pub async fn run_maintenance(self: Arc<Self>) {
        loop {
            let next = {
                let mut state = self.lock();
                let now = Instant::now();
                let flows: HashMap<PathKey, u64> = state
                    .paths
                    .iter()
                    .map(|(key, path)| (*key, path.open_flows()))
                    .collect();
                let rotated = state
                    .controller
                    .tick(now, openrelay_types::unix_now(), |key| {
                        flows.get(&key).copied().unwrap_or(0)
                    });
                if let Err(e) = rotated {
                    debug!(error = %e, "no path after rotation yet");
                }
                self.apply(&mut state);
                if state.controller.is_closed() {
                    return;
                }
                self.refresh_ingress_filter(&state);
                state
                    .controller
                    .poll_timeout()
                    .map_or(now + MAINTENANCE_INTERVAL, |at| {
                        at.min(now + MAINTENANCE_INTERVAL)
                    })
            };
            tokio::time::sleep_until(next).await;
        }
    }

    /// The relays of the paths up (new flows' and retired ones'), ingress
    /// and egress of each.
    pub fn live_relays(&self) -> Vec<(Relay, Relay)> {
        self.lock().controller.live_relays()
    }

    /// The relays new paths are chosen from.
    pub fn relays(&self) -> Vec<Relay> {
        self.lock().controller.relay_list().cloned().collect()
    }

    /// When the last browsing path was established.
    pub fn last_established(&self) -> Option<Instant> {
        self.lock().controller.last_established()
    }

    /// Builds a path for one token refill through an ingress for whose
    /// operator `access` holds an access token, apart from every browsing
    /// path ([`crate::selection::PathPlan::refill`]): this manager's, and
    /// `elsewhere` (the paths of another process, e.g. a running client's
    /// when `openrelay account login` runs beside it). The path is the
    /// caller's alone: never filed, never used for flows, and it pays
    /// nobody (`docs/payments.md`). A relay that fails the build is
    /// excluded as for any path.
    pub async fn build_refill_path(
        &self,
        access: &dyn AccessTokens,
        elsewhere: &[(Relay, Relay)],
    ) -> Result<Path, RefillPathError> {
        let (ingress, egress) = {
            let mut state = self.lock();
            if state.controller.is_closed() {
                return Err(PathError::Closed.into());
            }
            let mut browsing = state.controller.live_relays();
            browsing.extend_from_slice(elsewhere);
            state.controller.refill_choice(
                &browsing,
                |ingress| access.held_for(ingress) > 0,
                Instant::now(),
            )?
        };
        Path::build(&ingress, &egress, self.bind, &self.config, Some(access))
            .await
            .map_err(|e| {
                self.lock()
                    .controller
                    .blame(&e, &ingress, &egress, Instant::now());
                e.into()
            })
    }

    /// The current state, without waiting for a path build to finish.
    pub fn snapshot(&self) -> PathSnapshot {
        let state = self.lock();
        let live: Vec<Arc<Path>> = state
            .paths
            .values()
            .filter(|p| p.is_alive())
            .cloned()
            .collect();
        let connectivity = if !live.is_empty() {
            Connectivity::Connected
        } else if state.controller.building() > 0 {
            Connectivity::Connecting
        } else {
            Connectivity::Disconnected
        };
        let no_path = match connectivity {
            Connectivity::Connected => None,
            _ => state.controller.failing().cloned(),
        };
        let next_attempt_in = no_path
            .as_ref()
            .and_then(|_| state.controller.next_attempt_in(Instant::now()));
        let latest = state.published.clone().filter(|p| p.is_alive());
        PathSnapshot {
            state: connectivity,
            latest: latest.or_else(|| live.first().cloned()),
            live_paths: live.len(),
            open_flows: live.iter().map(|p| p.open_flows()).sum(),
            no_path,
            next_attempt_in,
        }
    }

    /// Closes every path and refuses new ones.
    pub fn close(&self) {
        let mut state = self.lock();
        state.controller.close();
        state.published = None;
        while let Some(command) = state.controller.poll_command() {
            if let Command::Close { key, reason } = command
                && let Some(path) = state.paths.remove(&key)
            {
                path.close(reason.as_str());
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use openrelay_config::RelayEntry;
    use openrelay_types::KeyPin;

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

    /// Records every set it is given.
    #[derive(Debug, Default)]
    struct Recorder {
        calls: Mutex<Vec<BTreeSet<SocketAddr>>>,
    }

    impl IngressFilter for Recorder {
        fn admit_only(&self, ingresses: &BTreeSet<SocketAddr>) {
            self.calls.lock().unwrap().push(ingresses.clone());
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
        let manager = Arc::new(PathManager::new(&config, None).unwrap());
        let recorder = Arc::new(Recorder::default());
        manager.filter_ingresses(Arc::clone(&recorder) as Arc<dyn IngressFilter>);
        let (a, b) = (
            relay(1, RelayRole::Ingress).addr,
            relay(2, RelayRole::Ingress).addr,
        );
        // The filter is called under the manager's lock: the plan cannot
        // choose from the new list before the widened set is in force.
        manager.set_relays(
            crate::relay::from_config(&[relay(2, RelayRole::Ingress), relay(9, RelayRole::Egress)])
                .unwrap(),
            None,
        );
        let sets = recorder.calls.lock().unwrap().clone();
        // Listed at each call: {a}, {a} (before the new list), {b} (after).
        assert_eq!(sets, vec![[a].into(), [a, b].into(), [b].into()]);
        assert_eq!(manager.relays()[0].addr, b);
    }
}
