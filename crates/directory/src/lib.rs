#![doc = include_str!("../README.md")]

mod chain;
mod codec;
mod descriptor;
mod diff;
mod digest;
mod directory;
mod fields;
mod issuer_keys;
mod keys;
mod profile;
mod proposal;
mod validator_set;
mod verify;
pub mod vote;
pub mod weight;

pub use chain::{
    BPS_PER_MBPS, ChainAnchor, ChainOperator, ChainRelay, ChainRelease, ChainSection,
    MAX_RELEASE_MEASUREMENTS, MAX_RELEASES, MEASUREMENT_LEN, RelayMeasurement, ReleaseMeasurement,
    ReleaseStatus,
};
pub use descriptor::{
    AttestationEvidence, DESCRIPTOR_CONTENT_HASH_PREFIX, DESCRIPTOR_VERSION, DescriptorError,
    DescriptorFields, MAX_ATTESTATION_EVIDENCE_LEN, RelayDescriptor, SignError, SignedDescriptor,
    endpoint_class,
};
pub use diff::{
    DIFF_VERSION, DiffError, DiffOp, DirectoryDiff, MAX_DIFF_OPS, MAX_DIFF_RESULT_BYTES,
    SignedDirectoryDigest,
};
pub use digest::DigestSyntaxError;
pub use directory::{
    DIRECTORY_CHAIN_VERSION, DIRECTORY_VERSION, Directory, DirectoryDigest,
    SIGNED_DIRECTORY_HANDOVER_VERSION, SIGNED_DIRECTORY_VERSION, SignedDirectory,
    ValidatorSignature,
};
pub use fields::{CountryCode, Network, Region};
pub use issuer_keys::{
    BadKeySetSignature, ISSUER_KEYS_VERSION, IssuerKeySet, IssuerTokenKey, KeySetDigest,
    KeySetFields, KeySetSignError, MAX_ISSUER_KEYS, MAX_ISSUER_NAME_LEN, MAX_ISSUERS,
    MAX_SIGNED_KEY_SET_BYTES, MAX_TOKEN_KEY_LEN, MAX_TOKEN_KEY_LIFETIME_SECS, SignedIssuerKeySet,
    TOKEN_TYPE_BLIND_RSA,
};
pub use keys::{
    IssuerId, IssuerKey, KeyError, OperatorId, OperatorKey, QuicKey, RelayId, RelayKey, Signature,
    ValidatorId, ValidatorKey,
};
pub use openrelay_policy::AddressClass;
pub use profile::{
    BadProfileSignature, OperatorProfile, PROFILE_CONTENT_HASH_PREFIX, PROFILE_VERSION,
    PROFILE_VERSION_WITH_ACCOUNT, ProfileFields, ProfileSignError, SignedOperatorProfile,
};
pub use proposal::{PROPOSAL_VERSION, Proposal};
/// The RNG traits [`RelayKey::generate`] and friends take, at the version
/// they take them (`rand_core::OsRng` for real keys).
pub use rand_core;
pub use validator_set::{
    MAX_VALIDATOR_SET_CHANGES, MAX_VALIDATORS, SignedValidatorSetChange, VALIDATOR_SET_VERSION,
    ValidatorMember, ValidatorSet, ValidatorSetChange, more_than_two_thirds,
};
pub use verify::{
    BodyFileError, Deployment, DirectoryError, LastSeen, ListedRelay, Quorum, TrustConfig,
    TrustConfigError, VerifiedDirectory, VerifiedRelay, verify_directory, verify_directory_bytes,
};

use openrelay_types::{ErrorKind, HasKind};

/// How far another party's clock may run ahead of ours: a directory issued or
/// a descriptor starting up to this many seconds in the future is accepted.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// Longest validity window of a descriptor (7 days). Bounds how long a
/// descriptor of a relay that was shut down, or whose key leaked, stays
/// acceptable.
pub const MAX_DESCRIPTOR_LIFETIME_SECS: u64 = 7 * 24 * 3600;
/// Longest validity window of a directory (7 days). Clients usually refuse
/// far younger ones through [`TrustConfig::max_age_secs`].
pub const MAX_DIRECTORY_LIFETIME_SECS: u64 = 7 * 24 * 3600;
/// Most endpoints of one relay.
pub const MAX_ENDPOINTS: usize = 8;
/// Longest city name, in bytes.
pub const MAX_CITY_LEN: usize = 64;
/// Longest network label, in bytes.
pub const MAX_NETWORK_LABEL_LEN: usize = 64;
/// Longest software version, in bytes.
pub const MAX_SOFTWARE_VERSION_LEN: usize = 64;
/// Longest operator name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest operator contact, in bytes.
pub const MAX_CONTACT_LEN: usize = 128;
/// Most relays in one directory: the 100,000 the network must reach without
/// an artificial limit (issue 16), ten times today's Tor network.
pub const MAX_RELAYS: usize = 100_000;
/// Most operators in one directory (one per relay at most).
pub const MAX_OPERATORS: usize = 100_000;
/// Largest directory body, in bytes; the count and field limits above keep
/// every valid directory without attestation evidence below it (checked by a
/// test), and a quarter of 100,000 relays fit with 2,600-byte SEV-SNP
/// evidence each. It bounds what a client or validator holds per directory
/// fetch (the bytes once, plus their parse).
pub const MAX_DIRECTORY_BYTES: usize = 128 * 1024 * 1024;
/// Most validator signatures one signed directory carries, and most
/// validators a [`TrustConfig`] may name.
pub const MAX_DIRECTORY_SIGNATURES: usize = 64;

/// Bytes that break the format's rules (`docs/directory-format.md`). Decoders
/// return it for anything but the one canonical encoding of a valid value;
/// constructors return it for values that have no encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The input ended inside a value.
    #[error("truncated")]
    Truncated,
    /// Bytes follow a complete value.
    #[error("{count} bytes after the end")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A version byte this implementation does not know.
    #[error("{object} version {version} is not supported")]
    UnsupportedVersion {
        /// Which object.
        object: &'static str,
        /// The version found.
        version: u8,
    },
    /// A list or string over its limit.
    #[error("{what}: more than {limit}")]
    TooLarge {
        /// Which list or field.
        what: &'static str,
        /// The limit (entries or bytes).
        limit: usize,
    },
    /// A field's value breaks its rule.
    #[error("field `{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A list that must be strictly ascending is not sorted.
    #[error("{list} are not sorted")]
    Unsorted {
        /// The list.
        list: &'static str,
    },
    /// A list holds the same entry twice.
    #[error("{list} contain a duplicate")]
    Duplicate {
        /// The list.
        list: &'static str,
    },
    /// A validator set's weights add up to more than `u128::MAX`.
    #[error("validator weights add up to more than 2^128 - 1")]
    WeightOverflow,
}

impl HasKind for FormatError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::BadInput
    }
}

/// Whose signature a check was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signer {
    /// A relay, over its descriptor.
    Relay(RelayId),
    /// An operator, over a descriptor of one of its relays.
    Operator(OperatorId),
    /// An operator, over its profile.
    OperatorProfile(OperatorId),
    /// The QUIC/TLS key a relay's descriptor pins, over that descriptor.
    QuicKey(RelayId),
    /// A validator, over its vote.
    Validator(ValidatorId),
    /// A token issuer, over its key set.
    Issuer(IssuerId),
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Relay(id) => write!(f, "relay {id}"),
            Signer::Operator(id) => write!(f, "operator {id} (descriptor)"),
            Signer::OperatorProfile(id) => write!(f, "operator {id} (profile)"),
            Signer::QuicKey(id) => write!(f, "the QUIC key of relay {id}"),
            Signer::Validator(id) => write!(f, "validator {id} (vote)"),
            Signer::Issuer(id) => write!(f, "issuer {id} (key set)"),
        }
    }
}

#[cfg(test)]
mod tests;
