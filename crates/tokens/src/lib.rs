//! Privacy Pass tokens for openrelay: the access tokens a client shows the
//! ingress (and, later, the payments it makes to the egress).
//!
//! - [`challenge`]: the `TokenChallenge` structure (RFC 9577 §2.1.1).
//! - [`token`]: the `Token` structure (RFC 9577 §2.2.1), type 0x0002 only.
//! - [`header`]: `WWW-Authenticate: PrivateToken ...` and
//!   `Authorization: PrivateToken token=...` (RFC 9577 §2.1, §2.2).
//! - [`issuance`]: the publicly verifiable issuance protocol (RFC 9578 §6):
//!   `TokenRequest`/`TokenResponse`, client blinding and finalisation, issuer
//!   signing, with RSABSSA-SHA384-PSS-Deterministic (RFC 9474) over 2048-bit keys.
//! - [`keys`]: issuer keys, their `token_key_id` (RFC 9578 §6.5) and epochs
//!   (rotation: a key issues for one period, its tokens are accepted for one
//!   more).
//! - [`directory`]: the issuer directory JSON (RFC 9578 §4).
//! - [`verify`]: token verification against a key set and a challenge, usable
//!   by any relay.
//! - [`gate`]: verify-and-spend of `Authorization: PrivateToken` for one
//!   challenge, shared by the ingress (admission) and the egress (payments).
//! - [`settlement`]: how an egress redeems collected payment tokens at the
//!   issuer, and the operators' ledger.
//! - [`spent`]: the double-spend store (`SpentTokens`): embedded (redb) and,
//!   with the `redis` feature, Redis for a fleet of relays.
//!
//! Everything that parses untrusted bytes is a total function returning a
//! typed error; there are fuzz targets for the token, challenge and header
//! parsers. Nothing here opens sockets (except the Redis store).

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
