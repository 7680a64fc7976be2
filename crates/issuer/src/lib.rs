//! `openrelay issuer`: accounts and access tokens.
//!
//! - Accounts are OPAQUE (RFC 9807) registrations: the issuer stores a
//!   password file from which the password cannot be read, and a login proves
//!   knowledge of the password without sending it. No email, no other data.
//!   Both sides bind the exchange to openrelay ([`OPAQUE_CONTEXT`]) and to
//!   the account name and the issuer's name ([`opaque_identifiers`]).
//! - A registration costs a proof of work ([`puzzle`]); logins are slowed
//!   per account and per address, and pending logins bounded per address and
//!   in total ([`logins`], [`limiter`]).
//! - A login yields a session key on both sides; the client derives a bearer
//!   credential from it ([`session_bearer`]) that authorises token requests
//!   for a short while.
//! - Tokens are Privacy Pass publicly verifiable tokens (RFC 9578 §6, type
//!   0x0002), at most `tokens_per_period` per account and period (429 above).
//!   The issuer signs blinded messages: it cannot tell which token it issued
//!   when a relay later sees it.
//! - Token keys rotate ([`keys::KeyRing`]); the public keys are served in the
//!   issuer directory (RFC 9578 §4), which relays fetch and follow
//!   ([`keyfeed`]), and written to `issuer-directory.json` for relays that
//!   read a local copy.
//! - Key consistency (RFC 9576 §6, [`consistency`]): with `[publish]` and
//!   `[directory]` the issuer publishes its keys, signed by its identity key,
//!   to the registry and every validator ([`publish`]), signs tokens only
//!   with keys the validator-signed directory lists for it, and hands
//!   clients that ask a copy of that directory (`GET /v1/directory`).
//!   Clients and relays that follow the directory accept only listed keys.
//! - Relays settle collected payment tokens for their operator; only relays
//!   listed for that operator may ([`relays`]: the validator-signed
//!   directory, or a configured list), and only they may read its ledger.
//!
//! [`service`] is the HTTP/3 server (on `transport::server`), [`client`] the
//! client API a wallet uses.

pub mod client;
pub mod consistency;
pub mod keyfeed;
pub mod keys;
pub mod limiter;
pub mod logins;
pub mod publish;
pub mod puzzle;
pub mod relays;
pub mod service;
pub mod sessions;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

use sha2::Digest;

pub use client::{IssuerClient, IssuerClientError, Session};
pub use service::{IssuerService, ServiceError};

/// The OPAQUE cipher suite (RFC 9807 §4.1, §7): ristretto255 OPRF, 3DH over
/// ristretto255 with SHA-512, Argon2id as the key stretching function.
#[derive(Debug, Clone, Copy)]
pub struct Suite;

impl opaque_ke::CipherSuite for Suite {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2::Sha512>;
    type Ksf = argon2::Argon2<'static>;
}

/// The OPAQUE context string (RFC 9807 §6.1): both sides must use it, so a
/// login transcript of openrelay is never valid for another application.
pub const OPAQUE_CONTEXT: &[u8] = b"openrelay issuer OPAQUE v1";

/// The OPAQUE identities (RFC 9807 §4.1.2, §6.1) of a registration or login
/// of `username` at the issuer named `issuer_name` (its token-challenge
/// name): the client's envelope and every login are bound to both, so a
/// password file or login made for one issuer or account does not verify
/// at another.
pub fn opaque_identifiers<'a>(
    username: &'a str,
    issuer_name: &'a str,
) -> opaque_ke::Identifiers<'a> {
    opaque_ke::Identifiers {
        client: Some(username.as_bytes()),
        server: Some(issuer_name.as_bytes()),
    }
}

/// Paths of the issuer's HTTP API.
pub mod paths {
    /// A registration puzzle ([`crate::puzzle`]).
    pub const REGISTER_PUZZLE: &str = "/v1/register/puzzle";
    /// OPAQUE registration, first message (RFC 9807 §5.2).
    pub const REGISTER_START: &str = "/v1/register/start";
    /// OPAQUE registration, the record upload.
    pub const REGISTER_FINISH: &str = "/v1/register/finish";
    /// OPAQUE login, KE1 → KE2 (RFC 9807 §6).
    pub const LOGIN_START: &str = "/v1/login/start";
    /// OPAQUE login, KE3.
    pub const LOGIN_FINISH: &str = "/v1/login/finish";
    /// Token requests (RFC 9578 §6.1), the directory's `issuer-request-uri`.
    pub const TOKEN_REQUEST: &str = "/token-request";
    /// The issuer directory (RFC 9578 §4).
    pub const DIRECTORY: &str = openrelay_tokens::directory::WELL_KNOWN_PATH;
    /// A copy of the validator-signed directory the issuer follows (clients
    /// verify its signatures; the issuer only passes it on).
    pub const SIGNED_DIRECTORY: &str = "/v1/directory";
}

/// Longest account name.
pub const MAX_USERNAME: usize = 64;

/// The bearer credential of a login: base64url(SHA-256(label ‖ session_key)).
/// Both sides derive it from the OPAQUE session key, which itself never
/// crosses the wire.
pub fn session_bearer(session_key: &[u8]) -> String {
    let mut hash = sha2::Sha256::new();
    hash.update(b"openrelay issuer session v1");
    hash.update(session_key);
    openrelay_tokens::b64::encode(&hash.finalize())
}

/// `u16 length ‖ username ‖ message`: how OPAQUE messages name their account.
pub(crate) fn frame(username: &str, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + username.len() + message.len());
    // Usernames are at most MAX_USERNAME bytes (checked by both sides).
    out.extend_from_slice(&(username.len() as u16).to_be_bytes());
    out.extend_from_slice(username.as_bytes());
    out.extend_from_slice(message);
    out
}

/// The inverse of [`frame`]; `None` unless the name is 1..=MAX_USERNAME
/// printable ASCII bytes.
pub(crate) fn unframe(body: &[u8]) -> Option<(&str, &[u8])> {
    let (len, rest) = body.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    if len == 0 || len > MAX_USERNAME || rest.len() < len {
        return None;
    }
    let (name, message) = rest.split_at(len);
    let name = std::str::from_utf8(name).ok()?;
    name.bytes()
        .all(|b| b.is_ascii_graphic())
        .then_some((name, message))
}

/// Whether `username` can name an account.
pub fn valid_username(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= MAX_USERNAME
        && username.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_bad_names() {
        let framed = frame("alice", b"message");
        assert_eq!(unframe(&framed), Some(("alice", &b"message"[..])));
        assert_eq!(unframe(&[]), None);
        assert_eq!(unframe(&[0, 0, 1]), None);
        assert_eq!(unframe(&[0, 5, b'a']), None);
        assert_eq!(unframe(&frame("a b", b"")), None);
        assert!(!valid_username(&"x".repeat(65)));
    }
}
