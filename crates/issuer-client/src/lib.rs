#![doc = include_str!("../README.md")]

pub mod client;
pub mod consistency;
pub mod keyfeed;
pub mod puzzle;

use sha2::Digest;

pub use client::{IssuerClient, IssuerClientError, Session};

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
pub fn frame(username: &str, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + username.len() + message.len());
    // Usernames are at most MAX_USERNAME bytes (checked by both sides).
    out.extend_from_slice(&(username.len() as u16).to_be_bytes());
    out.extend_from_slice(username.as_bytes());
    out.extend_from_slice(message);
    out
}

/// The inverse of [`frame`]; `None` unless the name is 1..=MAX_USERNAME
/// printable ASCII bytes.
pub fn unframe(body: &[u8]) -> Option<(&str, &[u8])> {
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
