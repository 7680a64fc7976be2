//! The relay list from a registry's signed directory: fetched, verified
//! against the configured validators (k of n; `openrelay-directory`), cached
//! in the state directory and refreshed. While the registry is down the client
//! keeps working from the cached directory until it is too old; a forged,
//! stale, rolled-back or under-signed directory is refused and changes nothing.
//!
//! The directory is fetched *through the relays*: a QUIC connection to the
//! registry inside a connect-udp flow on the current path, so the registry
//! sees an egress relay, never the user (SPEC: registries learn nothing about
//! users). The directory's signatures, not the channel, make it trustworthy.
//! There is no direct fetch: the first path comes from the cache or from the
//! config's `[[relay]]` entries, used to bootstrap.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openrelay_config::{DirectoryConfig, RelayEntry};
use openrelay_directory::{
    LastSeen, TrustConfig, ValidatorId, VerifiedDirectory, verify_directory_bytes,
};
use openrelay_registry::http::RegistryClient;
use openrelay_registry::service::paths;
pub use openrelay_registry::service::unix_now;
use openrelay_transport::endpoint::TUNNELLED_MTU;
use tracing::{info, warn};

use crate::manager::PathManager;

/// The cached directory's file name in the state directory.
pub const CACHE_FILE: &str = "directory.bin";

/// Why the directory source could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("directory.validators: {0}")]
pub struct DirectoryConfigError(String);

/// A verified relay list.
#[derive(Debug, Clone)]
pub struct RelayList {
    /// The relays, as the path manager uses them.
    pub relays: Vec<RelayEntry>,
    /// When the directory was issued.
    pub issued_at: u64,
}

/// Fetches and verifies directories.
#[derive(Debug)]
pub struct DirectoryFeed {
    registry: RegistryClient,
    trust: TrustConfig,
    cache: PathBuf,
    last_seen: Mutex<Option<LastSeen>>,
    refresh: Duration,
}

/// The manager's view of a verified relay: the relay's id (short) as its
/// name, the operator's key as its operator (names can be claimed by
/// anyone; keys cannot), its first endpoint and its pinned QUIC key.
fn relay_entries(directory: &VerifiedDirectory) -> Vec<RelayEntry> {
    directory
        .relays()
        .filter_map(|relay| {
            let id = relay.id().to_string();
            let short = id
                .strip_prefix("ed25519:")
                .unwrap_or(&id)
                .chars()
                .take(10)
                .collect::<String>();
            Some(RelayEntry {
                name: format!("{}-{short}", relay.role()),
                role: relay.role(),
                operator: relay.operator_id().to_string(),
                operator_key: Some(relay.operator_id().into()),
                addr: *relay.endpoints().first()?,
                key: relay.quic_pin(),
                country: Some(relay.region().country.to_string()),
                city: Some(relay.region().city.clone()).filter(|c| !c.is_empty()),
                network: Some(relay.network().to_string()),
                bandwidth_bps: Some(relay.bandwidth_bps()),
            })
        })
        .collect()
}

impl DirectoryFeed {
    /// A feed for `config`, caching in `state_dir`.
    pub fn new(config: &DirectoryConfig, state_dir: &Path) -> Result<Self, DirectoryConfigError> {
        let validators = config
            .validators
            .iter()
            .map(|pin| ValidatorId::try_from(*pin).map_err(|e| DirectoryConfigError(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        let trust = TrustConfig::new(validators, config.threshold, config.max_age_secs)
            .map_err(|e| DirectoryConfigError(e.to_string()))?;
        Ok(DirectoryFeed {
            registry: RegistryClient::new(config.registry.addr, config.registry.key),
            trust,
            cache: state_dir.join(CACHE_FILE),
            last_seen: Mutex::new(None),
            refresh: Duration::from_secs(config.refresh_secs),
        })
    }

    fn accept(&self, bytes: &[u8], now: u64) -> Result<RelayList, String> {
        let mut last_seen = self
            .last_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let verified = verify_directory_bytes(bytes, &self.trust, now, last_seen.as_ref())
            .map_err(|e| e.to_string())?;
        *last_seen = Some(verified.last_seen());
        Ok(RelayList {
            relays: relay_entries(&verified),
            issued_at: verified.issued_at(),
        })
    }

    /// The cached directory, if it still verifies now.
    pub fn load_cache(&self) -> Option<RelayList> {
        let bytes = std::fs::read(&self.cache).ok()?;
        match self.accept(&bytes, unix_now()) {
            Ok(list) => Some(list),
            Err(e) => {
                warn!(error = %e, "cached directory refused");
                None
            }
        }
    }

    /// Fetches the directory through a path of `manager`.
    async fn fetch_through_path(&self, manager: &Arc<PathManager>) -> Result<Vec<u8>, String> {
        let (endpoint, _hold) = crate::flow::tunnel_endpoint(manager, self.registry.addr()).await?;
        let result = self
            .registry
            .call_via(
                &endpoint,
                TUNNELLED_MTU,
                http::Method::GET,
                paths::DIRECTORY,
                Vec::new(),
            )
            .await;
        endpoint.close(quinn::VarInt::from_u32(0x100), b"done");
        match result {
            Ok((200, bytes)) => Ok(bytes),
            Ok((status, _)) => Err(format!("registry answered HTTP {status}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Fetches (through the relays), verifies and caches the directory.
    pub async fn fetch(&self, manager: &Arc<PathManager>) -> Result<RelayList, String> {
        let bytes = self.fetch_through_path(manager).await?;
        let list = self.accept(&bytes, unix_now())?;
        // Write then rename, so a crash never leaves half a cache.
        let temporary = self.cache.with_extension("tmp");
        if std::fs::write(&temporary, &bytes)
            .and_then(|()| std::fs::rename(&temporary, &self.cache))
            .is_err()
        {
            warn!("cannot cache the directory");
        }
        Ok(list)
    }

    /// Keeps `manager`'s relay list current: the cache at once, then a fetch
    /// every refresh interval.
    pub async fn run(self: Arc<Self>, manager: Arc<PathManager>) {
        if let Some(list) = self.load_cache() {
            manager.set_relays(list.relays, Some(list.issued_at));
        }
        loop {
            match self.fetch(&manager).await {
                Ok(list) => {
                    info!(relays = list.relays.len(), "directory updated");
                    manager.set_relays(list.relays, Some(list.issued_at));
                }
                // Keep the last good list; the registry may be down.
                Err(e) => warn!(error = %e, "directory not updated"),
            }
            tokio::time::sleep(self.refresh).await;
        }
    }
}
