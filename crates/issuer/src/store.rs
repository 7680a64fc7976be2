//! The issuer's store (redb, `issuer.redb`): OPAQUE password files by
//! account name, each account's token count in the current period, the
//! payment tokens redeemed at settlement (until their key expires), and each
//! operator's ledger.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
/// Account → (period number, tokens issued in it).
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");
/// Redeemed payment token (spend key) → when its key expires.
const REDEEMED: TableDefinition<&[u8; 32], u64> = TableDefinition::new("redeemed");
/// Operator → (tokens redeemed, bytes reported, settlements).
const LEDGER: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("ledger");

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
            txn.open_table(REDEEMED).map_err(StoreError::from_redb)?;
            txn.open_table(LEDGER).map_err(StoreError::from_redb)?;
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

    /// Redeems the tokens with spend keys `keys` (each valid until its
    /// expiry) for `operator`, which reported `bytes` carried: in one
    /// transaction, the keys not redeemed before are recorded and credited.
    /// Returns, per key, whether it was redeemed now.
    pub(crate) fn redeem(
        &self,
        operator: &str,
        keys: &[([u8; 32], u64)],
        bytes: u64,
    ) -> Result<Vec<bool>, StoreError> {
        let run = || -> Result<Vec<bool>, redb::Error> {
            let txn = self.db.begin_write()?;
            let fresh = {
                let mut redeemed = txn.open_table(REDEEMED)?;
                let mut fresh = Vec::with_capacity(keys.len());
                for (key, expires) in keys {
                    let new = redeemed.get(key)?.is_none();
                    if new {
                        redeemed.insert(key, expires)?;
                    }
                    fresh.push(new);
                }
                let mut ledger = txn.open_table(LEDGER)?;
                let (tokens, reported, settlements) =
                    ledger.get(operator)?.map_or((0, 0, 0), |v| v.value());
                let count = fresh.iter().filter(|f| **f).count() as u64;
                ledger.insert(
                    operator,
                    (
                        tokens.saturating_add(count),
                        reported.saturating_add(bytes),
                        settlements.saturating_add(1),
                    ),
                )?;
                fresh
            };
            txn.commit()?;
            Ok(fresh)
        };
        run().map_err(StoreError::from_redb)
    }

    /// `operator`'s ledger: tokens redeemed, bytes reported, settlements.
    pub(crate) fn ledger(&self, operator: &str) -> Result<(u64, u64, u64), StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from_redb)?;
        let table = txn.open_table(LEDGER).map_err(StoreError::from_redb)?;
        Ok(table
            .get(operator)
            .map_err(StoreError::from_redb)?
            .map_or((0, 0, 0), |v| v.value()))
    }

    /// Forgets redeemed tokens whose key has expired (they can no longer be
    /// presented), so the set stays bounded.
    pub(crate) fn prune_redeemed(&self, now: u64) -> Result<(), StoreError> {
        let run = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            txn.open_table(REDEEMED)?
                .retain(|_, expires| expires > now)?;
            txn.commit()?;
            Ok(())
        };
        run().map_err(StoreError::from_redb)
    }
}
