//! `openrelay registry` on the network: an HTTP/3 server (the relays' server
//! loop, `transport::server`) with a pinned key.
//!
//! | request | does |
//! |---|---|
//! | `POST /v1/profiles` | publish a signed operator profile |
//! | `POST /v1/descriptors` | publish or refresh a signed descriptor |
//! | `GET /v1/proposal` | the directory waiting for validator signatures |
//! | `POST /v1/signatures` | a validator's signature over the proposal (32-byte id, 64-byte signature) |
//! | `GET /v1/directory` | the newest directory signed by a threshold of validators |
//!
//! Every signature is verified before it is kept, so nobody can displace a
//! validator's signature with a forged one; the directory is served only once
//! the client-side verification (`verify_directory`) passes with the
//! configured validators and threshold.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use openrelay_config::RegistryConfig;
use openrelay_directory::{
    Directory, Signature, SignedDirectory, TrustConfig, ValidatorId, ValidatorSignature,
    verify_directory,
};
use openrelay_transport::server::{
    self, RequestContext, RequestHandler, ServerCounters, ServerStream,
};
use tracing::{debug, info, warn};

use crate::{PublishError, RedbStore, Registry, RegistrySettings};

/// Paths of the registry's HTTP API.
pub mod paths {
    /// Operator profiles.
    pub const PROFILES: &str = "/v1/profiles";
    /// Relay descriptors.
    pub const DESCRIPTORS: &str = "/v1/descriptors";
    /// The proposal for validators.
    pub const PROPOSAL: &str = "/v1/proposal";
    /// Validator signatures.
    pub const SIGNATURES: &str = "/v1/signatures";
    /// The signed directory.
    pub const DIRECTORY: &str = "/v1/directory";
}

/// Largest published object accepted (descriptors and profiles are < 1 KiB).
const MAX_PUBLICATION: usize = 16 * 1024;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    /// The validator set is not usable.
    #[error("validators: {0}")]
    Trust(String),
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The registry service.
#[derive(Debug)]
pub struct RegistryService {
    registry: Registry<RedbStore>,
    trust: TrustConfig,
    validators: HashSet<ValidatorId>,
    lifetime: u64,
    proposal_interval: Duration,
    proposal: Mutex<Option<SignedDirectory>>,
}

impl RegistryService {
    /// The service for `config`, with its store in the state directory.
    pub fn new(config: &RegistryConfig) -> Result<Self, ServiceError> {
        let store = RedbStore::open(&config.state_dir.join("registry.redb"))?;
        let validators: Vec<ValidatorId> = config
            .validators
            .iter()
            .map(|pin| ValidatorId::try_from(*pin).map_err(|e| ServiceError::Trust(e.to_string())))
            .collect::<Result<_, _>>()?;
        // Served directories must pass exactly what clients will check.
        let trust = TrustConfig::new(
            validators.iter().copied(),
            config.threshold,
            config.directory_lifetime_secs,
        )
        .map_err(|e| ServiceError::Trust(e.to_string()))?;
        Ok(RegistryService {
            registry: Registry::new(
                store,
                RegistrySettings {
                    descriptor_ttl_secs: config.descriptor_ttl_secs,
                    directory_lifetime_secs: config.directory_lifetime_secs,
                },
            ),
            trust,
            validators: validators.into_iter().collect(),
            lifetime: config.directory_lifetime_secs,
            proposal_interval: Duration::from_secs(config.proposal_interval_secs),
            proposal: Mutex::new(None),
        })
    }

    /// Serves `endpoint` and proposes directories until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        endpoint: server::Listener,
        shutdown: impl Future<Output = ()>,
    ) {
        let proposer = tokio::spawn({
            let service = Arc::clone(&self);
            async move {
                loop {
                    service.propose(unix_now());
                    tokio::time::sleep(service.proposal_interval).await;
                }
            }
        });
        info!("registry serving");
        server::serve(
            endpoint,
            self,
            Arc::new(ServerCounters::default()),
            shutdown,
        )
        .await;
        proposer.abort();
        info!("registry stopped");
    }

    fn current_proposal(&self) -> std::sync::MutexGuard<'_, Option<SignedDirectory>> {
        self.proposal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Prunes, and proposes a new directory if the relays changed or the
    /// served one is past half its life.
    pub fn propose(&self, now: u64) {
        if let Err(e) = self.registry.prune(now) {
            warn!(error = %e, "prune failed");
        }
        let next = match self.registry.next_directory(now) {
            Ok(next) => next,
            Err(e) => {
                warn!(error = %e, "no directory to propose");
                return;
            }
        };
        let served = self
            .registry
            .latest()
            .ok()
            .flatten()
            .and_then(|bytes| SignedDirectory::from_bytes(&bytes).ok())
            .and_then(|signed| Directory::from_bytes(&signed.directory).ok());
        let fresh_enough = |d: &Directory| d.valid_until().saturating_sub(now) > self.lifetime / 2;
        let unchanged = |d: &Directory| same_contents(d, &next);
        let mut proposal = self.current_proposal();
        if served
            .as_ref()
            .is_some_and(|d| unchanged(d) && fresh_enough(d))
        {
            *proposal = None;
            return;
        }
        let pending = proposal
            .as_ref()
            .and_then(|p| Directory::from_bytes(&p.directory).ok());
        if pending
            .as_ref()
            .is_some_and(|d| unchanged(d) && fresh_enough(d))
        {
            return; // Validators are signing this one already.
        }
        debug!(
            sequence = next.sequence(),
            relays = next.descriptors().len(),
            "new proposal"
        );
        *proposal = Some(SignedDirectory::new(&next));
    }

    /// Takes a validator's signature over the current proposal; records and
    /// serves the directory once the threshold is met.
    fn accept_signature(
        &self,
        body: &[u8],
        now: u64,
    ) -> Result<bool, (http::StatusCode, &'static str)> {
        let bad = |why| (http::StatusCode::BAD_REQUEST, why);
        let (id, signature) = match (body.get(..32), body.get(32..96), body.len()) {
            (Some(id), Some(signature), 96) => (id, signature),
            _ => {
                return Err(bad(
                    "expected a 32-byte validator id and a 64-byte signature",
                ));
            }
        };
        let id: [u8; 32] = id.try_into().map_err(|_| bad("validator id"))?;
        let signature: [u8; 64] = signature.try_into().map_err(|_| bad("signature"))?;
        let validator = ValidatorId::from_bytes(id).map_err(|_| bad("not a valid Ed25519 key"))?;
        if !self.validators.contains(&validator) {
            return Err((http::StatusCode::FORBIDDEN, "not a configured validator"));
        }
        let mut proposal = self.current_proposal();
        let Some(pending) = proposal.as_mut() else {
            return Err((http::StatusCode::CONFLICT, "no proposal to sign"));
        };
        let signature = ValidatorSignature {
            validator,
            signature: Signature::from_bytes(signature),
        };
        if !signature.verifies(&pending.directory) {
            return Err((
                http::StatusCode::FORBIDDEN,
                "signature does not verify over the proposal",
            ));
        }
        pending.add_signature(signature);
        if verify_directory(pending.clone(), &self.trust, now, None).is_err() {
            return Ok(false);
        }
        if let Err(e) = self.registry.record(pending) {
            warn!(error = %e, "cannot record the signed directory");
            return Err((
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "cannot record the directory",
            ));
        }
        info!(
            signatures = pending.signatures.len(),
            "directory signed by the threshold; serving it"
        );
        *proposal = None;
        Ok(true)
    }

    async fn serve_request(&self, request: http::Request<()>, mut stream: ServerStream) {
        use http::{Method, StatusCode};
        let now = unix_now();
        let reply = |status: StatusCode, text: &str| (status, Bytes::from(format!("{text}\n")));
        let (status, body) = match (request.method().clone(), request.uri().path()) {
            (Method::GET, paths::DIRECTORY) => match self.registry.latest() {
                Ok(Some(signed)) => (StatusCode::OK, Bytes::from(signed)),
                Ok(None) => reply(StatusCode::NOT_FOUND, "no directory signed yet"),
                Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, "store error"),
            },
            (Method::GET, paths::PROPOSAL) => match self.current_proposal().as_ref() {
                Some(pending) => (StatusCode::OK, Bytes::from(pending.directory.clone())),
                None => reply(StatusCode::NOT_FOUND, "nothing to sign"),
            },
            (Method::POST, path @ (paths::PROFILES | paths::DESCRIPTORS | paths::SIGNATURES)) => {
                let limit = if path == paths::SIGNATURES {
                    96
                } else {
                    MAX_PUBLICATION
                };
                match server::read_body(&mut stream, limit).await {
                    None => reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large or cut off"),
                    Some(body) if path == paths::SIGNATURES => {
                        match self.accept_signature(&body, now) {
                            Ok(_) => (StatusCode::NO_CONTENT, Bytes::new()),
                            Err((status, why)) => reply(status, why),
                        }
                    }
                    Some(body) => {
                        let published = if path == paths::PROFILES {
                            self.registry.publish_profile(&body).map(|_| ())
                        } else {
                            self.registry.publish_descriptor(&body, now).map(|_| ())
                        };
                        match published {
                            Ok(()) => (StatusCode::NO_CONTENT, Bytes::new()),
                            Err(e) => reply(publish_status(&e), &e.to_string()),
                        }
                    }
                }
            }
            _ => reply(StatusCode::NOT_FOUND, "unknown request"),
        };
        server::respond(stream, status, body).await;
    }
}

fn publish_status(error: &PublishError) -> http::StatusCode {
    match error {
        PublishError::Malformed(_) => http::StatusCode::BAD_REQUEST,
        PublishError::Descriptor(_) | PublishError::Profile(_) => http::StatusCode::FORBIDDEN,
        PublishError::PinClaimed => http::StatusCode::CONFLICT,
        PublishError::UnknownOperator => http::StatusCode::UNPROCESSABLE_ENTITY,
        _ => http::StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Whether two directories list the same relays and profiles.
fn same_contents(a: &Directory, b: &Directory) -> bool {
    let descriptors = |d: &Directory| {
        d.descriptors()
            .iter()
            .map(|x| x.to_bytes())
            .collect::<Vec<_>>()
    };
    let profiles = |d: &Directory| {
        d.operators()
            .iter()
            .map(|x| x.to_bytes())
            .collect::<Vec<_>>()
    };
    descriptors(a) == descriptors(b) && profiles(a) == profiles(b)
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
