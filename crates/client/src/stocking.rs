//! The account's work that needs the paths: paying each browsing path's
//! egress as it is built ([`Payments`], a [`PathListener`]), and keeping the
//! wallet's pools stocked through refill paths of their own
//! ([`keep_stocked`]). Here the [`Account`] and the [`PathManager`] meet;
//! neither knows the other (see the [account module](crate::account) for
//! the rules).

use openrelay_types::error::{ErrorKind, HasKind};
use std::sync::Arc;
use std::time::Duration;

use crate::relay::Relay;
use openrelay_issuer_client::client::{IssuerClientError, Session};
use openrelay_tokens::TokenChallenge;
use openrelay_types::unix_now;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::account::{Account, AccountError, REFILL_MAX_TOKENS};
use crate::manager::{PathListener, PathManager, RefillPathError};
use crate::path::Path;
use crate::refill::{RefillPoll, RefillTimer};

/// How often the pools are checked.
const STOCK_CHECK: Duration = Duration::from_secs(2);

/// Pays the egress of every browsing path built, with the account's
/// tokens, for as long as the path lives.
#[derive(Debug)]
pub struct Payments(pub Arc<Account>);

impl PathListener for Payments {
    fn path_built(&self, path: &Path) -> Option<JoinHandle<()>> {
        Some(tokio::spawn(
            Arc::clone(&self.0).pay(path.requests(), path.egress.clone()),
        ))
    }
}

/// Why a refill did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefillError {
    /// No path for the refill (refills never go directly to the issuer).
    #[error("{0}; refills go only through the relays, never directly to the issuer")]
    Path(#[from] RefillPathError),
    /// The account's side failed.
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl HasKind for RefillError {
    fn kind(&self) -> ErrorKind {
        match self {
            RefillError::Path(e) => e.kind(),
            RefillError::Account(e) => e.kind(),
        }
    }
}

/// What one refill did.
#[derive(Debug)]
struct Refilled {
    added: usize,
    ingress: String,
    ingress_operator: crate::relay::Operator,
    egress: String,
}

/// The pools of `manager`'s relays below `low_water`, each with the
/// tokens that fill it to `batch`, at most [`REFILL_MAX_TOKENS`] in all.
fn wanted(account: &Account, manager: &PathManager) -> Vec<(TokenChallenge, usize)> {
    let live: Vec<Relay> = manager
        .live_relays()
        .into_iter()
        .flat_map(|(ingress, egress)| [ingress, egress])
        .collect();
    let pools = account.pools(&manager.relays(), &live);
    let counts = account.wallet().counts(&pools);
    let config = account.config();
    let mut budget = REFILL_MAX_TOKENS;
    pools
        .into_iter()
        .zip(counts)
        .filter(|(_, have)| *have < config.low_water)
        .map_while(|(pool, have)| {
            let count = config.batch.saturating_sub(have).min(budget);
            budget -= count;
            (count > 0).then_some((pool, count))
        })
        .collect()
}

/// One refill of `wanted` through a fresh path of its own, torn down
/// after it.
async fn refill(
    account: &Account,
    manager: &PathManager,
    wanted: &[(TokenChallenge, usize)],
) -> Result<Refilled, RefillError> {
    let bearer = account
        .wallet()
        .session(unix_now())
        .ok_or(AccountError::NoSession)?;
    let path = manager.build_refill_path(account, &[]).await?;
    let (ingress, egress) = (path.ingress.clone(), path.egress.clone());
    let link = account.connect_issuer_through(path).await?;
    let fetched = account
        .fetch(&link.client, &Session::from_bearer(bearer), wanted)
        .await;
    link.close();
    match fetched {
        Ok(added) => Ok(Refilled {
            added,
            ingress: ingress.name,
            ingress_operator: ingress.operator,
            egress: egress.name,
        }),
        Err(AccountError::Issuer(IssuerClientError::NotLoggedIn)) => {
            // The issuer no longer knows the session (expired, restarted).
            account
                .wallet()
                .clear_session()
                .map_err(AccountError::from)?;
            Err(AccountError::NoSession.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Keeps `account`'s pools stocked until the task is aborted; see the
/// [account module](crate::account) for when refills happen.
pub async fn keep_stocked(account: Arc<Account>, manager: Arc<PathManager>) {
    let config = account.config();
    let mut timer = RefillTimer::new(
        Duration::from_secs(config.refill_delay_min_secs),
        Duration::from_secs(config.refill_delay_max_secs),
    );
    let mut rng = fastrand::Rng::new();
    let mut warned = false;
    loop {
        let now = tokio::time::Instant::now();
        account.enforce_listing();
        let wanted = wanted(&account, &manager);
        if !wanted.is_empty() {
            timer.low(now, &mut rng);
        }
        let wait = match timer.poll(now, manager.last_established(), &mut rng) {
            RefillPoll::Start if !wanted.is_empty() => {
                match refill(&account, &manager, &wanted).await {
                    Ok(done) => {
                        info!(
                            added = done.added,
                            balance = account.wallet().balance(),
                            ingress = %done.ingress,
                            ingress_operator = %done.ingress_operator,
                            egress = %done.egress,
                            "wallet topped up through a refill path"
                        );
                        warned = false;
                    }
                    Err(e) if !warned => {
                        warn!(error = %e, balance = account.wallet().balance(), "wallet not topped up");
                        warned = true;
                    }
                    Err(e) => debug!(error = %e, "wallet still not topped up"),
                }
                continue;
            }
            RefillPoll::WaitUntil(due) => due.min(now + STOCK_CHECK),
            RefillPoll::Start | RefillPoll::Idle => now + STOCK_CHECK,
        };
        tokio::select! {
            () = tokio::time::sleep_until(wait) => {}
            () = account.ran_dry() => timer.dry(tokio::time::Instant::now(), &mut rng),
        }
    }
}
