//! Key consistency (RFC 9576 §6; draft-ietf-privacypass-key-consistency's
//! "shared view" through a trusted registry): an issuer's token keys are
//! usable only as the validator-signed directory lists them, so every
//! client and relay sees the same keys and an issuer cannot tag users with
//! keys of their own.
//!
//! [`listed_keys`] is the one reading of a verified directory that clients
//! (which keys to request tokens under, which tokens to keep), relays (which
//! keys their token gates accept) and the issuer itself (which keys it may
//! sign with) share.

use openrelay_directory::{IssuerId, IssuerKeySet, VerifiedDirectory};
use openrelay_tokens::{EpochKey, TokenKey};
use openrelay_types::{ErrorKind, HasKind, KeyPin};

/// Why a directory gives no usable keys for an issuer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyConsistencyError {
    /// The pinned issuer key is not an Ed25519 key a directory can name.
    #[error("the issuer key {0} is not a usable Ed25519 key")]
    BadIssuerKey(KeyPin),
    /// The directory lists no key set for the issuer: it does not publish
    /// its keys to the registry, or the validators did not agree on one.
    #[error(
        "the validator-signed directory lists no token keys for issuer {0} (it does not publish \
         them to the registry, or the validators saw different key sets)"
    )]
    NotListed(KeyPin),
    /// The directory lists the issuer under another name than the one its
    /// tokens are for.
    #[error("the directory lists issuer {issuer} as {listed:?}, not {configured:?}")]
    NameMismatch {
        /// The issuer.
        issuer: KeyPin,
        /// The name in its key set.
        listed: String,
        /// The name configured here.
        configured: String,
    },
    /// A listed key is not a token key of type 0x0002.
    #[error("the directory lists a token key of issuer {issuer} that is not an RFC 9578 key")]
    BadTokenKey {
        /// The issuer.
        issuer: KeyPin,
    },
}

impl HasKind for KeyConsistencyError {
    fn kind(&self) -> ErrorKind {
        match self {
            // Our own configuration names an unusable key.
            KeyConsistencyError::BadIssuerKey(_) => ErrorKind::Config,
            // The validators do not vouch for these keys (or this name):
            // every client and relay must refuse them alike.
            KeyConsistencyError::NotListed(_) | KeyConsistencyError::NameMismatch { .. } => {
                ErrorKind::NotAuthenticated
            }
            // A signed directory carries a key no issuer could have made.
            KeyConsistencyError::BadTokenKey { .. } => ErrorKind::PeerMisbehaved,
        }
    }
}

/// The key set `directory` lists for the issuer pinned as `issuer`, named
/// `issuer_name`.
pub fn listed_set<'a>(
    directory: &'a VerifiedDirectory,
    issuer: &KeyPin,
    issuer_name: &str,
) -> Result<&'a IssuerKeySet, KeyConsistencyError> {
    let id = IssuerId::try_from(*issuer).map_err(|_| KeyConsistencyError::BadIssuerKey(*issuer))?;
    let set = directory
        .issuer_keys(&id)
        .ok_or(KeyConsistencyError::NotListed(*issuer))?;
    if set.issuer_name() != issuer_name {
        return Err(KeyConsistencyError::NameMismatch {
            issuer: *issuer,
            listed: set.issuer_name().to_owned(),
            configured: issuer_name.to_owned(),
        });
    }
    Ok(set)
}

/// The token keys `directory` lists for the issuer pinned as `issuer`,
/// named `issuer_name`, with their epochs: the only keys a client may
/// request tokens under and a relay may accept tokens of.
pub fn listed_keys(
    directory: &VerifiedDirectory,
    issuer: &KeyPin,
    issuer_name: &str,
) -> Result<Vec<EpochKey>, KeyConsistencyError> {
    listed_set(directory, issuer, issuer_name)?
        .keys()
        .iter()
        .map(|listed| {
            Ok(EpochKey {
                key: TokenKey::from_spki(&listed.key)
                    .map_err(|_| KeyConsistencyError::BadTokenKey { issuer: *issuer })?,
                not_before: listed.not_before,
                expires: listed.expires,
            })
        })
        .collect()
}

/// Whether `keys` (as [`listed_keys`] gives them) hold `epoch`: the same key
/// with the same epoch.
pub fn lists(keys: &[EpochKey], epoch: &EpochKey) -> bool {
    keys.iter().any(|k| {
        k.key.spki() == epoch.key.spki()
            && k.not_before == epoch.not_before
            && k.expires == epoch.expires
    })
}

#[cfg(test)]
mod tests {
    /// The directory bounds a key's epoch as the relays' token gates do.
    #[test]
    fn epochs_are_bounded_alike_in_the_directory_and_at_relays() {
        assert_eq!(
            openrelay_directory::MAX_TOKEN_KEY_LIFETIME_SECS,
            openrelay_tokens::keys::MAX_KEY_LIFETIME_SECS
        );
    }
}
