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
use openrelay_config::{ClientConfig, PathConfig, RelayConfig};
use openrelay_log::{LogOptions, Role};
use openrelay_transport::identity::Identity;
use openrelay_transport::task::AbortOnDrop;
use openrelay_types::RelayRole;
use tracing::{debug, warn};

mod account;
mod ledger;
mod tun;

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
        #[command(flatten)]
        path: PathArgs,
        /// Also run the full-device VPN (the config's `[tun]`), as `up` does.
        #[arg(long)]
        tun: bool,
        /// Exit when standard input closes (used by `devnet` for its children).
        #[arg(long, hide = true)]
        exit_with_stdin: bool,
    },
    /// Bring the full-device VPN up: start the client with `--tun` in the
    /// background and return once traffic flows (docs/tun.md).
    Up {
        /// The client's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Bring the full-device VPN down: stop its client and undo every system
    /// change it recorded (also after the client died).
    Down {
        /// The client's state directory.
        #[arg(long, conflicts_with = "config")]
        state_dir: Option<PathBuf>,
        /// The client's config file (its state directory is used).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// The client's account at its token issuer: register, log in (OPAQUE),
    /// wallet balance.
    Account(account::AccountArgs),
    /// Run a complete local network: relays of several operators and a client.
    Devnet(DevnetArgs),
    /// Print a relay's public key (what clients pin), or an operator's,
    /// creating it if needed.
    Key {
        /// The relay's state directory.
        #[arg(long, required_unless_present = "operator_key_file")]
        state_dir: Option<PathBuf>,
        /// Print the public key of this operator key file instead (a relay
        /// config's `operator_key`, the operator's id in the registry).
        #[arg(long, conflicts_with = "state_dir")]
        operator_key_file: Option<PathBuf>,
    },
    /// Run the relay registry: relays publish descriptors, validators sign
    /// directories, clients fetch them.
    Registry {
        /// The registry's config file (see examples/registry.toml).
        #[arg(long)]
        config: PathBuf,
        /// Exit when standard input closes (used by `devnet` for its children).
        #[arg(long, hide = true)]
        exit_with_stdin: bool,
    },
    /// Run the token issuer: OPAQUE accounts, Privacy Pass tokens (RFC 9578).
    Issuer {
        /// The issuer's config file (see examples/issuer.toml).
        #[arg(long)]
        config: PathBuf,
        /// Exit when standard input closes (used by `devnet` for its children).
        #[arg(long, hide = true)]
        exit_with_stdin: bool,
    },
    /// Run a validator that checks and signs the registry's directories.
    Validator {
        /// The validator's config file (see examples/validator.toml).
        #[arg(long)]
        config: PathBuf,
        /// Print the validator's public key (creating it if needed) and exit.
        #[arg(long)]
        print_key: bool,
        /// Exit when standard input closes (used by `devnet` for its children).
        #[arg(long, hide = true)]
        exit_with_stdin: bool,
    },
    /// Show a running client's path, relays and open flows.
    Status {
        /// The client's state directory, or a devnet's (its client's is used).
        #[arg(long)]
        state_dir: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// An egress operator's contribution ledger at the issuer (tokens
    /// redeemed, bytes reported), and the relay's own ledger when it is not
    /// running.
    Ledger {
        /// The egress relay's config file (its `[egress.payment]` names the
        /// issuer it settles at).
        #[arg(long)]
        config: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Simulate collusion: the probability that some path has its ingress
    /// and egress held by one adversary, exactly and by Monte Carlo.
    Sim(SimArgs),
}

/// Flags of `openrelay sim`; the model is in docs/collusion.md.
#[derive(Debug, clap::Args)]
struct SimArgs {
    /// Selection policy: random, operator-diverse, stake-weighted or capped
    /// (what openrelay clients do: clipped bandwidth, operator shares capped).
    #[arg(long, default_value = "random")]
    policy: openrelay_sim::Policy,
    /// Weight the selected policy's choice by advertised bandwidth (stake).
    #[arg(long)]
    stake_weighted: bool,
    /// The adversary's share of the relays of each role (built population; default 0.02).
    #[arg(long, conflicts_with = "population")]
    adversary_share: Option<f64>,
    /// Report the number of paths until this probability of compromise.
    #[arg(long, default_value_t = 0.5)]
    target_probability: f64,
    /// Report probabilities after N paths (default: random's paths to the target).
    #[arg(long, value_name = "N")]
    paths: Option<u64>,
    /// Monte Carlo runs per scenario (0: exact values only).
    #[arg(long, value_name = "T", default_value_t = openrelay_sim::report::DEFAULT_TRIALS)]
    trials: u64,
    /// Monte Carlo seed.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Built population: operators' worth of relays.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        conflicts_with = "population"
    )]
    operators: usize,
    /// Built population: relays per operator and role.
    #[arg(
        long,
        value_name = "R",
        default_value_t = 10,
        conflicts_with = "population"
    )]
    relays_per_operator: usize,
    /// Split the adversary into K operator identities (a Sybil).
    #[arg(long, value_name = "K")]
    sybil_identities: Option<usize>,
    /// A population file (TOML; see crates/sim/examples/population.toml).
    #[arg(long, value_name = "FILE")]
    population: Option<PathBuf>,
    /// Also write the comparison as an SVG line plot to FILE.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct DevnetArgs {
    /// Number of operators, each running one ingress and one egress relay
    /// (operators are in different countries, so the default three give
    /// three regions).
    #[arg(long, default_value_t = 3)]
    operators: usize,
    /// The client's SOCKS5 listen address.
    #[arg(long, default_value = "127.0.0.1:1080")]
    socks: SocketAddr,
    /// The client's HTTP proxy listen address.
    #[arg(long, default_value = "127.0.0.1:8118")]
    http: SocketAddr,
    /// Keys and state (default: a fresh temporary directory, removed on exit;
    /// with --export, DIR/state).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Each component logs to its own file here (client.log, ingress-<i>.log, egress-<i>.log).
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Log filter for every component (e.g. info, debug, trace).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Write one config file per component into DIR and exit (keys and
    /// state go to DIR/state unless --state-dir says otherwise).
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    /// Run without the registry and validators: the client uses the relay
    /// list in its config instead of the validator-signed directory.
    #[arg(long)]
    no_registry: bool,
    /// Run without the token issuer: relays admit and carry without Privacy
    /// Pass tokens.
    #[arg(long)]
    no_tokens: bool,
    /// How long each issuer token key signs before the next takes over
    /// (default a week; a few minutes to watch key rotations, which the
    /// validator-signed directory must list before a key signs).
    #[arg(long, value_name = "SECS", default_value_t = openrelay_devnet::DEVNET_KEY_ROTATION_SECS)]
    key_rotation_secs: u64,
    /// Run the client with its full-device VPN in a fresh network namespace
    /// NAME, linked to this one by a veth pair on whose host side the
    /// ingresses listen (docs/tun.md); removed on exit.
    #[arg(long, value_name = "NAME")]
    client_netns: Option<String>,
    /// The resolver the egresses forward clients' DNS queries to (default:
    /// each egress's /etc/resolv.conf).
    #[arg(long, value_name = "ADDR")]
    dns_resolver: Option<SocketAddr>,
    /// The client's path selection (devnet operators 1, 2, 3, ... are in
    /// NL, CH, SE, FR, IS, DE; every devnet relay is in "Localhost").
    #[command(flatten)]
    path: PathArgs,
}

/// Path selection settings on the command line; each overrides the
/// client config's `[path]` entry of the same name.
#[derive(Debug, clap::Args)]
struct PathArgs {
    /// Use only egress relays in this country (ISO 3166-1 alpha-2).
    #[arg(long, value_name = "CC")]
    egress_country: Option<String>,
    /// ... and in this city.
    #[arg(long, requires = "egress_country")]
    egress_city: Option<String>,
    /// Your own country: egress relays there are preferred when no egress
    /// country is asked for ("near my region").
    #[arg(long, value_name = "CC")]
    home_country: Option<String>,
    /// New flows move to a fresh path this often (open flows finish on
    /// theirs).
    #[arg(long, value_name = "SECS")]
    rotation_secs: Option<u64>,
    /// Per-site isolation: flows to different sites use different egress
    /// relays.
    #[arg(long)]
    per_site: bool,
}

impl PathArgs {
    fn apply(&self, path: &mut PathConfig) {
        if self.egress_country.is_some() {
            path.egress_country.clone_from(&self.egress_country);
            path.egress_city.clone_from(&self.egress_city);
        }
        if self.home_country.is_some() {
            path.home_country.clone_from(&self.home_country);
        }
        if let Some(secs) = self.rotation_secs {
            path.rotation_secs = secs;
        }
        path.per_site |= self.per_site;
    }
}

/// Runs the command line; the binary's `main` calls only this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = raise_descriptor_limit() {
        eprintln!("openrelay: cannot raise the open file limit: {e}");
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openrelay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Raises this process's soft limit on open files (RLIMIT_NOFILE) to its
/// hard limit: every tunnel, flow and connection to a destination is a file
/// descriptor, and the usual soft limit (1024) is far below what a relay
/// carries. When even the hard limit is reached, servers refuse the request
/// that needed one (503) and keep serving others.
fn raise_descriptor_limit() -> nix::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(())
}

/// Logs the open file limit a server runs with.
fn log_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit};
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        tracing::info!(open_files = soft, "open file limit");
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
            path,
            tun: with_tun,
            exit_with_stdin,
        } => {
            let mut config = ClientConfig::load(&config)?;
            config.tun.enabled |= with_tun;
            path.apply(&mut config.path);
            config.path.validate()?;
            // ipstack's TCP streams block in place when dropped, which needs
            // a multi-threaded runtime.
            let threads = match config.tun.enabled {
                true => config.worker_threads.max(2),
                false => config.worker_threads,
            };
            runtime(Some(threads))?.block_on(run_client(config, exit_with_stdin))
        }
        Command::Up { config } => tun::run_up(&config),
        Command::Down { state_dir, config } => tun::run_down(&tun::down_target(state_dir, config)?),
        Command::Account(args) => {
            let message = runtime(Some(1))?.block_on(account::run(args))?;
            println!("{message}");
            Ok(())
        }
        Command::Devnet(args) => runtime(Some(1))?.block_on(run_devnet(args)),
        Command::Registry {
            config,
            exit_with_stdin,
        } => {
            let config = openrelay_config::RegistryConfig::load(&config)?;
            runtime(None)?.block_on(run_registry(config, exit_with_stdin))
        }
        Command::Issuer {
            config,
            exit_with_stdin,
        } => {
            let config = openrelay_config::IssuerConfig::load(&config)?;
            runtime(None)?.block_on(run_issuer(config, exit_with_stdin))
        }
        Command::Validator {
            config,
            print_key,
            exit_with_stdin,
        } => {
            if print_key {
                // Before the config is complete: it must list this key.
                let state_dir = openrelay_config::ValidatorConfig::load_state_dir(&config)?;
                let key = openrelay_registry::keyfile::load_or_create(&state_dir)?;
                println!("{}", key.id());
                return Ok(());
            }
            let config = openrelay_config::ValidatorConfig::load(&config)?;
            let key = openrelay_registry::keyfile::load_or_create(&config.state_dir)?;
            runtime(Some(1))?.block_on(run_validator(config, key, exit_with_stdin))
        }
        Command::Status { state_dir, json } => {
            runtime(Some(1))?.block_on(run_status(&state_dir, json))
        }
        Command::Key {
            state_dir,
            operator_key_file,
        } => {
            let pin = match (state_dir, operator_key_file) {
                (_, Some(file)) => operator_pin(&file)?,
                (Some(dir), None) => Identity::load_or_create(&dir)?.pin(),
                (None, None) => anyhow::bail!("--state-dir or --operator-key-file is required"),
            };
            println!("{pin}");
            Ok(())
        }
        Command::Sim(args) => run_sim(args),
        Command::Ledger { config, json } => {
            let config = RelayConfig::load(&config)?;
            runtime(Some(1))?.block_on(ledger::run(&config, json))
        }
    }
}

/// `openrelay sim`: maps flags to [`openrelay_sim::SimOptions`], prints
/// the report, writes the plot.
fn run_sim(args: SimArgs) -> anyhow::Result<()> {
    let population = match args.population {
        Some(path) => openrelay_sim::PopulationSource::File(path),
        None => openrelay_sim::PopulationSource::Uniform {
            operators: args.operators,
            relays_per_operator: args.relays_per_operator,
            adversary_share: args.adversary_share.unwrap_or(0.02),
        },
    };
    let policy = if args.stake_weighted {
        args.policy.with_weighting(openrelay_sim::Weighting::Stake)
    } else {
        args.policy
    };
    let report = openrelay_sim::run(&openrelay_sim::SimOptions {
        policy,
        population,
        sybil_identities: args.sybil_identities,
        target_probability: args.target_probability,
        paths: args.paths,
        trials: args.trials,
        seed: args.seed,
    })?;
    if let Some(path) = &args.plot {
        std::fs::write(path, openrelay_sim::svg::plot(&report))
            .with_context(|| format!("cannot write the plot to {}", path.display()))?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.render_text());
        if let Some(path) = &args.plot {
            println!("plot written to {}", path.display());
        }
    }
    Ok(())
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

/// Logging as a component's config says, with the privacy rules of `role`.
fn init_logging(role: Role, log: &openrelay_config::LogConfig) -> anyhow::Result<()> {
    openrelay_log::init(&LogOptions {
        role,
        filter: log.level.clone(),
        file: log.file.clone(),
    })?;
    Ok(())
}

fn ready(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// The public key of the operator key file `file` (created if absent).
fn operator_pin(file: &std::path::Path) -> anyhow::Result<openrelay_types::KeyPin> {
    Ok(openrelay_types::KeyPin::from(
        openrelay_registry::keyfile::operator_key(file)?.id(),
    ))
}

/// Fills in the relay's `operator_key` from its publishing key file, and
/// refuses a config whose two disagree (tokens would be scoped to another
/// operator than the directory lists).
fn resolve_operator_key(config: &mut RelayConfig) -> anyhow::Result<()> {
    let Some(publish) = &config.publish else {
        return Ok(());
    };
    let published = operator_pin(&publish.operator_key_file)?;
    match config.operator_key {
        None => config.operator_key = Some(published),
        Some(given) => anyhow::ensure!(
            given == published,
            "operator_key {given} is not the key of {} ({published}), which signs this relay's descriptors",
            publish.operator_key_file.display()
        ),
    }
    Ok(())
}

async fn run_relay(mut config: RelayConfig, exit_with_stdin: bool) -> anyhow::Result<()> {
    init_logging(Role::Relay, &config.log)?;
    resolve_operator_key(&mut config)?;
    log_descriptor_limit();
    let identity = Identity::load_or_create(&config.state_dir)?;
    let shutdown = shutdown_signal(exit_with_stdin);
    match config.role {
        RelayRole::Ingress => {
            let settings = openrelay_ingress::IngressSettings::from_config(&config)?;
            let mut ingress = openrelay_ingress::Ingress::bind(settings, &identity)?;
            let listen = ingress.local_addr()?;
            if let Some(publisher) = publisher(&config, listen, &identity)? {
                ingress.spawn(publisher.run(std::future::pending()));
            }
            ready(&format!(
                "ready role=ingress listen={listen} key={}",
                identity.pin()
            ));
            ingress.serve(shutdown).await;
        }
        RelayRole::Egress => {
            let mut settings = openrelay_egress::EgressSettings::from_config(&config)?;
            settings.operator = ledger::settlement_operator(&config)?;
            let mut egress = openrelay_egress::Egress::bind(settings, &identity)?;
            let listen = egress.local_addr()?;
            if let Some(publisher) = publisher(&config, listen, &identity)? {
                egress.spawn(publisher.run(std::future::pending()));
            }
            ready(&format!(
                "ready role=egress listen={listen} key={}",
                identity.pin()
            ));
            egress.serve(shutdown).await;
        }
    }
    Ok(())
}

/// The relay's descriptor publisher, if its config says where to publish.
fn publisher(
    config: &RelayConfig,
    listen: std::net::SocketAddr,
    identity: &Identity,
) -> anyhow::Result<Option<openrelay_registry::publisher::Publisher>> {
    let Some(publish) = &config.publish else {
        return Ok(None);
    };
    Ok(Some(openrelay_registry::publisher::Publisher::new(
        publish,
        config.role,
        listen,
        identity,
        &config.state_dir,
    )?))
}

async fn run_client(config: ClientConfig, exit_with_stdin: bool) -> anyhow::Result<()> {
    init_logging(Role::Client, &config.log)?;
    // The VPN comes up first: the kill switch holds from here on, and the
    // sockets to the ingress must be created marked (after `up`).
    let mut vpn = match config.tun.enabled {
        true => Some(openrelay_tun::Vpn::up(&config)?),
        false => None,
    };
    let client = match openrelay_client::Client::bind(&config).await {
        Ok(client) => client,
        Err(e) => {
            if let Some(vpn) = vpn {
                vpn.down();
            }
            return Err(e.into());
        }
    };
    let (socks, http) = (client.socks_addr()?, client.http_addr()?);
    let manager = std::sync::Arc::clone(client.manager());
    // The kill switch admits the client's own packets to the ingresses the
    // manager may use, and no further.
    if let Some(filter) = vpn.as_ref().and_then(openrelay_tun::Vpn::ingress_filter) {
        manager.filter_ingresses(filter);
    }
    let stack = vpn
        .as_mut()
        .map(|vpn| AbortOnDrop(tokio::spawn(vpn.serve(std::sync::Arc::clone(&manager)))));
    let tun_name = vpn.as_ref().map(|_| format!(" tun={}", config.tun.name));
    // Announce readiness once a path works; until then keep trying, so a
    // client started before its relays comes up by itself.
    tokio::spawn(async move {
        let mut said = false;
        loop {
            match manager.current().await {
                Ok(_) => {
                    let tun = tun_name.unwrap_or_default();
                    ready(&format!("ready socks={socks} http={http}{tun}"));
                    return;
                }
                Err(openrelay_client::PathError::Closed) => return,
                // The manager warns about build failures as their cause
                // changes; saying it again every second is noise.
                Err(e) => {
                    if !said {
                        warn!(error = %e, "no path yet; retrying");
                        said = true;
                    } else {
                        debug!(error = %e, "no path yet; retrying");
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    client.serve(shutdown_signal(exit_with_stdin)).await;
    drop(stack);
    if let Some(vpn) = vpn {
        vpn.down();
    }
    Ok(())
}

async fn run_devnet(args: DevnetArgs) -> anyhow::Result<()> {
    openrelay_log::init(&LogOptions {
        role: Role::Tool,
        filter: "warn".into(),
        file: None,
    })?;
    let temporary;
    let state_dir = match (&args.state_dir, &args.export) {
        (Some(dir), _) => dir.clone(),
        // Exported configs name their state directories (and the keys the
        // client pins are made there now): keep them next to the configs.
        (None, Some(export)) => export.join("state"),
        (None, None) => {
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
        registry: !args.no_registry,
        tokens: !args.no_tokens,
        key_rotation_secs: args.key_rotation_secs,
        client_netns: args.client_netns.is_some(),
        dns_resolver: args.dns_resolver,
        path: {
            let mut path = PathConfig::default();
            args.path.apply(&mut path);
            path
        },
    };
    // The link must exist before the plan picks ports on its addresses.
    let _netns = match (&args.client_netns, &args.export) {
        (Some(name), None) => Some(openrelay_devnet::netns::ClientNetns::create(
            name,
            u8::try_from(args.operators).context("--operators")?,
        )?),
        _ => None,
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
        subcommand: match name.as_str() {
            "client" => "client",
            "registry" => "registry",
            "issuer" => "issuer",
            n if n.starts_with("validator-") => "validator",
            _ => "relay",
        },
        config: config.clone(),
        netns: (name == "client")
            .then(|| args.client_netns.clone())
            .flatten(),
    };
    let (client, relays) = files.split_last().context("devnet plan is empty")?;
    let relays: Vec<_> = relays.iter().map(component).collect();
    let client = component(client);
    let exe = std::env::current_exe().context("cannot find the openrelay executable")?;
    let pids_file = options.state_dir.join("devnet.pids");
    let client_config = plan.client.clone();
    let relay_count = plan.relays.len();
    openrelay_devnet::run(
        &exe,
        &relays,
        &client,
        args.client_netns.is_some(),
        async move {
            if let Some(directory) = &client_config.directory {
                let issuer = client_config.account.as_ref().map(|a| a.issuer.key);
                full_directory(directory, relay_count, issuer).await;
            }
            account::devnet_login(&client_config)
                .await
                .map_err(|e| format!("{e:#}"))
        },
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

/// Waits (up to 20 s) until the registry serves a directory listing all
/// `relays` of the devnet and, with tokens, the key set of `issuer`, so its
/// client starts on the whole network rather than on the first relays to
/// publish, and with relays that know the issuer's keys. (A real network
/// has no such moment; its clients start on whatever the current directory
/// lists.)
async fn full_directory(
    directory: &openrelay_config::DirectoryConfig,
    relays: usize,
    issuer: Option<openrelay_types::KeyPin>,
) {
    let registry = openrelay_registry_client::RegistryClient::new(
        directory.registry.addr,
        directory.registry.key,
    );
    let issuer = issuer.and_then(|pin| openrelay_directory::IssuerId::try_from(pin).ok());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while tokio::time::Instant::now() < deadline {
        let complete = registry
            .call(
                http::Method::GET,
                openrelay_registry_client::paths::DIRECTORY,
                Vec::new(),
            )
            .await
            .ok()
            .filter(|(status, _)| *status == 200)
            .and_then(|(_, body)| openrelay_directory::SignedDirectory::from_bytes(&body).ok())
            .and_then(|signed| openrelay_directory::Directory::from_bytes(&signed.directory).ok())
            .is_some_and(|d| {
                d.descriptors().len() >= relays
                    && issuer.is_none_or(|issuer| d.key_set(&issuer).is_some())
            });
        if complete {
            // The relays take the listed keys at their next directory fetch.
            tokio::time::sleep(std::time::Duration::from_secs(
                directory.refresh_secs.min(5),
            ))
            .await;
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    warn!(
        "the directory does not list every devnet relay (and the issuer's keys) yet; starting the client anyway"
    );
}

/// `openrelay status`: asks the running client over its control socket.
async fn run_status(state_dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    use openrelay_client::control;
    // A devnet's state directory holds its client's in `client/`.
    let devnet_client = state_dir.join("client");
    let dir = if !control::socket_path(state_dir).exists()
        && control::socket_path(&devnet_client).exists()
    {
        devnet_client.as_path()
    } else {
        state_dir
    };
    let status = control::query(dir).await?;
    if json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(());
    }
    let state = match (status.state, status.next_attempt_secs) {
        (control::PathState::Connected, _) => "connected".to_owned(),
        (control::PathState::Connecting, _) => "connecting".to_owned(),
        (control::PathState::Disconnected, None) => {
            "disconnected (the next flow builds a path)".to_owned()
        }
        (control::PathState::Disconnected, Some(secs)) => {
            format!("disconnected (next attempt in {secs} s)")
        }
    };
    println!("state:      {state}");
    if let Some(reason) = &status.no_path {
        println!("no path:    {reason}");
    }
    for (hop, relay) in [("ingress", &status.ingress), ("egress", &status.egress)] {
        if let Some(relay) = relay {
            let region = match (&relay.country, &relay.city) {
                (Some(country), Some(city)) => format!(", {city} {country}"),
                (Some(country), None) => format!(", {country}"),
                _ => String::new(),
            };
            let label = format!("{hop}:");
            println!(
                "{label:<11} {} (operator {}{region}) at {}",
                relay.name, relay.operator, relay.address
            );
        }
    }
    if let Some(age) = status.path_age_secs {
        println!("path age:   {age} s");
    }
    println!(
        "open flows: {} on {} path(s)",
        status.open_flows, status.live_paths
    );
    if let Some(balance) = status.token_balance {
        println!("tokens:     {balance} in the wallet");
    }
    match status.directory_age_secs {
        Some(age) => println!("directory:  issued {age} s ago"),
        None => println!("directory:  relay list from the config file"),
    }
    Ok(())
}

async fn run_registry(
    config: openrelay_config::RegistryConfig,
    exit_with_stdin: bool,
) -> anyhow::Result<()> {
    init_logging(Role::Relay, &config.log)?;
    let identity = Identity::load_or_create(&config.state_dir)?;
    let service = std::sync::Arc::new(openrelay_registry::service::RegistryService::new(&config)?);
    let endpoint = openrelay_registry::service::RegistryService::bind(&config, &identity)?;
    let listen = endpoint.local_addr()?;
    ready(&format!(
        "ready role=registry listen={listen} key={}",
        identity.pin()
    ));
    service
        .run(endpoint, shutdown_signal(exit_with_stdin))
        .await;
    Ok(())
}

async fn run_issuer(
    config: openrelay_config::IssuerConfig,
    exit_with_stdin: bool,
) -> anyhow::Result<()> {
    init_logging(Role::Relay, &config.log)?;
    let identity = Identity::load_or_create(&config.state_dir)?;
    let service = std::sync::Arc::new(openrelay_issuer::IssuerService::new(&config)?);
    let endpoint = openrelay_issuer::IssuerService::bind(&config, &identity)?;
    let listen = endpoint.local_addr()?;
    ready(&format!(
        "ready role=issuer listen={listen} key={}",
        identity.pin()
    ));
    service
        .run(endpoint, shutdown_signal(exit_with_stdin))
        .await;
    Ok(())
}

async fn run_validator(
    config: openrelay_config::ValidatorConfig,
    key: openrelay_directory::ValidatorKey,
    exit_with_stdin: bool,
) -> anyhow::Result<()> {
    init_logging(Role::Tool, &config.log)?;
    // Its TLS key (relays pin it to publish here), next to its signing key.
    let identity = Identity::load_or_create(&config.state_dir)?;
    let validator = openrelay_registry::validator::Validator::new(&config, key)?;
    let endpoint = openrelay_registry::validator::Validator::bind(&config, &identity)?;
    let listen = endpoint.local_addr()?;
    let registry =
        openrelay_registry_client::RegistryClient::new(config.registry.addr, config.registry.key);
    ready(&format!(
        "ready role=validator listen={listen} key={} tls_key={}",
        validator.id(),
        identity.pin()
    ));
    validator
        .run(endpoint, registry, shutdown_signal(exit_with_stdin))
        .await;
    Ok(())
}
