//! `openrelay devnet` (with its registry, the default): relays publish descriptors, a registry and
//! three validators (two must sign) issue the directory, and the client,
//! bootstrapped by its config's relays, fetches it through its path and takes
//! its relays from it. Traffic flows; a relay that dies leaves the directory
//! (churn); with the registry down the client keeps working from what it
//! verified.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use openrelay_testkit as kit;

use std::time::{Duration, Instant};

use kit::{Devnet, Proc, fetch, run_openrelay, send_signal, servers};
use openrelay_config::ClientConfig;

/// A download through the devnet's SOCKS5 proxy that must succeed.
async fn download(socks: &str, url: &str, what: &str) {
    fetch(&["--socks5-hostname", socks], url, Duration::from_secs(10))
        .await
        .assert_ok(what);
}

/// Panics with the lines if any validator logged a warning.
fn assert_no_validator_warnings(devnet: &Devnet) {
    for i in 1..=3 {
        let log = devnet.log(&format!("validator-{i}"));
        let warnings = kit::logs::warnings(&log);
        assert!(warnings.is_empty(), "validator-{i} warned: {warnings:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_runs_on_the_validator_signed_directory() {
    // The devnet fetches its first directory within two seconds of
    // starting: the capture must be running before.
    // Other devnets on this machine use the same addresses (with other
    // ports): only this devnet's registry port counts (`sources_to`).
    let capture = kit::LoopbackCapture::start(
        "udp and dst host 127.0.4.1 and (src net 127.0.2.0/24 or src net 127.0.3.0/24)",
    );
    assert!(
        capture.is_some() || std::env::var_os("CI").is_none(),
        "tcpdump must be installed in CI"
    );
    // Paths rotate every 2 s, so the client draws many paths from the
    // directory during the test.
    let devnet = Devnet::start_with_args(3, "debug", &["--rotation-secs", "2"]);
    let servers = servers();
    let socks = devnet.socks.to_string();
    let url = format!("http://localhost:{}/bytes/300000", servers.http.port());
    download(&socks, &url, "download on the directory's relays").await;

    // The client starts on the directory its login took (a copy the issuer
    // handed over with the tokens, verified as any, issue 11 item 11) or on
    // the bootstrap relays, and fetches fresh directories through its path.
    devnet.client_refreshed_directory().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut now = devnet.status();
    while now["directory_age_secs"].as_u64().is_none() {
        assert!(
            Instant::now() < deadline,
            "no directory fetched through the relays: {now}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        now = devnet.status();
    }
    assert!(devnet.state_dir.join("client/directory.bin").exists());
    let (ingress_operator, egress_operator) = (
        now["ingress"]["operator"].as_str().unwrap().to_owned(),
        now["egress"]["operator"].as_str().unwrap().to_owned(),
    );
    assert_ne!(ingress_operator, egress_operator);

    // The directory reached the client through the relays: the registry got
    // traffic from an egress relay's address (egresses send from their own
    // address, 127.0.2.x; relays and validators publish from elsewhere).
    let registry = ClientConfig::load(&devnet.state_dir.join("configs/client.toml"))
        .unwrap()
        .directory
        .unwrap()
        .registry
        .addr;
    match capture {
        Some(capture) => {
            // The fetch is done; give tcpdump a moment to write it out.
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut sources = capture.sources_to(registry);
            while !sources.iter().any(|s| s.starts_with("127.0.2.")) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                sources = capture.sources_to(registry);
            }
            assert!(
                sources.iter().any(|s| s.starts_with("127.0.2.")),
                "no directory fetch through an egress: {sources:?}"
            );
            assert!(
                !sources.iter().any(|s| s.starts_with("127.0.3.")),
                "the client's own address reached the registry: {sources:?}"
            );
        }
        None => eprintln!("SKIPPED the capture check: tcpdump is not installed"),
    }

    // Issue 11, item 21: a devnet start is no problem for any validator:
    // none warned (before, every start warned "signature not accepted
    // status=409 no proposal to sign" for a benign race).
    assert_no_validator_warnings(&devnet);

    // Churn: an egress not on the path dies; its descriptor expires (TTL
    // 10 s) and the next directory, and so the client, no longer lists it.
    let client_log = || devnet.log("client");
    let victim = if now["egress"]["address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.2.1:")
    {
        "egress-2"
    } else {
        "egress-1"
    };
    assert!(send_signal(devnet.component_pid(victim), "KILL"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client_log().contains("directory updated relays=5") {
        assert!(
            Instant::now() < deadline,
            "the dead relay never left the directory"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Issue 16: the client refreshed with a diff from the directory it
    // held, not the whole directory.
    let update = client_log()
        .lines()
        .find(|l| l.contains("directory updated relays=5"))
        .unwrap()
        .to_owned();
    assert!(
        update.contains("from_diff=true"),
        "the update was not a diff: {update}"
    );

    // ... and the client stops choosing it: every rotation draws a fresh
    // path from the directory, and none is built through the dead egress
    // (a build through it would fail and be logged). Flows keep working.
    // A path drawn from the old list just before the update may still be
    // in its handshake with the dead egress: let it fail first (two
    // handshake timeouts, `path.handshake_timeout_ms` = 2 s; it failed
    // the check once under load).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after_update = client_log().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client_log()[after_update..]
        .matches("path established")
        .count()
        < 5
    {
        assert!(Instant::now() < deadline, "paths stopped rotating");
        download(&socks, &url, "download while paths rotate").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rotated = client_log()[after_update..].to_owned();
    assert!(
        !rotated.contains("path build failed") && !rotated.contains("relay failed"),
        "a path was tried through the relay that left the directory:\n{rotated}"
    );

    // Churn is no problem for a validator either.
    assert_no_validator_warnings(&devnet);

    // The registry goes down: the client keeps working from what it verified,
    // and says so (a fetch through the path ends at the call's 10 s timeout).
    let failures_before = client_log().matches("directory not updated").count();
    assert!(send_signal(devnet.component_pid("registry"), "KILL"));
    download(&socks, &url, "download with the registry down").await;
    let deadline = Instant::now() + Duration::from_secs(25);
    while client_log().matches("directory not updated").count() <= failures_before {
        assert!(
            Instant::now() < deadline,
            "the client never noticed the registry is down"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    download(&socks, &url, "download after the failed refresh").await;

    // A client started while the registry is down works from its cached
    // directory alone: its config lists no relays at all.
    let spare = tempfile::tempdir().unwrap();
    let mut config = ClientConfig::load(&devnet.state_dir.join("configs/client.toml")).unwrap();
    config.relays.clear();
    config.state_dir = spare.path().join("client");
    config.socks = "127.0.0.1:0".parse().unwrap();
    config.http = "127.0.0.1:0".parse().unwrap();
    config.log.file = None;
    std::fs::create_dir_all(&config.state_dir).unwrap();
    // Its state directory as it was: the cached directory, and the token
    // wallet the relays want tokens from.
    for file in ["directory.bin", "wallet.bin", "wallet.key"] {
        std::fs::copy(
            devnet.state_dir.join("client").join(file),
            config.state_dir.join(file),
        )
        .unwrap();
    }
    let config_file = spare.path().join("client.toml");
    std::fs::write(&config_file, config.to_toml().unwrap()).unwrap();
    let restarted = Proc::start(
        &["client", "--config", config_file.to_str().unwrap()],
        &spare.path().join("client.stderr"),
    );
    download(
        &restarted.ready_field("socks"),
        &url,
        "a client started from its cache while the registry is down",
    )
    .await;
    let out = run_openrelay(
        &[
            "status",
            "--state-dir",
            config.state_dir.to_str().unwrap(),
            "--json",
        ],
        Duration::from_secs(5),
    );
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(
        status["directory_age_secs"].as_u64().is_some(),
        "the restarted client does not use the cached directory: {status}"
    );
}
