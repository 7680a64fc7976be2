//! The load generator of `bench/relay-load` (issue 16 item 3) against real
//! relay processes, at small counts so it cannot rot: tunnels with traffic
//! through an ingress to two egress relays, and UDP flows at an egress. The
//! figures at full scale (10,000 tunnels, 100,000 flows) are benchmarks:
//! docs/BENCHMARKS.md, "Scale of one relay".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use openrelay_abuse::idle::{self, IdleOptions};
use openrelay_abuse::load::{self, TunnelLoad};
use openrelay_abuse::probe::{self, Via};
use openrelay_abuse::target::{Started, Target};
use openrelay_testkit::BIN;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_holds_tunnels_with_traffic_and_opens_flows() {
    let dir = tempfile::Builder::new()
        .prefix("openrelay-load-")
        .tempdir()
        .unwrap();
    let status = std::process::Command::new(BIN)
        .args(["devnet", "--operators", "2", "--no-tokens", "--export"])
        .arg(dir.path())
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "devnet --export failed");
    let logs = dir.path();
    let (egress_1, egress_1_proc) = start(&dir.path().join("egress-1.toml"), &logs.join("e1.log"));
    let (egress_2, _egress_2) = start(&dir.path().join("egress-2.toml"), &logs.join("e2.log"));
    let (ingress, ingress_proc) = start(&dir.path().join("ingress-1.toml"), &logs.join("i.log"));

    // 200 tunnels from 13 addresses (16 each, under the ingress's cap),
    // spread over both egress relays, pinging every 500 ms.
    let count = 200;
    let tunnels = TunnelLoad {
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
