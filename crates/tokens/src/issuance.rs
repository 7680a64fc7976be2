//! The publicly verifiable issuance protocol (RFC 9578 §6), token type 0x0002:
//!
//! ```text
//! client: nonce = random(32); challenge_digest = SHA256(challenge)
//!         token_input = concat(0x0002, nonce, challenge_digest, token_key_id)
//!         blinded_msg, blind_inv = Blind(pkI, PrepareIdentity(token_input))
//!         ──TokenRequest{0x0002, truncated_token_key_id, blinded_msg}──▶ issuer
//! issuer: blind_sig = BlindSign(skI, blinded_msg)
//!         ◀──TokenResponse{blind_sig}──
//! client: authenticator = Finalize(pkI, token_input, blind_sig, blind_inv)
//!         Token{0x0002, nonce, challenge_digest, token_key_id, authenticator}
//! ```
//!
//! The issuer never sees `token_input`, so it cannot link the token it helped
//! make to its redemption.

use blind_rsa_signatures::{BlindSignature, BlindingResult, DefaultRng};
use rand_core::{OsRng, RngCore};

use crate::keys::{SigningKey, TokenKey};
use crate::token::{Token, authenticator_input};
use crate::{NK, TOKEN_TYPE_BLIND_RSA};

/// Media type of a `TokenRequest` (RFC 9578 §8.3.2).
pub const REQUEST_MEDIA_TYPE: &str = "application/private-token-request";
/// Media type of a `TokenResponse` (RFC 9578 §8.3.3).
pub const RESPONSE_MEDIA_TYPE: &str = "application/private-token-response";
/// Encoded size of a type 0x0002 `TokenRequest`.
pub const REQUEST_LEN: usize = 2 + 1 + NK;

/// Why issuance failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssuanceError {
    /// A `TokenRequest` for another token type (RFC 9578 §6.2: 422).
    #[error("unsupported token type {0:#06x}")]
    UnsupportedType(u16),
    /// A `TokenRequest` or `TokenResponse` of the wrong size (RFC 9578 §6.2: 422).
    #[error("{what} must be {expected} bytes, got {got}")]
    Length {
        /// Which message.
        what: &'static str,
        /// Its size for token type 0x0002.
        expected: usize,
        /// The size received.
        got: usize,
    },
    /// The request names a key the issuer does not sign with (RFC 9578 §6.2: 422).
    #[error("no issuer key with truncated id {0:#04x}")]
    UnknownKey(u8),
    /// Blinding, signing or unblinding failed (for the client: the issuer's
    /// signature does not verify, RFC 9474 §4.4).
    #[error("blind RSA operation failed")]
    Crypto,
}

/// A client's request for one token (RFC 9578 §6.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The last byte of the issuer key's `token_key_id`.
    pub truncated_token_key_id: u8,
    /// The blinded message (`Nk` bytes).
    pub blinded_msg: Vec<u8>,
}

impl TokenRequest {
    /// Parses a request (RFC 9578 §6.1).
    pub fn decode(bytes: &[u8]) -> Result<Self, IssuanceError> {
        let token_type = match bytes {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => {
                return Err(IssuanceError::Length {
                    what: "TokenRequest",
                    expected: REQUEST_LEN,
                    got: bytes.len(),
                });
            }
        };
        if token_type != TOKEN_TYPE_BLIND_RSA {
            return Err(IssuanceError::UnsupportedType(token_type));
        }
        match bytes {
            [_, _, truncated, blinded @ ..] if blinded.len() == NK => Ok(TokenRequest {
                truncated_token_key_id: *truncated,
                blinded_msg: blinded.to_vec(),
            }),
            _ => Err(IssuanceError::Length {
                what: "TokenRequest",
                expected: REQUEST_LEN,
                got: bytes.len(),
            }),
        }
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(REQUEST_LEN);
        out.extend_from_slice(&TOKEN_TYPE_BLIND_RSA.to_be_bytes());
        out.push(self.truncated_token_key_id);
        out.extend_from_slice(&self.blinded_msg);
        out
    }
}

/// The issuer's answer (RFC 9578 §6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The blind signature (`Nk` bytes).
    pub blind_sig: Vec<u8>,
}

impl TokenResponse {
    /// Parses a response (RFC 9578 §6.2).
    pub fn decode(bytes: &[u8]) -> Result<Self, IssuanceError> {
        if bytes.len() != NK {
            return Err(IssuanceError::Length {
                what: "TokenResponse",
                expected: NK,
                got: bytes.len(),
            });
        }
        Ok(TokenResponse {
            blind_sig: bytes.to_vec(),
        })
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        self.blind_sig.clone()
    }
}

/// What the client keeps between request and response: the token input and
/// the blinding secret. Never sent anywhere.
pub struct PendingToken {
    key: TokenKey,
    nonce: [u8; 32],
    challenge_digest: [u8; 32],
    blinding: BlindingResult,
}

impl std::fmt::Debug for PendingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingToken")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Starts issuance of one token for `challenge_digest` under `key` (RFC 9578
/// §6.1): a fresh nonce, blinded.
pub fn request(
    key: &TokenKey,
    challenge_digest: [u8; 32],
) -> Result<(TokenRequest, PendingToken), IssuanceError> {
    let mut nonce = [0u8; 32];
    OsRng.fill_bytes(&mut nonce);
    let input = authenticator_input(&nonce, &challenge_digest, &key.id());
    // PrepareIdentity: the Deterministic variant signs the input unchanged
    // (RFC 9474 §4.1).
    let blinding = key
        .rsa()
        .blind(&mut DefaultRng, input)
        .map_err(|_| IssuanceError::Crypto)?;
    let request = TokenRequest {
        truncated_token_key_id: key.truncated_id(),
        blinded_msg: blinding.blind_message.0.clone(),
    };
    Ok((
        request,
        PendingToken {
            key: key.clone(),
            nonce,
            challenge_digest,
            blinding,
        },
    ))
}

impl PendingToken {
    /// Finalizes the token from the issuer's response (RFC 9578 §6.3): unblinds
    /// and checks the signature, so a bad response never yields a token.
    pub fn finalize(self, response: &TokenResponse) -> Result<Token, IssuanceError> {
        let input = authenticator_input(&self.nonce, &self.challenge_digest, &self.key.id());
        let signature = self
            .key
            .rsa()
            .finalize(
                &BlindSignature(response.blind_sig.clone()),
                &self.blinding,
                input,
            )
            .map_err(|_| IssuanceError::Crypto)?;
        let authenticator: [u8; NK] = signature
            .0
            .as_slice()
            .try_into()
            .map_err(|_| IssuanceError::Crypto)?;
        Ok(Token {
            nonce: self.nonce,
            challenge_digest: self.challenge_digest,
            token_key_id: self.key.id(),
            authenticator,
        })
    }
}

impl SigningKey {
    /// The issuer's step (RFC 9578 §6.2): checks the request names this key
    /// and signs the blinded message. The caller decides first whether the
    /// client may have a token.
    pub fn sign(&self, request: &TokenRequest) -> Result<TokenResponse, IssuanceError> {
        if request.truncated_token_key_id != self.public().truncated_id() {
            return Err(IssuanceError::UnknownKey(request.truncated_token_key_id));
        }
        let blind_sig = self
            .rsa()
            .blind_sign(&request.blinded_msg)
            .map_err(|_| IssuanceError::Crypto)?;
        Ok(TokenResponse {
            blind_sig: blind_sig.0,
        })
    }
}
