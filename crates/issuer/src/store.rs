//! The issuer's store (redb, `issuer.redb`): OPAQUE password files by
//! account name, each account's token count in the current period, the
//! registration puzzles used (until they expire), the payment tokens
//! redeemed at settlement (until their key expires), and each operator's
//! ledger. Every write is a durable transaction (an fsync): the service
//! calls the store only from blocking threads.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");
/// Account → (period number, tokens issued in it).
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");
/// Redeemed payment token (spend key) → when its key expires.
const REDEEMED: TableDefinition<&[u8; 32], u64> = TableDefinition::new("redeemed");
/// Operator → (tokens redeemed, bytes reported, settlements).
const LEDGER: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("ledger");
/// Registration puzzle used (its nonce) → when it expires.
const USED_PUZZLES: TableDefinition<&[u8; 16], u64> = TableDefinition::new("used_puzzles");

/// A store failure.
#[derive(Debug, thiserror::Error)]
#[error("issuer store: {0}")]
pub struct StoreError(#[from] redb::Error);

impl StoreError {
    fn from_redb(error: impl Into<redb::Error>) -> Self {
        StoreError(error.into())
    }
}

impl openrelay_types::HasKind for StoreError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        openrelay_types::ErrorKind::Storage
    }
}

/// What became of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registration {
    /// The account exists now.
    Created,
    /// The name is taken.
    NameTaken,
    /// The puzzle was used for another registration.
    PuzzleUsed,
}

/// A registration puzzle to spend with an account: its nonce and expiry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PuzzleSpend {
    pub(crate) nonce: [u8; 16],
    pub(crate) expires: u64,
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
            txn.open_table(USED_PUZZLES)
                .map_err(StoreError::from_redb)?;
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

    /// Stores a new account and spends its registration puzzle, in one
    /// transaction: neither happens without the other.
    pub(crate) fn create_account(
        &self,
        username: &str,
        file: &[u8],
        puzzle: PuzzleSpend,
    ) -> Result<Registration, StoreError> {
        let run = || -> Result<Registration, redb::Error> {
            let txn = self.db.begin_write()?;
            let outcome = {
                let mut accounts = txn.open_table(ACCOUNTS)?;
                let mut puzzles = txn.open_table(USED_PUZZLES)?;
                if puzzles.get(&puzzle.nonce)?.is_some() {
                    Registration::PuzzleUsed
                } else if accounts.get(username)?.is_some() {
                    Registration::NameTaken
                } else {
                    accounts.insert(username, file)?;
                    puzzles.insert(&puzzle.nonce, puzzle.expires)?;
                    Registration::Created
                }
            };
            match outcome {
                Registration::Created => txn.commit()?,
                _ => txn.abort()?,
            }
            Ok(outcome)
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
    /// A settlement that redeems nothing changes nothing (its bytes and the
    /// settlement itself are not counted). Returns, per key, whether it was
    /// redeemed now.
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
                let count = fresh.iter().filter(|f| **f).count() as u64;
                if count > 0 {
                    let mut ledger = txn.open_table(LEDGER)?;
                    let (tokens, reported, settlements) =
                        ledger.get(operator)?.map_or((0, 0, 0), |v| v.value());
                    ledger.insert(
                        operator,
                        (
                            tokens.saturating_add(count),
                            reported.saturating_add(bytes),
                            settlements.saturating_add(1),
                        ),
                    )?;
                }
                fresh
            };
            match fresh.iter().any(|f| *f) {
                true => txn.commit()?,
                false => txn.abort()?,
            }
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
    /// presented) and expired puzzles (refused anyway), so both sets stay
    /// bounded.
    pub(crate) fn prune(&self, now: u64) -> Result<(), StoreError> {
        let run = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            txn.open_table(REDEEMED)?
                .retain(|_, expires| expires > now)?;
            txn.open_table(USED_PUZZLES)?
                .retain(|_, expires| expires > now)?;
            txn.commit()?;
            Ok(())
        };
        run().map_err(StoreError::from_redb)
    }
}
