//! Verification on real evidence (tests/vectors/README.md): the samples
//! pass at their fixed times, and each kind of tampering or policy breach
//! fails with its own error.

use openrelay_attest::{
    AttestError, Binding, DcapEvidence, DcapPolicy, DcapTcbStatus, Evidence, Measurement, Platform,
    Policy, QuoteCollateralV3, SevSnpEvidence, SnpProduct, SnpTcb, report_data, verify,
};
use proptest::prelude::*;

const SNP_REPORT: &[u8] = include_bytes!("vectors/sev/report_milan.bin");
const VCEK_MILAN: &[u8] = include_bytes!("vectors/sev/vcek_milan.der");
const VCEK_TURIN: &[u8] = include_bytes!("vectors/sev/vcek_turin.der");
const ASK_GENOA_PEM: &[u8] = include_bytes!("vectors/sev/ask_genoa.pem");

const SGX_QUOTE: &[u8] = include_bytes!("vectors/dcap/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("vectors/dcap/sgx_quote_collateral.json");
const TDX_QUOTE: &[u8] = include_bytes!("vectors/dcap/tdx_quote");
const TDX_COLLATERAL: &[u8] = include_bytes!("vectors/dcap/tdx_quote_collateral.json");

/// 2025-06-19T12:00:00Z: inside the SGX and TDX samples' collateral
/// windows (TCB info and QE identity issued that morning, valid a month).
const SAMPLE_NOW: u64 = 1_750_334_400;
/// 2025-08-01: the samples' collateral has expired.
const AFTER_SAMPLE_EXPIRY: u64 = 1_754_006_400;

/// The SGX quote body ends at 48 + 384 (v3), the TDX one at 48 + 584 (v4);
/// a u32 length, then the 64-byte ECDSA signature over header and body.
const SGX_QUOTE_SIGNATURE_AT: usize = 48 + 384 + 4;
const TDX_QUOTE_SIGNATURE_AT: usize = 48 + 584 + 4;

fn snp_report() -> [u8; 1184] {
    SNP_REPORT.try_into().expect("1184 bytes")
}

fn snp_report_data() -> [u8; 64] {
    snp_report()[0x50..0x90].try_into().expect("64 bytes")
}

fn snp_evidence() -> SevSnpEvidence {
    SevSnpEvidence {
        product: SnpProduct::Milan,
        report: Box::new(snp_report()),
        vcek_der: VCEK_MILAN.to_vec(),
        ask_der: None,
    }
}

fn collateral(json: &[u8]) -> QuoteCollateralV3 {
    serde_json::from_slice(json).expect("the sample collateral parses")
}

fn dcap(quote: &[u8], json: &[u8]) -> DcapEvidence {
    DcapEvidence {
        quote: quote.to_vec(),
        collateral: collateral(json),
    }
}

/// The report data inside a quote: SGX's REPORTDATA at body offset 320,
/// TDX's at body offset 520, after the 48-byte header.
fn quote_report_data(quote: &[u8], body_offset: usize) -> [u8; 64] {
    quote[body_offset..body_offset + 64]
        .try_into()
        .expect("64 bytes")
}

fn sgx_report_data() -> [u8; 64] {
    quote_report_data(SGX_QUOTE, 48 + 320)
}

fn tdx_report_data() -> [u8; 64] {
    quote_report_data(TDX_QUOTE, 48 + 520)
}

/// A policy accepting the SGX sample: its status and its two advisories.
fn sgx_sample_policy() -> Policy {
    Policy {
        sgx: DcapPolicy {
            accepted_statuses: vec![DcapTcbStatus::ConfigurationAndSWHardeningNeeded],
            accepted_advisories: vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()],
            ..DcapPolicy::default()
        },
        ..Policy::default()
    }
}

fn another_relays_binding() -> [u8; 64] {
    report_data(&Binding {
        relay_id: [7; 32],
        key_pin: [9; 32],
        not_before: 1_750_000_000,
    })
}

// ---------------------------------------------------------------- SEV-SNP

#[test]
fn the_real_snp_report_verifies() {
    let verified = verify(
        &Evidence::SevSnp(snp_evidence()),
        &snp_report_data(),
        &Policy::default(),
        0,
    )
    .expect("the sample verifies");
    assert_eq!(verified.platform, Platform::SevSnp);
    let launch_digest: [u8; 48] = snp_report()[0x90..0xC0].try_into().expect("48 bytes");
    assert_eq!(
        verified.measurement,
        Measurement::SnpLaunchDigest(launch_digest)
    );
    assert!(verified.tcb.contains("Milan"), "{}", verified.tcb);
}

#[test]
fn the_real_snp_report_verifies_with_the_ask_sent_along() {
    let ask = sev::certs::snp::builtin::milan::ask()
        .and_then(|c| c.to_der())
        .expect("the built-in ASK");
    let evidence = SevSnpEvidence {
        ask_der: Some(ask),
        ..snp_evidence()
    };
    verify(
        &Evidence::SevSnp(evidence),
        &snp_report_data(),
        &Policy::default(),
        0,
    )
    .expect("verifies");
}

#[test]
fn snp_flipped_signature_byte_is_refused() {
    for at in [0x2A0, 0x2A0 + 47, 0x2A0 + 72 + 20] {
        let mut evidence = snp_evidence();
        evidence.report[at] ^= 0x01;
        assert_eq!(
            verify(
                &Evidence::SevSnp(evidence),
                &snp_report_data(),
                &Policy::default(),
                0
            ),
            Err(AttestError::SnpReportSignatureInvalid),
            "byte {at:#x}"
        );
    }
}

#[test]
fn snp_changed_measurement_is_refused() {
    let mut evidence = snp_evidence();
    evidence.report[0x90] ^= 0x80;
    assert_eq!(
        verify(
            &Evidence::SevSnp(evidence),
            &snp_report_data(),
            &Policy::default(),
            0
        ),
        Err(AttestError::SnpReportSignatureInvalid)
    );
}

#[test]
fn snp_ask_of_another_product_is_refused() {
    let ask = sev::certs::snp::Certificate::from_pem(ASK_GENOA_PEM)
        .and_then(|c| c.to_der())
        .expect("Genoa ASK");
    let evidence = SevSnpEvidence {
        ask_der: Some(ask),
        ..snp_evidence()
    };
    assert!(matches!(
        verify(
            &Evidence::SevSnp(evidence),
            &snp_report_data(),
            &Policy::default(),
            0
        ),
        Err(AttestError::SnpAskNotSignedByArk {
            product: SnpProduct::Milan,
            ..
        })
    ));
}

#[test]
fn snp_vcek_under_another_products_root_is_refused() {
    let evidence = SevSnpEvidence {
        product: SnpProduct::Genoa,
        ..snp_evidence()
    };
    assert!(matches!(
        verify(
            &Evidence::SevSnp(evidence),
            &snp_report_data(),
            &Policy::default(),
            0
        ),
        Err(AttestError::SnpVcekNotSignedByAsk {
            product: SnpProduct::Genoa,
            ..
        })
    ));
}

#[test]
fn snp_vcek_of_another_chip_is_refused() {
    // A genuine Turin VCEK: valid under Turin's roots, not the Milan chip's key.
    let turin = SevSnpEvidence {
        product: SnpProduct::Turin,
        vcek_der: VCEK_TURIN.to_vec(),
        ..snp_evidence()
    };
    assert_eq!(
        verify(
            &Evidence::SevSnp(turin.clone()),
            &snp_report_data(),
            &Policy::default(),
            0
        ),
        Err(AttestError::SnpReportSignatureInvalid)
    );
    // And under the product the report claims, its chain does not verify.
    let milan = SevSnpEvidence {
        product: SnpProduct::Milan,
        ..turin
    };
    assert!(matches!(
        verify(
            &Evidence::SevSnp(milan),
            &snp_report_data(),
            &Policy::default(),
            0
        ),
        Err(AttestError::SnpVcekNotSignedByAsk { .. })
    ));
}

#[test]
fn snp_report_for_another_key_is_refused() {
    assert!(matches!(
        verify(
            &Evidence::SevSnp(snp_evidence()),
            &another_relays_binding(),
            &Policy::default(),
            0
        ),
        Err(AttestError::ReportDataMismatch {
            platform: Platform::SevSnp,
            ..
        })
    ));
}

#[test]
fn snp_outdated_tcb_is_refused_below_the_minimum_and_accepted_at_it() {
    // The sample's REPORTED_TCB: bootloader 3, tee 0, snp 8, microcode 115.
    let at = SnpTcb {
        bootloader: 3,
        tee: 0,
        snp: 8,
        microcode: 115,
        fmc: 0,
    };
    let policy = |milan| {
        let mut policy = Policy::default();
        policy.sev_snp.minimum_tcb.milan = milan;
        policy
    };
    let evidence = Evidence::SevSnp(snp_evidence());
    assert_eq!(
        verify(
            &evidence,
            &snp_report_data(),
            &policy(SnpTcb { snp: 9, ..at }),
            0
        ),
        Err(AttestError::SnpTcbBelowMinimum {
            product: SnpProduct::Milan,
            component: "snp",
            minimum: 9,
            found: 8
        })
    );
    assert_eq!(
        verify(
            &evidence,
            &snp_report_data(),
            &policy(SnpTcb {
                microcode: 116,
                ..at
            }),
            0
        ),
        Err(AttestError::SnpTcbBelowMinimum {
            product: SnpProduct::Milan,
            component: "microcode",
            minimum: 116,
            found: 115
        })
    );
    verify(&evidence, &snp_report_data(), &policy(at), 0).expect("at the minimum");
    // Another product's minimum does not apply to Milan.
    let mut genoa_only = Policy::default();
    genoa_only.sev_snp.minimum_tcb.genoa = SnpTcb { snp: 50, ..at };
    verify(&evidence, &snp_report_data(), &genoa_only, 0).expect("Genoa's minimum");
}

#[test]
fn snp_disabled_by_policy_is_refused() {
    let mut policy = Policy::default();
    policy.sev_snp.enabled = false;
    assert_eq!(
        verify(
            &Evidence::SevSnp(snp_evidence()),
            &snp_report_data(),
            &policy,
            0
        ),
        Err(AttestError::PlatformDisabled {
            platform: Platform::SevSnp
        })
    );
}

#[test]
fn snp_garbage_certificates_are_refused() {
    let evidence = SevSnpEvidence {
        vcek_der: b"not a certificate".to_vec(),
        ..snp_evidence()
    };
    assert!(matches!(
        verify(
            &Evidence::SevSnp(evidence),
            &snp_report_data(),
            &Policy::default(),
            0
        ),
        Err(AttestError::SnpCertificateMalformed { cert: "VCEK", .. })
    ));
}

// ---------------------------------------------------------------- DCAP

#[test]
fn the_real_tdx_quote_verifies() {
    let verified = verify(
        &Evidence::Tdx(dcap(TDX_QUOTE, TDX_COLLATERAL)),
        &tdx_report_data(),
        &Policy::default(),
        SAMPLE_NOW,
    )
    .expect("the sample verifies under the default policy");
    assert_eq!(verified.platform, Platform::Tdx);
    assert!(matches!(
        verified.measurement,
        Measurement::TdxMrtdRtmr012(_)
    ));
    let registers = verified.tdx_registers.expect("TDX registers");
    assert_eq!(&registers.mrtd[..], &TDX_QUOTE[48 + 136..48 + 184]);
    assert!(verified.tcb.contains("UpToDate"), "{}", verified.tcb);
}

#[test]
fn the_real_sgx_quote_verifies_when_its_status_and_advisories_are_accepted() {
    let evidence = Evidence::Sgx(dcap(SGX_QUOTE, SGX_COLLATERAL));
    let verified = verify(
        &evidence,
        &sgx_report_data(),
        &sgx_sample_policy(),
        SAMPLE_NOW,
    )
    .expect("the sample verifies under a policy that accepts it");
    assert_eq!(verified.platform, Platform::Sgx);
    let mr_enclave: [u8; 32] = SGX_QUOTE[48 + 64..48 + 96].try_into().expect("32 bytes");
    assert_eq!(verified.measurement, Measurement::SgxMrEnclave(mr_enclave));
    assert_eq!(verified.advisories, ["INTEL-SA-00289", "INTEL-SA-00615"]);

    // The default policy accepts neither its status nor its advisories.
    assert_eq!(
        verify(
            &evidence,
            &sgx_report_data(),
            &Policy::default(),
            SAMPLE_NOW
        ),
        Err(AttestError::DcapTcbStatusNotAccepted {
            platform: Platform::Sgx,
            accepted: vec![DcapTcbStatus::UpToDate, DcapTcbStatus::SWHardeningNeeded],
            found: DcapTcbStatus::ConfigurationAndSWHardeningNeeded,
        })
    );
}

#[test]
fn dcap_tcb_not_up_to_date_is_refused_unless_the_allow_list_admits_it() {
    // The SGX sample's TCB needs configuration and software hardening
    // (INTEL-SA-00289, INTEL-SA-00615). Admitting the status alone is not
    // enough: each advisory must be listed too.
    let evidence = Evidence::Sgx(dcap(SGX_QUOTE, SGX_COLLATERAL));
    let mut policy = Policy::default();
    policy
        .sgx
        .accepted_statuses
        .push(DcapTcbStatus::ConfigurationAndSWHardeningNeeded);
    assert_eq!(
        verify(&evidence, &sgx_report_data(), &policy, SAMPLE_NOW),
        Err(AttestError::DcapAdvisoryNotAccepted {
            platform: Platform::Sgx,
            accepted: vec![],
            advisory: "INTEL-SA-00289".into(),
        })
    );
    // The TDX policy does not apply to SGX evidence.
    let mut tdx_only = sgx_sample_policy();
    tdx_only.tdx = tdx_only.sgx.clone();
    tdx_only.sgx = DcapPolicy::default();
    assert!(matches!(
        verify(&evidence, &sgx_report_data(), &tdx_only, SAMPLE_NOW),
        Err(AttestError::DcapTcbStatusNotAccepted { .. })
    ));
    verify(
        &evidence,
        &sgx_report_data(),
        &sgx_sample_policy(),
        SAMPLE_NOW,
    )
    .expect("admitted");
}

#[test]
fn dcap_advisory_not_in_the_allow_list_is_refused() {
    let mut policy = sgx_sample_policy();
    policy.sgx.accepted_advisories = vec!["INTEL-SA-00289".into()];
    assert_eq!(
        verify(
            &Evidence::Sgx(dcap(SGX_QUOTE, SGX_COLLATERAL)),
            &sgx_report_data(),
            &policy,
            SAMPLE_NOW
        ),
        Err(AttestError::DcapAdvisoryNotAccepted {
            platform: Platform::Sgx,
            accepted: vec!["INTEL-SA-00289".into()],
            advisory: "INTEL-SA-00615".into(),
        })
    );
}

#[test]
fn dcap_flipped_signature_byte_is_refused() {
    for (platform, quote, json, at, expected, policy) in [
        (
            Platform::Sgx,
            SGX_QUOTE,
            SGX_COLLATERAL,
            SGX_QUOTE_SIGNATURE_AT,
            sgx_report_data(),
            sgx_sample_policy(),
        ),
        (
            Platform::Tdx,
            TDX_QUOTE,
            TDX_COLLATERAL,
            TDX_QUOTE_SIGNATURE_AT,
            tdx_report_data(),
            Policy::default(),
        ),
    ] {
        for offset in [0, 31, 63] {
            let mut evidence = dcap(quote, json);
            evidence.quote[at + offset] ^= 0x01;
            let evidence = if platform == Platform::Sgx {
                Evidence::Sgx(evidence)
            } else {
                Evidence::Tdx(evidence)
            };
            let result = verify(&evidence, &expected, &policy, SAMPLE_NOW);
            assert!(
                matches!(&result, Err(AttestError::DcapQuoteRejected { platform: p, .. }) if *p == platform),
                "{platform} byte {offset}: {result:?}"
            );
        }
    }
}

/// TDX evidence that must be refused by dcap-qvl's checks, under a policy
/// that accepts the unchanged sample.
fn assert_tdx_quote_rejected(evidence: DcapEvidence, now: u64) {
    let result = verify(
        &Evidence::Tdx(evidence),
        &tdx_report_data(),
        &Policy::default(),
        now,
    );
    assert!(
        matches!(
            result,
            Err(AttestError::DcapQuoteRejected {
                platform: Platform::Tdx,
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn dcap_changed_report_body_is_refused() {
    let mut evidence = dcap(TDX_QUOTE, TDX_COLLATERAL);
    evidence.quote[48 + 136] ^= 0x01; // MRTD
    assert_tdx_quote_rejected(evidence, SAMPLE_NOW);
}

#[test]
fn dcap_wrong_chain_is_refused() {
    // A PCK certificate changed inside the quote's certification data.
    let mut evidence = dcap(TDX_QUOTE, TDX_COLLATERAL);
    let pem_at = find(&evidence.quote, b"-----BEGIN CERTIFICATE-----").expect("the PCK chain");
    let body = pem_at + 28 + 64 * 10;
    evidence.quote[body] = if evidence.quote[body] == b'A' {
        b'B'
    } else {
        b'A'
    };
    assert_tdx_quote_rejected(evidence, SAMPLE_NOW);

    // Collateral (TCB info, QE identity, CRLs) of another platform.
    let evidence = DcapEvidence {
        quote: TDX_QUOTE.to_vec(),
        collateral: collateral(SGX_COLLATERAL),
    };
    assert_tdx_quote_rejected(evidence, SAMPLE_NOW);

    // Collateral whose TCB info signature is not Intel's.
    let mut evidence = dcap(TDX_QUOTE, TDX_COLLATERAL);
    evidence.collateral.tcb_info_signature[5] ^= 1;
    assert_tdx_quote_rejected(evidence, SAMPLE_NOW);
}

#[test]
fn dcap_expired_collateral_is_refused() {
    assert_tdx_quote_rejected(dcap(TDX_QUOTE, TDX_COLLATERAL), AFTER_SAMPLE_EXPIRY);
}

#[test]
fn dcap_report_for_another_key_is_refused() {
    assert!(matches!(
        verify(
            &Evidence::Tdx(dcap(TDX_QUOTE, TDX_COLLATERAL)),
            &another_relays_binding(),
            &Policy::default(),
            SAMPLE_NOW
        ),
        Err(AttestError::ReportDataMismatch {
            platform: Platform::Tdx,
            ..
        })
    ));
    assert!(matches!(
        verify(
            &Evidence::Sgx(dcap(SGX_QUOTE, SGX_COLLATERAL)),
            &another_relays_binding(),
            &sgx_sample_policy(),
            SAMPLE_NOW
        ),
        Err(AttestError::ReportDataMismatch {
            platform: Platform::Sgx,
            ..
        })
    ));
}

#[test]
fn dcap_quote_of_the_other_platform_is_refused() {
    let mut policy = sgx_sample_policy();
    policy.tdx = policy.sgx.clone();
    assert_eq!(
        verify(
            &Evidence::Tdx(dcap(SGX_QUOTE, SGX_COLLATERAL)),
            &sgx_report_data(),
            &policy,
            SAMPLE_NOW
        ),
        Err(AttestError::DcapWrongQuoteType {
            expected: Platform::Tdx,
            found: Platform::Sgx
        })
    );
}

#[test]
fn dcap_disabled_by_policy_is_refused() {
    let mut policy = Policy::default();
    policy.tdx.enabled = false;
    assert_eq!(
        verify(
            &Evidence::Tdx(dcap(TDX_QUOTE, TDX_COLLATERAL)),
            &tdx_report_data(),
            &policy,
            SAMPLE_NOW
        ),
        Err(AttestError::PlatformDisabled {
            platform: Platform::Tdx
        })
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------- encoding

#[test]
#[allow(clippy::print_stdout)] // The sizes MAX_EVIDENCE_LEN's documentation quotes.
fn real_evidence_round_trips_and_fits_the_bound() {
    let ask = sev::certs::snp::builtin::milan::ask()
        .and_then(|c| c.to_der())
        .expect("the built-in ASK");
    for (name, evidence) in [
        ("sev-snp", Evidence::SevSnp(snp_evidence())),
        (
            "sev-snp with ASK",
            Evidence::SevSnp(SevSnpEvidence {
                ask_der: Some(ask),
                ..snp_evidence()
            }),
        ),
        ("sgx", Evidence::Sgx(dcap(SGX_QUOTE, SGX_COLLATERAL))),
        ("tdx", Evidence::Tdx(dcap(TDX_QUOTE, TDX_COLLATERAL))),
    ] {
        let bytes = evidence.to_bytes();
        println!("evidence_sizes: {name}: {} bytes encoded", bytes.len());
        assert!(
            bytes.len() * 3 < openrelay_attest::MAX_EVIDENCE_LEN,
            "{name}"
        );
        assert_eq!(Evidence::from_bytes(&bytes), Ok(evidence), "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any change to the real SEV-SNP evidence's bytes (report, VCEK,
    /// product) either fails to decode or fails to verify: no byte of it
    /// is unchecked.
    #[test]
    fn changed_real_snp_evidence_never_verifies(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1..=255u8), 1..4)
    ) {
        let mut bytes = Evidence::SevSnp(snp_evidence()).to_bytes();
        let len = bytes.len();
        for (at, x) in flips {
            bytes[at.index(len)] ^= x;
        }
        if let Ok(evidence) = Evidence::from_bytes(&bytes) {
            prop_assert!(verify(&evidence, &snp_report_data(), &Policy::default(), 0).is_err());
        }
    }
}
