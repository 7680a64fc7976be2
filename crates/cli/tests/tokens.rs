//! `openrelay devnet` is token-gated end to end: the devnet's issuer gave
//! its client an account, the ingresses admit only with an access token,
//! the egresses charge payment tokens and settle them at the issuer, where
//! the operator's ledger shows them; a client without an account is told
//! what to do instead of hanging.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Devnet, fetch, run_openrelay, servers, signal_group};
use openrelay_config::ClientConfig;

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
    let mut child = std::process::Command::new(common::BIN)
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
