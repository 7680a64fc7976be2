//! `openrelay devnet`: a complete local network (the devnet crate plans
//! and supervises it; this file maps flags to its options).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use openrelay_config::PathConfig;
use openrelay_log::{LogOptions, Role};

use crate::cmd::{PathArgs, account};
use crate::process::{ready, runtime, shutdown_signal};

/// Flags of `openrelay devnet`.
#[derive(Debug, clap::Args)]
pub(crate) struct DevnetArgs {
    /// Number of operators, each running one ingress and one egress relay
    /// (operators are in different countries, so the default three give
    /// three regions).
    #[arg(long, default_value_t = 3)]
    operators: usize,
    /// Number of validators (with the registry); a majority of them signs
    /// each directory. Slashes need more than 2/3 of their stake to
    /// approve (docs/chain.md), so three validators tolerate no liar for
    /// slashing and four tolerate one.
    #[arg(long, default_value_t = openrelay_devnet::DEFAULT_VALIDATORS)]
    validators: usize,
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
    /// Run the registry on a local EVM chain: start anvil (`npm ci --prefix
    /// contracts` installs it), deploy the registry contract with the
    /// validators as its genesis set, and register and stake every
    /// operator and relay (docs/chain.md). The ready output adds the RPC
    /// URL, the contract and each operator's account key file.
    #[arg(long, conflicts_with = "no_registry")]
    chain: bool,
    /// With --chain: the validators measure every relay each epoch of
    /// --measure-epoch-secs through ordinary paths, commit and reveal
    /// their reports on the chain, and the directory carries the measured
    /// bandwidth (docs/measurement.md). With the issuer (the default) each
    /// validator's probes take tokens from an account of their own there.
    #[arg(long, requires = "chain")]
    measure: bool,
    /// The measurement epoch with --measure (the reveal window is a
    /// quarter of it): every validator tests every relay in it.
    #[arg(long, value_name = "SECS", default_value_t = 120, requires = "measure")]
    measure_epoch_secs: u64,
    /// With --measure: every relay advertises 40 Mbit/s; this relay is
    /// throttled to BPS (`[throttle_for_tests]`), less than it advertises,
    /// except towards the validators' published addresses (a relay that
    /// lies, and serves the validators it knows fast, for tests).
    /// Repeatable.
    #[arg(long, value_name = "NAME=BPS", requires = "measure", value_parser = parse_name_bps)]
    short_relay_for_tests: Vec<(String, u64)>,
    /// With --measure: the devnet's last validator reports this relay at
    /// BPS whatever it measures (`[measure] misreport_for_tests`: a
    /// validator inflating a friend, for tests). Repeatable.
    #[arg(long, value_name = "NAME=BPS", requires = "measure", value_parser = parse_name_bps)]
    misreporting_validator_for_tests: Vec<(String, u64)>,
    /// The client's `[trust] attestation`: every devnet relay publishes
    /// evidence from the devnet's insecure simulated TEE; with --chain the
    /// validators vote on the devnet's release, and attested relays are
    /// those measuring it.
    #[arg(long, value_enum, default_value_t = AttestationArg::Prefer)]
    attestation: AttestationArg,
    /// With --chain: the last validator votes against every release
    /// (`[release_votes] check = "reject_all_for_tests"`) and loses stake
    /// to the majority; use 4 validators so one dissenter is no blocking
    /// third.
    #[arg(long, requires = "chain")]
    dissenting_validator_for_tests: bool,
    /// This relay's simulated TEE measures a modified build (software no
    /// vote approved): a `require` client refuses it. Repeatable.
    #[arg(long, value_name = "NAME", conflicts_with = "no_registry")]
    unapproved_build_relay_for_tests: Vec<String>,
    /// The client's path selection (devnet operators 1, 2, 3, ... are in
    /// NL, CH, SE, FR, IS, DE; every devnet relay is in "Localhost").
    #[command(flatten)]
    path: PathArgs,
}

/// `--attestation`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AttestationArg {
    Off,
    Prefer,
    Require,
}

impl From<AttestationArg> for openrelay_config::AttestationMode {
    fn from(arg: AttestationArg) -> Self {
        match arg {
            AttestationArg::Off => Self::Off,
            AttestationArg::Prefer => Self::Prefer,
            AttestationArg::Require => Self::Require,
        }
    }
}

/// `NAME=BPS` of `--short-relay-for-tests` and
/// `--misreporting-validator-for-tests`.
fn parse_name_bps(text: &str) -> Result<(String, u64), String> {
    let (name, bps) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=BPS (e.g. egress-1=4000000)"))?;
    let bps = bps
        .parse()
        .map_err(|e| format!("{bps:?} is not a number of bits per second: {e}"))?;
    Ok((name.to_owned(), bps))
}

/// Init logging, run (the devnet writes its components' configs itself).
pub(crate) fn run(args: DevnetArgs) -> anyhow::Result<()> {
    runtime(Some(1))?.block_on(serve(args))
}

async fn serve(args: DevnetArgs) -> anyhow::Result<()> {
    openrelay_log::init(&LogOptions {
        role: Role::Tool,
        filter: "warn".into(),
        file: None,
    })?;
    if args.chain && args.export.is_some() {
        anyhow::bail!(
            "--export cannot be used with --chain: the contract and the operators' registrations \
             exist only on the chain a running `openrelay devnet --chain` starts; run that (its \
             ready output prints the RPC URL, the contract and the operators' key files), or \
             deploy to your own node (docs/chain.md) and add its [chain] section to the exported \
             registry and validator configs"
        );
    }
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
        validators: args.validators,
        tokens: !args.no_tokens,
        key_rotation_secs: args.key_rotation_secs,
        client_netns: args.client_netns.is_some(),
        dns_resolver: args.dns_resolver,
        path: {
            let mut path = PathConfig::default();
            args.path.apply(&mut path);
            path
        },
        attestation: args.attestation.into(),
        unapproved_build_relays_for_tests: args.unapproved_build_relay_for_tests.clone(),
    };
    // The link must exist before the plan picks ports on its addresses.
    let _netns = match (&args.client_netns, &args.export) {
        (Some(name), None) => Some(openrelay_devnet::netns::ClientNetns::create(
            name,
            u8::try_from(args.operators).context("--operators")?,
        )?),
        _ => None,
    };
    let mut plan = openrelay_devnet::plan(&options)?;
    if let Some(dir) = &args.export {
        for component in openrelay_devnet::export(&plan, dir)? {
            println!("wrote {}", component.config.display());
        }
        return Ok(());
    }
    // Listening from here on: Ctrl-C while the chain is set up stops it
    // (dropping it kills anvil) instead of killing this process and
    // leaving anvil behind.
    let shutdown = shutdown_signal(false);
    tokio::pin!(shutdown);
    // Held until the devnet stops: dropping it kills anvil.
    let chain = match args.chain {
        true => tokio::select! {
            chain = openrelay_devnet::chain::start(&mut plan, args.measure.then_some(
                openrelay_devnet::chain::MeasureOptions {
                    epoch: std::time::Duration::from_secs(args.measure_epoch_secs),
                    short_relays_for_tests: args.short_relay_for_tests.clone(),
                    misreports_for_tests: args.misreporting_validator_for_tests.clone(),
                },
            ), openrelay_devnet::chain::ReleaseOptions {
                dissenting_validator_for_tests: args.dissenting_validator_for_tests,
            }) => Some(chain?),
            () = &mut shutdown => return Ok(()),
        },
        false => None,
    };
    let chain_lines = chain
        .as_ref()
        .map(openrelay_devnet::chain::DevnetChain::describe)
        .unwrap_or_default();
    let exe = std::env::current_exe().context("cannot find the openrelay executable")?;
    let client_config = plan.client.clone();
    openrelay_devnet::run_plan(
        &plan,
        &options.state_dir,
        &exe,
        args.client_netns.clone(),
        async move {
            Ok(openrelay_client::login::devnet_login(
                &client_config,
                openrelay_devnet::DEVNET_ACCOUNT,
                &account::progress,
            )
            .await?)
        },
        |line| {
            ready(line);
            chain_lines.iter().for_each(|line| ready(line));
        },
        shutdown,
    )
    .await?;
    drop(chain);
    Ok(())
}
