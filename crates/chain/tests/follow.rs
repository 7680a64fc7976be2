//! The follower on a real chain (anvil): the registry contract deployed,
//! operators and relays registered from funded random accounts, a slash
//! by the validator quorum, reorgs within and beyond the depth (anvil's
//! `evm_snapshot` / `evm_revert` replace blocks with different ones), and
//! an unreachable node that comes back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest::Url;
use openrelay_chain::anvil::Anvil;
use openrelay_chain::contract::RelayRegistry;
use openrelay_chain::follow::{
    ChainSnapshot, FeedError, FollowError, Follower, FollowerConfig, read_params,
};
use openrelay_types::{ErrorKind, HasKind};

const CHAIN_ID: u64 = 31_337;
/// Wei per advertised Mbit/s.
const STAKE_PER_MBPS: u64 = 1_000_000_000_000;
const VALIDATOR_STAKE: u64 = 1_000_000_000_000_000_000;

fn url(anvil: &Anvil) -> Url {
    anvil.endpoint().parse().expect("anvil endpoint is a URL")
}

/// A funded random account and the registry as it sees it.
async fn account(
    anvil: &Anvil,
    contract: Address,
) -> (
    Address,
    RelayRegistry::RelayRegistryInstance<impl Provider + Clone>,
) {
    let signer = PrivateKeySigner::random();
    let address = signer.address();
    anvil
        .fund(address, U256::from(10u128.pow(21)))
        .await
        .expect("fund");
    let provider = ProviderBuilder::new()
        .wallet(signer)
        .connect_http(url(anvil));
    (address, RelayRegistry::new(contract, provider))
}

/// A deployed registry: its address, deployment block and the genesis
/// validators (3 of equal weight, so a quorum is all three).
struct Deployed {
    contract: Address,
    block: u64,
    validators: Vec<RelayRegistry::RelayRegistryInstance<DynProvider>>,
}

async fn deploy(anvil: &Anvil) -> Deployed {
    let signer = PrivateKeySigner::random();
    anvil
        .fund(signer.address(), U256::from(10u128.pow(21)))
        .await
        .expect("fund");
    let provider = ProviderBuilder::new()
        .wallet(signer)
        .connect_http(url(anvil));
    let mut validator_signers = Vec::new();
    for _ in 0..3 {
        let signer = PrivateKeySigner::random();
        anvil
            .fund(signer.address(), U256::from(10u128.pow(21)))
            .await
            .expect("fund");
        validator_signers.push(signer);
    }
    let params = RelayRegistry::Params {
        stakePerMbps: U256::from(STAKE_PER_MBPS),
        minValidatorStake: U256::from(VALIDATOR_STAKE),
        unbondingDelay: 60,
        validatorJoinDelay: 0,
        validatorLeaveDelay: 0,
        quorumBps: 6667,
        slashBurnBps: 5000,
        slashRewardBps: 5000,
        maxRelaysPerOperator: 10,
        maxValidators: 10,
        measureEpochSeconds: 60,
        revealWindowSeconds: 20,
    };
    let genesis: Vec<Address> = validator_signers.iter().map(|s| s.address()).collect();
    let keys: Vec<B256> = (1..=3u8).map(B256::repeat_byte).collect();
    let stakes = vec![U256::from(VALIDATOR_STAKE); 3];
    let receipt = RelayRegistry::deploy_builder(
        &provider,
        params,
        genesis,
        keys,
        stakes,
        (&openrelay_chain::deploy::ReleaseVoteParams::devnet()).into(),
    )
    .value(U256::from(3 * VALIDATOR_STAKE))
    .send()
    .await
    .expect("send deployment")
    .get_receipt()
    .await
    .expect("deployed");
    let contract = receipt.contract_address.expect("a contract address");
    let block = receipt.block_number.expect("mined");
    let validators = validator_signers
        .into_iter()
        .map(|signer| {
            let provider = ProviderBuilder::new()
                .wallet(signer)
                .connect_http(url(anvil))
                .erased();
            RelayRegistry::new(contract, provider)
        })
        .collect();
    Deployed {
        contract,
        block,
        validators,
    }
}

fn relay_key(tag: u8) -> B256 {
    B256::repeat_byte(0x40 + tag)
}

/// Registers an operator staking for `covered_mbps` and relays of the
/// given bandwidths (relay keys `tags`).
async fn operator_with_relays(
    anvil: &Anvil,
    contract: Address,
    covered_mbps: u64,
    relays: &[(u8, u32)],
) -> Address {
    let (address, registry) = account(anvil, contract).await;
    let operator_key = B256::from(U256::from_be_slice(address.as_slice()) + U256::from(1));
    registry
        .registerOperator(operator_key, B256::repeat_byte(0x11))
        .value(U256::from(covered_mbps * STAKE_PER_MBPS))
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("registered");
    for &(tag, mbps) in relays {
        registry
            .registerRelay(relay_key(tag), 1 + tag % 2, mbps, B256::repeat_byte(tag))
            .send()
            .await
            .expect("send")
            .get_receipt()
            .await
            .expect("relay registered");
    }
    address
}

async fn rpc(anvil: &Anvil, method: &'static str, params: serde_json::Value) -> serde_json::Value {
    let provider = ProviderBuilder::new().connect_http(url(anvil));
    provider
        .raw_request(method.into(), params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

async fn mine(anvil: &Anvil, blocks: u64) {
    for _ in 0..blocks {
        rpc(anvil, "evm_mine", serde_json::json!([])).await;
    }
}

fn config(deployed: &Deployed, confirmations: u64) -> FollowerConfig {
    let mut config = FollowerConfig::new(CHAIN_ID, deployed.contract, deployed.block);
    config.confirmations = confirmations;
    // Small, so catching up takes several polls.
    config.max_blocks_per_poll = 3;
    config
}

/// Polls until the follower is at the node's head; whether a reorg was
/// seen on the way.
async fn catch_up<P: Provider>(follower: &mut Follower<P>) -> bool {
    let mut reorg = false;
    for _ in 0..200 {
        let polled = follower.poll().await.expect("poll");
        reorg |= polled.reorg;
        if polled.caught_up {
            return reorg;
        }
    }
    panic!("not caught up after 200 polls");
}

fn listed(snapshot: &ChainSnapshot) -> Vec<(Address, B256)> {
    let mut relays: Vec<_> = snapshot
        .covered_relays(U256::from(STAKE_PER_MBPS))
        .into_iter()
        .map(|r| (r.relay.operator, r.relay.relay_key))
        .collect();
    relays.sort();
    relays
}

fn sorted(mut relays: Vec<(Address, B256)>) -> Vec<(Address, B256)> {
    relays.sort();
    relays
}

fn latest(follower: &Follower<impl Provider>) -> Arc<ChainSnapshot> {
    follower
        .snapshots()
        .borrow()
        .clone()
        .expect("a confirmed snapshot")
}

/// The snapshot is at the node's head less `confirmations`, on the node's
/// chain.
async fn assert_confirmed_canonical(
    provider: &impl Provider,
    snapshot: &ChainSnapshot,
    confirmations: u64,
) {
    let head = provider.get_block_number().await.expect("head");
    assert_eq!(snapshot.block_number, head - confirmations);
    let block = provider
        .get_block_by_number(snapshot.block_number.into())
        .await
        .expect("block")
        .expect("exists");
    assert_eq!(block.header.hash, snapshot.block_hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_exactly_the_covered_relays_and_follows_a_real_reorg() {
    let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
    let deployed = deploy(&anvil).await;
    let provider = ProviderBuilder::new().connect_http(url(&anvil));
    let params = read_params(&provider, deployed.contract)
        .await
        .expect("params");
    assert_eq!(params.stakePerMbps, U256::from(STAKE_PER_MBPS));

    // A: 30 Mbit/s covered, two relays. B: 10 covered, one relay of 10,
    // then slashed below cover by the validator quorum.
    let a = operator_with_relays(&anvil, deployed.contract, 30, &[(1, 10), (2, 20)]).await;
    let b = operator_with_relays(&anvil, deployed.contract, 10, &[(3, 10)]).await;
    for validator in &deployed.validators {
        validator
            .approveSlash(1, b, U256::from(1), B256::repeat_byte(0xEE))
            .send()
            .await
            .expect("send")
            .get_receipt()
            .await
            .expect("approved");
    }
    let b_contract = RelayRegistry::new(deployed.contract, &provider);
    assert!(!b_contract.isCovered(b).call().await.expect("isCovered"));

    let confirmations = 2;
    let mut follower = Follower::new(provider.clone(), config(&deployed, confirmations));
    let snapshots = follower.snapshots();
    assert!(snapshots.borrow().is_none());
    mine(&anvil, confirmations).await;
    catch_up(&mut follower).await;
    let snapshot = latest(&follower);
    assert_confirmed_canonical(&provider, &snapshot, confirmations).await;
    assert_eq!(
        listed(&snapshot),
        sorted(vec![(a, relay_key(1)), (a, relay_key(2))]),
        "A's relays; B's is uncovered after the slash"
    );
    assert_eq!(snapshot.relays.len(), 3, "B's relay is still registered");
    assert_eq!(
        snapshot.operators[&b].stake,
        U256::from(10 * STAKE_PER_MBPS - 1)
    );
    let genesis = snapshot.current_validator_set().expect("genesis set");
    assert_eq!((genesis.epoch, genesis.members.len()), (0, 3));
    assert_eq!(genesis.block_number, deployed.block);

    // The reorg: C's relay lands in a block the follower sees (not yet
    // confirmed), then the chain is reverted and D's relay lands instead.
    let fork: String =
        serde_json::from_value(rpc(&anvil, "evm_snapshot", serde_json::json!([])).await)
            .expect("snapshot id");
    let c = operator_with_relays(&anvil, deployed.contract, 5, &[(4, 5)]).await;
    catch_up(&mut follower).await;
    let seen = follower.state().head().expect("head");
    assert_eq!(
        seen.number,
        provider.get_block_number().await.expect("head")
    );
    assert!(
        follower.state().confirmed().expect("confirmed").number < seen.number - 1,
        "C's blocks are within the depth"
    );
    let reverted = rpc(&anvil, "evm_revert", serde_json::json!([fork])).await;
    assert_eq!(reverted, serde_json::json!(true));
    let d = operator_with_relays(&anvil, deployed.contract, 7, &[(5, 7)]).await;
    mine(&anvil, confirmations + 2).await;
    assert!(catch_up(&mut follower).await, "the follower saw the reorg");
    let snapshot = latest(&follower);
    assert_confirmed_canonical(&provider, &snapshot, confirmations).await;
    assert_eq!(
        listed(&snapshot),
        sorted(vec![
            (a, relay_key(1)),
            (a, relay_key(2)),
            (d, relay_key(5))
        ]),
        "D's relay, not C's"
    );
    assert!(!snapshot.operators.contains_key(&c));
    assert_eq!(*snapshots.borrow(), Some(snapshot));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_deeper_than_the_depth_is_an_error_then_a_resync() {
    let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
    let deployed = deploy(&anvil).await;
    let provider = ProviderBuilder::new().connect_http(url(&anvil));
    let fork: String =
        serde_json::from_value(rpc(&anvil, "evm_snapshot", serde_json::json!([])).await)
            .expect("snapshot id");
    let gone = operator_with_relays(&anvil, deployed.contract, 5, &[(1, 5)]).await;
    mine(&anvil, 3).await;
    let mut follower = Follower::new(provider.clone(), config(&deployed, 1));
    catch_up(&mut follower).await;
    assert_eq!(listed(&latest(&follower)), vec![(gone, relay_key(1))]);

    rpc(&anvil, "evm_revert", serde_json::json!([fork])).await;
    let kept = operator_with_relays(&anvil, deployed.contract, 5, &[(2, 5)]).await;
    mine(&anvil, 6).await;
    let error = loop {
        match follower.poll().await {
            Ok(polled) => assert!(!polled.caught_up, "the deep reorg goes unnoticed"),
            Err(error) => break error,
        }
    };
    assert!(
        matches!(
            error,
            FollowError::Feed(FeedError::ReorgTooDeep {
                confirmations: 1,
                ..
            })
        ),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::PeerMisbehaved);
    // The stale snapshot stays until the resync reaches its block.
    assert_eq!(listed(&latest(&follower)), vec![(gone, relay_key(1))]);
    follower.resync();
    catch_up(&mut follower).await;
    let snapshot = latest(&follower);
    assert_eq!(listed(&snapshot), vec![(kept, relay_key(2))]);
    assert!(!snapshot.operators.contains_key(&gone));
}

/// anvil's own reorg (`anvil_reorg`): the blocks holding a registration
/// replaced by empty ones at the same heights; the follower notices when
/// the node's chain grows past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_height_reorg_drops_a_registration() {
    let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
    let deployed = deploy(&anvil).await;
    let provider = ProviderBuilder::new().connect_http(url(&anvil));
    let kept = operator_with_relays(&anvil, deployed.contract, 5, &[(1, 5)]).await;
    mine(&anvil, 3).await;
    let head = provider.get_block_number().await.expect("head");
    // Two transactions, two blocks: the registration and its relay.
    let gone = operator_with_relays(&anvil, deployed.contract, 5, &[(2, 5)]).await;
    let mut follower = Follower::new(provider.clone(), config(&deployed, 3));
    catch_up(&mut follower).await;
    assert_eq!(
        follower.state().head().map(|h| h.number),
        Some(head + 2),
        "the follower holds the blocks about to be replaced"
    );
    assert_eq!(listed(&latest(&follower)), vec![(kept, relay_key(1))]);

    rpc(&anvil, "anvil_reorg", serde_json::json!([2, []])).await;
    assert_eq!(provider.get_block_number().await.expect("head"), head + 2);
    mine(&anvil, 3).await;
    assert!(catch_up(&mut follower).await, "the follower saw the reorg");
    let snapshot = latest(&follower);
    assert_confirmed_canonical(&provider, &snapshot, 3).await;
    assert_eq!(listed(&snapshot), vec![(kept, relay_key(1))]);
    assert!(!snapshot.operators.contains_key(&gone));
    assert_eq!(
        snapshot.block_number,
        head + 2,
        "the replaced blocks are confirmed"
    );
}

/// A TCP proxy to anvil that can be stopped (its listener and every
/// connection closed) and started again on the same port.
struct Proxy {
    port: u16,
    target: std::net::SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    fn new(anvil: &Anvil) -> Proxy {
        let target = url(anvil).socket_addrs(|| None).expect("anvil address")[0];
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .port();
        Proxy {
            port,
            target,
            task: None,
        }
    }

    fn url(&self) -> Url {
        format!("http://127.0.0.1:{}", self.port)
            .parse()
            .expect("a URL")
    }

    async fn start(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the proxy's port is free again");
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Log lines captured from the current thread's spans and events.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, needle: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned();
        text.lines().filter(|line| line.contains(needle)).count()
    }
}

// Current-thread: the follower's task logs to this thread's subscriber.
#[tokio::test]
async fn an_unreachable_node_is_a_typed_error_and_following_recovers() {
    let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
    let deployed = deploy(&anvil).await;
    let relay = operator_with_relays(&anvil, deployed.contract, 5, &[(1, 5)]).await;
    mine(&anvil, 2).await;
    let mut proxy = Proxy::new(&anvil);
    let provider = ProviderBuilder::new().connect_http(proxy.url());

    // Nothing listens: a typed error, not a panic.
    let mut follower = Follower::new(provider.clone(), config(&deployed, 1));
    let error = follower.poll().await.expect_err("nothing listens");
    assert!(matches!(error, FollowError::Rpc(_)), "{error}");
    assert_eq!(error.kind(), ErrorKind::Unreachable);
    let error = read_params(&provider, deployed.contract)
        .await
        .expect_err("nothing listens");
    assert_eq!(error.kind(), ErrorKind::Unreachable);

    // A node that accepts connections and never answers: a timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_url: Url = format!("http://{}", silent.local_addr().expect("address"))
        .parse()
        .expect("a URL");
    let held = tokio::spawn(async move {
        let mut accepted = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            accepted.push(stream);
        }
    });
    let mut config_silent = config(&deployed, 1);
    config_silent.poll_timeout = Duration::from_millis(300);
    let mut follower = Follower::new(
        ProviderBuilder::new().connect_http(silent_url),
        config_silent,
    );
    let error = follower.poll().await.expect_err("no answer");
    assert!(matches!(error, FollowError::Timeout(_)), "{error}");
    assert_eq!(error.kind(), ErrorKind::Unreachable);
    held.abort();

    // `run` retries with back-off, warning once, and recovers when the
    // node is back.
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut config = config(&deployed, 1);
    config.poll_interval = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(80);
    let follower = Follower::new(provider.clone(), config);
    let mut snapshots = follower.snapshots();
    let running = tokio::spawn(follower.run());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(snapshots.borrow().is_none());
    assert_eq!(captured.lines_with("WARN"), 1, "one warning for the outage");
    proxy.start().await;
    tokio::time::timeout(
        Duration::from_secs(30),
        snapshots.wait_for(|snapshot| {
            snapshot
                .as_ref()
                .is_some_and(|s| !s.covered_relays(U256::from(STAKE_PER_MBPS)).is_empty())
        }),
    )
    .await
    .expect("recovered in time")
    .expect("follower running");
    assert_eq!(
        listed(snapshots.borrow().as_ref().expect("snapshot")),
        vec![(relay, relay_key(1))]
    );
    assert_eq!(captured.lines_with("answering again"), 1);

    // Down again, then back: one more warning, and it follows new blocks.
    proxy.stop().await;
    mine(&anvil, 1).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(captured.lines_with("WARN"), 2, "one warning per outage");
    let before = snapshots.borrow().as_ref().map(|s| s.block_number);
    proxy.start().await;
    mine(&anvil, 1).await;
    tokio::time::timeout(
        Duration::from_secs(30),
        snapshots.wait_for(|snapshot| snapshot.as_ref().map(|s| s.block_number) > before),
    )
    .await
    .expect("recovered in time")
    .expect("follower running");
    assert_eq!(captured.lines_with("panicked"), 0);
    running.abort();
    proxy.stop().await;
}
