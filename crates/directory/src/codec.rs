//! The primitives of the canonical encoding (`docs/directory-format.md`,
//! "Primitives"): fixed-width big-endian integers, fixed-size byte arrays and
//! short length-prefixed strings. Fixed widths leave no room for overlong or
//! alternative encodings; every read is bounds-checked and returns
//! [`FormatError::Truncated`] instead of panicking.

use bytes::Bytes;

use crate::FormatError;
use crate::keys::Signature;

/// Decodes one whole value from `bytes`: trailing bytes are an error, so
/// every value has exactly one encoding.
pub(crate) fn decode_exact<T>(
    bytes: &[u8],
    decode: impl FnOnce(&mut Reader<'_>) -> Result<T, FormatError>,
) -> Result<T, FormatError> {
    decode_whole(Reader::new(bytes), decode)
}

/// One whole value from `r`: trailing bytes are an error.
fn decode_whole<'a, T>(
    mut r: Reader<'a>,
    decode: impl FnOnce(&mut Reader<'a>) -> Result<T, FormatError>,
) -> Result<T, FormatError> {
    let value = decode(&mut r)?;
    r.finish()?;
    Ok(value)
}

/// [`decode_exact`] over shared bytes a quorum signed
/// ([`Reader::shared`], [`Reader::deferring_key_checks`]): parts kept by
/// value are views of `bytes`, and key checks wait for each key's use.
pub(crate) fn decode_exact_quorum_signed_shared<T>(
    bytes: &Bytes,
    decode: impl FnOnce(&mut Reader<'_>) -> Result<T, FormatError>,
) -> Result<T, FormatError> {
    decode_whole(Reader::shared(bytes).deferring_key_checks(), decode)
}

/// A cursor over untrusted bytes. Every method either consumes exactly what
/// it returns or fails without panicking.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    /// What `buf` is a view of, when the caller holds it shared: then a
    /// part kept by value ([`Reader::kept_since`]) is a view too, not a
    /// copy (a directory's descriptors keep their bytes).
    shared: Option<&'a Bytes>,
    pos: usize,
    key_checks: KeyChecks,
}

/// Whether a decoder checks that each public key it reads is a usable
/// Ed25519 point (canonical, large order): decompressing a point is most of
/// what decoding a large directory costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyChecks {
    /// Every key, as it is read.
    Strict,
    /// None: for bytes a quorum of validators signed, each of which decoded
    /// them strictly. A key is still checked where it is used (signature
    /// verification refuses an unusable key).
    DeferredToUse,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            shared: None,
            pos: 0,
            key_checks: KeyChecks::Strict,
        }
    }

    /// A reader over shared bytes: parts kept by value share them.
    pub(crate) fn shared(bytes: &'a Bytes) -> Self {
        Reader {
            shared: Some(bytes),
            ..Reader::new(bytes)
        }
    }

    /// A reader that leaves key checks to where keys are used
    /// ([`KeyChecks::DeferredToUse`]).
    pub(crate) fn deferring_key_checks(self) -> Self {
        Reader {
            key_checks: KeyChecks::DeferredToUse,
            ..self
        }
    }

    /// Whether keys read are checked.
    pub(crate) fn key_checks(&self) -> KeyChecks {
        self.key_checks
    }

    /// Bytes consumed so far.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The bytes consumed since `start` (a value returned by `position`).
    pub(crate) fn consumed_since(&self, start: usize) -> &'a [u8] {
        self.buf.get(start..self.pos).unwrap_or_default()
    }

    /// The bytes consumed since `start`, to keep: a view of the shared
    /// bytes when the reader has them, else a copy.
    pub(crate) fn kept_since(&self, start: usize) -> Bytes {
        match self.shared {
            Some(shared) if start <= self.pos && self.pos <= shared.len() => {
                shared.slice(start..self.pos)
            }
            _ => Bytes::copy_from_slice(self.consumed_since(start)),
        }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self.pos.checked_add(n).ok_or(FormatError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(FormatError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, FormatError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A string of at most `max` bytes behind a one-byte length. The text rules
    /// are the caller's; here only the length and UTF-8 are checked.
    pub(crate) fn short_str(
        &mut self,
        field: &'static str,
        max: usize,
    ) -> Result<&'a str, FormatError> {
        let len = usize::from(self.u8()?);
        if len > max {
            return Err(FormatError::TooLarge {
                what: field,
                limit: max,
            });
        }
        std::str::from_utf8(self.bytes(len)?).map_err(|_| FormatError::Invalid {
            field,
            reason: "not UTF-8",
        })
    }

    /// The version byte every object starts with; only `expected` is known.
    pub(crate) fn version(
        &mut self,
        object: &'static str,
        expected: u8,
    ) -> Result<(), FormatError> {
        let version = self.u8()?;
        if version != expected {
            return Err(FormatError::UnsupportedVersion { object, version });
        }
        Ok(())
    }

    /// Fails unless every byte was consumed: a value has exactly one encoding,
    /// so anything after it is an error, not padding.
    pub(crate) fn finish(self) -> Result<(), FormatError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(FormatError::TrailingBytes { count }),
        }
    }
}

/// Writes a string whose length the type's constructor already bounded to at
/// most 255 bytes.
pub(crate) fn put_short_str(out: &mut Vec<u8>, s: &str) {
    // Constructors bound every string to at most 255 bytes (the limits in
    // `lib.rs` are all smaller); saturate rather than panic regardless.
    let len = u8::try_from(s.len()).unwrap_or(u8::MAX);
    out.push(len);
    out.extend_from_slice(s.as_bytes().get(..usize::from(len)).unwrap_or_default());
}

/// Writes a list count that the constructor bounded to fit in a `u32`.
pub(crate) fn put_count_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

/// Capacity to reserve for `count` announced items of at least `min_len`
/// bytes each: never more than the remaining input could hold, so a forged
/// count cannot make us allocate.
pub(crate) fn bounded_capacity(count: usize, remaining: usize, min_len: usize) -> usize {
    count.min(remaining / min_len.max(1))
}

/// Checks that `items` are strictly ascending by `key`: sorted and free of
/// duplicates, which is what makes a list's encoding unique.
pub(crate) fn check_strictly_ascending<T, K: Ord>(
    items: &[T],
    list: &'static str,
    key: impl Fn(&T) -> K,
) -> Result<(), FormatError> {
    for pair in items.windows(2) {
        if let [a, b] = pair {
            check_ascending_pair(&key(a), &key(b), list)?;
        }
    }
    Ok(())
}

/// That `next` comes strictly after `previous` in `list`.
pub(crate) fn check_ascending_pair<K: Ord>(
    previous: &K,
    next: &K,
    list: &'static str,
) -> Result<(), FormatError> {
    match previous.cmp(next) {
        std::cmp::Ordering::Less => Ok(()),
        std::cmp::Ordering::Equal => Err(FormatError::Duplicate { list }),
        std::cmp::Ordering::Greater => Err(FormatError::Unsorted { list }),
    }
}

/// A canonical value, the exact bytes it was encoded as, and one signature
/// over them: how operator profiles and votes travel. Decoding keeps the
/// bytes as read (they are canonical, so they equal the value's encoding),
/// so verification never re-encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OneSigned<T> {
    pub(crate) value: T,
    pub(crate) body: Vec<u8>,
    pub(crate) signature: Signature,
}

impl<T> OneSigned<T> {
    /// The body, then the signature.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + Signature::LEN);
        self.encode(&mut out);
        out
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.body);
        out.extend_from_slice(self.signature.as_bytes());
    }

    /// Reads a value with `decode`, then its signature.
    pub(crate) fn decode<'a>(
        r: &mut Reader<'a>,
        decode: impl FnOnce(&mut Reader<'a>) -> Result<T, FormatError>,
    ) -> Result<Self, FormatError> {
        let start = r.position();
        let value = decode(r)?;
        let body = r.consumed_since(start).to_vec();
        let signature = Signature::from_bytes(r.array()?);
        Ok(OneSigned {
            value,
            body,
            signature,
        })
    }
}

/// The methods every once-signed object shares (a newtype over
/// [`OneSigned`]): the signature, its check with the key the object names
/// (`$id`, from the value `$v`) under `$domain`, failing with
/// `$error { which: $signer(id) }`, and the canonical bytes.
macro_rules! one_signed {
    ($name:ident, $value:ident, $error:ident, $domain:expr, |$v:ident| $id:expr => $signer:path) => {
        impl $name {
            /// The signature.
            pub fn signature(&self) -> &$crate::keys::Signature {
                &self.0.signature
            }

            /// Checks the signature with the key the object names (not
            /// whether that key is trusted: that is the caller's).
            pub fn verify(&self) -> Result<(), $error> {
                let id = {
                    let $v = &self.0.value;
                    $id
                };
                if id.verify($domain, &self.0.body, &self.0.signature) {
                    Ok(())
                } else {
                    Err($error { which: $signer(id) })
                }
            }

            /// The canonical bytes: the body, then the signature.
            pub fn to_bytes(&self) -> Vec<u8> {
                self.0.to_bytes()
            }

            pub(crate) fn encode(&self, out: &mut Vec<u8>) {
                self.0.encode(out);
            }

            /// Parses the signed object (signature unchecked: call `verify`).
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, $crate::FormatError> {
                $crate::codec::decode_exact(bytes, Self::decode)
            }

            pub(crate) fn decode(
                r: &mut $crate::codec::Reader<'_>,
            ) -> Result<Self, $crate::FormatError> {
                $crate::codec::OneSigned::decode(r, $value::decode).map($name)
            }
        }
    };
}

pub(crate) use one_signed;

/// Reads a directory's bytes behind their `u32` length, refusing more than
/// [`MAX_DIRECTORY_BYTES`](crate::MAX_DIRECTORY_BYTES) before reading them
/// (the envelope and the proposal carry a directory this way).
pub(crate) fn read_directory_bytes(r: &mut Reader<'_>) -> Result<Bytes, FormatError> {
    let len = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    if len > crate::MAX_DIRECTORY_BYTES {
        return Err(FormatError::TooLarge {
            what: "directory",
            limit: crate::MAX_DIRECTORY_BYTES,
        });
    }
    let start = r.position();
    r.bytes(len)?;
    Ok(r.kept_since(start))
}

/// Reads a `u8` count of at most `limit` entries.
pub(crate) fn read_small_count(
    r: &mut Reader<'_>,
    what: &'static str,
    limit: usize,
) -> Result<usize, FormatError> {
    let count = usize::from(r.u8()?);
    if count > limit {
        return Err(FormatError::TooLarge { what, limit });
    }
    Ok(count)
}

/// Writes a directory's bytes behind their `u32` length.
pub(crate) fn put_directory_bytes(out: &mut Vec<u8>, directory: &[u8]) {
    put_count_u32(out, directory.len());
    out.extend_from_slice(directory);
}

/// Writes the `u8` count of a list of at most `limit` (≤ 255) entries and
/// returns how many of `len` to write: a longer list cannot have come from
/// a decoder and is cut rather than panicking.
pub(crate) fn put_small_count(out: &mut Vec<u8>, len: usize, limit: usize) -> usize {
    let count = len.min(limit);
    out.push(u8::try_from(count).unwrap_or(u8::MAX));
    count
}

/// Reads a `u32` count of at most `limit` entries, then the entries with
/// `decode`; entries are at least `min_len` bytes, which bounds what is
/// reserved for a forged count.
/// A list's element count (4 bytes), at most `limit`.
pub(crate) fn read_count(
    r: &mut Reader<'_>,
    what: &'static str,
    limit: usize,
) -> Result<usize, FormatError> {
    let count = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    if count > limit {
        return Err(FormatError::TooLarge { what, limit });
    }
    Ok(count)
}

pub(crate) fn read_list<'a, T>(
    r: &mut Reader<'a>,
    what: &'static str,
    limit: usize,
    min_len: usize,
    decode: impl Fn(&mut Reader<'a>) -> Result<T, FormatError>,
) -> Result<Vec<T>, FormatError> {
    let count = read_count(r, what, limit)?;
    let mut items = Vec::with_capacity(bounded_capacity(count, r.remaining(), min_len));
    for _ in 0..count {
        items.push(decode(r)?);
    }
    Ok(items)
}
