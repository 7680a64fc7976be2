//! The shared double-spend store: one Redis server for a fleet of relays.
//! A spend is `SET openrelay:spent:<hex key> 1 NX EXAT <expires>`: atomic on
//! the server, so two relays racing on one token admit it once; Redis drops
//! the entry when the key epoch ends.
//!
//! The connection is made on first use (and again after a failure), so a
//! relay can be set up synchronously; [`RedisSpentTokens::connect`] connects
//! at once, to find a wrong address at start-up.

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use super::{SpendFuture, SpendKey, SpentError, SpentTokens, entry_expiry};
use crate::keys::hex;

/// Prefix of every key this store writes.
pub const KEY_PREFIX: &str = "openrelay:spent:";

/// The Redis store (reconnects by itself after a connection loss).
pub struct RedisSpentTokens {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
}

impl std::fmt::Debug for RedisSpentTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisSpentTokens")
    }
}

impl RedisSpentTokens {
    /// A store at `url` (`redis://host:port/db`); connects on first use.
    pub fn new(url: &str) -> Result<Self, SpentError> {
        Ok(RedisSpentTokens {
            client: redis::Client::open(url).map_err(SpentError::from_display)?,
            connection: OnceCell::new(),
        })
    }

    /// A store at `url`, connected now.
    pub async fn connect(url: &str) -> Result<Self, SpentError> {
        let store = Self::new(url)?;
        store.connection().await?;
        Ok(store)
    }

    async fn connection(&self) -> Result<ConnectionManager, SpentError> {
        self.connection
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .cloned()
            .map_err(SpentError::from_display)
    }
}

impl SpentTokens for RedisSpentTokens {
    fn spend(&self, key: SpendKey, expires: u64, now: u64) -> SpendFuture<'_> {
        Box::pin(async move {
            if expires <= now {
                // Already expired: its key no longer admits anything.
                return Ok(false);
            }
            let mut connection = self.connection().await?;
            let set: Option<String> = redis::cmd("SET")
                .arg(format!("{KEY_PREFIX}{}", hex(&key.0)))
                .arg(1)
                .arg("NX")
                .arg("EXAT")
                .arg(entry_expiry(expires, now))
                .query_async(&mut connection)
                .await
                .map_err(SpentError::from_display)?;
            Ok(set.is_some())
        })
    }
}
