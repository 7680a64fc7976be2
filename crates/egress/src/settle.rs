//! Settlement: the egress redeems the payment tokens it collected at the
//! issuer (`settle_at`), for its operator, every `settle_secs`.
//!
//! A round sends every unsettled token, in batches of at most
//! [`BATCH_TOKENS`] (~45 KiB; the issuer takes up to
//! `settlement::MAX_TOKENS`), on one connection, each signed by the relay's
//! key under the settlement prefix. A token leaves the ledger only when the
//! issuer has answered for it (redeemed, or refused with a reason), so a
//! crash or an unreachable issuer loses none. What each answer means:
//!
//! | answer | then |
//! |---|---|
//! | 200 receipt | the batch is settled; the next one goes |
//! | 413 (body too large) | the batch is halved and sent again ([`Batches`]) |
//! | another 4xx, 5xx, no answer | the round ends; the next waits twice as long (from `settle_secs`, at most an hour) |
//!
//! So nothing is retried unchanged forever: a refusal the egress cannot fix
//! (a relay the issuer does not list, say) is retried ever more slowly, and
//! tokens whose issuer key has expired (which no issuer redeems any more)
//! leave the ledger as refused before each round.

use std::sync::Arc;
use std::time::Duration;

use openrelay_config::ServiceEndpoint;
use openrelay_tokens::Token;
use openrelay_tokens::gate::TokenGate;
use openrelay_tokens::settlement::{self, Receipt, SETTLEMENT_SIGNATURE_PREFIX, Settlement};
use openrelay_tokens::verify::CLOCK_SKEW_SECS;
use openrelay_transport::backoff::Backoff;
use openrelay_transport::call::{CallError, PinnedConnection};
use openrelay_transport::identity::{Identity, IdentityError};
use openrelay_types::{ErrorKind, HasKind, unix_now};
use tracing::{info, warn};

use crate::ledger::{Ledger, LedgerError, Total};

/// Tokens per settlement request (~45 KiB).
pub const BATCH_TOKENS: usize = settlement::MAX_TOKENS / 4;
/// The longest wait between rounds after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Why a round of settlement stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettleError {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The relay key could not sign.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The issuer could not be reached.
    #[error("issuer at {addr}: {reason}")]
    Unreachable {
        /// The issuer.
        addr: std::net::SocketAddr,
        /// What went wrong.
        reason: CallError,
    },
    /// The operator name does not fit a settlement.
    #[error("the operator name is empty or longer than 255 bytes")]
    OperatorName,
    /// The issuer refused the batch.
    #[error("issuer answered {status}: {message}")]
    Refused {
        /// The status.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The receipt does not parse.
    #[error("issuer receipt: {0}")]
    Receipt(#[from] serde_json::Error),
    /// A blocking ledger task failed.
    #[error("ledger task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl HasKind for SettleError {
    fn kind(&self) -> ErrorKind {
        match self {
            SettleError::Ledger(e) => e.kind(),
            SettleError::Identity(_) | SettleError::OperatorName => ErrorKind::Config,
            SettleError::Unreachable { reason, .. } => reason.kind(),
            SettleError::Refused { .. } => ErrorKind::Refused,
            SettleError::Receipt(_) => ErrorKind::PeerMisbehaved,
            SettleError::Task(_) => ErrorKind::Internal,
        }
    }
}

/// The batch size through a round: halved on each 413, never below one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batches {
    size: usize,
}

impl Batches {
    /// Batches of `size` tokens to start with.
    pub fn new(size: usize) -> Self {
        Batches { size: size.max(1) }
    }

    /// Tokens in the next batch.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The issuer found a batch of `sent` tokens too large: true if a
    /// smaller one can be tried.
    pub fn too_large(&mut self, sent: usize) -> bool {
        if sent <= 1 {
            return false;
        }
        self.size = (sent / 2).max(1);
        true
    }
}

/// Where and how often collected tokens are settled.
#[derive(Debug)]
pub(crate) struct Settler {
    pub(crate) issuer: ServiceEndpoint,
    pub(crate) every: Duration,
    /// The relay's key, which signs settlements.
    pub(crate) identity: Identity,
    /// The operator credited (its key with a registry, else its name).
    pub(crate) operator: String,
}

/// Totals of one round.
#[derive(Debug, Default, Clone, Copy)]
struct Round {
    redeemed: usize,
    refused: usize,
    expired: usize,
}

/// Runs `work` on the ledger off the async runtime (each write is an fsync).
async fn on_ledger<T: Send + 'static>(
    ledger: &Arc<Ledger>,
    work: impl FnOnce(&Ledger) -> Result<T, LedgerError> + Send + 'static,
) -> Result<T, SettleError> {
    let ledger = Arc::clone(ledger);
    Ok(tokio::task::spawn_blocking(move || work(&ledger)).await??)
}

impl Settler {
    /// Settles forever (abort to stop): a round every `every`, backing off
    /// after failures.
    pub(crate) async fn run(&self, ledger: Arc<Ledger>, gate: Arc<TokenGate>) {
        let mut backoff = Backoff::seeded_now(self.every.saturating_mul(2), MAX_BACKOFF);
        let mut delay = self.every;
        loop {
            tokio::time::sleep(delay).await;
            delay = match self.round(&ledger, &gate).await {
                Ok(round) => {
                    if round.redeemed + round.refused + round.expired > 0 {
                        info!(
                            redeemed = round.redeemed,
                            refused = round.refused,
                            expired = round.expired,
                            "tokens settled"
                        );
                    }
                    backoff.reset();
                    self.every
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    warn!(
                        error = %e,
                        retry_secs = delay.as_secs(),
                        "settlement failed; tokens kept for the next try"
                    );
                    delay
                }
            };
        }
    }

    /// Drops the tokens whose issuer key has expired (counted as refused):
    /// no issuer redeems them any more. Needs the issuer's keys.
    async fn drop_expired(
        &self,
        ledger: &Arc<Ledger>,
        gate: &TokenGate,
    ) -> Result<usize, SettleError> {
        if !gate.has_keys() {
            return Ok(0);
        }
        let keys = gate.keys();
        let now = unix_now();
        on_ledger(ledger, move |ledger| {
            let expired: Vec<Token> = ledger
                .unsettled(usize::MAX)?
                .into_iter()
                .filter(|token| {
                    !keys.iter().any(|k| {
                        k.key.id() == token.token_key_id
                            && k.expires.saturating_add(CLOCK_SKEW_SECS) > now
                    })
                })
                .collect();
            if !expired.is_empty() {
                ledger.settled(&expired, 0, 0)?;
            }
            Ok(expired.len())
        })
        .await
    }

    async fn round(&self, ledger: &Arc<Ledger>, gate: &TokenGate) -> Result<Round, SettleError> {
        let mut round = Round {
            expired: self.drop_expired(ledger, gate).await?,
            ..Round::default()
        };
        if round.expired > 0 {
            warn!(
                tokens = round.expired,
                "tokens expired before they were settled"
            );
        }
        let mut batches = Batches::new(BATCH_TOKENS);
        let mut connection = None;
        loop {
            let size = batches.size();
            let tokens = on_ledger(ledger, move |l| l.unsettled(size)).await?;
            if tokens.is_empty() {
                return Ok(round);
            }
            let connection = match &mut connection {
                Some(connection) => connection,
                None => connection.insert(self.connect().await?),
            };
            let bytes = on_ledger(ledger, |l| {
                Ok(l.total(Total::BytesCarried)?
                    .saturating_sub(l.total(Total::BytesReported)?))
            })
            .await?;
            match self.send(connection, &tokens, bytes).await {
                Ok(receipt) => {
                    let redeemed = receipt.redeemed as u64;
                    // Bytes count at the issuer only with a redeemed token.
                    let reported = if redeemed > 0 { bytes } else { 0 };
                    round.redeemed += receipt.redeemed;
                    round.refused += receipt.refused.len();
                    on_ledger(ledger, move |l| l.settled(&tokens, redeemed, reported)).await?;
                }
                Err(SettleError::Refused { status: 413, .. })
                    if batches.too_large(tokens.len()) =>
                {
                    warn!(
                        tokens = tokens.len(),
                        next = batches.size(),
                        "settlement batch too large for the issuer; splitting it"
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn connect(&self) -> Result<PinnedConnection, SettleError> {
        let issuer = &self.issuer;
        PinnedConnection::open(issuer.addr, issuer.key)
            .await
            .map_err(|reason| SettleError::Unreachable {
                addr: issuer.addr,
                reason,
            })
    }

    /// One batch: `tokens` and the `bytes` carried not yet reported.
    async fn send(
        &self,
        connection: &PinnedConnection,
        tokens: &[Token],
        bytes: u64,
    ) -> Result<Receipt, SettleError> {
        let body = Settlement {
            relay: *self.identity.pin().as_bytes(),
            operator: self.operator.clone(),
            bytes_carried: bytes,
            tokens: tokens.to_vec(),
        }
        .encode()
        .ok_or(SettleError::OperatorName)?;
        let signature = self.identity.sign(&settlement::signed_message(
            SETTLEMENT_SIGNATURE_PREFIX,
            &body,
        ))?;
        let header = http::HeaderName::from_static(settlement::SIGNATURE_HEADER);
        let response = connection
            .request(
                http::Method::POST,
                settlement::SETTLE_PATH,
                &[(header, openrelay_tokens::b64::encode(&signature))],
                body,
            )
            .await
            .map_err(|reason| SettleError::Unreachable {
                addr: self.issuer.addr,
                reason,
            })?;
        if response.status != 200 {
            return Err(SettleError::Refused {
                status: response.status,
                message: String::from_utf8_lossy(&response.body).trim().to_owned(),
            });
        }
        Ok(serde_json::from_slice(&response.body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_too_large_batch_is_halved_down_to_one_token() {
        let mut batches = Batches::new(BATCH_TOKENS);
        assert_eq!(batches.size(), 128);
        assert!(batches.too_large(128));
        assert_eq!(batches.size(), 64);
        // The last batch of a round may be shorter than the size.
        assert!(batches.too_large(10));
        assert_eq!(batches.size(), 5);
        assert!(batches.too_large(2));
        assert_eq!(batches.size(), 1);
        assert!(!batches.too_large(1), "one token too large: give up");
    }
}
