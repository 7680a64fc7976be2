//! Remote attestation of relays (issue 15 item 4, the verifying side).
//!
//! A relay's descriptor carries [`Evidence`] from its trusted execution
//! environment. The evidence's report data is [`report_data`] of a
//! [`Binding`]: the relay's id, the QUIC key clients pin and the
//! descriptor's `not_before`. [`verify`] checks the evidence against the
//! platform's vendor roots and the [`Policy`], checks the binding, and
//! returns the attested [`Measurement`], which the client maps to an
//! approved release.
//!
//! I/O-free: no network, no clock (the caller passes `now_unix`), no files.
//! Nothing here panics on any input. See `docs/attestation.md` for what
//! each platform's evidence proves and what it does not.

mod binding;
mod dcap;
mod error;
mod evidence;
mod policy;
mod simulated;
mod snp;
mod verified;

pub use binding::{Binding, report_data};
pub use dcap_qvl::QuoteCollateralV3;
pub use error::{AttestError, EvidenceDecodeError};
pub use evidence::{
    DcapEvidence, EVIDENCE_FORMAT_VERSION, Evidence, InsecureSimulatedEvidence, MAX_EVIDENCE_LEN,
    Platform, SevSnpEvidence,
};
pub use policy::{DcapPolicy, DcapTcbStatus, Policy, SnpMinimumTcb, SnpPolicy, SnpTcb};
pub use simulated::InsecureSimulatedTee;
pub use snp::{SNP_REPORT_LEN, SnpProduct};
pub use verified::{Measurement, TdxRegisters, Verified};

/// Verifies `evidence` under `policy` at `now_unix` (Unix seconds; DCAP
/// collateral must be valid then) and checks that its report data is
/// `expected_report_data` (from [`report_data`]).
pub fn verify(
    evidence: &Evidence,
    expected_report_data: &[u8; 64],
    policy: &Policy,
    now_unix: u64,
) -> Result<Verified, AttestError> {
    let platform = evidence.platform();
    let enabled = match platform {
        Platform::SevSnp => policy.sev_snp.enabled,
        Platform::Tdx => policy.tdx.enabled,
        Platform::Sgx => policy.sgx.enabled,
        // Enabled exactly when the policy names a root: its own error says why not.
        Platform::InsecureSimulated => true,
    };
    if !enabled {
        return Err(AttestError::PlatformDisabled { platform });
    }
    match evidence {
        Evidence::SevSnp(e) => snp::verify(e, expected_report_data, &policy.sev_snp),
        Evidence::Tdx(e) => dcap::verify(platform, e, expected_report_data, &policy.tdx, now_unix),
        Evidence::Sgx(e) => dcap::verify(platform, e, expected_report_data, &policy.sgx, now_unix),
        Evidence::InsecureSimulated(e) => {
            simulated::verify(e, expected_report_data, policy.insecure_simulated_root)
        }
    }
}
