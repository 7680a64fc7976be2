//! Choosing the relays of a path.
//!
//! Everything here is pure: no clock is read (time is passed in) and all
//! randomness comes from a caller-supplied [`fastrand::Rng`], so one seed
//! always gives the same choices and the privacy rules are tested directly
//! over thousands of seeded runs.
//!
//! # Rules, always enforced
//! * An ingress and an egress of the same **operator** are never paired:
//!   privacy holds only while the two relays of a path do not collude, and
//!   one operator runs both sides by definition. There is no fallback: when
//!   no valid pair exists the answer is [`SelectionError::NoPath`].
//! * An ingress and an egress in the same (known) **network** (AS or
//!   hosting network) are never paired: one network operator could watch both
//!   hops. An unknown network (`None`) never conflicts.
//!
//! Selection works on [`Relay`], the client's one relay record
//! ([`crate::relay`]), the same the controller, paths and status use.
//! * **Excluded** relays (failed, quarantined) are never chosen.
//! * The egress honours the requested [`EgressRegion`].
//!
//! # Weighting: how a pair is drawn
//! Given the eligible egresses `E` (right role, in the region, not excluded,
//! and compatible with at least one usable ingress) and, for an egress `e`,
//! its compatible ingresses `I(e)` (usable, other operator, other network):
//!
//! 1. the egress is drawn with `P(e) = w_E(e) / Σ_{x ∈ E} w_E(x)`,
//! 2. then the ingress with `P(i | e) = w_I(i) / Σ_{y ∈ I(e)} w_I(y)`,
//!
//! so `P(i, e) = P(e) · P(i | e)`. `w_S` is a relay's **weight in the set
//! `S`** ([`selection_weights`], the rule of `openrelay_directory::weight`):
//! its advertised (later: measured) bandwidth clipped to 10 Gbit/s, with its
//! operator's share of `S` capped at `max(10 %, 1/k)` for `k` operators in
//! `S`, the excess taken off by water-filling. For the egress `S` is `E`;
//! for the ingress it is every usable ingress `I` (then restricted to
//! `I(e)`), so an ingress operator's chance given any egress is at most its
//! capped share over the slice of `I` the egress leaves. Without the cap,
//! self-declared bandwidth would let two made-up operators at `u64::MAX` be
//! both hops of nearly every path; with it, two colluding operators (one per
//! role) hold both hops of at most 1 % of paths once ten operators serve each
//! role, which `openrelay sim` (policy `capped`) computes exactly. Where no
//! operator is capped, relays are chosen exactly in proportion to their
//! (clipped) bandwidth; an ingress's marginal share,
//! `P(i) = Σ_{e ∈ E, i ∈ I(e)} P(e) · P(i | e)`, then equals its bandwidth
//! share whenever every ingress is compatible with every egress.
//! For [`EgressRegion::Near`], `E` is the eligible set in the home country
//! when it is not empty, else the eligible set anywhere. The egress is drawn first because it is the
//! relay the user constrains (region) and the one per-site isolation spreads
//! sites over; the ingress only has to be compatible with it. If every
//! relay of a set has bandwidth 0, that set is drawn uniformly instead (a
//! relay with no advertised bandwidth is otherwise never chosen).
//!
//! # Submodules
//! * [`site`]: [`SiteKey`], the registrable domain that per-site isolation
//!   keys on (public suffix list).
//! * [`plan`]: [`PathPlan`], the state machine that rotates paths on an
//!   interval, excludes failed relays and assigns sites to egresses.

pub mod plan;
pub mod site;

use openrelay_types::error::{ErrorKind, HasKind};
use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use openrelay_types::RelayRole;

pub use crate::relay::{Operator, Relay, RelayId, UNKNOWN_BANDWIDTH};

pub use plan::{DEFAULT_ROTATION, Moment, PathPlan, PlanConfig, PlannedPath};
pub use site::SiteKey;

/// Where the user wants to appear to be: a constraint on the egress only
/// (the ingress is chosen for compatibility, not location).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EgressRegion {
    /// Any egress.
    #[default]
    Any,
    /// An egress in this country (ISO 3166-1 alpha-2); an error if none.
    Country(String),
    /// An egress in this city of this country; an error if none.
    City {
        /// ISO 3166-1 alpha-2 country code.
        country: String,
        /// City name.
        city: String,
    },
    /// The default: prefer an egress in the user's own country (sites see a
    /// nearby address, so language and latency stay as without a VPN), and
    /// use any egress when no valid path has its egress there.
    Near {
        /// The user's ISO 3166-1 alpha-2 country code.
        home_country: String,
    },
}

impl EgressRegion {
    /// Whether `egress` satisfies a strict region. `Near` accepts any egress
    /// here; its preference is applied by trying its country first.
    pub fn contains(&self, egress: &Relay) -> bool {
        match self {
            EgressRegion::Any | EgressRegion::Near { .. } => true,
            EgressRegion::Country(country) => egress.region.in_country(country),
            EgressRegion::City { country, city } => egress.region.in_city(country, city),
        }
    }
}

impl fmt::Display for EgressRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EgressRegion::Any => f.write_str("anywhere"),
            EgressRegion::Country(country) => write!(f, "in country {country}"),
            EgressRegion::City { country, city } => write!(f, "in {city}, {country}"),
            EgressRegion::Near { home_country } => write!(f, "near {home_country}"),
        }
    }
}

/// The relays of one path.
#[derive(Clone, Debug, PartialEq)]
pub struct PathChoice {
    /// The ingress relay (sees the client, not the destination).
    pub ingress: Relay,
    /// The egress relay (sees the destination, not the client).
    pub egress: Relay,
}

/// Why no path can be chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectionError {
    /// No ingress/egress pair satisfies the rules and the request.
    #[error("no valid path: {reason}")]
    NoPath {
        /// Why.
        reason: NoPathReason,
    },
    /// `[trust] attestation = "require"` left no path: the admitted
    /// (attested) relays make none, and the others were refused. The
    /// client fails closed rather than use an unattested relay.
    #[error(
        "no path of attested relays ({reason}); attestation = \"require\" refused {}",
        RefusedList { named: refused, unnamed: *unnamed }
    )]
    NoAttestedPath {
        /// Why the attested relays make no path.
        reason: NoPathReason,
        /// The relays refused, with why: the first
        /// [`MAX_NAMED_REFUSALS`] of the list.
        refused: Vec<RefusedRelay>,
        /// How many more were refused.
        unnamed: usize,
    },
}

/// A relay `[trust] attestation = "require"` refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedRelay {
    /// Its name.
    pub name: String,
    /// Ingress or egress.
    pub role: RelayRole,
    /// Its attestation verdict (not attested).
    pub verdict: crate::attestation::AttestationVerdict,
}

/// The refused relays a [`SelectionError::NoAttestedPath`] names; the
/// others are counted. At 100,000 relays without evidence `require`
/// refuses them all, and an error naming each would be megabytes, logged
/// at every attempt.
pub const MAX_NAMED_REFUSALS: usize = 16;

struct RefusedList<'a> {
    named: &'a [RefusedRelay],
    unnamed: usize,
}

impl fmt::Display for RefusedList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.named.iter().enumerate() {
            let separator = if i == 0 { "" } else { "; " };
            write!(f, "{separator}{} ({}): {}", r.name, r.role, r.verdict)?;
        }
        if self.unnamed > 0 {
            write!(f, "; and {} more", self.unnamed)?;
        }
        Ok(())
    }
}

impl HasKind for SelectionError {
    fn kind(&self) -> ErrorKind {
        match self {
            // No pair of relays the rules allow is usable: none to reach.
            SelectionError::NoPath { .. } | SelectionError::NoAttestedPath { .. } => {
                ErrorKind::Unreachable
            }
        }
    }
}

/// Why no valid path exists, for the user and for callers that react to it
/// (e.g. retrying once exclusions expire).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NoPathReason {
    /// No ingress relay is usable.
    NoIngress {
        /// How many ingress relays exist but are excluded.
        excluded: usize,
    },
    /// No egress relay is usable in the requested region.
    NoEgress {
        /// The region asked for.
        region: EgressRegion,
        /// How many egress relays exist there but are excluded.
        excluded: usize,
    },
    /// Every usable ingress and egress belongs to this one operator.
    OneOperator {
        /// The operator.
        operator: Operator,
    },
    /// Relays of several operators remain, but every usable ingress shares
    /// its operator or network with every usable egress in the region.
    NoCompatiblePair {
        /// The region asked for.
        region: EgressRegion,
    },
}

impl fmt::Display for NoPathReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let region_note = |f: &mut fmt::Formatter<'_>, region: &EgressRegion| {
            if *region == EgressRegion::Any {
                Ok(())
            } else {
                write!(f, " {region}")
            }
        };
        match self {
            NoPathReason::NoIngress { excluded: 0 } => f.write_str("no ingress relay"),
            NoPathReason::NoIngress { excluded } => write!(
                f,
                "no usable ingress relay ({excluded} excluded after failures)"
            ),
            NoPathReason::NoEgress {
                region,
                excluded: 0,
            } => {
                f.write_str("no egress relay")?;
                region_note(f, region)
            }
            NoPathReason::NoEgress { region, excluded } => {
                f.write_str("no usable egress relay")?;
                region_note(f, region)?;
                write!(f, " ({excluded} excluded after failures)")
            }
            NoPathReason::OneOperator { operator } => write!(
                f,
                "only one operator left ({operator}); an ingress and an egress of the same operator are never paired"
            ),
            NoPathReason::NoCompatiblePair { region } => {
                f.write_str(
                    "every usable ingress shares its operator or network with every usable egress",
                )?;
                region_note(f, region)
            }
        }
    }
}

fn no_path(reason: NoPathReason) -> SelectionError {
    SelectionError::NoPath { reason }
}

/// Chooses a path: an egress in `region`, then an ingress compatible with
/// it, each by bandwidth as described in the [module documentation](self),
/// never an `excluded` relay.
pub fn choose(
    candidates: &[impl Borrow<Relay>],
    region: &EgressRegion,
    excluded: impl Fn(&Relay) -> bool,
    rng: &mut fastrand::Rng,
) -> Result<PathChoice, SelectionError> {
    let pools = Pool::preferred(candidates, region, &excluded)?;
    let pool = &pools[0];
    let egress = pick_weighted(&pool.egresses, rng);
    pool.complete(egress, rng)
}

/// Why no refill path can be chosen.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefillChoiceError {
    /// Every usable egress carries a browsing path (a refill waits until
    /// one is free: it never shares a browsing path's egress).
    #[error("every usable egress relay carries a browsing path")]
    EveryEgressBrowsing,
    /// No usable ingress is one the client holds an access token for.
    #[error("no access token for the operator of any usable ingress relay")]
    NoAccessToken,
    /// The other rules leave no pair.
    #[error(transparent)]
    NoPath(#[from] SelectionError),
}

impl HasKind for RefillChoiceError {
    fn kind(&self) -> ErrorKind {
        match self {
            RefillChoiceError::EveryEgressBrowsing => ErrorKind::Unreachable,
            RefillChoiceError::NoAccessToken => ErrorKind::NotAuthenticated,
            RefillChoiceError::NoPath(e) => e.kind(),
        }
    }
}

/// Chooses the path of one token refill, apart from the `browsing` paths:
/// its egress is never one of theirs (the issuer sees the refill's egress
/// address: were it a browsing egress, an issuer and that egress working
/// together would link the account to the session's destinations), and,
/// where the relays allow, neither its egress's operator nor its ingress's
/// is one of the browsing paths' (so no browsing relay's operator sees the
/// refill at all). Its ingress must pass `has_access` (the client holds an
/// access token for it). The operator and network rules hold as for every
/// path; the region does not apply (no destination is reached). Drawn by
/// bandwidth like [`choose`], in the first of these tiers that has a pair.
pub fn choose_refill(
    candidates: &[impl Borrow<Relay>],
    browsing: &[PathChoice],
    has_access: impl Fn(&Relay) -> bool,
    excluded: impl Fn(&Relay) -> bool,
    rng: &mut fastrand::Rng,
) -> Result<PathChoice, RefillChoiceError> {
    let browsing_egress = |c: &Relay| browsing.iter().any(|p| p.egress.id == c.id);
    let egress_operator = |c: &Relay| browsing.iter().any(|p| p.egress.operator == c.operator);
    let ingress_operator = |c: &Relay| browsing.iter().any(|p| p.ingress.operator == c.operator);
    // The rules every refill path keeps; the tiers add preferences.
    let refused = |c: &Relay| {
        excluded(c)
            || match c.role {
                RelayRole::Egress => browsing_egress(c),
                RelayRole::Ingress => !has_access(c),
            }
    };
    let usable = |role: RelayRole, extra: &dyn Fn(&Relay) -> bool| {
        candidates
            .iter()
            .map(Borrow::borrow)
            .any(|c| c.role == role && !excluded(c) && !extra(c))
    };
    if !usable(RelayRole::Egress, &browsing_egress) {
        return Err(RefillChoiceError::EveryEgressBrowsing);
    }
    if !usable(RelayRole::Ingress, &|c| !has_access(c)) {
        return Err(RefillChoiceError::NoAccessToken);
    }
    let tiers: [&dyn Fn(&Relay) -> bool; 3] = [
        &|c| match c.role {
            RelayRole::Egress => egress_operator(c),
            RelayRole::Ingress => ingress_operator(c),
        },
        &|c| c.role == RelayRole::Egress && egress_operator(c),
        &|_| false,
    ];
    let mut last = None;
    for avoided in tiers {
        match Pool::strict(candidates, &EgressRegion::Any, &|c| {
            refused(c) || avoided(c)
        }) {
            Ok(pool) => {
                let egress = pick_weighted(&pool.egresses, rng);
                match pool.complete(egress, rng) {
                    Ok(choice) => return Ok(choice),
                    Err(e) => last = Some(e),
                }
            }
            Err(e) => last = Some(e),
        }
    }
    // The last tier keeps only the hard rules: its error is the reason.
    Err(last.map_or(
        RefillChoiceError::EveryEgressBrowsing,
        RefillChoiceError::from,
    ))
}

/// The relays one draw chooses from: usable ingresses and eligible egresses
/// (in the region, each compatible with at least one usable ingress).
#[derive(Debug)]
struct Pool<'a> {
    ingresses: Vec<&'a Relay>,
    egresses: Vec<&'a Relay>,
}

impl<'a> Pool<'a> {
    /// The pools to draw from for `region`, most preferred first, none
    /// empty: for [`EgressRegion::Near`], the home country's pool (if it has
    /// a valid path) and then the pool for any egress; otherwise the one
    /// pool of the region. The error is the last pool's when none is valid.
    fn preferred(
        candidates: &'a [impl Borrow<Relay>],
        region: &EgressRegion,
        excluded: &dyn Fn(&Relay) -> bool,
    ) -> Result<Vec<Pool<'a>>, SelectionError> {
        match region {
            EgressRegion::Near { home_country } => {
                let home = EgressRegion::Country(home_country.clone());
                let any = Pool::strict(candidates, &EgressRegion::Any, excluded)?;
                Ok(match Pool::strict(candidates, &home, excluded) {
                    Ok(home) => vec![home, any],
                    Err(_) => vec![any],
                })
            }
            strict => Ok(vec![Pool::strict(candidates, strict, excluded)?]),
        }
    }

    fn strict(
        candidates: &'a [impl Borrow<Relay>],
        region: &EgressRegion,
        excluded: &dyn Fn(&Relay) -> bool,
    ) -> Result<Pool<'a>, SelectionError> {
        let candidates = candidates.iter().map(Borrow::borrow);
        let ingress_listed = candidates.clone().filter(|c| c.role == RelayRole::Ingress);
        let ingresses: Vec<_> = ingress_listed.clone().filter(|c| !excluded(c)).collect();
        let egress_listed =
            candidates.filter(|c| c.role == RelayRole::Egress && region.contains(c));
        let usable_egresses: Vec<_> = egress_listed.clone().filter(|c| !excluded(c)).collect();
        if ingresses.is_empty() {
            return Err(no_path(NoPathReason::NoIngress {
                excluded: ingress_listed.count(),
            }));
        }
        if usable_egresses.is_empty() {
            return Err(no_path(NoPathReason::NoEgress {
                region: region.clone(),
                excluded: egress_listed.count(),
            }));
        }
        let egresses: Vec<_> = usable_egresses
            .iter()
            .copied()
            .filter(|e| ingresses.iter().any(|i| i.compatible_with(e)))
            .collect();
        if egresses.is_empty() {
            let operators: BTreeSet<&Operator> = ingresses
                .iter()
                .chain(&usable_egresses)
                .map(|c| &c.operator)
                .collect();
            let reason = match operators.into_iter().collect::<Vec<_>>()[..] {
                [operator] => NoPathReason::OneOperator {
                    operator: operator.clone(),
                },
                _ => NoPathReason::NoCompatiblePair {
                    region: region.clone(),
                },
            };
            return Err(no_path(reason));
        }
        Ok(Pool {
            ingresses,
            egresses,
        })
    }

    /// Draws the ingress for `egress`, one of the pool's egresses (each has
    /// a compatible ingress, so the error cannot happen).
    fn complete(
        &self,
        egress: &Relay,
        rng: &mut fastrand::Rng,
    ) -> Result<PathChoice, SelectionError> {
        let ingress = pick_ingress(&self.ingresses, egress, rng).ok_or_else(|| {
            no_path(NoPathReason::NoCompatiblePair {
                region: EgressRegion::Any,
            })
        })?;
        Ok(PathChoice {
            ingress: ingress.clone(),
            egress: egress.clone(),
        })
    }
}

/// Draws an ingress compatible with `egress` by its weight among all of
/// `usable` (operator shares capped over all usable ingresses, then
/// restricted to the compatible ones); `None` if none is compatible.
fn pick_ingress<'a>(
    usable: &[&'a Relay],
    egress: &Relay,
    rng: &mut fastrand::Rng,
) -> Option<&'a Relay> {
    let weights = selection_weights(usable);
    let (compatible, weights): (Vec<&'a Relay>, Vec<f64>) = usable
        .iter()
        .zip(weights)
        .filter(|(i, _)| i.compatible_with(egress))
        .map(|(i, w)| (*i, w))
        .unzip();
    (!compatible.is_empty()).then(|| pick_by_weights(&compatible, &weights, rng))
}

/// The weight of each of `relays` in one draw among them (issue 11, item 7;
/// `openrelay_directory::weight`): its bandwidth clipped to
/// [`MAX_WEIGHTED_BANDWIDTH_BPS`](openrelay_directory::weight::MAX_WEIGHTED_BANDWIDTH_BPS),
/// scaled so that its operator's share of the draw is at most
/// `max(`[`MAX_OPERATOR_SHARE`](openrelay_directory::weight::MAX_OPERATOR_SHARE)`, 1/k)`
/// for `k` operators in the draw. Relays of one operator keep their
/// proportions.
pub fn selection_weights(relays: &[&Relay]) -> Vec<f64> {
    use openrelay_directory::weight::{MAX_OPERATOR_SHARE, cap_shares, clipped_bandwidth};
    let clipped: Vec<f64> = relays
        .iter()
        .map(|r| clipped_bandwidth(r.bandwidth_bps) as f64)
        .collect();
    // Each relay's operator, numbered as first seen: one hash lookup per
    // relay (a draw at 100,000 relays is among 50,000 of them).
    let mut operators: HashMap<&Operator, usize> = HashMap::new();
    let groups: Vec<usize> = relays
        .iter()
        .map(|r| {
            let next = operators.len();
            *operators.entry(&r.operator).or_insert(next)
        })
        .collect();
    let mut masses = vec![0.0; operators.len()];
    for (&g, weight) in groups.iter().zip(&clipped) {
        masses[g] += weight;
    }
    let capped = cap_shares(&masses, MAX_OPERATOR_SHARE);
    groups
        .iter()
        .zip(&clipped)
        .map(|(&g, weight)| {
            if masses[g] > 0.0 {
                weight * capped[g] / masses[g]
            } else {
                0.0
            }
        })
        .collect()
}

/// Draws one relay with probability proportional to its weight in this
/// draw ([`selection_weights`]), or uniformly when all weights are 0.
/// `relays` must not be empty.
fn pick_weighted<'a>(relays: &[&'a Relay], rng: &mut fastrand::Rng) -> &'a Relay {
    pick_by_weights(relays, &selection_weights(relays), rng)
}

/// Draws one of `relays` with probability proportional to `weights` (one
/// each), or uniformly when all are 0. `relays` must not be empty.
fn pick_by_weights<'a>(
    relays: &[&'a Relay],
    weights: &[f64],
    rng: &mut fastrand::Rng,
) -> &'a Relay {
    debug_assert!(!relays.is_empty() && relays.len() == weights.len());
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return relays[rng.usize(..relays.len())];
    }
    let mut point = rng.f64() * total;
    for (relay, weight) in relays.iter().zip(weights) {
        if point < *weight {
            return relay;
        }
        point -= weight;
    }
    // Only through rounding at the very end of the range.
    relays
        .iter()
        .zip(weights)
        .rev()
        .find(|(_, w)| **w > 0.0)
        .map_or(relays[relays.len() - 1], |(r, _)| r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
