//! `openrelay devnet --chain --measure` (issue 14): three validators test
//! every relay each epoch through ordinary paths, commit and reveal their
//! reports on the chain, and settle each epoch from it. A relay that
//! advertises 40 Mbit/s but carries 4 (`--short-relay-for-tests`) weighs
//! what it carries from its first measured epoch on and is slashed on chain
//! after `failing_epochs_to_slash` (2 on the devnet); the honest relays are
//! neither slashed nor weighed down. Needs anvil (`npm ci --prefix
//! contracts`). Takes about five minutes (epochs of 90 s).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use openrelay_testkit as kit;

use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use kit::{Devnet, run_openrelay};
use openrelay_chain::operator::{DEFAULT_RPC_TIMEOUT, Registry, load_key_file};
use openrelay_config::ValidatorConfig;

const CHAIN_ID: u64 = 31_337;
const MBPS: f64 = 1_000_000.0;
/// Settling the epoch after the first measured one, with room for a slow
/// start: at most four epochs of 90 s and the reveal windows.
const SLASH_WITHIN: Duration = Duration::from_secs(480);

/// A field `key=value` of a devnet stdout line.
fn field(line: &str, key: &str) -> String {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap()
        .to_owned()
}

struct Operator {
    name: String,
    key: String,
    key_file: String,
}

/// The explanations of `operator`'s relays from the registry's
/// `GET /v1/measurements`, through `openrelay operator measurements`.
fn explanations(registry: &(String, String), operator: &Operator) -> serde_json::Value {
    let run = run_openrelay(
        &[
            "operator",
            "measurements",
            "--registry",
            &registry.0,
            "--registry-key",
            &registry.1,
            "--operator-key",
            &operator.key,
            "--json",
        ],
        Duration::from_secs(30),
    );
    assert!(run.status.success(), "{run:?}");
    serde_json::from_str(&run.stdout).unwrap()
}

async fn stake(rpc: &str, contract: Address, operator: &Operator) -> U256 {
    let signer = load_key_file(std::path::Path::new(&operator.key_file)).unwrap();
    let chain = Registry::connect(rpc, CHAIN_ID, contract, signer, DEFAULT_RPC_TIMEOUT)
        .await
        .unwrap();
    chain.status(Some(0)).await.unwrap().stake
}

#[test]
fn a_relay_carrying_a_tenth_of_its_claim_weighs_that_at_once_and_is_slashed_honest_ones_are_not() {
    let devnet = Devnet::start_with_args(
        3,
        "info",
        &[
            "--chain",
            "--measure",
            "--measure-epoch-secs",
            "90",
            "--short-relay-for-tests",
            "egress-1=4000000",
        ],
    );
    // The chain's lines follow the ready line.
    let deadline = Instant::now() + Duration::from_secs(5);
    let lines = loop {
        let lines = devnet.later_stdout();
        if lines.iter().filter(|l| l.starts_with("operator ")).count() == 3 {
            break lines;
        }
        assert!(Instant::now() < deadline, "no chain lines: {lines:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let chain = lines.iter().find(|l| l.starts_with("chain ")).unwrap();
    let (rpc, contract): (String, Address) = (
        field(chain, "rpc"),
        field(chain, "contract").parse().unwrap(),
    );
    let operators: Vec<Operator> = lines
        .iter()
        .filter(|l| l.starts_with("operator "))
        .map(|l| Operator {
            name: field(l, "name"),
            key: field(l, "operator_key"),
            key_file: field(l, "key_file"),
        })
        .collect();
    assert_eq!(operators.len(), 3, "{lines:?}");
    let validator =
        ValidatorConfig::load(&devnet.state_dir.join("configs/validator-1.toml")).unwrap();
    let registry = (
        validator.registry.addr.to_string(),
        validator.registry.key.to_string(),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stakes_before: Vec<U256> = operators
        .iter()
        .map(|o| runtime.block_on(stake(&rpc, contract, o)))
        .collect();

    // The short relay: operator-1's relay measured far below its claim.
    let deadline = Instant::now() + SLASH_WITHIN;
    let mut first_failed = None;
    let slashed_epoch = loop {
        assert!(
            Instant::now() < deadline,
            "no slash within {SLASH_WITHIN:?}: {}",
            explanations(&registry, &operators[0])
        );
        std::thread::sleep(Duration::from_secs(5));
        let page = explanations(&registry, &operators[0]);
        let Some(short) = page["explanations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| {
                e["aggregate_bps"]
                    .as_f64()
                    .is_some_and(|bps| bps < 10.0 * MBPS)
            })
            .cloned()
        else {
            continue;
        };
        let epoch = short["epoch"].as_u64().unwrap();
        // From its first measured epoch on, selection counts what it
        // carries, not what it claims.
        let weight = short["selection_bps"].as_f64().unwrap();
        assert!(weight < 6.0 * MBPS, "weighed at {weight}: {short}");
        assert_eq!(short["verdict"], "failed", "{short}");
        first_failed.get_or_insert(epoch);
        if short["slashed"] == true {
            break epoch;
        }
    };
    assert_eq!(
        Some(slashed_epoch - 1),
        first_failed,
        "slashed after the second failing epoch"
    );

    // On chain: operator-1 lost 10 % of the stake backing that relay (half
    // of its stake: it has two relays of equal claims); the others nothing.
    let slashed = stakes_before[0] / U256::from(20);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = runtime.block_on(stake(&rpc, contract, &operators[0]));
        if now == stakes_before[0] - slashed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "operator-1's stake is {now}, expected {} - {slashed}",
            stakes_before[0]
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    for (operator, before) in operators.iter().zip(&stakes_before).skip(1) {
        let now = runtime.block_on(stake(&rpc, contract, operator));
        assert_eq!(now, *before, "{} was slashed", operator.name);
        // Honest relays pass at what they claim, in the latest epoch.
        let page = explanations(&registry, operator);
        for e in page["explanations"].as_array().unwrap() {
            assert_eq!(e["verdict"], "passed", "{}: {e}", operator.name);
            assert!(
                e["selection_bps"].as_f64().unwrap() >= 40.0 * MBPS,
                "{}: {e}",
                operator.name
            );
        }
    }
}
