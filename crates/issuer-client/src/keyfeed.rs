//! How relays get the issuer's token keys and keep them current: with a
//! `[directory]`, only the keys the validator-signed directory lists for the
//! issuer (RFC 9576 §6 key consistency: whatever the issuer itself serves);
//! without one, from the issuer itself over the network (its TLS key
//! pinned; `GET /.well-known/private-token-issuer-directory`, RFC 9578 §4),
//! or from a local copy of that document. A relay serves from its start:
//! until the keys arrive its [`TokenGate`] refuses tokens with 503 ("issuer
//! keys not yet available"), and [`follow`] retries with backoff, so relays
//! and issuer may start in any order.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openrelay_config::{AdmissionConfig, DirectoryConfig, ServiceEndpoint};
pub use openrelay_registry_client::follow::FollowConfigError;
use openrelay_registry_client::follow::{DirectoryFollower, FollowError};
use openrelay_tokens::gate::{GateError, TokenGate, read_keys};
use openrelay_tokens::{DirectoryError, EpochKey};
use openrelay_transport::backoff::Backoff;
use openrelay_types::{ErrorKind, HasKind, KeyPin};
use tracing::{debug, info, warn};

use crate::client::{IssuerClient, IssuerClientError};
use crate::consistency::{KeyConsistencyError, listed_keys};

/// How long one fetch from the issuer may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// The first retry after a failed fetch; later ones double up to the
/// refresh interval (at most a minute).
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between tries while the relay holds no keys at all: it
/// refuses every token meanwhile, so an issuer that comes up late (another
/// start order) is noticed within seconds, not a minute.
const MAX_RETRY_WITHOUT_KEYS: Duration = Duration::from_secs(5);

/// Why keys could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFeedError {
    /// The local file is unreadable or not a directory with keys.
    #[error(transparent)]
    File(#[from] GateError),
    /// The issuer could not be asked.
    #[error(transparent)]
    Issuer(#[from] IssuerClientError),
    /// The issuer's directory is malformed.
    #[error("issuer at {addr}: {reason}")]
    IssuerDirectory {
        /// The issuer.
        addr: std::net::SocketAddr,
        /// What is wrong.
        reason: DirectoryError,
    },
    /// The issuer's directory lists no usable key.
    #[error("issuer at {0}: no token keys of type 0x0002")]
    NoTokenKeys(std::net::SocketAddr),
    /// The issuer did not answer in time.
    #[error("issuer at {0}: no answer within {FETCH_TIMEOUT:?}")]
    TimedOut(std::net::SocketAddr),
    /// The directory could not be had.
    #[error(transparent)]
    Directory(#[from] FollowError),
    /// The verified directory lists no usable keys for the issuer: every
    /// token is refused until it does.
    #[error(transparent)]
    NotListed(#[from] KeyConsistencyError),
}

impl HasKind for KeyFeedError {
    fn kind(&self) -> ErrorKind {
        match self {
            KeyFeedError::File(_) => ErrorKind::Config,
            KeyFeedError::Issuer(e) => e.kind(),
            KeyFeedError::IssuerDirectory { .. } | KeyFeedError::NoTokenKeys(_) => {
                ErrorKind::PeerMisbehaved
            }
            KeyFeedError::TimedOut(_) => ErrorKind::Unreachable,
            KeyFeedError::Directory(e) => e.kind(),
            KeyFeedError::NotListed(e) => e.kind(),
        }
    }
}

/// Where a relay's issuer keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// The issuer, over the network.
    Issuer(ServiceEndpoint),
    /// A local copy of its directory (overrides the network when given).
    File(PathBuf),
    /// Only the keys the validator-signed directory lists for the issuer
    /// pinned as `issuer`, named `issuer_name` (RFC 9576 §6).
    Directory {
        /// The directory, fetched from the registry and verified.
        follower: Arc<DirectoryFollower>,
        /// The issuer's identity key.
        issuer: KeyPin,
        /// Its name in the relay's token challenge.
        issuer_name: String,
    },
}

impl KeySource {
    /// The source a relay's token settings name: with the relay's
    /// `directory`, the directory (for the issuer `config.issuer` names);
    /// else the local file if given, else the issuer. `None` if none of
    /// them (the config check refuses that).
    pub fn from_config(
        config: &AdmissionConfig,
        directory: Option<&DirectoryConfig>,
    ) -> Result<Option<Self>, FollowConfigError> {
        Ok(match (directory, &config.issuer_keys, &config.issuer) {
            (Some(directory), _, Some(issuer)) => Some(KeySource::Directory {
                follower: Arc::new(DirectoryFollower::new(directory)?),
                issuer: issuer.key,
                issuer_name: config.issuer_name.clone(),
            }),
            (_, Some(path), _) => Some(KeySource::File(path.clone())),
            (_, None, Some(issuer)) => Some(KeySource::Issuer(issuer.clone())),
            (_, None, None) => None,
        })
    }

    /// The keys now, if they can be had without the network (a local file
    /// that reads): so a relay with a file starts with keys.
    pub fn read_local(&self) -> Option<Vec<EpochKey>> {
        match self {
            KeySource::File(path) => read_keys(path).ok(),
            KeySource::Issuer(_) | KeySource::Directory { .. } => None,
        }
    }

    /// The issuer's current keys.
    pub async fn fetch(&self) -> Result<Vec<EpochKey>, KeyFeedError> {
        let issuer = match self {
            KeySource::File(path) => return Ok(read_keys(path)?),
            KeySource::Directory {
                follower,
                issuer,
                issuer_name,
            } => {
                let (directory, _) = follower.refresh().await?;
                return Ok(listed_keys(&directory, issuer, issuer_name)?);
            }
            KeySource::Issuer(issuer) => issuer,
        };
        let fetch = async {
            let client = IssuerClient::connect(issuer.addr, issuer.key).await?;
            let keys = client.directory().await?.epoch_keys().map_err(|reason| {
                KeyFeedError::IssuerDirectory {
                    addr: issuer.addr,
                    reason,
                }
            })?;
            if keys.is_empty() {
                return Err(KeyFeedError::NoTokenKeys(issuer.addr));
            }
            Ok(keys)
        };
        tokio::time::timeout(FETCH_TIMEOUT, fetch)
            .await
            .map_err(|_| KeyFeedError::TimedOut(issuer.addr))?
    }
}

/// Gives `gate` the issuer's keys from `source` and keeps them current:
/// fetched at once, again every `refresh`; a failure keeps the keys held
/// and is retried with backoff (from 250 ms, doubling to `refresh`, at most
/// a minute, or 5 s while no keys are held). Runs forever; abort the task to
/// stop.
pub async fn follow(gate: Arc<TokenGate>, source: KeySource, refresh: Duration) {
    let mut backoff = Backoff::seeded_now(FIRST_RETRY, refresh.min(MAX_RETRY));
    let mut failing = false;
    loop {
        let delay = match source.fetch().await {
            Ok(keys) => {
                let first = !gate.has_keys();
                let count = keys.len();
                if gate.set_keys(keys) || first {
                    info!(keys = count, "issuer keys updated");
                }
                failing = false;
                backoff.reset();
                refresh
            }
            // The verified directory lists no keys for the issuer: what the
            // relay held is no longer consistent, so every token is refused
            // until a directory lists keys again.
            Err(KeyFeedError::NotListed(e)) => {
                let had = gate.has_keys();
                gate.set_keys(Vec::new());
                if had || !failing {
                    warn!(error = %e, "no token keys listed for the issuer; refusing its tokens");
                }
                failing = true;
                backoff.next_delay()
            }
            Err(e) => {
                // A network starting up has no directory yet: say so quietly.
                let none_yet = matches!(&e, KeyFeedError::Directory(f) if f.is_none_yet());
                if failing || (none_yet && !gate.has_keys()) {
                    debug!(error = %e, "issuer keys still unavailable");
                } else {
                    warn!(
                        error = %e,
                        have_keys = gate.has_keys(),
                        "cannot get the issuer keys; retrying"
                    );
                    failing = true;
                }
                let delay = backoff.next_delay();
                if gate.has_keys() {
                    delay
                } else {
                    delay.min(MAX_RETRY_WITHOUT_KEYS)
                }
            }
        };
        tokio::time::sleep(delay).await;
    }
}
