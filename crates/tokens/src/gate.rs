//! A token gate: verifies `Authorization: PrivateToken token=...` (RFC 9577
//! §2.2) against one challenge and the issuer's current keys, and spends each
//! token once in a double-spend store. The ingress admits tunnels with it and
//! the egress takes payments with it; they differ only in the challenge
//! (RFC 9577 §2.1.1: the ingress's names only the issuer, the egress's also
//! its operator in `origin_info`).
//!
//! | input | refusal | status |
//! |---|---|---|
//! | no `PrivateToken` credentials | [`Refusal::Missing`] "token required" | 401 + challenge |
//! | malformed `Authorization` or token | [`Refusal::Malformed`] "malformed token" | 400 |
//! | token for another challenge | [`Refusal::Invalid`] "token for another challenge" | 401 + challenge |
//! | unknown key | [`Refusal::Invalid`] "unknown token key" | 401 + challenge |
//! | key outside its epoch | [`Refusal::Invalid`] "token key expired" | 401 + challenge |
//! | bad signature | [`Refusal::Invalid`] "bad token signature" | 401 + challenge |
//! | spent before | [`Refusal::Spent`] "token already spent" | 401 + challenge |
//! | double-spend store unreachable | [`Refusal::StoreUnavailable`] "double-spend store unavailable" | 503 (fail closed) |
//! | no issuer keys yet | [`Refusal::KeysUnavailable`] "issuer keys not yet available" | 503 (the relay serves while it waits for them) |
//!
//! A gate starts without keys and is given them by its owner
//! ([`TokenGate::set_keys`]): fetched from the issuer over the network and
//! followed as they rotate (`openrelay_issuer_client::keyfeed`), or read from a
//! local file ([`read_keys`]). Tokens are never logged.

use openrelay_types::unix_now;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use tracing::warn;

use crate::header::parse_authorization;
use crate::{
    EpochKey, HeaderError, IssuerDirectory, Redemption, SpentTokens, Token, TokenChallenge,
    TokenVerifier, VerifyError,
};

/// Why a gate could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The issuer keys could not be read.
    #[error("issuer keys {}", path.display())]
    Keys {
        /// The directory file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: KeyFileError,
    },
    /// The challenge cannot be encoded.
    #[error("challenge: {0}")]
    Challenge(#[from] crate::ChallengeError),
}

/// What is wrong with an issuer directory file (`read_keys`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// It cannot be read.
    #[error("cannot read it")]
    Read(#[source] std::io::Error),
    /// It is not an issuer directory (RFC 9578 §4) with usable keys.
    #[error(transparent)]
    Directory(#[from] crate::directory::DirectoryError),
    /// It lists no key of the token type relays check (0x0002).
    #[error("no token keys of type 0x0002")]
    NoKeys,
}

impl openrelay_types::HasKind for GateError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        use openrelay_types::ErrorKind;
        match self {
            GateError::Keys {
                source: KeyFileError::Read(_),
                ..
            } => ErrorKind::Local,
            GateError::Keys { .. } => ErrorKind::Config,
            GateError::Challenge(_) => ErrorKind::Config,
        }
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `PrivateToken` credentials: ask for a token.
    Missing,
    /// Credentials that do not parse.
    Malformed,
    /// A token that does not verify.
    Invalid(VerifyError),
    /// A token spent before.
    Spent,
    /// The double-spend store did not answer.
    StoreUnavailable,
    /// The relay has no issuer keys yet (the issuer was not reachable).
    KeysUnavailable,
}

impl Refusal {
    /// The response status.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Refusal::Malformed => http::StatusCode::BAD_REQUEST,
            Refusal::StoreUnavailable | Refusal::KeysUnavailable => {
                http::StatusCode::SERVICE_UNAVAILABLE
            }
            Refusal::Missing | Refusal::Invalid(_) | Refusal::Spent => {
                http::StatusCode::UNAUTHORIZED
            }
        }
    }

    /// The Proxy-Status details (RFC 9209 §2.1.5).
    pub fn details(&self) -> &'static str {
        match self {
            Refusal::Missing => "token required",
            Refusal::Malformed => "malformed token",
            Refusal::Invalid(VerifyError::WrongChallenge) => "token for another challenge",
            Refusal::Invalid(VerifyError::UnknownKey) => "unknown token key",
            Refusal::Invalid(VerifyError::KeyExpired) => "token key expired",
            Refusal::Invalid(_) => "bad token signature",
            Refusal::Spent => "token already spent",
            Refusal::StoreUnavailable => "double-spend store unavailable",
            Refusal::KeysUnavailable => "issuer keys not yet available",
        }
    }

    /// Whether the answer carries a fresh challenge (all 401s: the client
    /// can get a token that will do).
    pub fn challenges(&self) -> bool {
        self.status() == http::StatusCode::UNAUTHORIZED
    }
}

/// A token gate for one challenge; see the [module documentation](self).
#[derive(Debug)]
pub struct TokenGate {
    verifier: RwLock<TokenVerifier>,
    /// Whether the issuer's keys arrived (until then every token is
    /// refused with [`Refusal::KeysUnavailable`]).
    has_keys: AtomicBool,
    spent: Arc<dyn SpentTokens>,
}

/// The token keys of the issuer directory (RFC 9578 §4) in the file `path`.
pub fn read_keys(path: &Path) -> Result<Vec<EpochKey>, GateError> {
    let fail = |source: KeyFileError| GateError::Keys {
        path: path.to_owned(),
        source,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(KeyFileError::Read(e)))?;
    let keys = IssuerDirectory::from_json(&bytes)
        .and_then(|d| d.epoch_keys())
        .map_err(|e| fail(e.into()))?;
    if keys.is_empty() {
        return Err(fail(KeyFileError::NoKeys));
    }
    Ok(keys)
}

impl TokenGate {
    /// A gate for `challenge`, spending tokens in `spent`, without issuer
    /// keys until [`TokenGate::set_keys`].
    pub fn new(challenge: &TokenChallenge, spent: Arc<dyn SpentTokens>) -> Result<Self, GateError> {
        Ok(TokenGate {
            verifier: RwLock::new(TokenVerifier::new(challenge, Vec::new())?),
            has_keys: AtomicBool::new(false),
            spent,
        })
    }

    fn verifier(&self) -> std::sync::RwLockReadGuard<'_, TokenVerifier> {
        self.verifier
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the issuer's current keys; true if they differ from those held.
    pub fn set_keys(&self, keys: Vec<EpochKey>) -> bool {
        let mut verifier = self
            .verifier
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.has_keys.store(true, Ordering::Release);
        if verifier.keys() == keys.as_slice() {
            return false;
        }
        verifier.set_keys(keys);
        true
    }

    /// The issuer keys held (none before they arrive).
    pub fn keys(&self) -> Vec<EpochKey> {
        self.verifier().keys().to_vec()
    }

    /// Whether the issuer's keys have arrived.
    pub fn has_keys(&self) -> bool {
        self.has_keys.load(Ordering::Acquire)
    }

    /// The `WWW-Authenticate` value of a 401 (RFC 9577 §2.1).
    pub fn challenge(&self) -> Option<String> {
        self.verifier().www_authenticate(unix_now())
    }

    /// How to answer `refusal`: the status, the Proxy-Status details, and
    /// the challenge to send along (with every 401).
    pub fn answer(&self, refusal: &Refusal) -> (http::StatusCode, &'static str, Option<String>) {
        let challenge = refusal.challenges().then(|| self.challenge()).flatten();
        (refusal.status(), refusal.details(), challenge)
    }

    /// The token in `headers`' one `Authorization: PrivateToken` field.
    pub fn token_in(headers: &http::HeaderMap) -> Result<Token, Refusal> {
        let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            // None, or several Authorization fields (not one credential).
            return Err(if headers.contains_key(http::header::AUTHORIZATION) {
                Refusal::Malformed
            } else {
                Refusal::Missing
            });
        };
        let value = value.to_str().map_err(|_| Refusal::Malformed)?;
        match parse_authorization(value) {
            Ok(token) => Ok(token),
            Err(HeaderError::OtherScheme) => Err(Refusal::Missing),
            Err(_) => Err(Refusal::Malformed),
        }
    }

    /// Accepts `token` if it verifies and was never spent, spending it.
    pub async fn redeem(&self, token: &Token) -> Result<Redemption, Refusal> {
        if !self.has_keys() {
            return Err(Refusal::KeysUnavailable);
        }
        let now = unix_now();
        let redemption = self
            .verifier()
            .verify(token, now)
            .map_err(Refusal::Invalid)?;
        match self
            .spent
            .spend(redemption.spend_key, redemption.expires, now)
            .await
        {
            Ok(true) => Ok(redemption),
            Ok(false) => Err(Refusal::Spent),
            Err(e) => {
                warn!(error = %e, "double-spend store unavailable; refusing tokens");
                Err(Refusal::StoreUnavailable)
            }
        }
    }

    /// Accepts the token in `headers` (see [`TokenGate::token_in`] and
    /// [`TokenGate::redeem`]).
    pub async fn admit(&self, headers: &http::HeaderMap) -> Result<Token, Refusal> {
        // Before any 401: without keys there is no challenge to send.
        if !self.has_keys() {
            return Err(Refusal::KeysUnavailable);
        }
        let token = Self::token_in(headers)?;
        self.redeem(&token).await?;
        Ok(token)
    }
}
