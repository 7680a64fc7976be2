//! When things happen in a measurement epoch, and what one validator does
//! in each (docs/measurement.md, "Epochs").
//!
//! [`EpochTiming`] is the contract's clock: epoch `e` runs from
//! `genesis + e × epoch_seconds` for `epoch_seconds`; a report of `e` is
//! committed during `e` and revealed in the first `reveal_window_seconds`
//! of `e + 1`; then `e` is settled from what was revealed.
//!
//! [`ValidatorEpochs`] is a validator's part as a sans-IO machine (quinn-proto
//! is the model): the driver plans each epoch's tests ([`ValidatorEpochs::plan`]),
//! asks [`ValidatorEpochs::poll`] what is due at a time, does it (a capacity
//! test, a transaction, reading the chain) and reports back. Every time is
//! Unix milliseconds on the validator's own clock; margins before each
//! deadline absorb clock skew and the time a transaction takes to land,
//! since the contract enforces the windows by block time.

use std::collections::{BTreeMap, VecDeque};

use crate::report::{
    Commitment, Epoch, RelayId, Reveal, RevealError, ValidatorId, ValidatorReport,
};

/// The measurement clock the contract keeps (`measureGenesis`,
/// `measureEpochSeconds`, `revealWindowSeconds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochTiming {
    genesis_unix: u64,
    epoch_seconds: u64,
    reveal_window_seconds: u64,
}

/// Why an [`EpochTiming`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimingError {
    /// Epochs of no length.
    #[error("an epoch must last at least a second")]
    ZeroEpoch,
    /// The reveal window must fit inside the next epoch, and be open.
    #[error(
        "the reveal window ({window} s) must be longer than 0 and shorter than an epoch ({epoch} s)"
    )]
    RevealWindow {
        /// The window given.
        window: u64,
        /// The epoch length given.
        epoch: u64,
    },
}

impl EpochTiming {
    /// The clock of a contract deployed at `genesis_unix`.
    pub fn new(
        genesis_unix: u64,
        epoch_seconds: u64,
        reveal_window_seconds: u64,
    ) -> Result<Self, TimingError> {
        if epoch_seconds == 0 {
            return Err(TimingError::ZeroEpoch);
        }
        if reveal_window_seconds == 0 || reveal_window_seconds >= epoch_seconds {
            return Err(TimingError::RevealWindow {
                window: reveal_window_seconds,
                epoch: epoch_seconds,
            });
        }
        Ok(Self {
            genesis_unix,
            epoch_seconds,
            reveal_window_seconds,
        })
    }

    /// Seconds in an epoch.
    pub fn epoch_seconds(&self) -> u64 {
        self.epoch_seconds
    }

    /// The epoch running at `unix_secs`; `None` before genesis.
    pub fn epoch_at(&self, unix_secs: u64) -> Option<Epoch> {
        unix_secs
            .checked_sub(self.genesis_unix)
            .map(|since| since / self.epoch_seconds)
    }

    /// When `epoch` starts, Unix seconds.
    pub fn start(&self, epoch: Epoch) -> u64 {
        self.genesis_unix
            .saturating_add(epoch.saturating_mul(self.epoch_seconds))
    }

    /// When `epoch` ends (and its reports' reveal window opens).
    pub fn end(&self, epoch: Epoch) -> u64 {
        self.start(epoch.saturating_add(1))
    }

    /// When the reveal window of `epoch`'s reports closes: after this the
    /// epoch can be settled.
    pub fn reveal_deadline(&self, epoch: Epoch) -> u64 {
        self.end(epoch).saturating_add(self.reveal_window_seconds)
    }

    /// The latest epoch whose reveal window closed at least `delay_secs`
    /// before `unix_secs` (the delay lets the chain's last block pass the
    /// deadline and be confirmed); `None` if there is none yet.
    pub fn settled_by(&self, unix_secs: u64, delay_secs: u64) -> Option<Epoch> {
        let ready = unix_secs
            .checked_sub(delay_secs)?
            .checked_sub(self.genesis_unix)?
            .checked_sub(self.epoch_seconds + self.reveal_window_seconds)?;
        Some(ready / self.epoch_seconds)
    }
}

/// Margins (milliseconds) between a validator's actions and the contract's
/// deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochMargins {
    /// The commitment is sent this long before the epoch ends; tests still
    /// running then do not count for the epoch.
    pub commit_before_end_ms: u64,
    /// The reveal is sent this long after the epoch ends, so the chain has
    /// a block past the end.
    pub reveal_after_end_ms: u64,
    /// The epoch is settled this long after its reveal window closed.
    pub settle_after_deadline_ms: u64,
}

impl EpochMargins {
    /// Margins for epochs of `epoch_seconds` and a reveal window of
    /// `window_seconds`: a tenth of the epoch (at most 5 minutes) to land
    /// the commitment, a tenth of the window (at most a minute) each to let
    /// the chain pass the epoch's end and the window's close.
    pub fn for_timing(timing: &EpochTiming) -> Self {
        let epoch_ms = timing.epoch_seconds.saturating_mul(1_000);
        let window_ms = timing.reveal_window_seconds.saturating_mul(1_000);
        Self {
            commit_before_end_ms: (epoch_ms / 10).min(300_000),
            reveal_after_end_ms: (window_ms / 10).min(60_000),
            settle_after_deadline_ms: (window_ms / 10).min(60_000),
        }
    }
}

/// What a validator should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpochStep {
    /// Run the capacity and echo tests of `relay` for `epoch` and report
    /// with [`ValidatorEpochs::measured`].
    Measure {
        /// The epoch the test counts for.
        epoch: Epoch,
        /// The relay to test.
        relay: RelayId,
    },
    /// Send `commitReport(epoch, commitment)`; report with
    /// [`ValidatorEpochs::committed`].
    Commit {
        /// The epoch.
        epoch: Epoch,
        /// The commitment to the reveal kept for later.
        commitment: Commitment,
        /// How many relays the reveal reports on.
        reports: usize,
    },
    /// Send `revealReport(epoch, reveal)`; report with
    /// [`ValidatorEpochs::revealed`].
    Reveal {
        /// The epoch.
        epoch: Epoch,
        /// The canonical reveal bytes.
        reveal: Vec<u8>,
    },
}

/// What became of an epoch's report, for logs and `validator status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFate {
    /// Committed and revealed.
    Revealed,
    /// The commit deadline passed before the commitment was sent (the
    /// validator was planned too late, or its commitment failed).
    MissedCommit,
    /// The reveal window closed before the reveal landed.
    MissedReveal,
}

#[derive(Debug)]
struct Planned {
    schedule: VecDeque<(u64, RelayId)>,
    reports: Vec<ValidatorReport>,
    salt: [u8; 32],
}

#[derive(Debug)]
struct Committed {
    reveal: Reveal,
    sent: bool,
}

/// One validator's epochs: tests due, the commitment, the reveal.
#[derive(Debug)]
pub struct ValidatorEpochs {
    timing: EpochTiming,
    margins: EpochMargins,
    me: ValidatorId,
    planned: BTreeMap<Epoch, Planned>,
    committing: BTreeMap<Epoch, Committed>,
    awaiting_reveal: BTreeMap<Epoch, Committed>,
    fates: VecDeque<(Epoch, ReportFate)>,
}

/// How many settled fates are remembered.
const FATES_KEPT: usize = 64;

impl ValidatorEpochs {
    /// A validator `me` on the contract clock `timing`.
    pub fn new(timing: EpochTiming, margins: EpochMargins, me: ValidatorId) -> Self {
        Self {
            timing,
            margins,
            me,
            planned: BTreeMap::new(),
            committing: BTreeMap::new(),
            awaiting_reveal: BTreeMap::new(),
            fates: VecDeque::new(),
        }
    }

    /// The clock.
    pub fn timing(&self) -> &EpochTiming {
        &self.timing
    }

    /// The epoch to plan at `now_ms`, if it is not planned yet and there is
    /// still time to test and commit in it.
    pub fn needs_plan(&self, now_ms: u64) -> Option<Epoch> {
        let epoch = self.timing.epoch_at(now_ms / 1_000)?;
        let planned = self.planned.contains_key(&epoch)
            || self.committing.contains_key(&epoch)
            || self.awaiting_reveal.contains_key(&epoch);
        (!planned && now_ms < self.commit_at(epoch)).then_some(epoch)
    }

    /// The window tests of `epoch` must fall in: from its start (or `now`)
    /// to the commit time, Unix milliseconds.
    pub fn test_window(&self, epoch: Epoch, now_ms: u64) -> (u64, u64) {
        let start = self.timing.start(epoch).saturating_mul(1_000).max(now_ms);
        (start, self.commit_at(epoch))
    }

    /// Plans `epoch`: its tests at the given times (Unix milliseconds; a
    /// test due after the commit time is never run) and the salt that will
    /// hide its report.
    pub fn plan(&mut self, epoch: Epoch, mut schedule: Vec<(u64, RelayId)>, salt: [u8; 32]) {
        schedule.sort();
        self.planned.insert(
            epoch,
            Planned {
                schedule: schedule.into(),
                reports: Vec::new(),
                salt,
            },
        );
    }

    fn commit_at(&self, epoch: Epoch) -> u64 {
        self.timing
            .end(epoch)
            .saturating_mul(1_000)
            .saturating_sub(self.margins.commit_before_end_ms)
    }

    fn reveal_at(&self, epoch: Epoch) -> u64 {
        self.timing
            .end(epoch)
            .saturating_mul(1_000)
            .saturating_add(self.margins.reveal_after_end_ms)
    }

    fn reveal_closes(&self, epoch: Epoch) -> u64 {
        self.timing.reveal_deadline(epoch).saturating_mul(1_000)
    }

    /// Records a test's result for `epoch` (ignored once the epoch's
    /// commitment is made: it came too late).
    pub fn measured(&mut self, epoch: Epoch, report: ValidatorReport) {
        if let Some(p) = self.planned.get_mut(&epoch) {
            p.reports.retain(|r| r.relay != report.relay);
            p.reports.push(report);
        }
    }

    /// The next step due at `now_ms`, if any. Call until `None`, then wait
    /// until [`ValidatorEpochs::poll_timeout`].
    pub fn poll(&mut self, now_ms: u64) -> Result<Option<EpochStep>, RevealError> {
        self.expire(now_ms);
        // Reveals first: their window is the shortest.
        let reveal_due = self
            .awaiting_reveal
            .iter()
            .find(|(_, c)| !c.sent)
            .map(|(&e, _)| e)
            .filter(|&e| now_ms >= self.reveal_at(e));
        if let Some(epoch) = reveal_due
            && let Some(c) = self.awaiting_reveal.get_mut(&epoch)
        {
            c.sent = true;
            return Ok(Some(EpochStep::Reveal {
                epoch,
                reveal: c.reveal.to_bytes(),
            }));
        }
        let commit_due = self
            .planned
            .keys()
            .copied()
            .find(|&e| now_ms >= self.commit_at(e));
        if let Some(epoch) = commit_due
            && let Some(p) = self.planned.remove(&epoch)
        {
            let reveal = Reveal::new(epoch, self.me, p.reports, p.salt)?;
            let step = EpochStep::Commit {
                epoch,
                commitment: reveal.commitment(),
                reports: reveal.reports().len(),
            };
            self.committing
                .insert(epoch, Committed { reveal, sent: true });
            return Ok(Some(step));
        }
        for (&epoch, p) in &mut self.planned {
            if let Some(&(at, relay)) = p.schedule.front()
                && now_ms >= at
            {
                p.schedule.pop_front();
                return Ok(Some(EpochStep::Measure { epoch, relay }));
            }
        }
        Ok(None)
    }

    /// Drops what can no longer meet its deadline, recording its fate.
    fn expire(&mut self, now_ms: u64) {
        let late: Vec<Epoch> = self
            .awaiting_reveal
            .keys()
            .copied()
            .filter(|&e| now_ms >= self.reveal_closes(e))
            .collect();
        for epoch in late {
            self.awaiting_reveal.remove(&epoch);
            self.record(epoch, ReportFate::MissedReveal);
        }
        let stale: Vec<Epoch> = self
            .committing
            .keys()
            .copied()
            .filter(|&e| now_ms >= self.timing.end(e).saturating_mul(1_000))
            .collect();
        for epoch in stale {
            self.committing.remove(&epoch);
            self.record(epoch, ReportFate::MissedCommit);
        }
    }

    /// The commitment of `epoch` landed (`Ok`) or was refused (`Err`): the
    /// reveal follows after the epoch's end, or the epoch is lost.
    pub fn committed(&mut self, epoch: Epoch, landed: bool) {
        if let Some(mut c) = self.committing.remove(&epoch) {
            if landed {
                c.sent = false;
                self.awaiting_reveal.insert(epoch, c);
            } else {
                self.record(epoch, ReportFate::MissedCommit);
            }
        }
    }

    /// The reveal of `epoch` landed (`true`), or failed: it is tried again
    /// at the next poll while the window is open.
    pub fn revealed(&mut self, epoch: Epoch, landed: bool) {
        if landed {
            if self.awaiting_reveal.remove(&epoch).is_some() {
                self.record(epoch, ReportFate::Revealed);
            }
        } else if let Some(c) = self.awaiting_reveal.get_mut(&epoch) {
            c.sent = false;
        }
    }

    fn record(&mut self, epoch: Epoch, fate: ReportFate) {
        if self.fates.len() == FATES_KEPT {
            self.fates.pop_front();
        }
        self.fates.push_back((epoch, fate));
    }

    /// What became of the last epochs' reports, oldest first.
    pub fn fates(&self) -> impl Iterator<Item = &(Epoch, ReportFate)> {
        self.fates.iter()
    }

    /// When the next step falls due (Unix milliseconds), if anything is
    /// pending; a step already sent and not yet reported has no time.
    pub fn poll_timeout(&self) -> Option<u64> {
        let reveals = self
            .awaiting_reveal
            .iter()
            .filter(|(_, c)| !c.sent)
            .map(|(&e, _)| self.reveal_at(e));
        let commits = self.planned.keys().map(|&e| self.commit_at(e));
        let tests = self
            .planned
            .values()
            .filter_map(|p| p.schedule.front().map(|&(at, _)| at));
        let expiries = self
            .awaiting_reveal
            .keys()
            .map(|&e| self.reveal_closes(e))
            .chain(
                self.committing
                    .keys()
                    .map(|&e| self.timing.end(e).saturating_mul(1_000)),
            );
        reveals.chain(commits).chain(tests).chain(expiries).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Measurement, verify_reveal};

    fn timing() -> EpochTiming {
        EpochTiming::new(1_000, 60, 20).expect("valid")
    }

    fn report(relay: RelayId) -> ValidatorReport {
        ValidatorReport {
            relay,
            probes_sent: 3,
            probes_answered: 3,
            measurement: Measurement::Reachable {
                capacity_bps: 50_000_000,
                rtt_micros: 900,
            },
        }
    }

    #[test]
    fn the_clock_matches_the_contracts() {
        let t = timing();
        assert_eq!(t.epoch_at(999), None);
        assert_eq!(t.epoch_at(1_000), Some(0));
        assert_eq!(t.epoch_at(1_059), Some(0));
        assert_eq!(t.epoch_at(1_060), Some(1));
        assert_eq!(
            (t.start(2), t.end(2), t.reveal_deadline(2)),
            (1_120, 1_180, 1_200)
        );
        // Epoch 0's window closes at 1_080.
        assert_eq!(t.settled_by(1_079, 0), None);
        assert_eq!(t.settled_by(1_080, 0), Some(0));
        assert_eq!(t.settled_by(1_139, 0), Some(0));
        assert_eq!(t.settled_by(1_140, 0), Some(1));
        assert_eq!(t.settled_by(1_085, 5), Some(0));
        assert_eq!(t.settled_by(1_084, 5), None);
        assert_eq!(EpochTiming::new(0, 0, 0), Err(TimingError::ZeroEpoch));
        assert!(EpochTiming::new(0, 10, 10).is_err());
        assert!(EpochTiming::new(0, 10, 0).is_err());
    }

    /// A fake clock walks one validator through an epoch: tests at their
    /// times, the commitment before the end, the reveal after it, which
    /// verifies against the commitment.
    #[test]
    fn one_epoch_tests_commits_and_reveals_in_order() {
        let t = timing();
        let margins = EpochMargins::for_timing(&t);
        assert_eq!(margins.commit_before_end_ms, 6_000);
        let me = ValidatorId([7; 32]);
        let mut v = ValidatorEpochs::new(t, margins, me);
        let (a, b) = (RelayId([1; 32]), RelayId([2; 32]));
        let now = 1_000_500;
        assert_eq!(v.needs_plan(now), Some(0));
        let (from, to) = v.test_window(0, now);
        assert_eq!((from, to), (1_000_500, 1_054_000));
        v.plan(0, vec![(1_030_000, b), (1_010_000, a)], [9; 32]);
        assert_eq!(v.needs_plan(now), None);
        assert_eq!(v.poll(now), Ok(None));
        assert_eq!(v.poll_timeout(), Some(1_010_000));
        assert_eq!(
            v.poll(1_010_000),
            Ok(Some(EpochStep::Measure { epoch: 0, relay: a }))
        );
        v.measured(0, report(a));
        assert_eq!(v.poll_timeout(), Some(1_030_000));
        assert_eq!(
            v.poll(1_031_000),
            Ok(Some(EpochStep::Measure { epoch: 0, relay: b }))
        );
        // b's test is still running at commit time: the report has only a.
        let Ok(Some(EpochStep::Commit {
            epoch: 0,
            commitment,
            reports: 1,
        })) = v.poll(1_054_000)
        else {
            panic!("commit due");
        };
        v.measured(0, report(b));
        v.committed(0, true);
        // Epoch 1 may be planned now; the reveal waits for epoch 0's end.
        assert_eq!(v.needs_plan(1_060_000), Some(1));
        assert_eq!(v.poll_timeout(), Some(1_062_000));
        assert_eq!(v.poll(1_061_000), Ok(None));
        let Ok(Some(EpochStep::Reveal { epoch: 0, reveal })) = v.poll(1_062_000) else {
            panic!("reveal due");
        };
        let opened = verify_reveal(&commitment, &reveal).expect("reveal matches");
        assert_eq!(opened.reports(), &[report(a)]);
        assert_eq!(opened.validator(), me);
        // A failed reveal is retried while the window is open.
        v.revealed(0, false);
        assert!(matches!(
            v.poll(1_063_000),
            Ok(Some(EpochStep::Reveal { epoch: 0, .. }))
        ));
        v.revealed(0, true);
        assert_eq!(
            v.fates().copied().collect::<Vec<_>>(),
            [(0, ReportFate::Revealed)]
        );
        assert_eq!(v.poll_timeout(), None);
    }

    #[test]
    fn deadlines_missed_are_recorded_not_retried_forever() {
        let t = timing();
        let mut v = ValidatorEpochs::new(t, EpochMargins::for_timing(&t), ValidatorId([7; 32]));
        // Too late to plan epoch 0 once its commit time passed.
        assert_eq!(v.needs_plan(1_054_000), None);
        v.plan(0, vec![], [1; 32]);
        assert!(matches!(
            v.poll(1_054_000),
            Ok(Some(EpochStep::Commit { reports: 0, .. }))
        ));
        // The commitment never lands: at the epoch's end it is lost.
        assert_eq!(v.poll(1_060_000), Ok(None));
        v.plan(1, vec![], [2; 32]);
        assert!(matches!(
            v.poll(1_114_000),
            Ok(Some(EpochStep::Commit { epoch: 1, .. }))
        ));
        v.committed(1, true);
        assert!(matches!(
            v.poll(1_122_000),
            Ok(Some(EpochStep::Reveal { epoch: 1, .. }))
        ));
        v.revealed(1, false);
        // The window of epoch 1 closes at 1_140 s.
        assert_eq!(v.poll(1_140_000), Ok(None));
        assert_eq!(
            v.fates().copied().collect::<Vec<_>>(),
            [(0, ReportFate::MissedCommit), (1, ReportFate::MissedReveal)]
        );
        assert_eq!(v.poll_timeout(), None);
    }
}
