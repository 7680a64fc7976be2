//! The TokenChallenge structure (RFC 9577 §2.1.1): decoding never panics and
//! is canonical (what decodes re-encodes to the same bytes, so the
//! challenge digest is the digest of what was received).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_tokens::TokenChallenge;

fuzz_target!(|data: &[u8]| {
    if let Ok(challenge) = TokenChallenge::decode(data) {
        assert_eq!(challenge.encode().as_deref(), Ok(data));
    }
});
