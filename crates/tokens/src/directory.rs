//! The issuer directory (RFC 9578 §4): a JSON object at
//! `/.well-known/private-token-issuer-directory` listing the issuer's public
//! keys, most preferred first, with an optional `not-before`. openrelay adds
//! `openrelay-expires` (when relays stop accepting a key's tokens); clients
//! ignore fields they do not know (RFC 9578 §4). openrelay requires both on
//! every key of type 0x0002, within [`MAX_KEY_LIFETIME_SECS`] of each other:
//! a key valid forever would keep its spent tokens forever.

use serde::{Deserialize, Serialize};

use crate::TOKEN_TYPE_BLIND_RSA;
use crate::b64;
use crate::keys::{EpochKey, MAX_KEY_LIFETIME_SECS, TokenKey};

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
    /// A type 0x0002 key without `not-before` and `openrelay-expires`, or
    /// whose epoch is empty or longer than [`MAX_KEY_LIFETIME_SECS`].
    #[error(
        "issuer directory: token key {index} needs not-before and openrelay-expires, \
         at most {MAX_KEY_LIFETIME_SECS} s apart"
    )]
    Epoch {
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
    /// skipped). Each must carry `not-before` and `openrelay-expires`, with
    /// `not_before < expires <= not_before + MAX_KEY_LIFETIME_SECS`.
    pub fn epoch_keys(&self) -> Result<Vec<EpochKey>, DirectoryError> {
        self.token_keys
            .iter()
            .enumerate()
            .filter(|(_, k)| k.token_type == TOKEN_TYPE_BLIND_RSA)
            .map(|(index, k)| {
                let key = b64::decode(&k.token_key)
                    .and_then(|spki| TokenKey::from_spki(&spki).ok())
                    .ok_or(DirectoryError::BadKey { index })?;
                let (Some(not_before), Some(expires)) = (k.not_before, k.expires) else {
                    return Err(DirectoryError::Epoch { index });
                };
                let lifetime = expires.saturating_sub(not_before);
                if lifetime == 0 || lifetime > MAX_KEY_LIFETIME_SECS {
                    return Err(DirectoryError::Epoch { index });
                }
                Ok(EpochKey {
                    key,
                    not_before,
                    expires,
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn with_epoch(not_before: Option<u64>, expires: Option<u64>) -> IssuerDirectory {
        let key = crate::testing::issuer_key().public().clone();
        let mut directory =
            IssuerDirectory::new("/token-request", &[EpochKey::new(key, 1000, 3600)]);
        directory.token_keys[0].not_before = not_before;
        directory.token_keys[0].expires = expires;
        directory
    }

    /// A key valid forever kept its spent tokens forever (and Redis refused
    /// its `EXAT`); every key now has a bounded epoch.
    #[test]
    fn every_key_has_a_bounded_epoch() {
        let parsed = with_epoch(Some(1000), Some(8200)).epoch_keys().unwrap();
        assert_eq!((parsed[0].not_before, parsed[0].expires), (1000, 8200));
        let longest = 1000 + MAX_KEY_LIFETIME_SECS;
        assert!(with_epoch(Some(1000), Some(longest)).epoch_keys().is_ok());
        for (not_before, expires) in [
            (Some(1000), None),
            (None, Some(8200)),
            (None, None),
            (Some(1000), Some(1000)),
            (Some(1000), Some(999)),
            (Some(1000), Some(longest + 1)),
            (Some(0), Some(u64::MAX)),
        ] {
            assert!(
                matches!(
                    with_epoch(not_before, expires).epoch_keys(),
                    Err(DirectoryError::Epoch { index: 0 })
                ),
                "{not_before:?} {expires:?}"
            );
        }
    }
}
