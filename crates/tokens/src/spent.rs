//! The double-spend store (RFC 9577 §2.2: "Origins SHOULD implement some form
//! of double-spend prevention that prevents a token with the same nonce from
//! being redeemed twice"), behind [`SpentTokens`]:
//!
//! - [`RedbSpentTokens`]: embedded, one file, the default for a single relay;
//! - `RedisSpentTokens` (feature `redis`): one Redis server shared by a fleet
//!   of relays, so a token spent at one is refused at all (`SET key 1 NX EXAT`).
//!
//! Every entry carries the expiry of its token's key epoch and is forgotten
//! after it (by then the key's tokens are refused anyway), so the store holds
//! at most two issuance periods of tokens. No entry is kept longer than
//! [`MAX_ENTRY_SECS`] (see [`entry_expiry`]).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use redb::{Database, ReadableTable, Table, TableDefinition};

use crate::token::Token;

#[cfg(feature = "redis")]
mod redis_store;
#[cfg(feature = "redis")]
pub use redis_store::{REDIS_RESPONSE_TIMEOUT, RedisSpentTokens, redis_host};

/// Opens the double-spend set a relay's config names: the Redis server at
/// `redis_url` if given (shared by a fleet; connected on first use), else the
/// embedded set in the file `path`.
#[cfg(feature = "redis")]
pub fn open_store(
    redis_url: Option<&str>,
    path: &std::path::Path,
) -> Result<std::sync::Arc<dyn SpentTokens>, SpentError> {
    Ok(match redis_url {
        Some(url) => std::sync::Arc::new(RedisSpentTokens::new(url)?),
        None => std::sync::Arc::new(RedbSpentTokens::open(path)?),
    })
}

/// A token's identity in the store: SHA-256 of its `AuthenticatorInput`
/// (token type, nonce, challenge digest, key id; RFC 9577 §2.2.2). Keyed on
/// what was signed, not on the signature, so no re-encoding of the
/// authenticator makes a second spend; hashed, so the store holds no nonce.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpendKey(pub [u8; 32]);

impl std::fmt::Debug for SpendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpendKey(<redacted>)")
    }
}

impl SpendKey {
    /// The key of `token`.
    pub fn of(token: &Token) -> Self {
        SpendKey(crate::sha256(&token.authenticator_input()))
    }
}

/// Why the store could not answer; a relay refuses the token then (fail
/// closed), since it cannot tell whether it was spent.
#[derive(Debug, thiserror::Error)]
#[error("double-spend store: {0}")]
pub struct SpentError(String);

impl SpentError {
    fn from_display(error: impl std::fmt::Display) -> Self {
        SpentError(error.to_string())
    }
}

/// The longest any entry is kept: a verified token's key expires at most
/// [`MAX_KEY_LIFETIME_SECS`](crate::keys::MAX_KEY_LIFETIME_SECS) after its
/// `not_before`, which is at most the clock skew ahead of now, and the
/// verifier adds the skew once more.
pub const MAX_ENTRY_SECS: u64 =
    crate::keys::MAX_KEY_LIFETIME_SECS + 2 * crate::verify::CLOCK_SKEW_SECS;

/// When an entry for a token expiring at `expires` may be forgotten: then,
/// but never later than [`MAX_ENTRY_SECS`] from `now`. No token that verifies
/// expires later, so the bound loses nothing; it keeps a bogus expiry (say
/// `u64::MAX`) from making an entry that is never pruned, or one Redis
/// refuses (`EXAT` out of range).
pub fn entry_expiry(expires: u64, now: u64) -> u64 {
    expires.min(now.saturating_add(MAX_ENTRY_SECS))
}

/// A boxed future, so stores can be chosen at run time (`Arc<dyn SpentTokens>`).
pub type SpendFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, SpentError>> + Send + 'a>>;

/// The set of spent tokens.
pub trait SpentTokens: Send + Sync + std::fmt::Debug {
    /// Marks `key` spent until `expires` (Unix seconds), atomically: true if
    /// it was not spent before (the token may be accepted), false if it was.
    fn spend(&self, key: SpendKey, expires: u64, now: u64) -> SpendFuture<'_>;
}

const SPENT: TableDefinition<&[u8; 32], u64> = TableDefinition::new("spent");
const BY_EXPIRY: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("spent_by_expiry");
/// Expired entries removed per spend, so pruning keeps up with inserts
/// without ever making one spend slow.
const PRUNE_PER_SPEND: usize = 4;

/// The embedded store: a redb file. Each spend is one durable write
/// transaction (on a blocking thread), so a restart forgets nothing.
#[derive(Debug, Clone)]
pub struct RedbSpentTokens {
    db: Arc<Database>,
}

/// Removes up to `limit` entries expired at `now`, oldest first; returns how many.
fn remove_expired(
    spent: &mut Table<'_, &'static [u8; 32], u64>,
    by_expiry: &mut Table<'_, (u64, &'static [u8; 32]), ()>,
    now: u64,
    limit: usize,
) -> Result<usize, redb::Error> {
    let expired: Vec<(u64, [u8; 32])> = by_expiry
        .range(..(now, &[0xffu8; 32]))?
        .take(limit)
        .map(|entry| entry.map(|(k, _)| (k.value().0, *k.value().1)))
        .collect::<Result<_, _>>()?;
    for (at, old) in &expired {
        by_expiry.remove((*at, old))?;
        spent.remove(old)?;
    }
    Ok(expired.len())
}

impl RedbSpentTokens {
    /// Opens (or creates) the store at `path`, and its directory.
    pub fn open(path: &Path) -> Result<Self, SpentError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(SpentError::from_display)?;
        }
        let db = Database::create(path).map_err(SpentError::from_display)?;
        let txn = db.begin_write().map_err(SpentError::from_display)?;
        {
            txn.open_table(SPENT).map_err(SpentError::from_display)?;
            txn.open_table(BY_EXPIRY)
                .map_err(SpentError::from_display)?;
        }
        txn.commit().map_err(SpentError::from_display)?;
        Ok(RedbSpentTokens { db: Arc::new(db) })
    }

    /// Number of entries held (for tests and metrics).
    pub fn len(&self) -> Result<u64, SpentError> {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let txn = self.db.begin_read().map_err(SpentError::from_display)?;
        let table = txn.open_table(SPENT).map_err(SpentError::from_display)?;
        table.len().map_err(SpentError::from_display)
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> Result<bool, SpentError> {
        Ok(self.len()? == 0)
    }

    fn spend_blocking(&self, key: &SpendKey, expires: u64, now: u64) -> Result<bool, redb::Error> {
        let expires = entry_expiry(expires, now);
        let txn = self.db.begin_write()?;
        let fresh = {
            let mut spent = txn.open_table(SPENT)?;
            let mut by_expiry = txn.open_table(BY_EXPIRY)?;
            remove_expired(&mut spent, &mut by_expiry, now, PRUNE_PER_SPEND)?;
            let previous = spent.get(&key.0)?.map(|v| v.value());
            match previous {
                Some(until) if until > now => false,
                stale => {
                    if let Some(until) = stale {
                        by_expiry.remove((until, &key.0))?;
                    }
                    spent.insert(&key.0, expires)?;
                    by_expiry.insert((expires, &key.0), ())?;
                    true
                }
            }
        };
        if fresh {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(fresh)
    }

    /// Removes every entry expired at `now`; returns how many.
    pub fn prune(&self, now: u64) -> Result<usize, SpentError> {
        let run = || -> Result<usize, redb::Error> {
            let txn = self.db.begin_write()?;
            let removed = {
                let mut spent = txn.open_table(SPENT)?;
                let mut by_expiry = txn.open_table(BY_EXPIRY)?;
                remove_expired(&mut spent, &mut by_expiry, now, usize::MAX)?
            };
            txn.commit()?;
            Ok(removed)
        };
        run().map_err(SpentError::from_display)
    }
}

impl SpentTokens for RedbSpentTokens {
    fn spend(&self, key: SpendKey, expires: u64, now: u64) -> SpendFuture<'_> {
        let store = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.spend_blocking(&key, expires, now))
                .await
                .map_err(SpentError::from_display)?
                .map_err(SpentError::from_display)
        })
    }
}
