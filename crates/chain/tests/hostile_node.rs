//! The follower against a hostile JSON-RPC node: a real HTTP server on
//! loopback (a raw tokio listener) that answers the first calls honestly
//! and then `eth_getLogs` with an announced gigabyte, a body that never
//! ends, or more logs than a poll takes. Each is a typed error naming the
//! bound (after narrowing the range to one block), the follower keeps the
//! snapshot it had, and it reads no more than the bound. On a real chain
//! (anvil), a range holding more logs than a poll takes is fetched in
//! smaller ranges.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest::Url;
use openrelay_chain::anvil::Anvil;
use openrelay_chain::deploy::{ChainParams, GenesisValidator, deploy};
use openrelay_chain::follow::{FollowError, Follower, FollowerConfig};
use openrelay_chain::measure::KnownRegistrations;
use openrelay_chain::operator::{Registry, signing_provider};
use openrelay_chain::rpc::{ResponseTooLarge, bounded_provider};
use openrelay_types::{ErrorKind, HasKind, RelayRole};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHAIN_ID: u64 = 31_337;
/// The answer bound of the followers under test.
const LIMIT: usize = 1 << 20;
/// The block the fake contract was deployed in.
const DEPLOYED: u64 = 10;

/// How the fake node answers `eth_getLogs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// No logs.
    Honest = 0,
    /// Announces a gigabyte (`Content-Length`) and sends zeros.
    Gigabyte = 1,
    /// A chunked body that never ends.
    Endless = 2,
    /// `max_logs_per_poll + 1` logs for every block.
    TooManyLogs = 3,
}

/// A fake node on loopback: blocks up to `head` (hash of block `n` is `n`
/// as a 32-byte number), `eth_getLogs` as `mode` says.
struct FakeNode {
    url: Url,
    mode: Arc<AtomicU8>,
    head: Arc<AtomicU64>,
    logs_per_block: usize,
    contract: Address,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hash(number: u64) -> B256 {
    B256::from(U256::from(number))
}

impl FakeNode {
    async fn start(logs_per_block: usize) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"))
            .parse()
            .expect("a URL");
        let mode = Arc::new(AtomicU8::new(Mode::Honest as u8));
        let head = Arc::new(AtomicU64::new(DEPLOYED + 5));
        let contract = Address::repeat_byte(0xC0);
        let state = (Arc::clone(&mode), Arc::clone(&head));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (mode, head) = (Arc::clone(&state.0), Arc::clone(&state.1));
                tokio::spawn(serve(stream, mode, head, logs_per_block, contract));
            }
        });
        FakeNode {
            url,
            mode,
            head,
            logs_per_block,
            contract,
            task,
        }
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn follower(&self, max_blocks_per_poll: u64) -> Follower<alloy::providers::DynProvider> {
        let mut config = FollowerConfig::new(CHAIN_ID, self.contract, DEPLOYED);
        config.confirmations = 1;
        config.max_blocks_per_poll = max_blocks_per_poll;
        config.max_logs_per_poll = self.logs_per_block.saturating_sub(1).max(1);
        config.poll_timeout = Duration::from_secs(60);
        Follower::new(bounded_provider(self.url.clone(), LIMIT), config)
    }
}

/// Reads one HTTP/1.1 request's body (`None` when the peer closed).
async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buffer.len() > 64 * 1024 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Some(buffer[header_end..header_end + length].to_vec())
}

/// Answers `200 OK` with the JSON `body`; whether the peer took it.
async fn respond(stream: &mut TcpStream, body: &[u8]) -> bool {
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.is_ok() && stream.write_all(body).await.is_ok()
}

async fn serve(
    mut stream: TcpStream,
    mode: Arc<AtomicU8>,
    head: Arc<AtomicU64>,
    logs_per_block: usize,
    contract: Address,
) {
    while let Some(body) = read_request(&mut stream).await {
        let request: Value = serde_json::from_slice(&body).expect("JSON-RPC");
        let calls = match &request {
            Value::Array(calls) => calls.clone(),
            call => vec![call.clone()],
        };
        let wants_logs = calls.iter().any(|c| c["method"] == "eth_getLogs");
        let mode = mode.load(Ordering::SeqCst);
        if wants_logs && mode == Mode::Gigabyte as u8 {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n")
                .await;
            let zeros = vec![b' '; 64 * 1024];
            while stream.write_all(&zeros).await.is_ok() {}
            return;
        }
        if wants_logs && mode == Mode::Endless as u8 {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n[\r\n")
                .await;
            let mut chunk = format!("{:x}\r\n", 64 * 1024).into_bytes();
            chunk.extend(std::iter::repeat_n(b' ', 64 * 1024));
            chunk.extend_from_slice(b"\r\n");
            while stream.write_all(&chunk).await.is_ok() {}
            return;
        }
        let answer = |call: &Value| {
            let result = match call["method"].as_str().unwrap_or_default() {
                "eth_chainId" => json!(format!("{CHAIN_ID:#x}")),
                "eth_blockNumber" => json!(format!("{:#x}", head.load(Ordering::SeqCst))),
                "eth_getBlockByNumber" => {
                    let number = u64::from_str_radix(
                        call["params"][0]
                            .as_str()
                            .unwrap_or_default()
                            .trim_start_matches("0x"),
                        16,
                    )
                    .expect("a block number");
                    json!({
                        "number": format!("{number:#x}"),
                        "hash": hash(number),
                        "parentHash": hash(number.saturating_sub(1)),
                    })
                }
                "eth_getLogs" if mode == Mode::TooManyLogs as u8 => {
                    let block = call["params"][0]["blockHash"].clone();
                    let logs: Vec<Value> = (0..logs_per_block)
                        .map(|index| {
                            json!({
                                "address": contract,
                                "topics": [B256::repeat_byte(7)],
                                "data": "0x",
                                "blockHash": block,
                                "blockNumber": "0x1",
                                "transactionHash": B256::repeat_byte(9),
                                "transactionIndex": "0x0",
                                "logIndex": format!("{index:#x}"),
                                "removed": false,
                            })
                        })
                        .collect();
                    json!(logs)
                }
                "eth_getLogs" => json!([]),
                other => panic!("unexpected call {other}"),
            };
            json!({"jsonrpc": "2.0", "id": call["id"], "result": result})
        };
        let answers: Vec<Value> = calls.iter().map(answer).collect();
        let body = match request {
            Value::Array(_) => serde_json::to_vec(&answers),
            _ => serde_json::to_vec(&answers[0]),
        }
        .expect("serialise");
        if !respond(&mut stream, &body).await {
            return;
        }
    }
}

/// Polls until caught up with the fake node's head.
async fn catch_up(follower: &mut Follower<alloy::providers::DynProvider>) {
    for _ in 0..50 {
        if follower.poll().await.expect("honest poll").caught_up {
            return;
        }
    }
    panic!("not caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_endless_answers_are_cut_at_the_bound_and_the_snapshot_is_kept() {
    for mode in [Mode::Gigabyte, Mode::Endless] {
        let node = FakeNode::start(0).await;
        let mut follower = node.follower(8);
        catch_up(&mut follower).await;
        let kept = follower.snapshots().borrow().clone().expect("a snapshot");
        node.set(mode);
        node.head.fetch_add(20, Ordering::SeqCst);
        let error = follower.poll().await.expect_err("hostile answer");
        assert!(
            matches!(
                error,
                FollowError::ResponseTooLarge(ResponseTooLarge { limit: LIMIT })
            ),
            "{mode:?}: {error}"
        );
        assert_eq!(error.kind(), ErrorKind::PeerMisbehaved);
        assert!(error.to_string().contains(&LIMIT.to_string()), "{error}");
        assert_eq!(
            follower.snapshots().borrow().as_deref(),
            Some(&*kept),
            "{mode:?}: the last snapshot is kept"
        );
        assert_eq!(
            follower.state().confirmed().map(|b| b.number),
            Some(kept.block_number)
        );
        // Honest again: following goes on from where it was.
        node.set(Mode::Honest);
        catch_up(&mut follower).await;
        assert_eq!(
            follower.state().confirmed().map(|b| b.number),
            Some(node.head.load(Ordering::SeqCst) - 1)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_logs_than_a_poll_takes_for_one_block_is_a_typed_error() {
    let node = FakeNode::start(6).await;
    let mut follower = node.follower(8);
    catch_up(&mut follower).await;
    let kept = follower.snapshots().borrow().clone().expect("a snapshot");
    let next = follower.state().next_block();
    node.set(Mode::TooManyLogs);
    node.head.fetch_add(20, Ordering::SeqCst);
    let error = follower.poll().await.expect_err("too many logs");
    assert!(
        matches!(error, FollowError::TooManyLogs { limit: 5, block } if block == next),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::PeerMisbehaved);
    assert!(error.to_string().contains("more than 5"), "{error}");
    assert_eq!(follower.snapshots().borrow().as_deref(), Some(&*kept));
}

/// The contract deployed on `anvil` (one genesis validator), then an
/// operator registered with `relays` relays of 10 Mbit/s (keys `0x40`,
/// `0x41`, ...), a transaction and so a block each: the contract, the
/// block it was deployed in and the operator's account.
async fn deploy_with_relays(anvil: &Anvil, relays: u8) -> (Address, u64, PrivateKeySigner) {
    let deployer = PrivateKeySigner::random();
    let ether = U256::from(10u128.pow(18));
    anvil
        .fund(deployer.address(), ether * U256::from(100))
        .await
        .expect("fund");
    let genesis = [GenesisValidator {
        account: PrivateKeySigner::random().address(),
        key: [1; 32],
        stake: ether * U256::from(2),
    }];
    let url: Url = anvil.endpoint().parse().expect("a URL");
    let provider = signing_provider(url, deployer);
    let contract = deploy(provider.clone(), &ChainParams::devnet(), &genesis)
        .await
        .expect("deploy");
    let deployed = alloy::providers::Provider::get_block_number(&provider)
        .await
        .expect("head");
    let operator = PrivateKeySigner::random();
    anvil
        .fund(operator.address(), ether * U256::from(100))
        .await
        .expect("fund");
    let registry = Registry::connect(
        anvil.endpoint(),
        CHAIN_ID,
        contract,
        operator.clone(),
        Duration::from_secs(10),
    )
    .await
    .expect("connect");
    registry
        .register_operator([2; 32], [0; 32], ether * U256::from(10))
        .await
        .expect("register");
    for tag in 0..relays {
        registry
            .register_relay([0x40 + tag; 32], RelayRole::Egress, 10, [tag; 32])
            .await
            .expect("relay");
    }
    (contract, deployed, operator)
}

/// On a real chain, blocks holding more logs together than a poll takes
/// are fetched in smaller ranges: following does not stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_with_more_logs_than_a_poll_takes_is_fetched_in_smaller_ranges() {
    let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
    let url: Url = anvil.endpoint().parse().expect("a URL");
    let (contract, _, _) = deploy_with_relays(&anvil, 4).await;
    let _: String = alloy::providers::Provider::raw_request(
        &alloy::providers::ProviderBuilder::new().connect_http(url.clone()),
        "evm_mine".into(),
        (),
    )
    .await
    .expect("mine");
    // Every block holds at most two of the contract's logs (one
    // transaction each); together they hold seven.
    let mut config = FollowerConfig::new(CHAIN_ID, contract, 0);
    config.confirmations = 1;
    config.max_blocks_per_poll = 64;
    config.max_logs_per_poll = 2;
    let mut follower = Follower::new(bounded_provider(url, LIMIT), config);
    for _ in 0..100 {
        if follower.poll().await.expect("poll").caught_up {
            break;
        }
    }
    let snapshot = follower.state().snapshot().expect("a snapshot");
    assert_eq!(snapshot.relays.len(), 4, "every relay followed");
    assert_eq!(snapshot.validator_sets.len(), 1);
}

/// How a proxy in front of anvil changes an answer: given the call and
/// anvil's answer, the answer to give.
type Tamper = Arc<dyn Fn(&Value, Value) -> Value + Send + Sync>;

/// A node in front of anvil whose answers `tamper` may change.
async fn proxy_node(anvil: &Anvil, tamper: Tamper) -> (Url, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"))
        .parse()
        .expect("a URL");
    let upstream = anvil.endpoint().to_owned();
    let task = tokio::spawn(async move {
        let client = alloy::transports::http::reqwest::Client::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let (client, upstream, tamper) =
                (client.clone(), upstream.clone(), Arc::clone(&tamper));
            tokio::spawn(async move {
                while let Some(body) = read_request(&mut stream).await {
                    let call: Value = serde_json::from_slice(&body).expect("JSON-RPC");
                    let answer: Value = client
                        .post(&upstream)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("anvil answers")
                        .json()
                        .await
                        .expect("anvil's JSON");
                    let answer = serde_json::to_vec(&tamper(&call, answer)).expect("serialise");
                    if !respond(&mut stream, &answer).await {
                        return;
                    }
                }
            });
        }
    });
    (url, task)
}

/// A node in front of anvil that, like public and history-expiring nodes,
/// refuses `eth_getLogs` over more than `max_range` blocks, without an
/// upper block, or from below `first_block` (its history starts there).
async fn limiting_node(
    anvil: &Anvil,
    first_block: u64,
    max_range: u64,
) -> (Url, tokio::task::JoinHandle<()>) {
    let tamper = move |call: &Value, answer: Value| {
        let block = |field: &str| {
            call["params"][0][field]
                .as_str()
                .and_then(|n| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok())
        };
        let refused = call["method"] == "eth_getLogs"
            && match (block("fromBlock"), block("toBlock")) {
                (Some(from), Some(to)) => {
                    from < first_block || to.saturating_sub(from) >= max_range
                }
                _ => true,
            };
        if refused {
            json!({
                "jsonrpc": "2.0",
                "id": call["id"],
                "error": {"code": -32000, "message": "block range too wide or history pruned"},
            })
        } else {
            answer
        }
    };
    proxy_node(anvil, Arc::new(tamper)).await
}

/// Mines `blocks` blocks at once (`anvil_mine`).
async fn mine(provider: &impl alloy::providers::Provider, blocks: u64) {
    let _: Value = provider
        .raw_request("anvil_mine".into(), (format!("{blocks:#x}"),))
        .await
        .expect("mine");
}

/// Item 2 of the follow-up to issue 13: `operator status` reads the
/// relays' events from the contract's deployment block (given, or found by
/// bisection) in ranges a public node accepts, not from block 0 in one
/// range.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_status_reads_events_from_the_deployment_block_in_bounded_ranges() {
    use openrelay_chain::operator::LOG_RANGE_BLOCKS;
    let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
    let provider = alloy::providers::ProviderBuilder::new()
        .connect_http(anvil.endpoint().parse().expect("a URL"));
    // A chain with history before the contract, and more blocks after its
    // deployment than one range.
    mine(&provider, 3 * LOG_RANGE_BLOCKS).await;
    let (contract, deployed, operator) = deploy_with_relays(&anvil, 1).await;
    mine(&provider, 2 * LOG_RANGE_BLOCKS).await;

    let (limited, node) = limiting_node(&anvil, deployed, LOG_RANGE_BLOCKS).await;
    let registry = Registry::connect(
        limited.as_str(),
        CHAIN_ID,
        contract,
        operator,
        Duration::from_secs(10),
    )
    .await
    .expect("connect");
    assert_eq!(registry.deployment_block().await.expect("found"), deployed);
    for from_block in [Some(deployed), None] {
        let status = registry.status(from_block).await.expect("status");
        assert_eq!(status.relays.len(), 1, "{from_block:?}");
        assert_eq!(status.relays[0].relay_key, [0x40; 32]);
    }
    // From before the node's history: the node's refusal, as an error.
    registry.status(Some(0)).await.expect_err("history pruned");
    node.abort();
}

/// Issue 14, measurement epochs: a node that answers the `ReportRevealed`
/// logs of an epoch with the real one plus duplicates, garbage, a length
/// field claiming 2^255 bytes, logs of other blocks, contracts and epochs,
/// truncated topics, and a forged reveal for a member that never committed.
/// Reading the epoch neither panics nor fails: the real reveal counts and
/// every forgery is listed as refused with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_reveal_logs_are_refused_not_fatal() {
    use alloy::sol_types::SolEvent;
    use openrelay_chain::contract::RelayRegistry::{RelayRegistered, ReportRevealed};
    use openrelay_chain::measure::EpochReadError;
    use openrelay_chain::measure::RevealRefusal;
    use openrelay_measure::{Measurement, RelayId, Reveal, ValidatorId, ValidatorReport};

    let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
    let ether = U256::from(10u128.pow(18));
    let signers: Vec<PrivateKeySigner> = (0..3).map(|_| PrivateKeySigner::random()).collect();
    for s in &signers {
        anvil
            .fund(s.address(), ether * U256::from(100))
            .await
            .expect("fund");
    }
    let (deployer, honest, silent) = (&signers[0], &signers[1], &signers[2]);
    let genesis: Vec<GenesisValidator> = [honest, silent]
        .iter()
        .enumerate()
        .map(|(i, s)| GenesisValidator {
            account: s.address(),
            key: [0xA0 + i as u8; 32],
            stake: ether * U256::from(2),
        })
        .collect();
    let params = ChainParams::devnet()
        .with_measure_epochs(Duration::from_secs(600), Duration::from_secs(200));
    let url: Url = anvil.endpoint().parse().expect("a URL");
    let contract = deploy(
        signing_provider(url.clone(), deployer.clone()),
        &params,
        &genesis,
    )
    .await
    .expect("deploy");
    let connect = |rpc: String, who: PrivateKeySigner| async move {
        Registry::connect(&rpc, CHAIN_ID, contract, who, Duration::from_secs(30))
            .await
            .expect("connect")
    };
    let validator = connect(anvil.endpoint().to_owned(), honest.clone()).await;
    let clock = validator.measure_timing().await.expect("clock");
    let operator = connect(anvil.endpoint().to_owned(), deployer.clone()).await;
    operator
        .register_operator([2; 32], [0; 32], ether)
        .await
        .expect("operator");
    operator
        .register_relay([0x10; 32], RelayRole::Egress, 10, [0; 32])
        .await
        .expect("relay");
    let report = ValidatorReport {
        relay: RelayId([0x10; 32]),
        probes_sent: 10,
        probes_answered: 10,
        measurement: Measurement::Reachable {
            capacity_bps: 1_000_000,
            rtt_micros: 1_000,
        },
    };
    let reveal = Reveal::new(0, ValidatorId([0xA0; 32]), vec![report], [7; 32]).expect("reveal");
    validator
        .commit_report(0, reveal.commitment())
        .await
        .expect("commit");
    let at = |time: u64| {
        let provider = alloy::providers::ProviderBuilder::new().connect_http(url.clone());
        async move {
            let _: Value = alloy::providers::Provider::raw_request(
                &provider,
                "evm_setNextBlockTimestamp".into(),
                (time,),
            )
            .await
            .expect("set time");
            mine(&provider, 1).await;
        }
    };
    at(clock.end(0) + 5).await;
    validator
        .reveal_report(0, &reveal.to_bytes())
        .await
        .expect("reveal");
    at(clock.reveal_deadline(0)).await;

    let silent_topic = silent.address().into_word();
    let break_registrations = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let broken = Arc::clone(&break_registrations);
    // Reveal logs in answers to calls that did not ask for them alone: the
    // follower's (it must not fetch reveals at all).
    let unasked_reveals = Arc::new(AtomicU64::new(0));
    let unasked = Arc::clone(&unasked_reveals);
    let tamper = move |call: &Value, mut answer: Value| {
        let reveal_topic = json!(ReportRevealed::SIGNATURE_HASH);
        // The follower batches its calls: an array of calls, one of answers
        // in the same order.
        let (calls, answers) = match (call, &answer) {
            (Value::Array(calls), Value::Array(answers)) => (calls.clone(), answers.clone()),
            _ => (vec![call.clone()], vec![answer.clone()]),
        };
        for (call, answer) in calls.iter().zip(&answers) {
            if call["method"] == "eth_getLogs" && call["params"][0]["topics"][0] != reveal_topic {
                let logs = answer["result"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let reveals = logs.iter().filter(|log| log["topics"][0] == reveal_topic);
                unasked.fetch_add(reveals.count() as u64, Ordering::SeqCst);
            }
        }
        let asks_registrations = call["method"] == "eth_getLogs"
            && call["params"][0]["topics"][0] == json!(RelayRegistered::SIGNATURE_HASH);
        if asks_registrations && broken.load(Ordering::SeqCst) {
            if let Some(log) = answer["result"][0].as_object_mut() {
                log.insert("data".to_owned(), json!("0x01"));
            }
            return answer;
        }
        let asks_reveals = call["method"] == "eth_getLogs"
            && call["params"][0]["topics"][0] == json!(ReportRevealed::SIGNATURE_HASH);
        let Some(real) = answer["result"][0]
            .as_object()
            .filter(|_| asks_reveals)
            .cloned()
        else {
            return answer;
        };
        let with = |field: &str, value: Value| {
            let mut log = real.clone();
            log.insert(field.to_owned(), value);
            Value::Object(log)
        };
        let topics = real["topics"].as_array().cloned().unwrap_or_default();
        let mut silent_topics = topics.clone();
        silent_topics[2] = json!(silent_topic);
        let mut other_epoch = topics.clone();
        other_epoch[1] = json!(B256::from(U256::from(1)));
        // ABI of `bytes`: offset 0x20, then a length of 2^255.
        let huge = format!("0x{:064x}8{}", 0x20, "0".repeat(63));
        answer["result"] = json!([
            Value::Object(real.clone()),
            Value::Object(real.clone()),
            with("data", json!("0xdeadbeef")),
            with("data", json!(huge)),
            with("blockNumber", json!("0x1")),
            with("address", json!(Address::repeat_byte(0xEE))),
            with("topics", json!([topics[0]])),
            with("topics", json!(other_epoch)),
            with("topics", json!(silent_topics)),
        ]);
        answer
    };
    let (hostile, node) = proxy_node(&anvil, Arc::new(tamper)).await;
    let reader = connect(hostile.to_string(), honest.clone()).await;
    let read = reader
        .epoch_reveals(0, None, &mut KnownRegistrations::default())
        .await
        .expect("read despite the node");
    assert_eq!(read.verified(), vec![reveal]);
    assert_eq!(read.reveals[0].account, honest.address());
    let reasons: Vec<&RevealRefusal> = read.refused.iter().map(|r| &r.reason).collect();
    assert_eq!(reasons.len(), 8, "{reasons:?}");
    assert!(matches!(reasons[0], RevealRefusal::Duplicate));
    assert!(matches!(reasons[1], RevealRefusal::Undecodable(_)));
    assert!(matches!(reasons[2], RevealRefusal::Undecodable(_)));
    assert!(matches!(reasons[3], RevealRefusal::NotThisEpochsEvent));
    assert!(matches!(reasons[4], RevealRefusal::NotThisEpochsEvent));
    assert!(matches!(reasons[5], RevealRefusal::Undecodable(_)));
    assert!(matches!(reasons[6], RevealRefusal::NotThisEpochsEvent));
    // A forged reveal for a member that committed nothing: the commitment
    // on the chain (none) does not match.
    assert!(
        matches!(
            reasons[7],
            RevealRefusal::Invalid(openrelay_measure::RevealError::CommitmentMismatch)
        ),
        "{:?}",
        reasons[7]
    );
    assert_eq!(read.refused[7].account, Some(silent.address()));
    assert_eq!(read.relays.len(), 1, "the relay and its advert");
    // The registry's follower, through the same node, follows the relay
    // without fetching the reveal (up to 530 KB each).
    let mut config = FollowerConfig::new(CHAIN_ID, contract, 0);
    config.confirmations = 1;
    let mut follower = Follower::new(bounded_provider(hostile.clone(), LIMIT), config);
    for _ in 0..100 {
        if follower.poll().await.expect("poll").caught_up {
            break;
        }
    }
    assert_eq!(
        follower
            .state()
            .snapshot()
            .expect("a snapshot")
            .relays
            .len(),
        1
    );
    assert_eq!(unasked_reveals.load(Ordering::SeqCst), 0);
    // A registration that does not decode would leave a relay out of the
    // epoch (and out of its slash): the reading stops with a typed error.
    break_registrations.store(true, Ordering::SeqCst);
    let e = reader
        .epoch_reveals(0, None, &mut KnownRegistrations::default())
        .await
        .expect_err("undecodable");
    assert!(matches!(e, EpochReadError::UndecodableLog { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::PeerMisbehaved);
    node.abort();
}
