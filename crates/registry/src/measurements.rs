//! The record of settled measurement epochs that the registry and every
//! validator keep (issue 14, items 3 and 4): fed with each settled epoch's
//! [`EpochOutcome`] (the verdicts of `openrelay_measure`), it says for every
//! relay whether a chain-backed directory lists it and with which measured
//! bandwidth, keeps the latest [`Explanation`] of each relay for
//! `GET /v1/measurements`, and survives restarts (one durable value in the
//! process's redb store).
//!
//! **What a directory carries.** After epoch `e` settles, a relay the
//! verdicts found down is not listed; any other relay is listed with its
//! latest aggregate, the epoch of that aggregate and the end of that epoch
//! (`RelayMeasurement`), or without one if it was never measured.
//!
//! **Grace at an epoch's settlement.** The registry and the validators
//! record epoch `e` at slightly different moments. A validator that has
//! recorded `e` therefore also accepts a proposal built wholly from the
//! standings after `e − 1` (a registry one epoch behind it); a proposal
//! matching neither is refused, and one carrying a measurement of an epoch
//! this validator has not recorded yet is refused as transient
//! ([`Mismatch::is_ahead`]): the registry proposes again, and the validator
//! signs once it has caught up. The proposal must match one view as a whole,
//! so a registry cannot pick, relay by relay, the more flattering of two
//! epochs; and the lag is at most one epoch, so a relay found down stays
//! listed at most one epoch longer at a lagging registry.

use std::collections::BTreeMap;

use openrelay_directory::{ChainSection, RelayId, RelayMeasurement};
use openrelay_measure::{EpochOutcome, Explanation, Liveness, MeasureParams};
use serde::{Deserialize, Serialize};

use crate::{RegistryStore, StoreError};

/// The key of the record in the store's named values.
const RECORD_KEY: &str = "measurements";

/// A relay as a directory built from the record lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "standing")]
pub enum Standing {
    /// Down in its latest reported epoch: not listed.
    Down,
    /// Listed, with its latest measurement if it has one.
    Listed {
        /// The latest aggregate.
        measured: Option<Measured>,
    },
}

impl Standing {
    /// A relay the record knows nothing about: listed, never measured.
    const UNMEASURED: Standing = Standing::Listed { measured: None };
}

/// [`RelayMeasurement`] as the record stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measured {
    /// The aggregate, bits per second.
    pub bps: u64,
    /// The epoch it was measured in.
    pub epoch: u64,
    /// When that epoch ended, Unix seconds.
    pub at: u64,
}

impl From<Measured> for RelayMeasurement {
    fn from(m: Measured) -> Self {
        RelayMeasurement {
            measured_bps: m.bps,
            measured_epoch: m.epoch,
            measured_at: m.at,
        }
    }
}

/// The latest epoch recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEpoch {
    /// The epoch.
    pub epoch: u64,
    /// When it ended, Unix seconds.
    pub ended_at: u64,
}

/// Which standings a proposal was built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// After the latest recorded epoch.
    Latest,
    /// After the epoch before it (the grace of one epoch).
    Previous,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RecordState {
    latest: Option<RecordedEpoch>,
    latest_standings: BTreeMap<openrelay_measure::RelayId, Standing>,
    previous_standings: BTreeMap<openrelay_measure::RelayId, Standing>,
    explanations: BTreeMap<openrelay_measure::RelayId, Explanation>,
}

/// Why an epoch was not recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Epochs are recorded in increasing order, each once.
    #[error("measurement epoch {epoch} is not after the last recorded epoch {last}")]
    EpochNotAfter {
        /// The epoch given.
        epoch: u64,
        /// The last recorded.
        last: u64,
    },
    /// The store failed; the record is unchanged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The record could not be encoded; it is unchanged.
    #[error("measurement record: {0}")]
    Encode(#[from] serde_json::Error),
}

impl openrelay_types::HasKind for RecordError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        match self {
            RecordError::EpochNotAfter { .. } => openrelay_types::ErrorKind::BadInput,
            RecordError::Store(_) => openrelay_types::ErrorKind::Storage,
            RecordError::Encode(_) => openrelay_types::ErrorKind::Internal,
        }
    }
}

/// How a chain section's measurements differ from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// It lists a relay the record says is down.
    #[error("lists relay {relay}, which the settled measurements found down")]
    ListsDownRelay {
        /// The relay.
        relay: RelayId,
    },
    /// It gives a relay another measurement than the record.
    #[error(
        "gives relay {relay} the measurement {listed:?}, where the settled epochs give {recorded:?}"
    )]
    Differs {
        /// The relay.
        relay: RelayId,
        /// What the proposal says.
        listed: Option<RelayMeasurement>,
        /// What the record says (after its latest epoch).
        recorded: Option<RelayMeasurement>,
    },
}

impl Mismatch {
    /// Whether the mismatch may only mean that the proposer recorded an
    /// epoch this record has not yet (`latest`): the listed measurement is
    /// of a later epoch.
    pub fn is_ahead(&self, latest: Option<RecordedEpoch>) -> bool {
        match self {
            Mismatch::Differs {
                listed: Some(listed),
                ..
            } => latest.is_none_or(|l| listed.measured_epoch > l.epoch),
            _ => false,
        }
    }
}

/// The record (see the module documentation).
#[derive(Debug, Clone)]
pub struct MeasurementRecord {
    params: MeasureParams,
    state: RecordState,
}

fn measure_id(relay: &RelayId) -> openrelay_measure::RelayId {
    openrelay_measure::RelayId(*relay.as_bytes())
}

impl MeasurementRecord {
    /// An empty record (no epoch recorded), explained with `params`.
    pub fn new(params: MeasureParams) -> Self {
        MeasurementRecord {
            params,
            state: RecordState::default(),
        }
    }

    /// The record kept in `store` (empty if none), explained with `params`.
    /// A stored record that does not parse is started afresh with a
    /// warning: the next settled epoch fills it again.
    pub fn load(store: &impl RegistryStore, params: MeasureParams) -> Result<Self, StoreError> {
        let state = match store.meta(RECORD_KEY)? {
            None => RecordState::default(),
            Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "stored measurement record unreadable; starting empty");
                RecordState::default()
            }),
        };
        Ok(MeasurementRecord { params, state })
    }

    /// The parameters the explanations were made with.
    pub fn params(&self) -> &MeasureParams {
        &self.params
    }

    /// The latest recorded epoch.
    pub fn latest(&self) -> Option<RecordedEpoch> {
        self.state.latest
    }

    /// Records settled epoch `outcome.epoch`, which ended at
    /// `epoch_end_unix`, durably in `store` before it takes effect here.
    /// Relays the outcome does not explain keep their standing.
    pub fn record_epoch(
        &mut self,
        store: &impl RegistryStore,
        outcome: &EpochOutcome,
        epoch_end_unix: u64,
    ) -> Result<(), RecordError> {
        if let Some(last) = self.state.latest.filter(|l| outcome.epoch <= l.epoch) {
            return Err(RecordError::EpochNotAfter {
                epoch: outcome.epoch,
                last: last.epoch,
            });
        }
        let mut next = self.state.clone();
        next.previous_standings = next.latest_standings.clone();
        for (relay, explanation) in &outcome.explanations {
            let earlier = next.latest_standings.get(relay).copied();
            let standing = match explanation.liveness {
                Liveness::Down => Standing::Down,
                Liveness::Unmeasured => Standing::UNMEASURED,
                Liveness::Up => Standing::Listed {
                    measured: explanation.measured.map(|m| Measured {
                        bps: m.bps,
                        epoch: m.epoch,
                        at: self.epoch_end(m.epoch, outcome.epoch, epoch_end_unix, earlier),
                    }),
                },
            };
            next.latest_standings.insert(*relay, standing);
            next.explanations.insert(*relay, explanation.clone());
        }
        next.latest = Some(RecordedEpoch {
            epoch: outcome.epoch,
            ended_at: epoch_end_unix,
        });
        let bytes = serde_json::to_vec(&next)?;
        store.put_meta(RECORD_KEY, &bytes)?;
        self.state = next;
        Ok(())
    }

    /// When `measured_epoch` ended: `epoch_end_unix` for the epoch being
    /// recorded, else the time already recorded for it, else counted back
    /// in whole epochs (a record started after that epoch).
    fn epoch_end(
        &self,
        measured_epoch: u64,
        epoch: u64,
        epoch_end_unix: u64,
        earlier: Option<Standing>,
    ) -> u64 {
        if measured_epoch == epoch {
            return epoch_end_unix;
        }
        if let Some(Standing::Listed {
            measured: Some(m), ..
        }) = earlier
            && m.epoch == measured_epoch
        {
            return m.at;
        }
        epoch_end_unix.saturating_sub(
            epoch
                .saturating_sub(measured_epoch)
                .saturating_mul(u64::from(self.params.epoch_seconds)),
        )
    }

    fn standings(&self, view: View) -> &BTreeMap<openrelay_measure::RelayId, Standing> {
        match view {
            View::Latest => &self.state.latest_standings,
            View::Previous => &self.state.previous_standings,
        }
    }

    /// `relay`'s standing in `view`.
    pub fn standing(&self, view: View, relay: &RelayId) -> Standing {
        self.standings(view)
            .get(&measure_id(relay))
            .copied()
            .unwrap_or(Standing::UNMEASURED)
    }

    /// Whether the latest recorded epoch left `relay` down.
    pub fn is_down(&self, relay: &RelayId) -> bool {
        self.standing(View::Latest, relay) == Standing::Down
    }

    /// `section` with every relay's latest measurement from the record (the
    /// registry's proposals).
    pub fn annotate(&self, section: &mut ChainSection) {
        for listed in &mut section.relays {
            listed.measured = match self.standing(View::Latest, &listed.relay) {
                Standing::Listed { measured } => measured.map(RelayMeasurement::from),
                Standing::Down => None,
            };
        }
    }

    /// Which view `section` was built from: the latest, or (the grace of
    /// one epoch) the one before it; otherwise how it differs from the
    /// latest.
    pub fn check(&self, section: &ChainSection) -> Result<View, Mismatch> {
        let against = |view| {
            section
                .relays
                .iter()
                .try_for_each(|listed| match self.standing(view, &listed.relay) {
                    Standing::Down => Err(Mismatch::ListsDownRelay {
                        relay: listed.relay,
                    }),
                    Standing::Listed { measured } => {
                        let recorded = measured.map(RelayMeasurement::from);
                        if recorded == listed.measured {
                            Ok(())
                        } else {
                            Err(Mismatch::Differs {
                                relay: listed.relay,
                                listed: listed.measured,
                                recorded,
                            })
                        }
                    }
                })
        };
        match against(View::Latest) {
            Ok(()) => Ok(View::Latest),
            Err(latest) if self.state.latest.is_some() => against(View::Previous)
                .map(|()| View::Previous)
                .map_err(|_| latest),
            Err(latest) => Err(latest),
        }
    }

    /// The latest explanations, by relay, of the relays `include` accepts.
    pub fn explanations(
        &self,
        include: impl Fn(&openrelay_measure::RelayId) -> bool,
    ) -> impl Iterator<Item = &Explanation> {
        self.state
            .explanations
            .iter()
            .filter(move |(relay, _)| include(relay))
            .map(|(_, e)| e)
    }
}
