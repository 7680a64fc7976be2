//! The `Token` structure (RFC 9577 §2.2.1) for token type 0x0002 (RFC 9578
//! §6.3), where `Nid` = 32 and `Nk` = 256:
//!
//! ```text
//! struct {
//!     uint16_t token_type = 0x0002;
//!     uint8_t nonce[32];
//!     uint8_t challenge_digest[32];
//!     uint8_t token_key_id[32];
//!     uint8_t authenticator[Nk];
//! } Token;
//! ```

use crate::{NID, NK, TOKEN_TYPE_BLIND_RSA};

/// The encoded size of a type 0x0002 token.
pub const TOKEN_LEN: usize = 2 + 32 + 32 + NID + NK;
/// The size of `AuthenticatorInput` (RFC 9577 §2.2.2): the token without its
/// authenticator.
pub const AUTHENTICATOR_INPUT_LEN: usize = 2 + 32 + 32 + NID;

/// Why bytes are not a token openrelay accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Fewer than two bytes: no token type.
    #[error("token too short to carry a token type")]
    Truncated,
    /// Another token type than 0x0002.
    #[error("unsupported token type {0:#06x}")]
    UnsupportedType(u16),
    /// A type 0x0002 token of the wrong size.
    #[error("token of type 0x0002 must be {TOKEN_LEN} bytes, got {0}")]
    Length(usize),
}

/// A Privacy Pass token of type 0x0002.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// Client-chosen random nonce; what makes each token unique.
    pub nonce: [u8; 32],
    /// SHA-256 of the `TokenChallenge` it answers.
    pub challenge_digest: [u8; 32],
    /// SHA-256 of the issuer key's SPKI (RFC 9578 §6.5).
    pub token_key_id: [u8; NID],
    /// The RSA-PSS signature over the other fields.
    pub authenticator: [u8; NK],
}

/// Tokens are bearer credentials: never print one.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// The token type, always 0x0002.
    pub fn token_type(&self) -> u16 {
        TOKEN_TYPE_BLIND_RSA
    }

    /// Parses a token (RFC 9577 §2.2.1).
    pub fn decode(bytes: &[u8]) -> Result<Self, TokenError> {
        let (Some(&a), Some(&b)) = (bytes.first(), bytes.get(1)) else {
            return Err(TokenError::Truncated);
        };
        let token_type = u16::from_be_bytes([a, b]);
        if token_type != TOKEN_TYPE_BLIND_RSA {
            return Err(TokenError::UnsupportedType(token_type));
        }
        let Ok(bytes) = <&[u8; TOKEN_LEN]>::try_from(bytes) else {
            return Err(TokenError::Length(bytes.len()));
        };
        let mut token = Token {
            nonce: [0; 32],
            challenge_digest: [0; 32],
            token_key_id: [0; NID],
            authenticator: [0; NK],
        };
        token.nonce.copy_from_slice(&bytes[2..34]);
        token.challenge_digest.copy_from_slice(&bytes[34..66]);
        token.token_key_id.copy_from_slice(&bytes[66..66 + NID]);
        token.authenticator.copy_from_slice(&bytes[66 + NID..]);
        Ok(token)
    }

    /// `AuthenticatorInput` (RFC 9577 §2.2.2), the message the issuer signed.
    pub fn authenticator_input(&self) -> [u8; AUTHENTICATOR_INPUT_LEN] {
        authenticator_input(&self.nonce, &self.challenge_digest, &self.token_key_id)
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TOKEN_LEN);
        out.extend_from_slice(&self.authenticator_input());
        out.extend_from_slice(&self.authenticator);
        out
    }
}

/// `concat(0x0002, nonce, challenge_digest, token_key_id)`: RFC 9578 §6.1's
/// `token_input`, which is RFC 9577 §2.2.2's `AuthenticatorInput`.
pub(crate) fn authenticator_input(
    nonce: &[u8; 32],
    challenge_digest: &[u8; 32],
    token_key_id: &[u8; NID],
) -> [u8; AUTHENTICATOR_INPUT_LEN] {
    let mut input = [0u8; AUTHENTICATOR_INPUT_LEN];
    input[..2].copy_from_slice(&TOKEN_TYPE_BLIND_RSA.to_be_bytes());
    input[2..34].copy_from_slice(nonce);
    input[34..66].copy_from_slice(challenge_digest);
    input[66..].copy_from_slice(token_key_id);
    input
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_well_sized_type_2_tokens_decode() {
        let mut bytes = vec![0u8; TOKEN_LEN];
        bytes[1] = 2;
        let token = Token::decode(&bytes).unwrap();
        assert_eq!(token.encode(), bytes);
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        assert_eq!(Token::decode(&[]), Err(TokenError::Truncated));
        assert_eq!(Token::decode(&[0]), Err(TokenError::Truncated));
        assert_eq!(
            Token::decode(&[0, 1, 0]),
            Err(TokenError::UnsupportedType(1))
        );
        assert_eq!(
            Token::decode(&bytes[..TOKEN_LEN - 1]),
            Err(TokenError::Length(TOKEN_LEN - 1))
        );
        bytes.push(0);
        assert_eq!(
            Token::decode(&bytes),
            Err(TokenError::Length(TOKEN_LEN + 1))
        );
    }
}
