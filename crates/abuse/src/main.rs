//! `openrelay-abuse`: attacks one relay or service and reports its memory,
//! CPU and whether a legitimate client still gets through
//! (docs/BENCHMARKS.md, "Abuse and resource bounds").
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use openrelay_abuse::attack::{Attack, Plan};
use openrelay_abuse::idle::{self, IdleOptions};
use openrelay_abuse::load;
use openrelay_abuse::monitor::{self, Timed};
use openrelay_abuse::probe::{self, Prober, Via};
use openrelay_abuse::run::{self, Phase, PhaseOptions};
use openrelay_abuse::target::{self, Role, Started, Target};
use openrelay_config::RelayConfig;
use openrelay_tokens::header::build_authorization;
use openrelay_tokens::{EpochKey, IssuerDirectory, SigningKey, TokenChallenge, issuance};
use openrelay_transport::limits::ServerLimits;
use openrelay_types::KeyPin;

/// openrelay's torture harness.
#[derive(Debug, Parser)]
#[command(name = "openrelay-abuse", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run attacks against the target, measuring it and a legitimate
    /// client during and after each.
    Attack {
        #[command(flatten)]
        target: TargetArgs,
        /// Attacks to run (default: all, in order).
        #[arg(long, value_delimiter = ',')]
        attacks: Vec<Attack>,
        /// Seconds each attack runs.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Connections the `connections` attack opens.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Connections every other attack keeps busy at once.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Streams each attacking connection keeps busy.
        #[arg(long, default_value_t = 16)]
        streams: usize,
        /// Bytes (MiB) all endless streams of one attack may send together.
        #[arg(long, default_value_t = 2048)]
        max_mib: u64,
        /// Also write every phase as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Open idle tunnels (ingress) or UDP flows (egress) and report the
    /// target's resident memory per tunnel or flow.
    Idle {
        #[command(flatten)]
        target: TargetArgs,
        /// Tunnels or flows to open.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// Tunnels (each its own connection) opened from one client
        /// address, or flows from one address at an egress.
        #[arg(long, default_value_t = 16)]
        per_source: usize,
        /// Flows per inner connection (egress).
        #[arg(long, default_value_t = 1000)]
        flows_per_connection: usize,
        /// Connections being set up at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds to let the target settle before each reading.
        #[arg(long, default_value_t = 5)]
        settle: u64,
        /// Also write the report as JSON to FILE.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// The scale of one relay: an ingress with many concurrent tunnels
    /// with traffic, an egress with many flows; memory, CPU per tunnel and
    /// flow, set-up rate, against targets.
    Load(LoadArgs),
}

/// The scale of one relay (issue 16 item 3): relays started from exported
/// configs, one phase each.
#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// The ingress's config; its tunnels go to the --egress-config relays.
    #[arg(long, value_name = "FILE")]
    ingress_config: PathBuf,
    /// Egress relays' configs (on the ingress's `egress_relays`); tunnels
    /// are spread over them in turn, and the first takes the flows.
    #[arg(long, value_name = "FILE", required = true)]
    egress_config: Vec<PathBuf>,
    /// Concurrent tunnels at the ingress (the target).
    #[arg(long, default_value_t = 10_000)]
    tunnels: usize,
    /// Concurrent UDP flows at the egress (the target).
    #[arg(long, default_value_t = 100_000)]
    flows: usize,
    /// Flows per inner connection at the egress.
    #[arg(long, default_value_t = 1000)]
    flows_per_connection: usize,
    /// Tunnels (each its own connection) per client address.
    #[arg(long, default_value_t = 16)]
    tunnels_per_source: usize,
    /// Tunnels or inner connections being set up at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Seconds between a tunnel's keep-alive pings to its egress.
    #[arg(long, default_value_t = 5)]
    keep_alive: u64,
    /// Seconds every tunnel is held open before the loaded reading; flows
    /// settle this long too.
    #[arg(long, default_value_t = 20)]
    hold: u64,
    /// Open-file limit of the relays started (an egress needs a socket per
    /// flow); above this process's hard limit only with CAP_SYS_RESOURCE.
    /// Default: this process's hard limit.
    #[arg(long)]
    nofile: Option<u64>,
    /// The `openrelay` binary (default: next to this one).
    #[arg(long, value_name = "PATH")]
    openrelay: Option<PathBuf>,
    /// The relays' logs (standard error) go here.
    #[arg(long, value_name = "FILE")]
    target_log: Option<PathBuf>,
    /// Also write the reports as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// An ingress config with `[ingress.admission]` and a local
    /// `issuer_keys` file: the generator plays the issuer (writes a fresh
    /// key into that file, mints the tokens) and measures tunnels admitted
    /// with tokens, one each.
    #[arg(long, value_name = "FILE")]
    token_ingress_config: Option<PathBuf>,
    /// Tunnels admitted with tokens (each token minted beforehand).
    #[arg(long, default_value_t = 2000)]
    token_tunnels: usize,
    /// Record the ingress while its tunnels are set up, and the egress
    /// while its flows are opened, with `perf record -g` into DIR.
    #[arg(long, value_name = "DIR")]
    perf: Option<PathBuf>,
}

/// `perf record` of one process, stopped (SIGINT, so it writes its file)
/// when dropped.
struct Perf(std::process::Child);

impl Perf {
    fn start(dir: Option<&PathBuf>, pid: u32, name: &str) -> Option<Perf> {
        let dir = dir?;
        let child = std::process::Command::new("perf")
            .args(["record", "-F", "499", "-g", "-p", &pid.to_string(), "-o"])
            .arg(dir.join(format!("{name}.perf.data")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => Some(Perf(child)),
            Err(e) => {
                eprintln!("perf record: {e}");
                None
            }
        }
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Which server, and how to reach and watch it.
#[derive(Debug, clap::Args)]
struct TargetArgs {
    /// The target's config file (relay, registry or issuer, e.g. from
    /// `openrelay devnet --export DIR`): role, address and key from it.
    #[arg(long, value_name = "FILE", required_unless_present = "addr")]
    config: Option<PathBuf>,
    /// The target's role (without --config).
    #[arg(long, requires = "addr")]
    role: Option<Role>,
    /// The target's QUIC address (without --config).
    #[arg(long, requires_all = ["role", "key"], conflicts_with = "config")]
    addr: Option<SocketAddr>,
    /// The target's key (without --config).
    #[arg(long)]
    key: Option<KeyPin>,
    /// Start the target from --config (`openrelay <role> --config FILE`)
    /// with its open-file limit raised, and stop it at the end; `attack`
    /// starts it afresh for each attack, so no attack inherits another's
    /// memory.
    #[arg(long, requires = "config")]
    start: bool,
    /// The `openrelay` binary --start runs (default: next to this one).
    #[arg(long, value_name = "PATH")]
    openrelay: Option<PathBuf>,
    /// The started target's log (standard error) goes here.
    #[arg(long, value_name = "FILE")]
    target_log: Option<PathBuf>,
    /// The running target's pid, for its memory and CPU.
    #[arg(long, conflicts_with = "start")]
    pid: Option<u32>,
    /// Ingress: the egress relay's config; probes tunnel to it.
    #[arg(long, value_name = "FILE")]
    egress_config: Option<PathBuf>,
    /// Ingress: the egress relay probes tunnel to (default: the first of the
    /// ingress's `egress_relays`).
    #[arg(long)]
    egress: Option<SocketAddr>,
    /// Ingress: that egress's key.
    #[arg(long)]
    egress_key: Option<KeyPin>,
    /// First attacker address (default: 127.66.0.1 for a loopback target,
    /// else the unspecified address).
    #[arg(long)]
    attack_from: Option<IpAddr>,
    /// Attacker addresses, counting up from --attack-from (loopback only).
    #[arg(long, default_value_t = 8)]
    sources: usize,
    /// The legitimate client's address (default: 127.0.0.1 for a loopback
    /// target, else the unspecified address).
    #[arg(long)]
    legit_from: Option<IpAddr>,
}

/// A target ready to be attacked: described, maybe started, with its pid.
struct Ready {
    target: Target,
    pid: Option<u32>,
    started: Option<Started>,
    /// How to start it again (`--start`).
    restart: Option<Restart>,
    via: Option<Via>,
    attack_from: IpAddr,
    legit_from: IpAddr,
}

fn prepare(args: &TargetArgs) -> anyhow::Result<Ready> {
    let target = match (&args.config, args.role, args.addr, args.key) {
        (Some(config), _, _, _) => Target::from_config(config)?,
        (None, Some(role), Some(addr), Some(key)) => Target {
            role,
            addr,
            key,
            egress_relays: Vec::new(),
        },
        _ => bail!("give --config, or --role, --addr and --key"),
    };
    let restart = match (&args.config, args.start) {
        (Some(config), true) => Some(Restart {
            openrelay: match &args.openrelay {
                Some(path) => path.clone(),
                None => std::env::current_exe()?
                    .parent()
                    .context("no directory of this binary")?
                    .join("openrelay"),
            },
            config: config.clone(),
            role: target.role,
            log: args.target_log.clone(),
        }),
        _ => None,
    };
    let started = restart.as_ref().map(Restart::start).transpose()?;
    let pid = started.as_ref().map(Started::pid).or(args.pid);
    let via = match target.role {
        Role::Ingress => Some(match (&args.egress_config, args.egress, args.egress_key) {
            (Some(config), _, _) => {
                let egress = Target::from_config(config)?;
                Via {
                    addr: egress.addr,
                    key: egress.key,
                }
            }
            (None, addr, Some(key)) => Via {
                addr: addr
                    .or(target.egress_relays.first().copied())
                    .context("--egress: the ingress lists no egress relay")?,
                key,
            },
            _ => bail!("an ingress needs --egress-config, or --egress-key (and --egress)"),
        }),
        _ => None,
    };
    let loopback = target.addr.ip().is_loopback();
    let unspecified = match target.addr {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    };
    let attack_from = args.attack_from.unwrap_or(if loopback {
        IpAddr::V4(Ipv4Addr::new(127, 66, 0, 1))
    } else {
        unspecified
    });
    let legit_from = args.legit_from.unwrap_or(if loopback {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        unspecified
    });
    Ok(Ready {
        target,
        pid,
        started,
        restart,
        via,
        attack_from,
        legit_from,
    })
}

/// How `--start` runs the target.
struct Restart {
    openrelay: PathBuf,
    config: PathBuf,
    role: Role,
    log: Option<PathBuf>,
}

impl Restart {
    fn start(&self) -> anyhow::Result<Started> {
        let stderr = match &self.log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Stdio::null(),
        };
        Ok(Started::start(
            &self.openrelay,
            self.role,
            &self.config,
            target::own_nofile_hard_limit(),
            stderr,
        )?)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("openrelay-abuse: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_command(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openrelay-abuse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_command(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Attack {
            target,
            attacks,
            duration,
            connections,
            concurrency,
            streams,
            max_mib,
            json,
        } => {
            let mut ready = prepare(&target)?;
            let attacks = if attacks.is_empty() {
                Attack::ALL.to_vec()
            } else {
                attacks
            };
            let local = ready.legit_from;
            let (echo, sink) = (probe::tcp_echo(local).await?, probe::udp_sink(local).await?);
            let tunnel_to = match ready.target.role {
                Role::Ingress => ready.via.map(|v| v.addr),
                _ => Some(sink),
            };
            let prober = Prober::new(ready.target.clone(), local, ready.via, Some(echo));
            println!(
                "target: {} at {}{}",
                ready.target.role.name(),
                ready.target.addr,
                ready.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            );
            let mut phases: Vec<Phase> = Vec::new();
            for (i, attack) in attacks.into_iter().enumerate() {
                if let (Some(restart), true) = (&ready.restart, i > 0) {
                    drop(ready.started.take());
                    let started = restart.start()?;
                    ready.pid = Some(started.pid());
                    ready.started = Some(started);
                }
                let options = PhaseOptions {
                    duration: Duration::from_secs(duration),
                    probe_every: Duration::from_millis(250),
                    probes_after: 5,
                    pid: ready.pid,
                    sample_every: Duration::from_secs(1),
                };
                let plan = Plan {
                    target: ready.target.clone(),
                    sources: openrelay_abuse::addresses(ready.attack_from, target.sources),
                    connections,
                    concurrency,
                    streams_per_connection: streams,
                    max_bytes: max_mib << 20,
                    tunnel_to,
                };
                println!("== {} ({duration} s)", attack.name());
                let phase = run::phase(attack, plan, &prober, &options, printer(attack)).await;
                println!(
                    "   legitimate client: {} during, {} after{}",
                    phase.during,
                    phase.after,
                    phase
                        .first_failure
                        .as_ref()
                        .map(|f| format!(" (first failure: {f})"))
                        .unwrap_or_default()
                );
                let died = phase.survived == Some(false);
                phases.push(phase);
                if died {
                    println!("   the target died; stopping");
                    break;
                }
            }
            println!();
            print!("{}", run::table(ready.target.role.name(), &phases));
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&phases)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(())
        }
        Command::Idle {
            target,
            count,
            per_source,
            flows_per_connection,
            concurrency,
            settle,
            json,
        } => {
            let ready = prepare(&target)?;
            let pid = ready
                .pid
                .context("idle needs the target's pid (--pid, or --start)")?;
            let tunnel_to = match ready.target.role {
                Role::Ingress => ready.via.map(|v| v.addr).context("no egress")?,
                Role::Egress => probe::udp_sink(ready.legit_from).await?,
                _ => bail!("idle is for ingress and egress relays"),
            };
            let units_per_source = match ready.target.role {
                Role::Ingress => per_source.max(1),
                _ => per_source.max(1) * flows_per_connection.max(1),
            };
            let sources =
                openrelay_abuse::addresses(ready.attack_from, count.div_ceil(units_per_source));
            let options = IdleOptions {
                count,
                sources,
                concurrency,
                flows_per_connection,
                settle: Duration::from_secs(settle),
                datagram_per_flow: false,
            };
            let unit = match ready.target.role {
                Role::Ingress => "tunnel",
                _ => "UDP flow",
            };
            println!(
                "opening {count} idle {unit}s at the {} (pid {pid})",
                ready.target.role.name()
            );
            let report = idle::measure(&ready.target, tunnel_to, &options, pid).await?;
            println!(
                "opened {} ({} failed) in {:.1} s; RSS {} MiB before, {} MiB with them open, {} MiB after closing; descriptors {} → {}",
                report.opened,
                report.failed,
                report.open_secs,
                run::mib(report.baseline.rss),
                run::mib(report.loaded.rss),
                report
                    .closed
                    .map(|c| run::mib(c.rss))
                    .unwrap_or_else(|| "?".into()),
                report.baseline.fds,
                report.loaded.fds,
            );
            println!(
                "{:.1} KiB of resident memory per idle {unit}",
                report.per_unit() / 1024.0
            );
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(())
        }
        Command::Load(args) => load(args).await,
    }
}

/// Starts each of `configs` with an open-file limit of `nofile`.
fn start_all(args: &LoadArgs, configs: &[&PathBuf]) -> anyhow::Result<Vec<(Target, Started)>> {
    let openrelay = match &args.openrelay {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no directory of this binary")?
            .join("openrelay"),
    };
    configs
        .iter()
        .map(|config| {
            let target = Target::from_config(config)?;
            let stderr = match &args.target_log {
                Some(path) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(path)?,
                ),
                None => Stdio::null(),
            };
            let started = Started::start(&openrelay, target.role, config, args.nofile, stderr)
                .with_context(|| format!("starting {}", config.display()))?;
            Ok((target, started))
        })
        .collect()
}

/// `authorization` values (RFC 9577 §2.2) of `count` fresh tokens for the
/// ingress of `config`, minted with a new issuer key this writes into the
/// config's `issuer_keys` file (RFC 9578 §4 directory), for the ingress's
/// challenge (RFC 9577 §2.1.1, scoped to its operator).
fn mint_for(config: &std::path::Path, count: usize) -> anyhow::Result<Vec<String>> {
    let RelayConfig::Ingress(ingress) = RelayConfig::load(config)? else {
        bail!("{} is not an ingress", config.display());
    };
    let admission = ingress
        .role
        .admission
        .as_ref()
        .context("no [ingress.admission]")?;
    let keys_file = admission
        .issuer_keys
        .as_ref()
        .context("no issuer_keys file in [ingress.admission]")?;
    let operator = ingress.common.operator_key.context("no operator_key")?;
    let signing = SigningKey::generate()?;
    let now = openrelay_types::unix_now();
    let epoch = EpochKey::new(signing.public().clone(), now - 10, 3600);
    std::fs::write(
        keys_file,
        IssuerDirectory::new("/token-request", &[epoch]).to_json(),
    )?;
    let challenge =
        TokenChallenge::for_ingress_operator(&admission.issuer_name, &operator.to_string());
    let digest = challenge.digest()?;
    (0..count)
        .map(|_| {
            let (request, pending) = issuance::request(signing.public(), digest)?;
            let token = pending.finalize(&signing.sign(&request)?)?;
            Ok(build_authorization(&token))
        })
        .collect()
}

/// One line on a relay's memory and descriptors before a load, under it and
/// after it closed, with the resident bytes each unit (tunnel, flow) cost.
fn print_footprint(
    role: &str,
    under: &str,
    [before, loaded]: [&monitor::Sample; 2],
    closed: Option<&monitor::Sample>,
    bytes_per_unit: f64,
    unit: &str,
) {
    println!(
        "{role} RSS {} MiB before, {} MiB with {under} (peak {} MiB), {} MiB after closing: {:.2} KiB per {unit}; descriptors {} -> {}",
        run::mib(before.rss),
        run::mib(loaded.rss),
        run::mib(loaded.hwm),
        closed
            .map(|c| run::mib(c.rss))
            .unwrap_or_else(|| "?".into()),
        bytes_per_unit / 1024.0,
        before.fds,
        loaded.fds,
    );
}

fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "MISSED" }
}

async fn load(mut args: LoadArgs) -> anyhow::Result<()> {
    args.nofile = args.nofile.or_else(target::own_nofile_hard_limit);
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    println!(
        "relays started with an open-file limit of {:?}; tunnels from {} client addresses ({} each: the ingress's per-address tunnel cap), keep-alive every {} s",
        args.nofile,
        args.tunnels.div_ceil(args.tunnels_per_source.max(1)),
        args.tunnels_per_source,
        args.keep_alive
    );
    let (ingress_limits, egress_limits) = (ServerLimits::ingress(), ServerLimits::egress(1024));
    println!(
        "relay limits (defaults, no [limits] section): ingress {} connections, {} per address; egress {} connections, {} per address; the devnet's tunnels per client address and flows per connection from its configs",
        ingress_limits.max_connections,
        ingress_limits.max_connections_per_address,
        egress_limits.max_connections,
        egress_limits.max_connections_per_address,
    );
    // 1. The ingress, its tunnels spread over the egress relays.
    let mut configs: Vec<&PathBuf> = args.egress_config.iter().collect();
    configs.push(&args.ingress_config);
    let started = start_all(&args, &configs)?;
    let Some(((ingress, ingress_proc), egresses)) = started.split_last() else {
        bail!("no relay started");
    };
    let tunnel_load = load::TunnelLoad {
        count: args.tunnels,
        sources: openrelay_abuse::addresses(
            IpAddr::V4(Ipv4Addr::new(127, 77, 0, 1)),
            args.tunnels.div_ceil(args.tunnels_per_source.max(1)),
        ),
        egresses: egresses
            .iter()
            .map(|(t, _)| Via {
                addr: t.addr,
                key: t.key,
            })
            .collect(),
        concurrency: args.concurrency,
        keep_alive: Duration::from_secs(args.keep_alive),
        hold: Duration::from_secs(args.hold),
        authorizations: Vec::new(),
        legit_from: local,
    };
    println!(
        "== ingress: {} tunnels, each with a QUIC connection to one of {} egress relays inside, held {} s",
        args.tunnels,
        egresses.len(),
        args.hold
    );
    let perf = Perf::start(args.perf.as_ref(), ingress_proc.pid(), "ingress");
    let tunnels = load::tunnels(ingress, &tunnel_load, ingress_proc.pid()).await?;
    drop(perf);
    drop(started);
    let met =
        tunnels.up_after_hold as usize >= args.tunnels && tunnels.legit_ok == tunnels.legit_tried;
    println!(
        "set up {} ({} failed{}) in {:.1} s: {:.0} tunnels/s; {} still up after {:.0} s, {} keep-alive echoes received",
        tunnels.opened,
        tunnels.failed,
        tunnels
            .first_failure
            .as_ref()
            .map(|f| format!(", first: {f}"))
            .unwrap_or_default(),
        tunnels.setup_secs,
        tunnels.setup_rate(),
        tunnels.up_after_hold,
        tunnels.hold_secs,
        tunnels.echoes,
    );
    print_footprint(
        "ingress",
        "the tunnels held",
        [&tunnels.baseline, &tunnels.held],
        tunnels.closed.as_ref(),
        tunnels.rss_per_tunnel(),
        "tunnel",
    );
    println!(
        "ingress CPU {:.2} ms per new tunnel (handshake + request); {:.0}% of a core holding them; generator {:.2} ms per tunnel",
        tunnels.cpu_per_tunnel() * 1e3,
        tunnels.hold_cpu_percent(),
        tunnels.generator_setup_ticks as f64
            / monitor::TICKS_PER_SECOND
            / tunnels.opened.max(1) as f64
            * 1e3,
    );
    println!(
        "legitimate client with them open: {}/{} got through",
        tunnels.legit_ok, tunnels.legit_tried
    );
    println!(
        "target {} concurrent tunnels: {}",
        args.tunnels,
        verdict(met)
    );
    // 2. The first egress alone, with flows to a UDP sink on loopback (the
    // devnet's egress allows 127.0.0.0/8: `dangerously_allow_networks`).
    let Some(egress_config) = args.egress_config.first() else {
        bail!("no egress config");
    };
    let started = start_all(&args, &[egress_config])?;
    let Some((egress, egress_proc)) = started.first() else {
        bail!("no egress started");
    };
    let sink = probe::udp_sink(local).await?;
    let units_per_source = 8 * args.flows_per_connection.max(1);
    let options = IdleOptions {
        count: args.flows,
        sources: openrelay_abuse::addresses(
            IpAddr::V4(Ipv4Addr::new(127, 78, 0, 1)),
            args.flows.div_ceil(units_per_source),
        ),
        concurrency: args.concurrency,
        flows_per_connection: args.flows_per_connection,
        settle: Duration::from_secs(args.hold),
        datagram_per_flow: true,
    };
    println!(
        "== egress: {} connect-udp flows to a UDP sink on loopback, {} per inner connection, one datagram each",
        args.flows, args.flows_per_connection
    );
    let perf = Perf::start(args.perf.as_ref(), egress_proc.pid(), "egress");
    let flows = idle::measure(egress, sink, &options, egress_proc.pid()).await?;
    drop(perf);
    drop(started);
    println!(
        "opened {} ({} failed) in {:.1} s: {:.0} flows/s",
        flows.opened,
        flows.failed,
        flows.open_secs,
        flows.opened as f64 / flows.open_secs.max(1e-9)
    );
    print_footprint(
        "egress",
        "the flows open",
        [&flows.baseline, &flows.loaded],
        flows.closed.as_ref(),
        flows.per_unit(),
        "flow",
    );
    println!(
        "egress CPU {:.1} µs per new flow (its share of the inner connection's handshake, request, socket, datagram)",
        flows.cpu_per_unit() * 1e6
    );
    println!(
        "target {} concurrent flows: {}",
        args.flows,
        verdict(flows.opened as usize >= args.flows)
    );
    // 3. Tunnels admitted with tokens, one each (verification and a spend
    // in the ingress's spent set, redb or Redis as its config says).
    let admitted = match &args.token_ingress_config {
        Some(config) => {
            let minting = std::time::Instant::now();
            let authorizations = mint_for(config, args.token_tunnels)?;
            println!(
                "== ingress with token admission: {} tunnels, a fresh token each (minted here in {:.1} s)",
                args.token_tunnels,
                minting.elapsed().as_secs_f64()
            );
            let mut configs: Vec<&PathBuf> = args.egress_config.iter().collect();
            configs.push(config);
            let started = start_all(&args, &configs)?;
            let Some(((ingress, ingress_proc), _)) = started.split_last() else {
                bail!("no relay started");
            };
            let gated = load::TunnelLoad {
                count: args.token_tunnels,
                authorizations,
                hold: Duration::from_secs(2),
                ..tunnel_load
            };
            let report = load::tunnels(ingress, &gated, ingress_proc.pid()).await?;
            drop(started);
            println!(
                "admitted {} ({} refused or failed{}) in {:.1} s: {:.0} tunnels/s; ingress CPU {:.2} ms per admitted tunnel ({:.2} ms without tokens)",
                report.opened,
                report.failed,
                report
                    .first_failure
                    .as_ref()
                    .map(|f| format!(", first: {f}"))
                    .unwrap_or_default(),
                report.setup_secs,
                report.setup_rate(),
                report.cpu_per_tunnel() * 1e3,
                tunnels.cpu_per_tunnel() * 1e3,
            );
            Some(report)
        }
        None => None,
    };
    if let Some(path) = &args.json {
        let both = serde_json::json!({ "tunnels": tunnels, "flows": flows, "admitted": admitted });
        std::fs::write(path, serde_json::to_string_pretty(&both)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Prints each resource reading of `attack`'s phase: memory, its peak, CPU
/// since the previous reading, descriptors.
fn printer(attack: Attack) -> impl Fn(&Timed) + Send + 'static {
    let previous: Mutex<Option<Timed>> = Mutex::new(None);
    move |timed: &Timed| {
        let Ok(mut previous) = previous.lock() else {
            return;
        };
        let cpu = previous
            .map(|p| monitor::cpu_percent(&p.sample, &timed.sample, timed.at.saturating_sub(p.at)))
            .map(|c| format!("{c:.0}%"))
            .unwrap_or_else(|| "-".into());
        println!(
            "   [{} +{:.0}s] rss {} MiB, hwm {} MiB, cpu {cpu}, fds {}",
            attack.name(),
            timed.at.as_secs_f64(),
            run::mib(timed.sample.rss),
            run::mib(timed.sample.hwm),
            timed.sample.fds
        );
        *previous = Some(*timed);
    }
}
