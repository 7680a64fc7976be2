//! Relay descriptors and operator profiles (`docs/directory-format.md`): what
//! a registry parses when a relay or operator publishes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_directory::{
    OperatorProfile, RelayDescriptor, SignedDescriptor, SignedOperatorProfile,
};

fuzz_target!(|data: &[u8]| {
    // Whatever decodes is canonical: it re-encodes to exactly the input.
    if let Ok(d) = RelayDescriptor::from_bytes(data) {
        assert_eq!(d.to_bytes(), data);
        assert_eq!(RelayDescriptor::new(d.fields().clone()), Ok(d));
    }
    if let Ok(s) = SignedDescriptor::from_bytes(data) {
        assert_eq!(s.to_bytes(), data);
        assert_eq!(s.body(), s.descriptor().to_bytes());
        // Signatures over fuzzed bytes must fail cleanly (almost always).
        let _ = s.verify(1_750_000_000);
    }
    if let Ok(p) = OperatorProfile::from_bytes(data) {
        assert_eq!(p.to_bytes(), data);
    }
    if let Ok(p) = SignedOperatorProfile::from_bytes(data) {
        assert_eq!(p.to_bytes(), data);
        let _ = p.verify();
    }
});
