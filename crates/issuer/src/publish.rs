//! The issuer publishing its token keys (RFC 9576 §6 key consistency): the
//! live keys of its ring as one [`IssuerKeySet`], signed by the issuer's
//! identity key (its TLS key, the key clients pin), posted to the registry
//! and to every validator (`POST /v1/issuer-keys`), as relays publish their
//! descriptors. The validators vote on the sets they saw, and a directory
//! lists the set most of them name.
//!
//! The set is signed again (with a new `published_at`) only when its keys
//! change; otherwise the same bytes are republished every `refresh_secs`,
//! so a refresh is no new set and no new directory. A failed publication is
//! retried within seconds.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use openrelay_config::KeyPublishConfig;
use openrelay_directory::{
    IssuerId, IssuerKeySet, IssuerTokenKey, KeySetFields, MAX_ISSUER_KEYS, Signature,
    SignedIssuerKeySet, TOKEN_TYPE_BLIND_RSA,
};
use openrelay_registry_client::RegistryClient;
use openrelay_registry_client::paths;
use openrelay_tokens::EpochKey;
use openrelay_transport::identity::Identity;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

/// A failed publication is retried after this long.
const RETRY: Duration = Duration::from_secs(3);

/// Why the key set could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetError {
    /// The issuer's identity key is not a usable Ed25519 key.
    #[error("the issuer's identity key cannot name a key set: {0}")]
    Identity(openrelay_directory::KeyError),
    /// The live keys break the key set's rules (e.g. overlapping issuing
    /// windows after `key_rotation_secs` changed).
    #[error("the token keys make no valid key set: {0}")]
    Format(#[from] openrelay_directory::FormatError),
    /// Signing failed.
    #[error("cannot sign the key set: {0}")]
    Sign(#[from] openrelay_transport::identity::IdentityError),
}

/// The issuer's key publisher.
#[derive(Debug)]
pub struct KeyPublisher {
    targets: Vec<RegistryClient>,
    identity: Identity,
    issuer: IssuerId,
    issuer_name: String,
    refresh: Duration,
    /// The keys last signed and the signed set's bytes.
    signed: Mutex<Option<(Vec<IssuerTokenKey>, Vec<u8>)>>,
    changed: Notify,
}

/// The keys of a set made of `epochs` at `now`: those not yet expired, the
/// newest [`MAX_ISSUER_KEYS`].
fn set_keys(epochs: &[EpochKey], now: u64) -> Vec<IssuerTokenKey> {
    let mut keys: Vec<IssuerTokenKey> = epochs
        .iter()
        .filter(|e| e.expires > now)
        .map(|e| IssuerTokenKey {
            token_type: TOKEN_TYPE_BLIND_RSA,
            key: e.key.spki().to_vec(),
            not_before: e.not_before,
            expires: e.expires,
        })
        .collect();
    keys.sort_by_key(|k| k.not_before);
    let excess = keys.len().saturating_sub(MAX_ISSUER_KEYS);
    keys.drain(..excess);
    keys
}

impl KeyPublisher {
    /// A publisher to `config`'s registry and validators, signing with
    /// `identity` for the issuer named `issuer_name`.
    pub fn new(
        config: &KeyPublishConfig,
        identity: Identity,
        issuer_name: &str,
    ) -> Result<Self, KeySetError> {
        let issuer = IssuerId::try_from(identity.pin()).map_err(KeySetError::Identity)?;
        Ok(KeyPublisher {
            targets: std::iter::once(&config.registry)
                .chain(&config.validators)
                .map(|t| RegistryClient::new(t.addr, t.key))
                .collect(),
            identity,
            issuer,
            issuer_name: issuer_name.to_owned(),
            refresh: Duration::from_secs(config.refresh_secs),
            signed: Mutex::new(None),
            changed: Notify::new(),
        })
    }

    /// The issuer's id (its identity key).
    pub fn issuer(&self) -> IssuerId {
        self.issuer
    }

    /// Says the ring's keys changed: publish at once.
    pub fn keys_changed(&self) {
        self.changed.notify_one();
    }

    /// The signed set of `epochs` at `now`: the one signed before if its
    /// keys are the same, else a new one published now.
    pub fn signed_set(&self, epochs: &[EpochKey], now: u64) -> Result<Vec<u8>, KeySetError> {
        let keys = set_keys(epochs, now);
        let mut signed = self
            .signed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((previous, bytes)) = signed.as_ref()
            && *previous == keys
        {
            return Ok(bytes.clone());
        }
        let set = IssuerKeySet::new(KeySetFields {
            issuer: self.issuer,
            issuer_name: self.issuer_name.clone(),
            published_at: now,
            keys: keys.clone(),
        })?;
        let signature = Signature::from_bytes(self.identity.sign(&set.signing_message())?);
        let bytes = SignedIssuerKeySet::from_parts(set, signature).to_bytes();
        info!(keys = keys.len(), "token key set signed for publication");
        *signed = Some((keys, bytes.clone()));
        Ok(bytes)
    }

    /// Posts `set` to the registry and every validator; how many refused or
    /// could not be reached.
    async fn publish(&self, set: &[u8], quiet: bool) -> usize {
        let mut calls = tokio::task::JoinSet::new();
        for target in &self.targets {
            let (target, body) = (target.clone(), set.to_vec());
            calls.spawn(async move {
                let answer = target
                    .call(http::Method::POST, paths::ISSUER_KEYS, body)
                    .await;
                (target.addr(), answer)
            });
        }
        let mut failed = 0;
        while let Some(done) = calls.join_next().await {
            let Ok((addr, answer)) = done else {
                failed += 1;
                continue;
            };
            match answer {
                Ok((204, _)) => {}
                Ok((status, reply)) => {
                    failed += 1;
                    let reply = String::from_utf8_lossy(&reply).trim().to_owned();
                    if quiet {
                        debug!(%addr, status, reply, "token key set still not accepted");
                    } else {
                        warn!(%addr, status, reply, "token key set not accepted");
                    }
                }
                Err(e) => {
                    failed += 1;
                    if quiet {
                        debug!(%addr, error = %e, "cannot publish the token key set yet");
                    } else {
                        warn!(%addr, error = %e, "cannot publish the token key set");
                    }
                }
            }
        }
        failed
    }

    /// Publishes the set of the keys `epochs` gives (at once, when told the
    /// keys changed, every `refresh_secs`, and within seconds after a
    /// failure) until `shutdown`.
    pub async fn run<F: Fn() -> Vec<EpochKey>>(
        &self,
        epochs: F,
        now: impl Fn() -> u64,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut failing = false;
        loop {
            let wait = match self.signed_set(&epochs(), now()) {
                Ok(set) => {
                    let failed = self.publish(&set, failing).await;
                    if failed == 0 && failing {
                        info!("token key set published");
                    }
                    failing = failed > 0;
                    if failing { RETRY } else { self.refresh }
                }
                Err(e) => {
                    warn!(error = %e, "no token key set to publish");
                    self.refresh
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
                () = self.changed.notified() => {}
            }
        }
    }
}
