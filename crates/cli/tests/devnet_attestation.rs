//! `openrelay devnet --chain --attestation require` (issue 15): every relay
//! publishes evidence from the devnet's insecure simulated TEE, the devnet
//! proposes the binary it runs as a release, and the validators vote on it
//! on chain. The attacks:
//!
//! - egress-3 runs a modified build (`--unapproved-build-relay-for-tests`):
//!   its simulated TEE reports a measurement no vote approved, and the
//!   `require` client never uses it; when the attested egresses are gone
//!   it fails closed, naming egress-3's refusal, instead of falling back.
//! - validator-4 votes against the release (`--dissenting-validator-for-tests`):
//!   3 of 4 equal stakes (75 %) approve it anyway, and validator-4 loses
//!   its stake share to the majority.
//!
//! Needs anvil (`npm ci --prefix contracts`). Takes about two minutes.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use openrelay_testkit as kit;

use std::time::Duration;

use alloy::primitives::Address;
use kit::{Devnet, fetch, send_signal, servers};
use openrelay_chain::operator::{DEFAULT_RPC_TIMEOUT, Registry, load_key_file};

const CHAIN_ID: u64 = 31_337;

/// A field `key=value` of a devnet stdout line starting with `prefix`.
fn line_field(devnet: &Devnet, prefix: &str, key: &str) -> String {
    let line = devnet.later_line(prefix, Duration::from_secs(10));
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_require_client_uses_only_relays_of_the_approved_release_and_fails_closed() {
    let devnet = Devnet::start_with_args(
        3,
        "debug",
        &[
            "--chain",
            "--validators",
            "4",
            "--attestation",
            "require",
            "--unapproved-build-relay-for-tests",
            "egress-3",
            "--dissenting-validator-for-tests",
        ],
    );
    let release = line_field(&devnet, "release ", "id");
    let port = servers().http.port();
    let socks = devnet.socks.to_string();
    let proxy = ["--socks5-hostname", socks.as_str()];

    // The devnet started the client once the release was approved: the
    // path works, and both hops are attested to run that release.
    fetch(
        &proxy,
        &format!("http://localhost:{port}/hello"),
        Duration::from_secs(30),
    )
    .await
    .assert_ok("through attested relays");
    let status = devnet.status();
    for hop in ["ingress", "egress"] {
        let attestation = &status[hop]["attestation"];
        assert_eq!(attestation["verdict"], "attested", "{hop}: {status}");
        assert_eq!(attestation["platform"], "insecure-simulated", "{hop}");
        assert_eq!(attestation["release"], release.as_str(), "{hop}");
        assert!(
            !status[hop]["address"]
                .as_str()
                .unwrap()
                .starts_with("127.0.2.3:"),
            "egress-3 (a modified build) on the path: {status}"
        );
    }

    // The dissenting validator lost stake to the majority.
    let rpc = line_field(&devnet, "chain ", "rpc");
    let contract: Address = line_field(&devnet, "chain ", "contract").parse().unwrap();
    let reader = load_key_file(&devnet.state_dir.join("operator-1/evm.key")).unwrap();
    let chain = Registry::connect(&rpc, CHAIN_ID, contract, reader, DEFAULT_RPC_TIMEOUT)
        .await
        .unwrap();
    let set = chain.validator_status(Some(0)).await.unwrap().set;
    assert_eq!(set.len(), 4);
    let dissenter_key = {
        let config = openrelay_config::ValidatorConfig::load(
            &devnet.state_dir.join("configs/validator-4.toml"),
        )
        .unwrap();
        openrelay_registry::keyfile::load_or_create(&config.state_dir)
            .unwrap()
            .id()
            .to_bytes()
    };
    let (dissenter, majority): (Vec<_>, Vec<_>) = set.iter().partition(|v| v.key == dissenter_key);
    assert_eq!(dissenter.len(), 1);
    for honest in &majority {
        assert!(
            dissenter[0].stake < honest.stake,
            "the dissenter kept its stake: {set:?}"
        );
    }

    // The attested egresses die; their descriptors expire. Only egress-3
    // is left, and it runs software no vote approved: no path, and the
    // client says why rather than use it.
    let before_kill = devnet.log("client").len();
    for victim in ["egress-1", "egress-2"] {
        assert!(send_signal(devnet.component_pid(victim), "KILL"));
    }
    // The client finds both dead (handshake timeouts): no flow goes
    // through, and no path is built through egress-3. (The message naming
    // each refused relay is `client::selection`'s, tested in
    // `crates/client/tests/attestation.rs`; here the client's exclusions
    // and back-off decide when it is printed.)
    tokio::time::sleep(Duration::from_secs(5)).await;
    let refused = fetch(
        &proxy,
        &format!("http://localhost:{port}/hello"),
        Duration::from_secs(30),
    )
    .await;
    assert_ne!(refused.status, 200, "a flow went through: {refused:?}");
    let since_kill = devnet.log("client");
    let since_kill = since_kill.get(before_kill..).unwrap_or_default();
    assert!(
        !since_kill.contains("path established"),
        "a path was built after the attested egresses died:\n{since_kill}"
    );
    // egress-3 never carried a flow or collected a payment (an egress
    // logs only that much of its clients).
    let egress3 = devnet.log("egress-3");
    assert!(
        !egress3
            .lines()
            .any(|l| l.contains("flow")
                || (l.contains("tokens settled") && !l.contains("redeemed=0"))),
        "egress-3 served a client:\n{egress3}"
    );
}
