//! Where the registry (and each validator) keeps what relays published, the
//! directories issued and a little state of its own. A trait, so the on-chain
//! registry (a later issue) can stand in for the embedded store;
//! [`RedbStore`] keeps everything in one redb file, so a devnet needs no
//! outside service.
//!
//! The store is read once at start ([`crate::Registry::open`] parses it into
//! memory) and written through on every change, so publishing never re-reads
//! or re-parses what is stored.

use std::path::Path;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

/// Relay id → expiry (u64 big-endian, Unix seconds) followed by the signed
/// descriptor.
const DESCRIPTORS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("descriptors");
/// Operator id → when it was last published (u64 big-endian) followed by the
/// signed operator profile.
const PROFILES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("profiles_v2");
/// Issuer id ‖ SHA-256 of the key set's body → when it was received (u64
/// big-endian) followed by the signed issuer key set.
const KEY_SETS: TableDefinition<&[u8; 64], &[u8]> = TableDefinition::new("issuer_key_sets");
/// Sequence number → signed directory.
const DIRECTORIES: TableDefinition<u64, &[u8]> = TableDefinition::new("directories");
/// (epoch, slot) → a validator set hand-over (`SignedValidatorSetChange`)
/// as the registry holds it: a registry restarted after the previous
/// set's members left can still prove the set's history to clients.
const HANDOVERS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("handovers");
/// Small named values (the last proposed sequence, a validator's record).
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Signed directories kept: the newest few. Clients that hold one of them
/// get the newest as a diff from it (`crate::diffs`); an operator looking
/// into a problem finds them here.
pub(crate) const DIRECTORIES_KEPT: u64 = 8;

/// A storage failure (the store's own message; no relay data in it).
#[derive(Debug, thiserror::Error)]
#[error("registry store: {0}")]
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

/// One stored descriptor or profile with its key (relay or operator id) and
/// the time that goes with it (a descriptor's expiry, a profile's last
/// publication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timed {
    /// The relay or operator id.
    pub key: [u8; 32],
    /// The expiry or publication time (Unix seconds).
    pub time: u64,
    /// The signed descriptor or profile.
    pub bytes: Vec<u8>,
}

/// One stored issuer key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetEntry {
    /// The issuer.
    pub issuer: [u8; 32],
    /// SHA-256 of the set's body.
    pub digest: [u8; 32],
    /// When it was received (Unix seconds).
    pub time: u64,
    /// The signed key set.
    pub bytes: Vec<u8>,
}

/// Storage behind the registry.
pub trait RegistryStore: Send + Sync {
    /// Stores (or replaces) a relay's signed descriptor, live until
    /// `expires_at`. Need not be durable at once: relays republish.
    fn put_descriptor(
        &self,
        relay: &[u8; 32],
        descriptor: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError>;
    /// Every stored descriptor with its expiry.
    fn descriptors(&self) -> Result<Vec<Timed>, StoreError>;
    /// Stores (or replaces) an operator's signed profile, published at
    /// `received_at`. Need not be durable at once.
    fn put_profile(
        &self,
        operator: &[u8; 32],
        profile: &[u8],
        received_at: u64,
    ) -> Result<(), StoreError>;
    /// Every stored profile with when it was last published.
    fn profiles(&self) -> Result<Vec<Timed>, StoreError>;
    /// Forgets these descriptors and profiles, durably (also making every
    /// earlier write durable).
    fn remove(&self, relays: &[[u8; 32]], operators: &[[u8; 32]]) -> Result<(), StoreError>;
    /// Stores an issuer's signed key set (whose body has SHA-256 `digest`),
    /// received at `received_at`, durably: key sets change rarely, and a
    /// validator's refusal of replays rests on what it holds.
    fn put_key_set(
        &self,
        issuer: &[u8; 32],
        digest: &[u8; 32],
        signed: &[u8],
        received_at: u64,
    ) -> Result<(), StoreError>;
    /// Every stored key set.
    fn key_sets(&self) -> Result<Vec<KeySetEntry>, StoreError>;
    /// Forgets these key sets (issuer, digest), durably.
    fn remove_key_sets(&self, sets: &[([u8; 32], [u8; 32])]) -> Result<(), StoreError>;
    /// Stores a signed directory under its sequence number, durably (the
    /// store may forget much older ones).
    fn put_directory(&self, sequence: u64, signed: &[u8]) -> Result<(), StoreError>;
    /// The signed directory with the highest sequence number.
    fn latest_directory(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError>;
    /// The signed directory `sequence`, if it is still kept.
    fn directory(&self, sequence: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores a named value, durably: it is on disk when this returns.
    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError>;
    /// A named value.
    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Stores (or replaces) the signed hand-over in `slot` of `epoch`,
    /// durably.
    fn put_handover(&self, epoch: u64, slot: u64, signed: &[u8]) -> Result<(), StoreError>;
    /// Every stored hand-over: epoch, slot and the signed change, by
    /// epoch and slot.
    fn handovers(&self) -> Result<Vec<(u64, u64, Vec<u8>)>, StoreError>;
}

/// A stored value: a time (u64 big-endian), then the bytes.
fn timed_value(time: u64, bytes: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(8 + bytes.len());
    value.extend_from_slice(&time.to_be_bytes());
    value.extend_from_slice(bytes);
    value
}

/// The time and the bytes of a stored value ([`timed_value`]); a value too
/// short for a time reads as time 0.
fn split_timed(value: &[u8]) -> (u64, Vec<u8>) {
    let time = value
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes);
    (time, value.get(8..).unwrap_or_default().to_vec())
}

/// The key of a key set: issuer id, then digest.
fn key_set_key(issuer: &[u8; 32], digest: &[u8; 32]) -> [u8; 64] {
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(issuer);
    key[32..].copy_from_slice(digest);
    key
}

/// The embedded store: one redb file.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
}

impl RedbStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StoreError::from_redb)?;
        }
        let db = Database::create(path).map_err(StoreError::from_redb)?;
        // Create the tables up front so readers never meet a missing table.
        let txn = db.begin_write().map_err(StoreError::from_redb)?;
        {
            txn.open_table(DESCRIPTORS).map_err(StoreError::from_redb)?;
            txn.open_table(PROFILES).map_err(StoreError::from_redb)?;
            txn.open_table(KEY_SETS).map_err(StoreError::from_redb)?;
            txn.open_table(DIRECTORIES).map_err(StoreError::from_redb)?;
            txn.open_table(META).map_err(StoreError::from_redb)?;
            txn.open_table(HANDOVERS).map_err(StoreError::from_redb)?;
        }
        txn.commit().map_err(StoreError::from_redb)?;
        Ok(RedbStore { db })
    }

    fn write(
        &self,
        durable: bool,
        apply: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(StoreError::from_redb)?;
        if !durable {
            // Publications are soft state (relays republish every refresh):
            // they need not cost an fsync each; the next durable commit
            // (a prune, every proposal interval) persists them.
            txn.set_durability(Durability::None)
                .map_err(StoreError::from_redb)?;
        }
        apply(&txn).map_err(StoreError::from_redb)?;
        txn.commit().map_err(StoreError::from_redb)
    }

    fn read_timed(
        &self,
        table: TableDefinition<&[u8; 32], &[u8]>,
    ) -> Result<Vec<Timed>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from_redb)?;
        let table = txn.open_table(table).map_err(StoreError::from_redb)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(StoreError::from_redb)? {
            let (key, value) = entry.map_err(StoreError::from_redb)?;
            let (time, bytes) = split_timed(value.value());
            out.push(Timed {
                key: *key.value(),
                time,
                bytes,
            });
        }
        Ok(out)
    }

    fn put_timed(
        &self,
        table: TableDefinition<&[u8; 32], &[u8]>,
        key: &[u8; 32],
        time: u64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let value = timed_value(time, bytes);
        self.write(false, |txn| {
            txn.open_table(table)?.insert(key, value.as_slice())?;
            Ok(())
        })
    }
}

impl RegistryStore for RedbStore {
    fn put_descriptor(
        &self,
        relay: &[u8; 32],
        descriptor: &[u8],
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.put_timed(DESCRIPTORS, relay, expires_at, descriptor)
    }

    fn descriptors(&self) -> Result<Vec<Timed>, StoreError> {
        self.read_timed(DESCRIPTORS)
    }

    fn put_profile(
        &self,
        operator: &[u8; 32],
        profile: &[u8],
        received_at: u64,
    ) -> Result<(), StoreError> {
        self.put_timed(PROFILES, operator, received_at, profile)
    }

    fn profiles(&self) -> Result<Vec<Timed>, StoreError> {
        self.read_timed(PROFILES)
    }

    fn remove(&self, relays: &[[u8; 32]], operators: &[[u8; 32]]) -> Result<(), StoreError> {
        self.write(true, |txn| {
            let mut descriptors = txn.open_table(DESCRIPTORS)?;
            for relay in relays {
                descriptors.remove(relay)?;
            }
            let mut profiles = txn.open_table(PROFILES)?;
            for operator in operators {
                profiles.remove(operator)?;
            }
            Ok(())
        })
    }

    fn put_key_set(
        &self,
        issuer: &[u8; 32],
        digest: &[u8; 32],
        signed: &[u8],
        received_at: u64,
    ) -> Result<(), StoreError> {
        let value = timed_value(received_at, signed);
        self.write(true, |txn| {
            txn.open_table(KEY_SETS)?
                .insert(&key_set_key(issuer, digest), value.as_slice())?;
            Ok(())
        })
    }

    fn key_sets(&self) -> Result<Vec<KeySetEntry>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from_redb)?;
        let table = txn.open_table(KEY_SETS).map_err(StoreError::from_redb)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(StoreError::from_redb)? {
            let (key, value) = entry.map_err(StoreError::from_redb)?;
            let key = key.value();
            let (mut issuer, mut digest) = ([0u8; 32], [0u8; 32]);
            issuer.copy_from_slice(&key[..32]);
            digest.copy_from_slice(&key[32..]);
            let (time, bytes) = split_timed(value.value());
            out.push(KeySetEntry {
                issuer,
                digest,
                time,
                bytes,
            });
        }
        Ok(out)
    }

    fn remove_key_sets(&self, sets: &[([u8; 32], [u8; 32])]) -> Result<(), StoreError> {
        self.write(true, |txn| {
            let mut table = txn.open_table(KEY_SETS)?;
            for (issuer, digest) in sets {
                table.remove(&key_set_key(issuer, digest))?;
            }
            Ok(())
        })
    }

    fn put_directory(&self, sequence: u64, signed: &[u8]) -> Result<(), StoreError> {
        self.write(true, |txn| {
            let mut table = txn.open_table(DIRECTORIES)?;
            table.insert(sequence, signed)?;
            let newest = table.last()?.map_or(sequence, |(s, _)| s.value());
            let oldest_kept = newest.saturating_sub(DIRECTORIES_KEPT - 1);
            table.retain(|s, _| s >= oldest_kept)?;
            Ok(())
        })
    }

    fn latest_directory(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from_redb)?;
        let table = txn.open_table(DIRECTORIES).map_err(StoreError::from_redb)?;
        let last = table.last().map_err(StoreError::from_redb)?;
        Ok(last.map(|(sequence, signed)| (sequence.value(), signed.value().to_vec())))
    }

    fn directory(&self, sequence: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from_redb)?;
        let table = txn.open_table(DIRECTORIES).map_err(StoreError::from_redb)?;
        let signed = table.get(sequence).map_err(StoreError::from_redb)?;
        Ok(signed.map(|signed| signed.value().to_vec()))
    }

    fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(true, |txn| {
            txn.open_table(META)?.insert(name, value)?;
            Ok(())
        })
    }

    fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from_redb)?;
        let table = txn.open_table(META).map_err(StoreError::from_redb)?;
        Ok(table
            .get(name)
            .map_err(StoreError::from_redb)?
            .map(|v| v.value().to_vec()))
    }

    fn put_handover(&self, epoch: u64, slot: u64, signed: &[u8]) -> Result<(), StoreError> {
        self.write(true, |txn| {
            txn.open_table(HANDOVERS)?.insert((epoch, slot), signed)?;
            Ok(())
        })
    }

    fn handovers(&self) -> Result<Vec<(u64, u64, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(StoreError::from_redb)?;
        let table = txn.open_table(HANDOVERS).map_err(StoreError::from_redb)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(StoreError::from_redb)? {
            let (key, value) = entry.map_err(StoreError::from_redb)?;
            let (epoch, slot) = key.value();
            out.push((epoch, slot, value.value().to_vec()));
        }
        Ok(out)
    }
}
