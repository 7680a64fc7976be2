//! `openrelay devnet` is token-gated end to end: the devnet's issuer gave
//! its client an account, the ingresses admit only with an access token,
//! the egresses charge payment tokens and settle them at the issuer, where
//! the operator's ledger shows them; a client without an account is told
//! what to do instead of hanging.
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kit::{Devnet, LoopbackCapture, Proc, fetch, run_openrelay, servers, signal_group};
use openrelay_config::{AccountConfig, ClientConfig, IssuerConfig, RelayConfig};
use openrelay_types::RelayRole;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_is_token_gated_paid_and_settled() {
    let devnet = Devnet::start(2);
    let status = devnet.status();
    let balance = status["token_balance"].as_u64().unwrap();
    assert!(balance > 0, "the devnet's client has tokens: {status}");

    let url = format!("http://localhost:{}/bytes/200000", servers().http.port());
    fetch(
        &["--socks5-hostname", &devnet.socks.to_string()],
        &url,
        Duration::from_secs(10),
    )
    .await
    .assert_ok("a download through token-gated, paid relays");
    // The egress on the path settles what it collected (every 5 s on a
    // devnet); the issuer credits its operator.
    let (_, egress) = devnet.current_path();
    let config = devnet.state_dir.join(format!("configs/{egress}.toml"));
    let config = config.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ledger = loop {
        let out = run_openrelay(
            &["ledger", "--config", config, "--json"],
            Duration::from_secs(10),
        );
        // Until the issuer holds a directory that vouches for the egress,
        // it answers 503 "retry later" (it takes the registry's word only).
        if !out.status.success() && out.stderr.contains("retry later") && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        assert!(out.status.success(), "{}", out.stderr);
        let ledger: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
        if ledger["issuer"]["tokens_redeemed"].as_u64() >= Some(1) || Instant::now() > deadline {
            break ledger;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        ledger["issuer"]["tokens_redeemed"].as_u64() >= Some(1),
        "no token redeemed for the egress's operator: {ledger}"
    );
    assert_eq!(
        ledger["relay"],
        serde_json::Value::Null,
        "the running relay holds its ledger"
    );

    // A client without an account gets no tunnel, and says why.
    let spare = tempfile::tempdir().unwrap();
    let mut client = ClientConfig::load(&devnet.state_dir.join("configs/client.toml")).unwrap();
    client.account = None;
    client.state_dir = spare.path().join("client");
    client.socks = "127.0.0.1:0".parse().unwrap();
    client.http = "127.0.0.1:0".parse().unwrap();
    client.log.file = None;
    let file = spare.path().join("client.toml");
    std::fs::write(&file, client.to_toml().unwrap()).unwrap();
    let stderr = spare.path().join("stderr");
    let mut child = std::process::Command::new(kit::BIN)
        .args(["client", "--config", file.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let said = loop {
        let said = std::fs::read_to_string(&stderr).unwrap_or_default();
        if said.contains("requires an access token") || Instant::now() > deadline {
            break said;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    signal_group(child.id(), "KILL");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        said.contains("requires an access token") && said.contains("openrelay account login"),
        "{said}"
    );
}

/// What the client logs for each refill (with the refill path's relays).
const REFILL_LINE: &str = "wallet topped up through a refill path";

/// A client config of its own next to the devnet whose configs are in
/// `configs`: its state and log in `dir`, its QUIC socket on `bind`, its
/// proxies on free ports, its account settings changed by `account`.
fn own_client(
    configs: &Path,
    dir: &Path,
    bind: &str,
    account: impl FnOnce(&mut AccountConfig),
) -> PathBuf {
    let mut client = ClientConfig::load(&configs.join("client.toml")).unwrap();
    client.state_dir = dir.join("client");
    client.socks = "127.0.0.1:0".parse().unwrap();
    client.http = "127.0.0.1:0".parse().unwrap();
    client.bind = Some(bind.parse().unwrap());
    client.log.level = "debug".into();
    client.log.file = Some(dir.join("client.log"));
    account(client.account.as_mut().unwrap());
    let file = dir.join("client.toml");
    std::fs::write(&file, client.to_toml().unwrap()).unwrap();
    file
}

/// `openrelay account <action...>` for `config` and `username`, which must
/// succeed; what it printed.
fn account(config: &Path, action: &[&str], username: &str) -> String {
    let config = config.to_str().unwrap();
    let mut args = action.to_vec();
    args.extend([
        "--password-stdin",
        "--username",
        username,
        "--config",
        config,
    ]);
    let (ok, said) = kit::account(&args, "a long test password");
    assert!(ok, "account {action:?}: {said}");
    said
}

/// `openrelay account register` (a first login goes straight to the
/// issuer: the new account has no tokens for a path yet).
fn register(config: &Path, username: &str) {
    let said = account(config, &["register"], username);
    assert!(said.contains("directly"), "{said}");
}

/// A client of its own that refills all the time: every refill path spends
/// an access token, which (with low_water = batch) asks for the next refill,
/// 1 to 2 s later. Registered (directly), then a capture of what reaches
/// the issuer at `issuer` starts, then the client; its config file is
/// returned with them.
fn refilling_client(
    configs: &Path,
    dir: &Path,
    bind: &str,
    username: &str,
    issuer: SocketAddr,
) -> (PathBuf, LoopbackCapture, Proc) {
    let config = own_client(configs, dir, bind, |account| {
        account.batch = 2;
        account.low_water = 2;
        account.refill_delay_min_secs = 1;
        account.refill_delay_max_secs = 2;
    });
    register(&config, username);
    let capture = LoopbackCapture::start(&format!(
        "udp and dst host {} and dst port {}",
        issuer.ip(),
        issuer.port()
    ))
    .expect("tcpdump must be installed");
    let client = Proc::start(
        &["client", "--config", config.to_str().unwrap()],
        &dir.join("client.stderr"),
    );
    (config, capture, client)
}

/// The issuer's address in the devnet whose configs are in `configs`.
fn issuer_address(configs: &Path) -> SocketAddr {
    IssuerConfig::load(&configs.join("issuer.toml"))
        .unwrap()
        .listen
}

/// The address (without port) of a tcpdump `address.port` source.
fn ip_of(source: &str) -> &str {
    source.rsplit_once('.').map_or(source, |(ip, _)| ip)
}

/// Waits until `log` holds at least `count` lines with `needle`, at most
/// `limit`; returns those lines.
fn wait_for_lines(log: &Path, needle: &str, count: usize, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Issue 11 item 11: refills do not ride the browsing path. The client
/// browses on one path (its egress seen by the destination); over several
/// refills, the issuer only ever hears from other egresses (tcpdump on
/// loopback), and each refill's path, as the client logs it, has an egress
/// of its own and an ingress of another operator than the browsing path's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refills_take_a_path_of_their_own_never_the_browsing_egress() {
    let devnet = Devnet::start(3);
    let configs = devnet.state_dir.join("configs");
    let issuer = issuer_address(&configs);
    let dir = tempfile::tempdir().unwrap();
    let (config, capture, client) =
        refilling_client(&configs, dir.path(), "127.0.3.2", "refill-test", issuer);
    let socks = client.ready_field("socks");

    // The browsing path's egress, as the destination sees it.
    let url = format!("http://127.0.0.1:{}/ip", servers().http.port());
    let seen = fetch(
        &["--socks5-hostname", &socks],
        &url,
        Duration::from_secs(10),
    )
    .await;
    seen.assert_ok("browsing through the own client");
    let browsing_ip = String::from_utf8(seen.body).unwrap();
    assert!(browsing_ip.starts_with("127.0.2."), "{browsing_ip}");

    let log = dir.path().join("client.log");
    let refills = wait_for_lines(&log, REFILL_LINE, 3, Duration::from_secs(60));
    assert!(
        refills.len() >= 3,
        "only {} refills: {refills:?}",
        refills.len()
    );
    // Still browsing on the same path.
    let again = fetch(
        &["--socks5-hostname", &socks],
        &url,
        Duration::from_secs(10),
    )
    .await;
    again.assert_ok("browsing after the refills");
    assert_eq!(String::from_utf8(again.body).unwrap(), browsing_ip);

    let sources = capture.sources();
    assert!(!sources.is_empty(), "no refill reached the issuer");
    assert!(
        sources.iter().all(|s| ip_of(s) != browsing_ip),
        "the issuer saw the browsing egress {browsing_ip}: {sources:?}"
    );
    // The client's own account of it: each refill path's egress is not the
    // browsing one, nor its ingress's operator the browsing ingress's (three
    // operators leave room for both).
    let status = own_status(dir.path());
    let browsing_egress = status["egress"]["name"].as_str().unwrap();
    let browsing_operator = status["ingress"]["operator"].as_str().unwrap();
    let field = |line: &str, key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            .to_owned()
    };
    let refills = wait_for_lines(&log, REFILL_LINE, 0, Duration::ZERO);
    for line in &refills {
        assert_ne!(field(line, "egress"), browsing_egress, "{line}");
        assert_ne!(field(line, "ingress_operator"), browsing_operator, "{line}");
    }
    // A login while the wallet holds tokens goes through the relays too,
    // apart from the running client's path; `--direct` goes directly.
    let said = account(&config, &["login"], "refill-test");
    assert!(said.contains("through the relays"), "{said}");
    let login_egress = said
        .split("egress ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap();
    assert_ne!(login_egress, browsing_egress, "{said}");
    let said = account(&config, &["login", "--direct"], "refill-test");
    assert!(said.contains("directly"), "{said}");
    let sources = capture.sources();
    assert!(
        sources.iter().all(|s| ip_of(s) != browsing_ip),
        "the issuer saw the browsing egress {browsing_ip}: {sources:?}"
    );

    // Each refill had a fresh path, so its own source port at the egress
    // (the egresses' settlements come from 127.0.0.1).
    let distinct: std::collections::BTreeSet<&str> = sources
        .iter()
        .filter(|s| s.starts_with("127.0.2."))
        .map(String::as_str)
        .collect();
    assert!(
        distinct.len() >= refills.len(),
        "{} refills from {} sources: {distinct:?}",
        refills.len(),
        distinct.len()
    );
}

/// `openrelay status --json` of the client whose state is in `dir/client`.
fn own_status(dir: &Path) -> serde_json::Value {
    let out = run_openrelay(
        &[
            "status",
            "--state-dir",
            dir.join("client").to_str().unwrap(),
            "--json",
        ],
        Duration::from_secs(5),
    );
    assert!(out.status.success(), "{}", out.stderr);
    serde_json::from_str(out.stdout.trim()).unwrap()
}

/// What the client logs when a refill cannot reach the issuer.
const REFILL_FAILED: &str = "wallet not topped up";

/// Issue 11 item 10: refills never go direct. In a devnet (exported, run
/// component by component) whose egresses refuse the issuer's port, the
/// client's refills fail, it says why, and nothing reaches the issuer at
/// all: no packet from the client's address (tcpdump on loopback), nor from
/// any other (the egresses do not settle here, so nothing else talks to it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refills_never_go_direct_when_the_relays_refuse_the_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let (state, configs) = (dir.path().join("state"), dir.path().join("configs"));
    let export = run_openrelay(
        &[
            "devnet",
            "--operators",
            "2",
            "--no-registry",
            "--log-level",
            "debug",
            "--state-dir",
            state.to_str().unwrap(),
            "--log-dir",
            dir.path().join("logs").to_str().unwrap(),
            "--export",
            configs.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert!(export.status.success(), "{}", export.stderr);
    // Each ingress names its operator's key, as `openrelay key` prints it.
    let printed = run_openrelay(
        &[
            "key",
            "--operator-key-file",
            state.join("operator-1/operator.key").to_str().unwrap(),
        ],
        Duration::from_secs(10),
    );
    let ingress = RelayConfig::load(&configs.join("ingress-1.toml")).unwrap();
    assert_eq!(
        printed.stdout.trim(),
        ingress.common().operator_key.unwrap().to_string()
    );
    let issuer = issuer_address(&configs);
    let mut components = Vec::new();
    let stderr = |name: &str| dir.path().join(format!("{name}.stderr"));
    let issuer_config = configs.join("issuer.toml");
    components.push(Proc::start(
        &["issuer", "--config", issuer_config.to_str().unwrap()],
        &stderr("issuer"),
    ));
    // The relays read the issuer's keys from the file it writes, so the
    // only traffic to the issuer the capture could see is the client's.
    let key_file = IssuerConfig::load(&issuer_config)
        .unwrap()
        .state_dir
        .join("issuer-directory.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !key_file.exists() {
        assert!(Instant::now() < deadline, "the issuer wrote no keys");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 1..=2 {
        for role in [RelayRole::Egress, RelayRole::Ingress] {
            let name = format!("{role}-{i}");
            let file = configs.join(format!("{name}.toml"));
            let mut relay = RelayConfig::load(&file).unwrap();
            match &mut relay {
                RelayConfig::Ingress(ingress) => {
                    if let Some(admission) = ingress.role.admission.as_mut() {
                        admission.issuer_keys = Some(key_file.clone());
                    }
                }
                RelayConfig::Egress(egress) => {
                    // The egress refuses the issuer's port as a destination.
                    egress.role.deny_ports = Some(vec![25, issuer.port()]);
                    if let Some(payment) = egress.role.payment.as_mut() {
                        payment.settle_at = None;
                        payment.tokens.issuer_keys = Some(key_file.clone());
                    }
                }
            }
            std::fs::write(&file, relay.to_toml().unwrap()).unwrap();
            components.push(Proc::start(
                &["relay", "--config", file.to_str().unwrap()],
                &stderr(&name),
            ));
        }
    }
    let (_, capture, client) =
        refilling_client(&configs, dir.path(), "127.0.3.1", "direct-test", issuer);
    let socks = client.ready_field("socks");
    // Browsing works (the login's tokens pay for it); a refill is due at
    // once (low_water = batch) and fails.
    let url = format!("http://127.0.0.1:{}/hello", servers().http.port());
    fetch(
        &["--socks5-hostname", &socks],
        &url,
        Duration::from_secs(10),
    )
    .await
    .assert_ok("browsing while refills fail");
    let log = dir.path().join("client.log");
    let failed = wait_for_lines(&log, REFILL_FAILED, 1, Duration::from_secs(30));
    assert!(
        !failed.is_empty(),
        "the client did not say why refills fail"
    );
    assert!(
        failed[0].contains("did not reach the issuer") && failed[0].contains("never directly"),
        "{}",
        failed[0]
    );
    // Time for a fallback to show up on the wire, were there one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sources = capture.sources();
    assert!(
        sources.is_empty(),
        "packets reached the issuer although every egress refuses it: {sources:?}"
    );
    drop(client);
    drop(components);
}
