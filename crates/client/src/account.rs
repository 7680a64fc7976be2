//! The client's side of access and payment (with `[account]`): which
//! tokens it needs, keeping the [`Wallet`] stocked from the issuer, the
//! access token for each tunnel, and paying each egress as it goes.
//!
//! * **Access**: every connect-udp request to an ingress carries one access
//!   token (`Authorization: PrivateToken`, RFC 9577 §2.2), taken from the
//!   wallet when the path is built; no round trip is added.
//! * **Payment**: on each path, a payer keeps one `POST
//!   /.well-known/openrelay/pay` open on the inner connection to the egress
//!   (so only the egress sees it, encrypted), each carrying a token scoped
//!   to that egress; the egress answers when the next token is due soon, and
//!   the payer pays again. A paying client is never held up.
//! * **Refills**: pools below `low_water` are topped up with `batch` tokens
//!   from the issuer, through the relays when a path is up (so the issuer
//!   sees an egress address, not the user's), directly otherwise. The issuer
//!   signs blinded messages and never learns which pool a token is for.
//!   Refills need the login session the wallet keeps; without one, running
//!   low is reported with the command that fixes it.

use std::sync::Arc;
use std::time::Duration;

use openrelay_config::{AccountConfig, RelayEntry};
use openrelay_issuer::client::{IssuerClient, IssuerClientError, Session};
use openrelay_tokens::header::build_authorization;
use openrelay_tokens::{EpochKey, PAYMENT_PATH, TokenChallenge};
use openrelay_transport::endpoint::TUNNELLED_MTU;
use tracing::{debug, info, warn};

use crate::directory::unix_now;
use crate::manager::PathManager;
use crate::path::InnerRequests;
use crate::wallet::{Wallet, WalletError};

/// How often the pools are checked.
const STOCK_CHECK: Duration = Duration::from_secs(2);
/// How long a payer waits before trying again after a refusal or an empty
/// pool.
const PAY_RETRY: Duration = Duration::from_secs(1);

/// Why tokens could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// No valid login session in the wallet.
    #[error("no valid issuer session: run `openrelay account login`")]
    NoSession,
    /// The issuer refused or could not be reached.
    #[error(transparent)]
    Issuer(#[from] IssuerClientError),
    /// The issuer publishes no key that signs now.
    #[error("the issuer publishes no token key valid now")]
    NoKey,
    /// The wallet failed.
    #[error(transparent)]
    Wallet(#[from] WalletError),
}

/// A connection to the issuer, with the tunnel it runs in (if any).
#[derive(Debug)]
pub struct IssuerLink {
    /// The connection.
    pub client: IssuerClient,
    _tunnel: Option<(quinn::Endpoint, crate::flow::UdpFlowHold)>,
}

/// An account with its issuer and wallet.
#[derive(Debug)]
pub struct Account {
    config: AccountConfig,
    wallet: Arc<Wallet>,
    /// Wakes the refill loop when a pool ran dry.
    ran_dry: tokio::sync::Notify,
}

impl Account {
    /// The account of `config`, with the wallet `wallet`.
    pub fn new(config: AccountConfig, wallet: Arc<Wallet>) -> Self {
        Account {
            config,
            wallet,
            ran_dry: tokio::sync::Notify::new(),
        }
    }

    /// The wallet.
    pub fn wallet(&self) -> &Arc<Wallet> {
        &self.wallet
    }

    /// The challenge of access tokens (ingress relays).
    pub fn access_challenge(&self) -> TokenChallenge {
        TokenChallenge::for_issuer(&self.config.issuer_name)
    }

    /// The challenge of payment tokens for `egress`.
    pub fn payment_challenge(&self, egress: &RelayEntry) -> TokenChallenge {
        TokenChallenge::for_relay(&self.config.issuer_name, egress.key.to_string())
    }

    /// The `Authorization` value for a new tunnel, if the wallet holds an
    /// access token (a relay that wants one answers 401 otherwise).
    pub fn access_authorization(&self) -> Option<String> {
        match self.wallet.take(&self.access_challenge()) {
            Ok(token) => token.map(|t| build_authorization(&t)),
            Err(e) => {
                warn!(error = %e, "wallet unusable");
                None
            }
        }
    }

    /// Connects to the issuer: through the relays if a path is up, else
    /// directly.
    pub async fn issuer(
        &self,
        manager: Option<&Arc<PathManager>>,
    ) -> Result<IssuerLink, AccountError> {
        let issuer = &self.config.issuer;
        if let Some(manager) = manager {
            match crate::flow::tunnel_endpoint(manager, issuer.addr).await {
                Ok((endpoint, hold)) => {
                    let client = IssuerClient::connect_via(
                        &endpoint,
                        TUNNELLED_MTU,
                        issuer.addr,
                        issuer.key,
                    )
                    .await?;
                    return Ok(IssuerLink {
                        client,
                        _tunnel: Some((endpoint, hold)),
                    });
                }
                Err(e) => {
                    debug!(error = %e, "issuer not reachable through the relays; going direct");
                }
            }
        }
        Ok(IssuerLink {
            client: IssuerClient::connect(issuer.addr, issuer.key).await?,
            _tunnel: None,
        })
    }

    /// The key the issuer signs with now, and until when its tokens are
    /// accepted.
    async fn signing_key(client: &IssuerClient) -> Result<EpochKey, AccountError> {
        let now = unix_now();
        client
            .directory()
            .await?
            .epoch_keys()
            .map_err(|_| AccountError::NoKey)?
            .into_iter()
            .filter(|k| k.not_before <= now && now < k.issue_until())
            .max_by_key(|k| k.not_before)
            .ok_or(AccountError::NoKey)
    }

    /// Adds `count` tokens for each of `challenges` to the wallet, with the
    /// login session `session`.
    pub async fn fetch(
        &self,
        client: &IssuerClient,
        session: &Session,
        challenges: &[TokenChallenge],
        count: usize,
    ) -> Result<usize, AccountError> {
        let key = Self::signing_key(client).await?;
        let mut added = 0;
        for challenge in challenges {
            let tokens = client
                .fetch_tokens(session, &key.key, challenge, count)
                .await?;
            self.wallet.add(challenge, &tokens, key.expires)?;
            added += tokens.len();
        }
        Ok(added)
    }

    /// Tops up every pool the client needs (access, and payment for the
    /// egresses of its live paths) that is below `low_water`.
    async fn restock(&self, manager: &Arc<PathManager>) -> Result<usize, AccountError> {
        let mut wanted = vec![self.access_challenge()];
        wanted.extend(
            manager
                .live_egresses()
                .iter()
                .map(|e| self.payment_challenge(e)),
        );
        let counts = self.wallet.counts(&wanted);
        let mut counts = counts.into_iter();
        wanted.retain(|_| counts.next().unwrap_or(0) < self.config.low_water);
        if wanted.is_empty() {
            return Ok(0);
        }
        let bearer = self
            .wallet
            .session(unix_now())
            .ok_or(AccountError::NoSession)?;
        let link = self.issuer(Some(manager)).await?;
        let fetched = self
            .fetch(
                &link.client,
                &Session::from_bearer(bearer),
                &wanted,
                self.config.batch,
            )
            .await;
        if let Err(AccountError::Issuer(IssuerClientError::NotLoggedIn)) = fetched {
            // The issuer no longer knows the session (expired, restarted).
            self.wallet.clear_session()?;
            return Err(AccountError::NoSession);
        }
        fetched
    }

    /// Keeps the pools stocked until the task is aborted.
    pub async fn keep_stocked(self: Arc<Self>, manager: Arc<PathManager>) {
        let mut warned = false;
        loop {
            match self.restock(&manager).await {
                Ok(0) => {}
                Ok(added) => {
                    info!(added, balance = self.wallet.balance(), "wallet topped up");
                    warned = false;
                }
                Err(e) if !warned => {
                    warn!(error = %e, balance = self.wallet.balance(), "wallet not topped up");
                    warned = true;
                }
                Err(e) => debug!(error = %e, "wallet still not topped up"),
            }
            tokio::select! {
                () = tokio::time::sleep(STOCK_CHECK) => {}
                () = self.ran_dry.notified() => {}
            }
        }
    }

    /// Pays `egress` on its inner connection as it goes, until the
    /// connection ends or the egress takes no payments.
    pub async fn pay(self: Arc<Self>, requests: InnerRequests, egress: RelayEntry) {
        let challenge = self.payment_challenge(&egress);
        let uri = format!("https://{}{PAYMENT_PATH}", egress.addr);
        let mut requests = requests;
        let mut waited = Duration::ZERO;
        loop {
            let token = match self.wallet.take(&challenge) {
                Ok(Some(token)) => token,
                Ok(None) => {
                    self.ran_dry.notify_one();
                    // Say it once per path, when it starts to matter.
                    if waited == PAY_RETRY * 3 {
                        warn!(egress = %egress.name, "no payment token for this egress; the egress closes unpaid sessions after its grace window");
                    }
                    tokio::time::sleep(PAY_RETRY).await;
                    waited += PAY_RETRY;
                    continue;
                }
                Err(e) => {
                    warn!(error = %e, "wallet unusable; not paying");
                    return;
                }
            };
            let request = http::Request::builder()
                .method(http::Method::POST)
                .uri(&uri)
                .header(http::header::AUTHORIZATION, build_authorization(&token))
                .body(());
            let Ok(request) = request else { return };
            let answer = async {
                let mut stream = requests
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                // The egress may stop reading once it answered (RFC 9114
                // §4.1.1): what counts is its response.
                let _ = stream.finish().await;
                let response = stream.recv_response().await.map_err(|e| e.to_string())?;
                Ok::<_, String>(response)
            };
            match answer.await {
                // Paid; the answer came because the next token is due soon.
                Ok(response) if response.status().is_success() => {}
                Ok(response) if response.status() == http::StatusCode::NOT_FOUND => {
                    debug!(egress = %egress.name, "egress takes no payments");
                    return;
                }
                Ok(response) => {
                    let details = response
                        .headers()
                        .get("proxy-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    warn!(egress = %egress.name, status = response.status().as_u16(), details, "payment refused");
                    tokio::time::sleep(PAY_RETRY).await;
                }
                // The connection is gone: so is this path.
                Err(e) => {
                    debug!(error = %e, "payer stopped");
                    return;
                }
            }
        }
    }
}
