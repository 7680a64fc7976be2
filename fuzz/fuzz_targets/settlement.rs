//! A relay's settlement request (openrelay_tokens::settlement), which the
//! issuer parses from any relay: decoding never panics, and what decodes
//! re-encodes to the same bytes (the relay signs exactly those bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_tokens::settlement::Settlement;

fuzz_target!(|data: &[u8]| {
    if let Ok(settlement) = Settlement::decode(data) {
        assert_eq!(settlement.encode().as_deref(), Some(data));
    }
});
