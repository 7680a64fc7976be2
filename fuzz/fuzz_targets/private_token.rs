//! The Privacy Pass token (RFC 9577 §2.2.1) and the issuance messages
//! (RFC 9578 §6): decoding never panics, and what decodes re-encodes to the
//! same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_tokens::{Token, TokenRequest, TokenResponse};

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = Token::decode(data) {
        assert_eq!(token.encode(), data);
    }
    if let Ok(request) = TokenRequest::decode(data) {
        assert_eq!(request.encode(), data);
    }
    if let Ok(response) = TokenResponse::decode(data) {
        assert_eq!(response.encode(), data);
    }
});
