//! The torture harness against real processes (issue 11 item 5): every
//! attack of `openrelay-abuse` runs briefly against an ingress, an egress,
//! the registry and the issuer started from devnet exports, and each target
//! must survive and still serve a legitimate client during and after.
//! The numbers (memory, CPU, success rates at full strength) are benchmarks:
//! docs/BENCHMARKS.md, "Abuse and resource bounds".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use openrelay_abuse::attack::{Attack, Plan};
use openrelay_abuse::idle::{self, IdleOptions};
use openrelay_abuse::load;
use openrelay_abuse::probe::{self, Prober, Via};
use openrelay_abuse::run::{self, Phase, PhaseOptions};
use openrelay_abuse::target::{Role, Started, Target};
use openrelay_testkit as kit;
use openrelay_testkit::BIN;

fn export(dir: &Path, extra: &[&str]) {
    let status = std::process::Command::new(BIN)
        .args(["devnet", "--operators", "2", "--export"])
        .arg(dir)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(extra)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "devnet --export failed");
}

fn start(config: &Path, log: &Path) -> (Target, Started) {
    let target = Target::from_config(config).unwrap();
    let started = Started::start(
        BIN.path(),
        target.role,
        config,
        None,
        Stdio::from(std::fs::File::create(log).unwrap()),
    )
    .unwrap();
    (target, started)
}

/// Every attack for a second against `target`; the phases.
async fn attack_all(
    target: Target,
    pid: u32,
    via: Option<Via>,
    attack_from: Ipv4Addr,
) -> Vec<Phase> {
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let echo = probe::tcp_echo(local).await.unwrap();
    let sink = probe::udp_sink(local).await.unwrap();
    let tunnel_to = match target.role {
        Role::Ingress => via.map(|v| v.addr),
        _ => Some(sink),
    };
    let prober = Prober::new(target.clone(), local, via, Some(echo));
    // The target serves before it is attacked.
    prober.probe().await.unwrap();
    let options = PhaseOptions {
        duration: Duration::from_millis(1500),
        probe_every: Duration::from_millis(200),
        probes_after: 3,
        pid: Some(pid),
        sample_every: Duration::from_millis(500),
    };
    let mut phases = Vec::new();
    for attack in Attack::ALL {
        let plan = Plan {
            target: target.clone(),
            sources: openrelay_abuse::addresses(IpAddr::V4(attack_from), 4),
            connections: 200,
            concurrency: 2,
            streams_per_connection: 4,
            max_bytes: 16 << 20,
            tunnel_to,
        };
        phases.push(run::phase(attack, plan, &prober, &options, |_| {}).await);
    }
    phases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_leaves_every_target_alive_and_serving() {
    let dir = tempfile::Builder::new()
        .prefix("openrelay-abuse-")
        .tempdir()
        .unwrap();
    // Relays and the registry without tokens (the legitimate client has
    // none); the issuer from an export with them.
    let open = dir.path().join("open");
    let tokens = dir.path().join("tokens");
    export(&open, &["--no-tokens"]);
    export(&tokens, &[]);
    let logs = dir.path();
    let (egress_2, _egress_2) = start(&open.join("egress-2.toml"), &logs.join("egress-2.log"));
    let (egress, egress_proc) = start(&open.join("egress-1.toml"), &logs.join("egress-1.log"));
    let (ingress, ingress_proc) = start(&open.join("ingress-1.toml"), &logs.join("ingress-1.log"));
    let (registry, registry_proc) = start(&open.join("registry.toml"), &logs.join("registry.log"));
    let (issuer, issuer_proc) = start(&tokens.join("issuer.toml"), &logs.join("issuer.log"));
    // The ingress's probes tunnel to the egress that is not attacked.
    let via = Via {
        addr: egress_2.addr,
        key: egress_2.key,
    };
    let (ingress_phases, egress_phases, registry_phases, issuer_phases) = tokio::join!(
        attack_all(
            ingress,
            ingress_proc.pid(),
            Some(via),
            Ipv4Addr::new(127, 66, 1, 1)
        ),
        attack_all(
            egress,
            egress_proc.pid(),
            None,
            Ipv4Addr::new(127, 66, 2, 1)
        ),
        attack_all(
            registry,
            registry_proc.pid(),
            None,
            Ipv4Addr::new(127, 66, 3, 1)
        ),
        attack_all(
            issuer,
            issuer_proc.pid(),
            None,
            Ipv4Addr::new(127, 66, 4, 1)
        ),
    );
    let mut failures = Vec::new();
    for (name, phases) in [
        ("ingress", &ingress_phases),
        ("egress", &egress_phases),
        ("registry", &registry_phases),
        ("issuer", &issuer_phases),
    ] {
        for phase in phases {
            let ok = phase.survived == Some(true) && phase.after.all() && phase.during.ok > 0;
            if !ok {
                failures.push(format!(
                    "{name} under {}: survived {:?}, legitimate {} during, {} after ({:?})",
                    phase.attack.name(),
                    phase.survived,
                    phase.during,
                    phase.after,
                    phase.first_failure
                ));
            }
        }
    }
    // Bad input never panics (a panicking request task leaves the process
    // up, so survival alone would not show it).
    for name in ["ingress-1", "egress-1", "egress-2", "registry", "issuer"] {
        let log = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default();
        if let Some(line) = kit::logs::panics(&log).first() {
            failures.push(format!("{name} panicked: {line}"));
        }
    }
    if !failures.is_empty() {
        for name in ["ingress-1", "egress-1", "registry", "issuer"] {
            let log = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            eprintln!(
                "--- {name}.log (last lines, newest first)\n{}",
                tail.join("\n")
            );
        }
        for (name, phases) in [
            ("ingress", &ingress_phases),
            ("egress", &egress_phases),
            ("registry", &registry_phases),
            ("issuer", &issuer_phases),
        ] {
            eprintln!("{}", run::table(name, phases));
        }
        panic!("{}", failures.join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// The load generator of `bench/relay-load` (issue 16 item 3) at small
/// counts so it cannot rot; the figures at full scale (10,000 tunnels,
/// 100,000 flows) are docs/BENCHMARKS.md, "Scale of one relay".
async fn the_load_generator_holds_tunnels_with_traffic_and_opens_flows() {
    let dir = tempfile::Builder::new()
        .prefix("openrelay-load-")
        .tempdir()
        .unwrap();
    export(dir.path(), &["--no-tokens"]);
    let logs = dir.path();
    let (egress_1, egress_1_proc) = start(&dir.path().join("egress-1.toml"), &logs.join("e1.log"));
    let (egress_2, _egress_2) = start(&dir.path().join("egress-2.toml"), &logs.join("e2.log"));
    let (ingress, ingress_proc) = start(&dir.path().join("ingress-1.toml"), &logs.join("i.log"));

    // 200 tunnels from 13 addresses (16 each, under the ingress's cap),
    // spread over both egress relays, pinging every 500 ms.
    let count = 200;
    let tunnels = load::TunnelLoad {
        count,
        sources: openrelay_abuse::addresses(IpAddr::V4(Ipv4Addr::new(127, 79, 0, 1)), 13),
        egresses: [&egress_1, &egress_2]
            .map(|e| Via {
                addr: e.addr,
                key: e.key,
            })
            .to_vec(),
        concurrency: 16,
        keep_alive: Duration::from_millis(500),
        hold: Duration::from_secs(3),
        authorizations: Vec::new(),
        legit_from: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let report = load::tunnels(&ingress, &tunnels, ingress_proc.pid())
        .await
        .unwrap();
    assert_eq!(
        (report.opened, report.failed),
        (count as u64, 0),
        "{:?}",
        report.first_failure
    );
    assert_eq!(
        report.up_after_hold, count as u64,
        "tunnels dropped while held"
    );
    // Every tunnel's keep-alive crossed the ingress and was answered
    // (at least a few per tunnel in 3 s at 500 ms).
    assert!(
        report.echoes >= 2 * count as u64,
        "only {} echoes",
        report.echoes
    );
    assert_eq!(report.legit_ok, report.legit_tried);
    assert!(report.held.rss > report.baseline.rss);
    assert!(report.set_up.cpu_ticks > report.baseline.cpu_ticks);

    // 2,000 flows at an egress, 1,000 per inner connection, each with a
    // socket of its own at the egress and a datagram to the sink.
    let sink = probe::udp_sink(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    let flows = 2000;
    let options = IdleOptions {
        count: flows,
        sources: openrelay_abuse::addresses(IpAddr::V4(Ipv4Addr::new(127, 79, 1, 1)), 2),
        concurrency: 2,
        flows_per_connection: 1000,
        settle: Duration::from_secs(1),
        datagram_per_flow: true,
    };
    let report = idle::measure(&egress_1, sink, &options, egress_1_proc.pid())
        .await
        .unwrap();
    assert_eq!((report.opened, report.failed), (flows as u64, 0));
    assert!(
        report.loaded.fds >= flows as u64,
        "a socket per flow: {} -> {} descriptors",
        report.baseline.fds,
        report.loaded.fds
    );
    // Closing the inner connections ends the flows and frees their sockets.
    let closed = report.closed.unwrap();
    assert!(
        closed.fds < report.baseline.fds + flows as u64 / 10,
        "sockets left open after the flows closed: {} -> {}",
        report.baseline.fds,
        closed.fds
    );
}
