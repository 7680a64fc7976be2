//! Settling measurement epochs from the chain (issue 14; docs/measurement.md,
//! "Epochs"): once an epoch's reveal window has closed and its settlement
//! block is confirmed, the registry and every validator read the epoch's
//! reveals, the validator set's weights and the relays' adverts at that
//! block ([`openrelay_chain::operator::Registry::epoch_reveals`]), run the
//! verdicts ([`MeasureState::apply_epoch`]) and record the outcome
//! ([`crate::measurements::MeasurementRecord`]). Everyone reads the same
//! block and runs the same integer arithmetic, so everyone gets the same
//! outcome: the directory the registry proposes is the one validators
//! expect, and the slashes validators approve name the same amounts.
//!
//! The verdict state (failing counts, marks) is kept in the process's
//! store after every epoch, so a restart neither forgets a relay's failing
//! epochs nor approves different slashes than the others.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use openrelay_chain::measure::{ChainRelay, EpochReadError, EpochReveals, KnownRegistrations};
use openrelay_chain::operator::{OperatorError, Registry};
use openrelay_config::chain::{ChainConfig, VerdictProfile};
use openrelay_measure::{
    ApplyError, Epoch, EpochOutcome, EpochTiming, MeasureParams, MeasureState, RelayAdvert,
    RelayId, SnapshotError,
};

use openrelay_types::{HasKind as _, unix_now};
use tracing::{debug, info, warn};

use crate::measurements::RecordError;
use crate::{RedbStore, Registry as RelayStore, RegistryStore, StoreError};

/// The key of the verdict state in the store's named values.
const STATE_KEY: &str = "measure_state";

/// Seconds after an epoch's reveal window closes before it is settled: the
/// chain's blocks must pass the deadline and be confirmed.
const SETTLE_DELAY_SECS: u64 = 2;

/// How often a settler looks for an epoch to settle, and how long it waits
/// after a failure before trying again.
const SETTLE_POLL: Duration = Duration::from_secs(2);

/// The verdict parameters of `profile`.
pub fn verdict_params(profile: VerdictProfile) -> MeasureParams {
    match profile {
        VerdictProfile::Production => MeasureParams::default(),
        VerdictProfile::Devnet => MeasureParams::devnet(),
    }
}

/// Why an epoch could not be settled (it is tried again later; the state
/// is unchanged unless said otherwise).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettleError {
    /// The chain could not be read.
    #[error(transparent)]
    Chain(#[from] OperatorError),
    /// The epoch's reveals could not be read.
    #[error(transparent)]
    Read(#[from] EpochReadError),
    /// The settlement block is not confirmed yet.
    #[error(
        "epoch {epoch}'s settlement block {block} has {confirmations} confirmation(s), {needed} needed"
    )]
    Unconfirmed {
        /// The epoch.
        epoch: Epoch,
        /// Its settlement block.
        block: u64,
        /// Confirmations so far.
        confirmations: u64,
        /// Confirmations needed (`[chain] confirmations`).
        needed: u64,
    },
    /// The verdicts refused the epoch (a broken node's data).
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The store failed: the epoch is settled in memory but not kept.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored verdict state does not parse.
    #[error(transparent)]
    Restore(#[from] SnapshotError),
}

impl openrelay_types::HasKind for SettleError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        use openrelay_types::ErrorKind;
        match self {
            SettleError::Chain(e) => e.kind(),
            SettleError::Read(e) => e.kind(),
            SettleError::Unconfirmed { .. } => ErrorKind::Refused,
            SettleError::Apply(_) => ErrorKind::PeerMisbehaved,
            SettleError::Store(_) | SettleError::Restore(_) => ErrorKind::Storage,
        }
    }
}

/// One settled epoch: the verdicts and what the chain said.
#[derive(Debug)]
pub struct Settled {
    /// The verdicts.
    pub outcome: EpochOutcome,
    /// When the epoch ended, Unix seconds (what directories date the
    /// measurements with).
    pub ended_at: u64,
    /// Each judged relay's operator account: the target of its slash.
    pub operators: BTreeMap<RelayId, Address>,
    /// The reveals, weights and adverts read from the chain.
    pub reveals: EpochReveals,
}

/// Settles epochs in order (see the module documentation).
#[derive(Debug)]
pub struct Settler {
    chain: Registry,
    from_block: u64,
    /// The relays' registrations read so far (each settlement reads only
    /// the blocks since the last).
    registrations: KnownRegistrations,
    confirmations: u64,
    timing: EpochTiming,
    state: MeasureState,
}

impl Settler {
    /// A settler reading `chain` (events from `from_block`, settlement
    /// blocks under `confirmations`), with the verdict state kept in
    /// `store` (fresh if there is none).
    pub async fn new(
        chain: Registry,
        from_block: u64,
        confirmations: u64,
        params: MeasureParams,
        store: &impl RegistryStore,
    ) -> Result<Settler, SettleError> {
        let timing = chain.measure_timing().await?;
        let state = match store.meta(STATE_KEY)? {
            Some(bytes) => MeasureState::restore(params, &bytes)?,
            None => MeasureState::new(params),
        };
        Ok(Settler {
            chain,
            from_block,
            registrations: KnownRegistrations::default(),
            confirmations,
            timing,
            state,
        })
    }

    /// The contract's clock.
    pub fn timing(&self) -> &EpochTiming {
        &self.timing
    }

    /// The verdict parameters.
    pub fn params(&self) -> &MeasureParams {
        self.state.params()
    }

    /// The chain connection (validators approve slashes through it).
    pub fn chain(&self) -> &Registry {
        &self.chain
    }

    /// The next epoch to settle at `now` (Unix seconds), if its reveal
    /// window has closed. A fresh state starts a mark window before the
    /// latest settleable epoch: older epochs could no longer change a
    /// verdict or a mark.
    pub fn next_due(&self, now: u64) -> Option<Epoch> {
        let latest = self.timing.settled_by(now, SETTLE_DELAY_SECS)?;
        let next = match self.state.last_epoch() {
            Some(last) => last.checked_add(1)?,
            None => latest.saturating_sub(self.state.params().mark_window_epochs),
        };
        (next <= latest).then_some(next)
    }

    /// Settles `epoch` (the one [`Settler::next_due`] names): reads it,
    /// judges it, keeps the new state in `store`. `account_of` names the
    /// operator account a relay's signed profile binds it to, for relay
    /// keys several operators registered on chain (the others' claims do
    /// not count).
    pub async fn settle(
        &mut self,
        epoch: Epoch,
        store: &impl RegistryStore,
        account_of: impl Fn(&RelayId) -> Option<[u8; 20]>,
    ) -> Result<Settled, SettleError> {
        let reveals = self
            .chain
            .epoch_reveals(epoch, Some(self.from_block), &mut self.registrations)
            .await?;
        let head = self.chain.head_block().await?;
        let confirmations = head.saturating_sub(reveals.settlement_block);
        if confirmations < self.confirmations {
            return Err(SettleError::Unconfirmed {
                epoch,
                block: reveals.settlement_block,
                confirmations,
                needed: self.confirmations,
            });
        }
        let judged = judged_relays(&reveals, account_of);
        let adverts: BTreeMap<RelayId, RelayAdvert> =
            judged.iter().map(|(id, r)| (*id, r.advert)).collect();
        let outcome =
            self.state
                .apply_epoch(epoch, &reveals.validators, &reveals.verified(), &adverts)?;
        store.put_meta(STATE_KEY, &self.state.snapshot())?;
        Ok(Settled {
            outcome,
            ended_at: self.timing.end(epoch),
            operators: judged.iter().map(|(id, r)| (*id, r.operator)).collect(),
            reveals,
        })
    }
}

/// Settles every epoch of the chain of `config` as it becomes due, for as
/// long as it runs, and records each with `record` (the registry's or a
/// validator's [`crate::measurements::MeasurementRecord`]). It only reads
/// the chain. Failures are logged and retried: the chain may be
/// unreachable for a while, a settlement block not yet confirmed.
pub async fn run_recording(
    config: ChainConfig,
    relays: Arc<RelayStore<RedbStore>>,
    record: impl Fn(&EpochOutcome, u64) -> Result<(), RecordError>,
) {
    // Reading signs nothing: any key will do.
    let mut settler = connect_retrying(&config, PrivateKeySigner::random(), &relays).await;
    loop {
        match settle_due(&mut settler, &relays).await {
            Some(settled) => log_recorded(
                settled.outcome.epoch,
                record(&settled.outcome, settled.ended_at),
            ),
            None => tokio::time::sleep(SETTLE_POLL).await,
        }
    }
}

/// Logs what became of recording settled `epoch`; one recorded before (a
/// restart between recording and keeping the verdict state) is fine.
pub(crate) fn log_recorded(epoch: Epoch, recorded: Result<(), RecordError>) {
    match recorded {
        Ok(()) | Err(RecordError::EpochNotAfter { .. }) => {}
        Err(e) => warn!(epoch, error = %e, "measurement epoch not recorded"),
    }
}

/// A [`Settler`] on the chain of `config`, connecting until it can.
pub async fn connect_retrying(
    config: &ChainConfig,
    signer: PrivateKeySigner,
    relays: &RelayStore<RedbStore>,
) -> Settler {
    let settler = loop {
        match connect(config, signer.clone(), relays.store()).await {
            Ok(settler) => break settler,
            Err(e) => {
                warn!(error = %e, kind = %e.kind(), "measurement epochs: cannot read the chain yet; retrying");
                tokio::time::sleep(SETTLE_POLL * 5).await;
            }
        }
    };
    info!(
        epoch_seconds = settler.timing().epoch_seconds(),
        "settling measurement epochs"
    );
    settler
}

/// Settles the next due epoch, if there is one and it can be settled now
/// (a failure is logged: the epoch is tried again at the next call).
/// Contested relay keys are judged under the account their operator's
/// signed profile held in `relays` names.
pub async fn settle_due(settler: &mut Settler, relays: &RelayStore<RedbStore>) -> Option<Settled> {
    let epoch = settler.next_due(unix_now())?;
    let account_of = |relay: &RelayId| {
        let id = openrelay_directory::RelayId::from_bytes(relay.0).ok()?;
        relays
            .descriptor(&id)
            .and_then(|(_, profile)| profile?.chain_account())
    };
    match settler.settle(epoch, relays.store(), account_of).await {
        Ok(settled) => {
            info!(
                epoch,
                reveals = settled.reveals.reveals.len(),
                refused = settled.reveals.refused.len(),
                relays = settled.outcome.explanations.len(),
                relay_slashes = settled.outcome.relay_slashes.len(),
                validator_slashes = settled.outcome.validator_slashes.len(),
                "measurement epoch settled"
            );
            for refused in &settled.reveals.refused {
                warn!(epoch, account = ?refused.account, reason = %refused.reason, "a revealed report does not count");
            }
            Some(settled)
        }
        Err(
            SettleError::Unconfirmed { .. }
            | SettleError::Read(EpochReadError::RevealWindowOpen { .. }),
        ) => {
            debug!(epoch, "measurement epoch not settleable yet");
            None
        }
        Err(e) => {
            warn!(epoch, error = %e, kind = %e.kind(), "measurement epoch not settled; retrying");
            None
        }
    }
}

async fn connect(
    config: &ChainConfig,
    signer: PrivateKeySigner,
    store: &RedbStore,
) -> Result<Settler, SettleError> {
    let chain = Registry::connect(
        &config.rpc,
        config.chain_id,
        Address::from(config.contract.0),
        signer,
        openrelay_chain::operator::DEFAULT_RPC_TIMEOUT,
    )
    .await?;
    Settler::new(
        chain,
        config.deployed_at_block,
        config.confirmations,
        verdict_params(config.verdicts),
        store,
    )
    .await
}

/// The relays an epoch judges: every relay key one operator registered,
/// and each key several registered under the account its signed profile
/// names (`account_of`), if that account is among them.
fn judged_relays(
    reveals: &EpochReveals,
    account_of: impl Fn(&RelayId) -> Option<[u8; 20]>,
) -> BTreeMap<RelayId, ChainRelay> {
    let mut judged = reveals.relays.clone();
    for (id, claims) in &reveals.contested_relays {
        let Some(account) = account_of(id).map(Address::from) else {
            continue;
        };
        if let Some(claim) = claims.iter().find(|c| c.operator == account) {
            judged.insert(*id, claim.clone());
        }
    }
    judged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relay(operator: u8, bps: u64) -> ChainRelay {
        ChainRelay {
            operator: Address::repeat_byte(operator),
            covered: true,
            advert: RelayAdvert {
                advertised_bps: bps,
                operator_stake: 1_000,
                operator_advertised_bps: u128::from(bps),
            },
        }
    }

    /// A squatter registering a victim's relay key under its own account
    /// neither removes the relay from the verdicts nor becomes the one
    /// slashed: the signed profile's account decides.
    #[test]
    fn contested_relay_keys_are_judged_under_the_profiles_account() {
        let (a, b) = (RelayId([1; 32]), RelayId([2; 32]));
        let reveals = EpochReveals {
            epoch: 3,
            reveal_closed_at: 0,
            settlement_block: 9,
            validators: BTreeMap::new(),
            accounts: BTreeMap::new(),
            reveals: Vec::new(),
            refused: Vec::new(),
            relays: BTreeMap::from([(a, relay(1, 100))]),
            contested_relays: BTreeMap::from([(b, vec![relay(7, 1), relay(2, 200)])]),
        };
        let judged = judged_relays(&reveals, |id| (*id == b).then_some([2; 20]));
        assert_eq!(judged.len(), 2);
        assert_eq!(judged[&b].operator, Address::repeat_byte(2));
        assert_eq!(judged[&b].advert.advertised_bps, 200);
        // No profile binding: the contested key is not judged at all.
        assert_eq!(judged_relays(&reveals, |_| None).len(), 1);
    }
}
