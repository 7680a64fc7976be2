//! A signed ledger request (openrelay_tokens::settlement::LedgerRequest),
//! which the issuer parses from anyone: decoding never panics, and what
//! decodes re-encodes to the same bytes (the signer signs exactly those).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_tokens::settlement::LedgerRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = LedgerRequest::decode(data) {
        assert_eq!(request.encode().as_deref(), Some(data));
    }
});
