//! `openrelay devnet --chain --measure` (issue 14): four validators test
//! every relay each epoch through ordinary paths, commit and reveal their
//! reports on the chain, and settle each epoch from it. (Four: slashes need
//! more than 2/3 of the validators' stake to approve, so one liar in three
//! could block every slash; one in four cannot.)
//!
//! The attack: operator-1's ingress advertises 40 Mbit/s but carries 4
//! (`--short-relay-for-tests`) to everyone but the validators' published
//! addresses, and the fourth validator reports it at its claim whatever it
//! measures (`--misreporting-validator-for-tests`, a validator inflating a
//! friend; operator-1 stakes twice its cover, so its relays stay listed
//! after a slash). The relay weighs what it carries from its first measured epoch
//! on and is slashed on chain after `failing_epochs_to_slash` (2 on the
//! devnet); the lying validator is slashed for its marks
//! (`marks_to_slash`, 2); the honest relays never fail an epoch, and the
//! honest validators and operators keep their stakes. Needs anvil (`npm ci
//! --prefix contracts`). Takes about five minutes (epochs of 90 s).
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
/// start and a first epoch whose low results are not conclusive (the
/// partners are not proven yet): at most five epochs of 90 s and the reveal
/// windows.
const SLASH_WITHIN: Duration = Duration::from_secs(570);
/// What the short relay carries, and what the lying validator reports.
const SHORT_BPS: &str = "4000000";
const CLAIMED_BPS: f64 = 40.0 * MBPS;

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

/// The short relay's latest explanation among `page`'s (the one measured
/// below 10 Mbit/s), if it has been measured so.
fn short_relay(page: &serde_json::Value) -> Option<serde_json::Value> {
    page["explanations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["aggregate_bps"]
                .as_f64()
                .is_some_and(|bps| bps < 10.0 * MBPS)
        })
        .cloned()
}

/// One line per epoch of an explanation: each report's figure (Mbit/s, or
/// "down") and whether it was marked, for failure messages.
fn summary(e: &serde_json::Value) -> String {
    let reports: Vec<String> = e["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let figure = r["measurement"]["capacity_bps"]
                .as_f64()
                .map_or("down".to_owned(), |bps| format!("{:.2}", bps / MBPS));
            let marked = if r["marked"] == true { " marked" } else { "" };
            format!(
                "{}…={figure}{marked}",
                &r["validator"].as_str().unwrap()[8..14]
            )
        })
        .collect();
    format!("epoch {}: {}", e["epoch"], reports.join(", "))
}

async fn operator_chain(rpc: &str, contract: Address, operator: &Operator) -> Registry {
    let signer = load_key_file(std::path::Path::new(&operator.key_file)).unwrap();
    Registry::connect(rpc, CHAIN_ID, contract, signer, DEFAULT_RPC_TIMEOUT)
        .await
        .unwrap()
}

async fn stake(rpc: &str, contract: Address, operator: &Operator) -> U256 {
    let chain = operator_chain(rpc, contract, operator).await;
    chain.status(Some(0)).await.unwrap().stake
}

/// Every validator's stake, by its Ed25519 key (read with any account).
async fn validator_stakes(
    rpc: &str,
    contract: Address,
    reader: &Operator,
) -> std::collections::BTreeMap<[u8; 32], U256> {
    let signer = load_key_file(std::path::Path::new(&reader.key_file)).unwrap();
    let chain = Registry::connect(rpc, CHAIN_ID, contract, signer, DEFAULT_RPC_TIMEOUT)
        .await
        .unwrap();
    let status = chain.validator_status(Some(0)).await.unwrap();
    status.set.iter().map(|v| (v.key, v.stake)).collect()
}

/// The key of the devnet's last validator, the one that misreports.
fn liar_key(devnet: &Devnet) -> [u8; 32] {
    let config = ValidatorConfig::load(&devnet.state_dir.join("configs/validator-4.toml")).unwrap();
    let key = openrelay_registry::keyfile::load_or_create(&config.state_dir).unwrap();
    key.id().to_bytes()
}

#[test]
fn a_relay_carrying_a_tenth_of_its_claim_weighs_that_at_once_and_is_slashed_honest_ones_are_not() {
    let devnet = Devnet::start_with_args(
        3,
        "info",
        &[
            "--validators",
            "4",
            "--chain",
            "--measure",
            "--measure-epoch-secs",
            "90",
            "--short-relay-for-tests",
            &format!("ingress-1={SHORT_BPS}"),
            "--misreporting-validator-for-tests",
            "ingress-1=40000000",
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
    // Operator-1 stakes twice its relays' cover, as a careful operator
    // would: a slash then leaves its relays listed, so the short relay is
    // still measured (and lied about) after its first slash. With exactly
    // its cover, the first slash unlists both its relays, and the liar's
    // second mark may never come.
    runtime.block_on(async {
        let chain = operator_chain(&rpc, contract, &operators[0]).await;
        let cover = chain.status(Some(0)).await.unwrap().stake;
        chain.stake(cover).await.unwrap();
    });
    let stakes_before: Vec<U256> = operators
        .iter()
        .map(|o| runtime.block_on(stake(&rpc, contract, o)))
        .collect();
    let validator_stakes_before = runtime.block_on(validator_stakes(&rpc, contract, &operators[0]));
    assert_eq!(validator_stakes_before.len(), 4);
    let liar = liar_key(&devnet);

    // The short relay: operator-1's relay measured far below its claim.
    let deadline = Instant::now() + SLASH_WITHIN;
    let mut first_failed = None;
    // The short relay's reports by epoch, for failure messages.
    let mut history = std::collections::BTreeMap::new();
    let slashed_epoch = loop {
        assert!(
            Instant::now() < deadline,
            "no slash within {SLASH_WITHIN:?}: {}",
            explanations(&registry, &operators[0])
        );
        std::thread::sleep(Duration::from_secs(5));
        for honest in &operators[1..] {
            for e in explanations(&registry, honest)["explanations"]
                .as_array()
                .unwrap()
            {
                assert_ne!(e["verdict"], "failed", "{}: {e}", honest.name);
            }
        }
        let Some(short) = short_relay(&explanations(&registry, &operators[0])) else {
            continue;
        };
        let epoch = short["epoch"].as_u64().unwrap();
        history.insert(epoch, summary(&short));
        // No honest report is marked; the liar's inflated one is whenever
        // two honest validators (half of the set's weight, what a mark
        // needs) reported.
        let reports = short["reports"].as_array().unwrap();
        let inflated =
            |r: &serde_json::Value| r["measurement"]["capacity_bps"].as_f64() == Some(CLAIMED_BPS);
        let honest = reports.iter().filter(|r| !inflated(r)).count();
        for report in reports {
            let marked = report["marked"] == true;
            assert_eq!(marked, inflated(report) && honest >= 2, "{short}");
        }
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
    // The lying validator lost stake for its marks; the honest ones did not.
    // Its first marked epoch can be one after the relay's first failing one
    // (a validator's first epoch may have no directory yet), and an epoch
    // in which fewer than two honest validators reported on the relay
    // marks nobody, so its slash may come up to two epochs and a reveal
    // window after the relay's.
    let deadline = Instant::now() + Duration::from_secs(290);
    loop {
        let now = runtime.block_on(validator_stakes(&rpc, contract, &operators[0]));
        let changed: Vec<&[u8; 32]> = now
            .iter()
            .filter(|(key, stake)| validator_stakes_before[*key] != **stake)
            .map(|(key, _)| key)
            .collect();
        if changed == [&liar] {
            assert!(now[&liar] < validator_stakes_before[&liar]);
            break;
        }
        if let Some(short) = short_relay(&explanations(&registry, &operators[0])) {
            history.insert(short["epoch"].as_u64().unwrap(), summary(&short));
        }
        assert!(
            changed.iter().all(|key| **key == liar) && Instant::now() < deadline,
            "validator stakes {now:?}, before {validator_stakes_before:?}, liar {liar:?}; \
             the short relay's reports: {history:#?}"
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
