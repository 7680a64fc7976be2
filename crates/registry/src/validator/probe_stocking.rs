//! Stocking a measuring validator's prober with tokens for an epoch's plan
//! (docs/measurement.md, "Tokens on probes"): when the epoch's tests are
//! planned, never right before one (the issuer would learn when a relay is
//! tested: payment tokens name the egress), for every planned test and any
//! partner hop it may get ([`openrelay_probe::tokens::tokens_for_plan`]),
//! minus what the wallet holds. An issuer that is not up yet (the devnet
//! starts everything at once) or refuses for a while is asked again with
//! backoff until the epoch's tests are over; tests that find no token
//! meanwhile are not reported (`ProbeFailure::NoToken`), never reported
//! down.

// Validators measure every listed relay, attested or not.
use openrelay_client::attestation::AttestationVerdict::NotChecked;
use std::sync::Arc;
use std::time::Duration;

use openrelay_client::relay::Relay;
use openrelay_directory::VerifiedDirectory;
use openrelay_directory::weight::clipped_bandwidth;
use openrelay_measure::RelayId;
use openrelay_probe::Prober;
use openrelay_probe::tokens::{PlannedTest, ProbeAccount, partner_candidates, tokens_for_plan};
use openrelay_transport::backoff::Backoff;
use openrelay_types::{HasKind as _, KeyPin, unix_now_millis};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// The first wait before asking the issuer again, and the longest.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_CAP: Duration = Duration::from_secs(30);

/// The epoch's stocking task (one at a time: a new plan replaces it).
#[derive(Debug, Default)]
pub(crate) struct ProbeStocking {
    task: Option<JoinHandle<()>>,
}

impl Drop for ProbeStocking {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl ProbeStocking {
    /// Starts fetching the tokens `schedule`'s tests need, retrying until
    /// `until_ms` (the end of the epoch's tests).
    pub(crate) fn start(
        &mut self,
        tokens: &Arc<ProbeAccount>,
        prober: &Prober,
        directory: &VerifiedDirectory,
        schedule: &[(u64, RelayId)],
        trusted: &[KeyPin],
        until_ms: u64,
    ) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let tests = planned_tests(directory, schedule, trusted);
        let need = tokens_for_plan(tokens.account(), &tests, prober.settings().test_time());
        let tokens = Arc::clone(tokens);
        self.task = Some(tokio::spawn(async move {
            let wanted: usize = need.iter().map(|(_, n)| n).sum();
            let mut backoff = Backoff::seeded_now(RETRY_FIRST, RETRY_CAP);
            let mut warned = false;
            loop {
                match tokens.stock(&need).await {
                    Ok(added) => {
                        info!(
                            tests = tests.len(),
                            wanted,
                            added,
                            balance = tokens.account().wallet().balance(),
                            "the prober's tokens for this epoch's tests are in the wallet"
                        );
                        return;
                    }
                    Err(e) if !warned => {
                        warn!(error = %e, kind = %e.kind(), "the prober's tokens not fetched yet; tests without one are not reported");
                        warned = true;
                    }
                    Err(e) => debug!(error = %e, "the prober's tokens still not fetched"),
                }
                let delay = backoff.next_delay();
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                if unix_now_millis().saturating_add(delay_ms) >= until_ms {
                    warn!("the prober's tokens were not fetched this epoch");
                    return;
                }
                tokio::time::sleep(delay).await;
            }
        }));
    }
}

/// The planned tests of `schedule` with their partner candidates, from
/// `directory`'s relays at their first endpoint (as the tests reach them):
/// those the directory weighs most, and the validator's own (`trusted`,
/// `[measure] partners`), which its partner choice prefers.
fn planned_tests(
    directory: &VerifiedDirectory,
    schedule: &[(u64, RelayId)],
    trusted: &[KeyPin],
) -> Vec<PlannedTest> {
    let records: Vec<(RelayId, Relay, u64)> = directory
        .relays()
        .filter_map(|r| {
            let addr = r.endpoints().first()?;
            Some((
                RelayId(r.id().to_bytes()),
                Relay::from_directory(&r, *addr, NotChecked),
                clipped_bandwidth(r.bandwidth_bps()),
            ))
        })
        .collect();
    let relays: Vec<Relay> = records.iter().map(|(_, r, _)| r.clone()).collect();
    schedule
        .iter()
        .filter_map(|(_, id)| {
            let (_, target, carried_bps) = records.iter().find(|(i, _, _)| i == id)?;
            let mut partners = partner_candidates(target, &relays);
            for (own, relay, _) in &records {
                let fits = relay.role != target.role && relay.compatible_with(target);
                if fits
                    && trusted.iter().any(|pin| pin.as_bytes() == &own.0)
                    && !partners.iter().any(|p| p.id == relay.id)
                {
                    partners.push(relay.clone());
                }
            }
            Some(PlannedTest {
                partners,
                target: target.clone(),
                carried_bps: *carried_bps,
            })
        })
        .collect()
}
