//! The path controller: every decision about the client's paths, as one
//! pure state machine (as `quinn-proto` is to `quinn`). It owns the
//! [`PathPlan`] (rotation, per-site isolation, exclusions), the relay list,
//! the generations built or being built, the retired paths, the build
//! back-off and the directory's validity. It reads no clock (time is passed
//! in), opens no socket and spawns nothing: the caller feeds it events and
//! carries out the [`Command`]s it queues. [`crate::manager::PathManager`]
//! is that caller: a thin async driver that builds, watches and closes the
//! real paths.
//!
//! Events in: [`PathController::flow_wanted`] (a flow needs a path),
//! [`PathController::built`] / [`PathController::build_failed`] (a build
//! ended), [`PathController::died`] (a live path failed),
//! [`PathController::relays`] (a new relay list),
//! [`PathController::tick`] (time passed). Commands out
//! ([`PathController::poll_command`]): [`Command::Build`],
//! [`Command::Retire`], [`Command::Close`]; and
//! [`PathController::poll_timeout`], when the next tick is due.
//!
//! * A path is keyed by its plan generation ([`PathKey`]): one build at a
//!   time per generation, and flows that want a generation being built
//!   wait for that build.
//! * A relay that fails (a build blamed on its hop, or a live path dying)
//!   is excluded for the quarantine; the plan repairs or replaces every path
//!   that used it, never pairing one operator's relays. When every pair has
//!   an excluded relay, the exclusion that ends first is given back, so the
//!   relay that failed longest ago is retried first.
//! * A path the plan moves on from (rotation, a relay gone) is *retired*:
//!   it takes no new flows and is closed once its flows have ended and
//!   [`RETIRE_GRACE`] has passed, so rotation never cuts a connection.
//! * A request that gives up ([`PathController::request_failed`]) starts a
//!   back-off (`backoff`): until it ends, a flow that needs a new
//!   build fails at once with the reason. A success, a new relay list, or
//!   (after an access refusal) tokens arriving end it.

use openrelay_types::error::{ErrorKind, HasKind};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use openrelay_types::RelayRole;

use crate::backoff::BuildBackoff;
use crate::path::{BuildError, Hop};
use crate::relay::{Relay, RelayId};
use crate::selection::{
    Moment, PathChoice, PathPlan, PlanConfig, PlannedPath, RefillChoiceError, SelectionError,
    SiteKey,
};

/// A retired path with no flows is closed only after this long, so a flow
/// that took the path just before it retired can register on it first.
pub const RETIRE_GRACE: Duration = Duration::from_secs(2);

/// The one retry policy: a request for a path (a flow opening, a directory
/// fetch) tries at most this many paths: a built one it uses, or one it
/// waits for while it is built (its own build or another request's). So
/// one SOCKS request causes at most this many path builds; an access
/// refusal ends it at once, and a back-off refuses it before any build.
/// Once a request gives up, builds back off
/// ([`PathController::request_failed`]).
pub const PATHS_PER_REQUEST: usize = 4;

/// The paths one request has tried, against [`PATHS_PER_REQUEST`].
#[derive(Debug, Default)]
pub struct PathTries {
    spent: usize,
}

impl PathTries {
    /// No path tried yet.
    pub fn new() -> Self {
        PathTries::default()
    }

    /// Takes one try; false once the budget is spent.
    pub fn take(&mut self) -> bool {
        let left = self.spent < PATHS_PER_REQUEST;
        if left {
            self.spent += 1;
        }
        left
    }

    /// Whether a try is left.
    pub fn left(&self) -> bool {
        self.spent < PATHS_PER_REQUEST
    }

    /// Tries taken.
    pub fn spent(&self) -> usize {
        self.spent
    }
}

/// Identifies a path: the plan generation it was built for.
pub type PathKey = u64;

/// Why no path is available.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// No valid ingress/egress pair exists (e.g. one operator left); the
    /// reason says which rule could not be met.
    #[error(transparent)]
    NoPath(#[from] SelectionError),
    /// Every path the request tried failed; the last error is given.
    #[error("no relay path could be built: {0}")]
    AllFailed(BuildError),
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
    /// Every path the request tried was found dead before it could be
    /// used.
    #[error("every relay path tried had died")]
    AllDied,
    /// The plan chose a relay the relay list does not hold (cannot happen:
    /// the plan's relays are the list).
    #[error("relay {0} is not in the relay list")]
    NotListed(RelayId),
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

impl HasKind for PathError {
    fn kind(&self) -> ErrorKind {
        match self {
            PathError::NoPath(e) => e.kind(),
            PathError::AllFailed(last) | PathError::BackingOff { last, .. } => last.kind(),
            // Nothing failed outside: this process is stopping.
            PathError::Closed => ErrorKind::Local,
            PathError::AllDied | PathError::DirectoryExpired { .. } => ErrorKind::Unreachable,
            PathError::NotListed(_) => ErrorKind::Internal,
        }
    }
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

/// Why a path is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// One of its relays failed.
    Failed,
    /// It was retired and its flows have ended.
    Rotated,
    /// The client is shutting down.
    ShuttingDown,
}

impl CloseReason {
    /// The reason as sent in the QUIC CONNECTION_CLOSE frame.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Failed => "path failed",
            CloseReason::Rotated => "path rotated",
            CloseReason::ShuttingDown => "client shutting down",
        }
    }
}

/// What the controller asks its driver to do.
// A few commands per path built, each consumed at once: boxing the relays
// of `Build` would save nothing worth an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Build a path through `ingress` to `egress`, then report
    /// [`PathController::built`] or [`PathController::build_failed`].
    Build {
        /// The path's key.
        key: PathKey,
        /// Its ingress.
        ingress: Relay,
        /// Its egress.
        egress: Relay,
    },
    /// The path takes no new flows from now on (its flows go on).
    Retire {
        /// The path's key.
        key: PathKey,
    },
    /// Close the path (and forget it).
    Close {
        /// The path's key.
        key: PathKey,
        /// Why.
        reason: CloseReason,
    },
}

/// The answer to a flow that wants a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// Use this built path.
    Ready(PathKey),
    /// Wait for this path's build (queued now, or already under way).
    Building(PathKey),
}

/// What a failed build means for the driver's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildFailure {
    /// The failure has another cause than the last one: worth a warning
    /// (failures with a known cause are logged at debug level).
    pub new_cause: bool,
    /// No other relay would change the outcome (an access refusal: the
    /// wallet's state, not the relay's fault): the request should give up.
    pub final_for_request: bool,
}

/// A path the controller knows, built or being built.
#[derive(Debug, Clone)]
struct Known<T> {
    ingress: Relay,
    egress: Relay,
    state: State<T>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State<T> {
    /// The build is under way.
    Building,
    /// Built; new flows may use it while the plan keeps its generation.
    Up,
    /// Built, retired at this time: no new flows.
    Retired(T),
}

/// Why path building is failing, while it is.
#[derive(Debug)]
struct Failing {
    /// The last attempt's error.
    last: BuildError,
    /// Access tokens in the wallet after it (an increase ends the back-off).
    access_tokens: usize,
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

/// The paths' state machine; see the [module documentation](self).
#[derive(Debug)]
pub struct PathController<T> {
    /// The plan, which holds the relay list.
    plan: PathPlan<T>,
    directory: Option<DirectoryTimes>,
    /// How long a failed relay is excluded.
    quarantine: Duration,
    /// Every path built or being built and not closed yet.
    paths: BTreeMap<PathKey, Known<T>>,
    backoff: BuildBackoff<T>,
    failing: Option<Failing>,
    /// When the last browsing path was built: refills keep away from
    /// session starts ([`crate::refill`]).
    last_established: Option<T>,
    commands: VecDeque<Command>,
    closed: bool,
}

impl<T: Moment> PathController<T> {
    /// A controller over `relays` (from the config, until a directory
    /// arrives), excluding a failed relay for `quarantine`; all randomness
    /// (choices and back-off jitter) from `rng`.
    pub fn new(
        relays: Vec<Relay>,
        plan: PlanConfig,
        quarantine: Duration,
        mut rng: fastrand::Rng,
    ) -> Self {
        let backoff = BuildBackoff::new(rng.fork());
        PathController {
            plan: PathPlan::new(relays, plan, rng),
            directory: None,
            quarantine,
            paths: BTreeMap::new(),
            backoff,
            failing: None,
            last_established: None,
            commands: VecDeque::new(),
            closed: false,
        }
    }

    /// Event: a flow to `site` (None: flows not isolated by site) wants a
    /// path for `purpose` at `now` (`unix_now`: the wall clock in Unix
    /// seconds, for the directory's validity). Queues a [`Command::Build`]
    /// when the planned path is neither built nor being built, unless
    /// building is backing off.
    pub fn flow_wanted(
        &mut self,
        site: Option<&SiteKey>,
        purpose: Purpose,
        now: T,
        unix_now: u64,
    ) -> Result<Wanted, PathError> {
        if self.closed {
            return Err(PathError::Closed);
        }
        self.check_directory(purpose, unix_now)?;
        let planned = self.planned(site, now)?;
        let key = planned.generation;
        match self.paths.get(&key).map(|p| p.state) {
            Some(State::Up) => return Ok(Wanted::Ready(key)),
            Some(State::Building) => return Ok(Wanted::Building(key)),
            // A retired generation is never planned again.
            Some(State::Retired(_)) | None => {}
        }
        if let (Err(retry_in), Some(failing)) = (self.backoff.check(now), &self.failing) {
            return Err(PathError::BackingOff {
                last: failing.last.clone(),
                retry_in,
            });
        }
        let (ingress, egress) = self.entries(&planned.choice)?;
        self.paths.insert(
            key,
            Known {
                ingress: ingress.clone(),
                egress: egress.clone(),
                state: State::Building,
            },
        );
        self.commands.push_back(Command::Build {
            key,
            ingress,
            egress,
        });
        Ok(Wanted::Building(key))
    }

    /// Event: the path `key` was built at `now`. Failures are over. A path
    /// the plan moved on from while it was built is retired at once (the
    /// flows that waited for it still use it); after [`Self::close`] it is
    /// closed.
    pub fn built(&mut self, key: PathKey, now: T) {
        self.backoff.reset();
        self.failing = None;
        self.last_established = Some(now);
        let Some(path) = self.paths.get_mut(&key) else {
            return;
        };
        if self.closed {
            self.paths.remove(&key);
            self.commands.push_back(Command::Close {
                key,
                reason: CloseReason::ShuttingDown,
            });
            return;
        }
        path.state = State::Up;
        if !self.plan.kept_generations().any(|g| g == key) {
            self.retire(key, now);
        }
    }

    /// Event: building `key` failed at `now` with `error`; the wallet then
    /// held `access_tokens` access tokens for the listed ingresses (an
    /// increase ends a back-off caused by an access refusal). The relay the
    /// error is blamed on is excluded; an error blamed on none forgets the
    /// planned path, so the next flow draws anew.
    pub fn build_failed(
        &mut self,
        key: PathKey,
        error: &BuildError,
        access_tokens: usize,
        now: T,
    ) -> BuildFailure {
        let known = self.paths.remove(&key);
        let new_cause = !self
            .failing
            .as_ref()
            .is_some_and(|f| same_cause(&f.last, error));
        self.failing = Some(Failing {
            last: error.clone(),
            access_tokens,
        });
        let blamed = known.is_some_and(|p| self.blame(error, &p.ingress, &p.egress, now));
        if !blamed {
            self.plan.discard(key);
        }
        BuildFailure {
            new_cause,
            final_for_request: matches!(error, BuildError::AccessRefused { .. }),
        }
    }

    /// Event: a request for a path gave up at `now` (it tried every path
    /// its budget allows, or met a final refusal): builds back off. Returns
    /// the wait before the next.
    pub fn request_failed(&mut self, now: T) -> Duration {
        self.backoff.failed(now)
    }

    /// While building backs off after an access refusal: the access tokens
    /// the wallet held after it. The driver compares with the wallet and
    /// reports [`Self::access_tokens_arrived`] when it holds more.
    pub fn awaiting_access_tokens(&self, now: T) -> Option<usize> {
        let failing = self.failing.as_ref()?;
        (self.backoff.check(now).is_err()
            && matches!(failing.last, BuildError::AccessRefused { .. }))
        .then_some(failing.access_tokens)
    }

    /// Event: the wallet gained access tokens since an access refusal: the
    /// back-off ends.
    pub fn access_tokens_arrived(&mut self) {
        self.backoff.reset();
    }

    /// Event: the live path `key` died at `now`, `hop` to blame. The relay
    /// of that hop is excluded and the path closed; returns the relay. A
    /// retired path that dies is closed without blame (it takes no flows);
    /// an unknown or already closed path changes nothing.
    pub fn died(&mut self, key: PathKey, hop: Hop, now: T) -> Option<Relay> {
        let state = self.paths.get(&key)?.state;
        match state {
            State::Building => None,
            State::Retired(_) => {
                self.paths.remove(&key);
                self.close_command(key, CloseReason::Failed);
                None
            }
            State::Up => {
                let path = self.paths.remove(&key)?;
                let relay = match hop {
                    Hop::Ingress => path.ingress,
                    Hop::Egress => path.egress,
                };
                self.exclude(&relay, now);
                self.close_command(key, CloseReason::Failed);
                Some(relay)
            }
        }
    }

    /// Event: a new relay list (from a verified directory with `times`;
    /// None: from the config). A path whose relay left is replaced (or, for
    /// a departed ingress, repaired) when next asked for; other paths stay.
    /// A changed list ends a back-off: relays that were not there may work.
    /// Returns whether the list changed.
    pub fn relays(&mut self, relays: Vec<Relay>, times: Option<DirectoryTimes>) -> bool {
        let changed = self.plan.listed() != relays.as_slice();
        self.plan.set_candidates(relays);
        self.directory = times;
        if changed {
            self.backoff.reset();
        }
        changed
    }

    /// Event: time passed (at least at [`Self::poll_timeout`]). Closes
    /// retired paths without flows (`open_flows` gives each path's count)
    /// once their grace has passed. When rotation is due: without per-site
    /// isolation, plans and builds the next path at once, so the first flow
    /// after it does not wait for the handshakes (the result is why not, if
    /// it cannot); with it, retires the expired paths (a site's next flow
    /// gets a fresh one).
    pub fn tick(
        &mut self,
        now: T,
        unix_now: u64,
        open_flows: impl Fn(PathKey) -> u64,
    ) -> Result<(), PathError> {
        let done: Vec<PathKey> = self
            .paths
            .iter()
            .filter(|(key, p)| match p.state {
                State::Retired(since) => open_flows(**key) == 0 && now.since(since) >= RETIRE_GRACE,
                _ => false,
            })
            .map(|(key, _)| *key)
            .collect();
        for key in done {
            self.paths.remove(&key);
            self.close_command(key, CloseReason::Rotated);
        }
        if self.closed || self.plan.next_rotation().is_none_or(|at| at > now) {
            return Ok(());
        }
        if self.plan.config().per_site {
            self.plan.forget_expired(now);
            self.retire_unplanned(now);
            Ok(())
        } else {
            self.flow_wanted(None, Purpose::Traffic, now, unix_now)
                .map(|_| ())
        }
    }

    /// Event: the client is shutting down. Every path is closed (one being
    /// built, once built) and no new one is planned.
    pub fn close(&mut self) {
        self.closed = true;
        let keys: Vec<PathKey> = self
            .paths
            .iter()
            .filter(|(_, p)| p.state != State::Building)
            .map(|(key, _)| *key)
            .collect();
        for key in keys {
            self.paths.remove(&key);
            self.close_command(key, CloseReason::ShuttingDown);
        }
    }

    /// The next command for the driver, in the order they were decided.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When [`Self::tick`] is next due: the next rotation or the end of a
    /// retired path's grace (a retired path with flows is checked again at
    /// each tick; `None`: nothing pending).
    pub fn poll_timeout(&self) -> Option<T> {
        let retired = self.paths.values().filter_map(|p| match p.state {
            State::Retired(since) => since.after(RETIRE_GRACE),
            _ => None,
        });
        self.plan.next_rotation().into_iter().chain(retired).min()
    }

    /// A path for one token refill at `now` (see
    /// [`crate::selection::choose_refill`]): apart from the `browsing`
    /// paths, through an ingress that passes `has_access`. Nothing of it is
    /// kept: the caller builds it, uses it once and closes it.
    pub fn refill_choice(
        &mut self,
        browsing: &[(Relay, Relay)],
        has_access: impl Fn(&Relay) -> bool,
        now: T,
    ) -> Result<(Relay, Relay), RefillChoiceError> {
        let browsing: Vec<PathChoice> = browsing
            .iter()
            .map(|(ingress, egress)| PathChoice {
                ingress: ingress.clone(),
                egress: egress.clone(),
            })
            .collect();
        let choice = self.plan.refill(
            &browsing,
            |c| c.role == RelayRole::Ingress && has_access(c),
            now,
        )?;
        Ok((choice.ingress, choice.egress))
    }

    /// Excludes the relay a failed build of `ingress`→`egress` at `now` is
    /// blamed on; false if none is.
    pub fn blame(&mut self, error: &BuildError, ingress: &Relay, egress: &Relay, now: T) -> bool {
        match error.hop() {
            Some(Hop::Ingress) => self.exclude(ingress, now),
            Some(Hop::Egress) => self.exclude(egress, now),
            None => return false,
        }
        true
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The relay list.
    pub fn relay_list(&self) -> impl Iterator<Item = &Relay> + '_ {
        self.plan.candidates()
    }

    /// When the directory in use was issued (None: relays from the config).
    pub fn directory_issued_at(&self) -> Option<u64> {
        self.directory.map(|t| t.issued_at)
    }

    /// When the last path was built.
    pub fn last_established(&self) -> Option<T> {
        self.last_established
    }

    /// The relays of the built paths (new flows' and retired ones'),
    /// ingress and egress of each.
    pub fn live_relays(&self) -> Vec<(Relay, Relay)> {
        self.paths
            .values()
            .filter(|p| p.state != State::Building)
            .map(|p| (p.ingress.clone(), p.egress.clone()))
            .collect()
    }

    /// Builds under way.
    pub fn building(&self) -> usize {
        self.paths
            .values()
            .filter(|p| p.state == State::Building)
            .count()
    }

    /// Why building failed last, while it does.
    pub fn failing(&self) -> Option<&BuildError> {
        self.failing.as_ref().map(|f| &f.last)
    }

    /// Time until the next build may start, while backing off.
    pub fn next_attempt_in(&self, now: T) -> Option<Duration> {
        self.backoff.check(now).err()
    }

    /// The ingresses the client's packets may reach: those of the relay
    /// list and those of every path built or being built (a path whose
    /// ingress left the list keeps working until it is replaced and its
    /// flows end).
    pub fn admitted_ingresses(&self) -> BTreeSet<SocketAddr> {
        let mut admitted: BTreeSet<SocketAddr> =
            ingress_addresses(self.plan.candidates()).collect();
        admitted.extend(self.paths.values().map(|p| p.ingress.addr));
        admitted
    }

    /// Refuses traffic on an expired directory's relays.
    fn check_directory(&self, purpose: Purpose, unix_now: u64) -> Result<(), PathError> {
        match self.directory {
            Some(times) if purpose == Purpose::Traffic && unix_now >= times.usable_until => {
                Err(PathError::DirectoryExpired {
                    age_secs: unix_now.saturating_sub(times.issued_at),
                    expired_secs_ago: unix_now - times.usable_until,
                })
            }
            _ => Ok(()),
        }
    }

    /// The plan's path for new flows to `site`. Retires built paths the
    /// plan no longer keeps.
    fn planned(&mut self, site: Option<&SiteKey>, now: T) -> Result<PlannedPath<T>, PathError> {
        let planned = loop {
            let asked = match site {
                Some(site) => self.plan.assign(site, now),
                None => self.plan.current(now),
            };
            match asked {
                Ok(planned) => break planned,
                // Every usable pair has a failed relay. They may be back:
                // give back the one that failed longest ago and try again,
                // so one that just failed is retried last (still never one
                // operator's pair).
                Err(e) if !self.plan.release_oldest_exclusion() => return Err(e.into()),
                Err(_) => {}
            }
        };
        self.retire_unplanned(now);
        Ok(planned)
    }

    /// Retires the built paths of generations the plan no longer keeps.
    /// One being built is retired when it is built.
    fn retire_unplanned(&mut self, now: T) {
        let gone: Vec<PathKey> = self
            .paths
            .iter()
            .filter(|(key, p)| {
                p.state == State::Up && !self.plan.kept_generations().any(|g| g == **key)
            })
            .map(|(key, _)| *key)
            .collect();
        for key in gone {
            self.retire(key, now);
        }
    }

    fn retire(&mut self, key: PathKey, now: T) {
        if let Some(path) = self.paths.get_mut(&key) {
            path.state = State::Retired(now);
            self.commands.push_back(Command::Retire { key });
        }
    }

    fn close_command(&mut self, key: PathKey, reason: CloseReason) {
        self.commands.push_back(Command::Close { key, reason });
    }

    /// The relays of a planned path as the list holds them now. The plan's
    /// relays are the list, so both are found.
    fn entries(&self, choice: &PathChoice) -> Result<(Relay, Relay), PathError> {
        let listed = |relay: &Relay| {
            self.plan
                .find(relay.role, &relay.id)
                .cloned()
                .ok_or(PathError::NotListed(relay.id))
        };
        Ok((listed(&choice.ingress)?, listed(&choice.egress)?))
    }

    fn exclude(&mut self, relay: &Relay, now: T) {
        if let Some(until) = now.after(self.quarantine) {
            self.plan.exclude(relay.id, until);
        }
    }
}

/// The ingress addresses of a relay list.
fn ingress_addresses<'a>(
    relays: impl Iterator<Item = &'a Relay> + 'a,
) -> impl Iterator<Item = SocketAddr> + 'a {
    relays
        .filter(|r| r.role == RelayRole::Ingress)
        .map(|r| r.addr)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
