//! The embedded double-spend store: a redb file (feature `redb`), written
//! with group commit.
//!
//! Each durable redb write transaction costs an fsync (~2 ms here) and redb
//! runs one at a time, so one transaction per spend caps a relay at a few
//! hundred admissions per second whatever its cores. Instead one writer
//! thread owns the writes: it takes the first waiting spend and every other
//! already queued (at most [`MAX_BATCH`]), applies them in order in one
//! write transaction, commits it, and only then answers them. There is no
//! timer: a lone spend commits at once, and under load the spends that
//! arrive during one commit form the next batch, so a spend waits at most
//! for the commit in progress and its own.
//!
//! Why this admits no token twice, even across a crash:
//! - a spend is answered `true` only after `commit()` returned, and commits
//!   use redb's default `Durability::Immediate` (fsync before returning): a
//!   token is never admitted before its entry is on disk;
//! - a crash before or during the commit loses the whole batch atomically
//!   (redb's commit is a single atomic switch of its root), and none of that
//!   batch was admitted: their callers had no answer yet, and die with the
//!   process;
//! - within a batch the spends run in order in one transaction, each seeing
//!   the entries the earlier ones inserted, so a second spend of a token in
//!   the same batch is refused;
//! - a failed commit fails every spend of its batch (fail closed), including
//!   those that would have been refused anyway.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, Table, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use super::{SpendFuture, SpendKey, SpentError, SpentTokens, entry_expiry};

const SPENT: TableDefinition<&[u8; 32], u64> = TableDefinition::new("spent");
const BY_EXPIRY: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("spent_by_expiry");
/// Expired entries removed per spend, so pruning keeps up with inserts
/// without ever making one spend slow.
const PRUNE_PER_SPEND: usize = 4;
/// Most spends in one write transaction: bounds the time a batch holds the
/// writer (and its latency) to a few milliseconds beyond the fsync.
const MAX_BATCH: usize = 256;
/// Spends queued for the writer; beyond it a spend waits to be queued
/// (back-pressure, so memory stays bounded under overload).
const QUEUE_LENGTH: usize = 4 * MAX_BATCH;

/// One spend waiting for the writer.
struct Spend {
    key: SpendKey,
    expires: u64,
    now: u64,
    answer: oneshot::Sender<Result<bool, SpentError>>,
}

/// The embedded store: a redb file written by one writer thread with group
/// commit (concurrent spends share one durable transaction), so a restart forgets
/// nothing. Clones share the file and the writer.
#[derive(Debug, Clone)]
pub struct RedbSpentTokens {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    db: Arc<Database>,
    /// `None` only while dropping.
    queue: Option<mpsc::Sender<Spend>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Shared {
    /// Closes the queue and waits for the writer to finish its batch, so the
    /// file is closed when the store is gone (and can be opened again).
    fn drop(&mut self) {
        self.queue = None;
        if let Some(writer) = self.writer.take() {
            // A panic in the writer already failed its spends (`WriterGone`).
            let _ = writer.join();
        }
    }
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
    /// Opens (or creates) the store at `path`, and its directory, and starts
    /// its writer thread.
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
        let db = Arc::new(db);
        let (queue, waiting) = mpsc::channel(QUEUE_LENGTH);
        let writer = {
            let db = Arc::clone(&db);
            std::thread::Builder::new()
                .name("spent-tokens-writer".into())
                .spawn(move || write_batches(&db, waiting))
                .map_err(SpentError::WriterStart)?
        };
        Ok(RedbSpentTokens {
            shared: Arc::new(Shared {
                db,
                queue: Some(queue),
                writer: Some(writer),
            }),
        })
    }

    /// Number of entries held (for tests and metrics).
    pub fn len(&self) -> Result<u64, SpentError> {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let txn = self.shared.db.begin_read().map_err(SpentError::redb)?;
        let table = txn.open_table(SPENT).map_err(SpentError::redb)?;
        table.len().map_err(SpentError::redb)
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> Result<bool, SpentError> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry expired at `now`; returns how many. (redb runs
    /// it between the writer's transactions.)
    pub fn prune(&self, now: u64) -> Result<usize, SpentError> {
        let run = || -> Result<usize, redb::Error> {
            let txn = self.shared.db.begin_write()?;
            let removed = {
                let mut spent = txn.open_table(SPENT)?;
                let mut by_expiry = txn.open_table(BY_EXPIRY)?;
                remove_expired(&mut spent, &mut by_expiry, now, usize::MAX)?
            };
            txn.commit()?;
            Ok(removed)
        };
        run().map_err(SpentError::redb)
    }
}

/// The writer thread: batches of queued spends, one durable transaction
/// each, until every handle of the store is gone.
fn write_batches(db: &Database, mut waiting: mpsc::Receiver<Spend>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = waiting.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(spend) => batch.push(spend),
                Err(_) => break,
            }
        }
        match commit_batch(db, &batch) {
            Ok(fresh) => {
                for (spend, fresh) in batch.drain(..).zip(fresh) {
                    // A caller that stopped waiting needs no answer.
                    let _ = spend.answer.send(Ok(fresh));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for spend in batch.drain(..) {
                    let _ = spend.answer.send(Err(SpentError::Redb(Arc::clone(&error))));
                }
            }
        }
    }
}

/// Applies `batch` in order in one write transaction and commits it if any
/// spend was fresh; returns, per spend, whether it was.
fn commit_batch(db: &Database, batch: &[Spend]) -> Result<Vec<bool>, redb::Error> {
    let txn = db.begin_write()?;
    let fresh = {
        let mut spent = txn.open_table(SPENT)?;
        let mut by_expiry = txn.open_table(BY_EXPIRY)?;
        // The earliest clock of the batch: nothing is pruned that any of
        // its spends still counts as live.
        if let Some(now) = batch.iter().map(|spend| spend.now).min() {
            remove_expired(
                &mut spent,
                &mut by_expiry,
                now,
                PRUNE_PER_SPEND * batch.len(),
            )?;
        }
        let mut fresh = Vec::with_capacity(batch.len());
        for spend in batch {
            fresh.push(spend_in(&mut spent, &mut by_expiry, spend)?);
        }
        fresh
    };
    if fresh.contains(&true) {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(fresh)
}

/// One spend inside the batch's transaction: true if `spend.key` was not
/// held (or held only by an expired entry), and now is.
fn spend_in(
    spent: &mut Table<'_, &'static [u8; 32], u64>,
    by_expiry: &mut Table<'_, (u64, &'static [u8; 32]), ()>,
    spend: &Spend,
) -> Result<bool, redb::Error> {
    let Spend { key, now, .. } = spend;
    let previous = spent.get(&key.0)?.map(|v| v.value());
    Ok(match previous {
        Some(until) if until > *now => false,
        stale => {
            if let Some(until) = stale {
                by_expiry.remove((until, &key.0))?;
            }
            let expires = entry_expiry(spend.expires, *now);
            spent.insert(&key.0, expires)?;
            by_expiry.insert((expires, &key.0), ())?;
            true
        }
    })
}

impl SpentTokens for RedbSpentTokens {
    fn spend(&self, key: SpendKey, expires: u64, now: u64) -> SpendFuture<'_> {
        Box::pin(async move {
            let queue = self.shared.queue.as_ref().ok_or(SpentError::WriterGone)?;
            let (answer, answered) = oneshot::channel();
            let spend = Spend {
                key,
                expires,
                now,
                answer,
            };
            queue
                .send(spend)
                .await
                .map_err(|_| SpentError::WriterGone)?;
            answered.await.map_err(|_| SpentError::WriterGone)?
        })
    }
}
