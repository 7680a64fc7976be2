//! `openrelay registry` on the network: an HTTP/3 server (the relays' server
//! loop, `transport::server`) with a pinned key.
//!
//! | request | does |
//! |---|---|
//! | `POST /v1/profiles` | publish a signed operator profile |
//! | `POST /v1/descriptors` | publish or refresh a signed descriptor |
//! | `POST /v1/issuer-keys` | publish an issuer's signed token key set (RFC 9576 §6; [`crate::key_sets`]) |
//! | `POST /v1/votes` | a validator's signed vote; answered with what it names that this registry lacks, which the validator then forwards: entries of a kind byte (1 relay, 2 issuer key set) and a 32-byte id |
//! | `GET /v1/proposal` | the directory waiting for validator signatures, with the votes it was built from (`docs/directory-format.md`, "Proposal") |
//! | `POST /v1/signatures` | a validator's signature: 32-byte validator id, 32-byte SHA-256 of the directory signed, 64-byte signature |
//! | `GET /v1/directory` | the newest directory signed by a threshold of validators |
//! | `GET /v1/directory/diff?from=<hex SHA-256 of a signed directory>` | 200 the diff from that directory to the newest (`registry::diffs`: made once per served directory, only from the 8 kept ones); 204 it is the newest; 404 no diff from it (fetch the whole directory); 400 a malformed `from` |
//! | `POST /v1/handovers` | with `[chain]`: a validator set hand-over (`SignedValidatorSetChange`) signed by members of the previous set, checked against this registry's chain view |
//!
//! A proposal lists exactly the relays most of the validators' current votes
//! list ([`openrelay_directory::vote::tally`]), and exactly the issuer key
//! sets most of them name ([`openrelay_directory::vote::tally_issuers`]);
//! validators refuse anything else. While the votes on a listed issuer's set
//! are split (validators still catching up with a new set), no new
//! directory is proposed for up to [`KEY_SET_SPLIT_GRACE_SECS`], so an
//! honest rotation never drops the issuer's keys from the directory for a
//! round; an issuer that keeps validators split (equivocating) loses its
//! listing after that. Every signature is verified before it is kept, so nobody can
//! displace a validator's signature with a forged one; a directory is served
//! only once the client-side verification (`verify_directory`) passes with
//! the configured validators and threshold.
//!
//! Answers to a signature: `204` counted for the pending proposal; `200` the
//! directory it signs is already served (the threshold was reached without
//! it), the signature was added to it; `410` it signs a proposal that was
//! replaced meanwhile. These three are a validator's normal life. Anything
//! else (`400`, `403`) is a real problem.
//!
//! All CPU work (signature checks, assembling and verifying directories)
//! runs on blocking threads, not on the async runtime.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use openrelay_config::RegistryConfig;
use openrelay_directory::vote::{SignedVote, tally, tally_issuers};
use openrelay_directory::{
    Directory, DirectoryDigest, IssuerId, MAX_CLOCK_SKEW_SECS, Proposal, RelayId, Signature,
    SignedDirectory, SignedDirectoryDigest, SignedIssuerKeySet, SignedValidatorSetChange,
    TrustConfig, TrustConfigError, ValidatorId, ValidatorSignature, verify_directory,
};
use openrelay_measure::{EpochOutcome, MeasureParams};
use openrelay_registry_client::measurements::{
    MAX_EXPLANATIONS_PER_PAGE, MeasurementsFilter, MeasurementsPage, MeasurementsQuery, QueryError,
};
use openrelay_registry_client::paths;
use openrelay_transport::endpoint::TUNNELLED_MTU;
use openrelay_transport::identity::Identity;
use openrelay_transport::server::{self, RequestContext, RequestHandler, ServerStream, StartError};
use openrelay_transport::service::Service;
use openrelay_types::{ErrorKind, HasKind, unix_now};
use tracing::{debug, info, warn};

use crate::chain::{ChainView, to_validator_set, votes_needed};
use crate::diffs::{DiffAnswer, DirectoryDiffs};
use crate::measurements::{MeasurementRecord, RecordError};
use crate::publication::{self, Publication, reply};
use crate::{RedbStore, Registry, RegistryStore, same_contents};

/// How old a vote may be and still count (validators vote every poll and at
/// least every [`crate::validator::REVOTE_SECS`]).
pub const VOTE_MAX_AGE_SECS: u64 = 120;
/// A proposal nobody signed is rebuilt after this long, so the one offered
/// is always recent (validators refuse directories issued long ago) and its
/// votes are current.
pub const PROPOSAL_MAX_AGE_SECS: u64 = 30;
/// Length of a signature submission: validator id, directory digest,
/// signature.
pub const SIGNATURE_SUBMISSION_LEN: usize = 32 + 32 + 64;
/// Most bytes of a hand-over submission: a change to the largest set, with
/// every member of the previous set's signature (about 10 KB).
pub const MAX_HANDOVER_BYTES: usize = 16 * 1024;
/// How long the registry holds off proposing while the votes on a listed
/// issuer's key set are split (see the module documentation).
pub const KEY_SET_SPLIT_GRACE_SECS: u64 = 60;

/// What a vote names that the registry lacks (the answer to `POST
/// /v1/votes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// A relay's profile and descriptor.
    Relay(RelayId),
    /// An issuer's key set (the one the voter holds).
    KeySet(IssuerId),
}

const WANTED_RELAY: u8 = 1;
const WANTED_KEY_SET: u8 = 2;

/// The answer to a vote: one kind byte and a 32-byte id per entry.
pub fn encode_wanted(wanted: &[Wanted]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wanted.len() * 33);
    for entry in wanted {
        let (kind, id) = match entry {
            Wanted::Relay(relay) => (WANTED_RELAY, relay.to_bytes()),
            Wanted::KeySet(issuer) => (WANTED_KEY_SET, issuer.to_bytes()),
        };
        out.push(kind);
        out.extend_from_slice(&id);
    }
    out
}

/// Reads an answer to a vote; entries that are not a known kind and a usable
/// key are skipped (a registry's answer is untrusted).
pub fn decode_wanted(bytes: &[u8]) -> Vec<Wanted> {
    bytes
        .chunks_exact(33)
        .filter_map(|entry| {
            let (kind, id) = entry.split_first()?;
            let id = <[u8; 32]>::try_from(id).ok()?;
            match *kind {
                WANTED_RELAY => RelayId::from_bytes(id).ok().map(Wanted::Relay),
                WANTED_KEY_SET => IssuerId::from_bytes(id).ok().map(Wanted::KeySet),
                _ => None,
            }
        })
        .collect()
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    /// The validator set is not usable.
    #[error("validators: {0}")]
    Trust(#[from] TrustConfigError),
}

impl HasKind for ServiceError {
    fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::Store(_) => ErrorKind::Storage,
            ServiceError::Trust(_) => ErrorKind::Config,
        }
    }
}

/// The key under which the registry remembers the last sequence it proposed,
/// so a restart never offers two different directories under one number.
const LAST_PROPOSED: &str = "last_proposed_sequence";

/// A directory waiting for signatures.
#[derive(Debug)]
struct Pending {
    envelope: SignedDirectory,
    directory: Directory,
    digest: DirectoryDigest,
    voters: BTreeSet<ValidatorId>,
    created_at: u64,
    /// The proposal as served (directory and votes).
    encoded: Bytes,
}

/// The directory being served.
#[derive(Debug)]
struct Served {
    envelope: SignedDirectory,
    directory: Directory,
    digest: DirectoryDigest,
    encoded: Bytes,
    /// SHA-256 of `encoded`: what a client holding it names to get a diff.
    encoded_digest: SignedDirectoryDigest,
}

impl Served {
    fn of(envelope: SignedDirectory) -> Option<Served> {
        let directory = Directory::from_bytes(&envelope.directory).ok()?;
        let encoded = Bytes::from(envelope.to_bytes());
        Some(Served {
            digest: envelope.digest(),
            encoded_digest: SignedDirectoryDigest::of(&encoded),
            encoded,
            directory,
            envelope,
        })
    }
}

/// The base a diff request names: `from=` and 64 hex digits, nothing else.
fn diff_base(query: Option<&str>) -> Result<SignedDirectoryDigest, &'static str> {
    query
        .and_then(|q| q.strip_prefix("from="))
        .ok_or("the query must be from=<SHA-256 of the held signed directory, hex>")?
        .parse()
        .map_err(|_| "from must be 64 hex digits")
}

/// Whether `pending`'s chain anchor is [`REANCHOR_BLOCKS`] or more below
/// the registry's view: a validator that started after the anchor block
/// never had it in its ring and refuses the proposal, so it is rebuilt at
/// the view. Half the validators' ring, so a validator that is slow to
/// fetch still finds the anchor in its ring while the proposal stands.
pub(crate) fn anchor_left_behind(pending: &Directory, view: Option<&ChainView>) -> bool {
    match (pending.chain(), view) {
        (Some(section), Some(view)) => {
            view.anchor().block_number
                >= section.anchor.block_number.saturating_add(REANCHOR_BLOCKS)
        }
        _ => false,
    }
}

/// How far (in blocks) the registry's view may move past a pending
/// proposal's anchor before the proposal is rebuilt at the view: half the
/// validators' ring ([`crate::chain::CHAIN_RING_BLOCKS`]), so a validator
/// that started after the anchor block signs the next one, and one slow to
/// fetch still finds the anchor in its ring while the proposal stands.
pub const REANCHOR_BLOCKS: u64 = (crate::chain::CHAIN_RING_BLOCKS / 2) as u64;

/// What became of a validator's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SignatureOutcome {
    /// Counted for the pending proposal.
    Counted,
    /// The directory it signs is already served; added to it.
    AlreadyServed,
    /// It signs a proposal that has been replaced.
    Superseded,
}

/// The registry service.
#[derive(Debug)]
pub struct RegistryService {
    registry: Arc<Registry<RedbStore>>,
    trust: TrustConfig,
    validators: BTreeSet<ValidatorId>,
    threshold: usize,
    lifetime: u64,
    proposal_interval: Duration,
    votes: Mutex<BTreeMap<ValidatorId, SignedVote>>,
    pending: Mutex<Option<Pending>>,
    served: Mutex<Option<Served>>,
    /// Diffs to the served directory from the kept ones.
    diffs: DirectoryDiffs,
    /// Since when elected relays could not be listed (no usable descriptor
    /// here), for a warning if it lasts.
    missing_since: Mutex<Option<u64>>,
    /// Since when the votes on a listed issuer's key set have been split.
    split_since: Mutex<Option<u64>>,
    /// `[chain]`: the registry contract followed through the registry's
    /// node, and the latest confirmed view of it (`None` until one).
    chain: Option<openrelay_config::chain::ChainConfig>,
    chain_view: Mutex<Option<ChainView>>,
    /// Hand-overs received, per epoch: the distinct changes validators
    /// signed for it (at most [`openrelay_directory::MAX_VALIDATORS`]),
    /// each with the verified signatures of members of the previous set.
    /// Written through to the store (under [`handover_slot`]) and read
    /// back at start.
    handovers: Mutex<BTreeMap<u64, Vec<SignedValidatorSetChange>>>,
    /// The settled measurement epochs (issue 14): which relays a
    /// chain-backed directory lists and with which measured bandwidth,
    /// and the explanations `GET /v1/measurements` serves.
    measurements: Mutex<MeasurementRecord>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RegistryService {
    /// The service for `config`, with its store in the state directory.
    pub fn new(config: &RegistryConfig) -> Result<Self, ServiceError> {
        let store = RedbStore::open(&config.state_dir.join("registry.redb"))?;
        let registry = Registry::open(store, config.publication.clone())?;
        // Served directories must pass exactly what clients will check.
        let trust = TrustConfig::from_pins(
            &config.validators,
            config.threshold,
            config.directory_lifetime_secs,
        )?;
        let validators = trust.validators().to_vec();
        let served = registry
            .latest()?
            .and_then(|bytes| SignedDirectory::from_bytes(&bytes).ok())
            .and_then(Served::of);
        let diffs = DirectoryDiffs::load(
            registry.store(),
            served.as_ref().map(|s| s.directory.sequence()),
        )?;
        Ok(RegistryService {
            trust,
            validators: validators.into_iter().collect(),
            threshold: config.threshold,
            lifetime: config.directory_lifetime_secs,
            proposal_interval: Duration::from_secs(config.proposal_interval_secs),
            votes: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(None),
            served: Mutex::new(served),
            diffs,
            missing_since: Mutex::new(None),
            split_since: Mutex::new(None),
            chain: config.chain.clone(),
            chain_view: Mutex::new(None),
            handovers: Mutex::new(load_handovers(registry.store())?),
            // The parameters label the explanations and date epochs a
            // record missed; the verdicts come in with each outcome.
            measurements: Mutex::new(MeasurementRecord::load(
                registry.store(),
                config
                    .chain
                    .as_ref()
                    .map_or_else(MeasureParams::default, |c| {
                        crate::settle::verdict_params(c.verdicts)
                    }),
            )?),
            registry: Arc::new(registry),
        })
    }

    /// The registry's QUIC endpoint on `config.listen`, with its `[limits]`.
    /// Clients reach the registry through their relays (QUIC inside a
    /// connect-udp flow), so its packets must fit their datagrams.
    pub fn bind(config: &RegistryConfig, identity: &Identity) -> Result<Service, StartError> {
        Service::bind_service(config.listen, identity, TUNNELLED_MTU, &config.limits)
    }

    /// Serves `service` and proposes directories until `shutdown`.
    pub async fn run(self: Arc<Self>, mut service: Service, shutdown: impl Future<Output = ()>) {
        if let Some(chain) = self.chain.clone() {
            let following = Arc::clone(&self);
            service.spawn(crate::chain::follow(chain.clone(), move |view| {
                debug!(
                    block = view.snapshot().block_number,
                    "chain block confirmed"
                );
                *lock(&following.chain_view) = Some(view);
            }));
            // Settling measurement epochs only reads the chain: the key
            // signs nothing.
            let recording = Arc::clone(&self);
            service.spawn(crate::settle::run_recording(
                chain,
                Arc::clone(&self.registry),
                move |outcome, ended_at| recording.record_epoch(outcome, ended_at),
            ));
        }
        let proposer = Arc::clone(&self);
        service.spawn(async move {
            loop {
                let round = Arc::clone(&proposer);
                // Assembling a directory is CPU work: off the runtime.
                let _ = tokio::task::spawn_blocking(move || round.propose(unix_now())).await;
                tokio::time::sleep(proposer.proposal_interval).await;
            }
        });
        info!("registry serving");
        service.serve(self, shutdown).await.log("registry stopped");
    }

    /// The validators whose votes and signatures count, and how many votes
    /// a proposal needs: with `[chain]` the chain's current set (the fewest
    /// members holding more than two thirds of its weight), else the
    /// config's.
    fn validator_set(&self) -> (BTreeSet<ValidatorId>, usize) {
        let on_chain = self.chain.as_ref().and_then(|_| {
            lock(&self.chain_view)
                .as_ref()
                .and_then(ChainView::validator_set)
        });
        match on_chain {
            Some(set) => (
                set.members().iter().map(|m| m.validator).collect(),
                votes_needed(&set),
            ),
            None => (self.validators.clone(), self.threshold),
        }
    }

    /// Records a settled measurement epoch's verdicts (`outcome`, of the
    /// epoch that ended at `epoch_end_unix`), durably: from the next
    /// proposal on, relays found down are left out and the others carry
    /// their latest measurement.
    pub fn record_epoch(
        &self,
        outcome: &EpochOutcome,
        epoch_end_unix: u64,
    ) -> Result<(), RecordError> {
        lock(&self.measurements).record_epoch(self.registry.store(), outcome, epoch_end_unix)
    }

    /// The JSON of one page of `GET /v1/measurements` for `query`.
    fn measurements_page(&self, query: Option<&str>) -> Result<Bytes, QueryError> {
        let query = MeasurementsQuery::parse(query)?;
        let after = query
            .after
            .map(|pin| openrelay_measure::RelayId(*pin.as_bytes()));
        let operator_of = |relay: &openrelay_measure::RelayId| {
            RelayId::from_bytes(relay.0)
                .ok()
                .and_then(|id| self.registry.descriptor(&id))
                .map(|(d, _)| d.operator())
        };
        let record = lock(&self.measurements);
        let include = |relay: &openrelay_measure::RelayId| {
            after.is_none_or(|after| *relay > after)
                && match query.filter {
                    MeasurementsFilter::All => true,
                    MeasurementsFilter::Relay(pin) => relay.0 == *pin.as_bytes(),
                    MeasurementsFilter::Operator(pin) => operator_of(relay)
                        .is_some_and(|operator| operator.as_bytes() == pin.as_bytes()),
                }
        };
        let mut explanations: Vec<_> = record
            .explanations(include)
            .take(MAX_EXPLANATIONS_PER_PAGE + 1)
            .cloned()
            .collect();
        let next_after = if explanations.len() > MAX_EXPLANATIONS_PER_PAGE {
            explanations.truncate(MAX_EXPLANATIONS_PER_PAGE);
            explanations.last().map(|e| e.relay)
        } else {
            None
        };
        let page = MeasurementsPage {
            epoch: record.latest().map(|l| l.epoch),
            epoch_ended_at: record.latest().map(|l| l.ended_at),
            params: record.params().clone(),
            explanations,
            next_after,
        };
        // Serializing these plain types cannot fail; an empty body would
        // only make the caller's parse fail, with a message.
        Ok(Bytes::from(serde_json::to_vec(&page).unwrap_or_default()))
    }

    /// The current votes (at most [`VOTE_MAX_AGE_SECS`] old).
    fn fresh_votes(&self, now: u64) -> Vec<SignedVote> {
        let mut votes = lock(&self.votes);
        votes.retain(|_, v| v.vote().voted_at().saturating_add(VOTE_MAX_AGE_SECS) >= now);
        votes.values().cloned().collect()
    }

    /// The sequence for a new proposal: above every number proposed or
    /// served before, even across restarts.
    fn next_sequence(&self) -> Result<u64, crate::StoreError> {
        let store = self.registry.store();
        let proposed = store
            .meta(LAST_PROPOSED)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        let served = store.latest_directory()?.map_or(0, |(s, _)| s);
        let next = proposed.max(served).saturating_add(1);
        store.put_meta(LAST_PROPOSED, &next.to_be_bytes())?;
        Ok(next)
    }

    /// Prunes, then proposes a new directory from the validators' current
    /// votes if what they elect differs from what is served (or pending), or
    /// the served one is past half its life.
    pub fn propose(&self, now: u64) {
        if let Err(e) = self.registry.prune(now) {
            warn!(error = %e, "prune failed");
        }
        let view = lock(&self.chain_view).clone();
        if self.chain.is_some() && view.is_none() {
            debug!("waiting for the chain's first confirmed block");
            return;
        }
        let (validators, needed) = self.validator_set();
        let mut votes = self.fresh_votes(now);
        // Votes of validators who left the set no longer count.
        votes.retain(|v| validators.contains(&v.vote().validator()));
        if votes.len() < needed {
            debug!(votes = votes.len(), needed, "waiting for validators' votes");
            return;
        }
        let elected = tally(votes.iter().map(SignedVote::vote));
        let issuers = tally_issuers(votes.iter().map(SignedVote::vote));
        if self.key_set_votes_split(&votes, &issuers, now) {
            return;
        }
        let handovers = match view.as_ref().map(|v| self.complete_handovers(v)) {
            None => Vec::new(),
            Some(Ok(handovers)) => handovers,
            Some(Err(epoch)) => {
                debug!(
                    epoch,
                    "waiting for the previous set's hand-over to the chain's validator set"
                );
                return;
            }
        };
        let valid_until = now.saturating_add(self.lifetime);
        // With `[chain]`, exactly the elected relays the chain admits at the
        // view's block, anchored there (validators check both).
        // Measurements come from the chain's epochs: with `[chain]` a relay
        // the settled epochs found down is left out, and every listed
        // relay carries its latest measurement (validators check both
        // against their own record).
        let measurements = lock(&self.measurements);
        let admit = |d: &openrelay_directory::RelayDescriptor,
                     p: Option<&openrelay_directory::OperatorProfile>| {
            view.as_ref()
                .is_none_or(|v| v.admit(d, p).is_ok() && !measurements.is_down(&d.relay()))
        };
        let assemble = |sequence| {
            self.registry
                .assemble_admitted(&elected, sequence, now, valid_until, admit)
                .and_then(|(directory, relays)| {
                    let (directory, key_sets) =
                        self.registry.with_elected_key_sets(directory, &issuers)?;
                    let directory = match &view {
                        Some(view) => view.anchor_directory(directory, &measurements)?,
                        None => directory,
                    };
                    Ok((directory, relays.len() + key_sets.len()))
                })
        };
        let (candidate, missing) = match assemble(0) {
            Ok(assembled) => assembled,
            Err(e) => {
                warn!(error = %e, "no directory to propose");
                return;
            }
        };
        if !self.all_listed(missing, now) {
            return;
        }
        // A directory without an ingress and an egress would leave every
        // client without a path (validators that have not yet heard from any
        // relay vote for none, e.g. when a network starts).
        let has = |role| {
            candidate
                .descriptors()
                .iter()
                .any(|d| d.descriptor().role() == role)
        };
        if !has(openrelay_types::RelayRole::Ingress) || !has(openrelay_types::RelayRole::Egress) {
            debug!("the elected relays make no path yet; nothing proposed");
            return;
        }
        let fresh_enough = |d: &Directory| d.valid_until().saturating_sub(now) > self.lifetime / 2;
        if lock(&self.served).as_ref().is_some_and(|s| {
            same_contents(&s.directory, &candidate)
                && same_chain_figures(&s.directory, &candidate)
                && fresh_enough(&s.directory)
        }) {
            *lock(&self.pending) = None;
            return;
        }
        let voters: BTreeSet<ValidatorId> = votes.iter().map(|v| v.vote().validator()).collect();
        if lock(&self.pending).as_ref().is_some_and(|p| {
            same_contents(&p.directory, &candidate)
                && same_chain_figures(&p.directory, &candidate)
                && p.voters == voters
                && now.saturating_sub(p.created_at) < PROPOSAL_MAX_AGE_SECS
                && !anchor_left_behind(&p.directory, view.as_ref())
        }) {
            return; // Validators are signing this one already.
        }
        // Built without holding the lock request handlers take (this is the
        // only task that replaces the proposal).
        let directory = match self
            .next_sequence()
            .map_err(crate::AssembleError::from)
            .and_then(assemble)
        {
            Ok((directory, _)) => directory,
            Err(e) => {
                warn!(error = %e, "no directory to propose");
                return;
            }
        };
        debug!(
            sequence = directory.sequence(),
            relays = directory.descriptors().len(),
            votes = votes.len(),
            "new proposal"
        );
        let envelope = match SignedDirectory::new(&directory).with_handovers(handovers) {
            Ok(envelope) => envelope,
            Err(e) => {
                warn!(error = %e, "cannot attach the validator set hand-overs");
                return;
            }
        };
        let encoded = Bytes::from(
            Proposal {
                directory: envelope.directory.clone(),
                votes,
            }
            .to_bytes(),
        );
        *lock(&self.pending) = Some(Pending {
            digest: envelope.digest(),
            envelope,
            directory,
            voters,
            created_at: now,
            encoded,
        });
    }

    /// Whether every elected relay and key set could be listed (`missing`
    /// could not); warns when some could not for longer than a proposal
    /// lives (the validators forward what the registry lacks when they vote,
    /// so this should not last).
    fn all_listed(&self, missing: usize, now: u64) -> bool {
        let mut since = lock(&self.missing_since);
        if missing == 0 {
            *since = None;
            return true;
        }
        let first = *since.get_or_insert(now);
        if now.saturating_sub(first) > 2 * PROPOSAL_MAX_AGE_SECS {
            warn!(
                missing,
                "relays or key sets most validators voted for are not held here; no directory is proposed"
            );
        } else {
            debug!(
                missing,
                "waiting for the validators to forward elected relays and key sets"
            );
        }
        false
    }

    /// Whether to hold off proposing: an issuer the served directory lists
    /// has no elected key set now, but some current vote names one (its
    /// validators are catching up with a new set), for less than
    /// [`KEY_SET_SPLIT_GRACE_SECS`]. Proposing now would drop the issuer's
    /// keys from the directory for a round.
    fn key_set_votes_split(
        &self,
        votes: &[SignedVote],
        elected: &BTreeMap<IssuerId, openrelay_directory::KeySetDigest>,
        now: u64,
    ) -> bool {
        let listed: Vec<IssuerId> = lock(&self.served)
            .as_ref()
            .map(|s| {
                s.directory
                    .key_sets()
                    .iter()
                    .map(|k| k.key_set().issuer())
                    .collect()
            })
            .unwrap_or_default();
        let split = listed.iter().any(|issuer| {
            !elected.contains_key(issuer) && votes.iter().any(|v| v.vote().issuer(issuer).is_some())
        });
        let mut since = lock(&self.split_since);
        if !split {
            *since = None;
            return false;
        }
        let first = *since.get_or_insert(now);
        if now.saturating_sub(first) < KEY_SET_SPLIT_GRACE_SECS {
            debug!("the votes on an issuer's key set are split; waiting before proposing");
            return true;
        }
        warn!(
            "the votes on an issuer's key set have been split for over a minute; its keys leave the directory"
        );
        false
    }

    /// Every hand-over from the genesis set to `view`'s current set, each
    /// signed by more than two thirds of the previous set's weight (as
    /// clients walk them), or the first epoch that has none yet.
    fn complete_handovers(&self, view: &ChainView) -> Result<Vec<SignedValidatorSetChange>, u64> {
        let sets = &view.snapshot().validator_sets;
        let held = lock(&self.handovers);
        let mut complete = Vec::new();
        for (epoch, pair) in (1u64..).zip(sets.windows(2)) {
            let (Some(previous), Some(_)) = (pair.first(), pair.get(1)) else {
                return Err(epoch);
            };
            let previous = to_validator_set(previous).ok_or(epoch)?;
            let signed_weight = |h: &SignedValidatorSetChange| {
                h.signatures()
                    .iter()
                    .filter_map(|s| previous.weight_of(&s.validator))
                    .fold(0u128, u128::saturating_add)
            };
            let quorate = held
                .get(&epoch)
                .and_then(|candidates| {
                    candidates
                        .iter()
                        .find(|h| previous.is_more_than_two_thirds(signed_weight(h)))
                })
                .ok_or(epoch)?;
            complete.push(quorate.clone());
        }
        Ok(complete)
    }

    /// Takes a hand-over signed by members of the previous set: the change
    /// must be the chain's (this registry's view: the set, its epoch and
    /// the block of the change); each signature must be a member's of the
    /// previous set and verify. Kept per change, signatures merged.
    fn accept_handover(&self, body: &[u8]) -> Result<(), (u16, String)> {
        let submitted = SignedValidatorSetChange::from_bytes(body)
            .map_err(|e| (400, format!("malformed hand-over: {e}")))?;
        let view = lock(&self.chain_view)
            .clone()
            .ok_or((503, "not following the chain (yet)".to_owned()))?;
        let change = submitted.change();
        let epoch = change.epoch();
        let sets = &view.snapshot().validator_sets;
        let index = usize::try_from(epoch).unwrap_or(usize::MAX);
        let (Some(previous), Some(next)) = (
            index.checked_sub(1).and_then(|i| sets.get(i)),
            sets.get(index),
        ) else {
            return Err((
                409,
                format!("no set change of epoch {epoch} confirmed here"),
            ));
        };
        let anchor = change.anchor();
        if to_validator_set(next).as_ref() != Some(change.set())
            || !anchor.same_deployment(&view.anchor())
            || anchor.block_number != next.block_number
        {
            return Err((403, format!("not the chain's set change of epoch {epoch}")));
        }
        let previous = to_validator_set(previous)
            .ok_or((409, format!("the set before epoch {epoch} is not usable")))?;
        let valid: Vec<ValidatorSignature> = submitted
            .signatures()
            .iter()
            .filter(|s| previous.weight_of(&s.validator).is_some() && submitted.verifies(s))
            .copied()
            .collect();
        if valid.is_empty() {
            return Err((403, "no signature of the previous set verifies".into()));
        }
        let mut held = lock(&self.handovers);
        let candidates = held.entry(epoch).or_default();
        let index = match candidates.iter().position(|h| h.change() == change) {
            Some(i) => i,
            None if candidates.len() < openrelay_directory::MAX_VALIDATORS => {
                candidates.push(SignedValidatorSetChange::new(change.clone()));
                candidates.len() - 1
            }
            None => return Err((429, "too many different changes for this epoch".into())),
        };
        let Some(kept) = candidates.get_mut(index) else {
            return Err((500, "hand-over lost".into()));
        };
        let before = kept.signatures().len();
        for signature in valid {
            kept.add_signature(signature);
        }
        // Validators post their hand-overs again every round: written
        // (durably, under the lock so writes of one slot keep their order)
        // only when a signature is new.
        if kept.signatures().len() != before {
            let store = self.registry.store();
            store
                .put_handover(epoch, handover_slot(change), &kept.to_bytes())
                .map_err(|e| {
                    warn!(error = %e, epoch, "cannot store the validator set hand-over");
                    (500, "cannot store the hand-over".to_owned())
                })?;
        }
        debug!(epoch, "validator set hand-over signature taken");
        Ok(())
    }

    /// Takes a validator's vote; answers the relays it lists that this
    /// registry lacks.
    fn accept_vote(&self, body: &[u8], now: u64) -> Result<Vec<u8>, (u16, String)> {
        let vote =
            SignedVote::from_bytes(body).map_err(|e| (400, format!("malformed vote: {e}")))?;
        let validator = vote.vote().validator();
        if !self.validator_set().0.contains(&validator) {
            return Err((403, "not a configured validator".into()));
        }
        vote.verify().map_err(|e| (403, e.to_string()))?;
        let voted_at = vote.vote().voted_at();
        if voted_at > now.saturating_add(MAX_CLOCK_SKEW_SECS)
            || voted_at.saturating_add(VOTE_MAX_AGE_SECS) < now
        {
            return Err((403, format!("vote made at {voted_at}, not now ({now})")));
        }
        let mut votes = lock(&self.votes);
        if let Some(stored) = votes.get(&validator)
            && stored.vote().voted_at() >= voted_at
        {
            return Err((409, "not newer than this validator's stored vote".into()));
        }
        let wanted: Vec<Wanted> = self
            .registry
            .wanted(vote.vote(), now)
            .into_iter()
            .map(Wanted::Relay)
            .chain(
                self.registry
                    .wanted_key_sets(vote.vote(), now)
                    .into_iter()
                    .map(Wanted::KeySet),
            )
            .collect();
        votes.insert(validator, vote);
        Ok(encode_wanted(&wanted))
    }

    /// Takes an issuer's key set: one a current vote names is held whatever
    /// its age (a validator forwarding what it voted for); anything else
    /// must be newer than what is held ([`crate::key_sets`]).
    fn accept_key_set(&self, body: &[u8], now: u64) -> Result<(), crate::PublishError> {
        let voted = SignedIssuerKeySet::from_bytes(body).is_ok_and(|signed| {
            let (issuer, digest) = (signed.key_set().issuer(), signed.digest());
            self.fresh_votes(now)
                .iter()
                .any(|v| v.vote().issuer(&issuer) == Some(digest))
        });
        if voted {
            self.registry.store_voted_key_set(body, now).map(drop)
        } else {
            self.registry.publish_key_set(body, now).map(drop)
        }
    }

    /// Takes a validator's signature; records and serves the directory once
    /// the threshold is met. Locks are held only to read or change the
    /// proposal and the served directory: verifying a directory and writing
    /// it to disk happen outside them, so request handlers never wait.
    fn accept_signature(&self, body: &[u8], now: u64) -> Result<SignatureOutcome, (u16, String)> {
        let bad = |why: &str| (400, why.to_owned());
        if body.len() != SIGNATURE_SUBMISSION_LEN {
            return Err(bad(
                "expected a 32-byte validator id, a 32-byte directory digest and a 64-byte signature",
            ));
        }
        let (id, rest) = body.split_at(32);
        let (digest, signature) = rest.split_at(32);
        let id: [u8; 32] = id.try_into().map_err(|_| bad("validator id"))?;
        let digest = DirectoryDigest::from_bytes(digest.try_into().map_err(|_| bad("digest"))?);
        let signature: [u8; 64] = signature.try_into().map_err(|_| bad("signature"))?;
        let validator = ValidatorId::from_bytes(id).map_err(|_| bad("not a valid Ed25519 key"))?;
        let (validators, needed) = self.validator_set();
        if !validators.contains(&validator) {
            return Err((403, "not a configured validator".into()));
        }
        let signature = ValidatorSignature {
            validator,
            signature: Signature::from_bytes(signature),
        };
        let does_not_verify = || {
            (
                403,
                "signature does not verify over that directory".to_owned(),
            )
        };
        let recording_failed = |e: crate::AssembleError| {
            warn!(error = %e, "cannot record the signed directory");
            (500, "cannot record the directory".to_owned())
        };
        let pending_bytes = lock(&self.pending)
            .as_ref()
            .filter(|p| p.digest == digest)
            .map(|p| p.envelope.directory.clone());
        if let Some(directory) = pending_bytes {
            if !signature.verifies(&directory) {
                return Err(does_not_verify());
            }
            let complete = {
                let mut pending = lock(&self.pending);
                let Some(p) = pending.as_mut().filter(|p| p.digest == digest) else {
                    return Ok(SignatureOutcome::Superseded);
                };
                p.envelope.add_signature(signature);
                (p.envelope.signatures.len() >= needed).then(|| p.envelope.clone())
            };
            let Some(envelope) = complete else {
                return Ok(SignatureOutcome::Counted);
            };
            if let Err(e) = verify_directory(envelope.clone(), &self.trust, now, None) {
                warn!(error = %e, "a proposal signed by the threshold does not verify");
                return Ok(SignatureOutcome::Counted);
            }
            let sequence = self.registry.record(&envelope).map_err(recording_failed)?;
            info!(
                sequence,
                signatures = envelope.signatures.len(),
                "directory signed by the threshold; serving it"
            );
            let mut pending = lock(&self.pending);
            if pending.as_ref().is_some_and(|p| p.digest == digest) {
                *pending = None;
            }
            drop(pending);
            let served = Served::of(envelope);
            if let Some(served) = &served {
                self.diffs.recorded(sequence, served.encoded_digest);
            }
            *lock(&self.served) = served;
            return Ok(SignatureOutcome::Counted);
        }
        let served = lock(&self.served)
            .as_ref()
            .filter(|s| s.digest == digest)
            .map(|s| s.envelope.clone());
        let Some(mut envelope) = served else {
            return Ok(SignatureOutcome::Superseded);
        };
        if !signature.verifies(&envelope.directory) {
            return Err(does_not_verify());
        }
        // More signatures make the served directory sturdier (a client
        // trusting another subset of validators may need this one).
        if !envelope.signatures.contains(&signature) {
            envelope.add_signature(signature);
            self.registry.record(&envelope).map_err(recording_failed)?;
            let mut served = lock(&self.served);
            if let Some(s) = served.as_mut().filter(|s| s.digest == digest) {
                s.envelope.add_signature(signature);
                s.encoded = Bytes::from(s.envelope.to_bytes());
                s.encoded_digest = SignedDirectoryDigest::of(&s.encoded);
                self.diffs
                    .recorded(s.directory.sequence(), s.encoded_digest);
            }
        }
        Ok(SignatureOutcome::AlreadyServed)
    }

    async fn serve_request(self: Arc<Self>, request: http::Request<()>, mut stream: ServerStream) {
        use http::Method;
        let now = unix_now();
        if let (&Method::POST, Some(what)) =
            (request.method(), Publication::at(request.uri().path()))
        {
            let service = Arc::clone(&self);
            let registry = Arc::clone(&self.registry);
            return publication::serve(registry, what, stream, now, move |_, body, now| {
                service.accept_key_set(body, now)
            })
            .await;
        }
        match (request.method().clone(), request.uri().path()) {
            (Method::GET, paths::DIRECTORY) => {
                let served = lock(&self.served).as_ref().map(|s| s.encoded.clone());
                match served {
                    Some(bytes) => server::respond(stream, http::StatusCode::OK, bytes).await,
                    None => reply(stream, 404, "no directory signed yet", None).await,
                }
            }
            (Method::GET, paths::DIRECTORY_DIFF) => {
                let from = match diff_base(request.uri().query()) {
                    Ok(from) => from,
                    Err(why) => return reply(stream, 400, why, None).await,
                };
                let served = lock(&self.served)
                    .as_ref()
                    .map(|s| (s.encoded_digest, s.encoded.clone()));
                let Some((to, encoded)) = served else {
                    return reply(stream, 404, "no directory signed yet", None).await;
                };
                match self.diffs.answer(&self.registry, from, to, encoded).await {
                    DiffAnswer::Diff(bytes) => {
                        server::respond(stream, http::StatusCode::OK, bytes).await;
                    }
                    DiffAnswer::Current => {
                        server::respond(stream, http::StatusCode::NO_CONTENT, Bytes::new()).await;
                    }
                    DiffAnswer::NoBase => {
                        reply(
                            stream,
                            404,
                            "no diff from that directory; fetch the whole directory",
                            None,
                        )
                        .await;
                    }
                }
            }
            (Method::GET, paths::MEASUREMENTS) => {
                match self.measurements_page(request.uri().query()) {
                    Ok(json) => server::respond(stream, http::StatusCode::OK, json).await,
                    Err(why) => reply(stream, 400, &why.to_string(), None).await,
                }
            }
            (Method::GET, paths::PROPOSAL) => {
                let pending = lock(&self.pending).as_ref().map(|p| p.encoded.clone());
                match pending {
                    Some(bytes) => server::respond(stream, http::StatusCode::OK, bytes).await,
                    None => reply(stream, 404, "nothing to sign", None).await,
                }
            }
            (Method::POST, paths::VOTES) => {
                let limit = openrelay_directory::vote::MAX_SIGNED_VOTE_BYTES;
                let Some(body) = server::read_body(&mut stream, limit).await else {
                    return reply(stream, 413, "body too large or cut off", None).await;
                };
                let service = Arc::clone(&self);
                match tokio::task::spawn_blocking(move || service.accept_vote(&body, now)).await {
                    Ok(Ok(wanted)) => {
                        server::respond(stream, http::StatusCode::OK, Bytes::from(wanted)).await;
                    }
                    Ok(Err((status, why))) => reply(stream, status, &why, None).await,
                    Err(_) => reply(stream, 500, "vote failed", None).await,
                }
            }
            (Method::POST, paths::SIGNATURES) => {
                let Some(body) = server::read_body(&mut stream, SIGNATURE_SUBMISSION_LEN).await
                else {
                    return reply(stream, 413, "body too large or cut off", None).await;
                };
                let service = Arc::clone(&self);
                let outcome =
                    tokio::task::spawn_blocking(move || service.accept_signature(&body, now)).await;
                match outcome {
                    Ok(Ok(SignatureOutcome::Counted)) => {
                        server::respond(stream, http::StatusCode::NO_CONTENT, Bytes::new()).await;
                    }
                    Ok(Ok(SignatureOutcome::AlreadyServed)) => {
                        reply(
                            stream,
                            200,
                            "already signed by the threshold and served",
                            None,
                        )
                        .await;
                    }
                    Ok(Ok(SignatureOutcome::Superseded)) => {
                        reply(stream, 410, "not the current proposal (replaced)", None).await;
                    }
                    Ok(Err((status, why))) => reply(stream, status, &why, None).await,
                    Err(_) => reply(stream, 500, "signature failed", None).await,
                }
            }
            (Method::POST, paths::HANDOVERS) if self.chain.is_some() => {
                let Some(body) = server::read_body(&mut stream, MAX_HANDOVER_BYTES).await else {
                    return reply(stream, 413, "body too large or cut off", None).await;
                };
                let service = Arc::clone(&self);
                match tokio::task::spawn_blocking(move || service.accept_handover(&body)).await {
                    Ok(Ok(())) => {
                        server::respond(stream, http::StatusCode::NO_CONTENT, Bytes::new()).await;
                    }
                    Ok(Err((status, why))) => reply(stream, status, &why, None).await,
                    Err(_) => reply(stream, 500, "hand-over failed", None).await,
                }
            }
            _ => reply(stream, 404, "unknown request", None).await,
        }
    }
}

impl RequestHandler for RegistryService {
    async fn handle(
        self: Arc<Self>,
        request: http::Request<()>,
        stream: ServerStream,
        _context: RequestContext,
    ) {
        self.serve_request(request, stream).await;
    }
}

/// Where a hand-over of `change` is stored within its epoch: the first 8
/// bytes of the change's Keccak-256, so a slot never depends on what else
/// was stored (or skipped as corrupt).
fn handover_slot(change: &openrelay_directory::ValidatorSetChange) -> u64 {
    let digest = alloy::primitives::keccak256(change.to_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The hand-overs stored by an earlier run, per epoch. An entry that does
/// not parse, names another epoch or slot, or is beyond an epoch's
/// [`openrelay_directory::MAX_VALIDATORS`] changes is left out with a
/// warning naming it, as is a signature that does not verify; the rest
/// are kept. (Membership and weight are checked against the chain's sets
/// when hand-overs are attached.)
fn load_handovers(
    store: &RedbStore,
) -> Result<BTreeMap<u64, Vec<SignedValidatorSetChange>>, crate::StoreError> {
    let mut held: BTreeMap<u64, Vec<SignedValidatorSetChange>> = BTreeMap::new();
    for (epoch, slot, bytes) in store.handovers()? {
        let stored = match SignedValidatorSetChange::from_bytes(&bytes) {
            Ok(stored)
                if stored.change().epoch() == epoch && handover_slot(stored.change()) == slot =>
            {
                stored
            }
            Ok(_) => {
                warn!(
                    epoch,
                    slot, "stored hand-over is not stored under its epoch and slot; skipped"
                );
                continue;
            }
            Err(e) => {
                warn!(epoch, slot, error = %e, "stored hand-over is corrupt; skipped (the validators post it again)");
                continue;
            }
        };
        let candidates = held.entry(epoch).or_default();
        if candidates.len() >= openrelay_directory::MAX_VALIDATORS {
            warn!(
                epoch,
                slot, "more stored hand-overs for this epoch than validators; skipped"
            );
            continue;
        }
        let mut verified = SignedValidatorSetChange::new(stored.change().clone());
        for signature in stored.signatures() {
            if stored.verifies(signature) {
                verified.add_signature(*signature);
            } else {
                warn!(
                    epoch,
                    slot, "a stored hand-over signature does not verify; dropped"
                );
            }
        }
        candidates.push(verified);
    }
    let count: usize = held.values().map(Vec::len).sum();
    if count > 0 {
        info!(
            handovers = count,
            "validator set hand-overs read back from the store"
        );
    }
    Ok(held)
}

/// Whether two directories say the same about the chain apart from the
/// block they are anchored at: the validator epoch, the operators' stakes
/// and cover and the relays' registered bandwidth (a change of any of them
/// is a reason for a new directory; a new block alone is not).
fn same_chain_figures(a: &Directory, b: &Directory) -> bool {
    match (a.chain(), b.chain()) {
        (None, None) => true,
        (Some(x), Some(y)) => {
            x.validator_epoch == y.validator_epoch
                && x.operators == y.operators
                && x.relays == y.relays
                // A release approved or revoked is news for every client.
                && x.releases == y.releases
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod handover_persistence {
    use std::sync::Arc;

    use alloy::primitives::{Address, B256, Log, U256};
    use alloy::sol_types::SolEvent;
    use openrelay_chain::contract::RelayRegistry::ValidatorSetChanged;
    use openrelay_chain::follow::{ChainBlock, ChainFollower, Fed};
    use openrelay_directory::{
        SignedValidatorSetChange, ValidatorKey, ValidatorSetChange, ValidatorSignature,
    };

    use super::*;
    use crate::chain::ChainView;

    const CONTRACT: Address = Address::repeat_byte(0xC0);

    fn keys(from: u8, count: u8) -> Vec<ValidatorKey> {
        (from..from + count)
            .map(|i| ValidatorKey::from_bytes(&[i; 32]))
            .collect()
    }

    /// The chain with the genesis set `genesis` (block 1) and the set
    /// `next` (epoch 1, block 2), followed to block 2.
    fn view(genesis: &[ValidatorKey], next: &[ValidatorKey]) -> ChainView {
        let mut follower = ChainFollower::new(1, CONTRACT, 1, 0);
        for (epoch, set) in [genesis, next].into_iter().enumerate() {
            let event = ValidatorSetChanged {
                epoch: epoch as u64,
                members: set
                    .iter()
                    .map(|k| Address::from_slice(&k.id().to_bytes()[..20]))
                    .collect(),
                keys: set.iter().map(|k| B256::from(k.id().to_bytes())).collect(),
                weights: vec![U256::from(1); set.len()],
            };
            let number = epoch as u64 + 1;
            let fed = follower.feed(ChainBlock {
                number,
                hash: B256::from(U256::from(number)),
                parent_hash: B256::from(U256::from(number - 1)),
                logs: vec![Log {
                    address: CONTRACT,
                    data: event.encode_log_data(),
                }],
            });
            assert!(matches!(fed, Ok(Fed::Applied { .. })), "{fed:?}");
        }
        ChainView::new(Arc::new(follower.snapshot().unwrap()), U256::from(1))
    }

    fn service(state: &std::path::Path, genesis: &[ValidatorKey]) -> RegistryService {
        let pins: Vec<String> = genesis.iter().map(|k| format!("\"{}\"", k.id())).collect();
        let config = RegistryConfig::from_toml(&format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = {state:?}\nvalidators = [{}]\nthreshold = 2\n\
             [chain]\nrpc = \"http://127.0.0.1:1\"\nchain_id = 1\ncontract = \"{CONTRACT}\"\n",
            pins.join(", ")
        ))
        .unwrap();
        RegistryService::new(&config).unwrap()
    }

    /// Item 3 of the follow-up to issue 13: a hand-over taken before a
    /// restart is attached after it, though nobody posts it again (the
    /// previous set's members may be gone); a corrupt stored entry is
    /// skipped and the rest kept.
    #[test]
    fn hand_overs_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("registry");
        let genesis = keys(1, 3);
        let next = keys(4, 3);
        let view = view(&genesis, &next);
        let set = to_validator_set(&view.snapshot().validator_sets[1]).unwrap();
        let mut anchor = view.anchor();
        anchor.block_number = 2;
        let mut handover =
            SignedValidatorSetChange::new(ValidatorSetChange::new(anchor, set).unwrap());
        for key in &genesis {
            handover.sign(key);
        }

        let first = service(&state, &genesis);
        *lock(&first.chain_view) = Some(view.clone());
        assert_eq!(first.complete_handovers(&view), Err(1));
        first.accept_handover(&handover.to_bytes()).unwrap();
        assert_eq!(
            first.complete_handovers(&view).unwrap(),
            vec![handover.clone()]
        );
        drop(first);

        let restarted = service(&state, &genesis);
        *lock(&restarted.chain_view) = Some(view.clone());
        assert_eq!(
            restarted.complete_handovers(&view).unwrap(),
            vec![handover.clone()],
            "the hand-over is held after the restart"
        );
        // A corrupt entry and a forged signature in the store: skipped, the
        // good hand-over kept.
        let store = restarted.registry.store();
        store.put_handover(1, 7, b"not a hand-over").unwrap();
        let mut forged = handover.clone();
        forged.add_signature(ValidatorSignature {
            validator: keys(9, 1)[0].id(),
            signature: handover.signatures()[0].signature,
        });
        let slot = handover_slot(handover.change());
        store.put_handover(1, slot, &forged.to_bytes()).unwrap();
        drop(restarted);
        let again = service(&state, &genesis);
        assert_eq!(again.complete_handovers(&view).unwrap(), vec![handover]);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod measurements_endpoint {
    use std::collections::BTreeMap;

    use openrelay_directory::ValidatorKey;
    use openrelay_measure::{MeasureParams, MeasureState, RelayAdvert};

    use super::*;

    fn service(state: &std::path::Path) -> RegistryService {
        let pins: Vec<String> = (1..=3u8)
            .map(|i| format!("\"{}\"", ValidatorKey::from_bytes(&[i; 32]).id()))
            .collect();
        let config = RegistryConfig::from_toml(&format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = {state:?}\nvalidators = [{}]\nthreshold = 2\n",
            pins.join(", ")
        ))
        .unwrap();
        RegistryService::new(&config).unwrap()
    }

    /// 300 relays explained (none reported: every one unmeasured), in
    /// pages of at most 256 that end where the next begins; the record
    /// survives a restart; a repeated epoch is refused.
    #[test]
    fn explanations_are_served_in_bounded_pages_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = service(dir.path());
        let adverts: BTreeMap<_, _> = (0..300u16)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..2].copy_from_slice(&i.to_be_bytes());
                (
                    openrelay_measure::RelayId(id),
                    RelayAdvert {
                        advertised_bps: 1_000_000_000,
                        operator_stake: 1,
                        operator_advertised_bps: 1_000_000_000,
                    },
                )
            })
            .collect();
        let outcome = MeasureState::new(MeasureParams::devnet())
            .apply_epoch(4, &BTreeMap::new(), &[], &adverts)
            .unwrap();
        first.record_epoch(&outcome, 1_000).unwrap();
        assert!(matches!(
            first.record_epoch(&outcome, 1_000),
            Err(RecordError::EpochNotAfter { epoch: 4, last: 4 })
        ));
        drop(first);
        let restarted = service(dir.path());
        let page = |query: Option<&str>| -> MeasurementsPage {
            serde_json::from_slice(&restarted.measurements_page(query).unwrap()).unwrap()
        };
        let one = page(None);
        assert_eq!((one.epoch, one.epoch_ended_at), (Some(4), Some(1_000)));
        assert_eq!(one.explanations.len(), MAX_EXPLANATIONS_PER_PAGE);
        let after = one.next_after.unwrap();
        assert_eq!(after, one.explanations.last().unwrap().relay);
        let query = format!("after={}", openrelay_types::KeyPin::from_ed25519(after.0));
        let two = page(Some(&query));
        assert_eq!(two.explanations.len(), 300 - MAX_EXPLANATIONS_PER_PAGE);
        assert_eq!(two.next_after, None);
        let mut all: Vec<_> = one.explanations.iter().map(|e| e.relay).collect();
        all.extend(two.explanations.iter().map(|e| e.relay));
        assert_eq!(all, adverts.keys().copied().collect::<Vec<_>>());
        assert!(restarted.measurements_page(Some("relay=nope")).is_err());
    }
}
