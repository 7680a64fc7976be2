//! `openrelay release-votes propose|revoke|list` against a real anvil with
//! the registry (and its release votes) deployed: a maintainer proposes a
//! release by its binary, anyone lists it (text and JSON) with no key, and
//! the refusals (a re-proposal, a revocation of a release not approved, a
//! malformed or missing measurement, too many measurements) say what is
//! wrong.
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use kit::run_openrelay;
use openrelay_chain::anvil::Anvil;
use openrelay_chain::deploy::{ChainParams, GenesisValidator, deploy};
use openrelay_chain::operator::signing_provider;
use sha2::{Digest as _, Sha256};

const CHAIN_ID: u64 = 31_337;
const ETHER: u128 = 1_000_000_000_000_000_000;
const LIMIT: Duration = Duration::from_secs(60);

fn write_key_file(path: &Path, signer: &PrivateKeySigner) {
    std::fs::write(path, format!("{}\n", signer.to_bytes())).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A refusal by the chain (exit 1) or of the command line (clap: exit 2).
fn refused_with(out: &kit::Finished, code: i32, message: &str) {
    assert!(!out.status.success(), "{}", out.stdout);
    assert_eq!(out.status.code(), Some(code), "{}", out.stderr);
    assert!(out.stderr.contains(message), "{}", out.stderr);
}

fn refused(out: &kit::Finished, message: &str) {
    refused_with(out, 1, message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintainer_proposes_and_anyone_lists() {
    let anvil = Anvil::start(CHAIN_ID, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let validator = PrivateKeySigner::random();
    let maintainer = PrivateKeySigner::random();
    for s in [&validator, &maintainer] {
        anvil
            .fund(s.address(), U256::from(10 * ETHER))
            .await
            .unwrap();
    }
    let provider = signing_provider(anvil.endpoint().parse().unwrap(), validator.clone());
    let genesis = [GenesisValidator {
        account: validator.address(),
        key: [1; 32],
        stake: U256::from(2 * ETHER),
    }];
    let contract = deploy(provider, &ChainParams::devnet(), &genesis)
        .await
        .unwrap()
        .to_string();
    let key_file = dir.path().join("maintainer.key");
    write_key_file(&key_file, &maintainer);
    let binary = dir.path().join("openrelay-release-binary");
    std::fs::write(&binary, b"a release binary").unwrap();
    let binary_hash = format!("0x{}", hex(&Sha256::digest(b"a release binary")));
    let release_id = format!("0x{}", "11".repeat(32));
    let measurement = format!("1:0x{}", "ab".repeat(48));
    let chain = [
        "--rpc",
        anvil.endpoint(),
        "--chain-id",
        "31337",
        "--contract",
        &contract,
    ];
    let signed = |sub: &str, extra: &[&str]| {
        let mut args = vec!["release-votes", sub];
        args.extend_from_slice(&chain);
        args.extend_from_slice(&["--key-file", key_file.to_str().unwrap()]);
        args.extend_from_slice(extra);
        run_openrelay(&args, LIMIT)
    };
    let list = |extra: &[&str]| {
        let mut args = vec!["release-votes", "list"];
        args.extend_from_slice(&chain);
        args.extend_from_slice(extra);
        run_openrelay(&args, LIMIT)
    };

    let out = list(&[]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("no releases proposed"),
        "{}",
        out.stdout
    );

    let out = signed(
        "propose",
        &[
            "--release-id",
            &release_id,
            "--binary",
            binary.to_str().unwrap(),
            "--measurement",
            &measurement,
        ],
    );
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("ballot 1: validators commit until"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("bond 0.1 ETH"), "{}", out.stdout);

    let out = list(&["--json"]);
    assert!(out.status.success(), "{}", out.stderr);
    let listed: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(listed[0]["release_id"], release_id.as_str());
    assert_eq!(listed[0]["binary_sha256"], binary_hash.as_str());
    assert_eq!(listed[0]["status"], "proposed");
    assert_eq!(listed[0]["open_ballot"], 1);
    assert_eq!(listed[0]["measurements"][0]["platform"], 1);
    let out = list(&[]);
    assert!(
        out.stdout.contains("Proposed (ballot 1 open)"),
        "{}",
        out.stdout
    );

    // Refusals say what is wrong.
    refused(
        &signed(
            "propose",
            &[
                "--release-id",
                &release_id,
                "--binary-sha256",
                &binary_hash,
                "--measurement",
                &measurement,
            ],
        ),
        "is known already (Some(Proposed)); release ids are never reused",
    );
    refused(
        &signed("revoke", &["--release-id", &release_id]),
        "cannot be revoked",
    );
    refused_with(
        &signed(
            "propose",
            &[
                "--release-id",
                &release_id,
                "--binary-sha256",
                &binary_hash,
                "--measurement",
                "1:0xabcd",
            ],
        ),
        2,
        "is not 0x and 96 hex digits (48 bytes)",
    );
    refused_with(
        &signed(
            "propose",
            &["--release-id", &release_id, "--binary-sha256", &binary_hash],
        ),
        2,
        "--measurement",
    );
    let many: Vec<&str> = std::iter::repeat_n(["--measurement", measurement.as_str()], 17)
        .flatten()
        .collect();
    let mut args = vec![
        "--release-id",
        release_id.as_str(),
        "--binary-sha256",
        binary_hash.as_str(),
    ];
    args.extend(many);
    refused(&signed("propose", &args), "a release lists at most 16");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
