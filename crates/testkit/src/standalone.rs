//! One openrelay server process (a relay or the registry) started alone from
//! a config the test writes, with its log file and its memory readable: the
//! target of the resource-limit and log-privacy tests.

#![cfg(feature = "harness")]

use std::net::SocketAddr;
use std::path::PathBuf;

use openrelay_config::RelayEntry;
use openrelay_types::KeyPin;

use crate::process::Proc;

/// A running server process; killed when dropped.
#[derive(Debug)]
pub struct Standalone {
    /// The process.
    pub proc: Proc,
    /// Its QUIC address.
    pub addr: SocketAddr,
    /// Its key.
    pub pin: KeyPin,
    /// Its log file.
    pub log: PathBuf,
    dir: tempfile::TempDir,
}

impl Standalone {
    /// Its resident memory (VmRSS), in bytes.
    pub fn rss(&self) -> u64 {
        openrelay_transport::testing::resident_memory(self.proc.pid()).expect("the server runs")
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

impl Standalone {
    /// This relay as a client's `[[relay]]` entry of `role`, its operator
    /// named `operator` (no operator key: no access tokens).
    pub fn entry(
        &self,
        name: &str,
        role: openrelay_types::RelayRole,
        operator: &str,
    ) -> RelayEntry {
        RelayEntry {
            name: name.to_owned(),
            role,
            operator: operator.to_owned(),
            operator_key: None,
            addr: self.addr,
            key: self.pin,
            country: None,
            city: None,
            network: None,
            bandwidth_bps: None,
        }
    }
}

/// A `[throttle_for_tests]` section: `bps` for everyone but
/// `exempt_sources`.
pub fn throttle_for_tests(bps: u64, exempt_sources: &[std::net::IpAddr]) -> String {
    let exempt: Vec<String> = exempt_sources
        .iter()
        .map(|ip| format!("\"{ip}\""))
        .collect();
    format!(
        "[throttle_for_tests]\nbps = {bps}\nexempt_sources = [{}]\n",
        exempt.join(", ")
    )
}

/// An egress that may reach loopback (a prober's sink on this machine);
/// `extra` (sections only) is appended.
pub fn loopback_egress(extra: &str) -> Standalone {
    relay(
        "egress",
        &format!("[egress]\ndangerously_allow_networks = [\"127.0.0.0/8\"]\n{extra}"),
        "info",
    )
}

/// An ingress forwarding to `egress` only; `extra` (sections only) is
/// appended.
pub fn ingress_to(egress: SocketAddr, extra: &str) -> Standalone {
    relay(
        "ingress",
        &format!("[ingress]\negress_relays = [\"{egress}\"]\n{extra}"),
        "info",
    )
}

/// A relay of `role` (`ingress` or `egress`) on 127.0.0.1 logging at
/// `level`; `extra` (sections only, such as `[limits]` or `[ingress]`) is
/// appended to its config. An ingress without an `[ingress]` section in `extra`
/// forwards to 127.0.0.1:9 only.
pub fn relay(role: &str, extra: &str, level: &str) -> Standalone {
    relay_under(&[], role, extra, level)
}

/// As [`relay`], started under `wrapper` (e.g. `prlimit ... --`).
pub fn relay_under(wrapper: &[&str], role: &str, extra: &str, level: &str) -> Standalone {
    let ingress = if role == "ingress" && !extra.contains("[ingress]") {
        "[ingress]\negress_relays = [\"127.0.0.1:9\"]\n"
    } else {
        ""
    };
    start(
        wrapper,
        "relay",
        &format!(
            "role = \"{role}\"\noperator = \"test\"\nlisten = \"127.0.0.1:0\"\nworker_threads = 1\n\
             {extra}\n{ingress}"
        ),
        level,
    )
}

/// A registry (trusting one validator) on 127.0.0.1; `extra` (sections
/// only) is appended.
pub fn registry(extra: &str, level: &str) -> Standalone {
    start(
        &[],
        "registry",
        &format!(
            "listen = \"127.0.0.1:0\"\nvalidators = [\"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"]\n\
             threshold = 1\n{extra}\n"
        ),
        level,
    )
}

fn start(wrapper: &[&str], command: &str, config: &str, level: &str) -> Standalone {
    let dir = tempfile::Builder::new()
        .prefix("openrelay-standalone-")
        .tempdir()
        .unwrap();
    let state = dir.path().join("state");
    let log = dir.path().join(format!("{command}.log"));
    // `config` starts with top-level keys and may end with sections, so
    // `state_dir` goes first and `[log]` last.
    let path = dir.path().join(format!("{command}.toml"));
    std::fs::write(
        &path,
        format!("state_dir = {state:?}\n{config}\n[log]\nlevel = \"{level}\"\nfile = {log:?}\n"),
    )
    .unwrap();
    let proc = Proc::start_under(
        wrapper,
        &[command, "--config", path.to_str().unwrap()],
        &dir.path().join("stderr"),
    );
    let addr = proc.ready_field("listen").parse().unwrap();
    let pin = proc.ready_field("key").parse().unwrap();
    Standalone {
        proc,
        addr,
        pin,
        log,
        dir,
    }
}

/// An HTTP/3 client connection (our own, guarded) to `addr`, its driver
/// running; waits for the server's SETTINGS.
pub async fn h3_client(
    addr: SocketAddr,
    pin: KeyPin,
    mtu: u16,
) -> (
    quinn::Endpoint,
    quinn::Connection,
    openrelay_transport::h3guard::ClientRequests,
) {
    use openrelay_transport::{endpoint, h3guard, h3util, udp};
    use std::time::Duration;
    let quic = udp::endpoint(udp::local_for(None, addr), None).unwrap();
    let tuning = endpoint::Tuning::client(Duration::from_secs(10), Duration::from_secs(1), mtu);
    let config = endpoint::client_config(pin, &tuning).unwrap();
    let connection = quic
        .connect_with(config, addr, &addr.ip().to_string())
        .unwrap()
        .await
        .unwrap();
    let (mut driver, requests) = h3guard::client(&connection).await.unwrap();
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    assert!(h3util::wait_for_datagram_support(&requests, Duration::from_secs(5)).await);
    (quic, connection, requests)
}
