//! Following the validator-signed directory from the registry, for the
//! network's servers (relays, the token issuer): fetched directly (they are
//! not users to hide), verified as clients verify it (k of n validators,
//! freshness, no rollback; `openrelay_directory::verify_directory`) and
//! refreshed. A refused or failed fetch keeps the last good directory.
//! Clients have their own feed, which fetches through the relays.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use openrelay_config::DirectoryConfig;
use openrelay_directory::{
    DirectoryError, LastSeen, TrustConfig, TrustConfigError, VerifiedDirectory,
    verify_directory_bytes,
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
    current: Mutex<Option<(Arc<VerifiedDirectory>, LastSeen)>>,
    updates: watch::Sender<Option<Arc<VerifiedDirectory>>>,
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
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|(directory, _)| Arc::clone(directory))
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
        let last_seen = current.as_ref().map(|(_, seen)| *seen);
        // From the validator set the last directory proved (its hand-overs
        // walked), so the next need not carry them again.
        let trust = current.as_ref().map_or_else(
            || self.trust.clone(),
            |(directory, _)| self.trust.advanced(directory),
        );
        let verified = verify_directory_bytes(bytes, &trust, now, last_seen.as_ref())?;
        let seen = verified.last_seen();
        let verified = Arc::new(verified);
        let changed = last_seen != Some(seen);
        *current = Some((Arc::clone(&verified), seen));
        drop(current);
        if changed {
            self.updates.send_replace(Some(Arc::clone(&verified)));
        }
        Ok(verified)
    }

    /// Fetches the registry's directory once, verifies and keeps it.
    pub async fn refresh(&self) -> Result<Arc<VerifiedDirectory>, FollowError> {
        let (status, bytes) = self
            .registry
            .call(http::Method::GET, paths::DIRECTORY, Vec::new())
            .await?;
        if status != 200 {
            return Err(FollowError::Status(status));
        }
        Ok(self.accept(&bytes, unix_now())?)
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
                Ok(directory) => {
                    if first {
                        info!(
                            sequence = directory.sequence(),
                            relays = directory.relays().count(),
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
