//! `openrelay validator join|approve-set-change|leave|withdraw-join|status`
//! against a real anvil with the registry deployed: an account joins the
//! set with its validator key and stake, the genesis validators approve it
//! after the join delay, status shows it in the set with its weight, it
//! leaves again; and the refusals (stake below the minimum, an approval
//! before the delay, by a non-member, twice, for another epoch, the wrong
//! chain, an unreachable node) say what is wrong.
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use alloy::primitives::U256;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use kit::run_openrelay;
use openrelay_chain::anvil::Anvil;
use openrelay_chain::deploy::{ChainParams, GenesisValidator, deploy};
use openrelay_chain::operator::signing_provider;

const CHAIN_ID: u64 = 31_337;
const ETHER: u128 = 1_000_000_000_000_000_000;
const LIMIT: Duration = Duration::from_secs(60);

fn write_key_file(path: &Path, signer: &PrivateKeySigner) {
    std::fs::write(path, format!("{}\n", signer.to_bytes())).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Moves the chain's clock on by `seconds` and mines a block.
async fn advance(endpoint: &str, seconds: u64) {
    let provider = ProviderBuilder::new().connect_http(endpoint.parse().unwrap());
    let _: i64 = provider
        .raw_request("evm_increaseTime".into(), (seconds,))
        .await
        .unwrap();
    let _: String = provider.raw_request("evm_mine".into(), ()).await.unwrap();
}

struct Cli {
    rpc: String,
    contract: String,
}

impl Cli {
    /// `openrelay validator <sub>` signed by `key_file`, with `extra` flags.
    fn validator(&self, sub: &str, key_file: &Path, extra: &[&str]) -> kit::Finished {
        let mut args = vec![
            "validator",
            sub,
            "--rpc",
            &self.rpc,
            "--chain-id",
            "31337",
            "--contract",
            &self.contract,
            "--key-file",
            key_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run_openrelay(&args, LIMIT)
    }

    fn status(&self, key_file: &Path) -> serde_json::Value {
        let out = self.validator("status", key_file, &["--json"]);
        assert!(out.status.success(), "{}", out.stderr);
        serde_json::from_str(out.stdout.trim()).unwrap()
    }
}

fn refused(out: &kit::Finished, message: &str) {
    assert!(!out.status.success(), "{}", out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains(message), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_joins_the_validator_set_is_approved_and_leaves() {
    let anvil = Anvil::start(CHAIN_ID, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let genesis_signers: Vec<PrivateKeySigner> =
        (0..3).map(|_| PrivateKeySigner::random()).collect();
    let mut genesis = Vec::new();
    let mut genesis_keys = Vec::new();
    for (i, signer) in genesis_signers.iter().enumerate() {
        anvil
            .fund(signer.address(), U256::from(100 * ETHER))
            .await
            .unwrap();
        genesis.push(GenesisValidator {
            account: signer.address(),
            key: [u8::try_from(i).unwrap() + 1; 32],
            stake: U256::from(2 * ETHER),
        });
        let path = dir.path().join(format!("genesis{i}.key"));
        write_key_file(&path, signer);
        genesis_keys.push(path);
    }
    let provider = signing_provider(
        anvil.endpoint().parse().unwrap(),
        genesis_signers[0].clone(),
    );
    let params = ChainParams::devnet();
    let join_delay = params.validator_join_delay.as_secs();
    let contract = deploy(provider, &params, &genesis).await.unwrap();
    let cli = Cli {
        rpc: anvil.endpoint().to_owned(),
        contract: contract.to_string(),
    };

    // The joining validator: an EVM account and a validator config whose
    // state directory holds its Ed25519 key.
    let joiner_key = dir.path().join("joiner-evm.key");
    let out = run_openrelay(
        &[
            "operator",
            "new-key",
            "--key-file",
            joiner_key.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(out.status.success(), "{}", out.stderr);
    let joiner = out.stdout.trim().to_owned();
    anvil
        .fund(joiner.parse().unwrap(), U256::from(10 * ETHER))
        .await
        .unwrap();
    let config = dir.path().join("validator.toml");
    let state_dir = dir.path().join("validator-state");
    std::fs::write(
        &config,
        format!("state_dir = {:?}\n", state_dir.to_str().unwrap()),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // The service invocation is unchanged.
    let out = run_openrelay(&["validator", "--config", config, "--print-key"], LIMIT);
    assert!(out.status.success(), "{}", out.stderr);
    let validator_key = out.stdout.trim().to_owned();
    // Neither a config nor a subcommand: a usage error (clap's exit 2).
    let out = run_openrelay(&["validator"], LIMIT);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--config <CONFIG>"), "{}", out.stderr);

    // Too little stake; a key file that does not exist.
    let out = cli.validator("join", &joiner_key, &["--config", config, "--stake", "0.5"]);
    refused(
        &out,
        "the registry contract refused: a validator stakes at least 1 ETH",
    );
    let missing = dir.path().join("nowhere.key");
    let out = cli.validator(
        "join",
        &joiner_key,
        &[
            "--validator-key-file",
            missing.to_str().unwrap(),
            "--stake",
            "3",
        ],
    );
    refused(&out, "no such validator key file");
    assert!(!missing.exists());

    let out = cli.validator("join", &joiner_key, &["--config", config, "--stake", "3"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("validator key {validator_key}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("ok tx="), "{}", out.stdout);
    let status = cli.status(&joiner_key);
    assert_eq!(status["in_set"], false);
    assert_eq!(status["epoch"], 0);
    assert_eq!(status["validator"]["validator_key"], validator_key.as_str());
    let ready_at = status["validator"]["join_ready_at"].as_u64().unwrap();
    assert!(ready_at >= status["chain_time"].as_u64().unwrap() + join_delay - 1);
    assert_eq!(status["pending_joins"][0]["account"], joiner.as_str());
    assert_eq!(status["set"].as_array().unwrap().len(), 3);
    let out = cli.validator("join", &joiner_key, &["--config", config, "--stake", "1"]);
    refused(&out, "already a validator or waiting to join");

    // Before the delay; by a non-member.
    let approve = ["--epoch", "0", "--join", joiner.as_str()];
    let out = cli.validator("approve-set-change", &genesis_keys[0], &approve);
    refused(
        &out,
        &format!(
            "the registry contract refused the set change: {joiner} may join from unix time {ready_at} on"
        ),
    );
    let out = cli.validator("approve-set-change", &joiner_key, &approve);
    refused(
        &out,
        "the registry contract refused: this account is not in the current validator set",
    );

    advance(anvil.endpoint(), join_delay + 1).await;
    let out = cli.validator("approve-set-change", &genesis_keys[0], &approve);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("approved by 2 ETH of the 4.0002 ETH needed: not applied yet"),
        "{}",
        out.stdout
    );
    let change_id = out
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("change "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_owned();
    let out = cli.validator("approve-set-change", &genesis_keys[0], &approve);
    refused(
        &out,
        "the registry contract refused: this account has already approved it",
    );
    let status = cli.status(&joiner_key);
    assert_eq!(
        status["approvals"][0]["approvers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        status["approvals"][0]["weight_wei"],
        (2 * ETHER).to_string()
    );
    assert_eq!(status["approvals"][0]["change_id"], change_id.as_str());
    let out = cli.validator("status", &genesis_keys[1], &[]);
    assert!(
        out.stdout.contains(&format!(
            "approval   {change_id} by 1 member(s), 2 ETH of the 4.0002 ETH needed"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "join       {joiner} {validator_key} stake 3 ETH from unix time {ready_at}, ready"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("validator  in the set at epoch 0, weight 2 ETH (stake 2 ETH)"),
        "{}",
        out.stdout
    );
    let out = cli.validator("approve-set-change", &genesis_keys[1], &approve);
    assert!(out.stdout.contains("not applied yet"), "{}", out.stdout);
    let out = cli.validator("approve-set-change", &genesis_keys[2], &approve);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("applied: the validator set is now at epoch 1"),
        "{}",
        out.stdout
    );

    let status = cli.status(&joiner_key);
    assert_eq!(status["in_set"], true);
    assert_eq!(status["epoch"], 1);
    let set = status["set"].as_array().unwrap();
    assert_eq!(set.len(), 4);
    let me = set
        .iter()
        .find(|m| m["account"] == joiner.as_str())
        .unwrap();
    assert_eq!(me["weight_wei"], (3 * ETHER).to_string());
    assert_eq!(me["validator_key"], validator_key.as_str());
    assert_eq!(status["active_weight_wei"], (9 * ETHER).to_string());
    assert_eq!(status["approvals"].as_array().unwrap().len(), 0);
    assert_eq!(status["pending_joins"].as_array().unwrap().len(), 0);
    let out = cli.validator("status", &joiner_key, &[]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout
            .contains("validator  in the set at epoch 1, weight 3 ETH (stake 3 ETH)"),
        "{}",
        out.stdout
    );
    // An approval for the epoch that has passed.
    let out = cli.validator("approve-set-change", &genesis_keys[0], &approve);
    refused(
        &out,
        "the registry contract refused: the validator set is at epoch 1",
    );

    // Leaving: requested, approved after the leave delay, stake unbonding.
    let out = cli.validator("leave", &joiner_key, &[]);
    assert!(out.status.success(), "{}", out.stderr);
    let status = cli.status(&joiner_key);
    assert!(status["validator"]["leave_ready_at"].as_u64().is_some());
    let leave = ["--epoch", "1", "--leave", joiner.as_str()];
    let out = cli.validator("approve-set-change", &genesis_keys[0], &leave);
    refused(&out, &format!("{joiner} may leave from unix time"));
    advance(anvil.endpoint(), params.validator_leave_delay.as_secs() + 1).await;
    for key in [&joiner_key, &genesis_keys[0]] {
        let out = cli.validator("approve-set-change", key, &leave);
        assert!(out.stdout.contains("not applied yet"), "{}", out.stdout);
    }
    let out = cli.validator("approve-set-change", &genesis_keys[1], &leave);
    assert!(
        out.stdout
            .contains("applied: the validator set is now at epoch 2"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    let status = cli.status(&joiner_key);
    assert_eq!(status["in_set"], false);
    assert_eq!(status["validator"], serde_json::Value::Null);
    assert_eq!(status["set"].as_array().unwrap().len(), 3);

    // A join taken back before any change applies it.
    let out = cli.validator("join", &joiner_key, &["--config", config, "--stake", "1"]);
    assert!(out.status.success(), "{}", out.stderr);
    let out = cli.validator("withdraw-join", &joiner_key, &[]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(
        cli.status(&joiner_key)["validator"],
        serde_json::Value::Null
    );
    let out = cli.validator("withdraw-join", &joiner_key, &[]);
    refused(
        &out,
        "the registry contract refused: this account has no pending join request",
    );

    // The wrong chain; a node that is not there.
    let out = run_openrelay(
        &[
            "validator",
            "status",
            "--rpc",
            &cli.rpc,
            "--chain-id",
            "1",
            "--contract",
            &cli.contract,
            "--key-file",
            joiner_key.to_str().unwrap(),
        ],
        LIMIT,
    );
    refused(
        &out,
        "the RPC node is on chain 31337, not the expected chain 1",
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let unreachable = Cli {
        rpc: format!("http://{closed}"),
        contract: cli.contract.clone(),
    };
    let out = unreachable.validator("leave", &joiner_key, &[]);
    refused(
        &out,
        &format!("the RPC node at http://{closed} is unreachable"),
    );
}
