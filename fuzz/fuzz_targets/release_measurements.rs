//! A release's launch measurements as a node returns them
//! (`openrelay_chain::release::decode_measurements`): untrusted bytes
//! decode or are refused, never panic, and what decodes encodes back to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_chain::release::{MAX_MEASUREMENTS, decode_measurements, encode_measurements};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(measurements) = decode_measurements(bytes) {
        assert!(!measurements.is_empty() && measurements.len() <= MAX_MEASUREMENTS);
        assert_eq!(encode_measurements(&measurements).ok().as_deref(), Some(bytes));
    }
});
