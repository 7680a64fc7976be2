//! The insecure simulated platform: no TEE, an Ed25519 key signs whatever
//! measurement it is told. It exercises the whole chain (evidence in
//! descriptors, binding, policy, release mapping) on machines without a
//! TEE, and proves nothing: whoever holds the key makes any evidence.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::error::AttestError;
use crate::evidence::{Evidence, InsecureSimulatedEvidence, Platform};
use crate::verified::{Measurement, Verified};

const SIGNATURE_DOMAIN: &[u8] = b"openrelay insecure simulated tee evidence v1\0";

fn signed_message(measurement: &[u8; 48], report_data: &[u8; 64]) -> Vec<u8> {
    [SIGNATURE_DOMAIN, measurement, report_data].concat()
}

/// The devnet's stand-in for a TEE: signs evidence for any measurement.
#[derive(Debug)]
pub struct InsecureSimulatedTee {
    key: SigningKey,
}

impl InsecureSimulatedTee {
    /// A simulated TEE signing with `key`.
    pub fn new(key: SigningKey) -> Self {
        Self { key }
    }

    /// A simulated TEE signing with the Ed25519 key of this 32-byte seed
    /// (the devnet keeps it in a file).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self::new(SigningKey::from_bytes(&seed))
    }

    /// The public key a devnet policy names as `insecure_simulated_root`.
    pub fn root(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Evidence that this "TEE" runs `measurement` for `report_data`.
    pub fn evidence(&self, report_data: &[u8; 64], measurement: &[u8; 48]) -> Evidence {
        let signature = self.key.sign(&signed_message(measurement, report_data));
        Evidence::InsecureSimulated(InsecureSimulatedEvidence {
            signer: self.root(),
            measurement: *measurement,
            report_data: *report_data,
            signature: signature.to_bytes(),
        })
    }
}

pub(crate) fn verify(
    evidence: &InsecureSimulatedEvidence,
    expected_report_data: &[u8; 64],
    insecure_simulated_root: Option<[u8; 32]>,
) -> Result<Verified, AttestError> {
    let trusted = insecure_simulated_root.ok_or(AttestError::InsecureSimulatedNotTrusted)?;
    if evidence.signer != trusted {
        return Err(AttestError::InsecureSimulatedWrongKey {
            trusted,
            found: evidence.signer,
        });
    }
    let key = VerifyingKey::from_bytes(&trusted)
        .map_err(|_| AttestError::InsecureSimulatedSignatureInvalid)?;
    key.verify_strict(
        &signed_message(&evidence.measurement, &evidence.report_data),
        &Signature::from_bytes(&evidence.signature),
    )
    .map_err(|_| AttestError::InsecureSimulatedSignatureInvalid)?;
    if &evidence.report_data != expected_report_data {
        return Err(AttestError::ReportDataMismatch {
            platform: Platform::InsecureSimulated,
            expected: Box::new(*expected_report_data),
            found: Box::new(evidence.report_data),
        });
    }
    Ok(Verified {
        platform: Platform::InsecureSimulated,
        measurement: Measurement::InsecureSimulated(evidence.measurement),
        tcb: "insecure simulated TEE (no hardware, proves nothing)".to_owned(),
        advisories: Vec::new(),
        tdx_registers: None,
    })
}
