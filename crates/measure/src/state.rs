//! The verdicts: a sans-IO state machine fed one epoch of revealed reports
//! at a time (docs/measurement.md, "Verdicts").
//!
//! Per relay and epoch, with `R` the weight of the validators that reported
//! on it and `U` the weight of those that found it unreachable:
//! - `R = 0`: not reported; nothing changes.
//! - `3U ≥ 2R` (at least two thirds unreachable): **down** (liveness).
//!   Excluded from selection at once, and not a capacity failure: the
//!   failing count neither grows nor resets, so going down between failing
//!   epochs does not dodge a slash either. At least, not more than: with
//!   three equal validators one liar is exactly a third, and "more than"
//!   would let it keep a dead relay up (two honest "unreachable" against
//!   its "reachable" is exactly two thirds) at whatever figure it likes;
//!   one liar saying "unreachable" of a live relay is a third, not down.
//! - otherwise the aggregate is the [`weighted_low_median`] of the reachable
//!   reports; it is the relay's measured bandwidth from now on. Below
//!   [`MeasureParams::passing_bps`] the epoch fails; the
//!   [`MeasureParams::failing_epochs_to_slash`]-th consecutive failure is a
//!   [`RelaySlash`] (and the count starts again); a passing epoch resets
//!   the count. Every reachable report farther than the deviation
//!   tolerance above the aggregate is a [`Mark`] on its validator, when
//!   the other reports (those the aggregate stands on) hold at least half
//!   of the set's weight: a mark accuses a validator of lying, and an
//!   aggregate of fewer reports may be one test that found the relay busy
//!   (another validator's test through it as a partner hop), which would
//!   mark the validator that measured it right. (Two thirds would need
//!   every honest validator to report on the relay to mark a liar, which
//!   the devnet rarely saw; half still needs a coalition under a third to
//!   be joined by more than a sixth of the set's honest weight measuring
//!   the same depressed figure to mark an honest validator.)
//!
//! Everything is integer arithmetic over `BTreeMap`s: the same inputs give
//! the same outcome on every validator.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::aggregate::{WeightedCapacity, weighted_low_median};
use crate::params::{MeasureParams, stake_bps};
use crate::report::{Epoch, MAX_VALIDATORS, Measurement, RelayId, Reveal, ValidatorId};

/// What the chain says about a relay this epoch, as verdicts need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayAdvert {
    /// The bandwidth the relay advertises, bits per second.
    pub advertised_bps: u64,
    /// Its operator's stake (the chain's unit, wei).
    pub operator_stake: u128,
    /// The advertised bandwidth of all the operator's relays together,
    /// bits per second (this relay's included).
    pub operator_advertised_bps: u128,
}

impl RelayAdvert {
    /// The part of the operator's stake that backs this relay: the stake ×
    /// this relay's share of the operator's advertised bandwidth (all of it
    /// if the figures are inconsistent). A slash takes a fraction of this,
    /// so one lying relay never costs an operator its other relays' stake.
    pub fn stake_share(&self) -> u128 {
        let advertised = u128::from(self.advertised_bps);
        if self.operator_advertised_bps <= advertised {
            return self.operator_stake;
        }
        mul_div(
            self.operator_stake,
            advertised,
            self.operator_advertised_bps,
        )
    }
}

/// `a × b / c` for `b < c` without overflowing: a stake share.
fn mul_div(a: u128, b: u128, c: u128) -> u128 {
    let (q, r) = (a / c, a % c);
    // r < c and b < c; r × b overflows only for c above 2^64, where the
    // remainder's part is rounded through the quotient of r by (c / b).
    let remainder = r
        .checked_mul(b)
        .map_or_else(|| r / (c / b.max(1)).max(1), |p| p / c);
    q * b + remainder
}

/// A relay's liveness as the last reported epoch left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Never measured: selection gives it the bootstrap weight.
    Unmeasured,
    /// Reachable in its last reported epoch.
    Up,
    /// Unreachable for at least two thirds of the reporting weight in its
    /// last reported epoch: excluded from selection.
    Down,
}

/// What one epoch decided about one relay's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochVerdict {
    /// The aggregate reached the passing threshold.
    Passed,
    /// The aggregate was below the passing threshold.
    Failed,
    /// The relay was down; no capacity verdict.
    Down,
    /// No validator reported on it this epoch.
    NotReported,
}

/// One validator's report as an explanation shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainedReport {
    /// Who reported.
    pub validator: ValidatorId,
    /// Its weight (stake) in the aggregate.
    pub weight: u128,
    /// Echo probes sent.
    pub probes_sent: u32,
    /// Echo probes answered.
    pub probes_answered: u32,
    /// What it measured.
    pub measurement: Measurement,
    /// Whether this report was marked (above the aggregate by more than
    /// the deviation tolerance, both capped at what the relay is held to).
    pub marked: bool,
}

/// Why a relay weighs what it weighs and how far it is from a slash:
/// what `openrelay operator status` and the registry's dashboard JSON show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The relay.
    pub relay: RelayId,
    /// The epoch this explains.
    pub epoch: Epoch,
    /// What it advertises, bits per second.
    pub advertised_bps: u64,
    /// What it is held to (advertised, capped at the most a test checks).
    pub expected_bps: u64,
    /// The lowest aggregate that passes.
    pub passing_bps: u64,
    /// The tolerance, basis points below the expected bandwidth.
    pub tolerance_bps: u32,
    /// Every validator's report this epoch, by validator.
    pub reports: Vec<ExplainedReport>,
    /// Weight of the validators that reported.
    pub reporting_weight: u128,
    /// Weight of those that found it unreachable.
    pub unreachable_weight: u128,
    /// This epoch's aggregate, when it was up.
    pub aggregate_bps: Option<u64>,
    /// This epoch's capacity verdict.
    pub verdict: EpochVerdict,
    /// Liveness after this epoch.
    pub liveness: Liveness,
    /// The latest aggregate and its epoch (its age is `epoch` minus that).
    pub measured: Option<MeasuredBandwidth>,
    /// Consecutive failing epochs so far (0 right after a slash).
    pub consecutive_failing_epochs: u32,
    /// Further failing epochs that would slash it.
    pub failing_epochs_until_slash: u32,
    /// Whether this epoch slashed it.
    pub slashed: bool,
    /// What path selection counts it for, bits per second: 0 when down,
    /// min(advertised, measured) once measured, the bootstrap weight
    /// before. (The directory applies the stake cover on top.)
    pub selection_bps: u64,
}

/// A relay's latest aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasuredBandwidth {
    /// The epoch it was measured in.
    pub epoch: Epoch,
    /// The aggregate, bits per second.
    pub bps: u64,
}

/// A decision to slash a relay's stake through the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelaySlash {
    /// The relay.
    pub relay: RelayId,
    /// The total taken: the relay's stake share × the relay slash fraction.
    /// The contract burns most of it and pays the rest to the approvers.
    pub amount: u128,
    /// The majority side: validators whose own report agreed (reachable and
    /// below the passing threshold), by validator id. They approve the
    /// slash and so share its reward; a validator whose report said the
    /// relay passes is not among them.
    pub majority: Vec<ValidatorId>,
}

/// A decision to slash a validator whose reports kept deviating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatorSlash {
    /// The validator.
    pub validator: ValidatorId,
    /// Its stake × the validator slash fraction.
    pub amount: u128,
    /// The epochs with marks that led to it.
    pub marked_epochs: Vec<Epoch>,
}

/// A report farther than the deviation tolerance from the aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mark {
    /// Who reported it.
    pub validator: ValidatorId,
    /// About which relay.
    pub relay: RelayId,
    /// What it reported.
    pub reported_bps: u64,
    /// The aggregate.
    pub aggregate_bps: u64,
}

/// Everything one epoch decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EpochOutcome {
    /// The epoch.
    pub epoch: Epoch,
    /// One explanation per advertised relay.
    pub explanations: BTreeMap<RelayId, Explanation>,
    /// Relays to slash.
    pub relay_slashes: Vec<RelaySlash>,
    /// Validators to slash.
    pub validator_slashes: Vec<ValidatorSlash>,
    /// This epoch's marks.
    pub marks: Vec<Mark>,
    /// Reports about relays that are not advertised (deregistered ones):
    /// ignored.
    pub ignored_reports: usize,
}

/// A slash one validator approves on chain after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "target")]
pub enum SlashApproval {
    /// Slash `amount` of the stake behind `relay` (its operator's account).
    Relay {
        /// The relay that kept failing.
        relay: RelayId,
        /// The amount, as [`RelaySlash::amount`].
        amount: u128,
    },
    /// Slash `amount` of `validator`'s stake.
    Validator {
        /// The validator whose reports kept deviating.
        validator: ValidatorId,
        /// The amount, as [`ValidatorSlash::amount`].
        amount: u128,
    },
}

impl EpochOutcome {
    /// The slashes `me` approves: a relay slash only if its own report was
    /// on the majority side (so the contract pays the slash's reward to the
    /// validators who found the relay short, never to one that said it
    /// passed), and every validator slash but one of itself. Every honest
    /// validator computes the same outcome from the same reveals and chain
    /// block, so their approvals name the same amounts and reach quorum.
    pub fn approvals(&self, me: ValidatorId) -> Vec<SlashApproval> {
        let relays = self
            .relay_slashes
            .iter()
            .filter(|s| s.majority.contains(&me))
            .map(|s| SlashApproval::Relay {
                relay: s.relay,
                amount: s.amount,
            });
        let validators = self
            .validator_slashes
            .iter()
            .filter(|s| s.validator != me)
            .map(|s| SlashApproval::Validator {
                validator: s.validator,
                amount: s.amount,
            });
        relays
            .chain(validators)
            .filter(|a| a.amount() > 0)
            .collect()
    }
}

impl SlashApproval {
    /// The amount to slash.
    pub fn amount(&self) -> u128 {
        match self {
            SlashApproval::Relay { amount, .. } | SlashApproval::Validator { amount, .. } => {
                *amount
            }
        }
    }
}

/// Why an epoch was refused; the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Epochs must increase.
    #[error("epoch {epoch} is not after the last applied epoch {last}")]
    EpochNotAfter {
        /// The epoch given.
        epoch: Epoch,
        /// The last applied.
        last: Epoch,
    },
    /// A reveal is for another epoch.
    #[error("validator {validator}'s reveal is for epoch {reveal_epoch}, not {epoch}")]
    RevealForOtherEpoch {
        /// Whose reveal.
        validator: ValidatorId,
        /// Its epoch.
        reveal_epoch: Epoch,
        /// The epoch applied.
        epoch: Epoch,
    },
    /// Two reveals of one validator.
    #[error("validator {0} revealed twice")]
    DuplicateReveal(ValidatorId),
    /// A reveal of a validator not in the set.
    #[error("validator {0} is not in the validator set")]
    UnknownValidator(ValidatorId),
    /// More validators than [`MAX_VALIDATORS`].
    #[error("{count} validators, at most {max}")]
    TooManyValidators {
        /// Validators given.
        count: usize,
        /// [`MAX_VALIDATORS`].
        max: usize,
    },
}

const SNAPSHOT_VERSION: u8 = 1;

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u8,
    last_epoch: Option<Epoch>,
    relays: &'a BTreeMap<RelayId, RelayTrack>,
    marked_epochs: &'a BTreeMap<ValidatorId, BTreeSet<Epoch>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    version: u8,
    last_epoch: Option<Epoch>,
    relays: BTreeMap<RelayId, RelayTrack>,
    marked_epochs: BTreeMap<ValidatorId, BTreeSet<Epoch>>,
}

/// Why [`MeasureState::restore`] refused its bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not a snapshot's JSON.
    #[error("measurement state is malformed at line {line}, column {column}")]
    Malformed {
        /// Where the parser stopped.
        line: usize,
        /// Where the parser stopped.
        column: usize,
    },
    /// Written by another version.
    #[error("measurement state version {0} is not known (expected 1)")]
    Version(u8),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RelayTrack {
    consecutive_failing: u32,
    measured: Option<MeasuredBandwidth>,
    down: bool,
}

/// The verdict state: per relay its failing count and latest measurement,
/// per validator its marked epochs. Feed it with
/// [`MeasureState::apply_epoch`].
#[derive(Debug, Clone)]
pub struct MeasureState {
    params: MeasureParams,
    last_epoch: Option<Epoch>,
    relays: BTreeMap<RelayId, RelayTrack>,
    marked_epochs: BTreeMap<ValidatorId, BTreeSet<Epoch>>,
    explanations: BTreeMap<RelayId, Explanation>,
}

impl MeasureState {
    /// A fresh state: every relay unmeasured, no marks.
    pub fn new(params: MeasureParams) -> Self {
        Self {
            params,
            last_epoch: None,
            relays: BTreeMap::new(),
            marked_epochs: BTreeMap::new(),
            explanations: BTreeMap::new(),
        }
    }

    /// The state's durable part as bytes (JSON): the last applied epoch,
    /// each relay's failing count, latest measurement and liveness, each
    /// validator's marked epochs. Explanations are not kept (the next epoch
    /// makes new ones; whoever serves them keeps the last ones itself).
    pub fn snapshot(&self) -> Vec<u8> {
        let snapshot = SnapshotRef {
            version: SNAPSHOT_VERSION,
            last_epoch: self.last_epoch,
            relays: &self.relays,
            marked_epochs: &self.marked_epochs,
        };
        // Maps of plain data keyed by strings: serializing cannot fail.
        serde_json::to_vec(&snapshot).unwrap_or_default()
    }

    /// A state from [`MeasureState::snapshot`]'s bytes, with `params`.
    pub fn restore(params: MeasureParams, bytes: &[u8]) -> Result<Self, SnapshotError> {
        let s: Snapshot = serde_json::from_slice(bytes).map_err(|e| SnapshotError::Malformed {
            line: e.line(),
            column: e.column(),
        })?;
        if s.version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version(s.version));
        }
        Ok(Self {
            params,
            last_epoch: s.last_epoch,
            relays: s.relays,
            marked_epochs: s.marked_epochs,
            explanations: BTreeMap::new(),
        })
    }

    /// The last epoch applied.
    pub fn last_epoch(&self) -> Option<Epoch> {
        self.last_epoch
    }

    /// The parameters.
    pub fn params(&self) -> &MeasureParams {
        &self.params
    }

    /// The latest explanation of `relay`.
    pub fn explanation(&self, relay: &RelayId) -> Option<&Explanation> {
        self.explanations.get(relay)
    }

    /// What selection counts `relay` for now (see
    /// [`Explanation::selection_bps`]), given what it advertises.
    pub fn selection_bps(&self, relay: &RelayId, advertised_bps: u64) -> u64 {
        let track = self.relays.get(relay);
        match track {
            Some(t) if t.down => 0,
            Some(RelayTrack {
                measured: Some(m), ..
            }) => crate::params::selection_bandwidth(advertised_bps, Some(m.bps)),
            _ => crate::params::selection_bandwidth(advertised_bps, None),
        }
    }

    /// Applies one epoch: `validators` maps each validator of the epoch's
    /// set to its weight (stake); `reveals` are the verified reveals
    /// ([`crate::verify_reveal`]) of those that revealed; `relays` what
    /// each advertised relay claims. Validators that did not reveal simply
    /// have no reports. Refuses (and changes nothing) if the epoch does not
    /// follow the last one or the reveals do not fit the set.
    pub fn apply_epoch(
        &mut self,
        epoch: Epoch,
        validators: &BTreeMap<ValidatorId, u128>,
        reveals: &[Reveal],
        relays: &BTreeMap<RelayId, RelayAdvert>,
    ) -> Result<EpochOutcome, ApplyError> {
        if let Some(last) = self.last_epoch.filter(|&last| epoch <= last) {
            return Err(ApplyError::EpochNotAfter { epoch, last });
        }
        if validators.len() > MAX_VALIDATORS {
            return Err(ApplyError::TooManyValidators {
                count: validators.len(),
                max: MAX_VALIDATORS,
            });
        }
        let mut seen = BTreeSet::new();
        for r in reveals {
            if r.epoch() != epoch {
                return Err(ApplyError::RevealForOtherEpoch {
                    validator: r.validator(),
                    reveal_epoch: r.epoch(),
                    epoch,
                });
            }
            if !validators.contains_key(&r.validator()) {
                return Err(ApplyError::UnknownValidator(r.validator()));
            }
            if !seen.insert(r.validator()) {
                return Err(ApplyError::DuplicateReveal(r.validator()));
            }
        }
        self.last_epoch = Some(epoch);

        // Reports by relay, each list in validator order.
        let mut by_relay: BTreeMap<RelayId, Vec<ExplainedReport>> = BTreeMap::new();
        let mut ignored_reports = 0;
        for reveal in reveals {
            let weight = validators.get(&reveal.validator()).copied().unwrap_or(0);
            for r in reveal.reports() {
                if !relays.contains_key(&r.relay) {
                    ignored_reports += 1;
                    continue;
                }
                by_relay.entry(r.relay).or_default().push(ExplainedReport {
                    validator: reveal.validator(),
                    weight,
                    probes_sent: r.probes_sent,
                    probes_answered: r.probes_answered,
                    measurement: r.measurement,
                    marked: false,
                });
            }
        }
        for reports in by_relay.values_mut() {
            reports.sort_by_key(|a| a.validator);
        }

        let mut outcome = EpochOutcome {
            epoch,
            explanations: BTreeMap::new(),
            relay_slashes: Vec::new(),
            validator_slashes: Vec::new(),
            marks: Vec::new(),
            ignored_reports,
        };
        let set_weight = validators
            .values()
            .fold(0u128, |sum, w| sum.saturating_add(*w));
        for (relay, advert) in relays {
            let reports = by_relay.remove(relay).unwrap_or_default();
            let explanation =
                self.judge_relay(epoch, *relay, advert, reports, set_weight, &mut outcome);
            self.explanations.insert(*relay, explanation.clone());
            outcome.explanations.insert(*relay, explanation);
        }
        self.judge_validators(epoch, validators, &mut outcome);
        Ok(outcome)
    }

    fn judge_relay(
        &mut self,
        epoch: Epoch,
        relay: RelayId,
        advert: &RelayAdvert,
        mut reports: Vec<ExplainedReport>,
        set_weight: u128,
        outcome: &mut EpochOutcome,
    ) -> Explanation {
        let params = &self.params;
        let passing_bps = params.passing_bps(advert.advertised_bps);
        // Weights are stakes in wei, far below u128::MAX / 3 for any real
        // chain; saturating keeps absurd inputs from panicking.
        let reporting_weight = reports
            .iter()
            .fold(0u128, |sum, r| sum.saturating_add(r.weight));
        let unreachable_weight = reports
            .iter()
            .filter(|r| r.measurement == Measurement::Unreachable)
            .fold(0u128, |sum, r| sum.saturating_add(r.weight));
        let reachable: Vec<WeightedCapacity> = reports
            .iter()
            .filter_map(|r| match r.measurement {
                Measurement::Reachable { capacity_bps, .. } => Some(WeightedCapacity {
                    validator: r.validator,
                    weight: r.weight,
                    capacity_bps,
                }),
                Measurement::Unreachable => None,
            })
            .collect();
        let track = self.relays.entry(relay).or_default();
        let mut aggregate_bps = None;
        let mut slashed = false;
        let verdict = if reporting_weight == 0 {
            EpochVerdict::NotReported
        } else if unreachable_weight.saturating_mul(3) >= reporting_weight.saturating_mul(2) {
            track.down = true;
            EpochVerdict::Down
        } else {
            // Reachable weight is at least a third of a positive total here.
            let aggregate = weighted_low_median(&reachable).unwrap_or(0);
            aggregate_bps = Some(aggregate);
            track.down = false;
            track.measured = Some(MeasuredBandwidth {
                epoch,
                bps: aggregate,
            });
            // Reports are compared up to what the relay is held to: above
            // it every figure says the same (it passes), and how far above
            // depends on the measurer's own link and load, not its honesty.
            let expected = params.expected_bps(advert.advertised_bps);
            // The figure of a report that inflates the aggregate.
            let inflated_bps = |r: &ExplainedReport| match r.measurement {
                Measurement::Reachable { capacity_bps, .. }
                    if params.inflates(capacity_bps.min(expected), aggregate.min(expected)) =>
                {
                    Some(capacity_bps)
                }
                _ => None,
            };
            let agreeing_weight = reports
                .iter()
                .filter(|r| inflated_bps(r).is_none())
                .fold(0u128, |sum, r| sum.saturating_add(r.weight));
            if agreeing_weight.saturating_mul(2) >= set_weight {
                for r in &mut reports {
                    if let Some(reported_bps) = inflated_bps(r) {
                        r.marked = true;
                        outcome.marks.push(Mark {
                            validator: r.validator,
                            relay,
                            reported_bps,
                            aggregate_bps: aggregate,
                        });
                    }
                }
            }
            if aggregate >= passing_bps {
                track.consecutive_failing = 0;
                EpochVerdict::Passed
            } else {
                track.consecutive_failing += 1;
                if track.consecutive_failing >= params.failing_epochs_to_slash {
                    track.consecutive_failing = 0;
                    slashed = true;
                    outcome.relay_slashes.push(relay_slash(
                        params,
                        relay,
                        advert,
                        &reachable,
                        passing_bps,
                    ));
                }
                EpochVerdict::Failed
            }
        };
        let liveness = if track.down {
            Liveness::Down
        } else if track.measured.is_some() {
            Liveness::Up
        } else {
            Liveness::Unmeasured
        };
        let track = track.clone();
        Explanation {
            relay,
            epoch,
            advertised_bps: advert.advertised_bps,
            expected_bps: params.expected_bps(advert.advertised_bps),
            passing_bps,
            tolerance_bps: params.capacity_tolerance_bps,
            reports,
            reporting_weight,
            unreachable_weight,
            aggregate_bps,
            verdict,
            liveness,
            measured: track.measured,
            consecutive_failing_epochs: track.consecutive_failing,
            failing_epochs_until_slash: params
                .failing_epochs_to_slash
                .saturating_sub(track.consecutive_failing),
            slashed,
            selection_bps: self.selection_bps(&relay, advert.advertised_bps),
        }
    }

    fn judge_validators(
        &mut self,
        epoch: Epoch,
        validators: &BTreeMap<ValidatorId, u128>,
        outcome: &mut EpochOutcome,
    ) {
        let window = self.params.mark_window_epochs;
        for mark in &outcome.marks {
            self.marked_epochs
                .entry(mark.validator)
                .or_default()
                .insert(epoch);
        }
        // Forget marks that left the window, and validators left with none.
        self.marked_epochs.retain(|_, epochs| {
            epochs.retain(|&e| e.saturating_add(window) > epoch);
            !epochs.is_empty()
        });
        for (validator, epochs) in &mut self.marked_epochs {
            if epochs.len() >= self.params.marks_to_slash as usize {
                let stake = validators.get(validator).copied().unwrap_or(0);
                outcome.validator_slashes.push(ValidatorSlash {
                    validator: *validator,
                    amount: stake_bps(stake, self.params.validator_slash_bps),
                    marked_epochs: std::mem::take(epochs).into_iter().collect(),
                });
            }
        }
        self.marked_epochs.retain(|_, epochs| !epochs.is_empty());
    }
}

fn relay_slash(
    params: &MeasureParams,
    relay: RelayId,
    advert: &RelayAdvert,
    reachable: &[WeightedCapacity],
    passing_bps: u64,
) -> RelaySlash {
    RelaySlash {
        relay,
        amount: stake_bps(advert.stake_share(), params.relay_slash_bps),
        majority: reachable
            .iter()
            .filter(|r| r.capacity_bps < passing_bps)
            .map(|r| r.validator)
            .collect(),
    }
}

#[cfg(test)]
mod tests;
