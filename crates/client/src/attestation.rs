//! Whether a directory relay proves it runs an approved release (issue 15,
//! item 5): its descriptor's TEE evidence must verify under the client's
//! `[trust.tee]` policy, be bound to the relay's id, the QUIC key the client
//! pins and the descriptor's `not_before`, and measure software that the
//! directory's release list (validator-signed, from the chain's votes)
//! names as approved and not revoked.
//!
//! Nothing is judged when a directory is accepted: each relay record
//! carries an [`Attestation`] that judges the relay ([`judge`], about 5 ms
//! for SEV-SNP evidence) the first time selection considers it, through a
//! [`DirectoryJudge`] shared by the directory's records. Verdicts are kept
//! in a [`VerdictCache`] that outlives directories, keyed by what the
//! verdict depends on (the relay, what its evidence must be bound to, the
//! evidence's digest, the directory's release list), so a refresh that
//! leaves a relay's evidence unchanged judges nothing again. Selection
//! (`[trust] attestation`, [`crate::selection::plan`]) and `openrelay
//! status` read the verdict.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openrelay_attest::{AttestError, Binding, Evidence, EvidenceDecodeError, Platform, Policy};
use openrelay_config::AttestationMode;
use openrelay_directory::{
    ChainRelease, ChainSection, RelayId as DirectoryRelayId, ReleaseStatus, VerifiedDirectory,
    VerifiedRelay,
};
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
    let Some(evidence) = relay.descriptor().attestation() else {
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
    let expected = expected_report_data(relay);
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

/// The report data `relay`'s evidence must carry: its id, the QUIC key the
/// client pins and its descriptor's `not_before`.
fn expected_report_data(relay: &VerifiedRelay<'_>) -> [u8; 64] {
    openrelay_attest::report_data(&Binding {
        relay_id: relay.id().to_bytes(),
        key_pin: *relay.quic_pin().as_bytes(),
        not_before: relay.descriptor().not_before(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long a cached verdict is reused for evidence that has not changed
/// (seconds): evidence is checked against the clock (certificate and TCB
/// validity), so a verdict is made again at least this often.
pub const VERDICT_MAX_AGE_SECS: u64 = 6 * 3600;

/// A relay's attestation as its record carries it: a verdict, or the means
/// to reach one the first time it is asked for ([`Attestation::verdict`]).
#[derive(Clone)]
pub struct Attestation(State);

#[derive(Clone)]
enum State {
    /// [`AttestationVerdict::NoEvidence`] and
    /// [`AttestationVerdict::NotChecked`], most relays' verdicts, held
    /// without an allocation.
    NoEvidence,
    NotChecked,
    /// Any other verdict, shared by the record's clones (a client holds one
    /// record per relay: at 100,000 relays every byte of it is 100 kB).
    Judged(Arc<AttestationVerdict>),
    /// Judged through `judge` when first asked for.
    Deferred {
        judge: Arc<DirectoryJudge>,
        relay: DirectoryRelayId,
    },
}

impl Attestation {
    /// The relay's verdict, judging it now if it was not yet (and caching
    /// the answer in the judge's [`VerdictCache`]).
    pub fn verdict(&self) -> AttestationVerdict {
        match &self.0 {
            State::NoEvidence => AttestationVerdict::NoEvidence,
            State::NotChecked => AttestationVerdict::NotChecked,
            State::Judged(verdict) => AttestationVerdict::clone(verdict),
            State::Deferred { judge, relay } => judge.verdict(relay),
        }
    }

    /// The verdict if it is known, without judging.
    pub fn known(&self) -> Option<AttestationVerdict> {
        match &self.0 {
            State::Deferred { judge, relay } => judge.cached(relay),
            _ => Some(self.verdict()),
        }
    }

    /// Whether the relay proved it runs an approved release (judging it
    /// now if it was not yet).
    pub fn is_attested(&self) -> bool {
        self.verdict().is_attested()
    }

    /// [`AttestationVerdict::summary`] of [`Attestation::verdict`].
    pub fn summary(&self) -> AttestationSummary {
        self.verdict().summary()
    }
}

impl From<AttestationVerdict> for Attestation {
    fn from(verdict: AttestationVerdict) -> Self {
        Attestation(match verdict {
            AttestationVerdict::NoEvidence => State::NoEvidence,
            AttestationVerdict::NotChecked => State::NotChecked,
            verdict => State::Judged(Arc::new(verdict)),
        })
    }
}

/// The same verdict, or the same relay of the same judge (never judges).
impl PartialEq for Attestation {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (State::Deferred { judge: a, relay: x }, State::Deferred { judge: b, relay: y }) => {
                Arc::ptr_eq(a, b) && x == y
            }
            (State::Deferred { .. }, _) | (_, State::Deferred { .. }) => false,
            // Neither deferred: `verdict` judges nothing.
            _ => self.verdict() == other.verdict(),
        }
    }
}

impl Eq for Attestation {}

/// The verdict if known; never judges.
impl fmt::Debug for Attestation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.known() {
            Some(verdict) => write!(f, "Attestation({verdict:?})"),
            None => f.write_str("Attestation(not judged yet)"),
        }
    }
}

/// What a verdict depends on besides the relay: the report data its
/// evidence must carry (relay id, pinned key, `not_before`), the evidence's
/// SHA-256 and the directory's release list.
struct VerdictInputs {
    binding: [u8; 64],
    evidence: Option<[u8; 32]>,
    releases: Option<Arc<Vec<ChainRelease>>>,
}

impl VerdictInputs {
    fn same(&self, other: &VerdictInputs) -> bool {
        let same_releases = match (&self.releases, &other.releases) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            (None, None) => true,
            _ => false,
        };
        self.binding == other.binding && self.evidence == other.evidence && same_releases
    }
}

struct CachedVerdict {
    inputs: VerdictInputs,
    judged_at: u64,
    verdict: AttestationVerdict,
}

/// Verdicts made so far, one per relay (the latest), kept across
/// directories: a relay whose evidence, binding and release list are
/// unchanged is not judged again (for up to [`VERDICT_MAX_AGE_SECS`]).
/// Holds at most one entry per relay of the latest directory
/// ([`DirectoryJudge::new`] forgets relays it no longer lists).
#[derive(Default)]
pub struct VerdictCache {
    verdicts: Mutex<HashMap<DirectoryRelayId, CachedVerdict>>,
    judgements: AtomicU64,
}

impl VerdictCache {
    /// An empty cache.
    pub fn new() -> Self {
        VerdictCache::default()
    }

    /// How many times a relay was judged ([`judge`] run) through this
    /// cache since it was made.
    pub fn judgements(&self) -> u64 {
        self.judgements.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DirectoryRelayId, CachedVerdict>> {
        self.verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for VerdictCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerdictCache")
            .field("verdicts", &self.lock().len())
            .field("judgements", &self.judgements())
            .finish()
    }
}

/// Judges the relays of one verified directory under a policy, each when
/// first asked ([`DirectoryJudge::attestation`] makes the records'
/// [`Attestation`]), through a [`VerdictCache`].
pub struct DirectoryJudge {
    directory: VerifiedDirectory,
    policy: Arc<Policy>,
    now: u64,
    releases: Option<Arc<Vec<ChainRelease>>>,
    cache: Arc<VerdictCache>,
    /// The verdicts asked for so far in this directory: what
    /// [`Attestation::known`] answers from without hashing anything.
    asked: Mutex<HashMap<DirectoryRelayId, AttestationVerdict>>,
}

impl DirectoryJudge {
    /// A judge of `directory`'s relays under `policy` at `now` (Unix
    /// seconds: when the directory was accepted), caching in `cache`, whose
    /// entries for relays `directory` does not list are dropped.
    pub fn new(
        directory: VerifiedDirectory,
        policy: Arc<Policy>,
        now: u64,
        cache: Arc<VerdictCache>,
    ) -> Arc<Self> {
        cache
            .lock()
            .retain(|relay, _| directory.relay(relay).is_some());
        let releases = directory.chain().map(|c| Arc::new(c.releases.clone()));
        Arc::new(DirectoryJudge {
            directory,
            policy,
            now,
            releases,
            cache,
            asked: Mutex::new(HashMap::new()),
        })
    }

    /// The attestation of `relay` (of this judge's directory), judged when
    /// first asked for; a relay without evidence is known to have none at
    /// once (nothing to verify), so selection never draws it to find out.
    pub fn attestation(self: &Arc<Self>, relay: &VerifiedRelay<'_>) -> Attestation {
        if relay.descriptor().attestation().is_none() {
            return AttestationVerdict::NoEvidence.into();
        }
        Attestation(State::Deferred {
            judge: Arc::clone(self),
            relay: relay.id(),
        })
    }

    fn inputs(&self, relay: &VerifiedRelay<'_>) -> VerdictInputs {
        VerdictInputs {
            binding: expected_report_data(relay),
            evidence: relay.descriptor().attestation().map(|e| {
                let digest = ring::digest::digest(&ring::digest::SHA256, e.as_bytes());
                let mut out = [0u8; 32];
                out.copy_from_slice(digest.as_ref());
                out
            }),
            releases: self.releases.clone(),
        }
    }

    fn fresh(&self, cached: &CachedVerdict, inputs: &VerdictInputs) -> bool {
        cached.inputs.same(inputs)
            && self.now.saturating_sub(cached.judged_at) < VERDICT_MAX_AGE_SECS
    }

    fn asked(&self) -> std::sync::MutexGuard<'_, HashMap<DirectoryRelayId, AttestationVerdict>> {
        self.asked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached(&self, id: &DirectoryRelayId) -> Option<AttestationVerdict> {
        self.asked().get(id).cloned()
    }

    fn verdict(&self, id: &DirectoryRelayId) -> AttestationVerdict {
        if let Some(verdict) = self.cached(id) {
            return verdict;
        }
        let verdict = self.verdict_from_cache_or_judge(id);
        self.asked().insert(*id, verdict.clone());
        verdict
    }

    fn verdict_from_cache_or_judge(&self, id: &DirectoryRelayId) -> AttestationVerdict {
        let Some(relay) = self.directory.relay(id) else {
            // Unreachable: records of a judge are made from its directory's
            // relays. Refusing is the safe answer.
            return AttestationVerdict::Refused(AttestationRefusal::NoReleaseList);
        };
        let inputs = self.inputs(&relay);
        if let Some(cached) = self.cache.lock().get(id).filter(|c| self.fresh(c, &inputs)) {
            return cached.verdict.clone();
        }
        // Judged outside the lock (it takes milliseconds): two threads may
        // judge one relay at once, and reach the same verdict.
        let verdict = judge(&relay, self.directory.chain(), &self.policy, self.now);
        self.cache.judgements.fetch_add(1, Ordering::Relaxed);
        self.cache.lock().insert(
            *id,
            CachedVerdict {
                inputs,
                judged_at: self.now,
                verdict: verdict.clone(),
            },
        );
        verdict
    }
}

impl fmt::Debug for DirectoryJudge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectoryJudge")
            .field("sequence", &self.directory.sequence())
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
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
