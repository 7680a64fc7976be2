//! Whether a directory relay proves it runs an approved release (issue 15,
//! item 5): its descriptor's TEE evidence must verify under the client's
//! `[trust.tee]` policy, be bound to the relay's id, the QUIC key the client
//! pins and the descriptor's `not_before`, and measure software that the
//! directory's release list (validator-signed, from the chain's votes)
//! names as approved and not revoked.
//!
//! The verdict is made once per relay when a directory is accepted
//! ([`judge`]), carried on the client's [`Relay`] record, and
//! used by selection (`[trust] attestation`) and `openrelay status`.

use std::fmt;

use openrelay_attest::{AttestError, Binding, Evidence, EvidenceDecodeError, Platform, Policy};
use openrelay_config::AttestationMode;
use openrelay_directory::{ChainSection, ReleaseStatus, VerifiedRelay};
use serde::{Deserialize, Serialize};

use crate::relay::Relay;
use crate::selection::{EgressRegion, choose};

/// What a relay's attestation says, as far as the client checked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttestationVerdict {
    /// `[trust] attestation = "off"`, or a `[[relay]]` config entry: not
    /// looked at.
    NotChecked,
    /// The descriptor carries no evidence (a relay without a TEE).
    NoEvidence,
    /// Verified, bound to this relay and its pinned key, and measuring an
    /// approved release.
    Attested {
        /// The TEE.
        platform: Platform,
        /// The approved release (its id: SHA-256 of its signed statement).
        release_id: [u8; 32],
        /// The platform's TCB, as the evidence reports it.
        tcb: String,
    },
    /// Evidence is present but does not make the relay attested.
    Refused(AttestationRefusal),
}

impl AttestationVerdict {
    /// Whether the relay proved it runs an approved release.
    pub fn is_attested(&self) -> bool {
        matches!(self, AttestationVerdict::Attested { .. })
    }

    /// The verdict as `openrelay status` shows it: platform, release and
    /// verdict, each `None` where it does not apply.
    pub fn summary(&self) -> AttestationSummary {
        let (platform, release, verdict) = match self {
            AttestationVerdict::NotChecked => (None, None, "not checked".to_owned()),
            AttestationVerdict::NoEvidence => (None, None, "no evidence".to_owned()),
            AttestationVerdict::Attested {
                platform,
                release_id,
                ..
            } => (
                Some(platform.to_string()),
                Some(hex(release_id)),
                "attested".to_owned(),
            ),
            AttestationVerdict::Refused(refusal) => (
                refusal.platform().map(|p| p.to_string()),
                None,
                format!("refused: {refusal}"),
            ),
        };
        AttestationSummary {
            platform,
            release,
            verdict,
        }
    }
}

impl fmt::Display for AttestationVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttestationVerdict::NotChecked => f.write_str("attestation not checked"),
            AttestationVerdict::NoEvidence => f.write_str("no attestation evidence"),
            AttestationVerdict::Attested {
                platform,
                release_id,
                ..
            } => write!(f, "attested on {platform}, release {}", hex(release_id)),
            AttestationVerdict::Refused(refusal) => write!(f, "attestation refused: {refusal}"),
        }
    }
}

/// A hop's attestation in `openrelay status` (the control API's JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationSummary {
    /// The TEE platform, where evidence names one.
    pub platform: Option<String>,
    /// The approved release's id (hex), when attested.
    pub release: Option<String>,
    /// `attested`, `no evidence`, `not checked` or `refused: <why>`.
    pub verdict: String,
}

/// Why a relay's evidence does not make it attested.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationRefusal {
    /// The evidence bytes do not parse.
    #[error("malformed evidence: {0}")]
    Malformed(EvidenceDecodeError),
    /// The evidence does not verify (signature, certificate chain, TCB,
    /// policy) or is bound to another relay, key or time.
    #[error("{platform} evidence does not verify: {error}")]
    Invalid {
        /// The platform the evidence names.
        platform: Platform,
        /// Why.
        error: AttestError,
    },
    /// The directory is not chain-backed, so it lists no releases: nothing
    /// is approved.
    #[error("the directory lists no voted releases (it is not chain-backed)")]
    NoReleaseList,
    /// The measured software is no release the validators approved.
    #[error("{platform} measurement {measurement} is not an approved release")]
    Unapproved {
        /// The platform.
        platform: Platform,
        /// The measurement (hex).
        measurement: String,
    },
    /// The measured software is a release the validators revoked.
    #[error("{platform} measurement is release {release}, which was revoked")]
    Revoked {
        /// The platform.
        platform: Platform,
        /// The revoked release's id (hex).
        release: String,
    },
}

impl AttestationRefusal {
    /// The platform the evidence names, if it parsed.
    pub fn platform(&self) -> Option<Platform> {
        match self {
            AttestationRefusal::Malformed(_) | AttestationRefusal::NoReleaseList => None,
            AttestationRefusal::Invalid { platform, .. }
            | AttestationRefusal::Unapproved { platform, .. }
            | AttestationRefusal::Revoked { platform, .. } => Some(*platform),
        }
    }
}

/// Judges `relay`'s evidence under `policy` at `now` (Unix seconds),
/// against the releases of `chain` (the directory's chain section).
pub fn judge(
    relay: &VerifiedRelay<'_>,
    chain: Option<&ChainSection>,
    policy: &Policy,
    now: u64,
) -> AttestationVerdict {
    let Some(evidence) = relay.descriptor.attestation() else {
        return AttestationVerdict::NoEvidence;
    };
    let evidence = match Evidence::from_bytes(evidence.as_bytes()) {
        Ok(evidence) => evidence,
        Err(e) => return AttestationVerdict::Refused(AttestationRefusal::Malformed(e)),
    };
    let platform = evidence.platform();
    // The report data must bind what this client pins, so evidence copied
    // from another relay (or from this relay's earlier descriptor, before a
    // TCB recovery) does not verify.
    let expected = openrelay_attest::report_data(&Binding {
        relay_id: relay.id().to_bytes(),
        key_pin: *relay.quic_pin().as_bytes(),
        not_before: relay.descriptor.not_before(),
    });
    let verified = match openrelay_attest::verify(&evidence, &expected, policy, now) {
        Ok(verified) => verified,
        Err(error) => {
            return AttestationVerdict::Refused(AttestationRefusal::Invalid { platform, error });
        }
    };
    let Some(chain) = chain else {
        return AttestationVerdict::Refused(AttestationRefusal::NoReleaseList);
    };
    let measurement = verified.measurement.as_bytes();
    match chain.release_measured_as(platform.code(), measurement) {
        None => AttestationVerdict::Refused(AttestationRefusal::Unapproved {
            platform,
            measurement: hex(measurement),
        }),
        Some(release) if release.status == ReleaseStatus::Revoked => {
            AttestationVerdict::Refused(AttestationRefusal::Revoked {
                platform,
                release: hex(&release.release_id),
            })
        }
        Some(release) => AttestationVerdict::Attested {
            platform,
            release_id: release.release_id,
            tcb: verified.tcb,
        },
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The relays of a list that `[trust] attestation` lets paths use, and the
/// others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// Paths are drawn from these.
    pub admitted: Vec<Relay>,
    /// Not used (with `require`, named when no path is left).
    pub refused: Vec<Relay>,
}

/// Splits `listed` by `mode`: `off` admits every relay; `require` only
/// attested ones; `prefer` only attested ones when they make a path
/// (in any region, before exclusions), else every relay.
pub fn admit(listed: &[Relay], mode: AttestationMode) -> Admission {
    let everyone = || Admission {
        admitted: listed.to_vec(),
        refused: Vec::new(),
    };
    if mode == AttestationMode::Off {
        return everyone();
    }
    let (admitted, refused): (Vec<Relay>, Vec<Relay>) = listed
        .iter()
        .cloned()
        .partition(|r| r.attestation.is_attested());
    let attested_make_a_path = || {
        // Only whether a pair exists matters: any seed gives the same answer.
        choose(
            &admitted,
            &EgressRegion::Any,
            |_| false,
            &mut fastrand::Rng::with_seed(0),
        )
        .is_ok()
    };
    if mode == AttestationMode::Prefer && !attested_make_a_path() {
        return everyone();
    }
    Admission { admitted, refused }
}
