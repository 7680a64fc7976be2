//! Token verification (RFC 9578 §6.4; RFC 9577 §2.2.2), usable by any relay:
//! the token must answer the relay's challenge, name a key of the issuer that
//! is in its epoch, and carry a valid RSASSA-PSS signature (SHA-384, MGF1
//! SHA-384, 48-byte salt) over its other fields. Whether it was spent before
//! is the [`SpentTokens`](crate::SpentTokens) store's question.

use blind_rsa_signatures::Signature;

use crate::challenge::{ChallengeError, TokenChallenge};
use crate::header::build_www_authenticate;
use crate::keys::{EpochKey, TokenKey};
use crate::spent::SpendKey;
use crate::token::Token;

/// Clock difference tolerated between issuer and relays, in seconds.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// Why a token is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token answers another challenge (other issuer or context).
    #[error("token was issued for another challenge")]
    WrongChallenge,
    /// No key of the issuer has this `token_key_id`.
    #[error("unknown token key")]
    UnknownKey,
    /// The key exists but its epoch does not include now.
    #[error("token key expired or not yet valid")]
    KeyExpired,
    /// The signature does not verify.
    #[error("token signature does not verify")]
    BadSignature,
}

/// RSASSA-PSS-VERIFY of the token's authenticator under `key` (RFC 9578
/// §6.4), without any policy (challenge, epoch, double spending).
pub fn verify_signature(token: &Token, key: &TokenKey) -> Result<(), VerifyError> {
    if token.token_key_id != key.id() {
        return Err(VerifyError::UnknownKey);
    }
    key.rsa()
        .verify(
            &Signature(token.authenticator.to_vec()),
            None,
            token.authenticator_input(),
        )
        .map_err(|_| VerifyError::BadSignature)
}

/// What a verified token allows: spending it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    /// The token's identity in the double-spend store.
    pub spend_key: SpendKey,
    /// When its key expires; the store may forget the token then.
    pub expires: u64,
}

/// A relay's verifier: its challenge and the issuer's keys.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    challenge: Vec<u8>,
    challenge_digest: [u8; 32],
    keys: Vec<EpochKey>,
}

impl TokenVerifier {
    /// A verifier accepting tokens for `challenge` under `keys`.
    pub fn new(challenge: &TokenChallenge, keys: Vec<EpochKey>) -> Result<Self, ChallengeError> {
        let challenge = challenge.encode()?;
        Ok(TokenVerifier {
            challenge_digest: crate::sha256(&challenge),
            challenge,
            keys,
        })
    }

    /// The issuer keys.
    pub fn keys(&self) -> &[EpochKey] {
        &self.keys
    }

    /// Replaces the issuer keys (after the relay fetched them again).
    pub fn set_keys(&mut self, keys: Vec<EpochKey>) {
        self.keys = keys;
    }

    /// Checks `token` at Unix time `now`.
    pub fn verify(&self, token: &Token, now: u64) -> Result<Redemption, VerifyError> {
        if token.challenge_digest != self.challenge_digest {
            return Err(VerifyError::WrongChallenge);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.key.id() == token.token_key_id)
            .ok_or(VerifyError::UnknownKey)?;
        if !key.accepts_at(now, CLOCK_SKEW_SECS) {
            return Err(VerifyError::KeyExpired);
        }
        verify_signature(token, &key.key)?;
        Ok(Redemption {
            spend_key: SpendKey::of(token),
            expires: key.expires.saturating_add(CLOCK_SKEW_SECS),
        })
    }

    /// The `WWW-Authenticate` value asking for a token (RFC 9577 §2.1): the
    /// challenge and the key a client should get tokens under now (the newest
    /// whose epoch has begun); `None` without such a key.
    pub fn www_authenticate(&self, now: u64) -> Option<String> {
        let key = self
            .keys
            .iter()
            .filter(|k| k.not_before <= now && now < k.issue_until())
            .max_by_key(|k| k.not_before)?;
        Some(build_www_authenticate(
            &self.challenge,
            key.key.spki(),
            None,
        ))
    }
}
