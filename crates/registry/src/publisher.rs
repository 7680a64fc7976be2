//! A relay publishing itself: its operator's signed profile and a fresh
//! descriptor (signed by the relay's own key, the operator key and the QUIC
//! key it pins) every `refresh_secs`, to the registry and to every validator,
//! so the validators see the relay whatever the registry does; a relay that
//! stops publishing leaves the directory after the TTL.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use openrelay_config::PublishConfig;
use openrelay_directory::{
    CountryCode, DescriptorFields, Network, OperatorKey, OperatorProfile, ProfileFields, Region,
    RelayDescriptor, RelayKey, Signature, SignedDescriptor,
};
use openrelay_registry_client::paths;
use openrelay_registry_client::{CallError, RegistryClient};
use openrelay_transport::identity::Identity;
use openrelay_types::unix_now;
use openrelay_types::{KeyPin, RelayRole};
use tracing::{debug, warn};

use crate::keyfile::{self, KeyFileError};
use crate::relay_tee::{RelayTee, RelayTeeError};

/// Why the publisher could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublisherError {
    /// A key file.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// The relay's QUIC identity cannot sign.
    #[error("the relay's QUIC key: {0}")]
    Identity(#[from] openrelay_transport::identity::IdentityError),
    /// The relay's TEE.
    #[error(transparent)]
    Tee(#[from] RelayTeeError),
    /// A `[publish]` field does not fit the descriptor format.
    #[error("publish.{field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// One publication that did not go through.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishFailure {
    /// The registry or a validator refused it.
    #[error("{endpoint} {path}: HTTP {status}: {reply}")]
    Refused {
        /// Who refused.
        endpoint: SocketAddr,
        /// What was published.
        path: &'static str,
        /// The status.
        status: u16,
        /// Its explanation.
        reply: String,
    },
    /// The call failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The descriptor could not be signed.
    #[error(transparent)]
    Sign(#[from] PublisherError),
}

/// Everything needed to publish one relay.
#[derive(Debug)]
pub struct Publisher {
    targets: Vec<RegistryClient>,
    relay_key: RelayKey,
    operator_key: OperatorKey,
    quic_key: Identity,
    profile: ProfileFields,
    template: DescriptorFields,
    lifetime: u64,
    refresh: Duration,
    /// The TEE whose evidence each descriptor carries, if any.
    tee: Option<RelayTee>,
}

fn field<T, E: std::fmt::Display>(
    field: &'static str,
    value: Result<T, E>,
) -> Result<T, PublisherError> {
    value.map_err(|e| PublisherError::Field {
        field,
        reason: e.to_string(),
    })
}

impl Publisher {
    /// A publisher for the relay with `role`, listening on `listen`, whose
    /// QUIC/TLS key is `quic_key` (it signs every descriptor, proving the
    /// relay holds the key it asks clients to pin); its descriptor key lives
    /// in `state_dir`.
    pub fn new(
        config: &PublishConfig,
        role: RelayRole,
        listen: SocketAddr,
        quic_key: &Identity,
        state_dir: &Path,
    ) -> Result<Self, PublisherError> {
        let relay_key = keyfile::relay_key(state_dir)?;
        let operator_key = keyfile::operator_key(&config.operator_key_file)?;
        let network = match config.network.strip_prefix("AS").map(str::parse::<u32>) {
            Some(Ok(asn)) => Network::Asn(asn),
            _ => Network::Label(config.network.clone()),
        };
        let now = unix_now();
        let profile = ProfileFields {
            operator: operator_key.id(),
            name: config.operator_name.clone(),
            contact: config.operator_contact.clone(),
            jurisdiction: field("jurisdiction", CountryCode::parse(&config.jurisdiction))?,
            chain_account: config.operator_account.map(|account| account.0),
            published_at: now,
        };
        let quic_pin: KeyPin = quic_key.pin();
        let template = DescriptorFields {
            relay: relay_key.id(),
            operator: operator_key.id(),
            role,
            endpoints: vec![config.endpoint.unwrap_or(listen)],
            quic_pin,
            region: Region {
                country: field("country", CountryCode::parse(&config.country))?,
                city: config.city.clone(),
            },
            network,
            bandwidth_bps: config.bandwidth_bps,
            software_version: format!("openrelay {}", env!("CARGO_PKG_VERSION")),
            attestation: None,
            not_before: now,
            not_after: now,
        };
        let targets = std::iter::once(&config.registry)
            .chain(&config.validators)
            .map(|t| RegistryClient::new(t.addr, t.key))
            .collect();
        let publisher = Publisher {
            targets,
            relay_key,
            operator_key,
            quic_key: quic_key.duplicate()?,
            profile,
            template,
            lifetime: config.descriptor_lifetime_secs,
            refresh: Duration::from_secs(config.refresh_secs),
            tee: RelayTee::from_config(&config.attestation)?,
        };
        // Check the fields once now, so a bad config fails at start-up.
        publisher.signed_profile()?;
        publisher.signed_descriptor(now)?;
        Ok(publisher)
    }

    /// The commitment the chain's `descriptorHash` holds for this relay
    /// (`openrelay operator register-relay --descriptor-hash`): the content
    /// hash of the descriptor it publishes, the same for every
    /// republication, since the hash leaves the validity window out (so
    /// any valid window does here).
    pub fn content_hash(&self) -> Result<[u8; 32], PublisherError> {
        let mut fields = self.template.clone();
        fields.not_after = fields.not_before.saturating_add(1);
        Ok(field("country", RelayDescriptor::new(fields))?.content_hash())
    }

    /// The commitment the chain's `profileHash` holds for this relay's
    /// operator (`openrelay operator register --profile-hash`): the
    /// content hash of the profile it publishes, which leaves the signing
    /// time out.
    pub fn profile_hash(&self) -> Result<[u8; 32], PublisherError> {
        Ok(field("operator_name", OperatorProfile::new(self.profile.clone()))?.content_hash())
    }

    fn signed_profile(&self) -> Result<Vec<u8>, PublisherError> {
        let profile = field("operator_name", OperatorProfile::new(self.profile.clone()))?;
        Ok(field("operator_key_file", self.operator_key.sign_profile(profile))?.to_bytes())
    }

    fn signed_descriptor(&self, now: u64) -> Result<Vec<u8>, PublisherError> {
        let mut fields = self.template.clone();
        // A little slack for the registry's clock.
        fields.not_before = now.saturating_sub(60);
        fields.not_after = now.saturating_add(self.lifetime);
        // Fresh evidence for every descriptor: it binds this `not_before`.
        fields.attestation = self
            .tee
            .as_ref()
            .map(|tee| tee.evidence(fields.relay.to_bytes(), fields.quic_pin, fields.not_before))
            .transpose()?;
        let descriptor = field("country", RelayDescriptor::new(fields))?;
        let quic_signature =
            Signature::from_bytes(self.quic_key.sign(&descriptor.quic_key_message())?);
        let signed = field(
            "operator_key_file",
            SignedDescriptor::sign(
                descriptor,
                &self.relay_key,
                &self.operator_key,
                quic_signature,
            ),
        )?;
        Ok(signed.to_bytes())
    }

    /// Publishes the profile and a fresh descriptor once, to the registry
    /// and every validator at the same time; returns what failed.
    pub async fn publish_once(&self) -> Vec<PublishFailure> {
        let (profile, descriptor) =
            match (self.signed_profile(), self.signed_descriptor(unix_now())) {
                (Ok(p), Ok(d)) => (p, d),
                (Err(e), _) | (_, Err(e)) => return vec![e.into()],
            };
        let mut calls = tokio::task::JoinSet::new();
        for target in &self.targets {
            let (target, profile, descriptor) =
                (target.clone(), profile.clone(), descriptor.clone());
            calls.spawn(async move { publish_to(&target, profile, descriptor).await });
        }
        let mut failures = Vec::new();
        while let Some(done) = calls.join_next().await {
            if let Ok(mut failed) = done {
                failures.append(&mut failed);
            }
        }
        failures
    }

    /// Publishes every `refresh_secs` until `shutdown`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let failures = self.publish_once().await;
            if failures.is_empty() {
                debug!("descriptor published");
            }
            for failure in failures {
                warn!(error = %failure, "cannot publish the descriptor");
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.refresh) => {}
            }
        }
    }
}

/// Publishes to one registry or validator: the profile, then the
/// descriptor. A profile refused as not newer is not a failure (another
/// relay of the operator, started later, published a newer one).
async fn publish_to(
    target: &RegistryClient,
    profile: Vec<u8>,
    descriptor: Vec<u8>,
) -> Vec<PublishFailure> {
    let mut failures = Vec::new();
    for (path, body) in [(paths::PROFILES, profile), (paths::DESCRIPTORS, descriptor)] {
        match target.call(http::Method::POST, path, body).await {
            Ok((204, _)) => {}
            Ok((409, _)) if path == paths::PROFILES => {}
            Ok((status, reply)) => failures.push(PublishFailure::Refused {
                endpoint: target.addr(),
                path,
                status,
                reply: String::from_utf8_lossy(&reply).trim().to_owned(),
            }),
            Err(e) => failures.push(e.into()),
        }
    }
    failures
}
