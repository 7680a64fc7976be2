//! The public key a client pins for a relay: no web PKI, the relay proves
//! possession of this key in the TLS handshake.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ed25519 public key, written `ed25519:<base64url, no padding>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyPin([u8; 32]);

/// Why a key pin does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyPinError {
    /// Only Ed25519 keys are used.
    #[error("key must start with `ed25519:`")]
    UnknownAlgorithm,
    /// The key text is not base64url.
    #[error("key is not unpadded base64url")]
    Encoding,
    /// An Ed25519 public key has 32 bytes.
    #[error("key must be 32 bytes, got {0}")]
    Length(usize),
}

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4): the key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

impl KeyPin {
    /// The pin of a raw 32-byte Ed25519 public key.
    pub fn from_ed25519(raw: [u8; 32]) -> Self {
        KeyPin(raw)
    }

    /// The raw public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Appends the first ten characters of the key's base64url form (what
    /// `Display` writes after `ed25519:`) to `out`: enough to tell relays
    /// apart in names and logs. Encodes 9 of the 32 bytes (ten characters
    /// need only the first 60 bits) instead of formatting the whole key.
    pub fn push_abbreviated(&self, out: &mut String) {
        // 9 bytes are 12 characters, no padding.
        URL_SAFE_NO_PAD.encode_string(&self.0[..9], out);
        out.truncate(out.len().saturating_sub(2));
    }

    /// The DER SubjectPublicKeyInfo that a certificate for this key carries.
    pub fn spki_der(&self) -> Vec<u8> {
        let mut der = Vec::with_capacity(44);
        der.extend_from_slice(&ED25519_SPKI_PREFIX);
        der.extend_from_slice(&self.0);
        der
    }

    /// Parses `ed25519:<base64url>`.
    pub fn parse(text: &str) -> Result<Self, KeyPinError> {
        let encoded = text
            .trim()
            .strip_prefix("ed25519:")
            .ok_or(KeyPinError::UnknownAlgorithm)?;
        let raw = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| KeyPinError::Encoding)?;
        let len = raw.len();
        let raw: [u8; 32] = raw.try_into().map_err(|_| KeyPinError::Length(len))?;
        Ok(KeyPin(raw))
    }
}

impl std::fmt::Display for KeyPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ed25519:{}", URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl std::fmt::Debug for KeyPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPin({self})")
    }
}

impl std::str::FromStr for KeyPin {
    type Err = KeyPinError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyPin::parse(s)
    }
}

impl Serialize for KeyPin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeyPin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        KeyPin::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_pins_parse_and_print() {
        let pin = KeyPin::from_ed25519([7; 32]);
        assert_eq!(KeyPin::parse(&pin.to_string()).unwrap(), pin);
        assert_eq!(
            KeyPin::parse("rsa:AAAA"),
            Err(KeyPinError::UnknownAlgorithm)
        );
        assert_eq!(KeyPin::parse("ed25519:AAAA"), Err(KeyPinError::Length(3)));
        assert_eq!(KeyPin::parse("ed25519:*"), Err(KeyPinError::Encoding));
        assert_eq!(pin.spki_der().len(), 44);
    }

    proptest::proptest! {
        #[test]
        fn an_abbreviated_pin_is_the_start_of_the_printed_one(raw in proptest::prelude::any::<[u8; 32]>()) {
            let pin = KeyPin::from_ed25519(raw);
            let mut short = String::from("x-");
            pin.push_abbreviated(&mut short);
            let printed = pin.to_string();
            proptest::prop_assert_eq!(short, format!("x-{}", &printed["ed25519:".len()..][..10]));
        }

        #[test]
        fn key_pins_round_trip(raw in proptest::array::uniform32(0u8..)) {
            let pin = KeyPin::from_ed25519(raw);
            proptest::prop_assert_eq!(KeyPin::parse(&pin.to_string()).unwrap(), pin);
        }
    }
}
