//! Intel TDX and SGX DCAP quotes (Intel SGX/TDX ECDSA Quote Library API,
//! quote format v3/v4/v5), verified with their collateral by dcap-qvl
//! against Intel's SGX root CA; the TCB status and advisories then go
//! through the policy's allow-list.

use dcap_qvl::configs::RingConfig;
use dcap_qvl::quote::Report;
use dcap_qvl::verify::QuoteVerifier;
use dcap_qvl::{QuotePolicy, TcbStatus};
use sha2::{Digest, Sha384};

use crate::error::AttestError;
use crate::evidence::{DcapEvidence, Platform};
use crate::policy::{DcapPolicy, DcapTcbStatus};
use crate::verified::{Measurement, TdxRegisters, Verified};

fn status(status: TcbStatus) -> DcapTcbStatus {
    match status {
        TcbStatus::UpToDate => DcapTcbStatus::UpToDate,
        TcbStatus::SWHardeningNeeded => DcapTcbStatus::SWHardeningNeeded,
        TcbStatus::ConfigurationNeeded => DcapTcbStatus::ConfigurationNeeded,
        TcbStatus::ConfigurationAndSWHardeningNeeded => {
            DcapTcbStatus::ConfigurationAndSWHardeningNeeded
        }
        TcbStatus::OutOfDate => DcapTcbStatus::OutOfDate,
        TcbStatus::OutOfDateConfigurationNeeded => DcapTcbStatus::OutOfDateConfigurationNeeded,
        TcbStatus::TDRelaunchAdvised => DcapTcbStatus::TDRelaunchAdvised,
        TcbStatus::TDRelaunchAdvisedConfigurationNeeded => {
            DcapTcbStatus::TDRelaunchAdvisedConfigurationNeeded
        }
        TcbStatus::Revoked => DcapTcbStatus::Revoked,
    }
}

pub(crate) fn verify(
    platform: Platform,
    evidence: &DcapEvidence,
    expected_report_data: &[u8; 64],
    policy: &DcapPolicy,
    now_unix: u64,
) -> Result<Verified, AttestError> {
    // Signatures, the PCK chain to Intel's root, CRLs, the collateral's
    // signatures and validity at `now_unix`, the QE identity, and no debug
    // TD or enclave: dcap-qvl. Our policy (status, advisories) follows, so
    // dcap-qvl's own policy only reports claims.
    let claims = QuoteVerifier::new_prod()
        .with_config::<RingConfig>()
        .verify_with_policy(
            &evidence.quote,
            &evidence.collateral,
            now_unix,
            &QuotePolicy::claims_only(now_unix),
        )
        .map_err(|e| AttestError::DcapQuoteRejected {
            platform,
            reason: format!("{e:#}"),
        })?;

    let quote_platform = if claims.report.is_sgx() {
        Platform::Sgx
    } else {
        Platform::Tdx
    };
    if quote_platform != platform {
        return Err(AttestError::DcapWrongQuoteType {
            expected: platform,
            found: quote_platform,
        });
    }

    let found = status(claims.tcb.status);
    check_tcb(platform, found, &claims.tcb.advisory_ids, policy)?;

    let (report_data, measurement, tdx_registers) = match &claims.report {
        Report::SgxEnclave(r) => (r.report_data, Measurement::SgxMrEnclave(r.mr_enclave), None),
        Report::TD10(r) => td(r),
        Report::TD15(r) => td(&r.base),
        Report::TD15Ex(r) => td(&r.base.base),
    };
    if &report_data != expected_report_data {
        return Err(AttestError::ReportDataMismatch {
            platform,
            expected: Box::new(*expected_report_data),
            found: Box::new(report_data),
        });
    }
    Ok(Verified {
        platform,
        measurement,
        tcb: format!(
            "Intel {} TCB status {found}",
            if platform == Platform::Sgx {
                "SGX"
            } else {
                "TDX"
            }
        ),
        advisories: claims.tcb.advisory_ids,
        tdx_registers,
    })
}

/// The allow-list: the status must be accepted (never `Revoked`), and so
/// must every advisory of the TCB level (libsignal's `rust/attest` rule).
fn check_tcb(
    platform: Platform,
    found: DcapTcbStatus,
    advisories: &[String],
    policy: &DcapPolicy,
) -> Result<(), AttestError> {
    if found == DcapTcbStatus::Revoked || !policy.accepted_statuses.contains(&found) {
        return Err(AttestError::DcapTcbStatusNotAccepted {
            platform,
            accepted: policy.accepted_statuses.clone(),
            found,
        });
    }
    let accepted = |id: &str| {
        policy
            .accepted_advisories
            .iter()
            .any(|a| a.eq_ignore_ascii_case(id))
    };
    if let Some(advisory) = advisories.iter().find(|id| !accepted(id)) {
        return Err(AttestError::DcapAdvisoryNotAccepted {
            platform,
            accepted: policy.accepted_advisories.clone(),
            advisory: advisory.clone(),
        });
    }
    Ok(())
}

/// A TD's measurement: MRTD (the initial TD image, i.e. TDVF firmware) and
/// RTMR0..2 (the boot chain TDVF measures: configuration, kernel, command
/// line and initrd) hashed into one value a release maps to. RTMR3 is left
/// out: it is for the running TD to extend, not part of the booted image.
fn td(r: &dcap_qvl::quote::TDReport10) -> ([u8; 64], Measurement, Option<TdxRegisters>) {
    let registers = TdxRegisters {
        mrtd: r.mr_td,
        rtmrs: [r.rt_mr0, r.rt_mr1, r.rt_mr2, r.rt_mr3],
    };
    let digest = Sha384::new()
        .chain_update(b"openrelay tdx measurement v1\0")
        .chain_update(r.mr_td)
        .chain_update(r.rt_mr0)
        .chain_update(r.rt_mr1)
        .chain_update(r.rt_mr2)
        .finalize();
    (
        r.report_data,
        Measurement::TdxMrtdRtmr012(digest.into()),
        Some(registers),
    )
}

#[cfg(test)]
mod tests {
    //! The allow-list on statuses no real sample has (Intel signs the TCB
    //! info, so a sample's status cannot be changed).
    use super::*;

    fn advisories(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn out_of_date_is_refused_unless_admitted_with_its_advisories() {
        let found = DcapTcbStatus::OutOfDate;
        let ids = advisories(&["INTEL-SA-01036", "INTEL-SA-01099"]);
        let mut policy = DcapPolicy::default();
        assert!(matches!(
            check_tcb(Platform::Tdx, found, &ids, &policy),
            Err(AttestError::DcapTcbStatusNotAccepted {
                found: DcapTcbStatus::OutOfDate,
                ..
            })
        ));
        policy.accepted_statuses.push(DcapTcbStatus::OutOfDate);
        policy.accepted_advisories = advisories(&["INTEL-SA-01036"]);
        assert_eq!(
            check_tcb(Platform::Tdx, found, &ids, &policy),
            Err(AttestError::DcapAdvisoryNotAccepted {
                platform: Platform::Tdx,
                accepted: advisories(&["INTEL-SA-01036"]),
                advisory: "INTEL-SA-01099".into(),
            })
        );
        policy.accepted_advisories = advisories(&["intel-sa-01036", "INTEL-SA-01099"]);
        assert_eq!(check_tcb(Platform::Tdx, found, &ids, &policy), Ok(()));
    }

    #[test]
    fn sw_hardening_needed_is_accepted_by_default_only_with_listed_advisories() {
        let found = DcapTcbStatus::SWHardeningNeeded;
        let ids = advisories(&["INTEL-SA-00334"]);
        let mut policy = DcapPolicy::default();
        assert!(matches!(
            check_tcb(Platform::Sgx, found, &ids, &policy),
            Err(AttestError::DcapAdvisoryNotAccepted { .. })
        ));
        policy.accepted_advisories = ids.clone();
        assert_eq!(check_tcb(Platform::Sgx, found, &ids, &policy), Ok(()));
        assert_eq!(
            check_tcb(
                Platform::Sgx,
                DcapTcbStatus::UpToDate,
                &[],
                &DcapPolicy::default()
            ),
            Ok(())
        );
    }

    #[test]
    fn revoked_is_refused_whatever_the_policy_says() {
        let policy = DcapPolicy {
            accepted_statuses: vec![DcapTcbStatus::Revoked],
            ..DcapPolicy::default()
        };
        assert!(matches!(
            check_tcb(Platform::Tdx, DcapTcbStatus::Revoked, &[], &policy),
            Err(AttestError::DcapTcbStatusNotAccepted { .. })
        ));
    }
}
