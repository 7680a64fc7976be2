//! SHA-256 digests that name a canonical encoding: a directory's
//! ([`crate::DirectoryDigest`]) and an issuer key set's
//! ([`crate::KeySetDigest`]). Each is its own type, so one cannot be passed
//! where the other is meant; both print as 64 lower-case hex digits.

/// A digest's text is not 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a digest is 64 lower-case hex digits")]
pub struct DigestSyntaxError;

/// Parses 64 lower-case hex digits.
pub(crate) fn parse_hex(s: &str) -> Result<[u8; 32], DigestSyntaxError> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return Err(DigestSyntaxError);
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(DigestSyntaxError),
    };
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        if let [hi, lo] = pair {
            *o = (nibble(*hi)? << 4) | nibble(*lo)?;
        }
    }
    Ok(out)
}

/// Defines a SHA-256 digest type of canonical bytes.
macro_rules! sha256_digest {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The digest of canonical bytes.
            pub fn of(bytes: &[u8]) -> Self {
                use sha2::Digest as _;
                $name(sha2::Sha256::digest(bytes).into())
            }

            /// A digest from its bytes (e.g. as stored with a cache).
            pub fn from_bytes(bytes: [u8; 32]) -> Self {
                $name(bytes)
            }

            /// The digest's bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::digest::DigestSyntaxError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::digest::parse_hex(s).map($name)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use sha256_digest;
