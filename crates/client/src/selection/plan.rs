//! The path plan: which path new flows use, over time.
//!
//! A [`PathPlan`] is a pure state machine. The caller passes the time in
//! (`now`), so rotation and quarantine are tested without sleeping, and owns
//! the random source, so a seed replays every choice. The plan only says
//! *which* relays new flows should use; building paths, and letting flows on
//! an older path finish, is the path manager's job.
//!
//! * **Rotation.** A path is chosen at `chosen_at`; new flows move to a fresh
//!   path once `now - chosen_at >= rotation` (default [`DEFAULT_ROTATION`]),
//!   so one path does not link a long stretch of a user's activity. The fresh
//!   path is a new independent draw: it may happen to use the same relays
//!   again (forcing different ones would skew the bandwidth shares), but it
//!   has a new [`PlannedPath::generation`], which tells the manager to build
//!   new connections.
//! * **Failures.** [`PathPlan::exclude`] keeps a relay out until a given
//!   time. A path whose egress is excluded is replaced; a path whose ingress
//!   is excluded keeps its egress (sites keep the address they see) and gets
//!   a new compatible ingress, or is replaced if none is left. Either way
//!   the result has a new generation; the rotation clock is not reset by a
//!   repair.
//! * **Per-site isolation** ([`PlanConfig::per_site`]). [`PathPlan::assign`]
//!   gives each site ([`SiteKey`]) its own path: a site keeps its egress
//!   while that egress is usable and its rotation interval has not passed,
//!   and a site that needs a new egress gets one that no other *live* site
//!   uses (live: assigned within the rotation interval, egress still usable)
//!   whenever such an egress is eligible. When every eligible egress is
//!   already used, the site shares the least-loaded one (fewest live sites;
//!   ties drawn by bandwidth); the operator and network rules still hold, as
//!   every path comes from the same rules as [`super::choose`]. With
//!   [`EgressRegion::Near`], isolation outranks proximity: an unused egress
//!   at home, else an unused egress elsewhere, else the least-loaded egress
//!   at home.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use openrelay_types::RelayRole;

use openrelay_config::AttestationMode;

use super::{
    EgressRegion, PathChoice, Pool, RefillChoiceError, RefusedRelay, Relay, RelayId,
    SelectionError, SiteKey, choose_refill, pick_ingress, pick_weighted,
};
use crate::attestation::admit;

/// How long new flows keep using one path: ten minutes, long enough that a
/// path's handshakes are amortised over many flows, short enough that one
/// path does not tie together a whole session.
pub const DEFAULT_ROTATION: Duration = Duration::from_secs(10 * 60);

/// A point in time on the caller's monotonic clock. Implemented for
/// [`std::time::Instant`], [`tokio::time::Instant`] (so the manager's tests
/// can pause time) and [`Duration`] (time since an arbitrary origin, for
/// tests and simulations).
pub trait Moment: Copy + Ord + fmt::Debug {
    /// `self - earlier`, or zero if `earlier` is later.
    fn since(self, earlier: Self) -> Duration;
    /// `self + duration`, or `None` if it is not representable.
    fn after(self, duration: Duration) -> Option<Self>;
}

impl Moment for std::time::Instant {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
    fn after(self, duration: Duration) -> Option<Self> {
        self.checked_add(duration)
    }
}

impl Moment for tokio::time::Instant {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_duration_since(earlier)
    }
    fn after(self, duration: Duration) -> Option<Self> {
        self.checked_add(duration)
    }
}

impl Moment for Duration {
    fn since(self, earlier: Self) -> Duration {
        self.saturating_sub(earlier)
    }
    fn after(self, duration: Duration) -> Option<Self> {
        self.checked_add(duration)
    }
}

/// What the user asked of path selection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanConfig {
    /// Where the egress must (or, for `Near`, should) be.
    pub region: EgressRegion,
    /// New flows move to a fresh path this long after it was chosen.
    pub rotation: Duration,
    /// Give every site (registrable domain) its own egress.
    pub per_site: bool,
    /// `[trust] attestation`: which relays may be used at all
    /// ([`crate::attestation::admit`]).
    pub attestation: AttestationMode,
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            region: EgressRegion::Any,
            rotation: DEFAULT_ROTATION,
            per_site: false,
            attestation: AttestationMode::Off,
        }
    }
}

/// A path the plan chose for new flows.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedPath<T> {
    /// Its relays.
    pub choice: PathChoice,
    /// When it was chosen; it rotates at `chosen_at + rotation`. A repaired
    /// path (new ingress after a failure) keeps the original time.
    pub chosen_at: T,
    /// Unique within a plan: a different generation means "build a new
    /// path" even when the relays happen to be the same.
    pub generation: u64,
}

/// What to do with a kept path at some time.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Still valid.
    Keep,
    /// Its egress is fine, its ingress is not (failed, gone, or no longer
    /// compatible): keep the egress, draw a new ingress.
    RepairIngress,
    /// Rotation is due, or its egress is unusable: draw a new path.
    Replace,
}

/// Path selection over time: rotation, exclusions and per-site assignment.
/// See the [module documentation](self).
#[derive(Debug)]
pub struct PathPlan<T> {
    /// Every relay of the list, as set.
    listed: Vec<Relay>,
    /// Those `config.attestation` admits: paths are drawn from these.
    candidates: Vec<Relay>,
    /// Those it does not, kept to say why when no path is left.
    refused: Vec<Relay>,
    config: PlanConfig,
    /// Relay id → excluded until then (exclusive).
    excluded: BTreeMap<RelayId, T>,
    /// The path of flows not isolated by site.
    shared: Option<PlannedPath<T>>,
    /// Per-site paths (only with `per_site`); pruned when they expire.
    sites: BTreeMap<SiteKey, PlannedPath<T>>,
    rng: fastrand::Rng,
    last_generation: u64,
}

impl<T: Moment> PathPlan<T> {
    /// A plan over `candidates`, drawing from `rng`.
    pub fn new(listed: Vec<Relay>, config: PlanConfig, rng: fastrand::Rng) -> Self {
        let admission = admit(&listed, config.attestation);
        PathPlan {
            listed,
            candidates: admission.admitted,
            refused: admission.refused,
            config,
            excluded: BTreeMap::new(),
            shared: None,
            sites: BTreeMap::new(),
            rng,
            last_generation: 0,
        }
    }

    /// The relays the plan chooses from: the list's relays that
    /// `[trust] attestation` admits.
    pub fn candidates(&self) -> &[Relay] {
        &self.candidates
    }

    /// Every relay of the list, admitted or not.
    pub fn listed(&self) -> &[Relay] {
        &self.listed
    }

    /// Replaces the relays (a new directory). Kept paths are checked against
    /// the new list when next asked for: one whose relays left, or changed so
    /// that they break a rule (or are no longer admitted), is repaired or
    /// replaced; others stay, so a directory refresh does not move every
    /// site.
    pub fn set_candidates(&mut self, listed: Vec<Relay>) {
        let admission = admit(&listed, self.config.attestation);
        self.listed = listed;
        self.candidates = admission.admitted;
        self.refused = admission.refused;
    }

    /// `error` from drawing among the admitted relays, naming each relay
    /// attestation refused when it is `require` that left no path.
    fn explain(&self, error: SelectionError) -> SelectionError {
        match error {
            SelectionError::NoPath { reason }
                if self.config.attestation == AttestationMode::Require
                    && !self.refused.is_empty() =>
            {
                SelectionError::NoAttestedPath {
                    reason,
                    refused: self
                        .refused
                        .iter()
                        .map(|r| RefusedRelay {
                            name: r.name.clone(),
                            role: r.role,
                            verdict: r.attestation.clone(),
                        })
                        .collect(),
                }
            }
            other => other,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PlanConfig {
        &self.config
    }

    /// Changes the settings. A new region, or turning per-site isolation on
    /// or off, forgets every kept path (new flows follow the new choice at
    /// once); a new rotation interval applies to kept paths too.
    pub fn set_config(&mut self, config: PlanConfig) {
        if config.region != self.config.region || config.per_site != self.config.per_site {
            self.shared = None;
            self.sites.clear();
        }
        let attestation_changed = config.attestation != self.config.attestation;
        self.config = config;
        if attestation_changed {
            let listed = std::mem::take(&mut self.listed);
            self.set_candidates(listed);
        }
    }

    /// Keeps relay `id` (of either role) out of every path until `until`
    /// (exclusive); a later call can only extend the exclusion. Kept paths
    /// that use it are repaired or replaced when next asked for.
    pub fn exclude(&mut self, id: RelayId, until: T) {
        self.excluded
            .entry(id)
            .and_modify(|current| *current = (*current).max(until))
            .or_insert(until);
    }

    /// Whether relay `id` is excluded at `now`.
    pub fn is_excluded(&self, id: &RelayId, now: T) -> bool {
        self.excluded.get(id).is_some_and(|until| now < *until)
    }

    /// Forgets the path of this generation wherever it is kept (e.g. it
    /// failed without a relay to blame), so the next request draws anew.
    pub fn discard(&mut self, generation: u64) {
        if self
            .shared
            .as_ref()
            .is_some_and(|p| p.generation == generation)
        {
            self.shared = None;
        }
        self.sites.retain(|_, p| p.generation != generation);
    }

    /// Forgets every kept path whose rotation is due at `now` (a path
    /// nobody asks for again is not kept alive by being remembered).
    pub fn forget_expired(&mut self, now: T) {
        let rotation = self.config.rotation;
        let fresh = |p: &PlannedPath<T>| now.since(p.chosen_at) < rotation;
        if self.shared.as_ref().is_some_and(|p| !fresh(p)) {
            self.shared = None;
        }
        self.sites.retain(|_, p| fresh(p));
    }

    /// Ends the exclusion that ends first, which (every exclusion being as
    /// long) is that of the relay that failed longest ago; false if none is
    /// left. For when no path is left: the relays may be back, and trying
    /// the one that failed longest ago beats failing, or retrying the one
    /// that just did.
    pub fn release_oldest_exclusion(&mut self) -> bool {
        let oldest = self
            .excluded
            .iter()
            .min_by(|a, b| a.1.cmp(b.1))
            .map(|(id, _)| *id);
        oldest.is_some_and(|id| self.excluded.remove(&id).is_some())
    }

    /// The generations of the paths the plan keeps (the shared path and the
    /// per-site paths); a built path of any other generation no longer gets
    /// new flows.
    pub fn kept_generations(&self) -> impl Iterator<Item = u64> + '_ {
        self.shared
            .iter()
            .chain(self.sites.values())
            .map(|p| p.generation)
    }

    /// When the next kept path is due to rotate, for the caller's timer
    /// (`None`: nothing kept, or too far in the future to represent).
    pub fn next_rotation(&self) -> Option<T> {
        self.shared
            .iter()
            .chain(self.sites.values())
            .filter_map(|p| p.chosen_at.after(self.config.rotation))
            .min()
    }

    /// The path for new flows at `now` that are not isolated by site:
    /// the kept one while it is valid, else a repaired or fresh one. On an
    /// error nothing changes.
    pub fn current(&mut self, now: T) -> Result<PlannedPath<T>, SelectionError> {
        self.excluded.retain(|_, until| now < *until);
        let kept = self.shared.clone();
        let path = self
            .renew(kept.as_ref(), now, None)
            .map_err(|e| self.explain(e))?;
        self.shared = Some(path.clone());
        Ok(path)
    }

    /// The path for new flows to `site` at `now`. Without per-site
    /// isolation this is [`PathPlan::current`]. With it, the site keeps its
    /// path while it is valid (a failed ingress is replaced, the egress
    /// kept), else gets a fresh one on an egress no other live site uses
    /// when one is eligible, else on the least-loaded eligible egress. On an
    /// error nothing changes for the site.
    pub fn assign(&mut self, site: &SiteKey, now: T) -> Result<PlannedPath<T>, SelectionError> {
        if !self.config.per_site {
            return self.current(now);
        }
        self.excluded.retain(|_, until| now < *until);
        // Paths past their rotation are never used again: forget them, so
        // the map holds only the sites of the last interval. Paths on an
        // excluded egress stay (the exclusion may end before the site comes
        // back) but are not "live" for the load count.
        let rotation = self.config.rotation;
        self.sites.retain(|_, p| now.since(p.chosen_at) < rotation);
        let kept = self.sites.get(site).cloned();
        let path = self
            .renew(kept.as_ref(), now, Some(site))
            .map_err(|e| self.explain(e))?;
        self.sites.insert(site.clone(), path.clone());
        Ok(path)
    }

    /// A path for one token refill at `now`, apart from the `browsing`
    /// paths (see [`choose_refill`]), through an ingress that passes
    /// `has_access`, never through an excluded relay. The plan keeps
    /// nothing of it: a refill path is never used for flows, and each refill
    /// draws its own.
    pub fn refill(
        &mut self,
        browsing: &[PathChoice],
        has_access: impl Fn(&Relay) -> bool,
        now: T,
    ) -> Result<PathChoice, RefillChoiceError> {
        self.excluded.retain(|_, until| now < *until);
        let PathPlan {
            candidates,
            excluded,
            rng,
            ..
        } = self;
        choose_refill(
            candidates,
            browsing,
            has_access,
            |c| excluded.contains_key(&c.id),
            rng,
        )
    }

    /// The path kept for `site`, if any, without checking it (status).
    pub fn site(&self, site: &SiteKey) -> Option<&PlannedPath<T>> {
        self.sites.get(site)
    }

    /// The relay of `role` with `id` in the current list.
    pub fn find(&self, role: RelayRole, id: &RelayId) -> Option<&Relay> {
        self.candidates
            .iter()
            .find(|c| c.role == role && c.id == *id)
    }

    fn verdict(&self, path: &PlannedPath<T>, now: T) -> Verdict {
        if now.since(path.chosen_at) >= self.config.rotation {
            return Verdict::Replace;
        }
        let egress = match self.find(RelayRole::Egress, &path.choice.egress.id) {
            Some(egress)
                if !self.is_excluded(&egress.id, now) && self.config.region.contains(egress) =>
            {
                egress
            }
            _ => return Verdict::Replace,
        };
        match self.find(RelayRole::Ingress, &path.choice.ingress.id) {
            Some(ingress)
                if !self.is_excluded(&ingress.id, now) && ingress.compatible_with(egress) =>
            {
                Verdict::Keep
            }
            _ => Verdict::RepairIngress,
        }
    }

    fn next_generation(&mut self) -> u64 {
        self.last_generation += 1;
        self.last_generation
    }

    /// `path` with its egress (as currently listed) and a new compatible
    /// ingress, drawn by weight as in [`super::choose`]; `None` if no usable
    /// ingress fits.
    fn repair_ingress(&mut self, path: &PlannedPath<T>, now: T) -> Option<PlannedPath<T>> {
        let egress = self.find(RelayRole::Egress, &path.choice.egress.id)?;
        let usable: Vec<&Relay> = self
            .candidates
            .iter()
            .filter(|c| c.role == RelayRole::Ingress && !self.is_excluded(&c.id, now))
            .collect();
        // The candidates stay borrowed while drawing: draw from a copy of
        // the generator's state and store it back.
        let mut rng = self.rng.clone();
        let choice = PathChoice {
            ingress: pick_ingress(&usable, egress, &mut rng)?.clone(),
            egress: egress.clone(),
        };
        self.rng = rng;
        Some(PlannedPath {
            choice,
            chosen_at: path.chosen_at,
            generation: self.next_generation(),
        })
    }

    /// `kept` if still valid at `now`, else `kept` with a new ingress if
    /// only its ingress is unusable, else a fresh path (for `site`, if
    /// given, spread over egresses by the other live sites' load).
    fn renew(
        &mut self,
        kept: Option<&PlannedPath<T>>,
        now: T,
        site: Option<&SiteKey>,
    ) -> Result<PlannedPath<T>, SelectionError> {
        if let Some(path) = kept {
            match self.verdict(path, now) {
                Verdict::Keep => return Ok(path.clone()),
                Verdict::RepairIngress => {
                    if let Some(path) = self.repair_ingress(path, now) {
                        return Ok(path);
                    }
                }
                Verdict::Replace => {}
            }
        }
        let Some(site) = site else {
            return self.draw(now, None);
        };
        let mut load: HashMap<RelayId, usize> = HashMap::new();
        for (other, path) in &self.sites {
            if other != site && self.verdict(path, now) != Verdict::Replace {
                *load.entry(path.choice.egress.id).or_default() += 1;
            }
        }
        self.draw(now, Some(&load))
    }

    /// A fresh path at `now`. With `load` (per-site isolation: how many
    /// other live sites use each egress, by id), the egress is drawn among
    /// those no live site uses, from the most preferred pool that has one,
    /// else among the least-loaded egresses of the most preferred pool.
    fn draw(
        &mut self,
        now: T,
        load: Option<&HashMap<RelayId, usize>>,
    ) -> Result<PlannedPath<T>, SelectionError> {
        // Borrow the fields apart: the pools borrow the candidates while
        // the random source is drawn from.
        let PathPlan {
            candidates,
            config,
            excluded,
            rng,
            ..
        } = self;
        let is_excluded = |c: &Relay| excluded.get(&c.id).is_some_and(|until| now < *until);
        let pools = Pool::preferred(candidates, &config.region, &is_excluded)?;
        let choice = match load {
            None => {
                let pool = &pools[0];
                pool.complete(pick_weighted(&pool.egresses, rng), rng)?
            }
            Some(load) => {
                let load_of = |e: &Relay| load.get(&e.id).copied().unwrap_or(0);
                let unused = pools.iter().find_map(|pool| {
                    let unused: Vec<_> = pool
                        .egresses
                        .iter()
                        .copied()
                        .filter(|e| load_of(e) == 0)
                        .collect();
                    (!unused.is_empty()).then_some((pool, unused))
                });
                let (pool, egresses) = match unused {
                    Some(found) => found,
                    None => {
                        let pool = &pools[0];
                        let least = pool.egresses.iter().map(|e| load_of(e)).min().unwrap_or(0);
                        let tier = pool
                            .egresses
                            .iter()
                            .copied()
                            .filter(|e| load_of(e) == least)
                            .collect();
                        (pool, tier)
                    }
                };
                pool.complete(pick_weighted(&egresses, rng), rng)?
            }
        };
        Ok(PlannedPath {
            choice,
            chosen_at: now,
            generation: self.next_generation(),
        })
    }
}
