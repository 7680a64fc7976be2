//! A relay publishing itself: its operator's signed profile and a fresh
//! descriptor (signed by the relay's own key and by the operator key) every
//! `refresh_secs`, so the registry keeps listing it; a relay that stops
//! publishing leaves the directory after the registry's TTL.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use openrelay_config::{KeyPin, PublishConfig, RelayRole};
use openrelay_directory::{
    CountryCode, DescriptorFields, Network, OperatorKey, OperatorProfile, ProfileFields, Region,
    RelayDescriptor, RelayKey, SignedDescriptor,
};
use tracing::{debug, warn};

use crate::http::RegistryClient;
use crate::keyfile::{self, KeyFileError};
use crate::service::{paths, unix_now};

/// Why the publisher could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublisherError {
    /// A key file.
    #[error(transparent)]
    Key(#[from] KeyFileError),
    /// A `[publish]` field does not fit the descriptor format.
    #[error("publish.{field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Everything needed to publish one relay.
#[derive(Debug)]
pub struct Publisher {
    registry: RegistryClient,
    relay_key: RelayKey,
    operator_key: OperatorKey,
    profile: ProfileFields,
    template: DescriptorFields,
    lifetime: u64,
    refresh: Duration,
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
    /// QUIC key is `quic_pin`; its descriptor key lives in `state_dir`.
    pub fn new(
        config: &PublishConfig,
        role: RelayRole,
        listen: SocketAddr,
        quic_pin: KeyPin,
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
            published_at: now,
        };
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
            software_measurement: None,
            not_before: now,
            not_after: now,
        };
        let publisher = Publisher {
            registry: RegistryClient::new(config.registry.addr, config.registry.key),
            relay_key,
            operator_key,
            profile,
            template,
            lifetime: config.descriptor_lifetime_secs,
            refresh: Duration::from_secs(config.refresh_secs),
        };
        // Check the fields once now, so a bad config fails at start-up.
        publisher.signed_profile()?;
        publisher.signed_descriptor(now)?;
        Ok(publisher)
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
        let descriptor = field("country", RelayDescriptor::new(fields))?;
        let signed = field(
            "operator_key_file",
            SignedDescriptor::sign(descriptor, &self.relay_key, &self.operator_key),
        )?;
        Ok(signed.to_bytes())
    }

    /// Publishes the profile and a fresh descriptor once.
    pub async fn publish_once(&self) -> Result<(), String> {
        let profile = self.signed_profile().map_err(|e| e.to_string())?;
        let descriptor = self
            .signed_descriptor(unix_now())
            .map_err(|e| e.to_string())?;
        for (path, body) in [(paths::PROFILES, profile), (paths::DESCRIPTORS, descriptor)] {
            match self.registry.call(http::Method::POST, path, body).await {
                Ok((204, _)) => {}
                Ok((status, reply)) => {
                    return Err(format!(
                        "{path}: HTTP {status}: {}",
                        String::from_utf8_lossy(&reply).trim()
                    ));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// Publishes every `refresh_secs` until `shutdown`.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            match self.publish_once().await {
                Ok(()) => debug!("descriptor published"),
                Err(e) => warn!(error = %e, "cannot publish the descriptor"),
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(self.refresh) => {}
            }
        }
    }
}
