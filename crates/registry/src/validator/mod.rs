//! A validator (`openrelay validator`): its own view of the relays, its
//! votes, and its checks of the registry's proposals.
//!
//! **Why relays publish to validators** (rather than validators fetching
//! descriptors): a validator can only fetch from somewhere it knows of, and
//! the only list of relays is the registry's, which may leave a relay out.
//! Relays therefore publish to the registry *and* to every validator (their
//! `[[publish.validators]]`), each validator keeps its own store of what was
//! published to it (the same rules as the registry's, [`crate::Registry`]),
//! and no relay depends on the registry to be seen.
//!
//! Every poll the validator:
//! 1. votes: signs the list of relays live in its view and posts it to the
//!    registry, then forwards any of them the registry says it lacks;
//! 2. fetches the proposal (the directory and the votes it was built from)
//!    and checks it ([`check::check_proposal`]): a registry can neither hide a
//!    relay most validators saw nor add one they did not, nor reuse,
//!    roll back or run away with sequence numbers;
//! 3. records what it is about to sign in its state directory (so a restart
//!    cannot make it sign two directories under one number), then signs.
//!
//! Logging: a refusal an honest registry can cause in passing
//! ([`check::Refusal::is_transient`]) and the registry's benign answers
//! (already served, replaced) are logged at debug; a transient refusal that
//! lasts longer than [`TRANSIENT_GRACE_SECS`], and every other refusal, warn.

pub mod check;
mod measuring;
mod partner;
mod probe_stocking;
pub mod release_votes;

pub use measuring::MeasuringError;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openrelay_config::ValidatorConfig;
use openrelay_directory::vote::{IssuerVote, SignedVote, Vote, VoteEntry};
use openrelay_directory::{
    DirectoryDigest, KeyError, Proposal, ValidatorId, ValidatorKey, ValidatorSignature,
};
use openrelay_transport::endpoint::OUTER_MTU;
use openrelay_transport::identity::Identity;
use openrelay_transport::server::{RequestContext, RequestHandler, ServerStream, StartError};
use openrelay_transport::service::Service;
use tracing::{debug, info, warn};

use crate::chain::ChainRing;
use crate::measurements::{MeasurementRecord, RecordError};
use crate::publication::{self, Publication, reply};
use crate::service::{Wanted, decode_wanted};
use crate::{RedbStore, Registry, RegistryStore, StoreError};
use check::{
    LastSigned, Refusal, Rules, Verdict, check_proposal_on_chain, check_proposal_with_own,
};
use openrelay_measure::{EpochOutcome, MeasureParams};

fn lock_ring(ring: &std::sync::Mutex<ChainRing>) -> std::sync::MutexGuard<'_, ChainRing> {
    ring.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
use openrelay_registry_client::RegistryClient;
use openrelay_registry_client::paths;
use openrelay_types::{ErrorKind, HasKind, unix_now};

/// A validator votes again at least this often, even when its view did not
/// change, so its vote stays fresh at the registry.
pub const REVOTE_SECS: u64 = 30;
/// A refusal an honest registry can cause in passing is logged at debug
/// until it lasts this long.
pub const TRANSIENT_GRACE_SECS: u64 = 60;
/// The store file in the validator's state directory.
pub const STORE_FILE: &str = "validator.redb";
/// The key of the last-signed record in the store.
const LAST_SIGNED: &str = "last_signed";

/// Why a validator could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ValidatorError {
    /// Its store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key in the config is not usable.
    #[error("validators: {0}")]
    Validators(#[from] KeyError),
    /// Its own key is not listed among the validators.
    #[error("validators: this validator's own key {0} is not listed")]
    OwnKeyNotListed(ValidatorId),
}

impl HasKind for ValidatorError {
    fn kind(&self) -> ErrorKind {
        match self {
            ValidatorError::Store(_) => ErrorKind::Storage,
            ValidatorError::Validators(_) | ValidatorError::OwnKeyNotListed(_) => ErrorKind::Config,
        }
    }
}

/// A validator: its key, its view of the relays, its rules and its record.
#[derive(Debug)]
pub struct Validator {
    key: ValidatorKey,
    registry: Arc<Registry<RedbStore>>,
    rules: Rules,
    poll: Duration,
    /// `[chain]`: the registry contract, followed through this
    /// validator's own node (never the registry's).
    chain: Option<openrelay_config::chain::ChainConfig>,
    /// Its recent confirmed blocks.
    ring: std::sync::Mutex<ChainRing>,
    /// `[measure]` and the state directory its account key is under.
    measure: Option<(openrelay_config::MeasureConfig, std::path::PathBuf)>,
    /// Its own record of the settled measurement epochs (issue 14), which
    /// proposals' measurements must match.
    measurements: std::sync::Mutex<MeasurementRecord>,
    /// `[release_votes]`: its check and the account key file it votes
    /// with.
    release_votes: Option<(
        openrelay_config::ReleaseVotesConfig,
        std::path::PathBuf,
        std::path::PathBuf,
    )>,
}

/// What a vote says: the relays and the issuers' key sets.
type View = (Vec<VoteEntry>, Vec<IssuerVote>);

/// What the validator's loop remembers between rounds.
#[derive(Debug, Default)]
struct Round {
    last_vote: Option<(View, u64)>,
    /// The digest last signed and whether the registry took the signature.
    posted: Option<(DirectoryDigest, bool)>,
    /// Since when proposals have been refused for a transient reason.
    transient_since: Option<u64>,
    /// The last proposal refused for a lasting reason (warned once).
    refused: Option<DirectoryDigest>,
    /// With `[chain]`: the hand-overs this validator signed, by epoch,
    /// with when the registry last took each (posted again every
    /// [`REVOTE_SECS`], so a restarted registry has them again).
    handovers: std::collections::BTreeMap<
        u64,
        (openrelay_directory::SignedValidatorSetChange, Option<u64>),
    >,
}

impl Validator {
    /// A validator for `config` with signing key `key`; its store is in the
    /// state directory.
    pub fn new(config: &ValidatorConfig, key: ValidatorKey) -> Result<Self, ValidatorError> {
        let validators: BTreeSet<ValidatorId> = config
            .validators
            .iter()
            .map(|pin| ValidatorId::try_from(*pin))
            .collect::<Result<_, _>>()?;
        // With `[chain]` the configured list is the genesis set; a validator
        // that joined on chain later is in the chain's set instead.
        if config.chain.is_none() && !validators.contains(&key.id()) {
            return Err(ValidatorError::OwnKeyNotListed(key.id()));
        }
        let store = RedbStore::open(&config.state_dir.join(STORE_FILE))?;
        let registry = Registry::open(store, config.publication.clone())?;
        let params = config
            .chain
            .as_ref()
            .map_or_else(MeasureParams::default, |c| {
                crate::settle::verdict_params(c.verdicts)
            });
        let measurements = MeasurementRecord::load(registry.store(), params)?;
        Ok(Validator {
            rules: Rules {
                own: key.id(),
                validators,
                threshold: config.threshold,
                max_lifetime_secs: config.max_directory_lifetime_secs,
                limits: config.publication.clone(),
            },
            key,
            registry: Arc::new(registry),
            poll: Duration::from_secs(config.poll_interval_secs),
            chain: config.chain.clone(),
            ring: std::sync::Mutex::new(ChainRing::default()),
            measure: config
                .measure
                .clone()
                .map(|m| (m, config.state_dir.clone())),
            measurements: std::sync::Mutex::new(measurements),
            release_votes: config
                .release_votes
                .as_ref()
                .zip(config.release_votes_key_file())
                .map(|(votes, file)| (votes.clone(), file, config.state_dir.clone())),
        })
    }

    /// Records a settled measurement epoch's verdicts (`outcome`, of the
    /// epoch that ended at `epoch_end_unix`), durably: proposals are
    /// checked against it from now on.
    pub fn record_epoch(
        &self,
        outcome: &EpochOutcome,
        epoch_end_unix: u64,
    ) -> Result<(), RecordError> {
        self.measurements
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .record_epoch(self.registry.store(), outcome, epoch_end_unix)
    }

    /// The validator's public key.
    pub fn id(&self) -> ValidatorId {
        self.key.id()
    }

    /// What this validator signed last.
    pub fn last_signed(&self) -> Result<Option<LastSigned>, StoreError> {
        Ok(self
            .registry
            .store()
            .meta(LAST_SIGNED)?
            .and_then(|bytes| LastSigned::from_bytes(&bytes)))
    }

    /// The validator's QUIC endpoint (relays publish to it) on
    /// `config.listen`, with its `[limits]`; only relays and the registry
    /// call it, directly, so it takes the outer MTU.
    pub fn bind(config: &ValidatorConfig, identity: &Identity) -> Result<Service, StartError> {
        Service::bind_service(config.listen, identity, OUTER_MTU, &config.limits)
    }

    /// Serves relays' publications on `service` and checks and signs the
    /// proposals of `registry` every poll, until `shutdown`.
    pub async fn run(
        self,
        mut service: Service,
        registry: RegistryClient,
        shutdown: impl Future<Output = ()>,
    ) {
        let validator = Arc::new(self);
        info!(validator = %validator.key.id(), "validator started");
        if let Some(chain) = validator.chain.clone() {
            let following = Arc::clone(&validator);
            service.spawn(crate::chain::follow(chain.clone(), move |view| {
                debug!(
                    block = view.snapshot().block_number,
                    "chain block confirmed"
                );
                lock_ring(&following.ring).push(view);
            }));
            let voter = validator.release_voter();
            // The settled epochs are what proposals' measurements are
            // checked against; reading them signs nothing.
            let recording = Arc::clone(&validator);
            match validator.measure.clone() {
                // A measuring validator settles (and votes on releases) in
                // its measuring task.
                Some((measure, state_dir)) => service.spawn(async move {
                    if let Err(e) =
                        measuring::run(recording, chain, measure, state_dir, voter).await
                    {
                        warn!(error = %e, "not measuring relays");
                    }
                }),
                None => {
                    if let Some(voter) = voter {
                        service.spawn(release_votes::run(chain.clone(), voter));
                    }
                    service.spawn(crate::settle::run_recording(
                        chain,
                        Arc::clone(&validator.registry),
                        move |outcome, ended_at| recording.record_epoch(outcome, ended_at),
                    ));
                }
            }
        }
        let publications = Arc::new(PublicationService(Arc::clone(&validator.registry)));
        let voting = Arc::clone(&validator);
        service.spawn(async move {
            let mut round = Round::default();
            loop {
                tokio::time::sleep(voting.poll).await;
                voting.round(&registry, &mut round).await;
            }
        });
        service
            .serve(publications, shutdown)
            .await
            .log("validator stopped");
    }

    /// The release voter of `[release_votes]`, if it can start (why not is
    /// logged: the validator runs on without voting, and so is never
    /// slashed for a vote).
    fn release_voter(&self) -> Option<release_votes::LazyVoter> {
        let (votes, key_file, state_dir) = self.release_votes.clone()?;
        match release_votes::prepare(&key_file, &votes, &state_dir) {
            Ok((signer, check)) => Some(release_votes::LazyVoter::new(signer, check, self.poll)),
            Err(e) => {
                warn!(error = %e, "not voting on releases");
                None
            }
        }
    }

    async fn round(self: &Arc<Self>, registry: &RegistryClient, round: &mut Round) {
        let now = unix_now();
        let this = Arc::clone(self);
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || this.registry.prune(now)).await {
            warn!(error = %e, "prune failed");
        }
        self.vote(registry, round, now).await;
        self.hand_over(registry, round, now).await;
        self.sign_proposal(registry, round, now).await;
    }

    /// Votes, if the view changed or the last vote is getting old, and
    /// forwards what the registry lacks.
    async fn vote(self: &Arc<Self>, registry: &RegistryClient, round: &mut Round, now: u64) {
        let this = Arc::clone(self);
        let last = round.last_vote.clone();
        // Listing and signing up to 20,000 relays: off the runtime.
        let made = tokio::task::spawn_blocking(move || this.make_vote(last.as_ref(), now)).await;
        let (view, vote) = match made {
            Ok(Ok(Some(made))) => made,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                warn!(error = %e, "cannot make a vote");
                return;
            }
        };
        match registry
            .call(http::Method::POST, paths::VOTES, vote.to_bytes())
            .await
        {
            Ok((200, wanted)) => {
                debug!(relays = view.0.len(), key_sets = view.1.len(), "voted");
                round.last_vote = Some((view, now));
                self.forward(registry, &wanted).await;
            }
            // The registry holds a vote of this second already (a restart).
            Ok((409, _)) => debug!("vote not newer than the one the registry holds"),
            Ok((status, reply)) => {
                warn!(status, reply = %String::from_utf8_lossy(&reply).trim(), "vote not accepted");
            }
            Err(e) => warn!(error = %e, "cannot post the vote"),
        }
    }

    /// Signs the hand-over to every set change its own node shows
    /// confirmed (the change's block is in its ring) where it is a member
    /// of the previous set, and posts every hand-over it signed.
    async fn hand_over(&self, registry: &RegistryClient, round: &mut Round, now: u64) {
        if self.chain.is_none() {
            return;
        }
        {
            let ring = lock_ring(&self.ring);
            let Some(latest) = ring.latest() else {
                return;
            };
            let sets = &latest.snapshot().validator_sets;
            for (epoch, pair) in (1u64..).zip(sets.windows(2)) {
                if round.handovers.contains_key(&epoch) {
                    continue;
                }
                let (Some(previous), Some(next)) = (pair.first(), pair.get(1)) else {
                    continue;
                };
                let member = crate::chain::to_validator_set(previous)
                    .is_some_and(|set| set.weight_of(&self.key.id()).is_some());
                let Some(anchor) = ring.anchor_at(next.block_number) else {
                    continue;
                };
                let change = crate::chain::to_validator_set(next)
                    .and_then(|set| openrelay_directory::ValidatorSetChange::new(anchor, set).ok());
                if let (true, Some(change)) = (member, change) {
                    let mut signed = openrelay_directory::SignedValidatorSetChange::new(change);
                    signed.sign(&self.key);
                    info!(
                        epoch,
                        "signed the hand-over to the chain's new validator set"
                    );
                    round.handovers.insert(epoch, (signed, None));
                }
            }
        }
        for (epoch, (signed, taken_at)) in &mut round.handovers {
            if taken_at.is_some_and(|at| now.saturating_sub(at) < REVOTE_SECS) {
                continue;
            }
            match registry
                .call(http::Method::POST, paths::HANDOVERS, signed.to_bytes())
                .await
            {
                Ok((204, _)) => {
                    debug!(epoch, "hand-over posted");
                    *taken_at = Some(now);
                }
                Ok((status, reply)) => {
                    warn!(epoch, status, reply = %String::from_utf8_lossy(&reply).trim(), "hand-over not accepted");
                }
                Err(e) => warn!(epoch, error = %e, "cannot post the hand-over"),
            }
        }
    }

    /// This validator's signed vote at `now`, with its entries, unless its
    /// view is what it voted for `last` and that vote is recent.
    fn make_vote(
        &self,
        last: Option<&(View, u64)>,
        now: u64,
    ) -> Result<Option<(View, SignedVote)>, VoteError> {
        let valid_until = now.saturating_add(self.rules.max_lifetime_secs);
        let entries = if self.chain.is_some() {
            // Only relays this validator's own chain view admits: an
            // unstaked relay is never elected. No vote before a block is
            // confirmed.
            let Some(chain) = lock_ring(&self.ring).latest().cloned() else {
                return Ok(None);
            };
            self.registry
                .vote_entries_admitted(now, valid_until, |d, p| chain.admit(d, p).is_ok())
        } else {
            self.registry.vote_entries(now, valid_until)
        };
        let view: View = (entries, self.registry.key_set_votes(now));
        let due = match last {
            Some((voted, at)) => {
                (*voted != view || now.saturating_sub(*at) >= REVOTE_SECS) && now > *at
            }
            None => true,
        };
        if !due {
            return Ok(None);
        }
        let vote = Vote::new(self.key.id(), now, view.0.clone())?.with_issuers(view.1.clone())?;
        Ok(Some((view, self.key.sign_vote(vote)?)))
    }

    /// Forwards what the registry said it lacks (the answer to a vote) from
    /// this validator's view: relays' profiles and descriptors (the relay
    /// may not have reached the registry) and issuers' key sets (the one
    /// this validator voted for).
    async fn forward(&self, registry: &RegistryClient, wanted: &[u8]) {
        for wanted in decode_wanted(wanted) {
            let publications = match wanted {
                Wanted::Relay(relay) => match self.registry.publication_of(&relay) {
                    Some((profile, descriptor)) => {
                        vec![(paths::PROFILES, profile), (paths::DESCRIPTORS, descriptor)]
                    }
                    None => continue,
                },
                Wanted::KeySet(issuer) => match self.registry.newest_key_set(&issuer) {
                    Some(set) => vec![(paths::ISSUER_KEYS, set)],
                    None => continue,
                },
            };
            for (path, body) in publications {
                match registry.call(http::Method::POST, path, body).await {
                    // 409: it has this one (or a newer one) by now.
                    Ok((204 | 409, _)) => {}
                    Ok((status, reply)) => {
                        debug!(?wanted, status, reply = %String::from_utf8_lossy(&reply).trim(), "forwarding refused");
                    }
                    Err(e) => debug!(?wanted, error = %e, "cannot forward"),
                }
            }
            debug!(?wanted, "forwarded what the registry lacked");
        }
    }

    async fn sign_proposal(
        self: &Arc<Self>,
        registry: &RegistryClient,
        round: &mut Round,
        now: u64,
    ) {
        let body = match registry
            .call(http::Method::GET, paths::PROPOSAL, Vec::new())
            .await
        {
            Ok((200, body)) => body,
            Ok(_) => return, // Nothing to sign.
            Err(e) => {
                warn!(error = %e, "cannot fetch the proposal");
                return;
            }
        };
        let this = Arc::clone(self);
        let checked = tokio::task::spawn_blocking(move || this.check_and_record(&body, now)).await;
        let (digest, signature) = match checked {
            Ok(Ok(Signing::New(digest, signature))) => (digest, signature),
            // Signed before: post again only if the registry did not take it.
            Ok(Ok(Signing::Again(digest, signature))) => {
                if round.posted == Some((digest, true)) {
                    return;
                }
                (digest, signature)
            }
            Ok(Err(Checked::Refused(refusal, digest))) => {
                self.refused(round, refusal, digest, now);
                return;
            }
            Ok(Err(Checked::Store(e))) => {
                warn!(error = %e, "cannot record the directory to sign; not signing");
                return;
            }
            Err(_) => return,
        };
        round.transient_since = None;
        let mut body = self.key.id().as_bytes().to_vec();
        body.extend_from_slice(digest.as_bytes());
        body.extend_from_slice(signature.signature.as_bytes());
        let taken = match registry
            .call(http::Method::POST, paths::SIGNATURES, body)
            .await
        {
            Ok((204, _)) => {
                info!(%digest, "signed a directory");
                true
            }
            Ok((200, _)) => {
                debug!(%digest, "signed a directory the registry already serves");
                true
            }
            Ok((410, _)) => {
                debug!(%digest, "signed a proposal the registry has replaced meanwhile");
                true
            }
            Ok((status, reply)) => {
                warn!(status, reply = %String::from_utf8_lossy(&reply).trim(), "signature not accepted");
                false
            }
            Err(e) => {
                warn!(error = %e, "cannot post the signature");
                false
            }
        };
        round.posted = Some((digest, taken));
    }

    /// Checks a proposal and, if it is to be signed, records it durably and
    /// signs it.
    fn check_and_record(&self, body: &[u8], now: u64) -> Result<Signing, Checked> {
        let proposal = Proposal::from_bytes(body)
            .map_err(|e| Checked::Refused(Refusal::Malformed(e), None))?;
        let digest = DirectoryDigest::of(&proposal.directory);
        let last = self.last_signed().map_err(Checked::Store)?;
        let own = |relay: &openrelay_directory::RelayId| self.registry.descriptor(relay);
        let checked = if self.chain.is_some() {
            let ring = lock_ring(&self.ring);
            let measurements = self
                .measurements
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let on_chain = check::OnChain {
                ring: &ring,
                own_descriptor: &own,
                measurements: &measurements,
            };
            check_proposal_on_chain(&proposal, &self.rules, &on_chain, last.as_ref(), now)
        } else {
            check_proposal_with_own(&proposal, &self.rules, &own, last.as_ref(), now)
        };
        match checked {
            // Ed25519 is deterministic: the same signature as the first time.
            Ok(Verdict::AlreadySigned) => Ok(Signing::Again(
                digest,
                self.key.sign_directory_bytes(&proposal.directory),
            )),
            Ok(Verdict::Sign { directory, digest }) => {
                // Written (durably) before the signature exists, so a crash
                // right after can never lead to signing another directory
                // under this sequence.
                let record = LastSigned {
                    sequence: directory.sequence(),
                    issued_at: directory.issued_at(),
                    digest,
                    signed_at: now,
                };
                self.registry
                    .store()
                    .put_meta(LAST_SIGNED, &record.to_bytes())
                    .map_err(Checked::Store)?;
                Ok(Signing::New(digest, self.key.sign_directory(&directory)))
            }
            Err(refusal) => Err(Checked::Refused(refusal, Some(digest))),
        }
    }

    fn refused(
        &self,
        round: &mut Round,
        refusal: Refusal,
        digest: Option<DirectoryDigest>,
        now: u64,
    ) {
        if refusal.is_transient() {
            let since = *round.transient_since.get_or_insert(now);
            if now.saturating_sub(since) < TRANSIENT_GRACE_SECS {
                debug!(reason = %refusal, "not signing the proposal yet");
            } else {
                warn!(reason = %refusal, secs = now - since, "refusing the registry's proposals");
            }
            return;
        }
        round.transient_since = None;
        if digest.is_none() || round.refused != digest {
            warn!(reason = %refusal, "refusing to sign a proposal");
            round.refused = digest;
        }
    }
}

/// Why no vote could be made (neither can happen with the publication
/// limits in force, but neither is a reason to panic).
#[derive(Debug, thiserror::Error)]
enum VoteError {
    #[error(transparent)]
    Format(#[from] openrelay_directory::FormatError),
    #[error(transparent)]
    Sign(#[from] openrelay_directory::vote::VoteSignError),
}

/// A signature to post.
#[derive(Debug)]
enum Signing {
    /// Over a directory signed just now.
    New(DirectoryDigest, ValidatorSignature),
    /// Over the directory signed last time.
    Again(DirectoryDigest, ValidatorSignature),
}

/// Why a proposal was not signed.
#[derive(Debug)]
enum Checked {
    Refused(Refusal, Option<DirectoryDigest>),
    Store(StoreError),
}

/// The validator's server: relays' publications (the same endpoints as the
/// registry's).
#[derive(Debug)]
struct PublicationService(Arc<Registry<RedbStore>>);

impl RequestHandler for PublicationService {
    async fn handle(
        self: Arc<Self>,
        request: http::Request<()>,
        stream: ServerStream,
        _context: RequestContext,
    ) {
        let now = unix_now();
        let publication = Publication::at(request.uri().path());
        match (request.method(), publication) {
            (&http::Method::POST, Some(what)) => {
                // A validator holds only a newer set than its own (replays
                // refused): its vote is its own view.
                publication::serve(Arc::clone(&self.0), what, stream, now, |r, b, now| {
                    r.publish_key_set(b, now).map(drop)
                })
                .await;
            }
            _ => reply(stream, 404, "unknown request", None).await,
        }
    }
}
