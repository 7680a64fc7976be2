//! Relays' attestation evidence (openrelay-attest): untrusted bytes every
//! client and validator decodes from descriptors and then verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_attest::{Evidence, Policy, verify};

fuzz_target!(|data: &[u8]| {
    let Ok(evidence) = Evidence::from_bytes(data) else {
        return;
    };
    // Whatever decodes is canonical.
    assert_eq!(evidence.to_bytes(), data);
    // And verification refuses it without panicking, whatever the policy:
    // the default one and one that trusts a simulated root.
    let trusting = Policy {
        insecure_simulated_root: Some([7; 32]),
        ..Policy::default()
    };
    for policy in [Policy::default(), trusting] {
        let _ = verify(&evidence, &[0; 64], &policy, 1_750_334_400);
    }
});
