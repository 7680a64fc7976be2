//! DSSE, the Dead Simple Signing Envelope (secure-systems-lab/dsse v1.0.0,
//! protocol.md and envelope.md): what in-toto and sigstore wrap statements
//! in. Release keys are Ed25519; a signature's `keyid` is the hex SHA-256 of
//! the raw 32-byte public key (a hint only: verification tries every
//! trusted key, as the protocol says `keyid` must not decide anything).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The JSON envelope (envelope.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The serialized body, base64.
    pub payload: String,
    /// How to interpret the payload.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Signatures over PAE(payloadType, payload).
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Which key signed (unauthenticated hint).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// The signature, base64.
    pub sig: String,
}

/// The pre-authentication encoding (protocol.md): what is signed.
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII
/// decimal without leading zeros.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The `keyid` of a release key: hex SHA-256 of its public key bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Decodes base64 in either alphabet, padded (protocol.md: "Either standard
/// or URL-safe base64 encodings are allowed ... verifiers MUST accept
/// either").
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

/// Standard base64 (what we write).
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Signs `body` under `payload_type` with `key`.
pub fn sign(key: &SigningKey, payload_type: &str, body: &[u8]) -> EnvelopeSignature {
    EnvelopeSignature {
        keyid: key_id(&key.verifying_key()),
        sig: encode_base64(&key.sign(&pae(payload_type, body)).to_bytes()),
    }
}

/// Whether `signature` is `key`'s over `body` under `payload_type`
/// (strict Ed25519: no malleable or small-order encodings).
pub fn verifies(
    signature: &EnvelopeSignature,
    key: &VerifyingKey,
    payload_type: &str,
    body: &[u8],
) -> bool {
    let Some(bytes) = decode_base64(&signature.sig) else {
        return false;
    };
    let Ok(signature) = Signature::from_slice(&bytes) else {
        return false;
    };
    key.verify_strict(&pae(payload_type, body), &signature)
        .is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The test vector of DSSE protocol.md ("Test Vectors").
    #[test]
    fn pae_matches_the_spec_vector() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn the_spec_envelope_parses_and_its_payload_decodes() {
        let text = r#"{"payload": "aGVsbG8gd29ybGQ=",
 "payloadType": "http://example.com/HelloWorld",
 "signatures": [{"sig": "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="}]}"#;
        let envelope: Envelope = serde_json::from_str(text).unwrap();
        assert_eq!(decode_base64(&envelope.payload).unwrap(), b"hello world");
        assert_eq!(envelope.signatures[0].keyid, "");
    }

    #[test]
    fn a_signature_verifies_only_with_its_key_type_and_body() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        let signature = sign(&key, "t", b"body");
        assert!(verifies(&signature, &key.verifying_key(), "t", b"body"));
        assert!(!verifies(&signature, &other, "t", b"body"));
        assert!(!verifies(&signature, &key.verifying_key(), "u", b"body"));
        assert!(!verifies(&signature, &key.verifying_key(), "t", b"bodz"));
        // URL-safe base64 of the same signature is accepted too.
        let url_safe = EnvelopeSignature {
            sig: URL_SAFE.encode(decode_base64(&signature.sig).unwrap()),
            ..signature
        };
        assert!(verifies(&url_safe, &key.verifying_key(), "t", b"body"));
    }
}
