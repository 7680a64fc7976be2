//! Issuer keys for token type 0x0002 (RFC 9578 §6.5, §8.2.2): 2048-bit RSA
//! keys used with RSABSSA-SHA384-PSS-Deterministic (RFC 9474 §5), their SPKI
//! encoding with the id-RSASSA-PSS OID, `token_key_id` = SHA-256(SPKI), and
//! the epoch each key is valid in.
//!
//! Rotation model: a key is created for one issuance period `P` starting at
//! its `not_before`; it signs tokens during `[not_before, not_before + P)` and
//! relays accept its tokens until `expires` = `not_before + 2P`. So at most a
//! current and a previous key are live (plus the next one, published ahead of
//! its `not_before` so relays know it before any token uses it), and the
//! double-spend store only has to remember tokens until their key expires.

use blind_rsa_signatures::{
    DefaultRng, KeyPairSha384PSSDeterministic, PublicKeySha384PSSDeterministic,
    SecretKeySha384PSSDeterministic,
};

use crate::NK;

/// The RSA modulus size of token type 0x0002.
pub const MODULUS_BITS: usize = NK * 8;

/// The longest a key's tokens may be accepted (`expires - not_before`): two
/// issuance periods of at most 30 days each. Every key has an expiry within
/// this bound, so double-spend entries, which live until their key expires,
/// are always pruned, and every expiry fits a store's range (Redis `EXAT`).
pub const MAX_KEY_LIFETIME_SECS: u64 = 60 * 24 * 3600;

/// Why a key was refused or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The public key is not the RFC 9578 §6.5 SPKI of a 2048-bit RSA key
    /// with RSASSA-PSS, SHA-384, MGF1-SHA-384 and a 48-byte salt.
    #[error("not an RSASSA-PSS SHA-384 2048-bit token key")]
    PublicKey,
    /// The private key is not a PKCS#8 PEM 2048-bit RSA key.
    #[error("not a 2048-bit RSA private key in PKCS#8 PEM")]
    PrivateKey,
    /// Key generation failed.
    #[error("cannot generate an RSA key")]
    Generate,
}

/// An issuer public key (`pkI`), with its SPKI and `token_key_id`.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey {
    key: PublicKeySha384PSSDeterministic,
    spki: Vec<u8>,
    id: [u8; 32],
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("token_key_id", &hex(&self.id))
            .finish()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TokenKey {
    fn from_key(key: PublicKeySha384PSSDeterministic) -> Result<Self, KeyError> {
        if key.components().n().len() != NK {
            return Err(KeyError::PublicKey);
        }
        let spki = key.to_spki().map_err(|_| KeyError::PublicKey)?;
        Ok(TokenKey {
            id: crate::sha256(&spki),
            key,
            spki,
        })
    }

    /// Parses the SPKI form (the `token-key` of RFC 9577 §2.1 and of the
    /// issuer directory). Only the exact canonical encoding for this token
    /// type is accepted, so a key with other PSS parameters is refused.
    pub fn from_spki(spki: &[u8]) -> Result<Self, KeyError> {
        let key =
            PublicKeySha384PSSDeterministic::from_spki(spki).map_err(|_| KeyError::PublicKey)?;
        let key = Self::from_key(key)?;
        if key.spki != spki {
            return Err(KeyError::PublicKey);
        }
        Ok(key)
    }

    /// The SPKI encoding (RFC 9578 §6.5).
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// `token_key_id` = SHA-256(SPKI) (RFC 9578 §6.5).
    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    /// The least significant byte of `token_key_id`, which a `TokenRequest`
    /// carries (RFC 9578 §6.1).
    pub fn truncated_id(&self) -> u8 {
        self.id[31]
    }

    pub(crate) fn rsa(&self) -> &PublicKeySha384PSSDeterministic {
        &self.key
    }
}

/// An issuer private key (`skI`) and its public key.
///
/// Constant-time status: signing is the RSA private-key operation of the
/// RustCrypto `rsa` 0.10 pre-release (through `blind-rsa-signatures`), which
/// uses `crypto-bigint`'s constant-time Montgomery exponentiation and, since
/// we pass an RNG, base blinding (`rsa_decrypt_and_check`, which also checks
/// the result against the public key, guarding against CRT faults). The
/// `rsa` crate does not yet claim full constant-time hardening (RustCrypto/RSA
/// issue #711); blinding is what protects the key against timing attacks on
/// the attacker-chosen blinded messages an issuer signs.
#[derive(Clone)]
pub struct SigningKey {
    secret: SecretKeySha384PSSDeterministic,
    public: TokenKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh 2048-bit key (e = 65537).
    pub fn generate() -> Result<Self, KeyError> {
        let pair = KeyPairSha384PSSDeterministic::generate(&mut DefaultRng, MODULUS_BITS)
            .map_err(|_| KeyError::Generate)?;
        Ok(SigningKey {
            public: TokenKey::from_key(pair.pk).map_err(|_| KeyError::Generate)?,
            secret: pair.sk,
        })
    }

    /// Parses a PKCS#8 PEM private key (the form RFC 9578 Appendix A uses).
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let secret =
            SecretKeySha384PSSDeterministic::from_pem(pem).map_err(|_| KeyError::PrivateKey)?;
        let public = secret.public_key().map_err(|_| KeyError::PrivateKey)?;
        Ok(SigningKey {
            public: TokenKey::from_key(public).map_err(|_| KeyError::PrivateKey)?,
            secret,
        })
    }

    /// The PKCS#8 PEM form, for a key file (write it with mode 0600).
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.secret.to_pem().map_err(|_| KeyError::PrivateKey)
    }

    /// The public key.
    pub fn public(&self) -> &TokenKey {
        &self.public
    }

    pub(crate) fn rsa(&self) -> &SecretKeySha384PSSDeterministic {
        &self.secret
    }
}

/// A public key and its epoch, as relays hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochKey {
    /// The key.
    pub key: TokenKey,
    /// Unix time from which the issuer signs with it.
    pub not_before: u64,
    /// Unix time from which its tokens are no longer accepted.
    pub expires: u64,
}

impl EpochKey {
    /// The epoch of a key created for the issuance period starting at
    /// `not_before`, `period` seconds long (see the module documentation).
    pub fn new(key: TokenKey, not_before: u64, period: u64) -> Self {
        EpochKey {
            key,
            not_before,
            expires: not_before.saturating_add(period.saturating_mul(2)),
        }
    }

    /// When the issuer stops signing with it: half way to `expires`.
    pub fn issue_until(&self) -> u64 {
        self.not_before + self.expires.saturating_sub(self.not_before) / 2
    }

    /// Whether tokens of this key are accepted at `now`, allowing `skew`
    /// seconds of clock difference on either side.
    pub fn accepts_at(&self, now: u64, skew: u64) -> bool {
        self.not_before <= now.saturating_add(skew) && now < self.expires.saturating_add(skew)
    }
}
