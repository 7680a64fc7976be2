//! The relay registry's core: which published descriptors it accepts, how
//! long they live without a refresh, and which directory it proposes next.
//!
//! * A relay publishes its operator's signed profile and its own descriptor
//!   (signed by the relay key and the operator key); both are verified on
//!   publication, and a QUIC key already held by another live relay is
//!   refused, so one relay cannot be listed under two identities.
//! * A descriptor lives `descriptor_ttl` after its last publication (and never
//!   past its own `not_after`): relays join and leave with no manual step.
//! * [`Registry::next_directory`] proposes the next directory: every live
//!   descriptor valid for the directory's whole window, with its operator's
//!   profile, and the next sequence number. Validators sign it (k of n); the
//!   registry alone cannot make clients trust it.
//!
//! [`service`] serves it over HTTP/3, [`validator`] checks and signs its
//! proposals, [`http`] is the client relays, validators and clients use.

pub mod http;
pub mod keyfile;
pub mod publisher;
pub mod service;
mod store;
pub mod validator;

use std::collections::BTreeSet;

use openrelay_directory::{
    BadProfileSignature, DescriptorError, Directory, FormatError, OperatorId, RelayId,
    SignedDescriptor, SignedDirectory, SignedOperatorProfile,
};

pub use store::{RedbStore, RegistryStore, StoreError};

/// Lifetimes the registry applies.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// A descriptor not refreshed for this long leaves the registry.
    pub descriptor_ttl_secs: u64,
    /// How long each directory it proposes is valid.
    pub directory_lifetime_secs: u64,
}

/// Why a publication was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The bytes are not a canonical descriptor or profile.
    #[error("malformed: {0}")]
    Malformed(#[from] FormatError),
    /// A descriptor signature or validity window is wrong.
    #[error("descriptor refused: {0}")]
    Descriptor(#[from] DescriptorError),
    /// The profile's signature is wrong.
    #[error("profile refused: {0}")]
    Profile(#[from] BadProfileSignature),
    /// The descriptor's operator has not published a profile yet.
    #[error("the descriptor's operator has not published its profile")]
    UnknownOperator,
    /// Another live relay already holds this QUIC key.
    #[error("another relay already holds this QUIC key")]
    PinClaimed,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why no directory could be proposed or recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AssembleError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The contents do not make a valid directory (e.g. too many relays).
    #[error("cannot assemble a directory: {0}")]
    Format(#[from] FormatError),
}

/// The registry over a store.
#[derive(Debug)]
pub struct Registry<S> {
    store: S,
    settings: RegistrySettings,
}

impl<S: RegistryStore> Registry<S> {
    /// A registry keeping its state in `store`.
    pub fn new(store: S, settings: RegistrySettings) -> Self {
        Registry { store, settings }
    }

    /// Accepts an operator's signed profile (replacing an older one).
    pub fn publish_profile(&self, bytes: &[u8]) -> Result<OperatorId, PublishError> {
        let signed = SignedOperatorProfile::from_bytes(bytes)?;
        signed.verify()?;
        let operator = signed.profile().operator();
        self.store
            .put_profile(operator.as_bytes(), &signed.to_bytes())?;
        Ok(operator)
    }

    /// Accepts (or refreshes) a relay's signed descriptor at time `now`.
    pub fn publish_descriptor(&self, bytes: &[u8], now: u64) -> Result<RelayId, PublishError> {
        let signed = SignedDescriptor::from_bytes(bytes)?;
        signed.verify(now)?;
        let descriptor = signed.descriptor();
        if !self
            .profiles()?
            .iter()
            .any(|p| p.profile().operator() == descriptor.operator())
        {
            return Err(PublishError::UnknownOperator);
        }
        let claimed = self.live(now)?.into_iter().any(|other| {
            let other = other.descriptor();
            other.relay() != descriptor.relay() && other.quic_pin() == descriptor.quic_pin()
        });
        if claimed {
            return Err(PublishError::PinClaimed);
        }
        let expires_at = now
            .saturating_add(self.settings.descriptor_ttl_secs)
            .min(descriptor.fields().not_after);
        let relay = descriptor.relay();
        self.store
            .put_descriptor(relay.as_bytes(), &signed.to_bytes(), expires_at)?;
        Ok(relay)
    }

    /// Live descriptors. Entries were verified when stored; one that no
    /// longer parses (a corrupted file) is left out rather than trusted.
    pub fn live(&self, now: u64) -> Result<Vec<SignedDescriptor>, StoreError> {
        Ok(self
            .store
            .live_descriptors(now)?
            .iter()
            .filter_map(|bytes| SignedDescriptor::from_bytes(bytes).ok())
            .collect())
    }

    fn profiles(&self) -> Result<Vec<SignedOperatorProfile>, StoreError> {
        Ok(self
            .store
            .profiles()?
            .iter()
            .filter_map(|bytes| SignedOperatorProfile::from_bytes(bytes).ok())
            .collect())
    }

    /// The directory to propose at `now`: live descriptors valid for its
    /// whole window (clients refuse a directory listing a relay that expires
    /// before it does), their operators' profiles, the next sequence number.
    pub fn next_directory(&self, now: u64) -> Result<Directory, AssembleError> {
        let sequence = self
            .store
            .latest_directory()?
            .map_or(1, |(sequence, _)| sequence.saturating_add(1));
        let valid_until = now.saturating_add(self.settings.directory_lifetime_secs);
        let descriptors: Vec<SignedDescriptor> = self
            .live(now)?
            .into_iter()
            .filter(|d| {
                let fields = d.descriptor().fields();
                fields.not_before <= now && fields.not_after >= valid_until
            })
            .collect();
        let operators: BTreeSet<OperatorId> = descriptors
            .iter()
            .map(|d| d.descriptor().operator())
            .collect();
        let profiles = self
            .profiles()?
            .into_iter()
            .filter(|p| operators.contains(&p.profile().operator()))
            .collect();
        Ok(Directory::new(
            sequence,
            now,
            valid_until,
            profiles,
            descriptors,
        )?)
    }

    /// Records a validator-signed directory as the one to serve.
    pub fn record(&self, signed: &SignedDirectory) -> Result<u64, AssembleError> {
        let sequence = Directory::from_bytes(&signed.directory)?.sequence();
        self.store.put_directory(sequence, &signed.to_bytes())?;
        Ok(sequence)
    }

    /// The newest recorded signed directory.
    pub fn latest(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.store.latest_directory()?.map(|(_, signed)| signed))
    }

    /// Forgets descriptors that were not refreshed in time.
    pub fn prune(&self, now: u64) -> Result<usize, StoreError> {
        self.store.prune(now)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
