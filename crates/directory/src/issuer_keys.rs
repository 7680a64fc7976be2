//! Issuer key sets: an issuer's Privacy Pass token keys (RFC 9578 §6.5),
//! each with its epoch, signed by the issuer's identity key, so that they can
//! be published in the validator-signed directory (RFC 9576 §6, key
//! consistency; draft-ietf-privacypass-key-consistency's "shared view"
//! through a trusted registry). Clients and relays then accept only the keys
//! the directory lists for their issuer: an issuer cannot hand one user a
//! key of its own and recognise that user's tokens when they are redeemed.
//!
//! **Bounds and why.** The number of keys an issuer can have in use bounds
//! how finely it can partition its users by key: with `k` keys issuing at
//! once it could split the users refilling at that moment into `k` groups.
//! A set therefore lists at most [`MAX_ISSUER_KEYS`] keys (the previous one,
//! whose tokens are still accepted, the current one and the next one,
//! published ahead of its start), and their issuing windows (from
//! `not_before` to half way to `expires`, as the issuer's rotation has it)
//! may not overlap: **at any instant at most one key of a set may sign**.
//! Every key expires within [`MAX_TOKEN_KEY_LIFETIME_SECS`] of its start, so
//! no key (and no double-spend entry) lasts for ever. How often an issuer
//! may introduce new keys is the registry's and validators' rule
//! (`[publication]`), since it concerns a history of sets, not one.

use crate::codec::{OneSigned, Reader, check_strictly_ascending, decode_exact, put_short_str};
use crate::descriptor::read_key;
use crate::keys::{Domain, IssuerId, IssuerKey, Signature};
use crate::{FormatError, Signer};

/// The format version of issuer key sets this crate reads and writes.
pub const ISSUER_KEYS_VERSION: u8 = 1;
/// The only token type a set may list: publicly verifiable blind RSA
/// (RFC 9578 §6, type 0x0002), what openrelay issues.
pub const TOKEN_TYPE_BLIND_RSA: u16 = 0x0002;
/// Most keys in one set: the previous, the current and the next.
pub const MAX_ISSUER_KEYS: usize = 3;
/// Longest token key: the RFC 9578 §6.5 SPKI of a 2048-bit key is 342
/// bytes; this leaves a little room, not room for anything else.
pub const MAX_TOKEN_KEY_LEN: usize = 512;
/// Longest `issuer_name` (RFC 9577 §2.1.1.1: a server name).
pub const MAX_ISSUER_NAME_LEN: usize = 255;
/// The longest a key's tokens may be accepted (`expires - not_before`): 60
/// days, the relays' bound (`openrelay_tokens::keys::MAX_KEY_LIFETIME_SECS`,
/// checked equal by a test in `openrelay-issuer`).
pub const MAX_TOKEN_KEY_LIFETIME_SECS: u64 = 60 * 24 * 3600;
/// Most issuers one directory lists key sets of.
pub const MAX_ISSUERS: usize = 64;

crate::digest::sha256_digest!(
    /// SHA-256 of an issuer key set's canonical body (without its
    /// signature): what validators vote on, so the same set is the same
    /// vote whichever signature came with it.
    KeySetDigest
);

/// One token key of an issuer and its epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IssuerTokenKey {
    /// The token type ([`TOKEN_TYPE_BLIND_RSA`]).
    pub token_type: u16,
    /// The key as the issuer directory carries it (RFC 9578 §6.5: the SPKI
    /// of the RSASSA-PSS key), 1 to [`MAX_TOKEN_KEY_LEN`] bytes. Only its
    /// size is checked here; relays and clients parse it before use.
    pub key: Vec<u8>,
    /// Unix time from which the issuer signs with it.
    pub not_before: u64,
    /// Unix time from which its tokens are no longer accepted.
    pub expires: u64,
}

impl IssuerTokenKey {
    /// When the issuer stops signing with it: half way to `expires` (the
    /// rotation pattern of `openrelay_tokens::EpochKey`).
    pub fn issue_until(&self) -> u64 {
        self.not_before + self.expires.saturating_sub(self.not_before) / 2
    }

    /// Whether the issuer may sign with it at `now`.
    pub fn issues_at(&self, now: u64) -> bool {
        self.not_before <= now && now < self.issue_until()
    }

    /// `token_key_id` = SHA-256 of the key (RFC 9578 §6.5).
    pub fn token_key_id(&self) -> [u8; 32] {
        use sha2::Digest as _;
        sha2::Sha256::digest(&self.key).into()
    }

    fn check(&self) -> Result<(), FormatError> {
        if self.token_type != TOKEN_TYPE_BLIND_RSA {
            return Err(FormatError::Invalid {
                field: "token_type",
                reason: "only type 0x0002 (blind RSA, RFC 9578 §6) is listed",
            });
        }
        if self.key.is_empty() {
            return Err(FormatError::Invalid {
                field: "token_key",
                reason: "must not be empty",
            });
        }
        if self.key.len() > MAX_TOKEN_KEY_LEN {
            return Err(FormatError::TooLarge {
                what: "token_key",
                limit: MAX_TOKEN_KEY_LEN,
            });
        }
        if self.expires <= self.not_before {
            return Err(FormatError::Invalid {
                field: "expires",
                reason: "must be after not_before",
            });
        }
        if self.expires - self.not_before > MAX_TOKEN_KEY_LIFETIME_SECS {
            return Err(FormatError::Invalid {
                field: "expires",
                reason: "a key's epoch is at most 60 days",
            });
        }
        Ok(())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.token_type.to_be_bytes());
        // At most MAX_TOKEN_KEY_LEN (512) bytes, checked on construction.
        let len = u16::try_from(self.key.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.key.get(..usize::from(len)).unwrap_or_default());
        out.extend_from_slice(&self.not_before.to_be_bytes());
        out.extend_from_slice(&self.expires.to_be_bytes());
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        let token_type = r.u16()?;
        let len = usize::from(r.u16()?);
        if len > MAX_TOKEN_KEY_LEN {
            return Err(FormatError::TooLarge {
                what: "token_key",
                limit: MAX_TOKEN_KEY_LEN,
            });
        }
        let key = r.bytes(len)?.to_vec();
        let entry = IssuerTokenKey {
            token_type,
            key,
            not_before: r.u64()?,
            expires: r.u64()?,
        };
        entry.check()?;
        Ok(entry)
    }
}

/// The fields of an issuer key set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetFields {
    /// The issuer's identity key (it signs the set).
    pub issuer: IssuerId,
    /// The issuer's name in token challenges (RFC 9577 `issuer_name`).
    pub issuer_name: String,
    /// When the issuer signed this set (Unix seconds): a newer set replaces
    /// an older one, and an older one offered again is a replay.
    pub published_at: u64,
    /// The keys, any order (sorted by `not_before` on construction).
    pub keys: Vec<IssuerTokenKey>,
}

/// A checked issuer key set (not yet signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerKeySet {
    fields: KeySetFields,
}

/// Whether `name` is a server name as token challenges carry it (RFC 9577
/// §2.1.1.1): printable ASCII without userinfo (`@`) or list commas.
fn check_issuer_name(name: &str) -> Result<(), FormatError> {
    if name.is_empty() || name.len() > MAX_ISSUER_NAME_LEN {
        return Err(FormatError::Invalid {
            field: "issuer_name",
            reason: "1 to 255 bytes",
        });
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'@' && b != b',')
    {
        return Err(FormatError::Invalid {
            field: "issuer_name",
            reason: "a server name: printable ASCII without '@' or ','",
        });
    }
    Ok(())
}

impl IssuerKeySet {
    /// Checks `fields` against the format's rules (see the module
    /// documentation) after sorting the keys by `not_before`.
    pub fn new(mut fields: KeySetFields) -> Result<Self, FormatError> {
        fields.keys.sort_by_key(|k| k.not_before);
        let set = IssuerKeySet { fields };
        set.check()?;
        Ok(set)
    }

    fn check(&self) -> Result<(), FormatError> {
        let f = &self.fields;
        check_issuer_name(&f.issuer_name)?;
        if f.keys.is_empty() {
            return Err(FormatError::Invalid {
                field: "keys",
                reason: "at least one is needed",
            });
        }
        if f.keys.len() > MAX_ISSUER_KEYS {
            return Err(FormatError::TooLarge {
                what: "issuer keys",
                limit: MAX_ISSUER_KEYS,
            });
        }
        f.keys.iter().try_for_each(IssuerTokenKey::check)?;
        check_strictly_ascending(&f.keys, "issuer keys", |k| k.not_before)?;
        for pair in f.keys.windows(2) {
            if let [earlier, later] = pair
                && later.not_before < earlier.issue_until()
            {
                return Err(FormatError::Invalid {
                    field: "keys",
                    reason: "issuing windows overlap: at most one key may sign at any instant",
                });
            }
        }
        // RFC 9578 §6.5: a token request names its key by the last byte of
        // its id, so live keys must differ there (and so are distinct).
        let mut truncated: Vec<u8> = f.keys.iter().map(|k| k.token_key_id()[31]).collect();
        truncated.sort_unstable();
        if truncated.windows(2).any(|w| w.first() == w.get(1)) {
            return Err(FormatError::Duplicate {
                list: "truncated token key ids",
            });
        }
        if f.keys.iter().all(|k| k.expires <= f.published_at) {
            return Err(FormatError::Invalid {
                field: "keys",
                reason: "every key had expired when the set was published",
            });
        }
        Ok(())
    }

    /// All fields.
    pub fn fields(&self) -> &KeySetFields {
        &self.fields
    }

    /// The issuer.
    pub fn issuer(&self) -> IssuerId {
        self.fields.issuer
    }

    /// The issuer's name in token challenges.
    pub fn issuer_name(&self) -> &str {
        &self.fields.issuer_name
    }

    /// When the issuer signed it.
    pub fn published_at(&self) -> u64 {
        self.fields.published_at
    }

    /// The keys, by `not_before`.
    pub fn keys(&self) -> &[IssuerTokenKey] {
        &self.fields.keys
    }

    /// The key the issuer signs with at `now` (at most one, by the rules).
    pub fn issuing_at(&self, now: u64) -> Option<&IssuerTokenKey> {
        self.fields.keys.iter().find(|k| k.issues_at(now))
    }

    /// The end of the last issuing window in the set.
    pub fn issuing_until(&self) -> u64 {
        self.fields
            .keys
            .iter()
            .map(IssuerTokenKey::issue_until)
            .max()
            .unwrap_or(0)
    }

    /// When the last key of the set expires.
    pub fn expires(&self) -> u64 {
        self.fields
            .keys
            .iter()
            .map(|k| k.expires)
            .max()
            .unwrap_or(0)
    }

    /// Whether the set lists `key` (its bytes) with exactly this epoch.
    pub fn lists(&self, key: &IssuerTokenKey) -> bool {
        self.fields.keys.contains(key)
    }

    /// The canonical bytes (`docs/directory-format.md`, "Issuer key set").
    pub fn to_bytes(&self) -> Vec<u8> {
        let f = &self.fields;
        let mut out = Vec::with_capacity(64 + f.issuer_name.len() + f.keys.len() * 320);
        out.push(ISSUER_KEYS_VERSION);
        out.extend_from_slice(f.issuer.as_bytes());
        put_short_str(&mut out, &f.issuer_name);
        out.extend_from_slice(&f.published_at.to_be_bytes());
        // At most MAX_ISSUER_KEYS, checked on construction.
        out.push(u8::try_from(f.keys.len()).unwrap_or(u8::MAX));
        for key in &f.keys {
            key.encode(&mut out);
        }
        out
    }

    /// SHA-256 of the canonical bytes.
    pub fn digest(&self) -> KeySetDigest {
        KeySetDigest::of(&self.to_bytes())
    }

    /// What the issuer's identity key signs (the domain prefix
    /// `openrelay issuer keys v1\0`, then the canonical bytes): sign this
    /// with the issuer's transport identity and pass the signature to
    /// [`SignedIssuerKeySet::from_parts`].
    pub fn signing_message(&self) -> Vec<u8> {
        Domain::IssuerKeys.message(&self.to_bytes())
    }

    /// Parses canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        decode_exact(bytes, Self::decode)
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        r.version("issuer key set", ISSUER_KEYS_VERSION)?;
        let issuer = IssuerId::from_checked(read_key(r, "issuer")?);
        let issuer_name = r.short_str("issuer_name", MAX_ISSUER_NAME_LEN)?.to_owned();
        let published_at = r.u64()?;
        let count = usize::from(r.u8()?);
        if count > MAX_ISSUER_KEYS {
            return Err(FormatError::TooLarge {
                what: "issuer keys",
                limit: MAX_ISSUER_KEYS,
            });
        }
        let mut keys = Vec::with_capacity(count);
        for _ in 0..count {
            keys.push(IssuerTokenKey::decode(r)?);
        }
        // Decoding keeps the order read: an unsorted list is refused, not
        // sorted (one set, one encoding).
        let set = IssuerKeySet {
            fields: KeySetFields {
                issuer,
                issuer_name,
                published_at,
                keys,
            },
        };
        set.check()?;
        Ok(set)
    }
}

/// Why a key set cannot be signed with a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeySetSignError {
    /// The key is not the one the set names.
    #[error("the issuer key does not match the set's issuer id")]
    WrongIssuerKey,
}

impl IssuerKey {
    /// Signs `set`, which must name this key.
    pub fn sign_key_set(&self, set: IssuerKeySet) -> Result<SignedIssuerKeySet, KeySetSignError> {
        if self.id() != set.issuer() {
            return Err(KeySetSignError::WrongIssuerKey);
        }
        let body = set.to_bytes();
        let signature = self.sign(Domain::IssuerKeys, &body);
        Ok(SignedIssuerKeySet(OneSigned {
            value: set,
            body,
            signature,
        }))
    }
}

/// A key set's signature does not verify with the issuer key it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad signature by {which}")]
pub struct BadKeySetSignature {
    /// Always [`Signer::Issuer`] of the set's issuer.
    pub which: Signer,
}

/// A key set with its issuer's signature. Holding one proves nothing: call
/// [`SignedIssuerKeySet::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIssuerKeySet(OneSigned<IssuerKeySet>);

impl SignedIssuerKeySet {
    /// Puts a set and a signature (over
    /// [`IssuerKeySet::signing_message`]) together, unchecked.
    pub fn from_parts(set: IssuerKeySet, signature: Signature) -> Self {
        let body = set.to_bytes();
        SignedIssuerKeySet(OneSigned {
            value: set,
            body,
            signature,
        })
    }

    /// The set (unchecked unless this came out of verification).
    pub fn key_set(&self) -> &IssuerKeySet {
        &self.0.value
    }

    /// SHA-256 of the set's body (what votes name).
    pub fn digest(&self) -> KeySetDigest {
        KeySetDigest::of(&self.0.body)
    }
}

crate::codec::one_signed!(
    SignedIssuerKeySet,
    IssuerKeySet,
    BadKeySetSignature,
    Domain::IssuerKeys,
    |set| set.issuer() => Signer::Issuer
);

/// The smallest possible signed key set, to bound allocations.
pub(crate) const MIN_SIGNED_KEY_SET_LEN: usize =
    1 + 32 + 1 + 1 + 8 + 1 + (2 + 2 + 1 + 8 + 8) + Signature::LEN;
/// The largest signed key set, in bytes: what a registry or validator reads
/// at most for one publication.
pub const MAX_SIGNED_KEY_SET_BYTES: usize = 1
    + 32
    + 1
    + MAX_ISSUER_NAME_LEN
    + 8
    + 1
    + MAX_ISSUER_KEYS * (2 + 2 + MAX_TOKEN_KEY_LEN + 8 + 8)
    + Signature::LEN;
