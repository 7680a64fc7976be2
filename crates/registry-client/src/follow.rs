//! Following the validator-signed directory from the registry, for the
//! network's servers (relays, the token issuer): fetched directly (they are
//! not users to hide), verified as clients verify it (k of n validators,
//! freshness, no rollback; `openrelay_directory::verify_directory`) and
//! refreshed, as a diff from the one held where the registry has one
//! (`GET /v1/directory/diff`; the result is verified as a whole
//! directory). A refused or failed fetch keeps the last good directory.
//! Clients have their own feed, which fetches through the relays.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openrelay_config::DirectoryConfig;
use openrelay_directory::{
    DiffError, DirectoryDiff, DirectoryError, FormatError, LastSeen, SignedDirectoryDigest,
    TrustConfig, TrustConfigError, VerifiedDirectory, verify_directory_bytes,
};
use openrelay_transport::backoff::Backoff;
use openrelay_types::{ErrorKind, HasKind, unix_now};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::paths;
use crate::{CallError, RegistryClient};

/// Why the directory settings are unusable.
#[derive(Debug, thiserror::Error)]
#[error("directory.validators: {0}")]
pub struct FollowConfigError(#[from] pub TrustConfigError);

impl HasKind for FollowConfigError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }
}

/// Why a fetch brought no new directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    /// The registry could not be asked.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The registry answered something else than a directory.
    #[error("registry answered HTTP {0}")]
    Status(u16),
    /// What it served does not verify.
    #[error("directory refused: {0}")]
    Refused(#[from] DirectoryError),
}

impl HasKind for FollowError {
    fn kind(&self) -> ErrorKind {
        match self {
            FollowError::Call(e) => e.kind(),
            FollowError::Status(_) => ErrorKind::Refused,
            FollowError::Refused(_) => ErrorKind::PeerMisbehaved,
        }
    }
}

/// What a refresh did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// A directory was fetched and taken (by a server's follower, the
    /// same one again when the registry keeps no diff from it);
    /// `transferred` bytes crossed the network for its `bytes`.
    Taken {
        /// Whether it was made from a diff to the directory held.
        from_diff: bool,
        /// Bytes fetched.
        transferred: usize,
        /// The directory's size.
        bytes: usize,
    },
    /// The directory held is the newest.
    Unchanged,
}

/// Why a refresh did not use a diff (it fetches the whole directory
/// instead): clients' and servers' refreshes alike.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NoDiff {
    /// The registry could not be asked.
    #[error(transparent)]
    Call(#[from] CallError),
    /// It answered neither a diff (200) nor "unchanged" (204): 404 when it
    /// keeps no diff from the directory held.
    #[error("registry answered HTTP {0}")]
    Status(u16),
    /// The diff does not decode.
    #[error("the registry's diff: {0}")]
    Format(#[from] FormatError),
    /// The diff does not apply to the directory held.
    #[error(transparent)]
    Apply(#[from] DiffError),
    /// The directory held (the diff's base) could not be read.
    #[error("the directory held, the diff's base: {0}")]
    Base(std::io::Error),
    /// The directory held keeps its body only in a file
    /// (`VerifiedDirectory::keep_body_in`; a follower never has it do so).
    #[error("the directory held has no body in memory to apply the diff to")]
    NoBase,
    /// "Unchanged", but the directory held is no longer fresh.
    #[error("the directory held: {0}")]
    Held(DirectoryError),
    /// What the diff made does not verify.
    #[error("directory refused: {0}")]
    Refused(#[from] DirectoryError),
}

impl FollowError {
    /// Whether the registry has simply signed no directory yet (a network
    /// starting up): no problem to warn about.
    pub fn is_none_yet(&self) -> bool {
        matches!(self, FollowError::Status(404))
    }
}

/// Where a holder of tokens checks an issuer's keys (RFC 9576 §6 key
/// consistency): the validator-signed directory verified now, and a copy
/// someone else hands over (the issuer's), verified as any before it is
/// taken. A client's feed and a server's [`DirectoryFollower`] are both
/// one, so a validator's prober checks its issuer exactly as clients do.
pub trait VerifiedDirectorySource: std::fmt::Debug + Send + Sync {
    /// The last directory verified, however old (what it lists was shown
    /// to everyone), if any.
    fn verified(&self) -> Option<Arc<VerifiedDirectory>>;

    /// Verifies `bytes` (a signed directory handed over by someone else:
    /// its validators' signatures make it trustworthy, not who sent it)
    /// after the last one taken, and takes it.
    fn accept_copy(&self, bytes: &[u8]) -> Result<Arc<VerifiedDirectory>, DirectoryError>;
}

impl VerifiedDirectorySource for DirectoryFollower {
    fn verified(&self) -> Option<Arc<VerifiedDirectory>> {
        self.current()
    }

    fn accept_copy(&self, bytes: &[u8]) -> Result<Arc<VerifiedDirectory>, DirectoryError> {
        self.accept(bytes, unix_now())
    }
}

/// The directory a server follows.
#[derive(Debug)]
pub struct DirectoryFollower {
    registry: RegistryClient,
    trust: TrustConfig,
    refresh: Duration,
    current: Mutex<Option<Held>>,
    updates: watch::Sender<Option<Arc<VerifiedDirectory>>>,
}

/// The directory a follower holds.
#[derive(Debug, Clone)]
struct Held {
    directory: Arc<VerifiedDirectory>,
    seen: LastSeen,
    /// The digest of the envelope as the registry served it: the base a
    /// diff names.
    envelope: SignedDirectoryDigest,
}

/// The trust a `[directory]` section configures: its genesis validator
/// set (weighted with `validator_weights`, else `threshold` of equal
/// `validators`), maximum age and pinned deployment (`[directory.chain]`).
/// Relays, the issuer and clients all start from it.
pub fn trust_config(config: &DirectoryConfig) -> Result<TrustConfig, TrustConfigError> {
    let trust = TrustConfig::from_genesis_pins(
        &config.validators,
        config.threshold,
        config.weights().as_deref(),
        config.max_age_secs,
    )?;
    Ok(match config.chain {
        Some(pin) => trust.pinned_to_deployment(openrelay_directory::Deployment {
            chain_id: pin.chain_id,
            contract: pin.contract.0,
        }),
        None => trust,
    })
}

impl DirectoryFollower {
    /// A follower of `config`'s registry and validators.
    pub fn new(config: &DirectoryConfig) -> Result<Self, FollowConfigError> {
        let trust = trust_config(config)?;
        Ok(Self::with_trust(
            RegistryClient::new(config.registry.addr, config.registry.key),
            trust,
            Duration::from_secs(config.refresh_secs),
        ))
    }

    /// A follower of `registry` trusting `trust`, fetching every `refresh`.
    pub fn with_trust(registry: RegistryClient, trust: TrustConfig, refresh: Duration) -> Self {
        DirectoryFollower {
            registry,
            trust,
            refresh,
            current: Mutex::new(None),
            updates: watch::Sender::new(None),
        }
    }

    /// The trust configuration directories are verified with (its genesis
    /// set; each directory after the first is verified from the set the
    /// last one proved, [`TrustConfig::advanced`]).
    pub fn trust(&self) -> &TrustConfig {
        &self.trust
    }

    /// The last directory verified, however old.
    pub fn current(&self) -> Option<Arc<VerifiedDirectory>> {
        self.held().map(|held| held.directory)
    }

    fn held(&self) -> Option<Held> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The last directory verified, if it is still fresh at `now` (not past
    /// its validity or the trust config's maximum age).
    pub fn fresh(&self, now: u64) -> Option<Arc<VerifiedDirectory>> {
        self.current()
            .filter(|directory| directory.check_fresh(&self.trust, now).is_ok())
    }

    /// A receiver that sees every newly accepted directory.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<VerifiedDirectory>>> {
        self.updates.subscribe()
    }

    /// Verifies `bytes` (a signed directory) at `now` after the last one
    /// accepted and keeps it.
    pub fn accept(&self, bytes: &[u8], now: u64) -> Result<Arc<VerifiedDirectory>, DirectoryError> {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let last_seen = current.as_ref().map(|held| held.seen);
        // From the validator set the last directory proved (its hand-overs
        // walked), so the next need not carry them again.
        let trust = current.as_ref().map_or_else(
            || self.trust.clone(),
            |held| self.trust.advanced(&held.directory),
        );
        let verified = verify_directory_bytes(bytes, &trust, now, last_seen.as_ref())?;
        let seen = verified.last_seen();
        let verified = Arc::new(verified);
        let changed = last_seen != Some(seen);
        *current = Some(Held {
            directory: Arc::clone(&verified),
            seen,
            envelope: SignedDirectoryDigest::of(bytes),
        });
        drop(current);
        if changed {
            self.updates.send_replace(Some(Arc::clone(&verified)));
        }
        Ok(verified)
    }

    /// Fetches the registry's directory once, verifies and keeps it: as a
    /// diff from the one held where the registry has one. The directory
    /// held after it, and what the refresh did.
    pub async fn refresh(&self) -> Result<(Arc<VerifiedDirectory>, Refresh), FollowError> {
        if let Some(held) = self.held() {
            match self.refresh_by_diff(held).await {
                Ok(refreshed) => return Ok(refreshed),
                Err(NoDiff::Status(404)) => {
                    debug!("no diff from the directory held; fetching the whole directory");
                }
                Err(e) => {
                    debug!(error = %e, "directory diff not used; fetching the whole directory")
                }
            }
        }
        let (status, bytes) = self
            .registry
            .call(http::Method::GET, paths::DIRECTORY, Vec::new())
            .await?;
        if status != 200 {
            return Err(FollowError::Status(status));
        }
        let directory = self.accept(&bytes, unix_now())?;
        let refresh = Refresh::Taken {
            from_diff: false,
            transferred: bytes.len(),
            bytes: bytes.len(),
        };
        Ok((directory, refresh))
    }

    /// The diff from `held` to the registry's directory, applied, verified
    /// and kept; `held` itself when the registry says it is the newest and
    /// it is still fresh.
    async fn refresh_by_diff(
        &self,
        held: Held,
    ) -> Result<(Arc<VerifiedDirectory>, Refresh), NoDiff> {
        let path = format!("{}?from={}", paths::DIRECTORY_DIFF, held.envelope);
        match self
            .registry
            .call(http::Method::GET, &path, Vec::new())
            .await?
        {
            (200, diff) => {
                let base = held.directory.signed().ok_or(NoDiff::NoBase)?.to_bytes();
                let bytes = DirectoryDiff::from_bytes(&diff)?.apply(&base)?;
                let directory = self.accept(&bytes, unix_now())?;
                let refresh = Refresh::Taken {
                    from_diff: true,
                    transferred: diff.len(),
                    bytes: bytes.len(),
                };
                Ok((directory, refresh))
            }
            (204, _) => {
                held.directory
                    .check_fresh(&self.trust, unix_now())
                    .map_err(NoDiff::Held)?;
                Ok((held.directory, Refresh::Unchanged))
            }
            (status, _) => Err(NoDiff::Status(status)),
        }
    }

    /// Keeps the directory current (forever; abort to stop): a fetch every
    /// refresh interval, retried with backoff (from 500 ms, at most the
    /// refresh interval and a minute) while it fails.
    pub async fn run(&self) {
        let mut backoff = Backoff::seeded_now(
            Duration::from_millis(500),
            self.refresh.min(Duration::from_secs(60)),
        );
        let mut failing = false;
        loop {
            let first = self.current().is_none();
            let delay = match self.refresh().await {
                Ok((directory, refresh)) => {
                    debug!(
                        sequence = directory.sequence(),
                        ?refresh,
                        "directory refreshed"
                    );
                    if first {
                        info!(
                            sequence = directory.sequence(),
                            relays = directory.relay_count(),
                            "validator-signed directory received"
                        );
                    }
                    failing = false;
                    backoff.reset();
                    self.refresh
                }
                Err(e) => {
                    // Keep the last good directory; the registry may be down.
                    if failing || (first && e.is_none_yet()) {
                        debug!(error = %e, "directory still not updated");
                    } else {
                        warn!(error = %e, "directory not updated");
                        failing = true;
                    }
                    backoff.next_delay()
                }
            };
            tokio::time::sleep(delay).await;
        }
    }
}
