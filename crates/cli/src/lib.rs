//! The `openrelay` command: one binary, a subcommand per role.
//!
//! This is the binary edge: it prints to the terminal, turns errors into
//! messages with `anyhow`, and owns process concerns (signals, exit codes).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use openrelay_config::{ClientConfig, RelayConfig, RelayRole};
use openrelay_log::{LogOptions, Role};
use openrelay_transport::identity::Identity;
use tracing::warn;

/// openrelay: your traffic crosses two relays of different operators, so no
/// single server can link you to what you do.
#[derive(Debug, Parser)]
#[command(name = "openrelay", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an ingress or egress relay.
    Relay {
        /// The relay's config file (see examples/ingress.toml, examples/egress.toml).
        #[arg(long)]
        config: PathBuf,
        /// Exit when standard input closes (used by `devnet` for its children).
        #[arg(long, hide = true)]
        exit_with_stdin: bool,
    },
    /// Run the client: local SOCKS5 and HTTP proxies through two relays.
    Client {
        /// The client's config file (see examples/client.toml).
        #[arg(long)]
        config: PathBuf,
        /// Exit when standard input closes (used by `devnet` for its children).
        #[arg(long, hide = true)]
        exit_with_stdin: bool,
    },
    /// Run a complete local network: relays of several operators and a client.
    Devnet(DevnetArgs),
    /// Print a relay's public key (what clients pin), creating it if needed.
    Key {
        /// The relay's state directory.
        #[arg(long)]
        state_dir: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct DevnetArgs {
    /// Number of operators, each running one ingress and one egress relay.
    #[arg(long, default_value_t = 2)]
    operators: usize,
    /// The client's SOCKS5 listen address.
    #[arg(long, default_value = "127.0.0.1:1080")]
    socks: SocketAddr,
    /// The client's HTTP proxy listen address.
    #[arg(long, default_value = "127.0.0.1:8118")]
    http: SocketAddr,
    /// Keys and state (default: a fresh temporary directory, removed on exit).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Each component logs to its own file here (client.log, ingress-<i>.log, egress-<i>.log).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Log filter for every component (e.g. info, debug, trace).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Write one config file per component into DIR and exit.
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
}

/// Runs the command line; the binary's `main` calls only this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openrelay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A runtime with `worker_threads` threads; one means a single-threaded
/// runtime (no cross-thread wake-ups per packet), `None` one per core.
fn runtime(worker_threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Relay {
            config,
            exit_with_stdin,
        } => {
            let config = RelayConfig::load(&config)?;
            runtime(config.worker_threads)?.block_on(run_relay(config, exit_with_stdin))
        }
        Command::Client {
            config,
            exit_with_stdin,
        } => {
            let config = ClientConfig::load(&config)?;
            runtime(Some(config.worker_threads))?.block_on(run_client(config, exit_with_stdin))
        }
        Command::Devnet(args) => runtime(Some(1))?.block_on(run_devnet(args)),
        Command::Key { state_dir } => {
            let identity = Identity::load_or_create(&state_dir)?;
            println!("{}", identity.pin());
            Ok(())
        }
    }
}

/// Resolves on SIGINT, SIGTERM or (if asked) the end of standard input.
async fn shutdown_signal(exit_with_stdin: bool) {
    use tokio::io::AsyncReadExt;
    use tokio::signal::unix::{SignalKind, signal};
    let stdin_closed = async {
        if !exit_with_stdin {
            return std::future::pending().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return stdin_closed.await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        () = stdin_closed => {}
    }
}

fn ready(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

async fn run_relay(config: RelayConfig, exit_with_stdin: bool) -> anyhow::Result<()> {
    openrelay_log::init(&LogOptions {
        role: Role::Relay,
        filter: config.log.level.clone(),
        file: config.log.file.clone(),
    })?;
    let identity = Identity::load_or_create(&config.state_dir)?;
    let shutdown = shutdown_signal(exit_with_stdin);
    match config.role {
        RelayRole::Ingress => {
            let settings = openrelay_ingress::IngressSettings::from_config(&config)?;
            let ingress = openrelay_ingress::Ingress::bind(settings, &identity)?;
            let listen = ingress.local_addr()?;
            ready(&format!(
                "ready role=ingress listen={listen} key={}",
                identity.pin()
            ));
            ingress.serve(shutdown).await;
        }
        RelayRole::Egress => {
            let settings = openrelay_egress::EgressSettings::from_config(&config)?;
            let egress = openrelay_egress::Egress::bind(settings, &identity)?;
            let listen = egress.local_addr()?;
            ready(&format!(
                "ready role=egress listen={listen} key={}",
                identity.pin()
            ));
            egress.serve(shutdown).await;
        }
    }
    Ok(())
}

async fn run_client(config: ClientConfig, exit_with_stdin: bool) -> anyhow::Result<()> {
    openrelay_log::init(&LogOptions {
        role: Role::Client,
        filter: config.log.level.clone(),
        file: config.log.file.clone(),
    })?;
    let client = openrelay_client::Client::bind(&config).await?;
    let (socks, http) = (client.socks_addr()?, client.http_addr()?);
    let manager = std::sync::Arc::clone(client.manager());
    // Announce readiness once a path works; until then keep trying, so a
    // client started before its relays comes up by itself.
    tokio::spawn(async move {
        loop {
            match manager.current().await {
                Ok(_) => {
                    ready(&format!("ready socks={socks} http={http}"));
                    return;
                }
                Err(openrelay_client::PathError::Closed) => return,
                Err(e) => {
                    warn!(error = %e, "no path yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    client.serve(shutdown_signal(exit_with_stdin)).await;
    Ok(())
}

async fn run_devnet(args: DevnetArgs) -> anyhow::Result<()> {
    openrelay_log::init(&LogOptions {
        role: Role::Tool,
        filter: "warn".into(),
        file: None,
    })?;
    let temporary;
    let state_dir = match &args.state_dir {
        Some(dir) => dir.clone(),
        None => {
            temporary = tempfile::Builder::new()
                .prefix("openrelay-devnet-")
                .tempdir()
                .context("cannot create a temporary state directory")?;
            temporary.path().to_owned()
        }
    };
    if let Some(dir) = &args.log_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let log_dir = match &args.log_dir {
        Some(dir) => Some(std::path::absolute(dir)?),
        None => None,
    };
    let options = openrelay_devnet::DevnetOptions {
        operators: args.operators,
        socks: args.socks,
        http: args.http,
        state_dir: std::path::absolute(&state_dir)?,
        log_dir,
        log_level: args.log_level.clone(),
    };
    let plan = openrelay_devnet::plan(&options)?;
    if let Some(dir) = &args.export {
        for (_, path) in openrelay_devnet::export(&plan, dir)? {
            println!("wrote {}", path.display());
        }
        return Ok(());
    }
    let files = openrelay_devnet::export(&plan, &options.state_dir.join("configs"))?;
    let component = |(name, config): &(String, PathBuf)| openrelay_devnet::Component {
        name: name.clone(),
        subcommand: if name == "client" { "client" } else { "relay" },
        config: config.clone(),
    };
    let (client, relays) = files.split_last().context("devnet plan is empty")?;
    let relays: Vec<_> = relays.iter().map(component).collect();
    let client = component(client);
    let exe = std::env::current_exe().context("cannot find the openrelay executable")?;
    let pids_file = options.state_dir.join("devnet.pids");
    openrelay_devnet::run(
        &exe,
        &relays,
        &client,
        |line, pids| {
            let list: String = pids
                .iter()
                .map(|(name, pid)| format!("{name} {pid}\n"))
                .collect();
            if let Err(e) = std::fs::write(&pids_file, list) {
                warn!(error = %e, "cannot write the pid list");
            }
            ready(line);
        },
        shutdown_signal(false),
    )
    .await?;
    Ok(())
}
