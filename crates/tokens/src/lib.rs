#![doc = include_str!("../README.md")]

pub mod b64;
pub mod challenge;
pub mod directory;
pub mod gate;
pub mod header;
pub mod issuance;
pub mod keys;
pub mod settlement;
pub mod spent;
#[cfg(feature = "testing")]
pub mod testing;
pub mod token;
pub mod verify;

pub use challenge::{ChallengeError, TokenChallenge};
pub use directory::{DirectoryError, DirectoryKey, IssuerDirectory};
pub use header::{HeaderError, PrivateTokenChallenge};
pub use issuance::{IssuanceError, PendingToken, TokenRequest, TokenResponse};
pub use keys::{EpochKey, KeyError, SigningKey, TokenKey};
pub use spent::{SpendKey, SpentError, SpentTokens};
pub use token::{Token, TokenError};
pub use verify::{Redemption, TokenVerifier, VerifyError};

/// Where an egress relay takes payment tokens: `POST` with `Authorization:
/// PrivateToken token=...` on the client's inner HTTP/3 connection (the
/// egress answers when the next token is due; see `openrelay-egress`'s
/// `payment` module).
pub const PAYMENT_PATH: &str = "/.well-known/openrelay/pay";

/// Token type Blind RSA (2048-bit) (RFC 9578 §8.2.2), the only type openrelay
/// issues and accepts.
pub const TOKEN_TYPE_BLIND_RSA: u16 = 0x0002;
/// `Nk`: the size of the authenticator, blinded message and blind signature
/// for token type 0x0002 (RFC 9578 §8.2.2).
pub const NK: usize = 256;
/// `Nid`: the size of `token_key_id` for token type 0x0002 (RFC 9578 §8.2.2).
pub const NID: usize = 32;

/// SHA-256, the hash of `challenge_digest` and `token_key_id`.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
