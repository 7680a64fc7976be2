//! The token wallet: Privacy Pass tokens (RFC 9578 type 0x0002) the client
//! holds, in pools by challenge (RFC 9577 §2.1.1): one pool of *access*
//! tokens for ingress relays (the issuer's cross-origin challenge), and one
//! pool of *payment* tokens per egress relay (the issuer's challenge scoped
//! to that relay, [`TokenChallenge::for_relay`]). The issuer only ever sees
//! blinded messages, so it learns neither which pool a token is for nor
//! where it is spent.
//!
//! At rest the wallet is `wallet.bin` in the state directory, sealed with
//! ChaCha20-Poly1305 under a random key in `wallet.key` (mode 0600): a copy
//! of the wallet file alone (a backup, a synced folder) reveals and allows
//! nothing, and a tampered file is refused rather than half-read. Whoever
//! can read both files as the user can spend the tokens, as with any local
//! credential.
//!
//! The file is the only copy: every operation locks `wallet.lock`, reads,
//! changes and writes it back, so `openrelay account login` can add tokens
//! while a client runs, and a token taken by one is never taken by another.
//!
//! Tokens are only accepted while their issuer key lasts (the issuer's
//! directory says until when); the wallet keeps that time with them, does
//! not count or hand out tokens past it, and drops them at the next change.
//!
//! The login session (a bearer the issuer gave at `openrelay account login`)
//! is kept in the wallet too, so the client can top pools up in the
//! background while the session lasts; after that, running low gives a clear
//! message naming the command that fixes it.

use openrelay_types::error::{ErrorKind, HasKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use openrelay_tokens::{Token, TokenChallenge, b64};
use ring::aead::{self, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use openrelay_types::unix_now;

/// The sealed wallet's file name in the state directory.
pub const WALLET_FILE: &str = "wallet.bin";
/// The wallet key's file name in the state directory.
pub const KEY_FILE: &str = "wallet.key";
/// The lock file serialising access to the wallet.
pub const LOCK_FILE: &str = "wallet.lock";

/// Version byte of the sealed file.
const FORMAT: u8 = 1;

/// A save writes `wallet.bin.<random>.tmp`, then renames it over the
/// wallet. The name is unique per save, so a temporary file a crash left
/// behind never blocks a later save; every temporary file found while the
/// wallet is locked is such a leftover (a save holds the lock until its
/// rename) and is removed.
const TEMPORARY_PREFIX: &str = "wallet.bin.";
/// See [`TEMPORARY_PREFIX`].
const TEMPORARY_SUFFIX: &str = ".tmp";
/// The fixed temporary name earlier versions used; a leftover of it is
/// removed too.
const OLD_TEMPORARY: &str = "wallet.tmp";

/// Why the wallet cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalletError {
    /// A file could not be read or written.
    #[error("wallet file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The sealed file does not open with the key (tampered, truncated, or
    /// another key).
    #[error("wallet file {0} cannot be opened with {KEY_FILE}: tampered with, or from another key")]
    Sealed(PathBuf),
    /// The key file is not 32 bytes.
    #[error("wallet key {0} is not a 32-byte key")]
    BadKey(PathBuf),
    /// A challenge could not be encoded.
    #[error("challenge: {0}")]
    Challenge(#[from] openrelay_tokens::ChallengeError),
}

impl HasKind for WalletError {
    fn kind(&self) -> ErrorKind {
        match self {
            WalletError::Io { .. } | WalletError::Sealed(_) | WalletError::BadKey(_) => {
                ErrorKind::Storage
            }
            WalletError::Challenge(_) => ErrorKind::BadInput,
        }
    }
}

/// What the wallet file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Contents {
    /// The issuer login session's bearer, and when it ends (Unix seconds).
    session: Option<(String, u64)>,
    /// Tokens (base64url, RFC 9577 §2.2.1 encoding) by challenge (base64url
    /// of its encoding).
    pools: BTreeMap<String, Vec<String>>,
    /// When the tokens of each issuer key stop being accepted (Unix
    /// seconds), by `token_key_id` (base64url). Tokens of a key not listed
    /// are kept (wallets written before this field).
    #[serde(default)]
    key_expiry: BTreeMap<String, u64>,
}

impl Contents {
    /// Whether the encoded token parses and its key is not known to have
    /// expired at `now`.
    fn usable(&self, encoded: &str, now: u64) -> bool {
        b64::decode(encoded)
            .and_then(|b| Token::decode(&b).ok())
            .is_some_and(|token| {
                self.key_expiry
                    .get(&b64::encode(&token.token_key_id))
                    .is_none_or(|expires| now < *expires)
            })
    }

    /// Tokens usable at `now` in `pool`.
    fn usable_in(&self, pool: &str, now: u64) -> usize {
        self.pools.get(pool).map_or(0, |tokens| {
            tokens.iter().filter(|t| self.usable(t, now)).count()
        })
    }

    /// Drops the tokens that are no longer usable, and the expiry times
    /// that have passed.
    fn purge(&mut self, now: u64) {
        let before: usize = self.pools.values().map(Vec::len).sum();
        let pools = std::mem::take(&mut self.pools);
        self.pools = pools
            .into_iter()
            .map(|(pool, tokens)| {
                let kept: Vec<String> =
                    tokens.into_iter().filter(|t| self.usable(t, now)).collect();
                (pool, kept)
            })
            .filter(|(_, tokens)| !tokens.is_empty())
            .collect();
        self.key_expiry.retain(|_, expires| now < *expires);
        let dropped = before - self.pools.values().map(Vec::len).sum::<usize>();
        if dropped > 0 {
            info!(
                dropped,
                "tokens of an expired issuer key (or unreadable) dropped from the wallet"
            );
        }
    }
}

/// A wallet in a state directory.
pub struct Wallet {
    /// The state directory.
    dir: PathBuf,
    file: PathBuf,
    lock: PathBuf,
    key: LessSafeKey,
    // Serialises this process's own operations (the file lock serialises
    // processes).
    busy: Mutex<()>,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalletError + '_ {
    move |source| WalletError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The wallet's pool name for `challenge`.
fn pool_of(challenge: &TokenChallenge) -> Result<String, WalletError> {
    Ok(b64::encode(&challenge.encode()?))
}

impl Wallet {
    /// Opens the wallet in `state_dir`, creating an empty one (and its key)
    /// if there is none.
    pub fn open(state_dir: &Path) -> Result<Self, WalletError> {
        let key_path = state_dir.join(KEY_FILE);
        let key_bytes = match std::fs::read(&key_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut fresh = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut fresh)
                    .map_err(|_| io(&key_path)(std::io::Error::other("no randomness")))?;
                openrelay_transport::identity::write_secret_file(&key_path, &fresh)
                    .map_err(io(&key_path))?;
                fresh.to_vec()
            }
            Err(e) => return Err(io(&key_path)(e)),
        };
        let key = UnboundKey::new(&CHACHA20_POLY1305, &key_bytes)
            .map_err(|_| WalletError::BadKey(key_path.clone()))?;
        let wallet = Wallet {
            dir: state_dir.to_owned(),
            file: state_dir.join(WALLET_FILE),
            lock: state_dir.join(LOCK_FILE),
            key: LessSafeKey::new(key),
            busy: Mutex::new(()),
        };
        // Refuse a tampered wallet at start, not at first use; clear what
        // an interrupted save left.
        wallet.locked(|| {
            wallet.remove_stale_temporaries()?;
            wallet.load().map(drop)
        })?;
        Ok(wallet)
    }

    /// Runs `work` holding both locks: this process's and the file lock
    /// that serialises processes.
    fn locked<T>(&self, work: impl FnOnce() -> Result<T, WalletError>) -> Result<T, WalletError> {
        let _busy: MutexGuard<'_, ()> = self
            .busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(io(&self.lock))?;
        lock.lock().map_err(io(&self.lock))?;
        work()
    }

    /// The contents on disk (empty if there is no wallet file yet); call
    /// holding the locks.
    fn load(&self) -> Result<Contents, WalletError> {
        match std::fs::read(&self.file) {
            Ok(sealed) => self.unseal(sealed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contents::default()),
            Err(e) => Err(io(&self.file)(e)),
        }
    }

    /// Runs `change` on the wallet's contents under both locks and writes
    /// them back if `save`.
    fn with<T>(
        &self,
        save: bool,
        change: impl FnOnce(&mut Contents) -> T,
    ) -> Result<T, WalletError> {
        self.locked(|| {
            let mut contents = self.load()?;
            let result = change(&mut contents);
            if save {
                self.remove_stale_temporaries()?;
                self.save(&contents)?;
            }
            Ok(result)
        })
    }

    /// Removes the temporary files of saves that never reached their
    /// rename (see [`TEMPORARY_PREFIX`]); call holding the locks.
    fn remove_stale_temporaries(&self) -> Result<(), WalletError> {
        let entries = std::fs::read_dir(&self.dir).map_err(io(&self.dir))?;
        for entry in entries {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale = name == OLD_TEMPORARY
                || (name.starts_with(TEMPORARY_PREFIX) && name.ends_with(TEMPORARY_SUFFIX));
            if stale {
                let path = entry.path();
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        info!(file = %path.display(), "removed what an interrupted wallet save left")
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path)(e)),
                }
            }
        }
        Ok(())
    }

    fn read<T>(&self, look: impl FnOnce(&Contents) -> T) -> Result<T, WalletError> {
        self.with(false, |c| look(c))
    }

    /// `FORMAT ‖ nonce ‖ ChaCha20-Poly1305(JSON)`, the format byte as AAD.
    fn unseal(&self, mut sealed: Vec<u8>) -> Result<Contents, WalletError> {
        let refused = || WalletError::Sealed(self.file.clone());
        if sealed.len() < 1 + aead::NONCE_LEN || sealed[0] != FORMAT {
            return Err(refused());
        }
        let mut nonce = [0u8; aead::NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + aead::NONCE_LEN]);
        let body = &mut sealed[1 + aead::NONCE_LEN..];
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([FORMAT]),
                body,
            )
            .map_err(|_| refused())?;
        serde_json::from_slice(plain).map_err(|_| refused())
    }

    fn save(&self, contents: &Contents) -> Result<(), WalletError> {
        let mut nonce = [0u8; aead::NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| io(&self.file)(std::io::Error::other("no randomness")))?;
        let mut body =
            serde_json::to_vec(contents).map_err(|e| io(&self.file)(std::io::Error::other(e)))?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([FORMAT]),
                &mut body,
            )
            .map_err(|_| io(&self.file)(std::io::Error::other("sealing failed")))?;
        let mut sealed = vec![FORMAT];
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&body);
        // Write a fresh file, flush it, rename it over the wallet, flush the
        // directory: a crash at any point leaves the old wallet or the new
        // one, never half of one, and the rename is durable once this
        // returns.
        let mut unique = [0u8; 8];
        SystemRandom::new()
            .fill(&mut unique)
            .map_err(|_| io(&self.file)(std::io::Error::other("no randomness")))?;
        let unique: String = unique.iter().map(|b| format!("{b:02x}")).collect();
        let temporary = self
            .dir
            .join(format!("{TEMPORARY_PREFIX}{unique}{TEMPORARY_SUFFIX}"));
        let written = openrelay_transport::identity::write_secret_file(&temporary, &sealed)
            .and_then(|()| std::fs::rename(&temporary, &self.file));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(io(&self.file)(e));
        }
        std::fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(io(&self.dir))
    }

    fn update<T>(&self, change: impl FnOnce(&mut Contents) -> T) -> Result<T, WalletError> {
        self.with(true, change)
    }

    /// Adds `tokens` for `challenge`, accepted until `expires` (Unix seconds:
    /// their issuer key's `expires` in the issuer directory).
    pub fn add(
        &self,
        challenge: &TokenChallenge,
        tokens: &[Token],
        expires: u64,
    ) -> Result<(), WalletError> {
        let pool = pool_of(challenge)?;
        let now = unix_now();
        self.update(|c| {
            c.purge(now);
            if expires <= now {
                return; // already useless
            }
            for token in tokens {
                let expiry = c
                    .key_expiry
                    .entry(b64::encode(&token.token_key_id))
                    .or_insert(expires);
                *expiry = (*expiry).max(expires);
            }
            c.pools
                .entry(pool)
                .or_default()
                .extend(tokens.iter().map(|t| b64::encode(&t.encode())));
        })
    }

    /// Drops every token whose issuer key (`token_key_id`) is not in
    /// `listed`: with a validator-signed directory, only tokens under the
    /// keys it lists for the issuer are kept (RFC 9576 §6; a token under a
    /// key the issuer showed only this user could be recognised where it is
    /// spent). Returns how many were dropped.
    pub fn keep_only_keys(&self, listed: &[[u8; 32]]) -> Result<usize, WalletError> {
        let listed: Vec<String> = listed.iter().map(|id| b64::encode(id)).collect();
        self.update(|c| {
            let before: usize = c.pools.values().map(Vec::len).sum();
            for tokens in c.pools.values_mut() {
                tokens.retain(|encoded| {
                    b64::decode(encoded)
                        .and_then(|b| Token::decode(&b).ok())
                        .is_some_and(|t| listed.contains(&b64::encode(&t.token_key_id)))
                });
            }
            c.pools.retain(|_, tokens| !tokens.is_empty());
            c.key_expiry.retain(|id, _| listed.contains(id));
            before - c.pools.values().map(Vec::len).sum::<usize>()
        })
    }

    /// Takes one token for `challenge` out of the wallet (saved before it is
    /// handed out, so a token is never shown twice, even after a crash).
    pub fn take(&self, challenge: &TokenChallenge) -> Result<Option<Token>, WalletError> {
        let pool = pool_of(challenge)?;
        self.update(|c| {
            // Expired and unreadable tokens are dropped rather than shown.
            c.purge(unix_now());
            let tokens = c.pools.get_mut(&pool)?;
            let token = loop {
                let encoded = tokens.pop()?;
                match b64::decode(&encoded).and_then(|b| Token::decode(&b).ok()) {
                    Some(token) => break token,
                    None => warn!("dropping an unreadable token from the wallet"),
                }
            };
            if tokens.is_empty() {
                c.pools.remove(&pool);
            }
            Some(token)
        })
    }

    /// How many usable tokens the wallet holds for `challenge` (0 if it
    /// cannot be read).
    pub fn count(&self, challenge: &TokenChallenge) -> usize {
        self.counts(std::slice::from_ref(challenge))[0]
    }

    /// How many tokens the wallet holds for each of `challenges`, in one
    /// read of the file (0s if it cannot be read).
    pub fn counts(&self, challenges: &[TokenChallenge]) -> Vec<usize> {
        let pools: Vec<Option<String>> = challenges.iter().map(|c| pool_of(c).ok()).collect();
        let now = unix_now();
        self.read(|c| {
            pools
                .iter()
                .map(|pool| pool.as_ref().map_or(0, |p| c.usable_in(p, now)))
                .collect()
        })
        .unwrap_or_else(|_| vec![0; challenges.len()])
    }

    /// How many usable tokens the wallet holds in all (0 if it cannot be
    /// read).
    pub fn balance(&self) -> usize {
        let now = unix_now();
        self.read(|c| c.pools.keys().map(|p| c.usable_in(p, now)).sum())
            .unwrap_or(0)
    }

    /// Keeps the issuer session `bearer`, valid until `expires`.
    pub fn set_session(&self, bearer: String, expires: u64) -> Result<(), WalletError> {
        self.update(|c| c.session = Some((bearer, expires)))
    }

    /// Forgets the issuer session (the issuer no longer knows it).
    pub fn clear_session(&self) -> Result<(), WalletError> {
        self.update(|c| c.session = None)
    }

    /// The issuer session's bearer if it is still valid at `now`.
    pub fn session(&self, now: u64) -> Option<String> {
        self.read(|c| {
            c.session
                .as_ref()
                .filter(|(_, expires)| *expires > now)
                .map(|(bearer, _)| bearer.clone())
        })
        .ok()
        .flatten()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use openrelay_tokens::testing::unsigned_token as token;

    /// An expiry no test outlives.
    const FUTURE: u64 = u64::MAX;

    #[test]
    fn tokens_of_an_expired_key_are_neither_counted_nor_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let access = TokenChallenge::for_issuer("issuer.example");
        let wallet = Wallet::open(dir.path()).unwrap();
        let mut old = [token(1), token(2)];
        for t in &mut old {
            t.token_key_id = [9; 32];
        }
        wallet.add(&access, &old, unix_now() - 1).unwrap();
        assert_eq!((wallet.count(&access), wallet.balance()), (0, 0));
        assert_eq!(wallet.take(&access).unwrap(), None);
        // Fresh tokens of another key are; the expired ones are gone.
        wallet.add(&access, &[token(3)], unix_now() + 3600).unwrap();
        assert_eq!(wallet.count(&access), 1);
        assert_eq!(wallet.take(&access).unwrap(), Some(token(3)));
        let held = wallet
            .read(|c| c.pools.values().map(Vec::len).sum::<usize>())
            .unwrap();
        assert_eq!(held, 0);
    }

    /// Issue 11 item 11 (RFC 9576 §6): tokens under a key the directory
    /// does not list for the issuer are dropped, whatever pool they are in.
    #[test]
    fn only_tokens_under_listed_keys_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let access = TokenChallenge::for_issuer("issuer.example");
        let pay = TokenChallenge::for_relay("issuer.example", "ed25519:relay");
        let wallet = Wallet::open(dir.path()).unwrap();
        let under = |n, key: u8| {
            let mut t = token(n);
            t.token_key_id = [key; 32];
            t
        };
        wallet
            .add(&access, &[under(1, 7), under(2, 8)], FUTURE)
            .unwrap();
        wallet.add(&pay, &[under(3, 8)], FUTURE).unwrap();
        assert_eq!(wallet.keep_only_keys(&[[7; 32]]).unwrap(), 2);
        assert_eq!((wallet.count(&access), wallet.count(&pay)), (1, 0));
        assert_eq!(wallet.take(&access).unwrap(), Some(under(1, 7)));
        // Nothing listed: nothing kept.
        wallet.add(&access, &[under(4, 7)], FUTURE).unwrap();
        assert_eq!(wallet.keep_only_keys(&[]).unwrap(), 1);
        assert_eq!(wallet.balance(), 0);
    }

    #[test]
    fn tokens_persist_sealed_and_are_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let access = TokenChallenge::for_issuer("issuer.example");
        let pay = TokenChallenge::for_relay("issuer.example", "ed25519:relay");
        {
            let wallet = Wallet::open(dir.path()).unwrap();
            wallet.add(&access, &[token(1), token(2)], FUTURE).unwrap();
            wallet.add(&pay, &[token(3)], FUTURE).unwrap();
            wallet.set_session("bearer".into(), 100).unwrap();
        }
        let sealed = std::fs::read(dir.path().join(WALLET_FILE)).unwrap();
        let needle = b64::encode(&token(1).encode());
        assert!(!String::from_utf8_lossy(&sealed).contains(&needle));
        assert!(!String::from_utf8_lossy(&sealed).contains("bearer"));

        let wallet = Wallet::open(dir.path()).unwrap();
        assert_eq!((wallet.count(&access), wallet.count(&pay)), (2, 1));
        assert_eq!(wallet.balance(), 3);
        assert_eq!(wallet.session(99).as_deref(), Some("bearer"));
        assert_eq!(wallet.session(100), None);
        assert_eq!(wallet.take(&pay).unwrap(), Some(token(3)));
        assert_eq!(wallet.take(&pay).unwrap(), None);
        let reopened = Wallet::open(dir.path()).unwrap();
        assert_eq!(reopened.count(&pay), 0);
        assert_eq!(reopened.count(&access), 2);
    }

    #[test]
    fn two_openers_share_one_wallet_and_never_take_a_token_twice() {
        let dir = tempfile::tempdir().unwrap();
        let access = TokenChallenge::for_issuer("issuer.example");
        let client = Wallet::open(dir.path()).unwrap();
        let login = Wallet::open(dir.path()).unwrap();
        login.add(&access, &[token(1), token(2)], FUTURE).unwrap();
        assert_eq!(client.count(&access), 2);
        let taken: Vec<Token> = std::thread::scope(|s| {
            let a = s.spawn(|| client.take(&access).unwrap());
            let b = s.spawn(|| login.take(&access).unwrap());
            [a.join().unwrap(), b.join().unwrap()]
                .into_iter()
                .flatten()
                .collect()
        });
        assert_eq!(taken.len(), 2);
        assert_ne!(taken[0], taken[1]);
        assert_eq!(client.take(&access).unwrap(), None);
    }

    /// A wallet in a fresh directory holding one access token, and the
    /// access challenge.
    fn wallet_with_one_token() -> (tempfile::TempDir, TokenChallenge) {
        let dir = tempfile::tempdir().unwrap();
        let access = TokenChallenge::for_issuer("issuer.example");
        Wallet::open(dir.path())
            .unwrap()
            .add(&access, &[token(1)], FUTURE)
            .unwrap();
        (dir, access)
    }

    #[test]
    fn a_crash_between_writing_and_renaming_breaks_no_later_save() {
        let (dir, access) = wallet_with_one_token();
        // What a crash after writing the temporary file and before renaming
        // it leaves: the fixed name of earlier versions, and one of today's.
        let stale = [
            dir.path().join("wallet.tmp"),
            dir.path().join("wallet.bin.00c0ffee00c0ffee.tmp"),
        ];
        let crash = || {
            for path in &stale {
                std::fs::write(path, b"half a wallet").unwrap();
            }
        };
        crash();
        let wallet = Wallet::open(dir.path()).unwrap();
        assert!(stale.iter().all(|p| !p.exists()), "opening cleans up");
        crash();
        wallet.add(&access, &[token(2)], FUTURE).unwrap();
        assert!(stale.iter().all(|p| !p.exists()), "saving cleans up");
        assert_eq!(wallet.take(&access).unwrap(), Some(token(2)));
        let reopened = Wallet::open(dir.path()).unwrap();
        assert_eq!(reopened.count(&access), 1);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(
            left.is_empty(),
            "no temporary file outlives a save: {left:?}"
        );
    }

    #[test]
    fn a_tampered_wallet_or_another_key_is_refused() {
        let (dir, _) = wallet_with_one_token();
        let path = dir.path().join(WALLET_FILE);
        let mut sealed = std::fs::read(&path).unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        std::fs::write(&path, &sealed).unwrap();
        let error = Wallet::open(dir.path()).unwrap_err();
        assert!(matches!(error, WalletError::Sealed(_)), "{error}");
        sealed[last] ^= 1;
        std::fs::write(&path, &sealed).unwrap();
        std::fs::write(dir.path().join(KEY_FILE), [7u8; 32]).unwrap();
        assert!(matches!(
            Wallet::open(dir.path()).unwrap_err(),
            WalletError::Sealed(_)
        ));
    }
}
