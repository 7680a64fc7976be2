//! Token-gated admission (opt-in, `[ingress.admission]`): every connect-udp
//! request must carry `Authorization: PrivateToken token=...` (RFC 9577
//! §2.2) with a token of the configured issuer, for this relay's challenge
//! (the issuer's name only), under a key in its epoch, never spent before (at
//! this ingress, or at any ingress sharing its Redis set). The checks and the
//! answer to each refusal are [`openrelay_tokens::gate`]'s; every refusal
//! carries `Proxy-Status: openrelay-ingress; error=http_request_denied;
//! details="..."` (RFC 9209 §2.1.5), and nothing is forwarded.
//!
//! The issuer's keys are fetched from the issuer (or read from a local
//! file) and followed as they rotate ([`follow_keys`]); until they arrive
//! the ingress serves but refuses tunnels with 503 "issuer keys not yet
//! available", so it may start before the issuer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openrelay_config::AdmissionConfig;
use openrelay_issuer::keyfeed::{self, KeySource};
use openrelay_tokens::TokenChallenge;
use openrelay_tokens::gate::{GateError, TokenGate};
use openrelay_tokens::spent::open_store;

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

/// An ingress's admission check: a [`TokenGate`] for the issuer's challenge.
pub type Admission = TokenGate;

/// Sets up admission from the config: opens the double-spend set, and
/// takes the issuer keys if a local file has them ([`follow_keys`] gets
/// them otherwise).
pub fn open(config: &AdmissionConfig, state_dir: &Path) -> Result<Admission, AdmissionError> {
    let spent = open_store(
        config.redis_url.as_deref(),
        &config
            .spent_path
            .clone()
            .unwrap_or_else(|| state_dir.join(SPENT_FILE)),
    )?;
    let gate = TokenGate::new(&TokenChallenge::for_issuer(&config.issuer_name), spent)?;
    if let Some(keys) = KeySource::from_config(config).and_then(|s| s.read_local()) {
        gate.set_keys(keys);
    }
    Ok(gate)
}

/// Keeps `admission`'s issuer keys current (forever; abort to stop).
pub async fn follow_keys(admission: Arc<Admission>, config: AdmissionConfig) {
    if let Some(source) = KeySource::from_config(&config) {
        let refresh = Duration::from_secs(config.keys_refresh_secs);
        keyfeed::follow(admission, source, refresh).await;
    }
}
