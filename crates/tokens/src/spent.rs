//! The double-spend store (RFC 9577 §2.2: "Origins SHOULD implement some form
//! of double-spend prevention that prevents a token with the same nonce from
//! being redeemed twice"), behind [`SpentTokens`]:
//!
//! - `RedbSpentTokens` (feature `redb`, which relays enable; clients do not
//!   link redb): embedded, one file, the default for a single relay;
//!   concurrent spends share one durable write transaction (group commit);
//! - `RedisSpentTokens` (feature `redis`): one Redis server shared by a fleet
//!   of relays, so a token spent at one is refused at all (`SET key 1 NX EXAT`).
//!
//! Every entry carries the expiry of its token's key epoch and is forgotten
//! after it (by then the key's tokens are refused anyway), so the store holds
//! at most two issuance periods of tokens. No entry is kept longer than
//! [`MAX_ENTRY_SECS`] (see [`entry_expiry`]).

use std::future::Future;
use std::pin::Pin;

use crate::token::Token;

#[cfg(feature = "redb")]
mod redb_store;
#[cfg(feature = "redis")]
mod redis_store;
#[cfg(feature = "redb")]
pub use redb_store::RedbSpentTokens;
#[cfg(feature = "redis")]
pub use redis_store::{REDIS_RESPONSE_TIMEOUT, RedisSpentTokens, redis_host};

/// Opens the double-spend set a relay's config names: the Redis server at
/// `redis_url` if given (shared by a fleet; connected on first use), else the
/// embedded set in the file `path`.
#[cfg(feature = "redis")]
pub fn open_store(
    redis_url: Option<&str>,
    path: &std::path::Path,
) -> Result<std::sync::Arc<dyn SpentTokens>, SpentError> {
    Ok(match redis_url {
        Some(url) => std::sync::Arc::new(RedisSpentTokens::new(url)?),
        None => std::sync::Arc::new(RedbSpentTokens::open(path)?),
    })
}

/// A token's identity in the store: SHA-256 of its `AuthenticatorInput`
/// (token type, nonce, challenge digest, key id; RFC 9577 §2.2.2). Keyed on
/// what was signed, not on the signature, so no re-encoding of the
/// authenticator makes a second spend; hashed, so the store holds no nonce.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpendKey(pub [u8; 32]);

impl std::fmt::Debug for SpendKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpendKey(<redacted>)")
    }
}

impl SpendKey {
    /// The key of `token`.
    pub fn of(token: &Token) -> Self {
        SpendKey(crate::sha256(&token.authenticator_input()))
    }
}

/// Why the store could not answer; a relay refuses the token then (fail
/// closed), since it cannot tell whether it was spent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpentError {
    /// The embedded store's directory could not be created.
    #[cfg(feature = "redb")]
    #[error("double-spend store: cannot create its directory")]
    Directory(#[source] std::io::Error),
    /// The embedded store (redb) failed. Shared: a failed group commit
    /// fails every spend of its batch with the same error.
    #[cfg(feature = "redb")]
    #[error("double-spend store (redb)")]
    Redb(#[source] std::sync::Arc<redb::Error>),
    /// The embedded store's writer thread could not be started.
    #[cfg(feature = "redb")]
    #[error("double-spend store: cannot start its writer thread")]
    WriterStart(#[source] std::io::Error),
    /// The embedded store's writer thread ended (a bug or a panic in it).
    #[cfg(feature = "redb")]
    #[error("double-spend store: its writer thread ended")]
    WriterGone,
    /// The shared store (Redis) failed or refused.
    #[cfg(feature = "redis")]
    #[error("double-spend store (Redis)")]
    Redis(#[source] redis::RedisError),
    /// The shared store (Redis) did not answer in time.
    #[cfg(feature = "redis")]
    #[error("double-spend store: Redis did not answer in time")]
    RedisTimeout,
}

impl SpentError {
    /// A redb error of any of its operations.
    #[cfg(feature = "redb")]
    pub(crate) fn redb(error: impl Into<redb::Error>) -> Self {
        SpentError::Redb(std::sync::Arc::new(error.into()))
    }
}

impl openrelay_types::HasKind for SpentError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        // Without the store features the enum has no variants.
        #[cfg(feature = "redb")]
        use openrelay_types::ErrorKind;
        match *self {
            #[cfg(feature = "redb")]
            SpentError::Directory(_) => ErrorKind::Local,
            #[cfg(feature = "redb")]
            SpentError::Redb(_) => ErrorKind::Storage,
            #[cfg(feature = "redb")]
            SpentError::WriterStart(_) => ErrorKind::Local,
            #[cfg(feature = "redb")]
            SpentError::WriterGone => ErrorKind::Internal,
            #[cfg(feature = "redis")]
            SpentError::Redis(_) => ErrorKind::Storage,
            #[cfg(feature = "redis")]
            SpentError::RedisTimeout => ErrorKind::Unreachable,
        }
    }
}

/// The longest any entry is kept: a verified token's key expires at most
/// [`MAX_KEY_LIFETIME_SECS`](crate::keys::MAX_KEY_LIFETIME_SECS) after its
/// `not_before`, which is at most the clock skew ahead of now, and the
/// verifier adds the skew once more.
pub const MAX_ENTRY_SECS: u64 =
    crate::keys::MAX_KEY_LIFETIME_SECS + 2 * crate::verify::CLOCK_SKEW_SECS;

/// When an entry for a token expiring at `expires` may be forgotten: then,
/// but never later than [`MAX_ENTRY_SECS`] from `now`. No token that verifies
/// expires later, so the bound loses nothing; it keeps a bogus expiry (say
/// `u64::MAX`) from making an entry that is never pruned, or one Redis
/// refuses (`EXAT` out of range).
pub fn entry_expiry(expires: u64, now: u64) -> u64 {
    expires.min(now.saturating_add(MAX_ENTRY_SECS))
}

/// A boxed future, so stores can be chosen at run time (`Arc<dyn SpentTokens>`).
pub type SpendFuture<'a> = Pin<Box<dyn Future<Output = Result<bool, SpentError>> + Send + 'a>>;

/// The set of spent tokens.
pub trait SpentTokens: Send + Sync + std::fmt::Debug {
    /// Marks `key` spent until `expires` (Unix seconds), atomically: true if
    /// it was not spent before (the token may be accepted), false if it was.
    fn spend(&self, key: SpendKey, expires: u64, now: u64) -> SpendFuture<'_>;
}
