//! Token-gated admission (opt-in, `[ingress.admission]`): every connect-udp
//! request must carry `Authorization: PrivateToken token=...` (RFC 9577
//! §2.2) with a token of the configured issuer, for this relay's challenge
//! (the issuer's name, scoped by `origin_info` to this relay's operator key,
//! [`TokenChallenge::for_ingress_operator`]), under a key in its epoch, never
//! spent before (at this ingress, or at any ingress sharing its Redis set).
//! The scope makes a collected token worthless at other operators'
//! ingresses, whose spent sets are their own: a malicious ingress cannot
//! replay what it collects. The checks and the
//! answer to each refusal are [`openrelay_tokens::gate`]'s; every refusal
//! carries `Proxy-Status: openrelay-ingress; error=http_request_denied;
//! details="..."` (RFC 9209 §2.1.5), and nothing is forwarded.
//!
//! The issuer's keys are those the validator-signed directory lists for it
//! when the relay has a `[directory]` (RFC 9576 §6 key consistency: a key
//! the issuer shows only some users is refused), else fetched from the
//! issuer (or read from a local file); they are followed as they rotate
//! ([`follow_keys`]). Until they arrive the ingress serves but refuses
//! tunnels with 503 "issuer keys not yet available", so it may start before
//! the issuer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openrelay_config::{AdmissionConfig, DirectoryConfig};
use openrelay_issuer_client::keyfeed::{self, KeySource};
use openrelay_tokens::TokenChallenge;
use openrelay_tokens::gate::{GateError, TokenGate};
use openrelay_tokens::spent::open_store;
use openrelay_types::{ErrorKind, HasKind, KeyPin};

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
    /// Admission is on but the operator's key is not known.
    #[error(
        "a token-gated ingress needs its operator's key (`operator_key`, or [publish] with the operator key file): access tokens are scoped to it"
    )]
    NoOperatorKey,
    /// The `[directory]` settings are unusable.
    #[error(transparent)]
    Directory(#[from] keyfeed::FollowConfigError),
}

impl HasKind for AdmissionError {
    fn kind(&self) -> ErrorKind {
        match self {
            AdmissionError::Gate(e) => e.kind(),
            AdmissionError::Store(e) => e.kind(),
            AdmissionError::NoOperatorKey => ErrorKind::Config,
            AdmissionError::Directory(e) => e.kind(),
        }
    }
}

/// An ingress's admission check: a [`TokenGate`] for the issuer's challenge
/// scoped to the operator.
pub type Admission = TokenGate;

/// What admission needs: the token settings and the operator's key the
/// tokens are scoped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionSettings {
    /// The issuer, its keys, the double-spend set.
    pub tokens: AdmissionConfig,
    /// The operator's key (the relay config's `operator_key`).
    pub operator_key: KeyPin,
    /// The relay's `[directory]`: with it, only the keys it lists for the
    /// issuer are accepted.
    pub directory: Option<DirectoryConfig>,
}

/// Sets up admission: opens the double-spend set, and takes the issuer
/// keys if a local file has them ([`follow_keys`] gets them otherwise).
pub fn open(
    settings: &AdmissionSettings,
    state_dir: &Path,
) -> Result<(Admission, Option<KeySource>), AdmissionError> {
    let config = &settings.tokens;
    let spent = open_store(
        config.redis_url.as_deref(),
        &config
            .spent_path
            .clone()
            .unwrap_or_else(|| state_dir.join(SPENT_FILE)),
    )?;
    let gate = TokenGate::new(
        &TokenChallenge::for_ingress_operator(
            &config.issuer_name,
            &settings.operator_key.to_string(),
        ),
        spent,
    )?;
    let source = KeySource::from_config(config, settings.directory.as_ref())?;
    if let Some(keys) = source.as_ref().and_then(KeySource::read_local) {
        gate.set_keys(keys);
    }
    Ok((gate, source))
}

/// Keeps `admission`'s issuer keys current from `source` (forever; abort to
/// stop), fetching every `refresh`.
pub async fn follow_keys(admission: Arc<Admission>, source: KeySource, refresh: Duration) {
    keyfeed::follow(admission, source, refresh).await;
}
