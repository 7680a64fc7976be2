//! The issuer's client API (for the wallet): register, log in, read the
//! directory and fetch a batch of tokens, over one pinned HTTP/3 connection
//! (`transport::call`). The password never leaves this process: only OPAQUE
//! messages are sent (RFC 9807), bound to openrelay's context and to the
//! account and issuer names. The CPU-heavy steps (Argon2id, the
//! registration puzzle) run on a blocking thread.

use std::net::SocketAddr;

use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialResponse, RegistrationResponse,
};
use openrelay_tokens::issuance::{self, IssuanceError, REQUEST_MEDIA_TYPE, RESPONSE_MEDIA_TYPE};
use openrelay_tokens::settlement::{self, OperatorLedger};
use openrelay_tokens::{ChallengeError, DirectoryError};
use openrelay_tokens::{IssuerDirectory, Token, TokenChallenge, TokenKey, TokenResponse};
use openrelay_transport::call::{CallError, PinnedConnection, Response};
use openrelay_types::{ErrorKind, HasKind, KeyPin};
use rand_core::OsRng;

use crate::puzzle::{Puzzle, PuzzleError, join_solution};
use crate::{
    OPAQUE_CONTEXT, Suite, frame, opaque_identifiers, paths, session_bearer, valid_username,
};

/// Why a call to the issuer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerClientError {
    /// The issuer could not be reached (or proved another key).
    #[error("issuer at {addr}: {reason}")]
    Unreachable {
        /// The issuer.
        addr: SocketAddr,
        /// What went wrong.
        reason: CallError,
    },
    /// The account name is empty, too long or not printable ASCII.
    #[error("account names are 1 to 64 printable ASCII characters")]
    Username,
    /// The name is taken.
    #[error("account name taken")]
    Taken,
    /// Wrong name or password.
    #[error("login failed: wrong account name or password")]
    LoginFailed,
    /// The session expired or was never opened.
    #[error("not logged in (session missing or expired)")]
    NotLoggedIn,
    /// The account has had its tokens for this period (the issuer's
    /// message says when more come).
    #[error("{0}")]
    QuotaExhausted(String),
    /// Too many login attempts lately (for the account or from this
    /// address); the issuer's message says when to retry.
    #[error("{0}")]
    Throttled(String),
    /// The issuer's registration puzzle is malformed.
    #[error("registration puzzle: {0}")]
    Puzzle(#[from] PuzzleError),
    /// The issuer refused the puzzle's solution (its message says why).
    #[error("registration puzzle: {0}")]
    PuzzleRefused(String),
    /// OPAQUE failed on the client (a malformed or forged server message).
    #[error("OPAQUE: {0}")]
    Opaque(#[from] opaque_ke::errors::ProtocolError),
    /// The issuer's login answer is too short to hold a login id.
    #[error("OPAQUE: short login response")]
    ShortLoginResponse,
    /// The token challenge cannot be encoded.
    #[error(transparent)]
    Challenge(#[from] ChallengeError),
    /// The issuer's directory is malformed.
    #[error("issuer directory: {0}")]
    Directory(#[from] DirectoryError),
    /// A token could not be finalised.
    #[error(transparent)]
    Issuance(#[from] IssuanceError),
    /// The issuer's ledger answer does not parse.
    #[error("issuer ledger: {0}")]
    Ledger(#[from] serde_json::Error),
    /// The thread running a CPU-heavy step failed.
    #[error("worker thread: {0}")]
    Worker(#[from] tokio::task::JoinError),
    /// Any other answer.
    #[error("issuer answered {status}: {message}")]
    Refused {
        /// The status.
        status: u16,
        /// Its message.
        message: String,
    },
}

impl HasKind for IssuerClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            IssuerClientError::Unreachable { reason, .. } => reason.kind(),
            IssuerClientError::Username => ErrorKind::BadInput,
            IssuerClientError::Taken
            | IssuerClientError::PuzzleRefused(_)
            | IssuerClientError::Refused { .. } => ErrorKind::Refused,
            IssuerClientError::LoginFailed | IssuerClientError::NotLoggedIn => {
                ErrorKind::NotAuthenticated
            }
            IssuerClientError::QuotaExhausted(_) | IssuerClientError::Throttled(_) => {
                ErrorKind::LimitReached
            }
            IssuerClientError::Puzzle(_)
            | IssuerClientError::Opaque(_)
            | IssuerClientError::ShortLoginResponse
            | IssuerClientError::Directory(_)
            | IssuerClientError::Ledger(_)
            | IssuerClientError::Issuance(_) => ErrorKind::PeerMisbehaved,
            IssuerClientError::Challenge(_) => ErrorKind::BadInput,
            IssuerClientError::Worker(_) => ErrorKind::Internal,
        }
    }
}

/// A logged-in session: the bearer credential for token requests.
#[derive(Clone)]
pub struct Session {
    bearer: String,
}

impl Session {
    /// A session from a bearer kept from an earlier login (e.g. in the
    /// client's wallet).
    pub fn from_bearer(bearer: String) -> Self {
        Session { bearer }
    }

    /// The bearer, to keep (it is a credential: store it sealed).
    pub fn bearer(&self) -> &str {
        &self.bearer
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session(<redacted>)")
    }
}

/// A connection to an issuer.
#[derive(Debug)]
pub struct IssuerClient {
    addr: SocketAddr,
    connection: PinnedConnection,
}

fn refused(response: &Response) -> IssuerClientError {
    IssuerClientError::Refused {
        status: response.status,
        message: String::from_utf8_lossy(&response.body).trim().to_owned(),
    }
}

impl IssuerClient {
    /// Connects to the issuer at `addr`, which must prove `pin`, from a
    /// fresh local socket.
    pub async fn connect(addr: SocketAddr, pin: KeyPin) -> Result<Self, IssuerClientError> {
        Self::connected(addr, PinnedConnection::open(addr, pin).await)
    }

    /// Connects over `endpoint` (e.g. one tunnelled through the relays, so
    /// the issuer does not see the client's address).
    pub async fn connect_via(
        endpoint: &quinn::Endpoint,
        mtu: u16,
        addr: SocketAddr,
        pin: KeyPin,
    ) -> Result<Self, IssuerClientError> {
        Self::connected(
            addr,
            PinnedConnection::connect(endpoint, addr, pin, mtu).await,
        )
    }

    fn connected(
        addr: SocketAddr,
        connection: Result<PinnedConnection, CallError>,
    ) -> Result<Self, IssuerClientError> {
        match connection {
            Ok(connection) => Ok(IssuerClient { addr, connection }),
            Err(reason) => Err(IssuerClientError::Unreachable { addr, reason }),
        }
    }

    async fn post(
        &self,
        path: &str,
        headers: &[(http::HeaderName, String)],
        body: Vec<u8>,
    ) -> Result<Response, IssuerClientError> {
        self.connection
            .request(http::Method::POST, path, headers, body)
            .await
            .map_err(|reason| IssuerClientError::Unreachable {
                addr: self.addr,
                reason,
            })
    }

    /// `GET path`: the 200 answer's body.
    async fn get(&self, path: &str) -> Result<Vec<u8>, IssuerClientError> {
        let response = self
            .connection
            .request(http::Method::GET, path, &[], Vec::new())
            .await
            .map_err(|reason| IssuerClientError::Unreachable {
                addr: self.addr,
                reason,
            })?;
        if response.status != 200 {
            return Err(refused(&response));
        }
        Ok(response.body)
    }

    /// Posts an OPAQUE message for `username` to `path`; the 200 answer's body.
    async fn opaque_step(
        &self,
        path: &str,
        username: &str,
        message: &[u8],
    ) -> Result<Vec<u8>, IssuerClientError> {
        let response = self.post(path, &[], frame(username, message)).await?;
        if response.status != 200 {
            return Err(refused(&response));
        }
        Ok(response.body)
    }

    /// Registers `username` with `password` at the issuer named
    /// `issuer_name` (OPAQUE registration, RFC 9807 §5), after solving its
    /// registration puzzle.
    pub async fn register(
        &self,
        issuer_name: &str,
        username: &str,
        password: &str,
    ) -> Result<(), IssuerClientError> {
        if !valid_username(username) {
            return Err(IssuerClientError::Username);
        }
        let puzzle = Puzzle::decode(&self.get(paths::REGISTER_PUZZLE).await?)?;
        let name = username.to_owned();
        let solution = blocking(move || puzzle.solve(&name)).await?;
        let start = ClientRegistration::<Suite>::start(&mut OsRng, password.as_bytes())?;
        let body = self
            .opaque_step(paths::REGISTER_START, username, &start.message.serialize())
            .await?;
        let message = RegistrationResponse::<Suite>::deserialize(&body)?;
        let (password, name, issuer) = (
            password.to_owned(),
            username.to_owned(),
            issuer_name.to_owned(),
        );
        let finish = blocking(move || {
            start.state.finish(
                &mut OsRng,
                password.as_bytes(),
                message,
                ClientRegistrationFinishParameters::new(opaque_identifiers(&name, &issuer), None),
            )
        })
        .await??;
        let upload = join_solution(&puzzle, solution, &finish.message.serialize());
        let response = self
            .post(paths::REGISTER_FINISH, &[], frame(username, &upload))
            .await?;
        match response.status {
            204 => Ok(()),
            409 => Err(IssuerClientError::Taken),
            403 => Err(IssuerClientError::PuzzleRefused(
                String::from_utf8_lossy(&response.body).trim().to_owned(),
            )),
            _ => Err(refused(&response)),
        }
    }

    /// Logs in at the issuer named `issuer_name` (OPAQUE login, RFC 9807
    /// §6) and returns the session.
    pub async fn login(
        &self,
        issuer_name: &str,
        username: &str,
        password: &str,
    ) -> Result<Session, IssuerClientError> {
        if !valid_username(username) {
            return Err(IssuerClientError::Username);
        }
        let start = ClientLogin::<Suite>::start(&mut OsRng, password.as_bytes())?;
        let response = self
            .post(
                paths::LOGIN_START,
                &[],
                frame(username, &start.message.serialize()),
            )
            .await?;
        match response.status {
            200 => {}
            429 => {
                return Err(IssuerClientError::Throttled(
                    String::from_utf8_lossy(&response.body).trim().to_owned(),
                ));
            }
            _ => return Err(refused(&response)),
        }
        let body = response.body;
        let Some((id, message)) = body.split_first_chunk::<16>() else {
            return Err(IssuerClientError::ShortLoginResponse);
        };
        let message = CredentialResponse::<Suite>::deserialize(message)?;
        let (password, name, issuer) = (
            password.to_owned(),
            username.to_owned(),
            issuer_name.to_owned(),
        );
        // A wrong password (or another issuer) fails here, on the client,
        // before anything is sent.
        let finish = blocking(move || {
            start.state.finish(
                &mut OsRng,
                password.as_bytes(),
                message,
                ClientLoginFinishParameters::new(
                    Some(OPAQUE_CONTEXT),
                    opaque_identifiers(&name, &issuer),
                    None,
                ),
            )
        })
        .await?
        .map_err(|_| IssuerClientError::LoginFailed)?;
        let mut body = id.to_vec();
        body.extend_from_slice(&finish.message.serialize());
        let response = self.post(paths::LOGIN_FINISH, &[], body).await?;
        match response.status {
            204 => Ok(Session {
                bearer: session_bearer(&finish.session_key),
            }),
            401 => Err(IssuerClientError::LoginFailed),
            _ => Err(refused(&response)),
        }
    }

    /// The issuer directory (RFC 9578 §4).
    pub async fn directory(&self) -> Result<IssuerDirectory, IssuerClientError> {
        Ok(IssuerDirectory::from_json(
            &self.get(paths::DIRECTORY).await?,
        )?)
    }

    /// The issuer's copy of the validator-signed directory it follows (the
    /// bytes, to verify: only the validators' signatures make it
    /// trustworthy).
    pub async fn signed_directory(&self) -> Result<Vec<u8>, IssuerClientError> {
        self.get(paths::SIGNED_DIRECTORY).await
    }

    /// Fetches `count` tokens for `challenge` under `key` (RFC 9578 §6),
    /// one request each, on this connection. Stops at the first refusal
    /// (e.g. the quota), returning it.
    pub async fn fetch_tokens(
        &self,
        session: &Session,
        key: &TokenKey,
        challenge: &TokenChallenge,
        count: usize,
    ) -> Result<Vec<Token>, IssuerClientError> {
        let digest = challenge.digest()?;
        let headers = [
            (
                http::header::AUTHORIZATION,
                format!("Bearer {}", session.bearer),
            ),
            (http::header::CONTENT_TYPE, REQUEST_MEDIA_TYPE.to_owned()),
            (http::header::ACCEPT, RESPONSE_MEDIA_TYPE.to_owned()),
        ];
        let mut tokens = Vec::with_capacity(count);
        for _ in 0..count {
            let (request, pending) = issuance::request(key, digest)?;
            let response = self
                .post(paths::TOKEN_REQUEST, &headers, request.encode())
                .await?;
            match response.status {
                200 => {
                    let response = TokenResponse::decode(&response.body)?;
                    tokens.push(pending.finalize(&response)?);
                }
                401 => return Err(IssuerClientError::NotLoggedIn),
                429 => {
                    return Err(IssuerClientError::QuotaExhausted(
                        String::from_utf8_lossy(&response.body).trim().to_owned(),
                    ));
                }
                _ => return Err(refused(&response)),
            }
        }
        Ok(tokens)
    }

    /// The operator's ledger at the issuer: `request` is an encoded
    /// [`LedgerRequest`](openrelay_tokens::settlement::LedgerRequest),
    /// `signature` one of the operator's relays' signature over it under
    /// the ledger-read prefix.
    pub async fn operator_ledger(
        &self,
        request: Vec<u8>,
        signature: &[u8; 64],
    ) -> Result<OperatorLedger, IssuerClientError> {
        let header = http::HeaderName::from_static(settlement::SIGNATURE_HEADER);
        let response = self
            .post(
                settlement::LEDGER_PATH,
                &[(header, openrelay_tokens::b64::encode(signature))],
                request,
            )
            .await?;
        if response.status != 200 {
            return Err(refused(&response));
        }
        Ok(serde_json::from_slice(&response.body)?)
    }
}

/// Runs CPU-heavy `work` (Argon2id, a puzzle) off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, IssuerClientError> {
    Ok(tokio::task::spawn_blocking(work).await?)
}
