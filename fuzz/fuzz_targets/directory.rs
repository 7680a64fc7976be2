//! Signed directories and directory bodies (`docs/directory-format.md`): what
//! a client parses when it fetches the relay list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_directory::{
    Directory, SignedDirectory, TrustConfig, ValidatorKey, verify_directory, weight,
};

fuzz_target!(|data: &[u8]| {
    // Whatever decodes is canonical: it re-encodes to exactly the input.
    // The decoder clients use under a quorum's signatures (key checks
    // deferred) accepts at least what the strict one does, the same way.
    let deferred = Directory::from_quorum_signed_bytes_deferring_key_checks(
        &bytes::Bytes::copy_from_slice(data),
    );
    if let Ok(d) = &deferred {
        assert_eq!(d.to_bytes(), data);
    }
    if let Ok(d) = Directory::from_bytes(data) {
        assert_eq!(deferred.as_ref().ok(), Some(&d));
        assert_eq!(d.to_bytes(), data);
        let _ = d.check_contents(1_750_000_000);
        // Weights from any measurements and stakes: one per relay, never
        // above its clipped claim.
        let weights = weight::directory_selection_bandwidths(&d);
        assert_eq!(weights.len(), d.descriptors().len());
        for (w, s) in weights.iter().zip(d.descriptors()) {
            assert!(*w <= weight::clipped_bandwidth(s.descriptor().bandwidth_bps()));
        }
    }
    if let Ok(s) = SignedDirectory::from_bytes(data) {
        assert_eq!(s.to_bytes(), data);
        if let Ok(d) = Directory::from_bytes(&s.directory) {
            assert_eq!(d.to_bytes(), s.directory);
        }
        // Full verification of untrusted input must fail cleanly. Signed by
        // a fixed validator here so the body parser and the content checks
        // are reached too, not only the signature count.
        let validator = ValidatorKey::from_bytes(&[7; 32]);
        let trust = TrustConfig::new([validator.id()], 1, u64::MAX).expect("a valid trust config");
        let mut signed = s.clone();
        signed.sign(&validator);
        let _ = verify_directory(signed.clone(), &trust, 1_750_000_000, None);
        let _ = verify_directory(s.clone(), &trust, 1_750_000_000, None);
        // The same under a weighted genesis set (more than two thirds), the
        // rule of chain directories and of every set after a hand-over.
        let weighted = TrustConfig::genesis(trust.validator_set().clone(), u64::MAX)
            .expect("a valid trust config");
        let _ = verify_directory(signed, &weighted, 1_750_000_000, None);
        let _ = verify_directory(s, &weighted, 1_750_000_000, None);
    }
});
