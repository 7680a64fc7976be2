//! `--rpc` (issue 13, item 4) against a real anvil with the real
//! `RelayRegistry` deployed and the fixtures' operators and relays
//! registered on it: a directory whose chain section is the chain's passes;
//! one that misstates a stake or lists a descriptor other than the one
//! committed on chain is refused, naming what differed. The JSON-RPC layer
//! runs here on a plain TCP stream to anvil; in the client the same bytes
//! cross the relays in a CONNECT flow (`RpcCheck::check_through`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use alloy::primitives::U256;
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use openrelay_chain::anvil::Anvil;
use openrelay_chain::contract::RelayRegistry;
use openrelay_chain::deploy::{ChainParams, GenesisValidator, deploy};
use openrelay_chain::operator::{Registry, signing_provider};
use openrelay_client::chain_check::{CheckError, Mismatch, RpcCheck, abi};
use openrelay_directory::{
    ChainAnchor, ChainOperator, ChainRelay, ChainSection, Directory, SignedDescriptor,
    VerifiedDirectory, verify_directory,
};
use openrelay_testkit::fixtures;
use openrelay_types::RelayRole;

const CHAIN_ID: u64 = 31_337;
const ETHER: u128 = 1_000_000_000_000_000_000;

#[test]
fn selectors_match_the_compiled_contract() {
    assert_eq!(
        abi::selector(abi::OPERATORS),
        RelayRegistry::operatorsCall::SELECTOR
    );
    assert_eq!(
        abi::selector(abi::IS_COVERED),
        RelayRegistry::isCoveredCall::SELECTOR
    );
    assert_eq!(
        abi::selector(abi::RELAYS),
        RelayRegistry::relaysCall::SELECTOR
    );
    assert_eq!(
        abi::selector(abi::COVER_FOR),
        RelayRegistry::coverForCall::SELECTOR
    );
}

/// The deployed chain and what the directory must say about it.
struct Chain {
    anvil: Anvil,
    contract: [u8; 20],
    /// (operator index, account) of the fixtures' three operators.
    accounts: Vec<(u8, [u8; 20])>,
    stake_per_mbps: u128,
}

/// The fixtures' network: relay `r`'s operator and role.
const RELAYS: [(u8, u8, RelayRole); 4] = [
    (0, 0, RelayRole::Ingress),
    (1, 1, RelayRole::Egress),
    (2, 2, RelayRole::Ingress),
    (3, 2, RelayRole::Egress),
];
/// The fixtures advertise 1 Gbit/s per relay.
const RELAY_MBPS: u32 = 1_000;

async fn funded(anvil: &Anvil) -> PrivateKeySigner {
    let signer = PrivateKeySigner::random();
    anvil
        .fund(signer.address(), U256::from(1_000_000 * ETHER))
        .await
        .unwrap();
    signer
}

/// Anvil with the contract, the fixtures' operators staked for exactly
/// their relays, and the relays registered with their descriptors' hashes.
async fn chain() -> Chain {
    let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
    let deployer = funded(&anvil).await;
    let validator = funded(&anvil).await;
    let params = ChainParams::devnet();
    let provider = signing_provider(anvil.endpoint().parse().unwrap(), deployer);
    let genesis = [GenesisValidator {
        account: validator.address(),
        key: [0xA0; 32],
        stake: params.min_validator_stake,
    }];
    let address = deploy(provider, &params, &genesis).await.unwrap();
    let mut accounts = Vec::new();
    for operator in 0..3u8 {
        let signer = funded(&anvil).await;
        let account = signer.address().into_array();
        let registry = Registry::connect(
            anvil.endpoint(),
            CHAIN_ID,
            address,
            signer,
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        let relays: Vec<_> = RELAYS.iter().filter(|r| r.1 == operator).collect();
        let mbps = u64::from(RELAY_MBPS) * relays.len() as u64;
        registry
            .register_operator(
                fixtures::operator_key(operator).id().to_bytes(),
                [0; 32],
                params.cover_for(mbps),
            )
            .await
            .unwrap();
        for &&(relay, _, role) in &relays {
            let descriptor = fixtures::descriptor(relay, operator, role);
            registry
                .register_relay(
                    fixtures::relay_key(relay).id().to_bytes(),
                    role,
                    RELAY_MBPS,
                    descriptor.descriptor().content_hash(),
                )
                .await
                .unwrap();
        }
        accounts.push((operator, account));
    }
    Chain {
        anvil,
        contract: address.into_array(),
        accounts,
        stake_per_mbps: u128::try_from(params.stake_per_mbps).unwrap(),
    }
}

impl Chain {
    /// The chain section at the latest block, as an honest registry
    /// writes it.
    async fn section(&self) -> ChainSection {
        let provider = alloy::providers::ProviderBuilder::new()
            .connect_http(self.anvil.endpoint().parse().unwrap());
        let block = provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .unwrap()
            .unwrap();
        let operators = self
            .accounts
            .iter()
            .map(|&(operator, account)| {
                let mbps = u64::from(RELAY_MBPS)
                    * RELAYS.iter().filter(|r| r.1 == operator).count() as u64;
                ChainOperator {
                    operator: fixtures::operator_key(operator).id(),
                    account,
                    stake_wei: u128::from(mbps) * self.stake_per_mbps,
                    covered_mbps: mbps,
                }
            })
            .collect();
        let relays = RELAYS
            .iter()
            .map(|&(relay, _, _)| ChainRelay {
                relay: fixtures::relay_key(relay).id(),
                bandwidth_mbps: RELAY_MBPS,
                measured: None,
            })
            .collect();
        ChainSection {
            anchor: ChainAnchor {
                chain_id: CHAIN_ID,
                contract: self.contract,
                block_number: block.header.number,
                block_hash: block.header.hash.0,
            },
            validator_epoch: 0,
            operators,
            relays,
            releases: Vec::new(),
        }
    }

    async fn check(&self, directory: &VerifiedDirectory) -> Result<(), CheckError> {
        let url = self.anvil.endpoint().parse().unwrap();
        let addr = self
            .anvil
            .endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        RpcCheck::new(url, false)
            .check_on(&mut stream, directory)
            .await
    }
}

/// The directory of `descriptors` and `section`, its operators' profiles
/// naming the accounts the section credits them with.
fn verified(descriptors: Vec<SignedDescriptor>, section: ChainSection) -> VerifiedDirectory {
    let operators = section
        .operators
        .iter()
        .map(|listed| {
            let i = (0..3u8)
                .find(|&i| fixtures::operator_key(i).id() == listed.operator)
                .unwrap();
            fixtures::profile_naming(i, listed.account)
        })
        .collect();
    let directory: Directory = fixtures::directory_with(1, operators, descriptors)
        .with_chain(section)
        .unwrap();
    let signed = fixtures::signed(&directory, &[0, 1]);
    verify_directory(signed, &fixtures::trust(2, 3), fixtures::T0, None).unwrap()
}

fn mismatch(result: Result<(), CheckError>) -> Mismatch {
    match result {
        Err(CheckError::Mismatch(m)) => m,
        other => panic!("not refused for a mismatch: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_is_confirmed_or_refused_by_a_real_node() {
    let chain = chain().await;
    let section = chain.section().await;
    let (_, descriptors) = fixtures::network();

    // As the chain has it: confirmed.
    chain
        .check(&verified(descriptors.clone(), section.clone()))
        .await
        .unwrap();

    // A stake one wei above the chain's.
    let mut inflated = section.clone();
    inflated.operators[1].stake_wei += 1;
    let m = mismatch(
        chain
            .check(&verified(descriptors.clone(), inflated.clone()))
            .await,
    );
    let operator = inflated.operators[1];
    assert_eq!(
        m,
        Mismatch::Stake {
            operator: operator.operator,
            directory: operator.stake_wei,
            node: Some(operator.stake_wei - 1),
        }
    );
    assert!(
        m.to_string()
            .contains(&format!("stake of {} wei", operator.stake_wei)),
        "{m}"
    );

    // Relay 3 listed with a descriptor other than the one its operator
    // committed to (another region): same key, same bandwidth.
    let mut fields = fixtures::descriptor_fields(3, 2, RelayRole::Egress);
    fields.region.city = "Lyon".to_owned();
    let swapped = fixtures::sign(fields, 3, 2);
    let mut altered = descriptors.clone();
    altered[3] = swapped.clone();
    let m = mismatch(chain.check(&verified(altered, section.clone())).await);
    assert!(
        matches!(&m, Mismatch::DescriptorHash { relay, directory, .. }
            if *relay == fixtures::relay_key(3).id()
            && directory.ends_with(&hex(&swapped.descriptor().content_hash()))),
        "{m}"
    );
    assert!(m.to_string().contains("descriptor hash"), "{m}");

    // A block hash the node's chain does not have at that height.
    let mut forked = section.clone();
    forked.anchor.block_hash = [7; 32];
    assert!(matches!(
        mismatch(chain.check(&verified(descriptors.clone(), forked)).await),
        Mismatch::BlockHash { .. }
    ));

    // Another chain id.
    let mut other_chain = section.clone();
    other_chain.anchor.chain_id = 1;
    assert!(matches!(
        mismatch(chain.check(&verified(descriptors, other_chain)).await),
        Mismatch::ChainId {
            directory: 1,
            node: CHAIN_ID
        }
    ));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
