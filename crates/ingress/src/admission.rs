//! Token-gated admission (opt-in, `[ingress.admission]`): every connect-udp
//! request must carry `Authorization: PrivateToken token=...` (RFC 9577
//! §2.2) with a token of the configured issuer, for this relay's challenge
//! (the issuer's name only), under a key in its epoch, never spent before (at
//! this ingress, or at any ingress sharing its Redis set). The checks and the
//! answer to each refusal are [`openrelay_tokens::gate`]'s; every refusal
//! carries `Proxy-Status: openrelay-ingress; error=http_request_denied;
//! details="..."` (RFC 9209 §2.1.5), and nothing is forwarded.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openrelay_config::AdmissionConfig;
use openrelay_tokens::gate::{GateError, TokenGate};
use openrelay_tokens::spent::{RedbSpentTokens, RedisSpentTokens};
use openrelay_tokens::{SpentTokens, TokenChallenge};

pub use openrelay_tokens::gate::Refusal;

/// The default embedded double-spend set inside the state directory.
pub const SPENT_FILE: &str = "spent-tokens.redb";

/// Why admission could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// The issuer keys or the challenge are unusable.
    #[error(transparent)]
    Gate(#[from] GateError),
    /// The double-spend store could not be opened.
    #[error(transparent)]
    Store(#[from] openrelay_tokens::SpentError),
}

/// Opens the double-spend set a config names: Redis if `redis_url` is set
/// (connected on first use), else the embedded file at `path` (default
/// `<state_dir>/spent-tokens.redb`).
pub fn open_spent_store(
    redis_url: Option<&str>,
    path: Option<&Path>,
    state_dir: &Path,
) -> Result<Arc<dyn SpentTokens>, openrelay_tokens::SpentError> {
    Ok(match redis_url {
        Some(url) => Arc::new(RedisSpentTokens::new(url)?),
        None => {
            let path = path.map_or_else(|| state_dir.join(SPENT_FILE), Path::to_owned);
            Arc::new(RedbSpentTokens::open(&path)?)
        }
    })
}

/// An ingress's admission check: a [`TokenGate`] for the issuer's challenge.
pub type Admission = TokenGate;

/// Sets up admission from the config: reads the issuer keys and opens the
/// double-spend set.
pub fn open(config: &AdmissionConfig, state_dir: &Path) -> Result<Admission, AdmissionError> {
    let spent = open_spent_store(
        config.redis_url.as_deref(),
        config.spent_path.as_deref(),
        state_dir,
    )?;
    Ok(TokenGate::new(
        &TokenChallenge::for_issuer(&config.issuer_name),
        &config.issuer_keys,
        Duration::from_secs(config.keys_refresh_secs),
        spent,
    )?)
}
