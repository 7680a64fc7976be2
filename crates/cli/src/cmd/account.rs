//! `openrelay account register|login|status`: the client's account at its
//! token issuer. Registration and login are OPAQUE (RFC 9807): the password
//! never leaves this process, and the issuer stores nothing it could test a
//! guess against offline. A login keeps the issuer's session in the wallet
//! (sealed, in the client's state directory) and fetches a first batch of
//! tokens; a running client tops up from then on.
//!
//! Which address the issuer sees (docs/payments.md): `register` connects
//! directly (a new account has no token to build a path with), and so does
//! a login whose wallet holds no access token for any known ingress, or one
//! asked to with `--direct`. Otherwise a login goes through the relays, on a
//! path of its own apart from a running client's path, and never falls back
//! to a direct connection when that path fails.
//!
//! With `[directory]`, tokens are fetched only under the key the
//! validator-signed directory lists for the issuer (RFC 9576 §6): the
//! client's cached directory, or a copy the issuer hands over (verified as
//! any). A login waits up to 40 s for a key not listed yet (a new
//! issuer's first key); an issuer offering a key the directory does not
//! list while it lists another is refused at once.
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use openrelay_client::PathManager;
use openrelay_client::account::{Account, AccountError, IssuerLink, REFILL_MAX_TOKENS};
use openrelay_client::directory::{DirectoryFeed, RelayList};
use openrelay_client::wallet::Wallet;
use openrelay_config::{ClientConfig, RelayEntry};
use openrelay_issuer_client::Session;

/// How long a login waits for the validator-signed directory to list the
/// issuer's token key (a new issuer's first key, a rotation in progress),
/// asking again every [`LISTING_RETRY`].
const LISTING_WAIT: std::time::Duration = std::time::Duration::from_secs(40);
const LISTING_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// What to do with the account.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AccountAction {
    /// Create the account, then log in; both directly (the issuer sees this
    /// host's address: a new account has no token for a path).
    Register,
    /// Log in: keep a session in the wallet and fetch tokens. Through the
    /// relays while the wallet holds an access token, else directly.
    Login {
        /// Connect directly even if the wallet could pay for a path (the
        /// issuer then sees this host's address).
        #[arg(long)]
        direct: bool,
    },
    /// Show the wallet's balance.
    Status,
}

/// `openrelay account ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct AccountArgs {
    #[command(subcommand)]
    action: AccountAction,
    /// The client's config file (its `[account]` section names the issuer).
    #[arg(long, global = true)]
    config: Option<std::path::PathBuf>,
    /// The account name (no email needed).
    #[arg(long, global = true)]
    username: Option<String>,
    /// Read the password from the first line of standard input instead of
    /// asking on the terminal.
    #[arg(long, global = true)]
    password_stdin: bool,
}

fn password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password("password: ").context("cannot read the password")?
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    Ok(password)
}

/// The client's account, its keys checked against `feed`'s directory.
fn account_of(config: &ClientConfig, feed: Option<Arc<DirectoryFeed>>) -> anyhow::Result<Account> {
    let settings = config
        .account
        .clone()
        .context("the client config has no [account] section naming the issuer")?;
    let wallet = Wallet::open(&config.state_dir)?;
    Ok(Account::new(settings, Arc::new(wallet)).checked_against(feed))
}

/// The client's directory feed (with `[directory]`) and the relay list of
/// its cache, if that still verifies.
fn directory_of(
    config: &ClientConfig,
) -> anyhow::Result<(Option<Arc<DirectoryFeed>>, Option<RelayList>)> {
    let Some(directory) = &config.directory else {
        return Ok((None, None));
    };
    let feed = Arc::new(DirectoryFeed::new(directory, &config.state_dir)?);
    let cached = feed.load_cache();
    Ok((Some(feed), cached))
}

/// Runs `openrelay account ...` and prints its outcome.
pub(crate) fn run(args: AccountArgs) -> anyhow::Result<()> {
    let message = crate::process::runtime(Some(1))?.block_on(act(args))?;
    println!("{message}");
    Ok(())
}

/// What `openrelay account ...` did, to print.
async fn act(args: AccountArgs) -> anyhow::Result<String> {
    let config_path = args
        .config
        .as_deref()
        .context("--config FILE is required (the client's config)")?;
    let config = ClientConfig::load(Path::new(config_path))?;
    let (feed, cached) = directory_of(&config)?;
    let account = account_of(&config, feed)?;
    let route = match args.action {
        AccountAction::Status => {
            let session = account
                .wallet()
                .session(openrelay_types::unix_now())
                .is_some();
            return Ok(format!(
                "tokens: {} in the wallet; issuer session: {}",
                account.wallet().balance(),
                if session {
                    "valid"
                } else {
                    "none (run `openrelay account login`)"
                }
            ));
        }
        AccountAction::Register => Route::Register,
        AccountAction::Login { direct: true } => Route::Direct,
        AccountAction::Login { direct: false } => Route::RelaysIfPaid,
    };
    let username = args.username.context("--username NAME is required")?;
    let password = password(args.password_stdin)?;
    let relays = cached.map_or_else(|| config.relays.clone(), |list| list.relays);
    let (added, how) = log_in(&config, &relays, &account, &username, &password, route).await?;
    Ok(format!(
        "logged in as {username} {how}; {added} tokens fetched, {} in the wallet",
        account.wallet().balance()
    ))
}

/// How a login reaches the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Register, then log in, directly.
    Register,
    /// Directly, as asked.
    Direct,
    /// Through the relays if the wallet holds an access token, else
    /// directly.
    RelaysIfPaid,
}

/// A connection to the issuer through a path of its own (as a refill's),
/// apart from a running client's path; `None` if the wallet holds no
/// access token for any known ingress.
async fn through_relays(
    config: &ClientConfig,
    relays: &[RelayEntry],
    account: &Account,
) -> anyhow::Result<Option<(IssuerLink, String)>> {
    if account.ingresses_with_access(relays).is_empty() {
        return Ok(None);
    }
    // A client running on this state directory: keep off its path.
    let running = openrelay_client::control::query(&config.state_dir)
        .await
        .ok();
    let find = |status: Option<&openrelay_client::control::RelayStatus>| {
        status.and_then(|s| relays.iter().find(|r| r.addr == s.address).cloned())
    };
    let elsewhere: Vec<(RelayEntry, RelayEntry)> = running
        .as_ref()
        .and_then(|s| Some((find(s.ingress.as_ref())?, find(s.egress.as_ref())?)))
        .into_iter()
        .collect();
    let path = refill_path(config, relays, account, &elsewhere)
        .await
        .context("no path to the issuer through the relays (`--direct` connects directly, showing the issuer this host's address)")?;
    let how = format!(
        "through the relays (ingress {}, egress {}: the issuer saw the egress's address)",
        path.ingress.name, path.egress.name
    );
    let link = account
        .connect_issuer_through(path)
        .await
        .context("the issuer was not reached through the relays (`--direct` connects directly, showing the issuer this host's address)")?;
    Ok(Some((link, how)))
}

/// Tries to build a refill path a few times over about 15 s: relays that
/// just started may still be waiting for the issuer's keys (503) or be
/// unreachable for a moment. Each try starts afresh (a fresh manager, so an
/// ingress that refused once is not quarantined for the next try); only
/// a failed build is retried, never a missing token or relay.
async fn refill_path(
    config: &ClientConfig,
    relays: &[RelayEntry],
    account: &Account,
    elsewhere: &[(RelayEntry, RelayEntry)],
) -> Result<openrelay_client::path::Path, openrelay_client::manager::RefillPathError> {
    use openrelay_client::manager::RefillPathError;
    const TRIES: u32 = 5;
    let mut wait = std::time::Duration::from_millis(500);
    let mut tries = 1;
    loop {
        let manager = PathManager::new(config, None);
        manager.set_relays(relays.to_vec(), None);
        match manager.build_refill_path(account, elsewhere).await {
            Err(RefillPathError::Build(e)) if tries < TRIES => {
                eprintln!("the path to the issuer failed ({e}); trying again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait *= 2;
                tries += 1;
            }
            result => return result,
        }
    }
}

/// Registers (with [`Route::Register`]) and logs in `username`: keeps the
/// session in the wallet and fetches tokens for the pools the client will
/// need first (of `relays`, the ones it knows); returns how many, and how
/// the issuer was reached.
async fn log_in(
    config: &ClientConfig,
    relays: &[RelayEntry],
    account: &Account,
    username: &str,
    password: &str,
    route: Route,
) -> anyhow::Result<(usize, String)> {
    const DIRECT: &str = "directly (the issuer saw this host's address)";
    let through = match route {
        Route::Register | Route::Direct => None,
        Route::RelaysIfPaid => through_relays(config, relays, account).await?,
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
    let issuer_name = &config
        .account
        .as_ref()
        .context("the client config has no [account] section naming the issuer")?
        .issuer_name;
    if route == Route::Register {
        eprintln!("registering: solving the issuer's registration puzzle takes a moment");
        link.client
            .register(issuer_name, username, password)
            .await
            .with_context(|| format!("cannot register {username:?}"))?;
    }
    let session = link
        .client
        .login(issuer_name, username, password)
        .await
        .with_context(|| format!("cannot log in as {username:?}"))?;
    // The issuer ends the session when it wants; a refused refill then
    // clears it from the wallet.
    account
        .wallet()
        .set_session(session.bearer().to_owned(), u64::MAX)?;
    // A batch for every pool the client keeps (access per ingress operator,
    // payment per egress), so the first paths need no refill; through the
    // relays at most what a refill fetches (the path's egress is unpaid),
    // the running client fetches the rest.
    let mut wanted = account.batches(account.pools(relays, &[]));
    if tunnelled {
        let mut budget = REFILL_MAX_TOKENS;
        wanted.retain_mut(|(_, count)| {
            *count = (*count).min(budget);
            budget -= *count;
            *count > 0
        });
    }
    let added = fetch_when_listed(account, &link.client, &session, &wanted).await;
    link.close();
    Ok((added?, how))
}

/// [`Account::fetch`], waiting up to [`LISTING_WAIT`] while the directory
/// does not list the issuer's current key yet (a new issuer's first key
/// takes a few validator rounds to be listed); any other refusal at once.
async fn fetch_when_listed(
    account: &Account,
    client: &openrelay_issuer_client::IssuerClient,
    session: &Session,
    wanted: &[(openrelay_tokens::TokenChallenge, usize)],
) -> Result<usize, AccountError> {
    let deadline = tokio::time::Instant::now() + LISTING_WAIT;
    let mut told = false;
    loop {
        match account.fetch(client, session, wanted).await {
            Err(e @ (AccountError::KeyNotYetListed { .. } | AccountError::NoDirectory))
                if tokio::time::Instant::now() < deadline =>
            {
                if !told {
                    #[allow(clippy::print_stderr)]
                    {
                        eprintln!(
                            "waiting for the validator-signed directory to list the issuer's token key: {e}"
                        );
                    }
                    told = true;
                }
                tokio::time::sleep(LISTING_RETRY).await;
            }
            done => return done,
        }
    }
}

/// The devnet's account for its client: created on the first run with a
/// random password kept (mode 0600) in the client's state directory, logged
/// in on every run, so the client starts with tokens.
pub(crate) async fn devnet_login(config: &ClientConfig) -> anyhow::Result<()> {
    if config.account.is_none() {
        return Ok(());
    }
    let (feed, cached) = directory_of(config)?;
    let account = account_of(config, feed)?;
    let relays = cached.map_or_else(|| config.relays.clone(), |list| list.relays);
    let secret = config.state_dir.join("devnet-account.secret");
    let (password, register) = match std::fs::read_to_string(&secret) {
        Ok(password) => (password, false),
        Err(_) => {
            let password = openrelay_tokens::b64::encode(&rand_bytes()?);
            openrelay_transport::identity::write_secret_file(&secret, password.as_bytes())
                .with_context(|| format!("cannot write {}", secret.display()))?;
            (password, true)
        }
    };
    // Directly: the devnet is one machine, and its client is not up yet.
    let route = if register {
        Route::Register
    } else {
        Route::Direct
    };
    log_in(
        config,
        &relays,
        &account,
        openrelay_devnet::DEVNET_ACCOUNT,
        &password,
        route,
    )
    .await?;
    Ok(())
}

fn rand_bytes() -> anyhow::Result<[u8; 24]> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(bytes)
}
