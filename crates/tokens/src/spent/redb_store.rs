//! The embedded double-spend store: a redb file (feature `redb`).

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, Table, TableDefinition};

use super::{SpendFuture, SpendKey, SpentError, SpentTokens, entry_expiry};

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
            std::fs::create_dir_all(dir).map_err(SpentError::Directory)?;
        }
        let db = Database::create(path).map_err(SpentError::redb)?;
        let txn = db.begin_write().map_err(SpentError::redb)?;
        {
            txn.open_table(SPENT).map_err(SpentError::redb)?;
            txn.open_table(BY_EXPIRY).map_err(SpentError::redb)?;
        }
        txn.commit().map_err(SpentError::redb)?;
        Ok(RedbSpentTokens { db: Arc::new(db) })
    }

    /// Number of entries held (for tests and metrics).
    pub fn len(&self) -> Result<u64, SpentError> {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let txn = self.db.begin_read().map_err(SpentError::redb)?;
        let table = txn.open_table(SPENT).map_err(SpentError::redb)?;
        table.len().map_err(SpentError::redb)
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
        run().map_err(SpentError::Redb)
    }
}

impl SpentTokens for RedbSpentTokens {
    fn spend(&self, key: SpendKey, expires: u64, now: u64) -> SpendFuture<'_> {
        let store = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.spend_blocking(&key, expires, now))
                .await
                .map_err(SpentError::Task)?
                .map_err(SpentError::Redb)
        })
    }
}
