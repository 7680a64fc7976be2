//! Properties of the evidence parser (untrusted bytes from descriptors).

use ed25519_dalek::SigningKey;
use openrelay_attest::{
    DcapEvidence, Evidence, EvidenceDecodeError, InsecureSimulatedEvidence, InsecureSimulatedTee,
    MAX_EVIDENCE_LEN, Policy, QuoteCollateralV3, SevSnpEvidence, SnpProduct, verify,
};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn array<const N: usize>() -> impl Strategy<Value = [u8; N]> {
    prop::collection::vec(any::<u8>(), N).prop_map(|v| v.try_into().expect("N bytes"))
}

fn text() -> impl Strategy<Value = String> {
    "[ -~\n]{0,40}"
}

fn dcap() -> impl Strategy<Value = DcapEvidence> {
    (
        bytes(200),
        (text(), bytes(40), bytes(40), text(), text()),
        (bytes(40), text(), text(), bytes(40), "[ -~\n]{1,40}"),
        any::<bool>(),
    )
        .prop_map(
            |(quote, (a, b, c, d, e), (f, g, h, i, j), has_pck)| DcapEvidence {
                quote,
                collateral: QuoteCollateralV3 {
                    pck_crl_issuer_chain: a,
                    root_ca_crl: b,
                    pck_crl: c,
                    tcb_info_issuer_chain: d,
                    tcb_info: e,
                    tcb_info_signature: f,
                    qe_identity_issuer_chain: g,
                    qe_identity: h,
                    qe_identity_signature: i,
                    // An empty chain encodes as "none".
                    pck_certificate_chain: has_pck.then_some(j),
                },
            },
        )
}

fn evidence() -> impl Strategy<Value = Evidence> {
    prop_oneof![
        (
            prop_oneof![
                Just(SnpProduct::Milan),
                Just(SnpProduct::Genoa),
                Just(SnpProduct::Turin)
            ],
            array::<1184>().prop_map(Box::new),
            bytes(300),
            prop::option::of(prop::collection::vec(any::<u8>(), 1..300)),
        )
            .prop_map(|(product, report, vcek_der, ask_der)| Evidence::SevSnp(
                SevSnpEvidence {
                    product,
                    report,
                    vcek_der,
                    ask_der,
                }
            )),
        dcap().prop_map(Evidence::Tdx),
        dcap().prop_map(Evidence::Sgx),
        (array::<32>(), array::<48>(), array::<64>(), array::<64>()).prop_map(
            |(signer, measurement, report_data, signature)| Evidence::InsecureSimulated(
                InsecureSimulatedEvidence {
                    signer,
                    measurement,
                    report_data,
                    signature,
                }
            )
        ),
    ]
}

fn policy_with_root() -> (InsecureSimulatedTee, Policy) {
    let tee = InsecureSimulatedTee::new(SigningKey::from_bytes(&[5; 32]));
    let policy = Policy {
        insecure_simulated_root: Some(tee.root()),
        ..Policy::default()
    };
    (tee, policy)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn evidence_round_trips(evidence in evidence()) {
        let encoded = evidence.to_bytes();
        prop_assert_eq!(Evidence::from_bytes(&encoded), Ok(evidence));
    }

    #[test]
    fn decoding_never_panics_and_what_decodes_is_canonical(data in bytes(3000)) {
        if let Ok(evidence) = Evidence::from_bytes(&data) {
            prop_assert_eq!(evidence.to_bytes(), data);
            let (_, policy) = policy_with_root();
            // Verification of whatever decodes returns, never panics.
            let _ = verify(&evidence, &[0; 64], &policy, 0);
        }
    }

    #[test]
    fn verifying_arbitrary_parts_never_panics(evidence in evidence(), now in any::<u64>()) {
        let (_, policy) = policy_with_root();
        prop_assert!(verify(&evidence, &[0; 64], &policy, now).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused(evidence in evidence(), extra in prop::collection::vec(any::<u8>(), 1..16)) {
        let mut encoded = evidence.to_bytes();
        encoded.extend_from_slice(&extra);
        prop_assert!(Evidence::from_bytes(&encoded).is_err());
    }

    #[test]
    fn truncation_is_refused(evidence in evidence(), cut in any::<prop::sample::Index>()) {
        let encoded = evidence.to_bytes();
        let cut = cut.index(encoded.len());
        prop_assert!(Evidence::from_bytes(&encoded[..cut]).is_err());
    }

    #[test]
    fn any_changed_byte_of_simulated_evidence_fails_verification(at in any::<prop::sample::Index>(), flip in 1..=255u8) {
        let (tee, policy) = policy_with_root();
        let report_data = [9; 64];
        let mut encoded = tee.evidence(&report_data, &[1; 48]).to_bytes();
        let at = at.index(encoded.len());
        encoded[at] ^= flip;
        if let Ok(evidence) = Evidence::from_bytes(&encoded) {
            prop_assert!(verify(&evidence, &report_data, &policy, 0).is_err());
        }
    }
}

#[test]
fn a_trailing_well_formed_part_is_refused() {
    let (tee, _) = policy_with_root();
    let mut encoded = tee.evidence(&[0; 64], &[0; 48]).to_bytes();
    encoded.extend_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        Evidence::from_bytes(&encoded),
        Err(EvidenceDecodeError::WrongPartCount {
            expected: 4,
            found: 5,
            ..
        })
    ));
}

#[test]
fn oversized_evidence_is_refused_before_parsing() {
    let (tee, _) = policy_with_root();
    let mut encoded = tee.evidence(&[0; 64], &[0; 48]).to_bytes();
    encoded.resize(MAX_EVIDENCE_LEN + 1, 0);
    assert_eq!(
        Evidence::from_bytes(&encoded),
        Err(EvidenceDecodeError::TooLong {
            max: MAX_EVIDENCE_LEN,
            found: MAX_EVIDENCE_LEN + 1
        })
    );
    // A part that declares more than the input holds.
    let mut lying = vec![1, 0xF0];
    lying.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        Evidence::from_bytes(&lying),
        Err(EvidenceDecodeError::Truncated { .. })
    ));
}

#[test]
fn unknown_version_platform_and_part_shapes_are_refused() {
    let (tee, _) = policy_with_root();
    let good = tee.evidence(&[0; 64], &[0; 48]).to_bytes();
    let mut version = good.clone();
    version[0] = 2;
    assert_eq!(
        Evidence::from_bytes(&version),
        Err(EvidenceDecodeError::UnsupportedVersion {
            expected: 1,
            found: 2
        })
    );
    let mut platform = good.clone();
    platform[1] = 9;
    assert_eq!(
        Evidence::from_bytes(&platform),
        Err(EvidenceDecodeError::UnknownPlatform { found: 9 })
    );
    // Simulated evidence parsed as SEV-SNP: wrong shape.
    let mut snp = good;
    snp[1] = 1;
    assert!(matches!(
        Evidence::from_bytes(&snp),
        Err(EvidenceDecodeError::WrongPartLength {
            part: "product",
            ..
        })
    ));
    assert!(Evidence::from_bytes(&[]).is_err());
    assert!(Evidence::from_bytes(&[1]).is_err());
    assert!(matches!(
        Evidence::from_bytes(&[1, 0xF0]),
        Err(EvidenceDecodeError::WrongPartCount { found: 0, .. })
    ));
}
