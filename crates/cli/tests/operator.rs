//! `openrelay operator` against a real anvil with the registry deployed:
//! a new key file, registration, stake, a relay the stake does not cover
//! (and then does), unstaking below cover, status, and the errors for a
//! wrong chain, an unreachable node and an https URL; a relay's bandwidth
//! updated within cover (and refused beyond it), and removed.
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use kit::run_openrelay;
use openrelay_chain::anvil::Anvil;
use openrelay_chain::deploy::{ChainParams, GenesisValidator, deploy};
use openrelay_chain::operator::signing_provider;

const CHAIN_ID: u64 = 31_337;
const ETHER: u128 = 1_000_000_000_000_000_000;
const LIMIT: Duration = Duration::from_secs(60);

/// Anvil with the registry deployed (the devnet's parameters, one genesis
/// validator); returns it and the contract's address.
async fn deployed() -> (Anvil, String) {
    let anvil = Anvil::start(CHAIN_ID, None).await.unwrap();
    let deployer = PrivateKeySigner::random();
    anvil
        .fund(deployer.address(), U256::from(100 * ETHER))
        .await
        .unwrap();
    let genesis = [GenesisValidator {
        account: deployer.address(),
        key: [7; 32],
        stake: U256::from(2 * ETHER),
    }];
    let provider = signing_provider(anvil.endpoint().parse().unwrap(), deployer);
    let contract = deploy(provider, &ChainParams::devnet(), &genesis)
        .await
        .unwrap()
        .to_string();
    (anvil, contract)
}

/// `openrelay operator new-key` in `dir`; the account gets 10 ETH.
async fn funded_key(anvil: &Anvil, dir: &std::path::Path) -> (std::path::PathBuf, String) {
    let key_file = dir.join("evm.key");
    let out = run_openrelay(
        &[
            "operator",
            "new-key",
            "--key-file",
            key_file.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let address = out.stdout.trim().to_owned();
    anvil
        .fund(address.parse().unwrap(), U256::from(10 * ETHER))
        .await
        .unwrap();
    (key_file, address)
}

/// `openrelay operator <sub>` with the chain flags.
fn operator_args<'a>(sub: &'a str, rpc: &'a str, contract: &'a str, key: &'a str) -> Vec<&'a str> {
    vec![
        "operator",
        sub,
        "--rpc",
        rpc,
        "--chain-id",
        "31337",
        "--contract",
        contract,
        "--key-file",
        key,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_stakes_registers_a_relay_and_reads_its_status() {
    let (anvil, contract) = deployed().await;
    let dir = tempfile::tempdir().unwrap();
    let (key_file, address) = funded_key(&anvil, dir.path()).await;
    let key_path = key_file.to_str().unwrap();
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = run_openrelay(&["operator", "new-key", "--key-file", key_path], LIMIT);
    assert!(!again.status.success());
    assert!(again.stderr.contains("exists"), "{}", again.stderr);

    let rpc = anvil.endpoint().to_owned();
    let chain = |sub: &str| -> Vec<String> {
        operator_args(sub, &rpc, &contract, key_path)
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    let run = |mut args: Vec<String>, extra: &[&str]| {
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_openrelay(&args, LIMIT)
    };

    let operator_key = dir.path().join("operator.key");
    let out = run(
        chain("register"),
        &[
            "--operator-key-file",
            operator_key.to_str().unwrap(),
            "--stake",
            "0.5",
        ],
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.starts_with("ok tx="), "{}", out.stdout);

    // A relay key as `openrelay key` prints it.
    let relay_dir = dir.path().join("relay");
    let out = run_openrelay(&["key", "--state-dir", relay_dir.to_str().unwrap()], LIMIT);
    assert!(out.status.success(), "{}", out.stderr);
    let relay_key = out.stdout.trim().to_owned();
    let relay = [
        "--relay-key",
        relay_key.as_str(),
        "--role",
        "egress",
        "--mbps",
        "1000",
    ];
    let out = run(chain("register-relay"), &relay);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains(
            "stake 0.5 ETH covers 500 Mbit/s; registering 1000 Mbit/s more needs 1 ETH in total"
        ),
        "{}",
        out.stderr
    );
    let out = run(chain("stake"), &["--amount", "0.5"]);
    assert!(out.status.success(), "{}", out.stderr);
    let out = run(chain("register-relay"), &relay);
    assert!(out.status.success(), "{}", out.stderr);

    let out = run(chain("unstake"), &["--amount", "0.1"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("unstaking 0.1 ETH would leave 0.9 ETH, less than the 1 ETH covering the 1000 Mbit/s your relays advertise"),
        "{}",
        out.stderr
    );

    let out = run(chain("status"), &["--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["account"].as_str().unwrap(), address);
    assert_eq!(status["stake_wei"], ETHER.to_string());
    assert_eq!(status["advertised_mbps"], 1000);
    assert_eq!(status["covered"], true);
    assert_eq!(status["relays"][0]["relay_key"], relay_key.as_str());
    assert_eq!(status["relays"][0]["role"], "egress");
    let out = run(chain("status"), &[]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("stake     1 ETH (1 ETH needed for 1000 Mbit/s: covered)"),
        "{}",
        out.stdout
    );

    // The wrong chain, an unreachable node, an https URL.
    let mut wrong = chain("status");
    wrong[5] = "1".into();
    let out = run(wrong, &[]);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("the RPC node is on chain 31337, not the expected chain 1"),
        "{}",
        out.stderr
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut unreachable = chain("status");
    unreachable[3] = format!("http://{closed}");
    let out = run(unreachable, &[]);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains(&format!("the RPC node at http://{closed} is unreachable")),
        "{}",
        out.stderr
    );
    let mut https = chain("status");
    https[3] = "https://rpc.example.org".into();
    let out = run(https, &[]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("https RPC is not supported"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_updates_a_relay_within_cover_and_removes_it() {
    let (anvil, contract) = deployed().await;
    let dir = tempfile::tempdir().unwrap();
    let (key_file, _) = funded_key(&anvil, dir.path()).await;
    let key_path = key_file.to_str().unwrap();
    let rpc = anvil.endpoint().to_owned();
    let run = |sub: &str, extra: &[&str]| {
        let mut args = operator_args(sub, &rpc, &contract, key_path);
        args.extend_from_slice(extra);
        run_openrelay(&args, LIMIT)
    };
    let operator_key = dir.path().join("operator.key");
    let out = run(
        "register",
        &[
            "--operator-key-file",
            operator_key.to_str().unwrap(),
            "--stake",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", out.stderr);
    let relay_dir = dir.path().join("relay");
    let out = run_openrelay(&["key", "--state-dir", relay_dir.to_str().unwrap()], LIMIT);
    let relay_key = out.stdout.trim().to_owned();
    let out = run(
        "register-relay",
        &[
            "--relay-key",
            &relay_key,
            "--role",
            "ingress",
            "--mbps",
            "500",
        ],
    );
    assert!(out.status.success(), "{}", out.stderr);

    let hash = format!("0x{}", "ab".repeat(32));
    // `update-relay` of the registered relay to `mbps`, with `extra` flags.
    let update = |mbps: &str, extra: &[&str]| {
        let mut args = vec!["--relay-key", &relay_key, "--mbps", mbps];
        args.extend_from_slice(&["--descriptor-hash", &hash]);
        args.extend_from_slice(extra);
        run("update-relay", &args)
    };
    // Above what 1 ETH covers (1000 Mbit/s): refused, nothing changes.
    let out = update("1500", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
    assert!(
        out.stderr.contains(
            "stake 1 ETH covers 1000 Mbit/s; registering 1000 Mbit/s more needs 1.5 ETH in total"
        ),
        "{}",
        out.stderr
    );
    // The flags `relay --register-args` prints pass as they are, but the
    // role cannot change.
    let out = update("1000", &["--role", "egress"]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("is registered as ingress, not egress: a relay's role cannot change"),
        "{}",
        out.stderr
    );
    let out = update("1000", &["--role", "ingress"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.starts_with("ok tx="), "{}", out.stdout);
    let out = run("status", &["--json"]);
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["advertised_mbps"], 1000);
    assert_eq!(status["relays"][0]["bandwidth_mbps"], 1000);
    assert_eq!(status["relays"][0]["descriptor_hash"], hash.as_str());

    // A relay this operator never registered.
    let other_dir = dir.path().join("other");
    let out = run_openrelay(&["key", "--state-dir", other_dir.to_str().unwrap()], LIMIT);
    let other_key = out.stdout.trim().to_owned();
    for (sub, extra) in [
        ("remove-relay", vec!["--relay-key", other_key.as_str()]),
        (
            "update-relay",
            vec![
                "--relay-key",
                other_key.as_str(),
                "--mbps",
                "10",
                "--descriptor-hash",
                &hash,
            ],
        ),
    ] {
        let out = run(sub, &extra);
        assert_eq!(out.status.code(), Some(1), "{sub}: {}", out.stdout);
        assert!(
            out.stderr
                .contains("the registry contract refused: no such relay under this operator"),
            "{sub}: {}",
            out.stderr
        );
    }

    let out = run("remove-relay", &["--relay-key", &relay_key]);
    assert!(out.status.success(), "{}", out.stderr);
    let out = run("status", &["--json"]);
    let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(status["advertised_mbps"], 0);
    assert_eq!(status["relays"].as_array().unwrap().len(), 0);
    // With no relay left, the whole stake may unbond.
    let out = run("unstake", &["--amount", "1"]);
    assert!(out.status.success(), "{}", out.stderr);
}
