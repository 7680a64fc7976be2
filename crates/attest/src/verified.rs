//! What a successful verification tells the caller.

use crate::evidence::Platform;

/// The software a TEE attests it runs, as a value a release maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measurement {
    /// SEV-SNP MEASUREMENT: the launch digest of the guest's initial memory
    /// and VMSAs (what `sev-snp-measure` computes from the image).
    SnpLaunchDigest([u8; 48]),
    /// TDX: SHA-384 over a domain, MRTD and RTMR0..2 (see [`TdxRegisters`]).
    TdxMrtdRtmr012([u8; 48]),
    /// SGX MRENCLAVE.
    SgxMrEnclave([u8; 32]),
    /// Whatever the simulated TEE claims: proves nothing.
    InsecureSimulated([u8; 48]),
}

impl Measurement {
    /// The measurement's bytes (48, or 32 for SGX).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::SnpLaunchDigest(m) | Self::TdxMrtdRtmr012(m) | Self::InsecureSimulated(m) => m,
            Self::SgxMrEnclave(m) => m,
        }
    }
}

/// A TD's measurement registers as the quote reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdxRegisters {
    /// MRTD: the TD's initial contents (TDVF).
    pub mrtd: [u8; 48],
    /// RTMR0..3.
    pub rtmrs: [[u8; 48]; 4],
}

/// Evidence that verified: which platform, what it runs, on which TCB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The platform.
    pub platform: Platform,
    /// The attested software.
    pub measurement: Measurement,
    /// A description of the platform's TCB (for status output and logs).
    pub tcb: String,
    /// Advisory IDs the platform's TCB level carries (all accepted by the policy).
    pub advisories: Vec<String>,
    /// TDX only: the raw registers behind the measurement.
    pub tdx_registers: Option<TdxRegisters>,
}
