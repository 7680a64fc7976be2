//! `openrelay devnet --registry`: relays publish descriptors, a registry and
//! three validators (two must sign) issue the directory, and the client takes
//! its relays from the verified directory. Traffic flows; a relay that dies
//! leaves the directory (churn); with the registry down the client keeps
//! working from what it verified.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Devnet, fetch, run_openrelay, send_signal, servers};

fn status(devnet: &Devnet) -> serde_json::Value {
    let state_dir = devnet.state_dir.display().to_string();
    let out = run_openrelay(
        &["status", "--state-dir", &state_dir, "--json"],
        Duration::from_secs(5),
    );
    assert!(out.status.success(), "{}", out.stderr);
    serde_json::from_str(out.stdout.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_runs_on_the_validator_signed_directory() {
    let devnet = Devnet::start_with_args(3, "debug", &["--registry"]);
    let servers = servers();
    let socks = devnet.socks.to_string();
    let url = format!("http://localhost:{}/bytes/300000", servers.http.port());
    fetch(
        &["--socks5-hostname", &socks],
        &url,
        Duration::from_secs(10),
    )
    .await
    .assert_ok("download on the directory's relays");

    let now = status(&devnet);
    assert!(now["directory_age_secs"].as_u64().is_some(), "{now}");
    assert!(devnet.state_dir.join("client/directory.bin").exists());
    let (ingress_operator, egress_operator) = (
        now["ingress"]["operator"].as_str().unwrap().to_owned(),
        now["egress"]["operator"].as_str().unwrap().to_owned(),
    );
    assert!(
        ingress_operator.starts_with("ed25519:"),
        "operators are keys: {now}"
    );
    assert_ne!(ingress_operator, egress_operator);

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

    // The registry goes down: the client keeps working from what it verified.
    assert!(send_signal(devnet.component_pid("registry"), "KILL"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    fetch(
        &["--socks5-hostname", &socks],
        &url,
        Duration::from_secs(10),
    )
    .await
    .assert_ok("download with the registry down");
    assert!(
        client_log().contains("directory not updated"),
        "the client noticed the registry is down"
    );
}
