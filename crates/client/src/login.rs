//! Logging in to the client's token issuer (`openrelay account
//! register|login`, and the devnet's own account). Registration and login
//! are OPAQUE (RFC 9807): the password never leaves this process, and the
//! issuer stores nothing it could test a guess against offline. A login
//! keeps the issuer's session in the wallet (sealed, in the client's state
//! directory) and fetches a first batch of tokens; a running client tops up
//! from then on.
//!
//! Which address the issuer sees (docs/payments.md): [`Route::Register`]
//! connects directly (a new account has no token to build a path with), and
//! so does a login whose wallet holds no access token for any known
//! ingress, or one asked to ([`Route::Direct`]). Otherwise
//! ([`Route::RelaysIfPaid`]) a login goes through the relays, on a path of
//! its own apart from a running client's path, and never falls back to a
//! direct connection when that path fails.
//!
//! With `[directory]`, tokens are fetched only under the key the
//! validator-signed directory lists for the issuer (RFC 9576 §6): the
//! client's cached directory, or a copy the issuer hands over (verified as
//! any). A login waits up to [`LISTING_WAIT`] for a key not listed yet (a
//! new issuer's first key); an issuer offering a key the directory does not
//! list while it lists another is refused at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use openrelay_config::ClientConfig;
use openrelay_issuer_client::client::{IssuerClient, IssuerClientError, Session};
use openrelay_tokens::TokenChallenge;
use openrelay_types::error::{ErrorKind, HasKind};
use openrelay_types::unix_now;

use crate::account::{Account, AccountError, IssuerLink, REFILL_MAX_TOKENS};
use crate::directory::{DirectoryConfigError, DirectoryFeed, VerifiedDirectorySource};
use crate::manager::{PathManager, RefillPathError};
use crate::relay::{Relay, RelayConfigError};
use crate::wallet::{Wallet, WalletError};

/// How long a login waits for the validator-signed directory to list the
/// issuer's token key (a new issuer's first key, a rotation in progress),
/// asking again every `LISTING_RETRY`.
pub const LISTING_WAIT: Duration = Duration::from_secs(40);
const LISTING_RETRY: Duration = Duration::from_secs(2);

/// Tries of a refill path for a login, doubling the wait from
/// [`FIRST_RETRY`] (about 15 s in all).
const PATH_TRIES: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// The secret file of the devnet's account password, in the client's
/// state directory.
pub const DEVNET_SECRET_FILE: &str = "devnet-account.secret";

/// How a login reaches the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Register, then log in, directly.
    Register,
    /// Directly, as asked.
    Direct,
    /// Through the relays if the wallet holds an access token, else
    /// directly.
    RelaysIfPaid,
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The client config names no issuer.
    #[error("the client config has no [account] section naming the issuer")]
    NoAccount,
    /// The wallet cannot be opened or written.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The `[directory]` settings are unusable.
    #[error(transparent)]
    Directory(#[from] DirectoryConfigError),
    /// The `[[relay]]` entries are unusable.
    #[error(transparent)]
    Relays(#[from] RelayConfigError),
    /// No path to the issuer could be built through the relays.
    #[error(
        "no path to the issuer through the relays (`--direct` connects directly, showing the \
         issuer this host's address): {0}"
    )]
    NoPath(#[source] RefillPathError),
    /// The path was built, but the issuer was not reached over it.
    #[error(
        "the issuer was not reached through the relays (`--direct` connects directly, showing \
         the issuer this host's address): {0}"
    )]
    NotReachedThroughRelays(#[source] AccountError),
    /// Connecting to the issuer or fetching tokens failed.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The issuer refused the registration.
    #[error("cannot register {username:?}: {source}")]
    Register {
        /// The account name.
        username: String,
        /// Why.
        source: IssuerClientError,
    },
    /// The issuer refused the login.
    #[error("cannot log in as {username:?}: {source}")]
    LogIn {
        /// The account name.
        username: String,
        /// Why.
        source: IssuerClientError,
    },
    /// A self-created account's password could not be made or kept.
    #[error("cannot keep the account's password in {path}: {source}")]
    Secret {
        /// The secret file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl HasKind for LoginError {
    fn kind(&self) -> ErrorKind {
        match self {
            LoginError::NoAccount | LoginError::Directory(_) | LoginError::Relays(_) => {
                ErrorKind::Config
            }
            LoginError::Wallet(e) => e.kind(),
            LoginError::NoPath(e) => e.kind(),
            LoginError::NotReachedThroughRelays(e) | LoginError::Account(e) => e.kind(),
            LoginError::Register { source, .. } | LoginError::LogIn { source, .. } => source.kind(),
            LoginError::Secret { .. } => ErrorKind::Local,
        }
    }
}

/// A login's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    /// Tokens fetched.
    pub added: usize,
    /// How the issuer was reached, for the user.
    pub how: String,
}

/// The client's account (its `[account]`, its wallet) with the issuer's
/// keys checked against its directory, and the relays it knows: those of
/// its cached directory if that still verifies, else its `[[relay]]`
/// entries.
#[derive(Debug)]
pub struct AccountSetup {
    /// The account.
    pub account: Account,
    /// The relays known.
    pub relays: Vec<Relay>,
}

impl AccountSetup {
    /// Opens the account of `config`.
    pub fn open(config: &ClientConfig) -> Result<Self, LoginError> {
        let settings = config.account.clone().ok_or(LoginError::NoAccount)?;
        let (feed, cached) = match &config.directory {
            Some(directory) => {
                let feed = Arc::new(DirectoryFeed::new(directory, &config.state_dir)?);
                let cached = feed.load_cache();
                (Some(feed), cached)
            }
            None => (None, None),
        };
        let relays = match cached {
            Some(list) => list.relays,
            None => crate::relay::from_config(&config.relays)?,
        };
        let wallet = Wallet::open(&config.state_dir)?;
        Ok(AccountSetup {
            account: Account::new(settings, Arc::new(wallet))
                .checked_against(feed.map(|f| f as Arc<dyn VerifiedDirectorySource>)),
            relays,
        })
    }

    /// What `openrelay account status` says: the wallet's balance and
    /// whether it holds an issuer session.
    pub fn status(&self) -> String {
        let wallet = self.account.wallet();
        let session = wallet.session(unix_now()).is_some();
        format!(
            "tokens: {} in the wallet; issuer session: {}",
            wallet.balance(),
            if session {
                "valid"
            } else {
                "none (run `openrelay account login`)"
            }
        )
    }

    /// Registers (with [`Route::Register`]) and logs in `username`: keeps
    /// the session in the wallet and fetches tokens for the pools the
    /// client will need first (of the relays it knows). `progress` hears
    /// what the user waits for.
    pub async fn log_in(
        &self,
        config: &ClientConfig,
        username: &str,
        password: &str,
        route: Route,
        progress: &dyn Fn(&str),
    ) -> Result<LoggedIn, LoginError> {
        const DIRECT: &str = "directly (the issuer saw this host's address)";
        let account = &self.account;
        let through = match route {
            Route::Register | Route::Direct => None,
            Route::RelaysIfPaid => self.through_relays(config, progress).await?,
        };
        let tunnelled = through.is_some();
        let (link, how) = match through {
            Some(through) => through,
            None if route == Route::RelaysIfPaid => (
                account.connect_issuer_directly().await?,
                format!("{DIRECT}: the wallet holds no access token for a path"),
            ),
            None => (account.connect_issuer_directly().await?, DIRECT.to_owned()),
        };
        if route == Route::Register {
            progress("registering: solving the issuer's registration puzzle takes a moment");
        }
        let session = sign_in(
            account,
            &link.client,
            username,
            password,
            route == Route::Register,
        )
        .await?;
        // A batch for every pool the client keeps (access per ingress
        // operator, payment per egress), so the first paths need no refill;
        // through the relays at most what a refill fetches (the path's
        // egress is unpaid), the running client fetches the rest.
        let mut wanted = account.batches(account.pools(&self.relays, &[]));
        if tunnelled {
            let mut budget = REFILL_MAX_TOKENS;
            wanted.retain_mut(|(_, count)| {
                *count = (*count).min(budget);
                budget -= *count;
                *count > 0
            });
        }
        let added = fetch_when_listed(account, &link.client, &session, &wanted, progress).await;
        link.close();
        Ok(LoggedIn { added: added?, how })
    }

    /// A connection to the issuer through a path of its own (as a
    /// refill's), apart from a running client's path; `None` if the wallet
    /// holds no access token for any known ingress.
    async fn through_relays(
        &self,
        config: &ClientConfig,
        progress: &dyn Fn(&str),
    ) -> Result<Option<(IssuerLink, String)>, LoginError> {
        let relays = &self.relays;
        if self.account.ingresses_with_access(relays).is_empty() {
            return Ok(None);
        }
        // A client running on this state directory: keep off its path.
        let running = crate::control::query(&config.state_dir).await.ok();
        let find = |status: Option<&crate::control::RelayStatus>| {
            status.and_then(|s| relays.iter().find(|r| r.addr == s.address).cloned())
        };
        let elsewhere: Vec<(Relay, Relay)> = running
            .as_ref()
            .and_then(|s| Some((find(s.ingress.as_ref())?, find(s.egress.as_ref())?)))
            .into_iter()
            .collect();
        let path = self
            .refill_path(config, &elsewhere, progress)
            .await
            .map_err(LoginError::NoPath)?;
        let how = format!(
            "through the relays (ingress {}, egress {}: the issuer saw the egress's address)",
            path.ingress.name, path.egress.name
        );
        let link = self
            .account
            .connect_issuer_through(path)
            .await
            .map_err(LoginError::NotReachedThroughRelays)?;
        Ok(Some((link, how)))
    }

    /// Tries to build a refill path a few times over about 15 s: relays
    /// that just started may still be waiting for the issuer's keys (503)
    /// or be unreachable for a moment. Each try starts afresh (a fresh
    /// manager, so an ingress that refused once is not quarantined for the
    /// next try); only a failed build is retried, never a missing token or
    /// relay.
    async fn refill_path(
        &self,
        config: &ClientConfig,
        elsewhere: &[(Relay, Relay)],
        progress: &dyn Fn(&str),
    ) -> Result<crate::path::Path, RefillPathError> {
        let mut wait = FIRST_RETRY;
        let mut tries = 1;
        loop {
            let manager = PathManager::with_relays(config, self.relays.clone(), None);
            match manager.build_refill_path(&self.account, elsewhere).await {
                Err(RefillPathError::Build(e)) if tries < PATH_TRIES => {
                    progress(&format!(
                        "the path to the issuer failed ({e}); trying again in {wait:?}"
                    ));
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    tries += 1;
                }
                result => return result,
            }
        }
    }
}

/// [`Account::fetch`], waiting up to [`LISTING_WAIT`] while the directory
/// does not list the issuer's current key yet (a new issuer's first key
/// takes a few validator rounds to be listed); any other refusal at once.
async fn fetch_when_listed(
    account: &Account,
    client: &IssuerClient,
    session: &Session,
    wanted: &[(TokenChallenge, usize)],
    progress: &dyn Fn(&str),
) -> Result<usize, AccountError> {
    let deadline = tokio::time::Instant::now() + LISTING_WAIT;
    let mut told = false;
    loop {
        match account.fetch(client, session, wanted).await {
            Err(e @ (AccountError::KeyNotYetListed { .. } | AccountError::NoDirectory))
                if tokio::time::Instant::now() < deadline =>
            {
                if !told {
                    progress(&format!(
                        "waiting for the validator-signed directory to list the issuer's token key: {e}"
                    ));
                    told = true;
                }
                tokio::time::sleep(LISTING_RETRY).await;
            }
            done => return done,
        }
    }
}

/// The devnet's account `username` for its client: created on the first
/// run with a random password kept (mode 0600) in the client's state
/// directory ([`DEVNET_SECRET_FILE`]), logged in on every run, so the
/// client starts with tokens. Directly: the devnet is one machine, and its
/// client is not up yet. Nothing to do without `[account]`.
pub async fn devnet_login(
    config: &ClientConfig,
    username: &str,
    progress: &dyn Fn(&str),
) -> Result<(), LoginError> {
    if config.account.is_none() {
        return Ok(());
    }
    let setup = AccountSetup::open(config)?;
    let secret = AccountSecret::load_or_create(&config.state_dir.join(DEVNET_SECRET_FILE))?;
    let route = match secret.registered() {
        true => Route::Direct,
        false => Route::Register,
    };
    setup
        .log_in(config, username, secret.password(), route, progress)
        .await?;
    secret.mark_registered()
}

/// Registers `username` (when `register`) and logs it in at the issuer
/// `client` reaches, keeping the session in `account`'s wallet (the issuer
/// ends the session when it wants; a refused refill then clears it).
pub async fn sign_in(
    account: &Account,
    client: &IssuerClient,
    username: &str,
    password: &str,
    register: bool,
) -> Result<Session, LoginError> {
    let issuer_name = &account.config().issuer_name;
    if register {
        client
            .register(issuer_name, username, password)
            .await
            .map_err(|source| LoginError::Register {
                username: username.to_owned(),
                source,
            })?;
    }
    let session = client
        .login(issuer_name, username, password)
        .await
        .map_err(|source| LoginError::LogIn {
            username: username.to_owned(),
            source,
        })?;
    account
        .wallet()
        .set_session(session.bearer().to_owned(), u64::MAX)?;
    Ok(session)
}

/// The password of an account a program creates for itself (the devnet's
/// client, a measuring validator's prober): random, kept in a secret file
/// (mode 0600). Until the issuer confirmed the registration it is kept
/// under `<file>.pending`, so a registration that failed half-way (the
/// issuer down, the answer lost) is tried again with the same password
/// rather than leaving a file whose account does not exist.
#[derive(Debug)]
pub struct AccountSecret {
    path: PathBuf,
    password: String,
    registered: bool,
}

impl AccountSecret {
    /// The password in `path`, else the pending one, else a new pending
    /// one.
    pub fn load_or_create(path: &std::path::Path) -> Result<Self, LoginError> {
        let secret_error = |source| LoginError::Secret {
            path: path.to_owned(),
            source,
        };
        if let Ok(password) = std::fs::read_to_string(path) {
            return Ok(AccountSecret {
                path: path.to_owned(),
                password,
                registered: true,
            });
        }
        let pending = Self::pending_path(path);
        let password = match std::fs::read_to_string(&pending) {
            Ok(password) => password,
            Err(_) => {
                let password =
                    openrelay_tokens::b64::encode(&random_bytes().map_err(secret_error)?);
                openrelay_transport::identity::write_secret_file(&pending, password.as_bytes())
                    .map_err(secret_error)?;
                password
            }
        };
        Ok(AccountSecret {
            path: path.to_owned(),
            password,
            registered: false,
        })
    }

    fn pending_path(path: &std::path::Path) -> PathBuf {
        let mut pending = path.as_os_str().to_owned();
        pending.push(".pending");
        PathBuf::from(pending)
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Whether the issuer confirmed the account's registration.
    pub fn registered(&self) -> bool {
        self.registered
    }

    /// Keeps the password as the registered account's (after the issuer
    /// confirmed the registration).
    pub fn mark_registered(&self) -> Result<(), LoginError> {
        if self.registered {
            return Ok(());
        }
        std::fs::rename(Self::pending_path(&self.path), &self.path).map_err(|source| {
            LoginError::Secret {
                path: self.path.clone(),
                source,
            }
        })
    }
}

fn random_bytes() -> std::io::Result<[u8; 24]> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| std::io::Error::other("the system's randomness failed"))?;
    Ok(bytes)
}
