//! The shared double-spend store: one Redis server for a fleet of relays.
//! A spend is `SET openrelay:spent:<hex key> 1 NX EXAT <expires>`: atomic on
//! the server, so two relays racing on one token admit it once; Redis drops
//! the entry when the key epoch ends.

use redis::aio::ConnectionManager;

use super::{SpendFuture, SpendKey, SpentError, SpentTokens};
use crate::keys::hex;

/// Prefix of every key this store writes.
pub const KEY_PREFIX: &str = "openrelay:spent:";

/// The Redis store (reconnects by itself after a connection loss).
#[derive(Clone)]
pub struct RedisSpentTokens {
    connection: ConnectionManager,
}

impl std::fmt::Debug for RedisSpentTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisSpentTokens")
    }
}

impl RedisSpentTokens {
    /// Connects to `url` (`redis://host:port/db`).
    pub async fn connect(url: &str) -> Result<Self, SpentError> {
        let client = redis::Client::open(url).map_err(SpentError::from_display)?;
        let connection = ConnectionManager::new(client)
            .await
            .map_err(SpentError::from_display)?;
        Ok(RedisSpentTokens { connection })
    }
}

impl SpentTokens for RedisSpentTokens {
    fn spend(&self, key: SpendKey, expires: u64, now: u64) -> SpendFuture<'_> {
        let mut connection = self.connection.clone();
        Box::pin(async move {
            if expires <= now {
                // Already expired: its key no longer admits anything.
                return Ok(false);
            }
            let set: Option<String> = redis::cmd("SET")
                .arg(format!("{KEY_PREFIX}{}", hex(&key.0)))
                .arg(1)
                .arg("NX")
                .arg("EXAT")
                .arg(expires)
                .query_async(&mut connection)
                .await
                .map_err(SpentError::from_display)?;
            Ok(set.is_some())
        })
    }
}
