//! Release manifests (openrelay-release): a DSSE envelope of an in-toto
//! statement anyone may hand a validator or a paranoid user to verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_release::manifest::SignatureCheck;
use openrelay_release::{Manifest, SigningKey};

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::parse(data) else {
        return;
    };
    // Whatever parses round-trips, and every accessor the verifier uses
    // works on it.
    let again = Manifest::parse(&manifest.to_json()).expect("a parsed manifest re-parses");
    assert_eq!(again, manifest);
    let _ = manifest.release_id();
    let _ = manifest.subject();
    let _ = manifest.build_parameters();
    let _ = manifest.input_files();
    let _ = manifest.sections();
    let _ = manifest.insecure_simulated_measurement();
    let key = SigningKey::from_bytes(&[7; 32]);
    let _ = manifest.check_signatures(&[key.verifying_key()]);
    // Signing never changes what is voted on, and the new signature verifies.
    let mut signed = manifest.clone();
    signed.sign(&key);
    assert_eq!(signed.release_id(), manifest.release_id());
    assert!(matches!(
        signed.check_signatures(&[key.verifying_key()]),
        SignatureCheck::Checked { signed_by, .. } if signed_by.len() == 1
    ));
});
