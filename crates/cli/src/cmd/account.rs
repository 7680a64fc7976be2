//! `openrelay account register|login|status`: the client's account at its
//! token issuer. What a login does, and which address the issuer sees, is
//! `openrelay_client::login`'s; this file reads the arguments and the
//! password, and prints the outcome.
use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use openrelay_client::login::{AccountSetup, Route};
use openrelay_config::ClientConfig;

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

/// What the user waits for, on standard error.
#[allow(clippy::print_stderr)]
pub(crate) fn progress(message: &str) {
    eprintln!("{message}");
}

/// Runs `openrelay account ...` and prints its outcome.
pub(crate) fn run(args: AccountArgs) -> anyhow::Result<()> {
    let config_path = args
        .config
        .as_deref()
        .context("--config FILE is required (the client's config)")?;
    let config = ClientConfig::load(Path::new(config_path))?;
    let message = crate::process::runtime(Some(1))?.block_on(act(args, &config))?;
    println!("{message}");
    Ok(())
}

/// What `openrelay account ...` did, to print.
async fn act(args: AccountArgs, config: &ClientConfig) -> anyhow::Result<String> {
    let setup = AccountSetup::open(config)?;
    let route = match args.action {
        AccountAction::Status => return Ok(setup.status()),
        AccountAction::Register => Route::Register,
        AccountAction::Login { direct: true } => Route::Direct,
        AccountAction::Login { direct: false } => Route::RelaysIfPaid,
    };
    let username = args.username.context("--username NAME is required")?;
    let password = password(args.password_stdin)?;
    let done = setup
        .log_in(config, &username, &password, route, &progress)
        .await?;
    Ok(format!(
        "logged in as {username} {}; {} tokens fetched, {} in the wallet",
        done.how,
        done.added,
        setup.account.wallet().balance()
    ))
}
