//! `WWW-Authenticate: PrivateToken ...` and `Authorization: PrivateToken
//! token=...` (RFC 9577 §2.1, §2.2; RFC 9110 §11): parsing never panics, and
//! a token we parse is one we would send the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_tokens::header::{build_authorization, parse_authorization, parse_www_authenticate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_www_authenticate(text);
    if let Ok(token) = parse_authorization(text) {
        assert_eq!(parse_authorization(&build_authorization(&token)), Ok(token));
    }
});
