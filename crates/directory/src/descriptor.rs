//! Relay descriptors (issue 3, item 1): what a relay says about itself, signed
//! by the relay key and by its operator's key, so that neither a relay nor an
//! operator alone can put a relay under another operator's name, and a client
//! can check both (SPEC: "signed by both. Clients verify every signature").
//!
//! Version 2 adds a third signature, by the QUIC/TLS key the descriptor pins
//! (issue 11, item 8): proof that the relay holds the key it asks clients to
//! pin, so nobody can claim another relay's key and lock it out of the
//! registry.
//!
//! Version 3 (issue 15, item 4) replaces the self-declared software
//! measurement with the relay's TEE attestation evidence, carried after the
//! validity window and, like it, outside the content hash: evidence is
//! refreshed with every republication (it binds `not_before`), so putting
//! it under the chain's commitment would need a transaction per refresh.
//! This crate carries the evidence as opaque bounded bytes; what it proves
//! is `openrelay_attest`'s to check (the client does, per candidate relay).

use std::net::SocketAddr;

use bytes::Bytes;
use openrelay_types::{KeyPin, RelayRole};

use crate::codec::{KeyChecks, Reader, check_strictly_ascending, decode_exact};
use crate::fields::{
    Network, Region, check_endpoint, check_software_version, decode_endpoint, encode_endpoint,
    endpoint_key,
};
use crate::keys::{
    Domain, OperatorId, OperatorKey, QuicKey, RelayId, RelayKey, Signature, check_public_key,
    verify,
};
use crate::{FormatError, MAX_CLOCK_SKEW_SECS, Signer};

/// The format version of descriptor bodies this crate reads and writes.
pub const DESCRIPTOR_VERSION: u8 = 3;

/// The domain prefix of [`RelayDescriptor::content_hash`] (one NUL, last,
/// like the signature prefixes, and none of them: a content hash is never
/// a signed message).
pub const DESCRIPTOR_CONTENT_HASH_PREFIX: &[u8] = b"openrelay descriptor v3 content\0";

/// The largest attestation evidence a descriptor carries, bytes: an
/// SEV-SNP report with its VCEK and ASK certificates is about 4 KiB, a DCAP
/// quote with its PCK chain about 5 KiB and its collateral (TCB info, QE
/// identity, CRLs and their chains) another 10 to 15 KiB.
pub const MAX_ATTESTATION_EVIDENCE_LEN: usize = 32 * 1024;

const ROLE_INGRESS: u8 = 1;
const ROLE_EGRESS: u8 = 2;
const ATTESTATION_NONE: u8 = 0;
const ATTESTATION_EVIDENCE: u8 = 1;

/// A relay's TEE attestation evidence (`openrelay_attest::Evidence`'s
/// encoding), unparsed: 1 to [`MAX_ATTESTATION_EVIDENCE_LEN`] bytes. The
/// relay and operator sign it with the descriptor, but what makes it
/// evidence is the platform's own signature inside, over report data that
/// binds the descriptor's relay id, QUIC key pin and `not_before`.
#[derive(Clone, PartialEq, Eq)]
pub struct AttestationEvidence(Bytes);

impl AttestationEvidence {
    /// Wraps encoded evidence; refuses none or more than
    /// [`MAX_ATTESTATION_EVIDENCE_LEN`] bytes.
    pub fn new(bytes: Vec<u8>) -> Result<Self, FormatError> {
        Self::checked(Bytes::from(bytes))
    }

    /// [`AttestationEvidence::new`] for bytes held shared (a view of a
    /// directory's bytes when decoded from them: evidence is kilobytes per
    /// relay, so a copy would double what a client holds of it).
    fn checked(bytes: Bytes) -> Result<Self, FormatError> {
        if bytes.is_empty() {
            return Err(FormatError::Invalid {
                field: "attestation",
                reason: "evidence must not be empty",
            });
        }
        if bytes.len() > MAX_ATTESTATION_EVIDENCE_LEN {
            return Err(FormatError::TooLarge {
                what: "attestation evidence",
                limit: MAX_ATTESTATION_EVIDENCE_LEN,
            });
        }
        Ok(AttestationEvidence(bytes))
    }

    /// The encoded evidence.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for AttestationEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AttestationEvidence({} bytes)", self.0.len())
    }
}

/// The fields of a relay descriptor, as an operator fills them in. Turned into
/// a [`RelayDescriptor`] by [`RelayDescriptor::new`], which checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorFields {
    /// The relay's long-term key (it signs the descriptor).
    pub relay: RelayId,
    /// The operator's key (it signs the descriptor too).
    pub operator: OperatorId,
    /// Ingress or egress.
    pub role: RelayRole,
    /// Where clients (ingress) or ingress relays (egress) send QUIC packets:
    /// 1 to [`MAX_ENDPOINTS`](crate::MAX_ENDPOINTS) unicast addresses with
    /// ports, no duplicates. Any order; the descriptor sorts them.
    pub endpoints: Vec<SocketAddr>,
    /// The key the relay's QUIC/TLS certificate carries, which clients pin
    /// (`transport::tls::PinnedKeyVerifier`). Separate from `relay` so the
    /// TLS key can rotate under one relay identity.
    pub quic_pin: KeyPin,
    /// Country and city.
    pub region: Region,
    /// AS number or network label.
    pub network: Network,
    /// Advertised bandwidth in bits per second (weights path selection; the
    /// stake covers it). Not 0.
    pub bandwidth_bps: u64,
    /// The software the relay runs, e.g. `openrelay 0.1.0`.
    pub software_version: String,
    /// Evidence from the relay's TEE of the software it runs, bound to
    /// `relay`, `quic_pin` and `not_before` (SPEC: "Verifiable software");
    /// `None` for a relay without a TEE. Outside the content hash, like the
    /// validity window.
    pub attestation: Option<AttestationEvidence>,
    /// Valid from (Unix seconds, inclusive).
    pub not_before: u64,
    /// Valid until (Unix seconds, exclusive); after `not_before`, at most
    /// [`MAX_DESCRIPTOR_LIFETIME_SECS`](crate::MAX_DESCRIPTOR_LIFETIME_SECS)
    /// later, so a descriptor stops being accepted when it is not refreshed.
    pub not_after: u64,
}

/// A checked descriptor (not yet signed): every field within the format's
/// rules, endpoints sorted. Its canonical bytes ([`RelayDescriptor::to_bytes`])
/// are what both signatures cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayDescriptor {
    fields: DescriptorFields,
}

fn role_byte(role: RelayRole) -> u8 {
    match role {
        RelayRole::Ingress => ROLE_INGRESS,
        RelayRole::Egress => ROLE_EGRESS,
    }
}

impl RelayDescriptor {
    /// Checks `fields` against the format's rules (`docs/directory-format.md`,
    /// "Relay descriptor") and sorts the endpoints.
    pub fn new(mut fields: DescriptorFields) -> Result<Self, FormatError> {
        fields.endpoints.sort_by_key(endpoint_key);
        let descriptor = RelayDescriptor { fields };
        descriptor.check(KeyChecks::Strict)?;
        Ok(descriptor)
    }

    fn check(&self, key_checks: KeyChecks) -> Result<(), FormatError> {
        let f = &self.fields;
        if f.relay.as_bytes() == f.operator.as_bytes() {
            return Err(FormatError::Invalid {
                field: "operator",
                reason: "the relay key and the operator key must differ",
            });
        }
        if f.endpoints.is_empty() {
            return Err(FormatError::Invalid {
                field: "endpoints",
                reason: "at least one is needed",
            });
        }
        if f.endpoints.len() > crate::MAX_ENDPOINTS {
            return Err(FormatError::TooLarge {
                what: "endpoints",
                limit: crate::MAX_ENDPOINTS,
            });
        }
        f.endpoints.iter().try_for_each(check_endpoint)?;
        check_strictly_ascending(&f.endpoints, "endpoints", endpoint_key)?;
        check_key(f.quic_pin.as_bytes(), "quic_pin", key_checks)?;
        f.region.check()?;
        f.network.check()?;
        if f.bandwidth_bps == 0 {
            return Err(FormatError::Invalid {
                field: "bandwidth_bps",
                reason: "must not be 0",
            });
        }
        check_software_version(&f.software_version)?;
        if f.not_after <= f.not_before {
            return Err(FormatError::Invalid {
                field: "not_after",
                reason: "must be after not_before",
            });
        }
        if f.not_after - f.not_before > crate::MAX_DESCRIPTOR_LIFETIME_SECS {
            return Err(FormatError::Invalid {
                field: "not_after",
                reason: "validity window longer than the maximum",
            });
        }
        Ok(())
    }

    /// All fields.
    pub fn fields(&self) -> &DescriptorFields {
        &self.fields
    }

    /// The relay's id (its long-term key).
    pub fn relay(&self) -> RelayId {
        self.fields.relay
    }

    /// The operator's id.
    pub fn operator(&self) -> OperatorId {
        self.fields.operator
    }

    /// Ingress or egress.
    pub fn role(&self) -> RelayRole {
        self.fields.role
    }

    /// The endpoints, sorted.
    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.fields.endpoints
    }

    /// The QUIC/TLS key clients pin.
    pub fn quic_pin(&self) -> KeyPin {
        self.fields.quic_pin
    }

    /// Country and city.
    pub fn region(&self) -> &Region {
        &self.fields.region
    }

    /// AS number or network label.
    pub fn network(&self) -> &Network {
        &self.fields.network
    }

    /// Advertised bandwidth, bits per second.
    pub fn bandwidth_bps(&self) -> u64 {
        self.fields.bandwidth_bps
    }

    /// Whether `now` (Unix seconds) is inside the validity window, allowing
    /// the relay's clock to run up to [`MAX_CLOCK_SKEW_SECS`] ahead of ours
    /// for `not_before` (but none for `not_after`: expiry is what removes
    /// relays that stopped refreshing).
    pub fn is_valid_at(&self, now: u64) -> bool {
        self.fields.not_before <= now.saturating_add(MAX_CLOCK_SKEW_SECS)
            && now < self.fields.not_after
    }

    /// Whether `other` says the same as `self` apart from its freshness
    /// (validity window and attestation evidence, which binds the window's
    /// start): a relay refreshing its descriptor changes only those, and a
    /// registry need not issue a new directory for that.
    pub fn same_except_freshness(&self, other: &RelayDescriptor) -> bool {
        let window = |d: &RelayDescriptor| DescriptorFields {
            not_before: 0,
            not_after: 0,
            attestation: None,
            ..d.fields.clone()
        };
        window(self) == window(other)
    }

    /// The attestation evidence, if the relay has a TEE.
    pub fn attestation(&self) -> Option<&AttestationEvidence> {
        self.fields.attestation.as_ref()
    }

    /// The window's start, which attestation evidence binds as its
    /// freshness value.
    pub fn not_before(&self) -> u64 {
        self.fields.not_before
    }

    /// What the relay's QUIC/TLS key signs (the domain prefix
    /// `openrelay descriptor v3 quic\0`, then the canonical bytes): sign this
    /// with the key of [`DescriptorFields::quic_pin`] and pass the signature
    /// to [`SignedDescriptor::sign`].
    pub fn quic_key_message(&self) -> Vec<u8> {
        Domain::DescriptorQuic.message(&self.to_bytes())
    }

    /// The commitment the chain stores for this relay (`descriptorHash` of
    /// `RelayRegistry.sol`): SHA-256 of the prefix
    /// [`DESCRIPTOR_CONTENT_HASH_PREFIX`], then the canonical bytes without
    /// their freshness (the validity window and the attestation evidence,
    /// the last fields).
    ///
    /// Everything else (keys, role, endpoints, QUIC key, region, network,
    /// bandwidth, software version) changes it, so a registry lists a
    /// descriptor only as the operator committed to it on chain; freshness
    /// does not, so a relay refreshes its descriptor and evidence without a
    /// transaction. Equal for two descriptors exactly when
    /// [`RelayDescriptor::same_except_freshness`] (property-tested).
    pub fn content_hash(&self) -> [u8; 32] {
        use sha2::Digest as _;
        let mut body = Vec::with_capacity(256);
        self.encode_committed(&mut body);
        let mut hash = sha2::Sha256::new();
        hash.update(DESCRIPTOR_CONTENT_HASH_PREFIX);
        hash.update(&body);
        hash.finalize().into()
    }

    /// The canonical bytes (`docs/directory-format.md`, "Relay descriptor").
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode_committed(&mut out);
        out.extend_from_slice(&self.fields.not_before.to_be_bytes());
        out.extend_from_slice(&self.fields.not_after.to_be_bytes());
        match &self.fields.attestation {
            None => out.push(ATTESTATION_NONE),
            Some(evidence) => {
                out.push(ATTESTATION_EVIDENCE);
                // At most MAX_ATTESTATION_EVIDENCE_LEN (32 KiB), checked on
                // construction.
                let len = u16::try_from(evidence.0.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&evidence.0);
            }
        }
        out
    }

    /// Every field of the canonical bytes but the freshness ones (the
    /// validity window and the attestation evidence), in order.
    fn encode_committed(&self, out: &mut Vec<u8>) {
        let f = &self.fields;
        out.push(DESCRIPTOR_VERSION);
        out.extend_from_slice(f.relay.as_bytes());
        out.extend_from_slice(f.operator.as_bytes());
        out.push(role_byte(f.role));
        // At most MAX_ENDPOINTS (8), checked on construction.
        out.push(u8::try_from(f.endpoints.len()).unwrap_or(u8::MAX));
        for endpoint in &f.endpoints {
            encode_endpoint(endpoint, out);
        }
        out.extend_from_slice(f.quic_pin.as_bytes());
        f.region.encode(out);
        f.network.encode(out);
        out.extend_from_slice(&f.bandwidth_bps.to_be_bytes());
        crate::codec::put_short_str(out, &f.software_version);
    }

    /// Parses canonical bytes; anything else (trailing bytes included) is
    /// refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        decode_exact(bytes, Self::decode)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        r.version("descriptor", DESCRIPTOR_VERSION)?;
        let relay = read_key(r, "relay")?;
        let operator = read_key(r, "operator")?;
        let role = match r.u8()? {
            ROLE_INGRESS => RelayRole::Ingress,
            ROLE_EGRESS => RelayRole::Egress,
            _ => {
                return Err(FormatError::Invalid {
                    field: "role",
                    reason: "neither ingress nor egress",
                });
            }
        };
        let count = usize::from(r.u8()?);
        if count > crate::MAX_ENDPOINTS {
            return Err(FormatError::TooLarge {
                what: "endpoints",
                limit: crate::MAX_ENDPOINTS,
            });
        }
        let mut endpoints = Vec::with_capacity(count);
        for _ in 0..count {
            endpoints.push(decode_endpoint(r)?);
        }
        let quic_pin = KeyPin::from_ed25519(r.array()?);
        let region = Region::decode(r)?;
        let network = Network::decode(r)?;
        let bandwidth_bps = r.u64()?;
        let software_version = r
            .short_str("software_version", crate::MAX_SOFTWARE_VERSION_LEN)?
            .to_owned();
        let not_before = r.u64()?;
        let not_after = r.u64()?;
        let attestation = match r.u8()? {
            ATTESTATION_NONE => None,
            ATTESTATION_EVIDENCE => {
                let len = usize::from(r.u16()?);
                if len > MAX_ATTESTATION_EVIDENCE_LEN {
                    return Err(FormatError::TooLarge {
                        what: "attestation evidence",
                        limit: MAX_ATTESTATION_EVIDENCE_LEN,
                    });
                }
                let start = r.position();
                r.bytes(len)?;
                Some(AttestationEvidence::checked(r.kept_since(start))?)
            }
            _ => {
                return Err(FormatError::Invalid {
                    field: "attestation",
                    reason: "tag must be 0 (none) or 1 (evidence)",
                });
            }
        };
        let descriptor = RelayDescriptor {
            fields: DescriptorFields {
                relay: RelayId::from_checked(relay),
                operator: OperatorId::from_checked(operator),
                role,
                endpoints,
                quic_pin,
                region,
                network,
                bandwidth_bps,
                software_version,
                attestation,
                not_before,
                not_after,
            },
        };
        // The same checks as `new`, without sorting: unsorted input is refused.
        descriptor.check(r.key_checks())?;
        Ok(descriptor)
    }
}

/// The special-purpose class of an endpoint's address (loopback, private,
/// link-local, documentation, ...: every range `openrelay_policy::classify`
/// knows), or `None` for a global unicast address. Registries, validators
/// and clients refuse relays with such endpoints unless configured for a
/// local network (issue 11, item 17): otherwise a directory could make
/// clients send QUIC packets to hosts inside their own network.
pub fn endpoint_class(endpoint: &SocketAddr) -> Option<openrelay_policy::AddressClass> {
    openrelay_policy::classify(endpoint.ip())
}

impl RelayDescriptor {
    /// The first endpoint with a special-purpose address ([`endpoint_class`]),
    /// with its class.
    pub fn special_purpose_endpoint(&self) -> Option<(SocketAddr, openrelay_policy::AddressClass)> {
        self.fields
            .endpoints
            .iter()
            .find_map(|e| endpoint_class(e).map(|class| (*e, class)))
    }
}

/// Reads a public key and checks that it is usable (canonical, large order).
pub(crate) fn read_key(r: &mut Reader<'_>, field: &'static str) -> Result<[u8; 32], FormatError> {
    let bytes = r.array::<32>()?;
    check_key(&bytes, field, r.key_checks())?;
    Ok(bytes)
}

/// Checks that `bytes` are a usable public key, unless `checks` defers it.
fn check_key(bytes: &[u8; 32], field: &'static str, checks: KeyChecks) -> Result<(), FormatError> {
    match checks {
        KeyChecks::Strict => check_public_key(bytes)
            .map(drop)
            .map_err(|_| FormatError::Invalid {
                field,
                reason: "not a usable Ed25519 key",
            }),
        KeyChecks::DeferredToUse => Ok(()),
    }
}

/// Why a signed descriptor is not acceptable now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptorError {
    /// A signature does not verify: forged, made over other bytes, or by
    /// another key than the descriptor names.
    #[error("bad signature by {which}")]
    BadSignature {
        /// Whose signature failed.
        which: Signer,
    },
    /// `now` is before the validity window (beyond the allowed clock skew).
    #[error("descriptor of relay {relay} is not valid before {not_before} (now {now})")]
    NotYetValid {
        /// The relay.
        relay: RelayId,
        /// Start of its validity.
        not_before: u64,
        /// The time checked.
        now: u64,
    },
    /// The validity window has ended: the relay did not refresh it.
    #[error("descriptor of relay {relay} expired at {not_after} (now {now})")]
    Expired {
        /// The relay.
        relay: RelayId,
        /// End of its validity.
        not_after: u64,
        /// The time checked.
        now: u64,
    },
}

/// Why a descriptor cannot be signed with the given keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The relay key is not the one the descriptor names.
    #[error("the relay key does not match the descriptor's relay id")]
    WrongRelayKey,
    /// The operator key is not the one the descriptor names.
    #[error("the operator key does not match the descriptor's operator id")]
    WrongOperatorKey,
    /// The QUIC-key signature does not verify with the descriptor's
    /// `quic_pin`: the relay signed with another key than it pins.
    #[error("the QUIC key signature does not match the descriptor's quic_pin")]
    WrongQuicKey,
}

impl RelayKey {
    /// The relay's signature over `descriptor`. Refused when the descriptor
    /// names another relay: a signature that could never verify is a bug.
    pub fn sign_descriptor(&self, descriptor: &RelayDescriptor) -> Result<Signature, SignError> {
        if self.id() != descriptor.relay() {
            return Err(SignError::WrongRelayKey);
        }
        Ok(self.sign(Domain::DescriptorRelay, &descriptor.to_bytes()))
    }
}

impl OperatorKey {
    /// The operator's signature over `descriptor`. Refused when the descriptor
    /// names another operator.
    pub fn sign_descriptor(&self, descriptor: &RelayDescriptor) -> Result<Signature, SignError> {
        if self.id() != descriptor.operator() {
            return Err(SignError::WrongOperatorKey);
        }
        Ok(self.sign(Domain::DescriptorOperator, &descriptor.to_bytes()))
    }
}

impl QuicKey {
    /// This key's signature over `descriptor` ([`RelayDescriptor::quic_key_message`]).
    pub fn sign_descriptor(&self, descriptor: &RelayDescriptor) -> Signature {
        self.sign_message(&descriptor.quic_key_message())
    }
}

/// A descriptor with its relay, operator and QUIC-key signatures, as
/// published and as carried in a directory. Holding one proves nothing: call
/// [`SignedDescriptor::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedDescriptor {
    descriptor: RelayDescriptor,
    /// The canonical bytes, kept so neither verification nor encoding
    /// re-encodes: `descriptor.to_bytes()`, then the relay's, the
    /// operator's and the QUIC key's signatures. A view of a directory's
    /// bytes when decoded from them, not a copy.
    bytes: Bytes,
}

/// The three signatures at the end of a signed descriptor's bytes.
const SIGNATURES_LEN: usize = 3 * Signature::LEN;

impl SignedDescriptor {
    /// Signs `descriptor` with the relay and operator keys and adds
    /// `quic_signature`, the QUIC key's signature over
    /// [`RelayDescriptor::quic_key_message`] (made by the relay's transport
    /// identity, or [`QuicKey::sign_descriptor`]). Refused when a key does
    /// not match what the descriptor names, so a relay finds out at start-up
    /// rather than from a registry.
    pub fn sign(
        descriptor: RelayDescriptor,
        relay_key: &RelayKey,
        operator_key: &OperatorKey,
        quic_signature: Signature,
    ) -> Result<Self, SignError> {
        let relay_signature = relay_key.sign_descriptor(&descriptor)?;
        let operator_signature = operator_key.sign_descriptor(&descriptor)?;
        let signed = Self::from_parts(
            descriptor,
            relay_signature,
            operator_signature,
            quic_signature,
        );
        if !signed.quic_signature_verifies() {
            return Err(SignError::WrongQuicKey);
        }
        Ok(signed)
    }

    /// Puts a descriptor and its three signatures together, unchecked.
    pub fn from_parts(
        descriptor: RelayDescriptor,
        relay_signature: Signature,
        operator_signature: Signature,
        quic_signature: Signature,
    ) -> Self {
        let mut bytes = descriptor.to_bytes();
        bytes.reserve_exact(SIGNATURES_LEN);
        for signature in [relay_signature, operator_signature, quic_signature] {
            bytes.extend_from_slice(signature.as_bytes());
        }
        SignedDescriptor {
            descriptor,
            bytes: Bytes::from(bytes),
        }
    }

    /// Signature `which` (0: relay, 1: operator, 2: QUIC key) from the
    /// end of the bytes.
    fn signature(&self, which: usize) -> Signature {
        let at = self.body().len() + which * Signature::LEN;
        let mut out = [0u8; Signature::LEN];
        if let Some(bytes) = self.bytes.get(at..at + Signature::LEN) {
            out.copy_from_slice(bytes);
        }
        Signature::from_bytes(out)
    }

    /// The descriptor (its signatures unchecked unless this came out of
    /// verification).
    pub fn descriptor(&self) -> &RelayDescriptor {
        &self.descriptor
    }

    /// The relay's signature.
    pub fn relay_signature(&self) -> Signature {
        self.signature(0)
    }

    /// The operator's signature.
    pub fn operator_signature(&self) -> Signature {
        self.signature(1)
    }

    /// The QUIC key's signature (proof of possession of `quic_pin`).
    pub fn quic_signature(&self) -> Signature {
        self.signature(2)
    }

    fn quic_signature_verifies(&self) -> bool {
        verify(
            self.descriptor.fields.quic_pin.as_bytes(),
            Domain::DescriptorQuic,
            self.body(),
            &self.quic_signature(),
        )
    }

    /// The canonical bytes both signatures cover.
    pub fn body(&self) -> &[u8] {
        self.bytes
            .get(..self.bytes.len().saturating_sub(SIGNATURES_LEN))
            .unwrap_or_default()
    }

    /// Checks the three signatures (relay's, operator's, QUIC key's), then
    /// that `now` (Unix seconds) is inside the validity window. What the
    /// registry runs when a relay publishes, and validators on every
    /// descriptor of a directory before they sign it (clients check the
    /// window of every descriptor, the signatures of those they use:
    /// [`crate::VerifiedDirectory::check_relay_signatures`]).
    pub fn verify(&self, now: u64) -> Result<(), DescriptorError> {
        self.verify_signatures()?;
        self.check_valid_at(now)
    }

    /// Checks only that `now` (Unix seconds) is inside the validity
    /// window, `not_before` up to the clock skew ahead.
    pub fn check_valid_at(&self, now: u64) -> Result<(), DescriptorError> {
        let f = &self.descriptor.fields;
        check_window_at(f.relay, f.not_before, f.not_after, now)
    }

    /// Checks the three signatures only.
    pub fn verify_signatures(&self) -> Result<(), DescriptorError> {
        let d = &self.descriptor;
        if !d.relay().verify(
            Domain::DescriptorRelay,
            self.body(),
            &self.relay_signature(),
        ) {
            return Err(DescriptorError::BadSignature {
                which: Signer::Relay(d.relay()),
            });
        }
        if !d.operator().verify(
            Domain::DescriptorOperator,
            self.body(),
            &self.operator_signature(),
        ) {
            return Err(DescriptorError::BadSignature {
                which: Signer::Operator(d.operator()),
            });
        }
        if !self.quic_signature_verifies() {
            return Err(DescriptorError::BadSignature {
                which: Signer::QuicKey(d.relay()),
            });
        }
        Ok(())
    }

    /// The canonical bytes: the body, the relay's signature, the
    /// operator's, the QUIC key's.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.to_vec()
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
    }

    /// Parses a signed descriptor (signatures unchecked: call `verify`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        decode_exact(bytes, Self::decode)
    }

    /// [`SignedDescriptor::from_bytes`] for a descriptor of a directory a
    /// quorum signed (see
    /// [`crate::Directory::from_quorum_signed_bytes_deferring_key_checks`]):
    /// a view of `bytes`, key checks left to each key's use.
    pub(crate) fn from_quorum_signed_shared(bytes: &Bytes) -> Result<Self, FormatError> {
        crate::codec::decode_exact_quorum_signed_shared(bytes, Self::decode)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        let start = r.position();
        let descriptor = RelayDescriptor::decode(r)?;
        // The decoder accepts only canonical bytes, so the body is exactly
        // `descriptor.to_bytes()` (property-tested and fuzzed).
        r.bytes(SIGNATURES_LEN)?;
        Ok(SignedDescriptor {
            descriptor,
            bytes: r.kept_since(start),
        })
    }
}

/// The smallest possible signed descriptor, to bound allocations for a count
/// read from untrusted input.
pub(crate) const MIN_SIGNED_DESCRIPTOR_LEN: usize =
    1 + 32 + 32 + 1 + 1 + 7 + 32 + 2 + 1 + 5 + 8 + 2 + 8 + 8 + 1 + 3 * Signature::LEN;

/// [`SignedDescriptor::check_valid_at`] for `relay`'s validity window.
pub(crate) fn check_window_at(
    relay: RelayId,
    not_before: u64,
    not_after: u64,
    now: u64,
) -> Result<(), DescriptorError> {
    if now.saturating_add(MAX_CLOCK_SKEW_SECS) < not_before {
        return Err(DescriptorError::NotYetValid {
            relay,
            not_before,
            now,
        });
    }
    if now >= not_after {
        return Err(DescriptorError::Expired {
            relay,
            not_after,
            now,
        });
    }
    Ok(())
}
