//! Directory diffs for clients (issue 16, item 4; the role of Tor's
//! consensus diffs): `GET /v1/directory/diff?from=<SHA-256 of the signed
//! directory the client holds>` answers the bytes that turn that directory
//! into the one served now (`openrelay_directory::diff`), `204` if the
//! client holds the one served, `404` if the registry cannot make a diff
//! from it (the client then fetches the whole directory).
//!
//! A diff can start from any of the [`DIRECTORIES_KEPT`] newest directories
//! as stored (with every signature that reached the registry). A client
//! that fetched a directory while late signatures were still being added
//! holds an encoding the store no longer has and fetches the whole
//! directory once.
//!
//! Each diff is computed once per served directory, off the async runtime,
//! and only from a kept directory: at 100,000 relays one costs 0.1–0.3 s of
//! CPU, so a caller naming bases must not be able to make the registry
//! compute more than [`DIRECTORIES_KEPT`] per served directory.
//!
//! What a request tells the registry: which of the last few directories
//! the client held (one of at most [`DIRECTORIES_KEPT`] values, shared with
//! every client that fetched it), over a path through the relays that
//! hides who asks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use openrelay_directory::{DirectoryDiff, SignedDirectoryDigest};
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use crate::store::{DIRECTORIES_KEPT, StoreError};
use crate::{RedbStore, Registry, RegistryStore};

/// What to answer a diff request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DiffAnswer {
    /// The diff's bytes.
    Diff(Bytes),
    /// The client holds the directory served.
    Current,
    /// No diff from that directory: not one of the kept ones (or the
    /// store failed).
    NoBase,
}

/// One diff, computed by the first request that wants it.
type DiffCell = Arc<OnceCell<Option<Bytes>>>;

/// The diffs to the served directory and the directories they start from.
#[derive(Debug, Default)]
pub(crate) struct DirectoryDiffs {
    /// SHA-256 of each kept directory as stored, by sequence number (at
    /// most [`DIRECTORIES_KEPT`], as the store keeps).
    kept: Mutex<BTreeMap<u64, SignedDirectoryDigest>>,
    /// Diffs to the served directory (`.0`), by base: at most one per kept
    /// directory.
    computed: Mutex<(
        Option<SignedDirectoryDigest>,
        HashMap<SignedDirectoryDigest, DiffCell>,
    )>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DirectoryDiffs {
    /// The diffs of a registry whose store holds directories up to
    /// `latest`: the kept ones are read and hashed once, here.
    pub(crate) fn load(
        store: &impl RegistryStore,
        latest: Option<u64>,
    ) -> Result<Self, StoreError> {
        let diffs = DirectoryDiffs::default();
        if let Some(latest) = latest {
            for sequence in latest.saturating_sub(DIRECTORIES_KEPT - 1)..=latest {
                if let Some(signed) = store.directory(sequence)? {
                    diffs.recorded(sequence, SignedDirectoryDigest::of(&signed));
                }
            }
        }
        Ok(diffs)
    }

    /// Directory `sequence` was stored (anew, or again with more
    /// signatures) as bytes with SHA-256 `digest`.
    pub(crate) fn recorded(&self, sequence: u64, digest: SignedDirectoryDigest) {
        let mut kept = lock(&self.kept);
        kept.insert(sequence, digest);
        while kept.len() > DIRECTORIES_KEPT as usize {
            kept.pop_first();
        }
    }

    /// The answer to a client holding `from` while `served` (with SHA-256
    /// `to`) is served.
    pub(crate) async fn answer(
        &self,
        registry: &Arc<Registry<RedbStore>>,
        from: SignedDirectoryDigest,
        to: SignedDirectoryDigest,
        served: Bytes,
    ) -> DiffAnswer {
        if from == to {
            return DiffAnswer::Current;
        }
        let base = lock(&self.kept)
            .iter()
            .find(|(_, digest)| **digest == from)
            .map(|(sequence, _)| *sequence);
        let Some(base) = base else {
            return DiffAnswer::NoBase;
        };
        let cell = {
            let mut computed = lock(&self.computed);
            if computed.0 != Some(to) {
                *computed = (Some(to), HashMap::new());
            }
            Arc::clone(computed.1.entry(from).or_default())
        };
        let registry = Arc::clone(registry);
        let diff = cell
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || compute(&registry, base, from, &served))
                    .await
                    .ok()
                    .flatten()
            })
            .await;
        match diff {
            Some(bytes) => DiffAnswer::Diff(bytes.clone()),
            None => DiffAnswer::NoBase,
        }
    }
}

/// The diff from stored directory `base` (which must hash to `from`) to
/// `served`.
fn compute(
    registry: &Registry<RedbStore>,
    base: u64,
    from: SignedDirectoryDigest,
    served: &[u8],
) -> Option<Bytes> {
    let started = std::time::Instant::now();
    let stored = match registry.store().directory(base) {
        Ok(Some(stored)) => stored,
        Ok(None) => return None,
        Err(e) => {
            warn!(error = %e, "cannot read a kept directory for a diff");
            return None;
        }
    };
    // Replaced meanwhile (more signatures): the client's copy is gone.
    if SignedDirectoryDigest::of(&stored) != from {
        return None;
    }
    let diff = match DirectoryDiff::between(&stored, served) {
        Ok(diff) => Bytes::from(diff.to_bytes()),
        Err(e) => {
            warn!(error = %e, "cannot make a directory diff");
            return None;
        }
    };
    debug!(
        base,
        bytes = diff.len(),
        of = served.len(),
        millis = started.elapsed().as_millis() as u64,
        "directory diff made"
    );
    Some(diff)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use openrelay_config::PublicationLimits;

    /// Directory-like bytes: `n` changes a few of them.
    fn directory(n: u8) -> Vec<u8> {
        let mut bytes: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
        bytes[1000 + n as usize * 500] = n;
        bytes
    }

    fn registry(dir: &std::path::Path) -> Arc<Registry<RedbStore>> {
        let store = RedbStore::open(&dir.join("registry.redb")).unwrap();
        Arc::new(Registry::open(store, PublicationLimits::default()).unwrap())
    }

    #[tokio::test]
    async fn diffs_start_only_from_kept_directories_and_are_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        for sequence in 1..=10u8 {
            registry
                .store()
                .put_directory(sequence.into(), &directory(sequence))
                .unwrap();
        }
        // Read back at start: the 8 the store keeps, 3 to 10.
        let diffs = DirectoryDiffs::load(registry.store(), Some(10)).unwrap();
        let served = Bytes::from(directory(10));
        let to = SignedDirectoryDigest::of(&served);
        let ask = |from: &[u8]| {
            diffs.answer(
                &registry,
                SignedDirectoryDigest::of(from),
                to,
                served.clone(),
            )
        };
        assert_eq!(ask(&served).await, DiffAnswer::Current);
        let DiffAnswer::Diff(first) = ask(&directory(3)).await else {
            panic!("no diff from a kept directory");
        };
        let diff = DirectoryDiff::from_bytes(&first).unwrap();
        assert_eq!(diff.apply(&directory(3)).unwrap(), served);
        assert!(first.len() < served.len() / 10);
        // Asked again: the same bytes, not made again.
        let DiffAnswer::Diff(again) = ask(&directory(3)).await else {
            panic!("no diff the second time");
        };
        assert_eq!(again.as_ptr(), first.as_ptr());
        // Bases the registry does not keep: no diff, nothing computed.
        for unknown in [directory(2), directory(1), b"anything".to_vec()] {
            assert_eq!(ask(&unknown).await, DiffAnswer::NoBase);
        }
        assert_eq!(lock(&diffs.computed).1.len(), 1);

        // A newer directory served: kept are now 4 to 11, diffs made anew.
        registry.store().put_directory(11, &directory(11)).unwrap();
        diffs.recorded(11, SignedDirectoryDigest::of(&directory(11)));
        let newer = Bytes::from(directory(11));
        let answer = diffs
            .answer(
                &registry,
                SignedDirectoryDigest::of(&directory(3)),
                SignedDirectoryDigest::of(&newer),
                newer.clone(),
            )
            .await;
        assert_eq!(answer, DiffAnswer::NoBase);
        let DiffAnswer::Diff(bytes) = diffs
            .answer(
                &registry,
                SignedDirectoryDigest::of(&directory(10)),
                SignedDirectoryDigest::of(&newer),
                newer.clone(),
            )
            .await
        else {
            panic!("no diff from the previous directory");
        };
        let made = DirectoryDiff::from_bytes(&bytes)
            .unwrap()
            .apply(&directory(10))
            .unwrap();
        assert_eq!(made, newer);
        assert_eq!(lock(&diffs.computed).1.len(), 1);
    }

    #[tokio::test]
    async fn a_base_replaced_in_the_store_gives_no_diff() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        registry.store().put_directory(1, &directory(1)).unwrap();
        let diffs = DirectoryDiffs::load(registry.store(), Some(1)).unwrap();
        // Stored again with another signature, unknown to `diffs`.
        let mut resigned = directory(1);
        resigned.push(7);
        registry.store().put_directory(1, &resigned).unwrap();
        let served = Bytes::from(directory(2));
        let answer = diffs
            .answer(
                &registry,
                SignedDirectoryDigest::of(&directory(1)),
                SignedDirectoryDigest::of(&served),
                served.clone(),
            )
            .await;
        assert_eq!(answer, DiffAnswer::NoBase);
    }
}
