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
use openrelay_abuse::monitor::{self, Timed};
use openrelay_abuse::probe::{self, Prober, Via};
use openrelay_abuse::run::{self, Phase, PhaseOptions};
use openrelay_abuse::target::{self, Role, Started, Target};
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
    }
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
