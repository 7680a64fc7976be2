//! The issuer directory (RFC 9578 §4): a JSON object at
//! `/.well-known/private-token-issuer-directory` listing the issuer's public
//! keys, most preferred first, with an optional `not-before`. openrelay adds
//! `openrelay-expires` (when relays stop accepting a key's tokens); clients
//! ignore fields they do not know (RFC 9578 §4).

use serde::{Deserialize, Serialize};

use crate::TOKEN_TYPE_BLIND_RSA;
use crate::b64;
use crate::keys::{EpochKey, TokenKey};

/// The well-known path of the directory (RFC 9578 §4, §8.1).
pub const WELL_KNOWN_PATH: &str = "/.well-known/private-token-issuer-directory";
/// Its media type (RFC 9578 §8.3.1).
pub const MEDIA_TYPE: &str = "application/private-token-issuer-directory";
/// Largest directory document accepted.
pub const MAX_LEN: usize = 64 * 1024;

/// Why a directory was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// Not JSON of the directory's shape.
    #[error("issuer directory: {0}")]
    Json(#[from] serde_json::Error),
    /// Larger than [`MAX_LEN`].
    #[error("issuer directory larger than {MAX_LEN} bytes")]
    TooLarge,
    /// A type 0x0002 key is not base64url SPKI of a token key.
    #[error("issuer directory: token key {index} is not a valid token key")]
    BadKey {
        /// Its position in `token-keys`.
        index: usize,
    },
}

/// The directory document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerDirectory {
    /// Where token requests go (absolute or relative URL).
    #[serde(rename = "issuer-request-uri")]
    pub issuer_request_uri: String,
    /// The keys, most preferred first.
    #[serde(rename = "token-keys")]
    pub token_keys: Vec<DirectoryKey>,
}

/// One entry of `token-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryKey {
    /// The token type.
    #[serde(rename = "token-type")]
    pub token_type: u16,
    /// base64url (padded) SPKI.
    #[serde(rename = "token-key")]
    pub token_key: String,
    /// Unix time from which the key is used.
    #[serde(
        rename = "not-before",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub not_before: Option<u64>,
    /// Unix time from which relays refuse its tokens (openrelay extension).
    #[serde(
        rename = "openrelay-expires",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub expires: Option<u64>,
}

impl IssuerDirectory {
    /// The directory listing `keys`, newest first.
    pub fn new(issuer_request_uri: impl Into<String>, keys: &[EpochKey]) -> Self {
        let mut keys: Vec<&EpochKey> = keys.iter().collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.not_before));
        IssuerDirectory {
            issuer_request_uri: issuer_request_uri.into(),
            token_keys: keys
                .into_iter()
                .map(|k| DirectoryKey {
                    token_type: TOKEN_TYPE_BLIND_RSA,
                    token_key: b64::encode(k.key.spki()),
                    not_before: Some(k.not_before),
                    expires: Some(k.expires),
                })
                .collect(),
        }
    }

    /// Parses a directory document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DirectoryError> {
        if bytes.len() > MAX_LEN {
            return Err(DirectoryError::TooLarge);
        }
        Ok(serde_json::from_slice(bytes)?)
    }

    /// The document.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings and integers cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// The type 0x0002 keys with their epochs (other token types are
    /// skipped). A key without `not-before` counts from 0; one without
    /// `openrelay-expires` never expires.
    pub fn epoch_keys(&self) -> Result<Vec<EpochKey>, DirectoryError> {
        self.token_keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.token_type == TOKEN_TYPE_BLIND_RSA)
            .map(|(index, k)| {
                let key = b64::decode(&k.token_key)
                    .and_then(|spki| TokenKey::from_spki(&spki).ok())
                    .ok_or(DirectoryError::BadKey { index })?;
                Ok(EpochKey {
                    key,
                    not_before: k.not_before.unwrap_or(0),
                    expires: k.expires.unwrap_or(u64::MAX),
                })
            })
            .collect()
    }
}
