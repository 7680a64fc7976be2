//! The evidence a relay puts in its descriptor: our own compact binary
//! encoding, bounded, with a version byte and length-prefixed parts.
//!
//! ```text
//! evidence = version:u8 (1) || platform:u8 || part*
//! part     = length:u32 big-endian || bytes
//! ```
//!
//! Each platform has a fixed number of parts in a fixed order (below), so
//! every accepted byte string decodes to exactly one [`Evidence`] and
//! re-encodes to the same bytes. The whole is at most [`MAX_EVIDENCE_LEN`],
//! checked before anything else.

use std::fmt;

use dcap_qvl::QuoteCollateralV3;

use crate::error::EvidenceDecodeError;
use crate::snp::{SNP_REPORT_LEN, SnpProduct};

/// The version byte this code writes and reads.
pub const EVIDENCE_FORMAT_VERSION: u8 = 1;

/// The largest encoded evidence accepted.
///
/// Real sizes, encoded (`cargo test -p openrelay-attest --test vectors
/// real_evidence -- --nocapture` prints them for `tests/vectors/`):
/// - SEV-SNP: report 1,184 + VCEK 1,360 (DER): 2,563 bytes; 4,240 with
///   the Milan ASK (1,677) sent along. The ARK is never sent.
/// - SGX: quote 4,600 (with its PCK chain, certification data type 5) +
///   collateral 12,151 (two CRLs, TCB info and QE identity JSON with their
///   signatures and PEM issuer chains): 16,797 bytes.
/// - TDX: quote 5,006 + collateral 12,166: 17,218 bytes.
///
/// DCAP evidence is the largest, and Intel's TCB info grows by a few
/// hundred bytes with every TCB recovery (one level per recovery, kept for
/// years), and with TDX module identities: 64 KiB leaves more than three
/// times the largest sample while bounding what a directory of thousands
/// of relays costs to hold and check.
pub const MAX_EVIDENCE_LEN: usize = 64 * 1024;

/// The kind of trusted execution environment that produced evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Platform {
    /// AMD SEV-SNP confidential VM.
    SevSnp,
    /// Intel TDX trust domain.
    Tdx,
    /// Intel SGX enclave.
    Sgx,
    /// No TEE: an Ed25519 key stands in for one (devnet, CI). Proves nothing.
    InsecureSimulated,
}

impl Platform {
    /// The platform's byte in evidence and in directories' release
    /// measurements (`openrelay_directory::ReleaseMeasurement::platform`).
    pub fn code(self) -> u8 {
        match self {
            Self::SevSnp => 1,
            Self::Tdx => 2,
            Self::Sgx => 3,
            Self::InsecureSimulated => 0xF0,
        }
    }

    fn from_tag(tag: u8) -> Result<Self, EvidenceDecodeError> {
        Ok(match tag {
            1 => Self::SevSnp,
            2 => Self::Tdx,
            3 => Self::Sgx,
            0xF0 => Self::InsecureSimulated,
            found => return Err(EvidenceDecodeError::UnknownPlatform { found }),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SevSnp => "sev-snp",
            Self::Tdx => "tdx",
            Self::Sgx => "sgx",
            Self::InsecureSimulated => "insecure-simulated",
        })
    }
}

/// AMD SEV-SNP evidence. Parts: product (1 byte), report (1184 bytes),
/// VCEK (DER), ASK (DER; empty = the one AMD publishes for the product).
/// The ARK is never taken from evidence: it is pinned per product in code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SevSnpEvidence {
    /// The EPYC generation whose ARK roots the chain.
    pub product: SnpProduct,
    /// The attestation report exactly as the firmware returned it (boxed:
    /// it is most of the evidence's size).
    pub report: Box<[u8; SNP_REPORT_LEN]>,
    /// The chip's VCEK certificate for the reported TCB (from AMD's KDS).
    pub vcek_der: Vec<u8>,
    /// The ASK, if the relay sends one; otherwise the product's built-in ASK.
    pub ask_der: Option<Vec<u8>>,
}

/// Intel DCAP evidence (TDX or SGX). Parts: the quote, then the collateral
/// fields in [`QuoteCollateralV3`]'s order; an empty PCK certificate chain
/// means none (the quote carries it, certification data type 5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcapEvidence {
    /// The quote as the quoting enclave returned it.
    pub quote: Vec<u8>,
    /// CRLs, TCB info and QE identity with their issuer chains, from a PCCS.
    pub collateral: QuoteCollateralV3,
}

/// Insecure simulated evidence. Parts: the simulated TEE's Ed25519 public
/// key (32), the measurement (48), the report data (64), the signature (64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InsecureSimulatedEvidence {
    /// The simulated TEE's key (must equal the policy's insecure root).
    pub signer: [u8; 32],
    /// The measurement the simulated TEE claims.
    pub measurement: [u8; 48],
    /// The report data it claims.
    pub report_data: [u8; 64],
    /// Ed25519 over the domain, the measurement and the report data.
    pub signature: [u8; 64],
}

/// Attestation evidence from one relay's TEE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// AMD SEV-SNP.
    SevSnp(SevSnpEvidence),
    /// Intel TDX.
    Tdx(DcapEvidence),
    /// Intel SGX.
    Sgx(DcapEvidence),
    /// No TEE; see [`Platform::InsecureSimulated`].
    InsecureSimulated(InsecureSimulatedEvidence),
}

const DCAP_PARTS: usize = 11;

impl Evidence {
    /// The evidence's platform.
    pub fn platform(&self) -> Platform {
        match self {
            Self::SevSnp(_) => Platform::SevSnp,
            Self::Tdx(_) => Platform::Tdx,
            Self::Sgx(_) => Platform::Sgx,
            Self::InsecureSimulated(_) => Platform::InsecureSimulated,
        }
    }

    /// The encoding (module docs). Callers keep it under
    /// [`MAX_EVIDENCE_LEN`]; [`Evidence::from_bytes`] refuses anything longer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let product_tag;
        let parts: Vec<&[u8]> = match self {
            Self::SevSnp(e) => vec![
                std::slice::from_ref({
                    product_tag = e.product.tag();
                    &product_tag
                }),
                &e.report[..],
                &e.vcek_der,
                e.ask_der.as_deref().unwrap_or_default(),
            ],
            Self::Tdx(e) | Self::Sgx(e) => {
                let c = &e.collateral;
                vec![
                    &e.quote,
                    c.pck_crl_issuer_chain.as_bytes(),
                    &c.root_ca_crl,
                    &c.pck_crl,
                    c.tcb_info_issuer_chain.as_bytes(),
                    c.tcb_info.as_bytes(),
                    &c.tcb_info_signature,
                    c.qe_identity_issuer_chain.as_bytes(),
                    c.qe_identity.as_bytes(),
                    &c.qe_identity_signature,
                    c.pck_certificate_chain
                        .as_deref()
                        .unwrap_or_default()
                        .as_bytes(),
                ]
            }
            Self::InsecureSimulated(e) => {
                vec![&e.signer, &e.measurement, &e.report_data, &e.signature]
            }
        };
        let len = 2 + parts.iter().map(|p| 4 + p.len()).sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.push(EVIDENCE_FORMAT_VERSION);
        out.push(self.platform().code());
        for part in parts {
            // Parts are bounded by MAX_EVIDENCE_LEN (< 4 GiB) on decode; an
            // encoder handed a larger part writes a length the decoder refuses.
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    /// Decodes untrusted bytes. Refuses anything longer than
    /// [`MAX_EVIDENCE_LEN`], truncated, with trailing bytes, or with parts
    /// of the wrong number or size. Verifies nothing: see [`crate::verify`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EvidenceDecodeError> {
        if bytes.len() > MAX_EVIDENCE_LEN {
            return Err(EvidenceDecodeError::TooLong {
                max: MAX_EVIDENCE_LEN,
                found: bytes.len(),
            });
        }
        let [version, platform, rest @ ..] = bytes else {
            return Err(EvidenceDecodeError::Truncated {
                offset: bytes.len(),
                needed: 2 - bytes.len(),
            });
        };
        if *version != EVIDENCE_FORMAT_VERSION {
            return Err(EvidenceDecodeError::UnsupportedVersion {
                expected: EVIDENCE_FORMAT_VERSION,
                found: *version,
            });
        }
        let platform = Platform::from_tag(*platform)?;
        let parts = split_parts(rest)?;
        let expect_parts = |expected: usize| {
            if parts.len() == expected {
                Ok(())
            } else {
                Err(EvidenceDecodeError::WrongPartCount {
                    platform,
                    expected,
                    found: parts.len(),
                })
            }
        };

        Ok(match platform {
            Platform::SevSnp => {
                expect_parts(4)?;
                let [product] = fixed_part::<1>(platform, "product", parts[0])?;
                let ask = parts[3];
                Self::SevSnp(SevSnpEvidence {
                    product: SnpProduct::from_tag(product)?,
                    report: Box::new(fixed_part(platform, "report", parts[1])?),
                    vcek_der: parts[2].to_vec(),
                    ask_der: (!ask.is_empty()).then(|| ask.to_vec()),
                })
            }
            Platform::Tdx | Platform::Sgx => {
                expect_parts(DCAP_PARTS)?;
                let text = |part: &'static str, bytes: &[u8]| {
                    String::from_utf8(bytes.to_vec())
                        .map_err(|_| EvidenceDecodeError::NotUtf8 { platform, part })
                };
                let pck_chain = text("pck_certificate_chain", parts[10])?;
                let evidence = DcapEvidence {
                    quote: parts[0].to_vec(),
                    collateral: QuoteCollateralV3 {
                        pck_crl_issuer_chain: text("pck_crl_issuer_chain", parts[1])?,
                        root_ca_crl: parts[2].to_vec(),
                        pck_crl: parts[3].to_vec(),
                        tcb_info_issuer_chain: text("tcb_info_issuer_chain", parts[4])?,
                        tcb_info: text("tcb_info", parts[5])?,
                        tcb_info_signature: parts[6].to_vec(),
                        qe_identity_issuer_chain: text("qe_identity_issuer_chain", parts[7])?,
                        qe_identity: text("qe_identity", parts[8])?,
                        qe_identity_signature: parts[9].to_vec(),
                        pck_certificate_chain: (!pck_chain.is_empty()).then_some(pck_chain),
                    },
                };
                if platform == Platform::Tdx {
                    Self::Tdx(evidence)
                } else {
                    Self::Sgx(evidence)
                }
            }
            Platform::InsecureSimulated => {
                expect_parts(4)?;
                Self::InsecureSimulated(InsecureSimulatedEvidence {
                    signer: fixed_part(platform, "signer", parts[0])?,
                    measurement: fixed_part(platform, "measurement", parts[1])?,
                    report_data: fixed_part(platform, "report_data", parts[2])?,
                    signature: fixed_part(platform, "signature", parts[3])?,
                })
            }
        })
    }
}

/// Splits `bytes` into length-prefixed parts, to the last byte.
fn split_parts(mut bytes: &[u8]) -> Result<Vec<&[u8]>, EvidenceDecodeError> {
    let mut parts = Vec::new();
    let mut offset = 2;
    while !bytes.is_empty() {
        let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(EvidenceDecodeError::Truncated {
                offset,
                needed: 4 - bytes.len(),
            });
        };
        let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
        if len > rest.len() {
            return Err(EvidenceDecodeError::Truncated {
                offset: offset + 4,
                needed: len - rest.len(),
            });
        }
        let (part, rest) = rest.split_at(len);
        parts.push(part);
        offset += 4 + len;
        bytes = rest;
    }
    Ok(parts)
}

fn fixed_part<const N: usize>(
    platform: Platform,
    part: &'static str,
    bytes: &[u8],
) -> Result<[u8; N], EvidenceDecodeError> {
    bytes
        .try_into()
        .map_err(|_| EvidenceDecodeError::WrongPartLength {
            platform,
            part,
            expected: N,
            found: bytes.len(),
        })
}
