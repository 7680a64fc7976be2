//! Why a piece of evidence was refused: one variant per reason, each with
//! what was expected and what was found.

use crate::evidence::Platform;
use crate::snp::SnpProduct;

/// Lowercase hex of `bytes`, for error messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Decoding [`crate::Evidence`] from untrusted bytes failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceDecodeError {
    /// Longer than [`crate::MAX_EVIDENCE_LEN`]: refused before parsing.
    #[error("evidence is {found} bytes, more than the {max} allowed")]
    TooLong {
        /// The bound.
        max: usize,
        /// The length offered.
        found: usize,
    },
    /// Fewer bytes than the header or a declared part needs.
    #[error("evidence is truncated: {needed} more bytes needed at offset {offset}")]
    Truncated {
        /// Where the missing bytes start.
        offset: usize,
        /// How many more bytes the encoding declares.
        needed: usize,
    },
    /// A format version this code does not know.
    #[error("evidence format version {found} is not supported (expected {expected})")]
    UnsupportedVersion {
        /// The version this code writes and reads.
        expected: u8,
        /// The version byte found.
        found: u8,
    },
    /// A platform tag this code does not know.
    #[error("unknown attestation platform tag {found}")]
    UnknownPlatform {
        /// The tag byte found.
        found: u8,
    },
    /// An SEV-SNP product tag this code does not know.
    #[error("unknown SEV-SNP product tag {found}")]
    UnknownSnpProduct {
        /// The tag byte found.
        found: u8,
    },
    /// The platform's evidence has another number of parts.
    #[error("{platform} evidence has {found} parts, expected {expected}")]
    WrongPartCount {
        /// The platform named in the header.
        platform: Platform,
        /// Parts this platform's evidence has.
        expected: usize,
        /// Parts found.
        found: usize,
    },
    /// A fixed-size part has another size.
    #[error("{platform} evidence part `{part}` is {found} bytes, expected {expected}")]
    WrongPartLength {
        /// The platform named in the header.
        platform: Platform,
        /// Which part.
        part: &'static str,
        /// Its fixed size.
        expected: usize,
        /// The size found.
        found: usize,
    },
    /// A text part (PEM chains, JSON collateral) is not UTF-8.
    #[error("{platform} evidence part `{part}` is not UTF-8")]
    NotUtf8 {
        /// The platform named in the header.
        platform: Platform,
        /// Which part.
        part: &'static str,
    },
}

/// Why verification refused a piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestError {
    /// The policy does not accept this platform at all.
    #[error("{platform} attestation is disabled by the policy")]
    PlatformDisabled {
        /// The evidence's platform.
        platform: Platform,
    },
    /// The report data is not the binding the verifier expected: the report
    /// was made for another relay, another pinned key or another freshness
    /// value.
    #[error(
        "{platform} report data {} does not bind this relay's key and freshness value (expected {})",
        hex(.found.as_slice()),
        hex(.expected.as_slice())
    )]
    ReportDataMismatch {
        /// The evidence's platform.
        platform: Platform,
        /// [`crate::report_data`] of the expected binding.
        expected: Box<[u8; 64]>,
        /// The report data the TEE signed.
        found: Box<[u8; 64]>,
    },

    // --- AMD SEV-SNP ---
    /// The 1184-byte report does not parse (unknown CPU family, masked chip id).
    #[error("SEV-SNP report does not parse: {reason}")]
    SnpReportMalformed {
        /// The parser's reason.
        reason: String,
    },
    /// A report version outside the ones this code checks.
    #[error("SEV-SNP report version {found} is not supported (supported: {min}..={max})")]
    SnpReportVersionUnsupported {
        /// Lowest supported version.
        min: u32,
        /// Highest supported version.
        max: u32,
        /// The version found.
        found: u32,
    },
    /// The report claims a signature algorithm other than ECDSA P-384 with SHA-384.
    #[error("SEV-SNP report signature algorithm {found} is not ECDSA P-384/SHA-384 ({expected})")]
    SnpSignatureAlgorithmUnsupported {
        /// 1: ECDSA P-384 with SHA-384.
        expected: u32,
        /// The algorithm found.
        found: u32,
    },
    /// The report says it was signed by a key other than the VCEK (a VLEK, or none).
    #[error("SEV-SNP report is signed by key kind {found}, expected the VCEK ({expected})")]
    SnpSigningKeyNotVcek {
        /// 0: VCEK.
        expected: u32,
        /// The SIGNING_KEY field found.
        found: u32,
    },
    /// The ARK compiled into `sev` is not the one pinned in this crate.
    #[error("the built-in {product} ARK has SHA-256 {}, not the pinned {}", hex(.found), hex(.expected))]
    SnpArkNotPinned {
        /// The product.
        product: SnpProduct,
        /// The pinned fingerprint.
        expected: [u8; 32],
        /// The fingerprint of the certificate in use.
        found: [u8; 32],
    },
    /// A certificate of the chain does not parse.
    #[error("SEV-SNP {cert} certificate does not parse: {reason}")]
    SnpCertificateMalformed {
        /// "ARK", "ASK" or "VCEK".
        cert: &'static str,
        /// The parser's reason.
        reason: String,
    },
    /// The ASK is not signed by the product's pinned ARK (an ASK of another
    /// product, or forged).
    #[error("SEV-SNP ASK is not signed by the pinned {product} ARK: {reason}")]
    SnpAskNotSignedByArk {
        /// The product named in the evidence.
        product: SnpProduct,
        /// The verifier's reason.
        reason: String,
    },
    /// The VCEK is not signed by the ASK (a VCEK of another product, or forged).
    #[error("SEV-SNP VCEK is not signed by the {product} ASK: {reason}")]
    SnpVcekNotSignedByAsk {
        /// The product named in the evidence.
        product: SnpProduct,
        /// The verifier's reason.
        reason: String,
    },
    /// The report's signature does not verify under the VCEK.
    #[error("SEV-SNP report signature does not verify under the VCEK")]
    SnpReportSignatureInvalid,
    /// The VCEK lacks an extension AMD's KDS always includes.
    #[error("SEV-SNP VCEK lacks the {extension} extension ({oid})")]
    SnpVcekExtensionMissing {
        /// The extension's name in AMD's VCEK specification.
        extension: &'static str,
        /// Its OID.
        oid: &'static str,
    },
    /// The VCEK is for another chip than the one that made the report.
    #[error("SEV-SNP VCEK is for chip {}, the report is from chip {}", hex(.vcek), hex(.report))]
    SnpChipIdMismatch {
        /// hwID in the VCEK.
        vcek: Vec<u8>,
        /// CHIP_ID in the report.
        report: Vec<u8>,
    },
    /// The VCEK was derived for another TCB than the report's REPORTED_TCB.
    #[error(
        "SEV-SNP VCEK certifies {component} SVN {vcek}, the report's REPORTED_TCB says {report}"
    )]
    SnpTcbMismatch {
        /// Which TCB component.
        component: &'static str,
        /// The VCEK's value.
        vcek: u8,
        /// The report's value.
        report: u8,
    },
    /// The guest policy allows debugging: the host can read the guest's memory.
    #[error("SEV-SNP guest policy allows debugging (the host can read and change guest memory)")]
    SnpDebugAllowed,
    /// The report was requested from a less privileged VMPL than the policy allows.
    #[error("SEV-SNP report comes from VMPL {found}, the policy accepts VMPL {max} or lower")]
    SnpVmplNotAccepted {
        /// The highest (least privileged) VMPL accepted.
        max: u32,
        /// The VMPL found.
        found: u32,
    },
    /// A TCB component is older than the policy's minimum for the product.
    #[error("SEV-SNP {product} {component} SVN {found} is below the policy's minimum {minimum}")]
    SnpTcbBelowMinimum {
        /// The product.
        product: SnpProduct,
        /// Which TCB component.
        component: &'static str,
        /// The policy's minimum.
        minimum: u8,
        /// The report's REPORTED_TCB value.
        found: u8,
    },

    // --- Intel DCAP (TDX, SGX) ---
    /// dcap-qvl refused the quote: a bad signature, a broken or revoked
    /// certificate chain, collateral that does not verify or has expired,
    /// a debug TD or enclave.
    #[error("{platform} quote does not verify: {reason}")]
    DcapQuoteRejected {
        /// The evidence's platform.
        platform: Platform,
        /// dcap-qvl's reason.
        reason: String,
    },
    /// The quote is for another platform than the evidence says (an SGX
    /// quote presented as TDX or the reverse).
    #[error("evidence says {expected} but the quote is a {found} quote")]
    DcapWrongQuoteType {
        /// The evidence's platform.
        expected: Platform,
        /// The quote's.
        found: Platform,
    },
    /// The platform's TCB status is not in the policy's accepted statuses.
    #[error("{platform} TCB status {found} is not accepted (accepted: {accepted:?})")]
    DcapTcbStatusNotAccepted {
        /// The evidence's platform.
        platform: Platform,
        /// The policy's accepted statuses.
        accepted: Vec<crate::DcapTcbStatus>,
        /// The status found.
        found: crate::DcapTcbStatus,
    },
    /// The TCB level carries an advisory the policy has not accepted.
    #[error(
        "{platform} TCB has advisory {advisory}, which the policy does not accept (accepted: {accepted:?})"
    )]
    DcapAdvisoryNotAccepted {
        /// The evidence's platform.
        platform: Platform,
        /// The policy's accepted advisory IDs.
        accepted: Vec<String>,
        /// The advisory found.
        advisory: String,
    },

    // --- Insecure simulated TEE ---
    /// No insecure simulated root in the policy: the default, everywhere but the devnet.
    #[error(
        "insecure-simulated evidence proves nothing (any holder of the devnet key makes it) and the policy names no insecure_simulated_root"
    )]
    InsecureSimulatedNotTrusted,
    /// Signed by another simulated-TEE key than the policy's.
    #[error("insecure-simulated evidence is from key {}, the policy trusts {}", hex(.found), hex(.trusted))]
    InsecureSimulatedWrongKey {
        /// The policy's insecure_simulated_root.
        trusted: [u8; 32],
        /// The key the evidence names.
        found: [u8; 32],
    },
    /// The signature does not verify (measurement or report data changed).
    #[error("insecure-simulated evidence signature does not verify")]
    InsecureSimulatedSignatureInvalid,
}
