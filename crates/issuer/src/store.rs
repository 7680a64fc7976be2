//! The issuer's store (redb, `issuer.redb`): OPAQUE password files by
//! account name, and each account's token count in the current period.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
/// Account → (period number, tokens issued in it).
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[error("issuer store: {0}")]
pub struct StoreError(String);

impl StoreError {
    fn from_redb(error: impl std::fmt::Display) -> Self {
        StoreError(error.to_string())
    }
}

/// Whether a token may be issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quota {
    /// Counted; go ahead.
    Granted,
    /// The account has had its tokens for this period.
    Exhausted,
}

#[derive(Debug)]
pub(crate) struct Store {
    db: Database,
}

impl Store {
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(StoreError::from_redb)?;
        let txn = db.begin_write().map_err(StoreError::from_redb)?;
        {
            txn.open_table(ACCOUNTS).map_err(StoreError::from_redb)?;
            txn.open_table(USAGE).map_err(StoreError::from_redb)?;
        }
        txn.commit().map_err(StoreError::from_redb)?;
        Ok(Store { db })
    }

    pub(crate) fn password_file(&self, username: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from_redb)?;
        let table = txn.open_table(ACCOUNTS).map_err(StoreError::from_redb)?;
        Ok(table
            .get(username)
            .map_err(StoreError::from_redb)?
            .map(|v| v.value().to_vec()))
    }

    /// Stores a new account; false if the name is taken.
    pub(crate) fn create_account(&self, username: &str, file: &[u8]) -> Result<bool, StoreError> {
        let run = || -> Result<bool, redb::Error> {
            let txn = self.db.begin_write()?;
            let created = {
                let mut table = txn.open_table(ACCOUNTS)?;
                if table.get(username)?.is_some() {
                    false
                } else {
                    table.insert(username, file)?;
                    true
                }
            };
            txn.commit()?;
            Ok(created)
        };
        run().map_err(StoreError::from_redb)
    }

    /// Counts one token for `username` in `period` if it stays within `limit`.
    pub(crate) fn take_token(
        &self,
        username: &str,
        period: u64,
        limit: u64,
    ) -> Result<Quota, StoreError> {
        let run = || -> Result<Quota, redb::Error> {
            let txn = self.db.begin_write()?;
            let quota = {
                let mut table = txn.open_table(USAGE)?;
                let used = match table.get(username)?.map(|v| v.value()) {
                    Some((p, used)) if p == period => used,
                    _ => 0,
                };
                if used >= limit {
                    Quota::Exhausted
                } else {
                    table.insert(username, (period, used + 1))?;
                    Quota::Granted
                }
            };
            txn.commit()?;
            Ok(quota)
        };
        run().map_err(StoreError::from_redb)
    }
}
