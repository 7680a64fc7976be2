//! Issuer key sets (`docs/directory-format.md`, "Issuer key set"): what a
//! registry and every validator parse when an issuer publishes, and what a
//! client or relay parses inside a directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_directory::SignedIssuerKeySet;

fuzz_target!(|data: &[u8]| {
    // Whatever decodes is canonical: it re-encodes to exactly the input,
    // and keeps every bound (at most one key signs at any instant).
    if let Ok(signed) = SignedIssuerKeySet::from_bytes(data) {
        assert_eq!(signed.to_bytes(), data);
        let _ = signed.verify();
        let set = signed.key_set();
        assert!(set.keys().len() <= openrelay_directory::MAX_ISSUER_KEYS);
        for key in set.keys() {
            assert!(set.keys().iter().filter(|k| k.issues_at(key.not_before)).count() <= 1);
        }
    }
});
