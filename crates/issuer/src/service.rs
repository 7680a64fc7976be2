//! `openrelay issuer` on the network: an HTTP/3 server on `transport::server`.
//!
//! | request | does | answers |
//! |---|---|---|
//! | `GET /v1/register/puzzle` | | 200 a registration puzzle ([`openrelay_issuer_client::puzzle`]) |
//! | `POST /v1/register/start` | `frame(name, RegistrationRequest)` | 200 RegistrationResponse |
//! | `POST /v1/register/finish` | `frame(name, puzzle ‖ solution ‖ RegistrationUpload)` | 204; 403 puzzle missing, unsolved, expired or used; 409 name taken |
//! | `POST /v1/login/start` | `frame(name, CredentialRequest)` | 200 login id (16 bytes) ‖ CredentialResponse; 429 + `Retry-After` too many attempts for the account or from the address; 503 too many logins in progress (from the address, or in all) |
//! | `POST /v1/login/finish` | login id ‖ CredentialFinalization | 204 (session open); 401 wrong password |
//! | `POST /token-request` | `Authorization: Bearer <session>`, `Content-Type: application/private-token-request`, TokenRequest (RFC 9578 §6.1) | 200 `application/private-token-response` TokenResponse; 401 no session; 415 wrong type; 422 bad request (RFC 9578 §6.2); 429 over the account's quota; 503 the key is not (yet) listed in the validator-signed directory (with `[directory]`) |
//! | `GET /.well-known/private-token-issuer-directory` | | 200 the directory (RFC 9578 §4) |
//! | `GET /v1/directory` | | 200 the validator-signed directory the issuer follows (`[directory]`), for clients to verify; 404 none yet |
//! | `POST /v1/settle` | a relay's `Settlement` of collected payment tokens, signed by the relay's key (`openrelay_tokens::settlement`) | 200 JSON `Receipt` (redeemed, refused with reasons); 400 malformed; 401 bad signature; 403 relay not listed for the operator; 503 no relay directory yet |
//! | `POST /v1/ledger` | a `LedgerRequest` signed by one of the operator's relays (or its operator key) | 200 JSON `OperatorLedger`; 401 unsigned, stale, for another issuer or replayed; 403 not the operator's |
//!
//! Unknown accounts get a login response too (RFC 9807 §6.3.2.2, no account
//! enumeration); the failure shows only at the finish. OPAQUE runs with the
//! context [`openrelay_issuer_client::OPAQUE_CONTEXT`] and the identities (account name,
//! `issuer_name`) on both sides (RFC 9807 §6.1).
//!
//! Bodies are read up to a bound per path (a settlement of
//! `settlement::MAX_TOKENS` tokens is ~180 KiB, everything else under 4 KiB).
//! Everything that costs CPU or an fsync (OPAQUE, RSA blind signing, redb
//! writes) runs on blocking threads, at most [`BLOCKING_WORKERS`] at once and
//! [`BLOCKING_QUEUE`] waiting (503 "issuer busy" beyond), so the async
//! workers keep serving.

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opaque_ke::{
    CredentialFinalization, CredentialRequest, RegistrationRequest, RegistrationUpload,
    ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup,
};
use openrelay_config::IssuerConfig;
use openrelay_issuer_client::consistency::{KeyConsistencyError, listed_keys, lists};
use openrelay_issuer_client::puzzle::{Puzzle, split_solution};
use openrelay_issuer_client::{Suite, opaque_identifiers, paths, session_bearer, unframe};
use openrelay_registry_client::follow::{DirectoryFollower, FollowConfigError};
use openrelay_tokens::issuance::{REQUEST_MEDIA_TYPE, RESPONSE_MEDIA_TYPE};
use openrelay_tokens::settlement::{
    self, LEDGER_READ_SIGNATURE_PREFIX, LEDGER_REQUEST_MAX_AGE_SECS, LedgerRequest, OperatorLedger,
    Receipt, RefusedToken, SETTLEMENT_SIGNATURE_PREFIX, Settlement,
};
use openrelay_tokens::{TokenRequest, TokenVerifier, VerifyError};
use openrelay_transport::endpoint::TUNNELLED_MTU;
use openrelay_transport::identity::{Identity, write_secret_file};
use openrelay_transport::server::{self, RequestContext, RequestHandler, ServerStream, StartError};
use openrelay_transport::service::Service;
use openrelay_types::{ErrorKind, HasKind, unix_now};
use rand_core::{OsRng, RngCore};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::keys::{KeyRing, KeyRingError};
use crate::limiter::AddressKey;
use crate::logins::{LoginId, LoginLimits, Logins};
use crate::publish::{KeyPublisher, KeySetError};
use crate::relays::{ListingError, RelayListing, ReplayGuard, Vouch};
use crate::sessions::Sessions;
use crate::store::{PuzzleSpend, Quota, Registration, Store, StoreError};

/// The OPAQUE server setup file (its OPRF seed and key pair; 0600).
pub const SETUP_FILE: &str = "opaque-setup.key";
/// The key that authenticates registration puzzles (0600).
pub const PUZZLE_KEY_FILE: &str = "puzzle.key";
/// Largest body of an account or token request (OPAQUE messages, puzzle
/// solutions and token requests are all < 1 KiB).
const MAX_BODY: usize = 4096;
/// Blocking work (OPAQUE, RSA, fsyncs) running at once.
pub const BLOCKING_WORKERS: usize = 4;
/// Requests waiting for a blocking worker; more are answered 503.
pub const BLOCKING_QUEUE: usize = 256;
/// Signed ledger reads remembered (their nonces) while fresh.
const REPLAY_CAPACITY: usize = 100_000;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The token keys could not be loaded or made.
    #[error(transparent)]
    Keys(#[from] KeyRingError),
    /// The settlement listing is misconfigured.
    #[error(transparent)]
    Listing(#[from] ListingError),
    /// The directory settings are unusable.
    #[error(transparent)]
    Directory(#[from] FollowConfigError),
    /// The key set cannot be published.
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    /// The issuer's identity (which signs its key set) cannot be loaded.
    #[error(transparent)]
    Identity(#[from] openrelay_transport::identity::IdentityError),
    /// The state directory or a secret file (OPAQUE setup, puzzle key) is
    /// unreadable or could not be written.
    #[error("{path}: {source}")]
    Setup {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A secret file does not hold what it should.
    #[error("{path}: {reason}")]
    Secret {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: SecretError,
    },
}

/// What is wrong with a secret file's contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Not an OPAQUE server setup.
    #[error("OPAQUE setup: {0}")]
    Opaque(#[from] opaque_ke::errors::ProtocolError),
    /// Not a 32-byte key.
    #[error("not a 32-byte key")]
    KeyLength,
}

impl HasKind for ServiceError {
    fn kind(&self) -> ErrorKind {
        match self {
            ServiceError::Store(e) => e.kind(),
            ServiceError::Keys(_) | ServiceError::Setup { .. } => ErrorKind::Local,
            ServiceError::Listing(_)
            | ServiceError::Directory(_)
            | ServiceError::KeySet(_)
            | ServiceError::Identity(_)
            | ServiceError::Secret { .. } => ErrorKind::Config,
        }
    }
}

/// Blocking work off the async runtime, bounded: at most
/// [`BLOCKING_WORKERS`] at once and [`BLOCKING_QUEUE`] waiting.
#[derive(Debug)]
struct Blocking {
    workers: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
}

impl Blocking {
    fn new() -> Self {
        Blocking {
            workers: Arc::new(Semaphore::new(BLOCKING_WORKERS)),
            waiting: Arc::new(Semaphore::new(BLOCKING_QUEUE)),
        }
    }

    /// Runs `work` on a blocking thread; `None` if too much is waiting.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let _queued = Arc::clone(&self.waiting).try_acquire_owned().ok()?;
        let worker = Arc::clone(&self.workers).acquire_owned().await.ok()?;
        tokio::task::spawn_blocking(move || {
            let _worker = worker;
            work()
        })
        .await
        .ok()
    }
}

/// The issuer service.
pub struct IssuerService {
    config: IssuerConfig,
    store: Store,
    setup: ServerSetup<Suite>,
    puzzle_key: [u8; 32],
    keys: Mutex<KeyRing>,
    logins: Mutex<Logins<ServerLogin<Suite>>>,
    /// The clock of the login limits (monotonic).
    started: Instant,
    sessions: Mutex<Sessions>,
    listing: Arc<RelayListing>,
    replays: Mutex<ReplayGuard>,
    blocking: Blocking,
    /// Key consistency (`[publish]` and `[directory]`): the directory
    /// followed and the publisher of the key set.
    consistency: Option<(Arc<DirectoryFollower>, Arc<KeyPublisher>)>,
}

impl std::fmt::Debug for IssuerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerService")
            .field("issuer_name", &self.config.issuer_name)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The secret in `path`, parsed by `parse`; made by `make` and written
/// (0600) if the file does not exist.
fn load_or_create_secret<T>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, SecretError>,
    make: impl FnOnce() -> (T, Vec<u8>),
) -> Result<T, ServiceError> {
    let io = |source: std::io::Error| ServiceError::Setup {
        path: path.to_owned(),
        source,
    };
    match std::fs::read(path) {
        Ok(bytes) => parse(&bytes).map_err(|reason| ServiceError::Secret {
            path: path.to_owned(),
            reason,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (secret, bytes) = make();
            write_secret_file(path, &bytes).map_err(io)?;
            Ok(secret)
        }
        Err(e) => Err(io(e)),
    }
}

type Reply = (http::StatusCode, Vec<(http::HeaderName, String)>, Bytes);

fn text(status: http::StatusCode, message: impl Into<String>) -> Reply {
    (status, Vec::new(), Bytes::from(message.into() + "\n"))
}

fn json(value: &impl serde::Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => (
            http::StatusCode::OK,
            vec![(http::header::CONTENT_TYPE, "application/json".to_owned())],
            Bytes::from(body),
        ),
        Err(e) => text(http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Whether `signature` is `key`'s over `prefix ‖ body` (strict Ed25519, as
/// for directories).
fn signed_by(key: &[u8; 32], prefix: &[u8], body: &[u8], signature: &[u8; 64]) -> bool {
    ed25519_dalek::VerifyingKey::from_bytes(key).is_ok_and(|key| {
        key.verify_strict(
            &settlement::signed_message(prefix, body),
            &ed25519_dalek::Signature::from_bytes(signature),
        )
        .is_ok()
    })
}

/// The signature header of `request`, if it holds 64 bytes.
fn signature_of(request: &http::Request<()>) -> Option<[u8; 64]> {
    request
        .headers()
        .get(settlement::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(openrelay_tokens::b64::decode)
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
}

/// How a [`Vouch`] other than `Listed` is answered.
fn not_vouched(vouch: Vouch, operator: &str) -> Reply {
    match vouch {
        Vouch::Unknown => text(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "the relay directory is not available yet; retry later",
        ),
        _ => text(
            http::StatusCode::FORBIDDEN,
            format!("this key is not listed as a relay of operator {operator:?}"),
        ),
    }
}

/// The body limit of a POST to `path`; `None` for an unknown path.
fn body_limit(path: &str) -> Option<usize> {
    match path {
        settlement::SETTLE_PATH => Some(settlement::MAX_ENCODED_LEN),
        settlement::LEDGER_PATH => Some(settlement::MAX_LEDGER_REQUEST_LEN),
        paths::REGISTER_START
        | paths::REGISTER_FINISH
        | paths::LOGIN_START
        | paths::LOGIN_FINISH
        | paths::TOKEN_REQUEST => Some(MAX_BODY),
        _ => None,
    }
}

impl IssuerService {
    /// The service for `config`: opens its store, OPAQUE setup, puzzle key
    /// and token keys (making a first key if there is none, which takes a
    /// moment).
    pub fn new(config: &IssuerConfig) -> Result<Self, ServiceError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|source| ServiceError::Setup {
            path: config.state_dir.clone(),
            source,
        })?;
        let store = Store::open(&config.state_dir.join("issuer.redb"))?;
        let setup = load_or_create_secret(
            &config.state_dir.join(SETUP_FILE),
            |bytes| Ok(ServerSetup::<Suite>::deserialize(bytes)?),
            || {
                let setup = ServerSetup::<Suite>::new(&mut OsRng);
                let bytes = setup.serialize().to_vec();
                (setup, bytes)
            },
        )?;
        let puzzle_key = load_or_create_secret(
            &config.state_dir.join(PUZZLE_KEY_FILE),
            |bytes| <[u8; 32]>::try_from(bytes).map_err(|_| SecretError::KeyLength),
            || {
                let mut key = [0u8; 32];
                OsRng.fill_bytes(&mut key);
                (key, key.to_vec())
            },
        )?;
        let keys = KeyRing::load(&config.state_dir, config.key_rotation_secs, unix_now())?;
        let consistency = match (&config.publish, &config.directory) {
            (Some(publish), Some(directory)) => {
                // The key set is signed by the identity clients pin: the
                // TLS key in the state directory.
                let identity =
                    openrelay_transport::identity::Identity::load_or_create(&config.state_dir)?;
                Some((
                    Arc::new(DirectoryFollower::new(directory)?),
                    Arc::new(KeyPublisher::new(publish, identity, &config.issuer_name)?),
                ))
            }
            _ => None,
        };
        let service = IssuerService {
            config: config.clone(),
            store,
            setup,
            puzzle_key,
            keys: Mutex::new(keys),
            logins: Mutex::new(Logins::new(LoginLimits::DEFAULT)),
            started: Instant::now(),
            sessions: Mutex::default(),
            listing: Arc::new(RelayListing::from_config(config.settlement.as_ref())?),
            replays: Mutex::new(ReplayGuard::new(REPLAY_CAPACITY)),
            blocking: Blocking::new(),
            consistency,
        };
        service.rotate(unix_now())?;
        Ok(service)
    }

    /// Makes the keys the ring needs at `now` and publishes the directory;
    /// forgets what has expired.
    fn rotate(&self, now: u64) -> Result<(), ServiceError> {
        lock(&self.keys).prune(now);
        lock(&self.sessions).prune(now);
        if let Err(e) = self.store.prune(now) {
            warn!(error = %e, "redeemed tokens and used puzzles not pruned");
        }
        let mut added = false;
        loop {
            let needed = lock(&self.keys).plan(now);
            let Some(needed) = needed else { break };
            // Made without holding the lock: key generation takes a moment.
            let key = make_key(|key| lock(&self.keys).fits(key))?;
            lock(&self.keys).add(needed, key)?;
            added = true;
        }
        lock(&self.keys).publish(&self.config.state_dir)?;
        if added && let Some((_, publisher)) = &self.consistency {
            publisher.keys_changed();
        }
        Ok(())
    }

    /// Whether `epoch` may sign now: without a directory to follow, any key
    /// of the ring; with one, only a key the last verified directory lists
    /// for this issuer (RFC 9576 §6: a key not yet listed signs nothing).
    fn may_sign(&self, epoch: &openrelay_tokens::EpochKey) -> Result<(), KeyConsistencyError> {
        let Some((follower, publisher)) = &self.consistency else {
            return Ok(());
        };
        let issuer = openrelay_types::KeyPin::from(publisher.issuer());
        let directory = follower
            .current()
            .ok_or(KeyConsistencyError::NotListed(issuer))?;
        let listed = listed_keys(&directory, &issuer, &self.config.issuer_name)?;
        if lists(&listed, epoch) {
            Ok(())
        } else {
            Err(KeyConsistencyError::NotListed(issuer))
        }
    }

    /// The issuer's QUIC endpoint on its listen address, with its
    /// `[limits]`. Clients reach it through their relays, so its packets
    /// must fit their datagrams.
    pub fn bind(config: &IssuerConfig, identity: &Identity) -> Result<Service, StartError> {
        Service::bind_service(config.listen, identity, TUNNELLED_MTU, &config.limits)
    }

    /// Serves `service`, rotates keys and follows the relay directory
    /// until `shutdown`.
    pub async fn run(self: Arc<Self>, mut service: Service, shutdown: impl Future<Output = ()>) {
        let rotating = Arc::clone(&self);
        service.spawn(async move {
            let every = Duration::from_secs((rotating.config.key_rotation_secs / 8).clamp(1, 60));
            loop {
                tokio::time::sleep(every).await;
                let issuer = Arc::clone(&rotating);
                let rotated = tokio::task::spawn_blocking(move || issuer.rotate(unix_now())).await;
                if let Ok(Err(e)) = rotated {
                    warn!(error = %e, "token key rotation failed");
                }
            }
        });
        service.spawn(Arc::clone(&self.listing).run());
        if let RelayListing::Nobody = &*self.listing {
            warn!("no [settlement] section: every settlement will be refused");
        }
        match self.consistency.clone() {
            Some((follower, publisher)) => {
                let issuer = Arc::clone(&self);
                service.spawn(async move { follower.run().await });
                service.spawn(async move {
                    publisher
                        .run(
                            || lock(&issuer.keys).epochs(),
                            unix_now,
                            std::future::pending(),
                        )
                        .await;
                });
            }
            None => info!(
                "no [publish] and [directory]: token keys are not published to the registry, so \
                 key consistency rests on this issuer (RFC 9576 §6)"
            ),
        }
        info!(issuer_name = %self.config.issuer_name, "issuer serving");
        service.serve(self, shutdown).await.log("issuer stopped");
    }

    /// The time on the login limits' clock.
    fn login_clock(&self) -> Duration {
        self.started.elapsed()
    }

    fn puzzle(&self, now: u64) -> Reply {
        let mut nonce = [0u8; 16];
        OsRng.fill_bytes(&mut nonce);
        let puzzle = Puzzle::issue(
            &self.puzzle_key,
            self.config.registration_puzzle_bits,
            now,
            nonce,
        );
        (
            http::StatusCode::OK,
            vec![(
                http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            )],
            Bytes::copy_from_slice(&puzzle.encode()),
        )
    }

    fn register_start(&self, body: &[u8]) -> Reply {
        let request = unframe(body).and_then(|(username, message)| {
            Some((
                username,
                RegistrationRequest::<Suite>::deserialize(message).ok()?,
            ))
        });
        let Some((username, request)) = request else {
            return text(
                http::StatusCode::BAD_REQUEST,
                "malformed registration request",
            );
        };
        match ServerRegistration::<Suite>::start(&self.setup, request, username.as_bytes()) {
            Ok(result) => (
                http::StatusCode::OK,
                Vec::new(),
                Bytes::from(result.message.serialize().to_vec()),
            ),
            Err(_) => text(http::StatusCode::BAD_REQUEST, "registration refused"),
        }
    }

    fn register_finish(&self, body: &[u8], now: u64) -> Reply {
        use http::StatusCode;
        let Some((username, message)) = unframe(body) else {
            return text(StatusCode::BAD_REQUEST, "malformed registration upload");
        };
        let Ok((puzzle, counter, upload)) = split_solution(message) else {
            return text(
                StatusCode::FORBIDDEN,
                "registration needs a solved puzzle (GET /v1/register/puzzle)",
            );
        };
        if let Err(e) = puzzle.verify(
            &self.puzzle_key,
            self.config.registration_puzzle_bits,
            now,
            username,
            counter,
        ) {
            return text(StatusCode::FORBIDDEN, e.to_string());
        }
        let Ok(upload) = RegistrationUpload::<Suite>::deserialize(upload) else {
            return text(StatusCode::BAD_REQUEST, "malformed registration upload");
        };
        let file = ServerRegistration::<Suite>::finish(upload).serialize();
        let spend = PuzzleSpend {
            nonce: puzzle.nonce,
            expires: puzzle.expires,
        };
        match self.store.create_account(username, &file, spend) {
            Ok(Registration::Created) => {
                info!("account registered");
                (StatusCode::NO_CONTENT, Vec::new(), Bytes::new())
            }
            Ok(Registration::NameTaken) => text(StatusCode::CONFLICT, "account name taken"),
            Ok(Registration::PuzzleUsed) => text(
                StatusCode::FORBIDDEN,
                "registration puzzle already used; fetch a new one",
            ),
            Err(e) => {
                warn!(error = %e, "cannot store an account");
                text(StatusCode::INTERNAL_SERVER_ERROR, "store error")
            }
        }
    }

    fn login_parameters<'a>(&'a self, username: &'a str) -> ServerLoginParameters<'a, 'a> {
        ServerLoginParameters {
            context: Some(openrelay_issuer_client::OPAQUE_CONTEXT),
            identifiers: opaque_identifiers(username, &self.config.issuer_name),
        }
    }

    fn login_start(&self, body: &[u8], peer: IpAddr) -> Reply {
        use http::StatusCode;
        let request = unframe(body).and_then(|(username, message)| {
            Some((
                username,
                CredentialRequest::<Suite>::deserialize(message).ok()?,
            ))
        });
        let Some((username, request)) = request else {
            return text(StatusCode::BAD_REQUEST, "malformed login request");
        };
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let id = LoginId(id);
        let admitted =
            lock(&self.logins).admit(id, username, AddressKey::of(peer), self.login_clock());
        if let Err(refusal) = admitted {
            debug!(reason = %refusal, "login refused");
            let status = match refusal {
                crate::logins::LoginRefusal::Account(_)
                | crate::logins::LoginRefusal::Address(_) => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            let (status, mut headers, body) = text(status, refusal.to_string());
            headers.push((
                http::header::RETRY_AFTER,
                refusal.retry_after_secs().to_string(),
            ));
            return (status, headers, body);
        }
        let file = match self.store.password_file(username) {
            Ok(file) => file.and_then(|f| ServerRegistration::<Suite>::deserialize(&f).ok()),
            Err(e) => {
                lock(&self.logins).release(id);
                warn!(error = %e, "cannot read an account");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "store error");
            }
        };
        let started = ServerLogin::start(
            &mut OsRng,
            &self.setup,
            file,
            request,
            username.as_bytes(),
            self.login_parameters(username),
        );
        let Ok(result) = started else {
            lock(&self.logins).release(id);
            return text(StatusCode::BAD_REQUEST, "login refused");
        };
        lock(&self.logins).fill(id, result.state);
        let mut out = id.0.to_vec();
        out.extend_from_slice(&result.message.serialize());
        (StatusCode::OK, Vec::new(), Bytes::from(out))
    }

    fn login_finish(&self, body: &[u8], now: u64) -> Reply {
        let Some((id, message)) = body.split_first_chunk::<16>() else {
            return text(http::StatusCode::BAD_REQUEST, "malformed login finish");
        };
        let taken = lock(&self.logins).take(LoginId(*id), self.login_clock());
        let Some((username, state)) = taken else {
            return text(http::StatusCode::UNAUTHORIZED, "no such login in progress");
        };
        let finished = CredentialFinalization::<Suite>::deserialize(message)
            .ok()
            .and_then(|m| state.finish(m, self.login_parameters(&username)).ok());
        let Some(finished) = finished else {
            debug!("login failed");
            return text(http::StatusCode::UNAUTHORIZED, "login failed");
        };
        lock(&self.logins).succeeded(&username);
        lock(&self.sessions).open(
            session_bearer(&finished.session_key),
            &username,
            now.saturating_add(self.config.session_lifetime_secs),
            now,
        );
        (http::StatusCode::NO_CONTENT, Vec::new(), Bytes::new())
    }

    fn session_user(&self, request: &http::Request<()>, now: u64) -> Option<String> {
        let value = request
            .headers()
            .get(http::header::AUTHORIZATION)?
            .to_str()
            .ok()?;
        let bearer = value.strip_prefix("Bearer ")?;
        lock(&self.sessions).account(bearer, now).map(str::to_owned)
    }

    fn issue(&self, request: &http::Request<()>, body: &[u8], now: u64) -> Reply {
        let Some(username) = self.session_user(request, now) else {
            return text(
                http::StatusCode::UNAUTHORIZED,
                "log in first (no valid session)",
            );
        };
        let media_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if media_type != Some(REQUEST_MEDIA_TYPE) {
            return text(
                http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("expected Content-Type: {REQUEST_MEDIA_TYPE}"),
            );
        }
        // RFC 9578 §6.2: a bad type, key id or size is 422.
        let token_request = match TokenRequest::decode(body) {
            Ok(r) => r,
            Err(e) => return text(http::StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        };
        let signer = lock(&self.keys)
            .signer(token_request.truncated_token_key_id, now)
            .cloned();
        let Some((epoch, signer)) = signer else {
            return text(http::StatusCode::UNPROCESSABLE_ENTITY, "unknown token key");
        };
        if let Err(e) = self.may_sign(&epoch) {
            debug!(error = %e, "token key not listed yet");
            let (status, mut headers, body) = text(
                http::StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "this token key is not (yet) listed in the validator-signed directory, so it \
                     signs nothing (RFC 9576 §6); retry later: {e}"
                ),
            );
            headers.push((http::header::RETRY_AFTER, "10".to_owned()));
            return (status, headers, body);
        }
        let period = now / self.config.token_period_secs;
        // A measuring validator's probe account may be allowed more
        // (`account_quotas`): it tests every relay every epoch.
        let limit = self
            .config
            .account_quotas
            .get(&username)
            .copied()
            .unwrap_or(self.config.tokens_per_period);
        match self.store.take_token(&username, period, u64::from(limit)) {
            Ok(Quota::Granted) => {}
            Ok(Quota::Exhausted) => {
                return text(
                    http::StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "token quota exhausted: {limit} tokens per {} seconds",
                        self.config.token_period_secs
                    ),
                );
            }
            Err(e) => {
                warn!(error = %e, "cannot count a token");
                return text(http::StatusCode::INTERNAL_SERVER_ERROR, "store error");
            }
        }
        match signer.sign(&token_request) {
            Ok(response) => (
                http::StatusCode::OK,
                vec![(http::header::CONTENT_TYPE, RESPONSE_MEDIA_TYPE.to_owned())],
                Bytes::from(response.encode()),
            ),
            Err(e) => text(http::StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        }
    }

    /// Redeems a relay's collected payment tokens for its operator (see
    /// `openrelay_tokens::settlement`). The relay must be listed for the
    /// operator it names; a token counts only if it verifies for the
    /// challenge scoped to the signing relay (so only the relay that
    /// collected it can redeem it) and was never redeemed before.
    fn settle(&self, request: &http::Request<()>, body: &[u8], now: u64) -> Reply {
        use http::StatusCode;
        let Some(signature) = signature_of(request) else {
            return text(
                StatusCode::UNAUTHORIZED,
                "missing or malformed relay signature",
            );
        };
        let claim = match Settlement::decode(body) {
            Ok(claim) => claim,
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
        if !signed_by(&claim.relay, SETTLEMENT_SIGNATURE_PREFIX, body, &signature) {
            return text(
                StatusCode::UNAUTHORIZED,
                "the relay signature does not verify",
            );
        }
        let vouch = self.listing.vouches(&claim.operator, &claim.relay, now);
        if vouch != Vouch::Listed {
            return not_vouched(vouch, &claim.operator);
        }
        let relay = openrelay_types::KeyPin::from_ed25519(claim.relay).to_string();
        let challenge =
            openrelay_tokens::TokenChallenge::for_relay(&self.config.issuer_name, relay);
        let verifier = match TokenVerifier::new(&challenge, lock(&self.keys).epochs()) {
            Ok(verifier) => verifier,
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let mut refused = Vec::new();
        let mut valid = Vec::new();
        for (index, token) in claim.tokens.iter().enumerate() {
            match verifier.verify(token, now) {
                Ok(redemption) => valid.push((index, redemption)),
                Err(VerifyError::WrongChallenge) => refused.push(RefusedToken {
                    index,
                    reason: "not collected by this relay".into(),
                }),
                Err(e) => refused.push(RefusedToken {
                    index,
                    reason: e.to_string(),
                }),
            }
        }
        let keys: Vec<([u8; 32], u64)> = valid
            .iter()
            .map(|(_, r)| (r.spend_key.0, r.expires))
            .collect();
        let fresh = match self
            .store
            .redeem(&claim.operator, &keys, claim.bytes_carried)
        {
            Ok(fresh) => fresh,
            Err(e) => {
                warn!(error = %e, "settlement not recorded");
                return text(StatusCode::SERVICE_UNAVAILABLE, "store unavailable");
            }
        };
        for ((index, _), new) in valid.iter().zip(&fresh) {
            if !new {
                refused.push(RefusedToken {
                    index: *index,
                    reason: "already redeemed".into(),
                });
            }
        }
        refused.sort_by_key(|r| r.index);
        let receipt = Receipt {
            redeemed: fresh.iter().filter(|f| **f).count(),
            refused,
        };
        info!(
            operator = %claim.operator,
            redeemed = receipt.redeemed,
            refused = receipt.refused.len(),
            "settlement"
        );
        json(&receipt)
    }

    /// An operator's ledger, for a fresh request signed by one of its relays
    /// (or its operator key), addressed to this issuer, seen once.
    fn ledger(&self, request: &http::Request<()>, body: &[u8], now: u64) -> Reply {
        use http::StatusCode;
        let Some(signature) = signature_of(request) else {
            return text(
                StatusCode::UNAUTHORIZED,
                "sign the ledger request (openrelay ledger does)",
            );
        };
        let asked = match LedgerRequest::decode(body) {
            Ok(asked) => asked,
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
        if !signed_by(
            &asked.signer,
            LEDGER_READ_SIGNATURE_PREFIX,
            body,
            &signature,
        ) {
            return text(StatusCode::UNAUTHORIZED, "the signature does not verify");
        }
        if asked.issuer != self.config.issuer_name {
            return text(
                StatusCode::UNAUTHORIZED,
                "the request is for another issuer",
            );
        }
        if asked.issued_at.abs_diff(now) > LEDGER_REQUEST_MAX_AGE_SECS {
            return text(
                StatusCode::UNAUTHORIZED,
                "the request is stale (or the clocks differ by more than 5 minutes)",
            );
        }
        let vouch = self.listing.vouches(&asked.operator, &asked.signer, now);
        if vouch != Vouch::Listed {
            return not_vouched(vouch, &asked.operator);
        }
        let until = asked
            .issued_at
            .saturating_add(LEDGER_REQUEST_MAX_AGE_SECS + 1);
        if let Err(e) = lock(&self.replays).accept(asked.nonce, until, now) {
            return text(StatusCode::UNAUTHORIZED, e.to_string());
        }
        match self.store.ledger(&asked.operator) {
            Ok((tokens_redeemed, bytes_reported, settlements)) => json(&OperatorLedger {
                operator: asked.operator,
                tokens_redeemed,
                bytes_reported,
                settlements,
            }),
            Err(e) => {
                warn!(error = %e, "ledger not read");
                text(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
            }
        }
    }

    /// A POST to `path`, on a blocking thread.
    fn post(&self, request: &http::Request<()>, body: &[u8], peer: IpAddr) -> Reply {
        let now = unix_now();
        match request.uri().path() {
            paths::REGISTER_START => self.register_start(body),
            paths::REGISTER_FINISH => self.register_finish(body, now),
            paths::LOGIN_START => self.login_start(body, peer),
            paths::LOGIN_FINISH => self.login_finish(body, now),
            paths::TOKEN_REQUEST => self.issue(request, body, now),
            settlement::SETTLE_PATH => self.settle(request, body, now),
            settlement::LEDGER_PATH => self.ledger(request, body, now),
            _ => text(http::StatusCode::NOT_FOUND, "unknown request"),
        }
    }

    async fn serve_request(
        self: Arc<Self>,
        request: http::Request<()>,
        mut stream: ServerStream,
        peer: IpAddr,
    ) {
        use http::{Method, StatusCode};
        let method = request.method().clone();
        let (status, headers, body) = match (method, request.uri().path()) {
            (Method::GET, paths::DIRECTORY) => (
                StatusCode::OK,
                vec![(
                    http::header::CONTENT_TYPE,
                    openrelay_tokens::directory::MEDIA_TYPE.to_owned(),
                )],
                Bytes::from(lock(&self.keys).directory().to_json()),
            ),
            (Method::GET, paths::REGISTER_PUZZLE) => self.puzzle(unix_now()),
            (Method::GET, paths::SIGNED_DIRECTORY) => {
                // A follower keeps its directory's body in memory.
                let copy = self
                    .consistency
                    .as_ref()
                    .and_then(|(follower, _)| follower.current()?.signed());
                match copy {
                    Some(directory) => (
                        StatusCode::OK,
                        vec![(
                            http::header::CONTENT_TYPE,
                            "application/octet-stream".to_owned(),
                        )],
                        Bytes::from(directory.to_bytes()),
                    ),
                    None => text(
                        StatusCode::NOT_FOUND,
                        "this issuer follows no validator-signed directory (or has none yet)",
                    ),
                }
            }
            (Method::GET, settlement::LEDGER_PATH) => {
                let (status, mut headers, body) = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "ledger reads are signed: POST a LedgerRequest (openrelay ledger does)",
                );
                headers.push((http::header::ALLOW, "POST".to_owned()));
                (status, headers, body)
            }
            (Method::POST, path) => match body_limit(path) {
                None => text(StatusCode::NOT_FOUND, "unknown request"),
                Some(limit) => match server::read_body(&mut stream, limit).await {
                    None => text(StatusCode::PAYLOAD_TOO_LARGE, "body too large or cut off"),
                    Some(body) => {
                        let service = Arc::clone(&self);
                        self.blocking
                            .run(move || service.post(&request, &body, peer))
                            .await
                            .unwrap_or_else(|| {
                                text(StatusCode::SERVICE_UNAVAILABLE, "issuer busy; retry")
                            })
                    }
                },
            },
            _ => text(StatusCode::NOT_FOUND, "unknown request"),
        };
        let mut response = http::Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(name, value);
        }
        if let Ok(response) = response.body(()) {
            server::send(stream, response, body).await;
        }
    }
}

/// A fresh key that `fits` (its truncated id is free).
fn make_key(
    fits: impl Fn(&openrelay_tokens::SigningKey) -> bool,
) -> Result<openrelay_tokens::SigningKey, KeyRingError> {
    loop {
        let key = openrelay_tokens::SigningKey::generate().map_err(|e| KeyRingError::Key {
            path: PathBuf::from(crate::keys::KEY_DIR),
            reason: e.to_string(),
        })?;
        if fits(&key) {
            return Ok(key);
        }
    }
}

impl RequestHandler for IssuerService {
    async fn handle(
        self: Arc<Self>,
        request: http::Request<()>,
        stream: ServerStream,
        context: RequestContext,
    ) {
        // The address only feeds the login limits; it is never logged.
        let peer = context.connection.remote_address().ip();
        self.serve_request(request, stream, peer).await;
    }
}
