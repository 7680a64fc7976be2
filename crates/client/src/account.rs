//! The client's side of access and payment (with `[account]`): which
//! tokens it needs, keeping the [`Wallet`] stocked from the issuer, the
//! access token for each tunnel, and paying each egress as it goes.
//!
//! * **Access**: every connect-udp request to an ingress carries one access
//!   token (`Authorization: PrivateToken`, RFC 9577 §2.2) scoped to the
//!   ingress's operator ([`TokenChallenge::for_ingress_operator`]), taken
//!   from that operator's pool when the path is built; no round trip is
//!   added.
//! * **Payment**: on each browsing path, a payer keeps one `POST
//!   /.well-known/openrelay/pay` open on the inner connection to the egress
//!   (so only the egress sees it, encrypted), each carrying a token scoped
//!   to that egress; the egress answers when the next token is due soon, and
//!   the payer pays again. A paying client is never held up.
//! * **Refills**: the client keeps a pool for every ingress operator and
//!   every egress it may use, so a new path never waits for tokens. A pool
//!   below `low_water` is topped up through a **path of its own**
//!   ([`PathManager::build_refill_path`](crate::manager::PathManager::build_refill_path)): its egress is never a browsing
//!   path's (an issuer working with that egress would otherwise link the
//!   account to the session's destinations), its ingress preferably of
//!   another operator; built fresh for each refill, used for nothing else,
//!   closed after it. Refills start at random moments, never within
//!   `refill_delay_min_secs` of a browsing path's start ([`crate::refill`]).
//!   They never go directly to the issuer: when no refill path works, the
//!   client says why and tries again later. Only the explicit `openrelay
//!   account register|login` commands may connect directly
//!   ([`Account::connect_issuer_directly`]).
//!
//! * **Key consistency** (RFC 9576 §6; with `[directory]`): tokens are
//!   requested only under the key the validator-signed directory lists for
//!   the issuer as signing now, and only if every key the issuer offers
//!   that is valid now is listed too; otherwise the issuer is refused with
//!   the reason (an issuer showing a key to only some users could recognise
//!   their tokens where they are spent). Tokens under keys the directory no
//!   longer lists are dropped from the wallet. The directory comes from the
//!   client's feed, or, when that lacks the issuer's current key (a
//!   rotation, the first login), from a copy the issuer hands over, which is
//!   verified as any (the validators' signatures make it trustworthy).
//!   Without a directory (a relay list in the config) the keys the issuer
//!   serves are used as they are: key consistency then rests on the issuer.
//!
//! The issuer signs blinded messages and never learns which pool a token is
//! for. Refills need the login session the wallet keeps; without one,
//! running low is reported with the command that fixes it.

use openrelay_types::error::{ErrorKind, HasKind};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use openrelay_config::AccountConfig;
use openrelay_directory::OperatorId;
use openrelay_issuer_client::client::{IssuerClient, IssuerClientError, Session};
use openrelay_issuer_client::consistency::{KeyConsistencyError, listed_keys, lists};
use openrelay_tokens::header::build_authorization;
use openrelay_tokens::{EpochKey, PAYMENT_PATH, TokenChallenge};
use openrelay_transport::endpoint::TUNNELLED_MTU;
use openrelay_types::RelayRole;
use openrelay_types::unix_now;
use tracing::{debug, warn};

use crate::access::AccessTokens;
pub use crate::access::MissingAccess;
use crate::directory::VerifiedDirectorySource;
use crate::flow::{FlowError, TunnelError, UdpFlowHold};
use crate::path::{InnerRequests, Path};
use crate::relay::Relay;
use crate::wallet::{Wallet, WalletError};

/// How long a payer waits before trying again after a refusal or an empty
/// pool.
const PAY_RETRY: Duration = Duration::from_secs(1);
/// Most tokens one refill fetches. A refill path pays its egress nothing:
/// it runs within the egress's unpaid allowance and grace window (each
/// token is one request of about 1 KB on the wire, one round trip through
/// both relays), so a large need is spread over several refills.
pub const REFILL_MAX_TOKENS: usize = 32;

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
    /// No verified directory to check the issuer's keys against, neither
    /// the client's nor a copy from the issuer.
    #[error(
        "no validator-signed directory to check the issuer's token keys against (RFC 9576 §6); \
         tokens are fetched once one lists them"
    )]
    NoDirectory,
    /// The directory lists no key of the issuer that signs now (yet: a new
    /// issuer, or one whose next key is not listed in time); no token is
    /// fetched meanwhile.
    #[error(
        "the validator-signed directory lists no token key of the issuer that signs now{}; no \
         token is fetched under a key it does not list (RFC 9576 §6)",
        offered.as_ref().map(|id| format!(" (the issuer offers {id})")).unwrap_or_default()
    )]
    KeyNotYetListed {
        /// The unlisted key the issuer offers valid now, hex, if any.
        offered: Option<String>,
    },
    /// The directory's key set of the issuer is unusable here (another
    /// issuer name, not a token key).
    #[error(transparent)]
    Consistency(#[from] KeyConsistencyError),
    /// The issuer offers a key valid now that the directory does not list
    /// for it: refused, no token is fetched under any of its keys.
    #[error(
        "refusing the issuer's keys: it offers token key {key_id} (valid now) that the \
         validator-signed directory does not list for it; an issuer showing a key to only some \
         users could recognise their tokens where they are spent (RFC 9576 §6)"
    )]
    UnlistedKey {
        /// The offered key's `token_key_id`, hex.
        key_id: String,
    },
    /// The wallet failed.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The refill path's egress did not open a flow to the issuer.
    #[error(
        "egress relay {egress} did not reach the issuer: {error}; refills go only through the relays, never directly to the issuer"
    )]
    IssuerNotReached {
        /// The refill path's egress.
        egress: String,
        /// Its answer.
        error: FlowError,
    },
    /// No QUIC endpoint could be run over the refill path's flow.
    #[error("cannot reach the issuer over the refill path: {0}")]
    IssuerTunnel(std::io::Error),
}

impl HasKind for AccountError {
    fn kind(&self) -> ErrorKind {
        match self {
            AccountError::NoSession
            | AccountError::KeyNotYetListed { .. }
            | AccountError::UnlistedKey { .. } => ErrorKind::NotAuthenticated,
            AccountError::Consistency(e) => e.kind(),
            AccountError::Issuer(e) => e.kind(),
            AccountError::NoKey => ErrorKind::PeerMisbehaved,
            AccountError::NoDirectory => ErrorKind::Unreachable,
            AccountError::Wallet(e) => e.kind(),
            AccountError::IssuerNotReached { error, .. } => HasKind::kind(error),
            AccountError::IssuerTunnel(_) => ErrorKind::Local,
        }
    }
}

/// A connection to the issuer, with the refill path it runs on (if any),
/// closed with it.
#[derive(Debug)]
pub struct IssuerLink {
    /// The connection.
    pub client: IssuerClient,
    tunnel: Option<(quinn::Endpoint, UdpFlowHold, Arc<Path>)>,
}

impl IssuerLink {
    /// Closes the connection and tears the refill path down.
    pub fn close(self) {
        let IssuerLink { client, tunnel } = self;
        drop(client);
        if let Some((endpoint, hold, path)) = tunnel {
            endpoint.close(quinn::VarInt::from_u32(0x100), b"refill done");
            drop(hold);
            path.close("refill done");
        }
    }
}

impl AccessTokens for Account {
    fn authorization(&self, ingress: &Relay) -> Result<String, MissingAccess> {
        self.access_authorization(ingress)
    }

    fn held_for(&self, ingress: &Relay) -> usize {
        self.access_challenge(ingress)
            .map_or(0, |challenge| self.wallet.counts(&[challenge]).iter().sum())
    }
}

/// An account with its issuer and wallet.
#[derive(Debug)]
pub struct Account {
    config: AccountConfig,
    wallet: Arc<Wallet>,
    /// Wakes the refill loop when a pool ran dry.
    ran_dry: tokio::sync::Notify,
    /// The directory the issuer's keys are checked against (RFC 9576 §6):
    /// a client's feed, a validator's follower; `None`: no check (a relay
    /// list in the config).
    directory: Option<Arc<dyn VerifiedDirectorySource>>,
    /// The listing last enforced on the wallet (its directory's digest).
    enforced: std::sync::Mutex<Option<openrelay_directory::DirectoryDigest>>,
}

impl Account {
    /// The account of `config`, with the wallet `wallet`.
    pub fn new(config: AccountConfig, wallet: Arc<Wallet>) -> Self {
        Account {
            config,
            wallet,
            ran_dry: tokio::sync::Notify::new(),
            directory: None,
            enforced: std::sync::Mutex::new(None),
        }
    }

    /// This account with the issuer's keys checked against `directory`'s
    /// verified directory (RFC 9576 §6), if there is one: a client's
    /// `DirectoryFeed`, or the follower of a server that holds tokens (a
    /// measuring validator's prober).
    pub fn checked_against(mut self, directory: Option<Arc<dyn VerifiedDirectorySource>>) -> Self {
        self.directory = directory;
        self
    }

    /// The keys `directory` lists for this account's issuer.
    fn listed_in(
        &self,
        directory: &openrelay_directory::VerifiedDirectory,
    ) -> Result<Vec<EpochKey>, KeyConsistencyError> {
        listed_keys(directory, &self.config.issuer.key, &self.config.issuer_name)
    }

    /// Drops the wallet's tokens under keys the feed's directory does not
    /// list for the issuer, once per directory (nothing without one).
    pub fn enforce_listing(&self) {
        let Some(directory) = self.directory.as_ref().and_then(|f| f.verified()) else {
            return;
        };
        let digest = directory.digest();
        {
            let mut enforced = self
                .enforced
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if *enforced == Some(digest) {
                return;
            }
            *enforced = Some(digest);
        }
        let listed = self.listed_in(&directory).unwrap_or_default();
        self.keep_listed(&listed);
    }

    fn keep_listed(&self, listed: &[EpochKey]) {
        let ids: Vec<[u8; 32]> = listed.iter().map(|k| k.key.id()).collect();
        match self.wallet.keep_only_keys(&ids) {
            Ok(0) => {}
            Ok(dropped) => warn!(
                dropped,
                "dropped tokens under issuer keys the validator-signed directory does not list (RFC 9576 §6)"
            ),
            Err(e) => warn!(error = %e, "wallet unusable"),
        }
    }

    /// The wallet.
    pub fn wallet(&self) -> &Arc<Wallet> {
        &self.wallet
    }

    /// The account's settings.
    pub fn config(&self) -> &AccountConfig {
        &self.config
    }

    /// Resolves when a pool ran dry (a tunnel or a payment found no token).
    pub async fn ran_dry(&self) {
        self.ran_dry.notified().await;
    }

    /// The challenge of access tokens for `ingress`: scoped to its
    /// operator's key; `None` if that key is not known.
    pub fn access_challenge(&self, ingress: &Relay) -> Option<TokenChallenge> {
        ingress
            .operator
            .id()
            .map(|operator| self.operator_challenge(operator))
    }

    fn operator_challenge(&self, operator: &OperatorId) -> TokenChallenge {
        TokenChallenge::for_ingress_operator(&self.config.issuer_name, &operator.to_string())
    }

    /// The challenge of payment tokens for `egress`.
    pub fn payment_challenge(&self, egress: &Relay) -> TokenChallenge {
        TokenChallenge::for_relay(&self.config.issuer_name, egress.pin().to_string())
    }

    /// The `Authorization` value for a new tunnel through `ingress`, taken
    /// from its operator's pool; why there is none otherwise (a relay that
    /// wants one answers 401).
    pub fn access_authorization(&self, ingress: &Relay) -> Result<String, MissingAccess> {
        let challenge = self
            .access_challenge(ingress)
            .ok_or(MissingAccess::UnknownOperator)?;
        match self.wallet.take(&challenge) {
            Ok(Some(token)) => Ok(build_authorization(&token)),
            Ok(None) => {
                self.ran_dry.notify_one();
                Err(MissingAccess::NoneLeft)
            }
            Err(e) => {
                warn!(error = %e, "wallet unusable");
                Err(MissingAccess::NoneLeft)
            }
        }
    }

    /// The ingresses of `relays` whose operator's pool holds a token.
    pub fn ingresses_with_access(&self, relays: &[Relay]) -> Vec<Relay> {
        let ingresses: Vec<(&Relay, TokenChallenge)> = relays
            .iter()
            .filter(|r| r.role == RelayRole::Ingress)
            .filter_map(|r| Some((r, self.access_challenge(r)?)))
            .collect();
        let challenges: Vec<TokenChallenge> = ingresses.iter().map(|(_, c)| c.clone()).collect();
        ingresses
            .iter()
            .zip(self.wallet.counts(&challenges))
            .filter(|(_, count)| *count > 0)
            .map(|((r, _), _)| (*r).clone())
            .collect()
    }

    /// Connects to the issuer **directly, from this host's address**: only
    /// for the explicit `openrelay account register|login` commands (a new
    /// account has no token for a path yet), as `docs/payments.md` tells
    /// users. Refills never call this.
    pub async fn connect_issuer_directly(&self) -> Result<IssuerLink, AccountError> {
        let issuer = &self.config.issuer;
        Ok(IssuerLink {
            client: IssuerClient::connect(issuer.addr, issuer.key).await?,
            tunnel: None,
        })
    }

    /// Connects to the issuer through `path` (a refill path): the issuer
    /// sees the path's egress, never this host.
    pub async fn connect_issuer_through(&self, path: Path) -> Result<IssuerLink, AccountError> {
        let path = Arc::new(path);
        let issuer = &self.config.issuer;
        let (endpoint, hold) = match crate::flow::tunnel_endpoint_on(&path, issuer.addr).await {
            Ok(tunnel) => tunnel,
            Err(e) => {
                path.close("refill failed");
                return Err(match e {
                    TunnelError::Flow(error) => AccountError::IssuerNotReached {
                        egress: path.egress.name.clone(),
                        error,
                    },
                    TunnelError::Endpoint(e) => AccountError::IssuerTunnel(e),
                });
            }
        };
        match IssuerClient::connect_via(&endpoint, TUNNELLED_MTU, issuer.addr, issuer.key).await {
            Ok(client) => Ok(IssuerLink {
                client,
                tunnel: Some((endpoint, hold, path)),
            }),
            Err(e) => {
                path.close("refill failed");
                Err(e.into())
            }
        }
    }

    /// The key to request tokens under now, and until when its tokens are
    /// accepted: without a directory, the one the issuer says signs now;
    /// with one, the one the directory lists as signing now, after checking
    /// that every key the issuer offers valid now is listed
    /// ([`Account::consistent_key`]).
    async fn signing_key(&self, client: &IssuerClient) -> Result<EpochKey, AccountError> {
        let now = unix_now();
        let offered = client
            .directory()
            .await?
            .epoch_keys()
            .map_err(|_| AccountError::NoKey)?;
        if let Some(feed) = &self.directory {
            return self
                .consistent_key(feed.as_ref(), client, &offered, now)
                .await;
        }
        offered
            .into_iter()
            .filter(|k| k.not_before <= now && now < k.issue_until())
            .max_by_key(|k| k.not_before)
            .ok_or(AccountError::NoKey)
    }

    /// RFC 9576 §6 key consistency: the key the directory lists for the
    /// issuer as signing at `now`, provided every key `offered` (by the
    /// issuer) that is valid at `now` is listed. The feed's directory is
    /// asked first; if it does not settle the question (no directory, or
    /// the issuer offers keys it does not list), the copy the issuer hands
    /// over is verified and asked (it may be newer, e.g. after a rotation).
    /// Keys offered for later are not used now and not checked; a key
    /// signing now that is not listed refuses the issuer. The wallet keeps
    /// only tokens under listed keys.
    async fn consistent_key(
        &self,
        feed: &dyn VerifiedDirectorySource,
        client: &IssuerClient,
        offered: &[EpochKey],
        now: u64,
    ) -> Result<EpochKey, AccountError> {
        let hex = |key: &EpochKey| -> String {
            key.key.id().iter().map(|b| format!("{b:02x}")).collect()
        };
        // What `directory` lists for the issuer, and whether the issuer's
        // offer is consistent with it.
        let judge = |directory: &openrelay_directory::VerifiedDirectory| {
            let listed = match self.listed_in(directory) {
                Ok(listed) => listed,
                Err(KeyConsistencyError::NotListed(_)) => Vec::new(),
                Err(e) => return (Vec::new(), Err(AccountError::Consistency(e))),
            };
            let current = listed
                .iter()
                .find(|k| k.not_before <= now && now < k.issue_until())
                .cloned();
            let unlisted = offered
                .iter()
                .find(|k| k.accepts_at(now, 0) && !lists(&listed, k));
            let verdict = match (current, unlisted) {
                (Some(current), None) => Ok(current),
                // The directory has a key signing now and the issuer
                // offers another: no fresher directory changes that.
                (Some(_), Some(key)) => Err(AccountError::UnlistedKey { key_id: hex(key) }),
                // Nothing signs now by the directory: a key not listed yet,
                // or one shown to this user only; either way, no token.
                (None, unlisted) => Err(AccountError::KeyNotYetListed {
                    offered: unlisted.map(hex),
                }),
            };
            (listed, verdict)
        };
        let mut judged = feed.verified().map(|directory| judge(&directory));
        if !matches!(judged, Some((_, Ok(_))))
            && let Some(copy) = self.issuer_copy(feed, client).await
        {
            judged = Some(judge(&copy));
        }
        let Some((listed, verdict)) = judged else {
            return Err(AccountError::NoDirectory);
        };
        // Whatever the verdict, only tokens under listed keys are kept.
        self.keep_listed(&listed);
        verdict
    }

    /// The issuer's copy of the validator-signed directory, verified by the
    /// feed (and kept, if newer); `None` if it has none or it does not
    /// verify.
    async fn issuer_copy(
        &self,
        feed: &dyn VerifiedDirectorySource,
        client: &IssuerClient,
    ) -> Option<Arc<openrelay_directory::VerifiedDirectory>> {
        let bytes = match client.signed_directory().await {
            Ok(bytes) => bytes,
            Err(e) => {
                debug!(error = %e, "the issuer hands over no directory");
                return None;
            }
        };
        match feed.accept_copy(&bytes) {
            Ok(directory) => Some(directory),
            Err(e) => {
                // An older copy than the feed's is no news.
                debug!(error = %e, "the issuer's copy of the directory not taken");
                feed.verified()
            }
        }
    }

    /// Adds tokens to the wallet, `count` for each of `wanted`'s
    /// challenges, with the login session `session`; each challenge's tokens
    /// are kept as soon as they arrive.
    pub async fn fetch(
        &self,
        client: &IssuerClient,
        session: &Session,
        wanted: &[(TokenChallenge, usize)],
    ) -> Result<usize, AccountError> {
        let key = self.signing_key(client).await?;
        let mut added = 0;
        for (challenge, count) in wanted {
            let tokens = client
                .fetch_tokens(session, &key.key, challenge, *count)
                .await?;
            self.wallet.add(challenge, &tokens, key.expires)?;
            added += tokens.len();
        }
        Ok(added)
    }

    /// A full batch for each of `challenges` (a login's first fill).
    pub fn batches(&self, challenges: Vec<TokenChallenge>) -> Vec<(TokenChallenge, usize)> {
        challenges
            .into_iter()
            .map(|c| (c, self.config.batch))
            .collect()
    }

    /// Every pool the client keeps for `relays`: access for each ingress
    /// operator, payment for each egress; those of `first` (the relays of
    /// the paths up) first.
    pub fn pools(&self, relays: &[Relay], first: &[Relay]) -> Vec<TokenChallenge> {
        let mut pools: Vec<TokenChallenge> = Vec::new();
        // Seen pools by hash, not by a search of `pools`: at 100,000 relays
        // there are 60,000 pools, and a search per relay was billions of
        // comparisons every stock check.
        let mut seen: HashSet<TokenChallenge> = HashSet::new();
        for relay in first.iter().chain(relays) {
            let pool = match relay.role {
                RelayRole::Ingress => self.access_challenge(relay),
                RelayRole::Egress => Some(self.payment_challenge(relay)),
            };
            if let Some(pool) = pool
                && seen.insert(pool.clone())
            {
                pools.push(pool);
            }
        }
        pools
    }

    /// Pays `egress` on its inner connection as it goes, until the
    /// connection ends or the egress takes no payments.
    pub async fn pay(self: Arc<Self>, requests: InnerRequests, egress: Relay) {
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
                let mut stream = requests.send_request(request).await?;
                // The egress may stop reading once it answered (RFC 9114
                // §4.1.1): what counts is its response.
                let _ = stream.finish().await;
                let response = stream.recv_response().await?;
                Ok::<_, h3::error::StreamError>(response)
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
