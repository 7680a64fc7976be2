//! `openrelay account register|login|status`: the client's account at its
//! token issuer. Registration and login are OPAQUE (RFC 9807): the password
//! never leaves this process, and the issuer stores nothing it could test a
//! guess against offline. A login keeps the issuer's session in the wallet
//! (sealed, in the client's state directory) and fetches a first batch of
//! access tokens; a running client tops up from then on.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use openrelay_client::account::Account;
use openrelay_client::wallet::Wallet;
use openrelay_config::ClientConfig;

/// What to do with the account.
#[derive(Debug, clap::Subcommand)]
pub enum AccountAction {
    /// Create the account (then log in).
    Register,
    /// Log in: keep a session in the wallet and fetch tokens.
    Login,
    /// Show the wallet's balance.
    Status,
}

/// `openrelay account ...`.
#[derive(Debug, clap::Args)]
pub struct AccountArgs {
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

fn account_of(config: &ClientConfig) -> anyhow::Result<Account> {
    let settings = config
        .account
        .clone()
        .context("the client config has no [account] section naming the issuer")?;
    let wallet = Wallet::open(&config.state_dir)?;
    Ok(Account::new(settings, Arc::new(wallet)))
}

/// Runs `openrelay account ...`; returns what to print.
pub async fn run(args: AccountArgs) -> anyhow::Result<String> {
    let config_path = args
        .config
        .as_deref()
        .context("--config FILE is required (the client's config)")?;
    let config = ClientConfig::load(Path::new(config_path))?;
    let account = account_of(&config)?;
    if let AccountAction::Status = args.action {
        let session = account
            .wallet()
            .session(openrelay_client::directory::unix_now())
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
    let username = args.username.context("--username NAME is required")?;
    let password = password(args.password_stdin)?;
    let register = matches!(args.action, AccountAction::Register);
    let added = log_in(&config, &account, &username, &password, register).await?;
    Ok(format!(
        "logged in as {username}; {added} tokens fetched, {} in the wallet",
        account.wallet().balance()
    ))
}

/// Registers (if `register`) and logs in `username`: keeps the session in
/// the wallet and fetches a batch of tokens of each kind the client will
/// need first; returns how many.
async fn log_in(
    config: &ClientConfig,
    account: &Account,
    username: &str,
    password: &str,
    register: bool,
) -> anyhow::Result<usize> {
    let link = account.issuer(None).await?;
    let issuer_name = &config
        .account
        .as_ref()
        .context("the client config has no [account] section naming the issuer")?
        .issuer_name;
    if register {
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
    // Access tokens, and payment tokens for the egresses the config lists
    // (the same relays as in the directory, by key), so the first paths
    // need no refill.
    let mut challenges = vec![account.access_challenge()];
    challenges.extend(
        config
            .relays
            .iter()
            .filter(|r| r.role == openrelay_config::RelayRole::Egress)
            .map(|egress| account.payment_challenge(egress)),
    );
    let batch = config.account.as_ref().map_or(8, |a| a.batch);
    Ok(account
        .fetch(&link.client, &session, &challenges, batch)
        .await?)
}

/// The devnet's account for its client: created on the first run with a
/// random password kept (mode 0600) in the client's state directory, logged
/// in on every run, so the client starts with tokens.
pub async fn devnet_login(config: &ClientConfig) -> anyhow::Result<()> {
    if config.account.is_none() {
        return Ok(());
    }
    let account = account_of(config)?;
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
    log_in(
        config,
        &account,
        openrelay_devnet::DEVNET_ACCOUNT,
        &password,
        register,
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
