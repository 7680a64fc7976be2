//! A measuring validator's epochs (issue 14; docs/measurement.md,
//! "Epochs"): with `[measure]`, a validator tests every relay of the
//! directory once per epoch at random times through ordinary paths
//! (`openrelay_probe`), commits to its reports before the epoch ends,
//! reveals them after it, settles each epoch from the chain like everyone
//! else, and approves the slashes the outcome names for it
//! ([`openrelay_measure::EpochOutcome::approvals`]).
//!
//! One task does all of it in turn, so the validator's transactions never
//! race each other for a nonce, and its tests never overlap (a test shares
//! nothing with another, as the schedule promises).

// Validators measure every listed relay, attested or not.
use openrelay_client::attestation::AttestationVerdict::NotChecked;
use std::sync::Arc;
use std::time::Duration;

use super::partner::{self, PartnerKnowledge};
use alloy::primitives::U256;
use openrelay_chain::operator::{OperatorError, Refusal, Registry};
use openrelay_client::directory::VerifiedDirectorySource;
use openrelay_client::relay::Relay;
use openrelay_config::MeasureConfig;
use openrelay_config::chain::ChainConfig;
use openrelay_directory::VerifiedDirectory;
use openrelay_measure::{
    EpochMargins, EpochStep, MeasureParams, Measurement, RelayId, SlashApproval, TestLanes,
    ValidatorEpochs, ValidatorId, ValidatorReport, test_lanes,
};
use openrelay_probe::tokens::ProbeAccount;
use openrelay_probe::{Lane, ProbeSchedule, ProbeSettings, ProbedRelay, Prober};
use openrelay_registry_client::follow::DirectoryFollower;
use openrelay_types::{HasKind as _, RelayRole, unix_now_millis};
use rand_core::{OsRng, RngCore as _};
use tracing::{debug, info, warn};

use super::Validator;
use super::probe_stocking::ProbeStocking;
use crate::settle::{self, Settled};

/// Longest wait between two looks at what is due.
const TICK: Duration = Duration::from_secs(1);

/// Time each test is given in the schedule beyond its transfer: building
/// the path (two handshakes) and closing it.
const PATH_MARGIN: Duration = Duration::from_secs(3);

/// Why measuring could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeasuringError {
    /// The account key file.
    #[error("measure.account_key_file {path}: {source}")]
    AccountKey {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: openrelay_chain::operator::KeyFileError,
    },
    /// The directory the probes use.
    #[error("measure.directory: {0}")]
    Directory(#[from] openrelay_registry_client::follow::FollowConfigError),
    /// The sink or echo could not listen.
    #[error("measure.sink_bind: the prober's sink and echo cannot listen: {0}")]
    Servers(#[source] std::io::Error),
    /// The probes' account (`[measure.account]`) could not be opened.
    #[error("measure.account: {0}")]
    ProbeAccount(#[from] openrelay_probe::tokens::ProbeAccountError),
}

/// Runs a measuring validator's epochs for as long as it runs (see the
/// module documentation).
pub(crate) async fn run(
    validator: Arc<Validator>,
    chain: ChainConfig,
    measure: MeasureConfig,
    state_dir: std::path::PathBuf,
    mut release_voter: Option<super::release_votes::LazyVoter>,
) -> Result<(), MeasuringError> {
    let key_file = measure.account_key_file(&state_dir);
    let signer = openrelay_chain::operator::load_key_file(&key_file).map_err(|source| {
        MeasuringError::AccountKey {
            path: key_file.clone(),
            source,
        }
    })?;
    let follower = Arc::new(DirectoryFollower::new(&measure.directory)?);
    let following = Arc::clone(&follower);
    let _follow = tokio::spawn(async move { following.run().await });
    let mut settler = settle::connect_retrying(&chain, signer, &validator.registry).await;
    let params = settler.params().clone();
    let timing = *settler.timing();
    let mut settings = ProbeSettings::new(
        Duration::from_secs(u64::from(params.measurement_seconds)),
        measure.sink_ip(),
    );
    settings.probe_bind = Some(measure.probe_bind);
    // Every relay's test must fit its lane: an echo not back within a
    // second on a relay path is lost for liveness anyway, and five echoes
    // take a few round trips.
    settings.answer_timeout = Duration::from_secs(1);
    settings.echo_time = Duration::from_secs(1);
    // With `[measure.account]` the probes show tokens and pay as clients'
    // paths do, checked against the directory the validator follows.
    let tokens = measure
        .account
        .as_ref()
        .map(|account| {
            let directory: Arc<dyn VerifiedDirectorySource> = Arc::clone(&follower) as _;
            ProbeAccount::open(account, &state_dir, directory).map(Arc::new)
        })
        .transpose()?;
    let prober = Prober::start(settings, tokens.as_ref().map(|t| Arc::clone(t.account())))
        .await
        .map_err(MeasuringError::Servers)?;
    let mut stocking = ProbeStocking::default();
    let me = ValidatorId(validator.id().to_bytes());
    let mut epochs = ValidatorEpochs::new(timing, EpochMargins::for_timing(&timing), me);
    let mut tester = Tester {
        prober: &prober,
        follower: &follower,
        params: &params,
        measure: &measure,
        knowledge: PartnerKnowledge::default(),
    };
    info!(account = %settler.chain().account(), "measuring relays");
    loop {
        let now = unix_now_millis();
        if let Some(epoch) = epochs.needs_plan(now) {
            let relays = follower.current();
            let schedule = plan(&prober, &epochs, epoch, now, relays.as_deref(), me);
            tester.knowledge.forget_before(epoch);
            if let (Some(tokens), Some(directory)) = (&tokens, &relays) {
                let (_, until) = epochs.test_window(epoch, now);
                stocking.start(
                    tokens,
                    &prober,
                    directory,
                    &schedule,
                    &measure.partners,
                    until,
                );
            }
            epochs.plan(epoch, schedule, salt());
        }
        loop {
            let step = match epochs.poll(unix_now_millis()) {
                Ok(Some(step)) => step,
                Ok(None) => break,
                Err(e) => {
                    warn!(error = %e, "this epoch's report cannot be made");
                    break;
                }
            };
            do_step(&mut epochs, &mut tester, settler.chain(), step).await;
        }
        while let Some(settled) = settle::settle_due(&mut settler, &validator.registry).await {
            settle::log_recorded(
                settled.outcome.epoch,
                validator.record_epoch(&settled.outcome, settled.ended_at),
            );
            approve(settler.chain(), me, &settled).await;
        }
        if let Some(voter) = release_voter.as_mut() {
            voter.tick(settler.chain()).await;
        }
        let wait = epochs
            .poll_timeout()
            .map_or(TICK, |at| {
                Duration::from_millis(at.saturating_sub(unix_now_millis()))
            })
            .min(TICK);
        tokio::time::sleep(wait).await;
    }
}

/// A fresh secret salt for an epoch's commitment.
fn salt() -> [u8; 32] {
    let mut salt = [0; 32];
    OsRng.fill_bytes(&mut salt);
    salt
}

/// The epoch's tests: every relay of the directory, each in its lane
/// ([`test_lanes`]: no two validators test one relay at once), at random
/// times in the lane that end before the commitment. Planned late (the
/// validator started mid-epoch), lanes already past are skipped and a lane
/// under way keeps the tests that still fit.
fn plan(
    prober: &Prober,
    epochs: &ValidatorEpochs,
    epoch: u64,
    now: u64,
    directory: Option<&VerifiedDirectory>,
    me: ValidatorId,
) -> Vec<(u64, RelayId)> {
    let Some(directory) = directory else {
        warn!(epoch, "no directory yet: nothing to measure this epoch");
        return Vec::new();
    };
    let relays: Vec<RelayId> = directory
        .relays()
        .map(|r| RelayId(r.id().to_bytes()))
        .collect();
    let validators: Vec<ValidatorId> = directory
        .validator_set()
        .members()
        .iter()
        .map(|m| ValidatorId(m.validator.to_bytes()))
        .collect();
    let (from, to) = epochs.test_window(epoch, now);
    let epoch_start = epochs.timing().start(epoch).saturating_mul(1_000);
    let test = prober.settings().test_time() + PATH_MARGIN;
    let test_ms = u64::try_from(test.as_millis()).unwrap_or(u64::MAX).max(1);
    // A validator the directory does not list yet tests in one lane, the
    // whole window.
    let lanes = test_lanes(epoch, &relays, &validators, &me).unwrap_or_else(|| TestLanes {
        lanes: 1,
        lane_of: relays.iter().map(|r| (*r, 0)).collect(),
    });
    let width = to.saturating_sub(epoch_start) / u64::from(lanes.lanes.max(1));
    let mut skipped = 0usize;
    let parts: Vec<Lane> = (0..lanes.lanes)
        .filter_map(|lane| {
            let lane_start = epoch_start.saturating_add(width.saturating_mul(u64::from(lane)));
            let lane_end = lane_start.saturating_add(width).min(to);
            let mut tested: Vec<RelayId> = lanes
                .lane_of
                .iter()
                .filter(|(_, l)| *l == lane)
                .map(|(r, _)| *r)
                .collect();
            let begin = lane_start.max(from);
            let room = usize::try_from(lane_end.saturating_sub(begin) / test_ms).unwrap_or(0);
            skipped += tested.len().saturating_sub(room);
            tested.truncate(room);
            let at = |ms: u64| Duration::from_millis(ms.saturating_sub(from));
            (!tested.is_empty()).then(|| Lane {
                window: at(begin)..at(lane_end),
                relays: tested,
            })
        })
        .collect();
    if skipped > 0 {
        warn!(
            epoch,
            skipped,
            lanes = lanes.lanes,
            "some relays' lanes have passed or are too short for their tests: not tested this epoch"
        );
    }
    // The seed is secret: a relay that knew it would know when it is tested.
    match ProbeSchedule::in_lanes(OsRng.next_u64(), test, &parts) {
        Ok(schedule) => schedule
            .slots()
            .iter()
            .map(|slot| {
                let at = from.saturating_add(u64::try_from(slot.start.as_millis()).unwrap_or(0));
                (at, slot.relay)
            })
            .collect(),
        Err(e) => {
            warn!(epoch, error = %e, "this epoch's tests do not fit");
            Vec::new()
        }
    }
}

async fn do_step(
    epochs: &mut ValidatorEpochs,
    tester: &mut Tester<'_>,
    chain: &Registry,
    step: EpochStep,
) {
    match step {
        EpochStep::Measure { epoch, relay } => {
            if let Some(report) = tester.test(epoch, relay).await {
                epochs.measured(epoch, report);
            }
        }
        EpochStep::Commit {
            epoch,
            commitment,
            reports,
        } => {
            let landed = chain.commit_report(epoch, commitment).await;
            match &landed {
                Ok(_) => info!(epoch, reports, "measurement report committed"),
                Err(e) => {
                    warn!(epoch, error = %e, kind = %e.kind(), "measurement report not committed")
                }
            }
            epochs.committed(epoch, landed.is_ok());
        }
        EpochStep::Reveal { epoch, reveal } => {
            let landed = chain.reveal_report(epoch, &reveal).await;
            match &landed {
                Ok(_) => info!(epoch, bytes = reveal.len(), "measurement report revealed"),
                Err(e) => {
                    warn!(epoch, error = %e, kind = %e.kind(), "measurement report not revealed yet")
                }
            }
            epochs.revealed(epoch, landed.is_ok());
        }
    }
}

/// What a validator's tests need besides the relay to test.
struct Tester<'a> {
    prober: &'a Prober,
    follower: &'a DirectoryFollower,
    params: &'a MeasureParams,
    measure: &'a MeasureConfig,
    knowledge: PartnerKnowledge,
}

impl Tester<'_> {
    /// Tests `relay` through a path with a partner hop of another operator
    /// and network ([`partner::choose`]); `None` when the test says nothing
    /// about the relay ([`partner::conclusive`]) or it left the directory.
    async fn test(&mut self, epoch: u64, relay: RelayId) -> Option<ValidatorReport> {
        let unreachable = ValidatorReport {
            relay,
            probes_sent: 0,
            probes_answered: 0,
            measurement: Measurement::Unreachable,
        };
        let Some(directory) = self.follower.current() else {
            return Some(unreachable);
        };
        let candidates: Vec<(RelayId, Relay, u64)> = directory
            .relays()
            .filter_map(|r| {
                let addr = r.endpoints().first()?;
                let id = RelayId(r.id().to_bytes());
                Some((
                    id,
                    Relay::from_directory(&r, *addr, NotChecked),
                    r.bandwidth_bps(),
                ))
            })
            .collect();
        // Gone from the directory since the plan: not this epoch's relay.
        let (_, target, advertised) = candidates.iter().find(|(id, ..)| *id == relay)?.clone();
        let passing = self.params.passing_bps(advertised);
        let partners: Vec<(RelayId, Relay)> = candidates
            .into_iter()
            .map(|(id, relay, _)| (id, relay))
            .collect();
        let mut pick = |n: usize| usize::try_from(OsRng.next_u64() % n.max(1) as u64).unwrap_or(0);
        let Some(partner) = partner::choose(
            &target,
            passing,
            &partners,
            &self.measure.partners,
            &self.knowledge,
            epoch,
            &mut pick,
        ) else {
            warn!(relay = %target.name, "no partner hop of another operator to test it with");
            return None;
        };
        let role = target.role;
        let probed = ProbedRelay {
            id: relay,
            relay: target,
        };
        let probe = match role {
            RelayRole::Egress => self.prober.measure_egress(&probed, &partner.relay).await,
            RelayRole::Ingress => self.prober.measure_ingress(&probed, &partner.relay).await,
        };
        let name = &probed.relay.name;
        // A test that could not show a token is no report
        // (`ProbeFailure::NoToken`): the relay keeps whatever the other
        // validators find.
        let Some(mut report) = probe.report else {
            warn!(
                relay = %name,
                reason = probe.failure.as_ref().map(tracing::field::display),
                "relay not tested for want of a token: no report on it this epoch"
            );
            return None;
        };
        if let Measurement::Reachable { capacity_bps, .. } = report.measurement {
            self.knowledge.carried(epoch, partner.id, capacity_bps);
        }
        if let Some(lie) = self
            .measure
            .misreport_for_tests
            .iter()
            .find(|m| m.relay.as_bytes() == &relay.0)
        {
            warn!(relay = %name, capacity_bps = lie.capacity_bps, "misreporting, as configured for tests");
            report.measurement = Measurement::Reachable {
                capacity_bps: lie.capacity_bps,
                rtt_micros: 1_000,
            };
            report.probes_answered = report.probes_sent;
            return Some(report);
        }
        let failure = probe.failure.as_ref();
        if !partner::conclusive(role, partner.basis, &report.measurement, failure, passing) {
            info!(
                relay = %name,
                partner = %partner.relay.name,
                measured = ?report.measurement,
                failure = failure.map(tracing::field::display),
                "inconclusive: the partner hop or this validator may be at fault; no report \
                 for this relay this epoch"
            );
            return None;
        }
        self.knowledge.measured(epoch, relay, &report.measurement);
        match failure {
            Some(failure) => info!(relay = %name, reason = %failure, "relay unreachable"),
            None => debug!(relay = %name, report = ?report, "relay measured"),
        }
        Some(report)
    }
}

/// Sends the approvals `me` owes for a settled epoch; one that another
/// validator's approval already executed is fine.
async fn approve(chain: &Registry, me: ValidatorId, settled: &Settled) {
    let epoch = settled.outcome.epoch;
    for approval in settled.outcome.approvals(me) {
        let sent = match approval {
            SlashApproval::Relay { relay, amount } => {
                let Some(operator) = settled.operators.get(&relay) else {
                    continue;
                };
                chain
                    .approve_relay_slash(epoch, &relay, *operator, U256::from(amount))
                    .await
            }
            SlashApproval::Validator { validator, amount } => {
                let Some(account) = settled.reveals.accounts.get(&validator) else {
                    continue;
                };
                chain
                    .approve_validator_slash(epoch, &validator, *account, U256::from(amount))
                    .await
            }
        };
        match sent {
            Ok(approved) => info!(
                epoch,
                ?approval,
                executed = approved.executed.is_some(),
                "slash approved"
            ),
            Err(OperatorError::Refused(
                Refusal::AlreadyApproved | Refusal::SlashAlreadyExecuted(_),
            )) => debug!(epoch, ?approval, "slash already approved or executed"),
            Err(e) => warn!(epoch, ?approval, error = %e, kind = %e.kind(), "slash not approved"),
        }
    }
}
