//! The issuer's token keys on disk and their rotation.
//!
//! Each key is a PKCS#8 PEM file `token-keys/<not_before>.pem` (mode 0600).
//! A key signs during `[not_before, not_before + P)` and its tokens are
//! accepted until `not_before + 2P` (see `openrelay_tokens::keys`). The next
//! key is made half a period before it takes over ([`LEAD`]), so it is
//! published (to the registry and validators, RFC 9576 §6) and listed in the
//! validator-signed directory, and relays and clients that follow it know
//! it, before any token uses it. Expired key files are deleted. Truncated
//! key ids (the last byte, RFC 9578 §6.5) of live keys are kept distinct.

use std::path::{Path, PathBuf};

use openrelay_tokens::{EpochKey, IssuerDirectory, SigningKey};
use openrelay_transport::identity::write_secret_file;
use tracing::{info, warn};

use openrelay_issuer_client::paths;

/// The key directory inside the state directory.
pub const KEY_DIR: &str = "token-keys";
/// The directory document written for relays on the same host.
pub const DIRECTORY_FILE: &str = "issuer-directory.json";
/// How far ahead of its start the next key is made, as a fraction of the
/// period: `P / LEAD`. Half a period leaves the directory (and everyone who
/// follows it) that long to list the key before it signs; at most three
/// keys are then live (the previous, the current, the next), what a key set
/// may list.
pub const LEAD: u64 = 2;

/// Why the keys could not be loaded or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRingError {
    /// Reading or writing a file failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A key file does not hold a token key.
    #[error("{path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The live signing keys.
#[derive(Debug)]
pub struct KeyRing {
    dir: PathBuf,
    period: u64,
    keys: Vec<(EpochKey, SigningKey)>,
}

/// What [`KeyRing::plan`] says must be made: a key for this `not_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needed(pub u64);

impl KeyRing {
    /// Loads the keys in `state_dir/token-keys`, forgetting (and deleting)
    /// expired ones.
    pub fn load(state_dir: &Path, period: u64, now: u64) -> Result<Self, KeyRingError> {
        let dir = state_dir.join(KEY_DIR);
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| KeyRingError::Io { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let Some(not_before) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".pem"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let pem = std::fs::read_to_string(&path).map_err(io(&path))?;
            let key = SigningKey::from_pem(&pem).map_err(|e| KeyRingError::Key {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            keys.push((EpochKey::new(key.public().clone(), not_before, period), key));
        }
        let mut ring = KeyRing { dir, period, keys };
        ring.prune(now);
        Ok(ring)
    }

    fn file(&self, not_before: u64) -> PathBuf {
        self.dir.join(format!("{not_before}.pem"))
    }

    /// Forgets and deletes expired keys.
    pub fn prune(&mut self, now: u64) {
        let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.keys)
            .into_iter()
            .partition(|(e, _)| e.expires <= now);
        for (epoch, _) in expired {
            let path = self.file(epoch.not_before);
            if let Err(e) = std::fs::remove_file(&path) {
                warn!(error = %e, path = %path.display(), "cannot delete an expired token key");
            }
        }
        self.keys = live;
    }

    /// The key needed next, if any: one for now if nothing signs now, or the
    /// successor of the current key in its last [`LEAD`]th.
    pub fn plan(&self, now: u64) -> Option<Needed> {
        let Some(current) = self.current(now) else {
            return Some(Needed(now));
        };
        let next = current.issue_until();
        let due = next.saturating_sub(self.period / LEAD);
        (now >= due && !self.keys.iter().any(|(e, _)| e.not_before == next)).then_some(Needed(next))
    }

    fn current(&self, now: u64) -> Option<&EpochKey> {
        self.keys
            .iter()
            .map(|(e, _)| e)
            .filter(|e| e.not_before <= now && now < e.issue_until())
            .max_by_key(|e| e.not_before)
    }

    /// Whether `key` may join (its truncated id is not taken by a live key).
    pub fn fits(&self, key: &SigningKey) -> bool {
        let id = key.public().truncated_id();
        !self.keys.iter().any(|(e, _)| e.key.truncated_id() == id)
    }

    /// Writes `key` (0600) and adds it for `needed`.
    pub fn add(&mut self, needed: Needed, key: SigningKey) -> Result<(), KeyRingError> {
        let path = self.file(needed.0);
        let pem = key.to_pem().map_err(|e| KeyRingError::Key {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_secret_file(&path, pem.as_bytes()).map_err(|source| KeyRingError::Io {
            path: path.clone(),
            source,
        })?;
        info!(not_before = needed.0, key = ?key.public(), "new token key");
        self.keys.push((
            EpochKey::new(key.public().clone(), needed.0, self.period),
            key,
        ));
        Ok(())
    }

    /// The key that signs a request naming `truncated_id` at `now`, with
    /// its epoch.
    pub fn signer(&self, truncated_id: u8, now: u64) -> Option<&(EpochKey, SigningKey)> {
        self.keys.iter().find(|(e, _)| {
            e.key.truncated_id() == truncated_id && e.not_before <= now && now < e.issue_until()
        })
    }

    /// The live keys' epochs.
    pub fn epochs(&self) -> Vec<EpochKey> {
        self.keys.iter().map(|(e, _)| e.clone()).collect()
    }

    /// The directory document (RFC 9578 §4).
    pub fn directory(&self) -> IssuerDirectory {
        IssuerDirectory::new(paths::TOKEN_REQUEST, &self.epochs())
    }

    /// Writes the directory to `state_dir/issuer-directory.json` (replacing
    /// it atomically, so relays never read half a file).
    pub fn publish(&self, state_dir: &Path) -> Result<(), KeyRingError> {
        let path = state_dir.join(DIRECTORY_FILE);
        let temporary = state_dir.join(format!("{DIRECTORY_FILE}.new"));
        let io = |source| KeyRingError::Io {
            path: path.clone(),
            source,
        };
        std::fs::write(&temporary, self.directory().to_json()).map_err(io)?;
        std::fs::rename(&temporary, &path).map_err(io)
    }
}
