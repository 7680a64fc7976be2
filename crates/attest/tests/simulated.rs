//! The insecure simulated platform and the report-data binding.

use ed25519_dalek::SigningKey;
use openrelay_attest::{
    AttestError, Binding, Evidence, InsecureSimulatedTee, Measurement, Platform, Policy,
    report_data, verify,
};

const MEASUREMENT: [u8; 48] = [0x42; 48];

fn binding() -> Binding {
    Binding {
        relay_id: [1; 32],
        key_pin: [2; 32],
        not_before: 1_800_000_000,
    }
}

fn tee(seed: u8) -> InsecureSimulatedTee {
    InsecureSimulatedTee::new(SigningKey::from_bytes(&[seed; 32]))
}

fn devnet_policy(root: [u8; 32]) -> Policy {
    Policy {
        insecure_simulated_root: Some(root),
        ..Policy::default()
    }
}

#[test]
fn simulated_evidence_verifies_when_the_policy_names_its_root() {
    let tee = tee(3);
    let expected = report_data(&binding());
    let evidence = tee.evidence(&expected, &MEASUREMENT);
    let verified = verify(&evidence, &expected, &devnet_policy(tee.root()), 0).expect("verifies");
    assert_eq!(verified.platform, Platform::InsecureSimulated);
    assert_eq!(
        verified.measurement,
        Measurement::InsecureSimulated(MEASUREMENT)
    );
    assert!(verified.tcb.contains("proves nothing"), "{}", verified.tcb);
    // Through the encoding, as a directory carries it.
    let decoded = Evidence::from_bytes(&evidence.to_bytes()).expect("decodes");
    assert_eq!(
        verify(&decoded, &expected, &devnet_policy(tee.root()), 0),
        Ok(verified)
    );
}

#[test]
fn simulated_evidence_is_refused_by_default() {
    let tee = tee(3);
    let expected = report_data(&binding());
    let error = verify(
        &tee.evidence(&expected, &MEASUREMENT),
        &expected,
        &Policy::default(),
        0,
    )
    .expect_err("refused without a root");
    assert_eq!(error, AttestError::InsecureSimulatedNotTrusted);
    let message = error.to_string();
    assert!(
        message.contains("proves nothing") && message.contains("insecure_simulated_root"),
        "{message}"
    );
}

#[test]
fn simulated_evidence_of_another_key_is_refused() {
    let (trusted, other) = (tee(3), tee(4));
    let expected = report_data(&binding());
    assert_eq!(
        verify(
            &other.evidence(&expected, &MEASUREMENT),
            &expected,
            &devnet_policy(trusted.root()),
            0
        ),
        Err(AttestError::InsecureSimulatedWrongKey {
            trusted: trusted.root(),
            found: other.root(),
        })
    );
    // Another key's signature presented under the trusted key's name.
    let Evidence::InsecureSimulated(mut forged) = other.evidence(&expected, &MEASUREMENT) else {
        unreachable!("a simulated TEE makes simulated evidence");
    };
    forged.signer = trusted.root();
    assert_eq!(
        verify(
            &Evidence::InsecureSimulated(forged),
            &expected,
            &devnet_policy(trusted.root()),
            0
        ),
        Err(AttestError::InsecureSimulatedSignatureInvalid)
    );
}

#[test]
fn simulated_evidence_with_a_tampered_measurement_is_refused() {
    let tee = tee(3);
    let expected = report_data(&binding());
    let Evidence::InsecureSimulated(mut evidence) = tee.evidence(&expected, &MEASUREMENT) else {
        unreachable!("a simulated TEE makes simulated evidence");
    };
    evidence.measurement[0] ^= 1;
    assert_eq!(
        verify(
            &Evidence::InsecureSimulated(evidence),
            &expected,
            &devnet_policy(tee.root()),
            0
        ),
        Err(AttestError::InsecureSimulatedSignatureInvalid)
    );
}

#[test]
fn simulated_evidence_for_another_key_pin_is_refused() {
    let tee = tee(3);
    let made_for = report_data(&binding());
    let other_pin = report_data(&Binding {
        key_pin: [0xEE; 32],
        ..binding()
    });
    assert!(matches!(
        verify(
            &tee.evidence(&made_for, &MEASUREMENT),
            &other_pin,
            &devnet_policy(tee.root()),
            0
        ),
        Err(AttestError::ReportDataMismatch {
            platform: Platform::InsecureSimulated,
            ..
        })
    ));
}

#[test]
fn report_data_binds_every_field() {
    let base = binding();
    let variants = [
        Binding {
            relay_id: [0xFF; 32],
            ..base
        },
        Binding {
            key_pin: [0xFF; 32],
            ..base
        },
        Binding {
            not_before: base.not_before + 1,
            ..base
        },
        // The same bytes shifted between fields give another value.
        Binding {
            relay_id: [2; 32],
            key_pin: [1; 32],
            ..base
        },
    ];
    let data = report_data(&base);
    assert_eq!(data, report_data(&base), "deterministic");
    for other in variants {
        assert_ne!(report_data(&other), data, "{other:?}");
    }
}

#[test]
fn report_data_is_the_documented_hash() {
    use sha2::{Digest, Sha512};
    let b = binding();
    let mut hash = Sha512::new();
    hash.update(b"openrelay attestation report data v1\0");
    hash.update(b.relay_id);
    hash.update(b.key_pin);
    hash.update(b.not_before.to_be_bytes());
    assert_eq!(report_data(&b), <[u8; 64]>::from(hash.finalize()));
}

#[test]
fn the_policy_reads_from_toml_with_documented_defaults() {
    let policy: Policy = toml::from_str("").expect("empty policy");
    assert_eq!(policy, Policy::default());
    assert!(policy.sev_snp.enabled && policy.tdx.enabled && policy.sgx.enabled);
    assert_eq!(policy.insecure_simulated_root, None);

    let root = tee(3).root();
    let hex: String = root.iter().map(|b| format!("{b:02x}")).collect();
    let text = format!(
        "insecure_simulated_root = \"{hex}\"\n\
         [sev_snp]\nmax_vmpl = 1\n[sev_snp.minimum_tcb.milan]\nsnp = 8\n\
         [tdx]\naccepted_statuses = [\"UpToDate\", \"OutOfDate\"]\naccepted_advisories = [\"INTEL-SA-00615\"]\n"
    );
    let policy: Policy = toml::from_str(&text).expect("parses");
    assert_eq!(policy.insecure_simulated_root, Some(root));
    assert_eq!(policy.sev_snp.max_vmpl, 1);
    assert_eq!(policy.sev_snp.minimum_tcb.milan.snp, 8);
    assert_eq!(policy.tdx.accepted_advisories, ["INTEL-SA-00615"]);
    assert_eq!(
        toml::from_str::<Policy>(&toml::to_string(&policy).expect("writes")),
        Ok(policy)
    );

    for bad in [
        "insecure_simulated_root = \"00\"",
        "unknown_field = 1",
        "[tdx]\naccepted_statuses = [\"Fine\"]",
    ] {
        assert!(toml::from_str::<Policy>(bad).is_err(), "{bad}");
    }
}
