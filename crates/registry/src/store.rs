//! Where the registry keeps what relays published and the directories it
//! issued. A trait, so the on-chain registry (a later issue) can stand in for
//! the embedded store; [`RedbStore`] keeps everything in one redb file, so a
//! devnet needs no outside service.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

/// Relay id → expiry (u64 big-endian, Unix seconds) followed by the signed descriptor.
const DESCRIPTORS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("descriptors");
/// Operator id → signed operator profile.
const PROFILES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("profiles");
/// Sequence number → signed directory.
const DIRECTORIES: TableDefinition<u64, &[u8]> = TableDefinition::new("directories");

/// A storage failure (the store's own message; no relay data in it).
#[derive(Debug, thiserror::Error)]
#[error("registry store: {0}")]
pub struct StoreError(String);

impl StoreError {
    fn from_redb(error: impl std::fmt::Display) -> Self {
        StoreError(error.to_string())
    }
}

/// Storage behind the registry.
pub trait RegistryStore: Send + Sync {
    /// Stores (or replaces) a relay's signed descriptor until `expires_at`.
    fn put_descriptor(
        &self,
        relay: &[u8; 32],
        descriptor: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError>;
    /// Stores (or replaces) an operator's signed profile.
    fn put_profile(&self, operator: &[u8; 32], profile: &[u8]) -> Result<(), StoreError>;
    /// Signed descriptors whose expiry is after `now`.
    fn live_descriptors(&self, now: u64) -> Result<Vec<Vec<u8>>, StoreError>;
    /// All signed operator profiles.
    fn profiles(&self) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Forgets descriptors whose expiry is at or before `now`; returns how many.
    fn prune(&self, now: u64) -> Result<usize, StoreError>;
    /// Stores a signed directory under its sequence number.
    fn put_directory(&self, sequence: u64, signed: &[u8]) -> Result<(), StoreError>;
    /// The signed directory with the highest sequence number.
    fn latest_directory(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;
}

/// The embedded store: one redb file.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path).map_err(StoreError::from_redb)?;
        // Create the tables up front so readers never meet a missing table.
        let txn = db.begin_write().map_err(StoreError::from_redb)?;
        {
            txn.open_table(DESCRIPTORS).map_err(StoreError::from_redb)?;
            txn.open_table(PROFILES).map_err(StoreError::from_redb)?;
            txn.open_table(DIRECTORIES).map_err(StoreError::from_redb)?;
        }
        txn.commit().map_err(StoreError::from_redb)?;
        Ok(RedbStore { db })
    }

    fn write(
        &self,
        apply: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(StoreError::from_redb)?;
        apply(&txn).map_err(StoreError::from_redb)?;
        txn.commit().map_err(StoreError::from_redb)
    }
}

fn expiry_of(value: &[u8]) -> u64 {
    value
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

impl RegistryStore for RedbStore {
    fn put_descriptor(
        &self,
        relay: &[u8; 32],
        descriptor: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        let mut value = Vec::with_capacity(8 + descriptor.len());
        value.extend_from_slice(&expires_at.to_be_bytes());
        value.extend_from_slice(descriptor);
        self.write(|txn| {
            txn.open_table(DESCRIPTORS)?
                .insert(relay, value.as_slice())?;
            Ok(())
        })
    }

    fn put_profile(&self, operator: &[u8; 32], profile: &[u8]) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(PROFILES)?.insert(operator, profile)?;
            Ok(())
        })
    }

    fn live_descriptors(&self, now: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from_redb)?;
        let table = txn.open_table(DESCRIPTORS).map_err(StoreError::from_redb)?;
        let mut live = Vec::new();
        for entry in table.iter().map_err(StoreError::from_redb)? {
            let (_, value) = entry.map_err(StoreError::from_redb)?;
            let value = value.value();
            if expiry_of(value) > now {
                live.push(value.get(8..).unwrap_or_default().to_vec());
            }
        }
        Ok(live)
    }

    fn profiles(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from_redb)?;
        let table = txn.open_table(PROFILES).map_err(StoreError::from_redb)?;
        let mut profiles = Vec::new();
        for entry in table.iter().map_err(StoreError::from_redb)? {
            let (_, value) = entry.map_err(StoreError::from_redb)?;
            profiles.push(value.value().to_vec());
        }
        Ok(profiles)
    }

    fn prune(&self, now: u64) -> Result<usize, StoreError> {
        let mut removed = 0;
        self.write(|txn| {
            let mut table = txn.open_table(DESCRIPTORS)?;
            let before = table.len()?;
            table.retain(|_, value| expiry_of(value) > now)?;
            removed = usize::try_from(before - table.len()?).unwrap_or(usize::MAX);
            Ok(())
        })?;
        Ok(removed)
    }

    fn put_directory(&self, sequence: u64, signed: &[u8]) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(DIRECTORIES)?.insert(sequence, signed)?;
            Ok(())
        })
    }

    fn latest_directory(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from_redb)?;
        let table = txn.open_table(DIRECTORIES).map_err(StoreError::from_redb)?;
        let last = table.last().map_err(StoreError::from_redb)?;
        Ok(last.map(|(sequence, signed)| (sequence.value(), signed.value().to_vec())))
    }
}
