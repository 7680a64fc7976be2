//! A validator's release votes (`[release_votes]`, docs/chain.md "Release
//! votes"): it watches the ballots of the release contract, judges each
//! proposal with its [`ReleaseCheck`], commits during the commit phase,
//! reveals during the reveal phase and settles once it is over.
//!
//! **No state to lose.** A vote's salt is derived from the validator's
//! account key and the ballot (`ReleaseVoter::salt`): secret to everyone
//! else, and the same after a restart, so a validator that committed and
//! then restarted still reveals (committing without revealing is slashed).
//! The vote revealed is the one whose commitment matches the chain's, not
//! a fresh decision, so a check that changed its mind in between (a new
//! binary) cannot make the reveal fail.

use std::fmt::Debug;
use std::path::Path;

use alloy::signers::local::PrivateKeySigner;
use openrelay_chain::release::{
    BallotKind, BallotOutcome, BallotRecord, ReleaseError, ReleaseRecord, ReleaseRefusal,
    ReleaseVotes, vote_commitment,
};
use openrelay_config::{ReleaseCheckConfig, ReleaseVotesConfig};
use sha2::{Digest as _, Sha256};
use tracing::{debug, info, warn};

/// Most open ballots looked at in one step: ballots cost a bond each, but
/// a step must stay short whatever the chain holds.
pub const MAX_BALLOTS_PER_STEP: u64 = 64;
/// Domain of the vote salts' derivation.
const SALT_DOMAIN: &[u8] = b"openrelay release vote salt v1\0";

/// What a validator thinks of a proposed release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It is what it claims: approve it (or reject its revocation).
    Approve,
    /// It is not: reject it (or approve its revocation).
    Reject,
    /// No opinion (the check cannot run): no commitment, so no slash.
    Abstain,
}

/// How a validator judges a proposed release. The real check (rebuild the
/// release from source with `openrelay-release`'s verify against the
/// manifest whose `ReleaseId` is proposed, found in a manifests directory
/// such as `[release] manifests_dir`, and compare the binary's hash and
/// launch measurements) is one more implementation, wired where
/// [`check_from_config`] chooses.
pub trait ReleaseCheck: Debug + Send + Sync {
    /// The decision on `release` (as proposed on the chain).
    fn decide(&self, release: &ReleaseRecord) -> Decision;
}

/// **Insecure, devnet only**: approves a release iff its binary's SHA-256
/// is that of the validator's own executable. On the devnet every process
/// runs the one binary, so this says "the binary we run"; it proves
/// nothing about reproducibility.
#[derive(Debug, Clone)]
pub struct OwnBinaryInsecureDevnet {
    own_sha256: [u8; 32],
}

impl OwnBinaryInsecureDevnet {
    /// The check for the executable at `path`.
    pub fn of_file(path: &Path) -> std::io::Result<OwnBinaryInsecureDevnet> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        std::io::copy(&mut file, &mut hasher)?;
        Ok(OwnBinaryInsecureDevnet {
            own_sha256: hasher.finalize().into(),
        })
    }

    /// The check for the running executable.
    pub fn of_current_exe() -> std::io::Result<OwnBinaryInsecureDevnet> {
        OwnBinaryInsecureDevnet::of_file(&std::env::current_exe()?)
    }

    /// The hash it approves.
    pub fn own_sha256(&self) -> [u8; 32] {
        self.own_sha256
    }
}

impl ReleaseCheck for OwnBinaryInsecureDevnet {
    fn decide(&self, release: &ReleaseRecord) -> Decision {
        if release.binary_sha256 == self.own_sha256 {
            Decision::Approve
        } else {
            Decision::Reject
        }
    }
}

/// **Tests only, dishonest**: rejects everything (a validator voting
/// against the majority).
#[derive(Debug, Clone, Copy)]
pub struct RejectAllForTests;

impl ReleaseCheck for RejectAllForTests {
    fn decide(&self, _: &ReleaseRecord) -> Decision {
        Decision::Reject
    }
}

/// The check `[release_votes]` names (a rebuild works in
/// `state_dir/release-rebuild`).
pub fn check_from_config(
    votes: &ReleaseVotesConfig,
    state_dir: &Path,
) -> std::io::Result<Box<dyn ReleaseCheck>> {
    Ok(match votes.check {
        ReleaseCheckConfig::OwnBinaryInsecureDevnet => {
            Box::new(OwnBinaryInsecureDevnet::of_current_exe()?)
        }
        ReleaseCheckConfig::RejectAllForTests => Box::new(RejectAllForTests),
        ReleaseCheckConfig::Rebuild => {
            let missing = |field| std::io::Error::other(format!("{field} is needed"));
            Box::new(RebuildFromSource::new(
                votes
                    .manifests_dir
                    .clone()
                    .ok_or_else(|| missing("manifests_dir"))?,
                votes
                    .source_dir
                    .clone()
                    .ok_or_else(|| missing("source_dir"))?,
                state_dir.join("release-rebuild"),
                votes
                    .trusted_release_keys
                    .iter()
                    .map(|pin| {
                        openrelay_release::VerifyingKey::from_bytes(pin.as_bytes()).map_err(|_| {
                            std::io::Error::other("a trusted release key is no Ed25519 key")
                        })
                    })
                    .collect::<std::io::Result<_>>()?,
                votes.required_release_signatures,
            ))
        }
    })
}

/// Votes by rebuilding (issue 15): the manifest whose release id is
/// proposed, from `manifests_dir`, rebuilt from `source_dir` with
/// `openrelay_release::verify`. Approves a bit-identical rebuild with
/// enough trusted signatures, and only if the proposal's binary hash and
/// every measurement it lists are the manifest's (a proposer attaching a
/// foreign measurement to a good binary would otherwise get it approved
/// for a TEE image nobody built). Rejects a mismatch; abstains while no
/// manifest is at hand or the rebuild (minutes) runs on its own thread.
#[derive(Debug)]
pub struct RebuildFromSource {
    manifests_dir: std::path::PathBuf,
    source_dir: std::path::PathBuf,
    work_dir: std::path::PathBuf,
    trusted: Vec<openrelay_release::VerifyingKey>,
    required: usize,
    /// Decisions by release id, and the one rebuild running (one at a
    /// time: a build takes every core).
    state: std::sync::Arc<std::sync::Mutex<RebuildState>>,
}

#[derive(Debug, Default)]
struct RebuildState {
    decided: std::collections::HashMap<[u8; 32], Decision>,
    running: Option<[u8; 32]>,
}

/// Most manifest files looked at in `manifests_dir`.
const MAX_MANIFEST_FILES: usize = 256;

impl RebuildFromSource {
    /// A check rebuilding in `work_dir`.
    pub fn new(
        manifests_dir: std::path::PathBuf,
        source_dir: std::path::PathBuf,
        work_dir: std::path::PathBuf,
        trusted: Vec<openrelay_release::VerifyingKey>,
        required: usize,
    ) -> Self {
        RebuildFromSource {
            manifests_dir,
            source_dir,
            work_dir,
            trusted,
            required,
            state: std::sync::Arc::default(),
        }
    }

    /// The manifest of `release_id` in the manifests directory.
    fn manifest(&self, release_id: [u8; 32]) -> Option<openrelay_release::Manifest> {
        let entries = std::fs::read_dir(&self.manifests_dir).ok()?;
        entries
            .filter_map(Result::ok)
            .take(MAX_MANIFEST_FILES)
            .filter(|e| {
                e.metadata().is_ok_and(|m| {
                    m.is_file() && m.len() <= openrelay_release::manifest::MAX_MANIFEST_BYTES as u64
                })
            })
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|bytes| openrelay_release::Manifest::parse(&bytes).ok())
            .find(|m| m.release_id().0 == release_id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RebuildState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `release` proposes what `manifest` describes: its binary, and
/// only measurements the manifest lists.
fn proposal_matches(release: &ReleaseRecord, manifest: &openrelay_release::Manifest) -> bool {
    let simulated = (
        openrelay_attest::Platform::InsecureSimulated.code(),
        manifest.insecure_simulated_measurement(),
    );
    manifest.subject().1 == release.binary_sha256
        && release
            .measurements
            .iter()
            .all(|(platform, value)| (*platform, Some(*value)) == simulated)
}

impl ReleaseCheck for RebuildFromSource {
    fn decide(&self, release: &ReleaseRecord) -> Decision {
        let id = release.release_id;
        let Some(manifest) = self.manifest(id) else {
            debug!("release vote: no manifest of the proposed release id at hand; abstaining");
            return Decision::Abstain;
        };
        // Before the cache: one id may be proposed again with another
        // binary or measurements after a rejection.
        if !proposal_matches(release, &manifest) {
            warn!(
                "release vote: the proposal's binary or measurements are not its manifest's; rejecting"
            );
            return Decision::Reject;
        }
        let mut state = self.lock();
        if let Some(decision) = state.decided.get(&id) {
            return *decision;
        }
        if state.running.is_some() {
            return Decision::Abstain;
        }
        state.running = Some(id);
        drop(state);
        let (source, work, trusted, required, shared) = (
            self.source_dir.clone(),
            self.work_dir.clone(),
            self.trusted.clone(),
            self.required,
            self.state.clone(),
        );
        info!("release vote: rebuilding the proposed release from source");
        std::thread::spawn(move || {
            let verdict = openrelay_release::verify(&manifest, &source, &trusted, required, &work);
            let mut state = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state.running = None;
            match verdict {
                Ok(report) => {
                    let decision = if report.passed() {
                        Decision::Approve
                    } else {
                        Decision::Reject
                    };
                    info!(approve = report.passed(), "release vote: rebuild compared");
                    state.decided.insert(id, decision);
                }
                // The build could not run (disk, toolchain): no verdict on
                // the release; tried again at the next step.
                Err(error) => warn!(%error, "release vote: the rebuild failed to run"),
            }
        });
        Decision::Abstain
    }
}

/// What one step did, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Committed to a vote on a ballot.
    Committed {
        /// The ballot.
        ballot: u64,
        /// The vote ("approve" on a revocation revokes).
        approve: bool,
    },
    /// Revealed its vote on a ballot.
    Revealed {
        /// The ballot.
        ballot: u64,
        /// The vote.
        approve: bool,
    },
    /// Settled a ballot.
    Settled(u64),
}

/// A validator's release votes on one chain.
#[derive(Debug)]
pub struct ReleaseVoter {
    votes: ReleaseVotes,
    check: Box<dyn ReleaseCheck>,
    salt_key: [u8; 32],
    /// Ballots below this are settled (never looked at again).
    first_open: u64,
}

impl ReleaseVoter {
    /// Votes through `votes` (signed by `signer`, the validator's account)
    /// with `check`.
    pub fn new(
        votes: ReleaseVotes,
        signer: &PrivateKeySigner,
        check: Box<dyn ReleaseCheck>,
    ) -> ReleaseVoter {
        let mut h = Sha256::new();
        h.update(SALT_DOMAIN);
        h.update(signer.to_bytes());
        ReleaseVoter {
            votes,
            check,
            salt_key: h.finalize().into(),
            first_open: 1,
        }
    }

    /// The secret salt of this validator's vote on `ballot`: a hash of a
    /// hash of its account key, the contract and the ballot.
    fn salt(&self, ballot: u64) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt_key);
        h.update(self.votes.address());
        h.update(ballot.to_be_bytes());
        h.finalize().into()
    }

    /// Looks at every open ballot once (at most [`MAX_BALLOTS_PER_STEP`])
    /// and does what its phase calls for; returns what it did. A failure
    /// on one ballot is logged and tried again at the next step.
    pub async fn step(&mut self) -> Result<Vec<Action>, ReleaseError> {
        let count = self.votes.ballot_count().await?;
        let now = self.votes.chain_time().await?;
        let mut actions = Vec::new();
        let last = count.min(self.first_open.saturating_add(MAX_BALLOTS_PER_STEP - 1));
        let mut all_settled_so_far = true;
        for id in self.first_open..=last {
            let Some(ballot) = self.votes.ballot(id).await? else {
                continue;
            };
            if ballot.outcome != BallotOutcome::Open {
                if all_settled_so_far {
                    self.first_open = id + 1;
                }
                continue;
            }
            all_settled_so_far = false;
            match self.on_ballot(&ballot, now).await {
                Ok(Some(action)) => actions.push(action),
                Ok(None) => {}
                Err(e) => warn!(ballot = id, error = %e, "release vote: will try again"),
            }
        }
        Ok(actions)
    }

    async fn on_ballot(
        &self,
        ballot: &BallotRecord,
        now: u64,
    ) -> Result<Option<Action>, ReleaseError> {
        let id = ballot.id;
        if now >= ballot.reveal_ends_at {
            return match self.votes.settle(id).await {
                Ok(_) => {
                    info!(ballot = id, "settled a release ballot");
                    Ok(Some(Action::Settled(id)))
                }
                // Another validator settled it first.
                Err(ReleaseError::Refused(ReleaseRefusal::AlreadySettled(_))) => Ok(None),
                Err(e) => Err(e),
            };
        }
        let (commitment, revealed) = self.votes.my_vote(id).await?;
        let salt = self.salt(id);
        let me = self.votes.registry().account();
        if now < ballot.commit_ends_at {
            if commitment.is_some() {
                return Ok(None);
            }
            let Some(approve) = self.decide(ballot).await? else {
                return Ok(None);
            };
            self.votes.commit_vote(id, approve, salt).await?;
            info!(ballot = id, approve, kind = ?ballot.kind, "committed a release vote");
            return Ok(Some(Action::Committed {
                ballot: id,
                approve,
            }));
        }
        let Some(commitment) = commitment.filter(|_| !revealed) else {
            return Ok(None);
        };
        let Some(approve) = [true, false]
            .into_iter()
            .find(|v| vote_commitment(id, me, *v, salt) == commitment)
        else {
            // Not a commitment this key's salt made (another program sent
            // it with this account): nothing this validator can reveal.
            warn!(ballot = id, %commitment, "release vote: the commitment on the chain is not one this validator made; cannot reveal");
            return Ok(None);
        };
        self.votes.reveal_vote(id, approve, salt).await?;
        info!(ballot = id, approve, "revealed a release vote");
        Ok(Some(Action::Revealed {
            ballot: id,
            approve,
        }))
    }

    /// The vote on `ballot`: on a proposal, the check's decision; on a
    /// revocation, its opposite (revoke what the check no longer
    /// approves). `None`: abstain.
    async fn decide(&self, ballot: &BallotRecord) -> Result<Option<bool>, ReleaseError> {
        let Some(release) = self.votes.release(ballot.release_id, None).await? else {
            debug!(
                ballot = ballot.id,
                "release vote: the ballot's release is unknown"
            );
            return Ok(None);
        };
        let approve_release = match self.check.decide(&release) {
            Decision::Approve => true,
            Decision::Reject => false,
            Decision::Abstain => return Ok(None),
        };
        Ok(Some(match ballot.kind {
            BallotKind::Release => approve_release,
            BallotKind::Revocation => !approve_release,
        }))
    }
}

/// Why release voting could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReleaseVotingError {
    /// The account key file.
    #[error("release_votes: account key {path}: {source}")]
    AccountKey {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: openrelay_chain::operator::KeyFileError,
    },
    /// The check could not be set up (the own executable unreadable).
    #[error("release_votes.check: {0}")]
    Check(#[source] std::io::Error),
}

/// The account key and the check of `[release_votes]`.
pub(crate) fn prepare(
    key_file: &Path,
    votes: &ReleaseVotesConfig,
    state_dir: &Path,
) -> Result<(PrivateKeySigner, Box<dyn ReleaseCheck>), ReleaseVotingError> {
    let signer = openrelay_chain::operator::load_key_file(key_file).map_err(|source| {
        ReleaseVotingError::AccountKey {
            path: key_file.to_owned(),
            source,
        }
    })?;
    Ok((
        signer,
        check_from_config(votes, state_dir).map_err(ReleaseVotingError::Check)?,
    ))
}

/// A voter started on the first chain connection that can read the
/// release contract, stepped at most every `poll`.
#[derive(Debug)]
pub(crate) struct LazyVoter {
    signer: PrivateKeySigner,
    check: Option<Box<dyn ReleaseCheck>>,
    voter: Option<ReleaseVoter>,
    poll: std::time::Duration,
    last_step: Option<std::time::Instant>,
}

impl LazyVoter {
    pub(crate) fn new(
        signer: PrivateKeySigner,
        check: Box<dyn ReleaseCheck>,
        poll: std::time::Duration,
    ) -> LazyVoter {
        LazyVoter {
            signer,
            check: Some(check),
            voter: None,
            poll,
            last_step: None,
        }
    }

    /// Steps the voter through `registry` if a step is due (a failure is
    /// logged and tried again at a later tick).
    pub(crate) async fn tick(&mut self, registry: &openrelay_chain::operator::Registry) {
        if self.last_step.is_some_and(|at| at.elapsed() < self.poll) {
            return;
        }
        self.last_step = Some(std::time::Instant::now());
        if self.voter.is_none() {
            match registry.release_votes().await {
                Ok(votes) => {
                    if let Some(check) = self.check.take() {
                        info!(contract = %votes.address(), account = %registry.account(), "voting on releases");
                        self.voter = Some(ReleaseVoter::new(votes, &self.signer, check));
                    }
                }
                Err(e) => {
                    warn!(error = %e, "release votes: cannot read the release contract yet; retrying");
                    return;
                }
            }
        }
        if let Some(voter) = self.voter.as_mut()
            && let Err(e) = voter.step().await
        {
            warn!(error = %e, "release votes: cannot read the ballots now; trying again");
        }
    }
}

/// A validator's release votes when it does not measure (a measuring
/// validator ticks its voter in its measuring task, so one task sends all
/// of the account's transactions, never racing for a nonce): connects
/// until it can, then steps every `poll`.
pub(crate) async fn run(chain: openrelay_config::chain::ChainConfig, mut voter: LazyVoter) {
    let registry = loop {
        match openrelay_chain::operator::Registry::connect(
            &chain.rpc,
            chain.chain_id,
            alloy::primitives::Address::from(chain.contract.0),
            voter.signer.clone(),
            openrelay_chain::operator::DEFAULT_RPC_TIMEOUT,
        )
        .await
        {
            Ok(registry) => break registry,
            Err(e) => {
                warn!(error = %e, "release votes: cannot reach the chain yet; retrying");
                tokio::time::sleep(voter.poll).await;
            }
        }
    };
    loop {
        voter.tick(&registry).await;
        tokio::time::sleep(voter.poll).await;
    }
}
