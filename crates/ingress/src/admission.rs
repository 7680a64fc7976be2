//! Token-gated admission (opt-in, `[ingress.admission]`): every connect-udp
//! request must carry `Authorization: PrivateToken token=...` (RFC 9577
//! §2.2) with a token of the configured issuer, for this relay's challenge,
//! under a key in its epoch, never spent before (at this ingress, or at any
//! ingress sharing its Redis set).
//!
//! | request | answer |
//! |---|---|
//! | no `PrivateToken` credentials | 401, `WWW-Authenticate: PrivateToken challenge=..., token-key=...`, details "token required" |
//! | malformed `Authorization` or token | 400, details "malformed token" |
//! | token for another challenge | 401 + challenge, details "token for another challenge" |
//! | unknown key | 401 + challenge, details "unknown token key" |
//! | key outside its epoch | 401 + challenge, details "token key expired" |
//! | bad signature | 401 + challenge, details "bad token signature" |
//! | spent before | 401 + challenge, details "token already spent" |
//! | double-spend store unreachable | 503, details "double-spend store unavailable" (fail closed) |
//!
//! Every refusal carries `Proxy-Status: openrelay-ingress;
//! error=http_request_denied; details="..."` (RFC 9209 §2.1.5), and nothing is
//! forwarded. Tokens are never logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openrelay_config::AdmissionConfig;
use openrelay_tokens::header::parse_authorization;
use openrelay_tokens::spent::{RedbSpentTokens, RedisSpentTokens};
use openrelay_tokens::{
    EpochKey, HeaderError, IssuerDirectory, SpentTokens, TokenChallenge, TokenVerifier, VerifyError,
};
use tracing::{debug, warn};

/// The default embedded double-spend set inside the state directory.
pub const SPENT_FILE: &str = "spent-tokens.redb";

/// Why admission could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// The issuer keys could not be read.
    #[error("issuer keys {path}: {reason}")]
    Keys {
        /// The directory file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The issuer name cannot be put in a challenge.
    #[error("issuer name: {0}")]
    IssuerName(#[from] openrelay_tokens::ChallengeError),
    /// The double-spend store could not be opened.
    #[error(transparent)]
    Store(#[from] openrelay_tokens::SpentError),
}

/// Why a request was not admitted.
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
}

impl Refusal {
    /// The response status.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Refusal::Malformed => http::StatusCode::BAD_REQUEST,
            Refusal::StoreUnavailable => http::StatusCode::SERVICE_UNAVAILABLE,
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
        }
    }

    /// Whether the answer carries a fresh challenge (all 401s: the client
    /// can get a token that will do).
    pub fn challenges(&self) -> bool {
        self.status() == http::StatusCode::UNAUTHORIZED
    }
}

/// An ingress's admission check.
#[derive(Debug)]
pub struct Admission {
    verifier: RwLock<TokenVerifier>,
    keys_path: PathBuf,
    keys_refresh: Duration,
    spent: Arc<dyn SpentTokens>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read_keys(path: &Path) -> Result<Vec<EpochKey>, AdmissionError> {
    let fail = |reason: String| AdmissionError::Keys {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let keys = IssuerDirectory::from_json(&bytes)
        .and_then(|d| d.epoch_keys())
        .map_err(|e| fail(e.to_string()))?;
    if keys.is_empty() {
        return Err(fail("no token keys of type 0x0002".into()));
    }
    Ok(keys)
}

impl Admission {
    /// Sets up admission from the config: reads the issuer keys and opens the
    /// double-spend set (Redis if configured, connected on first use; else the
    /// embedded file).
    pub fn open(config: &AdmissionConfig, state_dir: &Path) -> Result<Self, AdmissionError> {
        let keys = read_keys(&config.issuer_keys)?;
        let verifier = TokenVerifier::new(&TokenChallenge::for_issuer(&config.issuer_name), keys)?;
        let spent: Arc<dyn SpentTokens> = match &config.redis_url {
            Some(url) => Arc::new(RedisSpentTokens::new(url)?),
            None => {
                let path = config
                    .spent_path
                    .clone()
                    .unwrap_or_else(|| state_dir.join(SPENT_FILE));
                Arc::new(RedbSpentTokens::open(&path)?)
            }
        };
        Ok(Admission {
            verifier: RwLock::new(verifier),
            keys_path: config.issuer_keys.clone(),
            keys_refresh: Duration::from_secs(config.keys_refresh_secs),
            spent,
        })
    }

    fn verifier(&self) -> std::sync::RwLockReadGuard<'_, TokenVerifier> {
        self.verifier
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Re-reads the issuer keys every `keys_refresh_secs` (forever; abort the
    /// task to stop). A failed read keeps the keys held.
    pub async fn refresh_keys(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.keys_refresh).await;
            match read_keys(&self.keys_path) {
                Ok(keys) => {
                    let mut verifier = self
                        .verifier
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if verifier.keys() != keys.as_slice() {
                        debug!(keys = keys.len(), "issuer keys updated");
                        verifier.set_keys(keys);
                    }
                }
                Err(e) => warn!(error = %e, "cannot refresh issuer keys; keeping the old ones"),
            }
        }
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn challenge(&self) -> Option<String> {
        self.verifier().www_authenticate(unix_now())
    }

    /// Admits `request` if it carries a valid, unspent token, spending it.
    pub async fn admit(&self, request: &http::Request<()>) -> Result<(), Refusal> {
        let mut values = request
            .headers()
            .get_all(http::header::AUTHORIZATION)
            .iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            // None, or several Authorization fields (not one credential).
            return Err(
                if request.headers().contains_key(http::header::AUTHORIZATION) {
                    Refusal::Malformed
                } else {
                    Refusal::Missing
                },
            );
        };
        let value = value.to_str().map_err(|_| Refusal::Malformed)?;
        let token = match parse_authorization(value) {
            Ok(token) => token,
            Err(HeaderError::OtherScheme) => return Err(Refusal::Missing),
            Err(_) => return Err(Refusal::Malformed),
        };
        let now = unix_now();
        let redemption = self
            .verifier()
            .verify(&token, now)
            .map_err(Refusal::Invalid)?;
        match self
            .spent
            .spend(redemption.spend_key, redemption.expires, now)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::Spent),
            Err(e) => {
                warn!(error = %e, "double-spend store unavailable; refusing tokens");
                Err(Refusal::StoreUnavailable)
            }
        }
    }
}
