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
//! * **Attestation, judged lazily** ([`PlanConfig::attestation`]). With
//!   `require`, paths use only attested relays; with `prefer`, only attested
//!   relays while they make a path (in any region, before exclusions), else
//!   every relay; the same rule as [`crate::attestation::admit`], without
//!   judging every relay of the list first (5 ms each for SEV-SNP evidence:
//!   535 s at 100,000 relays). A relay is judged when a draw lands on it: a
//!   refused relay leaves the candidates and the draw is repeated without
//!   it. The egress is drawn first and judged; then the ingress, among
//!   those compatible with that egress, is drawn and judged; an egress left
//!   without a compatible ingress drops out of the pool and the egress is
//!   drawn again. Why this draws as filtering first would: a draw by
//!   weight that is repeated without a refused relay until it lands on an
//!   admitted one picks each admitted relay `a` with probability
//!   `w(a) / Σ_{admitted} w` (rejection sampling), which is the draw among
//!   the admitted relays alone, for the egress over the admitted egresses
//!   with an admitted compatible ingress, and for the ingress over the
//!   admitted ingresses compatible with it. One difference is left: an
//!   operator's share cap ([`super::selection_weights`]) is computed over
//!   the relays still in the draw, which include those not judged yet, so
//!   where the cap binds an admitted relay's weight can differ from the
//!   weight filtering first gives it (the cap still bounds every operator's
//!   share of the draw). The relays a path can use are exactly those
//!   filtering first allows (`lazy_and_eager_selection_use_the_same_relays`
//!   in the tests). At most [`MAX_JUDGEMENTS_PER_SELECTION`] relays are
//!   judged per selection; past that the selection draws only among relays
//!   already judged attested; if they make no path, `require` fails
//!   ([`SelectionError::NoAttestedPath`]) and `prefer` uses every relay for
//!   that selection only. Verdicts are kept, so the next selection goes on
//!   where this one stopped.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use openrelay_types::RelayRole;

use openrelay_config::AttestationMode;

use super::{
    EgressRegion, MAX_NAMED_REFUSALS, PathChoice, Pool, RefillChoiceError, RefusedRelay, Relay,
    RelayId, SelectionError, SiteKey, choose_refill, pick_ingress, pick_weighted,
};

/// How many relays one selection (a path, a repaired ingress, a refill
/// path) judges at most: at about 5 ms per SEV-SNP relay, a third of a
/// second. Each refused relay leaves the candidates for good, so later
/// selections go on where one stopped.
pub const MAX_JUDGEMENTS_PER_SELECTION: usize = 64;

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
    /// `[trust] attestation`: which relays may be used at all (the rule of
    /// [`crate::attestation::admit`], judged lazily: see the
    /// [module documentation](self)).
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
    /// Every relay of the list, as set. Paths are drawn from those
    /// `config.attestation` has not refused (yet)
    /// ([`PathPlan::candidates`]), and a relay drawn is judged before it is
    /// used. Held once: at 100,000 relays a copy of the list is 48 MiB.
    listed: Vec<Relay>,
    /// Per relay of the list, in its order: whether it was judged and
    /// refused (no longer a candidate while relays are judged, and named
    /// when no path is left). Empty: none is. A flag per relay, not a set
    /// of ids: at 100,000 relays without evidence `prefer` refuses most of
    /// them before it knows whether the attested make a path.
    refused: Vec<bool>,
    /// How many of `refused` are set.
    refused_count: usize,
    /// With `prefer`: whether the attested relays make a path (in any
    /// region, before exclusions), once known. `Some(false)`: every relay
    /// is a candidate.
    attested_make_a_path: Option<bool>,
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
        let mut plan = PathPlan {
            listed: Vec::new(),
            refused: Vec::new(),
            refused_count: 0,
            attested_make_a_path: None,
            config,
            excluded: BTreeMap::new(),
            shared: None,
            sites: BTreeMap::new(),
            rng,
            last_generation: 0,
        };
        plan.set_candidates(listed);
        plan
    }

    /// The relays the plan chooses from: the list's relays that
    /// `[trust] attestation` has not refused (those not judged yet
    /// included).
    pub fn candidates(&self) -> impl Iterator<Item = &Relay> + '_ {
        let judging = self.refused_count > 0 && self.judging();
        self.listed
            .iter()
            .enumerate()
            .filter(move |(i, _)| !(judging && self.is_refused(*i)))
            .map(|(_, relay)| relay)
    }

    /// Whether relay `index` of the list was judged and refused.
    fn is_refused(&self, index: usize) -> bool {
        self.refused.get(index).copied().unwrap_or(false)
    }

    /// Records that relay `index` of the list was judged and refused.
    fn refuse(&mut self, index: usize) {
        if self.refused.len() != self.listed.len() {
            self.refused = vec![false; self.listed.len()];
        }
        if let Some(flag) = self.refused.get_mut(index)
            && !*flag
        {
            *flag = true;
            self.refused_count += 1;
        }
    }

    /// Forgets every refusal.
    fn forget_refusals(&mut self) {
        self.refused = Vec::new();
        self.refused_count = 0;
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
        self.listed = listed;
        self.attested_make_a_path = None;
        self.forget_refusals();
        if self.judging() {
            // Verdicts already made (a relay record kept from the last
            // list, a config entry) are used at once; nothing is judged.
            let mut all_known = true;
            let refused: Vec<bool> = self
                .listed
                .iter()
                .map(|relay| match relay.attestation.known() {
                    Some(verdict) => !verdict.is_attested(),
                    None => {
                        all_known = false;
                        false
                    }
                })
                .collect();
            self.refused_count = refused.iter().filter(|&&r| r).count();
            if self.refused_count > 0 {
                self.refused = refused;
            }
            // With every verdict known (config entries, a list judged
            // before), `prefer` is decided at once, as filtering first does;
            // if the attested relays make no path, every relay is a
            // candidate (`judging` is then false).
            if self.config.attestation == AttestationMode::Prefer && all_known {
                let candidates: Vec<&Relay> = self.candidates().collect();
                let attested_make_a_path = super::choose(
                    &candidates,
                    &EgressRegion::Any,
                    |_| false,
                    &mut fastrand::Rng::with_seed(0),
                )
                .is_ok();
                self.prefer_attested_relays(attested_make_a_path);
            }
        }
    }

    /// With `prefer`, records whether the attested relays make a path;
    /// if not, every relay is a candidate until the list or the settings
    /// change, and the refusals are forgotten (they name nothing then).
    fn prefer_attested_relays(&mut self, attested_make_a_path: bool) {
        self.attested_make_a_path = Some(attested_make_a_path);
        if !attested_make_a_path {
            self.forget_refusals();
        }
    }

    /// Whether relays are judged before use: `[trust] attestation` is not
    /// `off`, and not `prefer` with attested relays known to make no path.
    fn judging(&self) -> bool {
        match self.config.attestation {
            AttestationMode::Off => false,
            AttestationMode::Prefer => self.attested_make_a_path != Some(false),
            AttestationMode::Require => true,
        }
    }

    /// Whether `relay`, a candidate a draw landed on, may be used: judged
    /// now if it was not yet (one of `budget`'s judgements); a refused
    /// relay leaves the candidates.
    fn admits(&mut self, relay: &Relay, budget: &mut usize) -> bool {
        if !self.judging() {
            return true;
        }
        let verdict = match relay.attestation.known() {
            Some(verdict) => verdict,
            // Draws past the budget skip relays not judged yet
            // ([`PathPlan::skipped`]).
            None if *budget == 0 => return false,
            None => {
                *budget -= 1;
                relay.attestation.verdict()
            }
        };
        if verdict.is_attested() {
            return true;
        }
        if let Some(index) = self
            .listed
            .iter()
            .position(|c| c.id == relay.id && c.role == relay.role)
        {
            self.refuse(index);
        }
        false
    }

    /// Whether a draw at `now` (`None`: before exclusions) leaves `relay`
    /// out: excluded, or not judged yet once the judgement `budget` is
    /// spent.
    fn skipped(&self, relay: &Relay, now: Option<T>, budget: usize) -> bool {
        now.is_some_and(|now| self.is_excluded(&relay.id, now))
            || (budget == 0 && self.judging() && relay.attestation.known().is_none())
    }

    /// Runs `select` (a draw that judges what it lands on) with a fresh
    /// judgement budget, and when it fails: with `require`, judges the
    /// candidates not judged yet (within the budget) so that the error
    /// names them; with `prefer`, finds out whether the attested relays make
    /// a path at all and, if not, draws again from every relay (for good;
    /// for this selection only when the budget ran out before that was
    /// known).
    fn judged<R, E>(
        &mut self,
        mut select: impl FnMut(&mut Self, &mut usize) -> Result<R, E>,
    ) -> Result<R, E> {
        let mut budget = MAX_JUDGEMENTS_PER_SELECTION;
        let error = match select(self, &mut budget) {
            Ok(found) => return Ok(found),
            Err(error) => error,
        };
        if !self.judging() {
            return Err(error);
        }
        match self.config.attestation {
            AttestationMode::Require => {
                self.judge_remaining(&mut budget);
                Err(error)
            }
            AttestationMode::Prefer => match self.probe_attested_path(&mut budget) {
                Some(true) => Err(error),
                Some(false) => {
                    self.prefer_attested_relays(false);
                    select(self, &mut budget)
                }
                None => {
                    // Every relay is a candidate for this selection only.
                    self.attested_make_a_path = Some(false);
                    let found = select(self, &mut budget);
                    self.attested_make_a_path = None;
                    found
                }
            },
            AttestationMode::Off => Err(error),
        }
    }

    /// Judges candidates not judged yet, within `budget`.
    fn judge_remaining(&mut self, budget: &mut usize) {
        let unjudged: Vec<Relay> = self
            .candidates()
            .filter(|c| c.attestation.known().is_none())
            .take(*budget)
            .cloned()
            .collect();
        for relay in unjudged {
            self.admits(&relay, budget);
        }
    }

    /// With `prefer`: whether the attested relays make a path in any
    /// region, before exclusions (found by a lazy draw; remembered), or
    /// `None` if `budget` ran out first.
    fn probe_attested_path(&mut self, budget: &mut usize) -> Option<bool> {
        if let Some(known) = self.attested_make_a_path {
            return Some(known);
        }
        // Only whether a pair exists matters: any seed gives the same
        // answer, and the plan's own generator is not advanced.
        let rng = std::mem::replace(&mut self.rng, fastrand::Rng::with_seed(0));
        let found = self.draw_judged(&EgressRegion::Any, None, None, budget);
        self.rng = rng;
        match found {
            Ok(_) => {
                self.prefer_attested_relays(true);
                Some(true)
            }
            // Relays not judged were skipped: not known.
            Err(_) if *budget == 0 => None,
            Err(_) => Some(false),
        }
    }

    /// `error` from drawing among the admitted relays, naming each relay
    /// attestation refused when it is `require` that left no path.
    fn explain(&self, error: SelectionError) -> SelectionError {
        match error {
            SelectionError::NoPath { reason }
                if self.config.attestation == AttestationMode::Require
                    && self.refused_count > 0 =>
            {
                let refused: Vec<RefusedRelay> = self
                    .listed
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| self.is_refused(*i))
                    .map(|(_, r)| r)
                    .take(MAX_NAMED_REFUSALS)
                    .map(|r| RefusedRelay {
                        name: r.name.clone(),
                        role: r.role,
                        verdict: r.attestation.verdict(),
                    })
                    .collect();
                SelectionError::NoAttestedPath {
                    reason,
                    unnamed: self.refused_count.saturating_sub(refused.len()),
                    refused,
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
        // The whole path is drawn again when a hop is refused (a refill
        // path is not kept; its draw need not be sequential).
        self.judged(|plan, budget| {
            loop {
                let mut rng = plan.rng.clone();
                let candidates: Vec<&Relay> = plan.candidates().collect();
                let choice = choose_refill(
                    &candidates,
                    browsing,
                    &has_access,
                    |c| plan.skipped(c, Some(now), *budget),
                    &mut rng,
                )?;
                plan.rng = rng;
                if plan.admits(&choice.egress, budget) && plan.admits(&choice.ingress, budget) {
                    return Ok(choice);
                }
            }
        })
    }

    /// The path kept for `site`, if any, without checking it (status).
    pub fn site(&self, site: &SiteKey) -> Option<&PlannedPath<T>> {
        self.sites.get(site)
    }

    /// The relay of `role` with `id` in the current list.
    pub fn find(&self, role: RelayRole, id: &RelayId) -> Option<&Relay> {
        self.candidates().find(|c| c.role == role && c.id == *id)
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
        let egress = self
            .find(RelayRole::Egress, &path.choice.egress.id)?
            .clone();
        let mut budget = MAX_JUDGEMENTS_PER_SELECTION;
        let ingress = self.draw_ingress(&egress, Some(now), &mut budget)?;
        Some(PlannedPath {
            choice: PathChoice { ingress, egress },
            chosen_at: path.chosen_at,
            generation: self.next_generation(),
        })
    }

    /// An ingress compatible with `egress`, drawn by weight among the
    /// usable ones at `now` as in [`super::choose`] and judged, drawn again
    /// without it while it is refused; `None` when none is left.
    fn draw_ingress(
        &mut self,
        egress: &Relay,
        now: Option<T>,
        budget: &mut usize,
    ) -> Option<Relay> {
        loop {
            let usable: Vec<&Relay> = self
                .candidates()
                .filter(|c| c.role == RelayRole::Ingress && !self.skipped(c, now, *budget))
                .collect();
            // The candidates stay borrowed while drawing: draw from a copy
            // of the generator's state and store it back.
            let mut rng = self.rng.clone();
            let ingress = pick_ingress(&usable, egress, &mut rng)?.clone();
            self.rng = rng;
            if self.admits(&ingress, budget) {
                return Some(ingress);
            }
        }
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
        let region = self.config.region.clone();
        let choice =
            self.judged(|plan, budget| plan.draw_judged(&region, Some(now), load, budget))?;
        Ok(PlannedPath {
            choice,
            chosen_at: now,
            generation: self.next_generation(),
        })
    }

    /// A path in `region` at `now` (`None`: before exclusions), its egress
    /// drawn as [`PathPlan::draw`] says and judged, then its ingress
    /// ([`PathPlan::draw_ingress`]); each drawn again while refused (see
    /// the [module documentation](self)).
    fn draw_judged(
        &mut self,
        region: &EgressRegion,
        now: Option<T>,
        load: Option<&HashMap<RelayId, usize>>,
        budget: &mut usize,
    ) -> Result<PathChoice, SelectionError> {
        loop {
            let egress = {
                let skipped = |c: &Relay| self.skipped(c, now, *budget);
                let candidates: Vec<&Relay> = self.candidates().collect();
                let pools = Pool::preferred(&candidates, region, &skipped)?;
                let mut rng = self.rng.clone();
                let egress = pick_egress(&pools, load, &mut rng).clone();
                self.rng = rng;
                egress
            };
            if !self.admits(&egress, budget) {
                continue;
            }
            // No compatible ingress left: the egress drops out of the
            // pool (which keeps only egresses with one), draw again.
            if let Some(ingress) = self.draw_ingress(&egress, now, budget) {
                return Ok(PathChoice { ingress, egress });
            }
        }
    }
}

/// The egress of a fresh path from `pools` (most preferred first, none
/// empty): with `load` (per-site isolation), among those no live site uses
/// in the most preferred pool that has one, else among the least-loaded
/// of the most preferred pool; by weight.
fn pick_egress<'a>(
    pools: &[Pool<'a>],
    load: Option<&HashMap<RelayId, usize>>,
    rng: &mut fastrand::Rng,
) -> &'a Relay {
    let Some(load) = load else {
        return pick_weighted(&pools[0].egresses, rng);
    };
    let load_of = |e: &Relay| load.get(&e.id).copied().unwrap_or(0);
    let unused = pools.iter().find_map(|pool| {
        let unused: Vec<_> = pool
            .egresses
            .iter()
            .copied()
            .filter(|e| load_of(e) == 0)
            .collect();
        (!unused.is_empty()).then_some(unused)
    });
    let egresses = unused.unwrap_or_else(|| {
        let pool = &pools[0];
        let least = pool.egresses.iter().map(|e| load_of(e)).min().unwrap_or(0);
        pool.egresses
            .iter()
            .copied()
            .filter(|e| load_of(e) == least)
            .collect()
    });
    pick_weighted(&egresses, rng)
}
