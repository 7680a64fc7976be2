//! Long-term Ed25519 identities (SPEC "Registry, trust and incentives": every
//! relay has a long-term key and an operator; validators sign what clients may
//! trust) and the signatures they make.
//!
//! Three key kinds exist and are distinct types so that a relay key can never
//! be passed where an operator key is expected. Public ids print like the
//! project's [`KeyPin`] (`ed25519:<base64url, no padding>`).
//!
//! Signatures are always over a domain-separation prefix followed by the
//! canonical bytes (`docs/directory-format.md`, "Signatures"), so a signature
//! made for one purpose (say, a descriptor) never verifies for another (say, a
//! directory), even when one key is used for both.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use openrelay_types::{KeyPin, KeyPinError};
use rand_core::CryptoRngCore;

/// Why 32 bytes (or their text form) are not an acceptable public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not `ed25519:<base64url>` of 32 bytes.
    #[error("not an Ed25519 key")]
    Syntax(#[from] KeyPinError),
    /// The bytes are not the encoding of a point on the curve.
    #[error("not a point on Ed25519")]
    NotAPoint,
    /// The point has another, canonical encoding; only that one is accepted so
    /// that one key has one id.
    #[error("non-canonical point encoding")]
    NonCanonical,
    /// A small-order point: signatures by it prove nothing (RFC 8032 strict
    /// verification and `verify_strict` reject them too).
    #[error("weak (small-order) key")]
    Weak,
}

/// Checks that `bytes` are the canonical encoding of an Ed25519 point of large
/// order, so every id in a decoded value can verify signatures and no key has
/// two ids.
pub(crate) fn check_public_key(bytes: &[u8; 32]) -> Result<VerifyingKey, KeyError> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NotAPoint)?;
    if key.to_edwards().compress().to_bytes() != *bytes {
        return Err(KeyError::NonCanonical);
    }
    if key.is_weak() {
        return Err(KeyError::Weak);
    }
    Ok(key)
}

/// An Ed25519 signature (64 bytes). Only a signature's bytes are held; what it
/// covers and who made it is given when it is verified.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl Signature {
    /// The length of a signature in bytes.
    pub const LEN: usize = 64;

    /// A signature from its 64 bytes (`R || S`, RFC 8032 §5.1.6).
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Signature(bytes)
    }

    /// The signature's bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }

    /// The signature's bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use base64::Engine;
        write!(
            f,
            "Signature({})",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
        )
    }
}

/// What a signature is for. Each purpose has its own prefix; none is a prefix
/// of another (each ends with the only NUL it contains).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Domain {
    /// A relay signing its own descriptor.
    DescriptorRelay,
    /// An operator signing a descriptor of one of its relays.
    DescriptorOperator,
    /// The relay's QUIC/TLS key signing the descriptor that pins it (proof
    /// that the relay holds the key it asks clients to pin).
    DescriptorQuic,
    /// An operator signing its public profile.
    OperatorProfile,
    /// A validator signing the digest of a directory document (format 3,
    /// no chain section).
    Directory,
    /// A validator signing the digest of a directory document of format 6
    /// (with a chain section carrying measurements and releases).
    DirectoryChain,
    /// A validator of the previous set signing a validator set hand-over.
    ValidatorSetChange,
    /// A validator signing its vote (the relays and issuer key sets it saw
    /// published).
    Vote,
    /// An issuer signing its token key set (RFC 9576 §6 key consistency).
    IssuerKeys,
}

impl Domain {
    pub(crate) fn prefix(self) -> &'static [u8] {
        match self {
            // Each prefix names the version of the object it signs, so a
            // signature over one version's bytes never verifies for another.
            Domain::DescriptorRelay => b"openrelay descriptor v3 relay\0",
            Domain::DescriptorOperator => b"openrelay descriptor v3 operator\0",
            Domain::DescriptorQuic => b"openrelay descriptor v3 quic\0",
            Domain::OperatorProfile => b"openrelay operator profile v1\0",
            // Directories: the SHA-256 of the body, not the body (a
            // client verifies a quorum over one hash of the body, not
            // one SHA-512 of it per signature).
            Domain::Directory => b"openrelay directory v3 digest validator\0",
            Domain::DirectoryChain => b"openrelay directory v6 digest validator\0",
            Domain::ValidatorSetChange => b"openrelay validator set change v1\0",
            Domain::Vote => b"openrelay vote v2 validator\0",
            Domain::IssuerKeys => b"openrelay issuer keys v1\0",
        }
    }

    pub(crate) fn message(self, body: &[u8]) -> Vec<u8> {
        let prefix = self.prefix();
        let mut message = Vec::with_capacity(prefix.len() + body.len());
        message.extend_from_slice(prefix);
        message.extend_from_slice(body);
        message
    }
}

pub(crate) fn sign(key: &SigningKey, domain: Domain, body: &[u8]) -> Signature {
    Signature(key.sign(&domain.message(body)).to_bytes())
}

/// Strict Ed25519 verification (rejects non-canonical `S`, small-order `R`
/// and keys): one message has at most one accepted signature per key, so a
/// third party cannot mint a second valid signature from a first.
pub(crate) fn verify(key: &[u8; 32], domain: Domain, body: &[u8], signature: &Signature) -> bool {
    let Ok(key) = check_public_key(key) else {
        return false;
    };
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(&domain.message(body), &signature).is_ok()
}

macro_rules! public_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Always the canonical encoding of a large-order Ed25519 point:
        /// constructors and decoders refuse anything else.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The id of a raw 32-byte Ed25519 public key.
            pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
                check_public_key(&bytes)?;
                Ok($name(bytes))
            }

            /// The raw public key.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The raw public key.
            pub fn to_bytes(&self) -> [u8; 32] {
                self.0
            }

            /// Parses `ed25519:<base64url>`, the form `Display` writes.
            pub fn parse(text: &str) -> Result<Self, KeyError> {
                Self::from_bytes(*KeyPin::parse(text)?.as_bytes())
            }

            /// For ids read from already-checked bytes (decoders check first).
            pub(crate) fn from_checked(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            pub(crate) fn verify(&self, domain: Domain, body: &[u8], signature: &Signature) -> bool {
                verify(&self.0, domain, body, signature)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&KeyPin::from_ed25519(self.0), f)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        /// Config files carry keys as [`KeyPin`]s (`openrelay-config` cannot
        /// depend on this crate); this checks that the pin is a usable key.
        impl TryFrom<KeyPin> for $name {
            type Error = KeyError;
            fn try_from(pin: KeyPin) -> Result<Self, Self::Error> {
                Self::from_bytes(*pin.as_bytes())
            }
        }

        impl From<$name> for KeyPin {
            fn from(id: $name) -> KeyPin {
                KeyPin::from_ed25519(id.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

public_id!(
    /// The public id of a relay: its long-term key, which signs its descriptor.
    /// Not the QUIC/TLS key clients pin (that is the descriptor's `quic_pin`),
    /// so the TLS key can be rotated without changing the relay's identity.
    RelayId
);
public_id!(
    /// The public id of an operator: the key that signs its profile and the
    /// descriptors of all its relays. Path selection never pairs two relays
    /// with one operator id (SPEC, "The parties").
    OperatorId
);
public_id!(
    /// The public id of a validator: a key that signs directory documents.
    /// Clients are configured with a set of these and a threshold.
    ValidatorId
);
public_id!(
    /// The public id of a token issuer: its long-term Ed25519 key (the key
    /// of its QUIC/TLS identity, which clients pin in `[account] issuer`
    /// and relays in their token settings). It signs the issuer's token key
    /// sets ([`crate::SignedIssuerKeySet`]).
    IssuerId
);

macro_rules! signing_key {
    ($(#[$doc:meta])* $name:ident, $id:ident) => {
        $(#[$doc])*
        ///
        /// The secret is zeroed when dropped; `Debug` shows only the public id.
        #[derive(Clone)]
        pub struct $name(SigningKey);

        impl $name {
            /// A fresh key from `rng` (pass `rand_core::OsRng` in production,
            /// a seeded RNG in tests).
            pub fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Self {
                $name(SigningKey::generate(rng))
            }

            /// The key of a 32-byte secret (the RFC 8032 seed).
            pub fn from_bytes(secret: &[u8; 32]) -> Self {
                $name(SigningKey::from_bytes(secret))
            }

            /// The 32-byte secret, for storing the key. Handle with care.
            pub fn to_bytes(&self) -> [u8; 32] {
                self.0.to_bytes()
            }

            /// The public id of this key.
            pub fn id(&self) -> $id {
                // Derived from a secret, the point has large order and
                // `compress` gives its canonical encoding.
                $id::from_checked(self.0.verifying_key().to_bytes())
            }

            pub(crate) fn sign(&self, domain: Domain, body: &[u8]) -> Signature {
                sign(&self.0, domain, body)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.id()).finish()
            }
        }
    };
}

signing_key!(
    /// A relay's long-term signing key.
    RelayKey,
    RelayId
);
signing_key!(
    /// An operator's long-term signing key. It signs the operator's profile
    /// and every descriptor of its relays, so it must be at hand wherever
    /// descriptors are refreshed (each is valid for at most
    /// [`MAX_DESCRIPTOR_LIFETIME_SECS`](crate::MAX_DESCRIPTOR_LIFETIME_SECS)).
    OperatorKey,
    OperatorId
);
signing_key!(
    /// A validator's signing key.
    ValidatorKey,
    ValidatorId
);
signing_key!(
    /// An issuer's identity key as a signing key, for tests and tools. A
    /// running issuer signs with its transport identity instead (over
    /// [`IssuerKeySet::signing_message`](crate::IssuerKeySet::signing_message)).
    IssuerKey,
    IssuerId
);

/// A relay's QUIC/TLS key as an Ed25519 signing key, for tests and tools. A
/// running relay signs with its transport identity instead (over
/// [`RelayDescriptor::quic_key_message`](crate::RelayDescriptor::quic_key_message)).
///
/// The secret is zeroed when dropped; `Debug` shows only the pin.
#[derive(Clone)]
pub struct QuicKey(SigningKey);

impl QuicKey {
    /// A fresh key from `rng`.
    pub fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Self {
        QuicKey(SigningKey::generate(rng))
    }

    /// The key of a 32-byte secret (the RFC 8032 seed).
    pub fn from_bytes(secret: &[u8; 32]) -> Self {
        QuicKey(SigningKey::from_bytes(secret))
    }

    /// The pin clients check in the TLS handshake: this key's public half.
    pub fn pin(&self) -> KeyPin {
        KeyPin::from_ed25519(self.0.verifying_key().to_bytes())
    }

    /// The signature over `message` (RFC 8032, pure Ed25519).
    pub fn sign_message(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }
}

impl std::fmt::Debug for QuicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("QuicKey").field(&self.pin()).finish()
    }
}
