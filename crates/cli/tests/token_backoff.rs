//! A client refused for lack of an access token backs off instead of
//! rebuilding paths in a tight loop (issue 11, item 21): against a
//! token-gated devnet, a client with an empty wallet that apps keep asking
//! for connections makes a handful of build attempts and warnings in 10 s,
//! `openrelay status` says why there is no path, and the client recovers by
//! itself once its wallet gains tokens (`openrelay account register`).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use openrelay_testkit as kit;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kit::{Devnet, lines_with, run_openrelay, servers, signal_group, socks_connect};
use openrelay_config::ClientConfig;
use openrelay_wire::target::Target;

/// How long apps keep asking.
const PRESSURE: Duration = Duration::from_secs(10);

/// A loopback TCP address free a moment ago, for the client's SOCKS
/// listener (its `ready` line, which names it, comes only once a path works).
fn free_tcp_port() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_tokens_backs_off_says_why_and_recovers_when_tokens_arrive() {
    let devnet = Devnet::start_with_args(2, "info", &["--no-registry"]);
    let spare = tempfile::tempdir().unwrap();
    let mut client = ClientConfig::load(&devnet.state_dir.join("configs/client.toml")).unwrap();
    assert!(client.account.is_some(), "the devnet is token-gated");
    client.state_dir = spare.path().join("client");
    client.socks = free_tcp_port();
    client.http = "127.0.0.1:0".parse().unwrap();
    let log = spare.path().join("client.log");
    client.log.file = Some(log.clone());
    client.log.level = "debug".into();
    let config = spare.path().join("client.toml");
    std::fs::write(&config, client.to_toml().unwrap()).unwrap();
    let config = config.to_str().unwrap().to_owned();

    // The client prints `ready` only once a path works: read its stdout on
    // a thread; its SOCKS port is taken from its log meanwhile.
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(kit::BIN)
            .args(["client", "--config", &config])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap()
    };
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = ready_tx.send(line);
        }
    });
    let _kill = KillGroup(child.id());
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let socks = client.socks;
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(socks).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the client did not start:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Apps ask for a connection ten times a second for 10 s.
    let destination = Target::from_socket_addr(servers().http);
    let started = Instant::now();
    let (mut refused, mut granted) = (0, 0);
    while started.elapsed() < PRESSURE {
        let (_, code) = socks_connect(socks, &destination).await;
        match code {
            0 => granted += 1,
            _ => refused += 1,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = read_log();
    let attempts = lines_with(&text, "path build failed").len();
    let warnings: Vec<String> = kit::events(&text)
        .into_iter()
        .filter(|(level, _)| level == "WARN")
        .map(|(_, event)| event)
        .collect();
    eprintln!(
        "{refused} connections refused; {attempts} build attempts, {} warnings in {PRESSURE:?}",
        warnings.len()
    );
    assert!(
        granted == 0 && refused >= 10,
        "no path without tokens: {refused} refused, {granted} granted"
    );
    assert!(
        attempts <= 6,
        "{attempts} build attempts in {PRESSURE:?}:\n{}",
        lines_with(&text, "path build failed").join("\n")
    );
    assert!(
        warnings.len() <= 3,
        "{} warnings in {PRESSURE:?}:\n{}",
        warnings.len(),
        warnings.join("\n")
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("requires an access token")),
        "the refusal is said once, with what to do: {warnings:?}"
    );

    // `openrelay status` says why there is no path.
    let state_dir = client.state_dir.display().to_string();
    let out = run_openrelay(
        &["status", "--state-dir", &state_dir, "--json"],
        Duration::from_secs(5),
    );
    assert!(out.status.success(), "{}", out.stderr);
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["state"], "disconnected", "{status}");
    let reason = status["no_path"].as_str().unwrap_or_default();
    assert!(reason.contains("access token"), "{status}");
    let out = run_openrelay(
        &["status", "--state-dir", &state_dir],
        Duration::from_secs(5),
    );
    assert!(
        out.stdout.contains("no path:") && out.stdout.contains("access token"),
        "{}",
        out.stdout
    );

    // Tokens arrive: the client recovers without waiting out its back-off.
    let mut register = Command::new(kit::BIN)
        .args([
            "account",
            "register",
            "--config",
            &config,
            "--username",
            "backoff-test",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = register.stdin.take().unwrap();
        stdin.write_all(b"correct horse battery staple\n").unwrap();
    }
    let registered = register.wait_with_output().unwrap();
    assert!(
        registered.status.success(),
        "{}",
        String::from_utf8_lossy(&registered.stderr)
    );
    let gained = Instant::now();
    let deadline = gained + Duration::from_secs(10);
    loop {
        let (_, code) = socks_connect(socks, &destination).await;
        if code == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after tokens arrived:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("recovered {:?} after tokens arrived", gained.elapsed());
    let ready = ready_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(ready.starts_with("ready"), "{ready}");
}

/// Kills the client's process group when the test ends, also on failure.
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        signal_group(self.0, "KILL");
    }
}
