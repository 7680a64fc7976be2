//! Operator profiles (issue 3, item 1: "a public profile (name, contact,
//! jurisdiction: operator transparency)"), signed by the operator key so that
//! nobody but the operator can change what a directory says about it.

use crate::codec::{OneSigned, Reader, decode_exact, put_short_str};
use crate::descriptor::read_key;
use crate::fields::{CountryCode, check_text};
use crate::keys::{Domain, OperatorId, OperatorKey, Signature};
use crate::{FormatError, Signer};

/// The format version of operator profiles that name no chain account.
pub const PROFILE_VERSION: u8 = 1;
/// The format version of operator profiles that name the EVM account the
/// operator stakes from (issue 13): version 1 with that account after the
/// jurisdiction. Each profile has one encoding: version 2 exactly when it
/// names an account.
pub const PROFILE_VERSION_WITH_ACCOUNT: u8 = 2;
/// Domain separation of [`OperatorProfile::content_hash`] (differs from
/// every signature prefix: nothing signs a content hash).
pub const PROFILE_CONTENT_HASH_PREFIX: &[u8] = b"openrelay operator profile content\0";

/// The fields of an operator profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFields {
    /// The operator's key.
    pub operator: OperatorId,
    /// Display name, 1 to [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes. Not
    /// unique and not what path selection compares (that is the key).
    pub name: String,
    /// How to reach the operator (e-mail address, URL), 1 to
    /// [`MAX_CONTACT_LEN`](crate::MAX_CONTACT_LEN) bytes.
    pub contact: String,
    /// The country whose law the operator answers to (ISO 3166-1 alpha-2).
    pub jurisdiction: CountryCode,
    /// The EVM account (20 bytes) the operator registered this key and
    /// stakes from on the registry contract. A chain-backed registry lists
    /// an operator's relays only from the account its signed profile
    /// names, so an account that registers someone else's operator key on
    /// chain (anyone can: the key is public) gains nothing.
    pub chain_account: Option<[u8; 20]>,
    /// When the operator signed this version (Unix seconds), so a registry
    /// keeps the newest profile and refuses an older one replayed to it.
    pub published_at: u64,
}

/// A checked operator profile (not yet signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorProfile {
    fields: ProfileFields,
}

impl OperatorProfile {
    /// Checks `fields` against the format's rules.
    pub fn new(fields: ProfileFields) -> Result<Self, FormatError> {
        let profile = OperatorProfile { fields };
        profile.check()?;
        Ok(profile)
    }

    fn check(&self) -> Result<(), FormatError> {
        check_text("name", &self.fields.name, 1, crate::MAX_NAME_LEN)?;
        check_text("contact", &self.fields.contact, 1, crate::MAX_CONTACT_LEN)
    }

    /// All fields.
    pub fn fields(&self) -> &ProfileFields {
        &self.fields
    }

    /// The operator's id.
    pub fn operator(&self) -> OperatorId {
        self.fields.operator
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.fields.name
    }

    /// The contact.
    pub fn contact(&self) -> &str {
        &self.fields.contact
    }

    /// The jurisdiction.
    pub fn jurisdiction(&self) -> CountryCode {
        self.fields.jurisdiction
    }

    /// The EVM account the operator stakes from, if it names one.
    pub fn chain_account(&self) -> Option<[u8; 20]> {
        self.fields.chain_account
    }

    /// When the operator signed it (Unix seconds).
    pub fn published_at(&self) -> u64 {
        self.fields.published_at
    }

    /// Whether `other` says the same as `self` apart from when it was signed.
    pub fn same_except_published_at(&self, other: &OperatorProfile) -> bool {
        let undated = |p: &OperatorProfile| ProfileFields {
            published_at: 0,
            ..p.fields.clone()
        };
        undated(self) == undated(other)
    }

    /// The commitment the registry contract's `profileHash` holds for this
    /// profile: SHA-256 of [`PROFILE_CONTENT_HASH_PREFIX`] then the
    /// canonical bytes with `published_at` set to 0, so re-signing the same
    /// profile later needs no transaction while any change of what it says
    /// (the account included) does.
    pub fn content_hash(&self) -> [u8; 32] {
        use sha2::Digest as _;
        let undated = OperatorProfile {
            fields: ProfileFields {
                published_at: 0,
                ..self.fields.clone()
            },
        };
        let mut hash = sha2::Sha256::new();
        hash.update(PROFILE_CONTENT_HASH_PREFIX);
        hash.update(undated.to_bytes());
        hash.finalize().into()
    }

    /// The canonical bytes (`docs/directory-format.md`, "Operator profile").
    pub fn to_bytes(&self) -> Vec<u8> {
        let f = &self.fields;
        let mut out = Vec::with_capacity(84 + f.name.len() + f.contact.len());
        out.push(match f.chain_account {
            None => PROFILE_VERSION,
            Some(_) => PROFILE_VERSION_WITH_ACCOUNT,
        });
        out.extend_from_slice(f.operator.as_bytes());
        put_short_str(&mut out, &f.name);
        put_short_str(&mut out, &f.contact);
        f.jurisdiction.encode(&mut out);
        if let Some(account) = &f.chain_account {
            out.extend_from_slice(account);
        }
        out.extend_from_slice(&f.published_at.to_be_bytes());
        out
    }

    /// Parses canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        decode_exact(bytes, Self::decode)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        let with_account = match r.u8()? {
            PROFILE_VERSION => false,
            PROFILE_VERSION_WITH_ACCOUNT => true,
            version => {
                return Err(FormatError::UnsupportedVersion {
                    object: "operator profile",
                    version,
                });
            }
        };
        let operator = OperatorId::from_checked(read_key(r, "operator")?);
        let name = r.short_str("name", crate::MAX_NAME_LEN)?.to_owned();
        let contact = r.short_str("contact", crate::MAX_CONTACT_LEN)?.to_owned();
        let jurisdiction = CountryCode::decode(r)?;
        let chain_account = if with_account {
            Some(r.array::<20>()?)
        } else {
            None
        };
        let published_at = r.u64()?;
        let profile = OperatorProfile {
            fields: ProfileFields {
                operator,
                name,
                contact,
                jurisdiction,
                chain_account,
                published_at,
            },
        };
        profile.check()?;
        Ok(profile)
    }
}

/// Why a profile cannot be signed with a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileSignError {
    /// The key is not the one the profile names.
    #[error("the operator key does not match the profile's operator id")]
    WrongOperatorKey,
}

impl OperatorKey {
    /// Signs `profile`, which must name this key.
    pub fn sign_profile(
        &self,
        profile: OperatorProfile,
    ) -> Result<SignedOperatorProfile, ProfileSignError> {
        if self.id() != profile.operator() {
            return Err(ProfileSignError::WrongOperatorKey);
        }
        let body = profile.to_bytes();
        let signature = self.sign(Domain::OperatorProfile, &body);
        Ok(SignedOperatorProfile(OneSigned {
            value: profile,
            body,
            signature,
        }))
    }
}

/// A profile with its operator's signature. Holding one proves nothing: call
/// [`SignedOperatorProfile::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedOperatorProfile(OneSigned<OperatorProfile>);

/// A profile's signature does not verify with the key it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad signature by {which}")]
pub struct BadProfileSignature {
    /// Always [`Signer::OperatorProfile`] of the profile's operator.
    pub which: Signer,
}

impl SignedOperatorProfile {
    /// Puts a profile and a signature together, unchecked.
    pub fn from_parts(profile: OperatorProfile, signature: Signature) -> Self {
        let body = profile.to_bytes();
        SignedOperatorProfile(OneSigned {
            value: profile,
            body,
            signature,
        })
    }

    /// The profile (unchecked unless this came out of verification).
    pub fn profile(&self) -> &OperatorProfile {
        &self.0.value
    }
}

crate::codec::one_signed!(
    SignedOperatorProfile,
    OperatorProfile,
    BadProfileSignature,
    Domain::OperatorProfile,
    |profile| profile.operator() => Signer::OperatorProfile
);

/// The smallest possible signed profile, to bound allocations.
pub(crate) const MIN_SIGNED_PROFILE_LEN: usize = 1 + 32 + 2 + 2 + 2 + 8 + Signature::LEN;
