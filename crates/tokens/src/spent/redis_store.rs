//! The shared double-spend store: one Redis server for a fleet of relays.
//! A spend is `SET openrelay:spent:<hex key> 1 NX EXAT <expires>`: atomic on
//! the server, so two relays racing on one token admit it once; Redis drops
//! the entry when the key epoch ends.
//!
//! The connection is made on first use (and again after a failure), so a
//! relay can be set up synchronously; [`RedisSpentTokens::connect`] connects
//! at once, to find a wrong address at start-up.
//!
//! Every spend, connecting included, ends within [`REDIS_RESPONSE_TIMEOUT`]:
//! a Redis that hangs (overloaded, stopped, a black-holed route) costs a
//! token request one refusal (503, "double-spend store unavailable"), never
//! a request that waits on it. redis-rs bounds each response on a live
//! connection itself, but a first connection retries with backoff for
//! 16 s, which is why the whole spend is bounded here.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::{SpendFuture, SpendKey, SpentError, SpentTokens, entry_expiry};
use crate::keys::hex;

/// Prefix of every key this store writes.
pub(crate) const KEY_PREFIX: &str = "openrelay:spent:";

/// The longest a spend may take, connecting included. A healthy Redis on
/// the operator's network answers in about a millisecond; a second is far
/// beyond that and still well within a client's patience (and a payment's
/// grace window).
pub const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The host of a `redis://` URL as the Redis client reads it (a name, or an
/// address without brackets); `None` for a Unix socket or a URL that does
/// not parse. (A relay refuses its Redis as a destination.)
pub fn redis_host(url: &str) -> Option<String> {
    use redis::IntoConnectionInfo;
    match url.into_connection_info().ok()?.addr() {
        redis::ConnectionAddr::Tcp(host, _) => Some(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        ),
        _ => None,
    }
}

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
            client: redis::Client::open(url).map_err(SpentError::Redis)?,
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
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_RESPONSE_TIMEOUT))
            .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT));
        // A first connection cut short by the caller's timeout leaves the
        // cell empty: the next spend tries again.
        self.connection
            .get_or_try_init(|| ConnectionManager::new_with_config(self.client.clone(), config))
            .await
            .cloned()
            .map_err(SpentError::Redis)
    }

    async fn spend_now(&self, key: SpendKey, expires: u64) -> Result<bool, SpentError> {
        let mut connection = self.connection().await?;
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{KEY_PREFIX}{}", hex(&key.0)))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(expires)
            .query_async(&mut connection)
            .await
            .map_err(SpentError::Redis)?;
        Ok(set.is_some())
    }
}

impl SpentTokens for RedisSpentTokens {
    fn spend(&self, key: SpendKey, expires: u64, now: u64) -> SpendFuture<'_> {
        Box::pin(async move {
            if expires <= now {
                // Already expired: its key no longer admits anything.
                return Ok(false);
            }
            tokio::time::timeout(
                REDIS_RESPONSE_TIMEOUT,
                self.spend_now(key, entry_expiry(expires, now)),
            )
            .await
            .map_err(|_| SpentError::RedisTimeout)?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redis_host;

    #[test]
    fn the_host_of_a_redis_url() {
        for (url, host) in [
            ("redis://10.0.0.5:6379/0", Some("10.0.0.5")),
            (
                "redis://user:secret@redis.internal/1",
                Some("redis.internal"),
            ),
            ("redis://[2001:db8::5]:6379", Some("2001:db8::5")),
            ("redis+unix:///run/redis.sock", None),
            ("not a url", None),
        ] {
            assert_eq!(redis_host(url).as_deref(), host, "{url}");
        }
    }
}
