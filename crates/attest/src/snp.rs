//! AMD SEV-SNP: the attestation report (SEV-SNP ABI specification 56860,
//! "ATTESTATION_REPORT Structure"), signed by the chip's VCEK, whose
//! certificate AMD's KDS issues under the product's ASK and ARK (VCEK
//! specification 57230).

use std::fmt;

use sev::certs::snp::{Certificate, Verifiable, builtin};
use sev::firmware::guest::AttestationReport;
use sev::firmware::host::TcbVersion;
use sev::parser::ByteParser;
use sha2::{Digest, Sha256};
use x509_cert::der::{Decode, asn1::OctetString};

use crate::error::{AttestError, EvidenceDecodeError};
use crate::evidence::{Platform, SevSnpEvidence};
use crate::policy::{SnpPolicy, SnpTcb};
use crate::verified::{Measurement, Verified};

/// The report's size for every version this code reads.
pub const SNP_REPORT_LEN: usize = 1184;
/// The signature covers bytes 0..0x2A0; the signature starts there.
const SIGNED_LEN: usize = 0x2A0;
/// ECDSA r and s, each 72 bytes little-endian, of which P-384 uses 48.
const SIG_COMPONENT_LEN: usize = 72;
const P384_SCALAR_LEN: usize = 48;
/// SIG_ALGO 1: ECDSA P-384 with SHA-384.
const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
/// KEY_INFO.SIGNING_KEY 0: the VCEK.
const SIGNING_KEY_VCEK: u32 = 0;
/// Report versions whose layout this code (and `sev`) knows.
const MIN_REPORT_VERSION: u32 = 2;
const MAX_REPORT_VERSION: u32 = 5;

/// An AMD EPYC generation with SEV-SNP, each with its own ARK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnpProduct {
    /// EPYC 7003.
    Milan,
    /// EPYC 9004.
    Genoa,
    /// EPYC 9005.
    Turin,
}

impl fmt::Display for SnpProduct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Milan => "Milan",
            Self::Genoa => "Genoa",
            Self::Turin => "Turin",
        })
    }
}

impl SnpProduct {
    pub(crate) fn tag(self) -> u8 {
        match self {
            Self::Milan => 1,
            Self::Genoa => 2,
            Self::Turin => 3,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Result<Self, EvidenceDecodeError> {
        Ok(match tag {
            1 => Self::Milan,
            2 => Self::Genoa,
            3 => Self::Turin,
            found => return Err(EvidenceDecodeError::UnknownSnpProduct { found }),
        })
    }

    /// The ARK and ASK AMD publishes (`sev`'s copies, PEM).
    fn builtin_pem(self) -> (&'static [u8], &'static [u8]) {
        match self {
            Self::Milan => (builtin::milan::ARK, builtin::milan::ASK),
            Self::Genoa => (builtin::genoa::ARK, builtin::genoa::ASK),
            Self::Turin => (builtin::turin::ARK, builtin::turin::ASK),
        }
    }

    /// SHA-256 of the ARK's DER, pinned here so that a change to `sev`'s
    /// built-in roots fails closed instead of silently trusting a new root.
    /// Same as https://kdsintf.amd.com/vcek/v1/{Milan,Genoa,Turin}/cert_chain.
    fn pinned_ark_sha256(self) -> [u8; 32] {
        match self {
            Self::Milan => ARK_MILAN_SHA256,
            Self::Genoa => ARK_GENOA_SHA256,
            Self::Turin => ARK_TURIN_SHA256,
        }
    }

    fn minimum_tcb(self, policy: &SnpPolicy) -> SnpTcb {
        match self {
            Self::Milan => policy.minimum_tcb.milan,
            Self::Genoa => policy.minimum_tcb.genoa,
            Self::Turin => policy.minimum_tcb.turin,
        }
    }
}

const ARK_MILAN_SHA256: [u8; 32] = [
    105, 208, 99, 180, 83, 68, 210, 106, 46, 148, 225, 244, 33, 13, 228, 158, 245, 85, 48, 130,
    135, 212, 193, 116, 68, 92, 149, 99, 154, 84, 11, 205,
];
const ARK_GENOA_SHA256: [u8; 32] = [
    76, 101, 152, 209, 156, 24, 113, 156, 93, 253, 74, 125, 51, 95, 103, 78, 91, 254, 29, 143, 128,
    12, 234, 44, 242, 112, 193, 13, 16, 61, 178, 241,
];
const ARK_TURIN_SHA256: [u8; 32] = [
    31, 8, 65, 97, 164, 75, 182, 217, 55, 120, 169, 4, 135, 125, 72, 25, 202, 250, 93, 5, 239, 65,
    147, 178, 222, 217, 221, 156, 115, 221, 63, 106,
];

/// VCEK extensions (VCEK specification 57230, table "VCEK Certificate Extensions").
const OID_BL_SPL: &str = "1.3.6.1.4.1.3704.1.3.1";
const OID_TEE_SPL: &str = "1.3.6.1.4.1.3704.1.3.2";
const OID_SNP_SPL: &str = "1.3.6.1.4.1.3704.1.3.3";
const OID_UCODE_SPL: &str = "1.3.6.1.4.1.3704.1.3.8";
const OID_FMC_SPL: &str = "1.3.6.1.4.1.3704.1.3.9";
const OID_HW_ID: &str = "1.3.6.1.4.1.3704.1.4";

fn certificate<T>(cert: &'static str, parsed: std::io::Result<T>) -> Result<T, AttestError> {
    parsed.map_err(|e| AttestError::SnpCertificateMalformed {
        cert,
        reason: e.to_string(),
    })
}

/// The ARK in `pem`, if it is the one pinned for `product`.
fn pinned_ark(product: SnpProduct, pem: &[u8]) -> Result<Certificate, AttestError> {
    let ark = certificate("ARK", Certificate::from_pem(pem))?;
    let found: [u8; 32] = Sha256::digest(certificate("ARK", ark.to_der())?).into();
    if found != product.pinned_ark_sha256() {
        return Err(AttestError::SnpArkNotPinned {
            product,
            expected: product.pinned_ark_sha256(),
            found,
        });
    }
    Ok(ark)
}

pub(crate) fn verify(
    evidence: &SevSnpEvidence,
    expected_report_data: &[u8; 64],
    policy: &SnpPolicy,
) -> Result<Verified, AttestError> {
    let product = evidence.product;
    let report = AttestationReport::from_bytes(&evidence.report[..]).map_err(|e| {
        AttestError::SnpReportMalformed {
            reason: e.to_string(),
        }
    })?;
    if !(MIN_REPORT_VERSION..=MAX_REPORT_VERSION).contains(&report.version) {
        return Err(AttestError::SnpReportVersionUnsupported {
            min: MIN_REPORT_VERSION,
            max: MAX_REPORT_VERSION,
            found: report.version,
        });
    }
    if report.sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(AttestError::SnpSignatureAlgorithmUnsupported {
            expected: SIG_ALGO_ECDSA_P384_SHA384,
            found: report.sig_algo,
        });
    }
    if report.key_info.signing_key() != SIGNING_KEY_VCEK {
        return Err(AttestError::SnpSigningKeyNotVcek {
            expected: SIGNING_KEY_VCEK,
            found: report.key_info.signing_key(),
        });
    }

    // The chain: the pinned ARK signs itself and the ASK; the ASK signs the VCEK.
    let (ark_pem, builtin_ask_pem) = product.builtin_pem();
    let ark = pinned_ark(product, ark_pem)?;
    let ask = match &evidence.ask_der {
        Some(der) => certificate("ASK", Certificate::from_der(der))?,
        None => certificate("ASK", Certificate::from_pem(builtin_ask_pem))?,
    };
    let vcek = certificate("VCEK", Certificate::from_der(&evidence.vcek_der))?;
    (&ark, &ark)
        .verify()
        .and_then(|()| (&ark, &ask).verify())
        .map_err(|e| AttestError::SnpAskNotSignedByArk {
            product,
            reason: e.to_string(),
        })?;
    (&ask, &vcek)
        .verify()
        .map_err(|e| AttestError::SnpVcekNotSignedByAsk {
            product,
            reason: e.to_string(),
        })?;

    verify_report_signature(&evidence.report, vcek.public_key_sec1())?;
    if let Some(der) = &evidence.ask_der {
        check_outer_algorithm("ASK", &parse_x509("ASK", der)?)?;
    }
    check_vcek_matches_report(&evidence.vcek_der, &report)?;

    check_guest(product, &report, policy)?;

    if &report.report_data != expected_report_data {
        return Err(AttestError::ReportDataMismatch {
            platform: Platform::SevSnp,
            expected: Box::new(*expected_report_data),
            found: Box::new(report.report_data),
        });
    }
    Ok(Verified {
        platform: Platform::SevSnp,
        measurement: Measurement::SnpLaunchDigest(report.measurement),
        tcb: format!(
            "AMD SEV-SNP {product}, report version {}, reported TCB {}",
            report.version,
            tcb(&report.reported_tcb)
        ),
        advisories: Vec::new(),
        tdx_registers: None,
    })
}

/// ECDSA P-384/SHA-384 over the report's first 0x2A0 bytes exactly as the
/// firmware wrote them (not a re-encoding of the parsed fields).
fn verify_report_signature(
    report: &[u8; SNP_REPORT_LEN],
    vcek_sec1: &[u8],
) -> Result<(), AttestError> {
    let (signed, signature) = report.split_at(SIGNED_LEN);
    let (r, rest) = signature.split_at(SIG_COMPONENT_LEN);
    let (s, reserved) = rest.split_at(SIG_COMPONENT_LEN);
    // The rest of the signature block is reserved (zero): refusing anything
    // else keeps the unsigned bytes of the evidence from varying.
    if reserved.iter().any(|&b| b != 0) {
        return Err(AttestError::SnpReportSignatureInvalid);
    }
    // Little-endian and zero-padded to 72 bytes; ring wants r || s big-endian.
    let mut fixed = [0u8; 2 * P384_SCALAR_LEN];
    for (component, out) in [r, s]
        .into_iter()
        .zip(fixed.chunks_exact_mut(P384_SCALAR_LEN))
    {
        if component[P384_SCALAR_LEN..].iter().any(|&b| b != 0) {
            return Err(AttestError::SnpReportSignatureInvalid);
        }
        out.copy_from_slice(&component[..P384_SCALAR_LEN]);
        out.reverse();
    }
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P384_SHA384_FIXED, vcek_sec1)
        .verify(signed, &fixed)
        .map_err(|_| AttestError::SnpReportSignatureInvalid)
}

fn tcb(version: &TcbVersion) -> SnpTcb {
    SnpTcb {
        bootloader: version.bootloader,
        tee: version.tee,
        snp: version.snp,
        microcode: version.microcode,
        fmc: version.fmc.unwrap_or(0),
    }
}

fn components(tcb: &SnpTcb) -> [(&'static str, &'static str, u8); 5] {
    [
        ("bootloader", OID_BL_SPL, tcb.bootloader),
        ("tee", OID_TEE_SPL, tcb.tee),
        ("snp", OID_SNP_SPL, tcb.snp),
        ("microcode", OID_UCODE_SPL, tcb.microcode),
        ("fmc", OID_FMC_SPL, tcb.fmc),
    ]
}

/// The VCEK is derived from the chip's secret and the TCB; its extensions
/// say which chip and which TCB. They must be the report's, or a VCEK
/// issued for an old, vulnerable TCB (or another chip) vouches for it.
fn parse_x509(cert: &'static str, der: &[u8]) -> Result<x509_cert::Certificate, AttestError> {
    x509_cert::Certificate::from_der(der).map_err(|e| AttestError::SnpCertificateMalformed {
        cert,
        reason: e.to_string(),
    })
}

/// RFC 5280 §4.1.1.2: a certificate's outer signature algorithm must be
/// the one its signed part names. It lies outside what the issuer signed,
/// so without this its bytes could be changed at will and the evidence
/// would still verify (the property test
/// `changed_real_snp_evidence_never_verifies` found a flipped tag in the
/// VCEK's RSASSA-PSS parameters).
fn check_outer_algorithm(
    cert: &'static str,
    parsed: &x509_cert::Certificate,
) -> Result<(), AttestError> {
    if parsed.signature_algorithm != parsed.tbs_certificate.signature {
        return Err(AttestError::SnpCertificateMalformed {
            cert,
            reason: "its signature algorithm differs from the one its signed part names".to_owned(),
        });
    }
    Ok(())
}

fn check_vcek_matches_report(
    vcek_der: &[u8],
    report: &AttestationReport,
) -> Result<(), AttestError> {
    let cert = parse_x509("VCEK", vcek_der)?;
    check_outer_algorithm("VCEK", &cert)?;
    let extensions = cert.tbs_certificate.extensions.unwrap_or_default();
    let extension = |name: &'static str, oid: &'static str| {
        extensions
            .iter()
            .find(|e| e.extn_id.to_string() == oid)
            .map(|e| e.extn_value.as_bytes())
            .ok_or(AttestError::SnpVcekExtensionMissing {
                extension: name,
                oid,
            })
    };

    // hwID: the raw chip id (Milan, Genoa: 64 bytes; Turin: its first 8).
    let hw_id = extension("hwID", OID_HW_ID)?;
    let hw_id = match OctetString::from_der(hw_id) {
        Ok(inner) if hw_id.len() != report.chip_id.len() => inner.as_bytes().to_vec(),
        _ => hw_id.to_vec(),
    };
    let (head, tail) = report
        .chip_id
        .split_at(hw_id.len().min(report.chip_id.len()));
    if hw_id.is_empty() || hw_id != head || tail.iter().any(|&b| b != 0) {
        return Err(AttestError::SnpChipIdMismatch {
            vcek: hw_id,
            report: report.chip_id.to_vec(),
        });
    }

    let reported = tcb(&report.reported_tcb);
    for (component, oid, report_svn) in components(&reported) {
        if component == "fmc" && report.reported_tcb.fmc.is_none() {
            continue;
        }
        let value = extension(component, oid)?;
        let vcek_svn = u8::from_der(value).map_err(|e| AttestError::SnpCertificateMalformed {
            cert: "VCEK",
            reason: format!("{component} SPL extension: {e}"),
        })?;
        if vcek_svn != report_svn {
            return Err(AttestError::SnpTcbMismatch {
                component,
                vcek: vcek_svn,
                report: report_svn,
            });
        }
    }
    Ok(())
}

/// The policy's checks of the (authenticated) report's fields.
fn check_guest(
    product: SnpProduct,
    report: &AttestationReport,
    policy: &SnpPolicy,
) -> Result<(), AttestError> {
    if report.policy.debug_allowed() {
        return Err(AttestError::SnpDebugAllowed);
    }
    if report.vmpl > policy.max_vmpl {
        return Err(AttestError::SnpVmplNotAccepted {
            max: policy.max_vmpl,
            found: report.vmpl,
        });
    }
    check_minimum_tcb(
        product,
        &tcb(&report.reported_tcb),
        &product.minimum_tcb(policy),
    )
}

fn check_minimum_tcb(
    product: SnpProduct,
    reported: &SnpTcb,
    minimum: &SnpTcb,
) -> Result<(), AttestError> {
    for ((component, _, found), (_, _, min)) in
        components(reported).into_iter().zip(components(minimum))
    {
        if found < min {
            return Err(AttestError::SnpTcbBelowMinimum {
                product,
                component,
                minimum: min,
                found,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The checks the real sample cannot reach with a valid signature (a
    //! changed field breaks it first), on the parsed sample report.
    use super::*;

    const REPORT: &[u8] = include_bytes!("../tests/vectors/sev/report_milan.bin");
    const VCEK: &[u8] = include_bytes!("../tests/vectors/sev/vcek_milan.der");

    fn report() -> AttestationReport {
        AttestationReport::from_bytes(REPORT).expect("the sample parses")
    }

    #[test]
    fn the_sample_vcek_matches_the_sample_report() {
        assert_eq!(check_vcek_matches_report(VCEK, &report()), Ok(()));
        assert_eq!(
            check_guest(SnpProduct::Milan, &report(), &SnpPolicy::default()),
            Ok(())
        );
    }

    #[test]
    fn each_products_built_in_ark_is_the_pinned_one_and_no_other() {
        let products = [SnpProduct::Milan, SnpProduct::Genoa, SnpProduct::Turin];
        for product in products {
            assert!(
                pinned_ark(product, product.builtin_pem().0).is_ok(),
                "{product}"
            );
            for other in products.into_iter().filter(|&p| p != product) {
                assert!(
                    matches!(
                        pinned_ark(product, other.builtin_pem().0),
                        Err(AttestError::SnpArkNotPinned { .. })
                    ),
                    "{other}'s ARK as {product}'s"
                );
            }
        }
    }

    #[test]
    fn a_vcek_for_another_chip_is_refused() {
        let mut report = report();
        report.chip_id[5] ^= 1;
        assert!(matches!(
            check_vcek_matches_report(VCEK, &report),
            Err(AttestError::SnpChipIdMismatch { .. })
        ));
    }

    #[test]
    fn a_vcek_for_another_tcb_is_refused() {
        let mut report = report();
        report.reported_tcb.snp += 1;
        assert_eq!(
            check_vcek_matches_report(VCEK, &report),
            Err(AttestError::SnpTcbMismatch {
                component: "snp",
                vcek: 8,
                report: 9
            })
        );
    }

    #[test]
    fn a_debuggable_guest_is_refused() {
        let mut report = report();
        report.policy.set_debug_allowed(true);
        assert_eq!(
            check_guest(SnpProduct::Milan, &report, &SnpPolicy::default()),
            Err(AttestError::SnpDebugAllowed)
        );
    }

    #[test]
    fn a_report_from_a_less_privileged_vmpl_is_refused_unless_allowed() {
        let mut report = report();
        report.vmpl = 2;
        assert_eq!(
            check_guest(SnpProduct::Milan, &report, &SnpPolicy::default()),
            Err(AttestError::SnpVmplNotAccepted { max: 0, found: 2 })
        );
        let policy = SnpPolicy {
            max_vmpl: 2,
            ..SnpPolicy::default()
        };
        assert_eq!(check_guest(SnpProduct::Milan, &report, &policy), Ok(()));
    }
}
