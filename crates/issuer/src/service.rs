//! `openrelay issuer` on the network: an HTTP/3 server on `transport::server`.
//!
//! | request | does | answers |
//! |---|---|---|
//! | `POST /v1/register/start` | `frame(name, RegistrationRequest)` | 200 RegistrationResponse |
//! | `POST /v1/register/finish` | `frame(name, RegistrationUpload)` | 204; 409 name taken |
//! | `POST /v1/login/start` | `frame(name, CredentialRequest)` | 200 login id (16 bytes) ‖ CredentialResponse |
//! | `POST /v1/login/finish` | login id ‖ CredentialFinalization | 204 (session open); 401 wrong password |
//! | `POST /token-request` | `Authorization: Bearer <session>`, `Content-Type: application/private-token-request`, TokenRequest (RFC 9578 §6.1) | 200 `application/private-token-response` TokenResponse; 401 no session; 415 wrong type; 422 bad request (RFC 9578 §6.2); 429 over the account's quota |
//! | `GET /.well-known/private-token-issuer-directory` | | 200 the directory (RFC 9578 §4) |
//! | `POST /v1/settle` | a relay's `Settlement` of collected payment tokens, signed by the relay's key (`openrelay_tokens::settlement`) | 200 JSON `Receipt` (redeemed, refused with reasons); 400 malformed; 401 bad signature |
//! | `GET /v1/ledger?operator=NAME` | | 200 JSON `OperatorLedger` (tokens redeemed, bytes reported) |
//!
//! Unknown accounts get a login response too (RFC 9807 §6.3.2.2, no account
//! enumeration); the failure shows only at the finish.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opaque_ke::{
    CredentialFinalization, CredentialRequest, RegistrationRequest, RegistrationUpload,
    ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup,
};
use openrelay_config::IssuerConfig;
use openrelay_tokens::issuance::{REQUEST_MEDIA_TYPE, RESPONSE_MEDIA_TYPE};
use openrelay_tokens::settlement::{self, OperatorLedger, Receipt, RefusedToken, Settlement};
use openrelay_tokens::{TokenRequest, TokenVerifier, VerifyError};
use openrelay_transport::identity::write_secret_file;
use openrelay_transport::server::{
    self, RequestContext, RequestHandler, ServerCounters, ServerStream,
};
use rand_core::{OsRng, RngCore};
use tracing::{debug, info, warn};

use crate::keys::{KeyRing, KeyRingError};
use crate::store::{Quota, Store, StoreError};
use crate::{Suite, paths, session_bearer, unframe};

/// The OPAQUE server setup file (its OPRF seed and key pair; 0600).
pub const SETUP_FILE: &str = "opaque-setup.key";
/// Largest request body (OPAQUE messages and token requests are < 1 KiB).
const MAX_BODY: usize = 4096;
/// How long a login may take between its two messages.
const LOGIN_WINDOW_SECS: u64 = 60;
/// Most logins waiting for their second message.
const MAX_PENDING_LOGINS: usize = 10_000;

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
    /// The OPAQUE setup file is unreadable or could not be written.
    #[error("{path}: {reason}")]
    Setup {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct PendingLogin {
    username: String,
    state: ServerLogin<Suite>,
    expires: u64,
}

struct LoginSession {
    username: String,
    expires: u64,
}

/// The issuer service.
pub struct IssuerService {
    config: IssuerConfig,
    store: Store,
    setup: ServerSetup<Suite>,
    keys: Mutex<KeyRing>,
    logins: Mutex<HashMap<[u8; 16], PendingLogin>>,
    sessions: Mutex<HashMap<String, LoginSession>>,
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

fn load_or_create_setup(path: &std::path::Path) -> Result<ServerSetup<Suite>, ServiceError> {
    let fail = |reason: String| ServiceError::Setup {
        path: path.to_owned(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => ServerSetup::<Suite>::deserialize(&bytes).map_err(|e| fail(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let setup = ServerSetup::<Suite>::new(&mut OsRng);
            write_secret_file(path, &setup.serialize()).map_err(|e| fail(e.to_string()))?;
            Ok(setup)
        }
        Err(e) => Err(fail(e.to_string())),
    }
}

type Reply = (
    http::StatusCode,
    Vec<(http::HeaderName, &'static str)>,
    Bytes,
);

fn text(status: http::StatusCode, message: impl Into<String>) -> Reply {
    (status, Vec::new(), Bytes::from(message.into() + "\n"))
}

fn json(value: &impl serde::Serialize) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => (
            http::StatusCode::OK,
            vec![(http::header::CONTENT_TYPE, "application/json")],
            Bytes::from(body),
        ),
        Err(e) => text(http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

impl IssuerService {
    /// The service for `config`: opens its store, OPAQUE setup and token keys
    /// (making a first key if there is none, which takes a moment).
    pub fn new(config: &IssuerConfig) -> Result<Self, ServiceError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|e| ServiceError::Setup {
            path: config.state_dir.clone(),
            reason: e.to_string(),
        })?;
        let store = Store::open(&config.state_dir.join("issuer.redb"))?;
        let setup = load_or_create_setup(&config.state_dir.join(SETUP_FILE))?;
        let keys = KeyRing::load(&config.state_dir, config.key_rotation_secs, unix_now())?;
        let service = IssuerService {
            config: config.clone(),
            store,
            setup,
            keys: Mutex::new(keys),
            logins: Mutex::default(),
            sessions: Mutex::default(),
        };
        service.rotate(unix_now())?;
        Ok(service)
    }

    /// Makes the keys the ring needs at `now` and publishes the directory.
    fn rotate(&self, now: u64) -> Result<(), ServiceError> {
        lock(&self.keys).prune(now);
        if let Err(e) = self.store.prune_redeemed(now) {
            warn!(error = %e, "redeemed tokens not pruned");
        }
        loop {
            let needed = lock(&self.keys).plan(now);
            let Some(needed) = needed else { break };
            // Made without holding the lock: key generation takes a moment.
            let key = make_key(|key| lock(&self.keys).fits(key))?;
            lock(&self.keys).add(needed, key)?;
        }
        lock(&self.keys).publish(&self.config.state_dir)?;
        Ok(())
    }

    /// The issuer's QUIC endpoint on its listen address, with its
    /// `[limits]`.
    pub fn bind(
        config: &IssuerConfig,
        identity: &openrelay_transport::identity::Identity,
    ) -> Result<server::Listener, openrelay_transport::server::StartError> {
        let tuning = openrelay_transport::endpoint::Tuning::relay(
            Duration::from_secs(30),
            openrelay_transport::endpoint::TUNNELLED_MTU,
        );
        let limits =
            openrelay_transport::limits::ServerLimits::service().with_config(&config.limits);
        server::bind(config.listen, identity, &tuning, limits)
    }

    /// Serves `endpoint` and rotates keys until `shutdown`.
    pub async fn run(
        self: Arc<Self>,
        endpoint: server::Listener,
        shutdown: impl Future<Output = ()>,
    ) {
        let rotation = tokio::spawn({
            let service = Arc::clone(&self);
            async move {
                let every =
                    Duration::from_secs((service.config.key_rotation_secs / 8).clamp(1, 60));
                loop {
                    tokio::time::sleep(every).await;
                    let service = Arc::clone(&service);
                    let rotated =
                        tokio::task::spawn_blocking(move || service.rotate(unix_now())).await;
                    if let Ok(Err(e)) = rotated {
                        warn!(error = %e, "token key rotation failed");
                    }
                }
            }
        });
        info!(issuer_name = %self.config.issuer_name, "issuer serving");
        server::serve(
            endpoint,
            self,
            Arc::new(ServerCounters::default()),
            shutdown,
        )
        .await;
        rotation.abort();
        info!("issuer stopped");
    }

    fn register_start(&self, body: &[u8]) -> Reply {
        let Some((username, message)) = unframe(body) else {
            return text(
                http::StatusCode::BAD_REQUEST,
                "malformed registration request",
            );
        };
        let Ok(request) = RegistrationRequest::<Suite>::deserialize(message) else {
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

    fn register_finish(&self, body: &[u8]) -> Reply {
        let Some((username, message)) = unframe(body) else {
            return text(
                http::StatusCode::BAD_REQUEST,
                "malformed registration upload",
            );
        };
        let Ok(upload) = RegistrationUpload::<Suite>::deserialize(message) else {
            return text(
                http::StatusCode::BAD_REQUEST,
                "malformed registration upload",
            );
        };
        let file = ServerRegistration::<Suite>::finish(upload).serialize();
        match self.store.create_account(username, &file) {
            Ok(true) => {
                info!("account registered");
                (http::StatusCode::NO_CONTENT, Vec::new(), Bytes::new())
            }
            Ok(false) => text(http::StatusCode::CONFLICT, "account name taken"),
            Err(e) => {
                warn!(error = %e, "cannot store an account");
                text(http::StatusCode::INTERNAL_SERVER_ERROR, "store error")
            }
        }
    }

    fn login_start(&self, body: &[u8], now: u64) -> Reply {
        let Some((username, message)) = unframe(body) else {
            return text(http::StatusCode::BAD_REQUEST, "malformed login request");
        };
        let Ok(request) = CredentialRequest::<Suite>::deserialize(message) else {
            return text(http::StatusCode::BAD_REQUEST, "malformed login request");
        };
        let file = match self.store.password_file(username) {
            Ok(file) => file.and_then(|f| ServerRegistration::<Suite>::deserialize(&f).ok()),
            Err(e) => {
                warn!(error = %e, "cannot read an account");
                return text(http::StatusCode::INTERNAL_SERVER_ERROR, "store error");
            }
        };
        let Ok(result) = ServerLogin::start(
            &mut OsRng,
            &self.setup,
            file,
            request,
            username.as_bytes(),
            ServerLoginParameters::default(),
        ) else {
            return text(http::StatusCode::BAD_REQUEST, "login refused");
        };
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let mut logins = lock(&self.logins);
        logins.retain(|_, l| l.expires > now);
        if logins.len() >= MAX_PENDING_LOGINS {
            return text(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "too many logins in progress",
            );
        }
        logins.insert(
            id,
            PendingLogin {
                username: username.to_owned(),
                state: result.state,
                expires: now + LOGIN_WINDOW_SECS,
            },
        );
        let mut out = id.to_vec();
        out.extend_from_slice(&result.message.serialize());
        (http::StatusCode::OK, Vec::new(), Bytes::from(out))
    }

    fn login_finish(&self, body: &[u8], now: u64) -> Reply {
        let Some((id, message)) = body.split_first_chunk::<16>() else {
            return text(http::StatusCode::BAD_REQUEST, "malformed login finish");
        };
        let Some(pending) = lock(&self.logins).remove(id) else {
            return text(http::StatusCode::UNAUTHORIZED, "no such login in progress");
        };
        let finished = CredentialFinalization::<Suite>::deserialize(message)
            .ok()
            .filter(|_| pending.expires > now)
            .and_then(|m| {
                pending
                    .state
                    .finish(m, ServerLoginParameters::default())
                    .ok()
            });
        let Some(finished) = finished else {
            debug!("login failed");
            return text(http::StatusCode::UNAUTHORIZED, "login failed");
        };
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            session_bearer(&finished.session_key),
            LoginSession {
                username: pending.username,
                expires: now + self.config.session_lifetime_secs,
            },
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
        let sessions = lock(&self.sessions);
        let session = sessions.get(bearer)?;
        (session.expires > now).then(|| session.username.clone())
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
        let Some(signer) = signer else {
            return text(http::StatusCode::UNPROCESSABLE_ENTITY, "unknown token key");
        };
        let period = now / self.config.token_period_secs;
        let limit = u64::from(self.config.tokens_per_period);
        match self.store.take_token(&username, period, limit) {
            Ok(Quota::Granted) => {}
            Ok(Quota::Exhausted) => {
                return text(
                    http::StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "token quota exhausted: {} tokens per {} seconds",
                        self.config.tokens_per_period, self.config.token_period_secs
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
                vec![(http::header::CONTENT_TYPE, RESPONSE_MEDIA_TYPE)],
                Bytes::from(response.encode()),
            ),
            Err(e) => text(http::StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        }
    }

    /// Redeems a relay's collected payment tokens for its operator (see
    /// `openrelay_tokens::settlement`). A token counts only if it verifies
    /// for the challenge scoped to the signing relay (so only the relay that
    /// collected it can redeem it) and was never redeemed before.
    fn settle(&self, request: &http::Request<()>, body: &[u8], now: u64) -> Reply {
        use http::StatusCode;
        let signature = request
            .headers()
            .get(settlement::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(openrelay_tokens::b64::decode)
            .and_then(|b| <[u8; 64]>::try_from(b).ok());
        let Some(signature) = signature else {
            return text(
                StatusCode::UNAUTHORIZED,
                "missing or malformed relay signature",
            );
        };
        let claim = match Settlement::decode(body) {
            Ok(claim) => claim,
            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
        };
        let signed = ed25519_dalek::VerifyingKey::from_bytes(&claim.relay).is_ok_and(|key| {
            key.verify_strict(body, &ed25519_dalek::Signature::from_bytes(&signature))
                .is_ok()
        });
        if !signed {
            return text(
                StatusCode::UNAUTHORIZED,
                "the relay signature does not verify",
            );
        }
        let relay = openrelay_config::KeyPin::from_ed25519(claim.relay).to_string();
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

    /// An operator's ledger (`?operator=NAME`).
    fn ledger(&self, request: &http::Request<()>) -> Reply {
        let operator = request.uri().query().and_then(|query| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| name == "operator")
                .map(|(_, value)| value.into_owned())
        });
        let Some(operator) = operator.filter(|o| !o.is_empty()) else {
            return text(http::StatusCode::BAD_REQUEST, "ask for ?operator=NAME");
        };
        match self.store.ledger(&operator) {
            Ok((tokens_redeemed, bytes_reported, settlements)) => json(&OperatorLedger {
                operator,
                tokens_redeemed,
                bytes_reported,
                settlements,
            }),
            Err(e) => {
                warn!(error = %e, "ledger not read");
                text(http::StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
            }
        }
    }

    async fn serve_request(&self, request: http::Request<()>, mut stream: ServerStream) {
        use http::{Method, StatusCode};
        let now = unix_now();
        let (status, headers, body) = match (request.method().clone(), request.uri().path()) {
            (Method::GET, paths::DIRECTORY) => (
                StatusCode::OK,
                vec![(
                    http::header::CONTENT_TYPE,
                    openrelay_tokens::directory::MEDIA_TYPE,
                )],
                Bytes::from(lock(&self.keys).directory().to_json()),
            ),
            (Method::GET, settlement::LEDGER_PATH) => self.ledger(&request),
            (Method::POST, path) => match server::read_body(&mut stream, MAX_BODY).await {
                None => text(StatusCode::PAYLOAD_TOO_LARGE, "body too large or cut off"),
                Some(body) => match path {
                    paths::REGISTER_START => self.register_start(&body),
                    paths::REGISTER_FINISH => self.register_finish(&body),
                    paths::LOGIN_START => self.login_start(&body, now),
                    paths::LOGIN_FINISH => self.login_finish(&body, now),
                    paths::TOKEN_REQUEST => self.issue(&request, &body, now),
                    settlement::SETTLE_PATH => self.settle(&request, &body, now),
                    _ => text(StatusCode::NOT_FOUND, "unknown request"),
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
        _context: RequestContext,
    ) {
        self.serve_request(request, stream).await;
    }
}
