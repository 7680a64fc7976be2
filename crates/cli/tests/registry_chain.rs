//! Issue 13, items 2, 3 and 5: the registry and the validators on a real
//! chain (anvil, the `RelayRegistry` contract deployed with the devnet
//! parameters, operators and relays registered from funded accounts), as
//! real `openrelay registry` / `openrelay validator` processes, each
//! following the chain through the node itself.
//!
//! Attacks and what must happen:
//! - a relay that publishes without being registered on chain: never
//!   voted for, never listed;
//! - an account that registers another operator's key (anyone may) and a
//!   relay of that operator under it, staked: not listed, since the
//!   operator's signed profile names its own account;
//! - a relay registered with another descriptor hash than the descriptor
//!   it publishes (a descriptor swapped after registration): not listed;
//! - a relay removed on chain: it leaves the next directory; a relay
//!   registered mid-run joins it;
//! - a malicious registry (the test plays it) that omits a staked relay,
//!   adds an unregistered one, misstates an operator's stake or a relay's
//!   registered bandwidth, or anchors at a block nobody confirmed: no
//!   validator signs, each refusal is logged with its reason, and the
//!   honest proposal before and after is signed (so the refusals were the
//!   attacks').
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;
use openrelay_testkit::registry as registry_fixtures;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use kit::Proc;
use openrelay_chain::anvil::Anvil;
use openrelay_chain::deploy::{ChainParams, GenesisValidator, deploy};
use openrelay_chain::operator::{Registry as ChainRegistry, signing_provider};
use openrelay_client::directory::{self as client_directory, DirectoryFeed};
use openrelay_config::chain::EvmAddress;
use openrelay_config::{ChainPin, DirectoryConfig, ServiceEndpoint};
use openrelay_directory::{
    ChainAnchor, ChainOperator, ChainRelay, ChainSection, Directory, DirectoryError,
    SignedDescriptor, SignedValidatorSetChange, TrustConfig, ValidatorId, ValidatorSet,
    ValidatorSetChange, VerifiedDirectory, verify_directory_bytes,
};
use openrelay_registry_client::RegistryClient;
use openrelay_registry_client::paths;
use openrelay_types::{KeyPin, RelayRole, unix_now};
use registry_fixtures::*;

const CHAIN_ID: u64 = 31_337;
const ETHER: u128 = 1_000_000_000_000_000_000;
/// The devnet's stake per Mbit/s (0.001 ETH).
const STAKE_PER_MBPS: u128 = ETHER / 1_000;
/// Every fixture relay advertises 1 Gbit/s.
const RELAY_MBPS: u32 = 1_000;
const PUBLICATION: &str = "descriptor_ttl_secs = 600\nmax_relays_per_operator = 4\nmax_relays = 8";

/// Relays 0 and 1 of operator 0, 2 and 3 of operator 1.
const FOUR_RELAYS: [(u8, u8, RelayRole); 4] = [
    (0, 0, RelayRole::Ingress),
    (1, 0, RelayRole::Egress),
    (2, 1, RelayRole::Ingress),
    (3, 1, RelayRole::Egress),
];

/// A chain with the contract deployed, the three validators as its
/// genesis set, and operators 0 and 1 registered (stakes in Mbit/s).
struct Chain {
    anvil: Anvil,
    contract: Address,
    operators: BTreeMap<u8, ChainRegistry>,
    /// The genesis validators' EVM accounts (funded for gas).
    validator_accounts: Vec<PrivateKeySigner>,
}

impl Chain {
    async fn start(keys: &[ValidatorKeys], stakes_mbps: &[(u8, u128)]) -> Chain {
        // A block every 2 s, polled every second: every confirmed block
        // reaches each validator's ring (a poll interval at or above the
        // block time could skip one; see `openrelay_registry::chain`).
        let anvil = Anvil::start(CHAIN_ID, Some(Duration::from_secs(2)))
            .await
            .unwrap();
        let deployer = PrivateKeySigner::random();
        anvil
            .fund(deployer.address(), U256::from(1_000 * ETHER))
            .await
            .unwrap();
        let validator_accounts: Vec<PrivateKeySigner> =
            keys.iter().map(|_| PrivateKeySigner::random()).collect();
        for account in &validator_accounts {
            anvil
                .fund(account.address(), U256::from(10 * ETHER))
                .await
                .unwrap();
        }
        let genesis: Vec<GenesisValidator> = keys
            .iter()
            .zip(&validator_accounts)
            .map(|(v, account)| GenesisValidator {
                account: account.address(),
                key: v.key.id().to_bytes(),
                stake: U256::from(2 * ETHER),
            })
            .collect();
        let provider = signing_provider(anvil.endpoint().parse().unwrap(), deployer);
        let contract = deploy(provider, &ChainParams::devnet(), &genesis)
            .await
            .unwrap();
        let mut operators = BTreeMap::new();
        for &(operator, mbps) in stakes_mbps {
            let signer = PrivateKeySigner::random();
            anvil
                .fund(signer.address(), U256::from(100 * ETHER))
                .await
                .unwrap();
            let registry = ChainRegistry::connect(
                anvil.endpoint(),
                CHAIN_ID,
                contract,
                signer,
                Duration::from_secs(10),
            )
            .await
            .unwrap();

            registry
                .register_operator(
                    operator_key(operator).id().to_bytes(),
                    [0; 32],
                    U256::from(mbps * STAKE_PER_MBPS),
                )
                .await
                .unwrap();
            operators.insert(operator, registry);
        }
        Chain {
            anvil,
            contract,
            operators,
            validator_accounts,
        }
    }

    /// Operators 0 and 1 staked for 2 Gbit/s each, with [`FOUR_RELAYS`]
    /// registered.
    async fn with_four_relays(keys: &[ValidatorKeys]) -> Chain {
        let chain = Chain::start(keys, &[(0, 2_000), (1, 2_000)]).await;
        for (relay, operator, role) in FOUR_RELAYS {
            chain.register(relay, operator, role, None).await;
        }
        chain
    }

    /// A new account with 10 ETH (for a validator's stake and gas).
    async fn funded_account(&self) -> PrivateKeySigner {
        let account = PrivateKeySigner::random();
        self.anvil
            .fund(account.address(), U256::from(10 * ETHER))
            .await
            .unwrap();
        account
    }

    /// Moves the node's clock `secs` forward and mines a block: the
    /// devnet's join and leave delays pass without waiting for them.
    async fn time_travel(&self, secs: u64) {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint().parse().unwrap());
        let _: i64 = provider
            .raw_request("evm_increaseTime".into(), (secs,))
            .await
            .unwrap();
        let _: String = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    }

    /// Each of `approvers` approves the set change from `epoch` adding
    /// `joins` and removing `leaves`, all at once (so in a block or two);
    /// returns once every approval is mined. Exactly the approvals the
    /// quorum needs: one more, mined after the change applied, would be
    /// refused for the wrong epoch.
    async fn approve(
        &self,
        approvers: &[&PrivateKeySigner],
        epoch: u64,
        joins: &[Address],
        leaves: &[Address],
    ) {
        let mut approvals = tokio::task::JoinSet::new();
        for approver in approvers {
            let registry = self.as_account((*approver).clone()).await;
            let (joins, leaves) = (joins.to_vec(), leaves.to_vec());
            approvals.spawn(async move {
                registry
                    .approve_set_change(epoch, joins, leaves)
                    .await
                    .map(|_| ())
            });
        }
        while let Some(approved) = approvals.join_next().await {
            approved.unwrap().unwrap();
        }
    }

    /// The contract as `signer` sends to it.
    async fn as_account(&self, signer: PrivateKeySigner) -> ChainRegistry {
        ChainRegistry::connect(
            self.anvil.endpoint(),
            CHAIN_ID,
            self.contract,
            signer,
            Duration::from_secs(10),
        )
        .await
        .unwrap()
    }

    /// Registers `relay` under `operator` with its fixture descriptor's
    /// content hash, or `hash` instead.
    async fn register(&self, relay: u8, operator: u8, role: RelayRole, hash: Option<[u8; 32]>) {
        let descriptor = SignedDescriptor::from_bytes(&descriptor(relay, operator, role)).unwrap();
        self.operators[&operator]
            .register_relay(
                relay_key(relay).id().to_bytes(),
                role,
                RELAY_MBPS,
                hash.unwrap_or_else(|| descriptor.descriptor().content_hash()),
            )
            .await
            .unwrap();
    }

    /// Publishes `relay` to `targets` with its operator's profile naming
    /// the operator's account here (as a relay's `[publish]
    /// operator_account` does).
    async fn publish(&self, targets: &[RegistryClient], relay: u8, operator: u8, role: RelayRole) {
        publish_naming(targets, relay, operator, role, Some(self.account(operator))).await;
    }

    /// What the test publishes, its profiles naming the operators'
    /// accounts here.
    fn published(&self) -> Published {
        Published::naming((0..=2).map(|o| (o, self.account(o))).collect())
    }

    /// The `[chain]` section of a registry's or validator's config.
    fn config(&self) -> String {
        self.config_through(self.anvil.endpoint())
    }

    /// The `[chain]` section with the node at `rpc`.
    fn config_through(&self, rpc: &str) -> String {
        format!(
            "[chain]\nrpc = \"{rpc}\"\nchain_id = {CHAIN_ID}\ncontract = \"{}\"\nconfirmations = 1\npoll_interval_secs = 1\n",
            self.contract,
        )
    }

    /// The account of operator `operator` (a made-up one if it is not
    /// registered).
    fn account(&self, operator: u8) -> [u8; 20] {
        self.operators
            .get(&operator)
            .map_or([operator; 20], |o| o.account().into_array())
    }

    /// The anchor of the block `behind` blocks below the node's head.
    async fn anchor(&self, behind: u64) -> ChainAnchor {
        let provider = ProviderBuilder::new().connect_http(self.anvil.endpoint().parse().unwrap());
        let number = provider.get_block_number().await.unwrap() - behind;
        let block = provider
            .get_block_by_number(number.into())
            .await
            .unwrap()
            .unwrap();
        ChainAnchor {
            chain_id: CHAIN_ID,
            contract: self.contract.into_array(),
            block_number: number,
            block_hash: block.header.hash.0,
        }
    }

    /// A directory of the `published` relays `relays` anchored at `anchor`,
    /// with the chain's figures as [`Chain::with_four_relays`] registered
    /// them, edited by `edit`.
    fn directory(
        &self,
        published: &Published,
        sequence: u64,
        relays: &[u8],
        anchor: ChainAnchor,
        edit: impl FnOnce(&mut ChainSection),
    ) -> Directory {
        let now = unix_now();
        let mut operators: Vec<u8> = relays.iter().map(|r| r / 2).collect();
        operators.dedup();
        let mut section = ChainSection {
            anchor,
            validator_epoch: 0,
            operators: operators
                .iter()
                .map(|&o| ChainOperator {
                    operator: operator_key(o).id(),
                    account: self.account(o),
                    stake_wei: 2 * ETHER,
                    covered_mbps: 2_000,
                })
                .collect(),
            relays: relays
                .iter()
                .map(|&r| ChainRelay {
                    relay: relay_key(r).id(),
                    bandwidth_mbps: RELAY_MBPS,
                    measured: None,
                })
                .collect(),
            releases: Vec::new(),
        };
        edit(&mut section);
        published
            .directory(sequence, now, now + 3600, relays)
            .with_chain(section)
            .unwrap()
    }
}

/// Starts validator `v` following `chain`, checking the registry at
/// `registry` (TLS key `registry_key`).
fn start_chain_validator(
    v: &ValidatorKeys,
    all: &[ValidatorKeys],
    registry: std::net::SocketAddr,
    registry_key: &str,
    chain: &Chain,
) -> Proc {
    let config = v.dir.join("validator.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\nvalidators = {}\nthreshold = 2\npoll_interval_secs = 1\n\
             [registry]\naddr = \"{registry}\"\nkey = \"{registry_key}\"\n[publication]\n{PUBLICATION}\n[log]\nlevel = \"debug\"\nfile = {:?}\n{}",
            v.dir.display(),
            key_list(all),
            v.dir.join("validator.log").display(),
            chain.config(),
        ),
    )
    .unwrap();
    Proc::start(
        &["validator", "--config", &config.display().to_string()],
        &v.dir.join("stderr"),
    )
}

fn start_chain_registry(dir: &Path, keys: &[ValidatorKeys], chain: &Chain) -> Proc {
    start_chain_registry_through(dir, keys, &chain.config())
}

/// A registry whose config's `[chain]` section is `chain_config`.
fn start_chain_registry_through(dir: &Path, keys: &[ValidatorKeys], chain_config: &str) -> Proc {
    let config = dir.join("registry.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\nvalidators = {}\nthreshold = 2\ndirectory_lifetime_secs = 3600\nproposal_interval_secs = 1\n[publication]\n{PUBLICATION}\n[log]\nlevel = \"debug\"\nfile = {:?}\n{}",
            dir.join("registry").display(),
            key_list(keys),
            dir.join("registry.log").display(),
            chain_config,
        ),
    )
    .unwrap();
    Proc::start(
        &["registry", "--config", &config.display().to_string()],
        &dir.join("registry.stderr"),
    )
}

/// The client library's directory feed (as `openrelay client` takes
/// directories) for the registry at `registry` (TLS key `registry_key`),
/// trusting the genesis set `genesis` (2 of 3) and pinning `chain`'s
/// deployment, with state in `state`.
fn client_feed(
    chain: &Chain,
    genesis: &[ValidatorKeys],
    registry: &str,
    registry_key: &str,
    state: &Path,
) -> DirectoryFeed {
    let config = DirectoryConfig {
        registry: ServiceEndpoint {
            addr: registry.parse().unwrap(),
            key: registry_key.parse().unwrap(),
        },
        validators: genesis.iter().map(|v| KeyPin::from(v.key.id())).collect(),
        threshold: 2,
        validator_weights: None,
        max_age_secs: 3600,
        refresh_secs: 30,
        dangerously_allow_special_purpose_endpoints: false,
        rpc: None,
        rpc_required: false,
        chain: Some(ChainPin {
            chain_id: CHAIN_ID,
            contract: EvmAddress(chain.contract.into_array()),
        }),
    };
    DirectoryFeed::new(&config, state).unwrap()
}

/// Starts validators `keys` with `start` and publishes [`FOUR_RELAYS`] to
/// them and to the registry at `listen` (profiles naming `chain`'s
/// accounts): the validators, the registry's client and a client's trust
/// in `keys` (threshold 2).
async fn with_validators_and_relays(
    chain: &Chain,
    keys: &[ValidatorKeys],
    start: impl Fn(&ValidatorKeys) -> Proc,
    listen: &str,
    registry_key: &str,
) -> (Vec<Proc>, RegistryClient, TrustConfig) {
    let validators: Vec<Proc> = keys.iter().map(start).collect();
    let registry = RegistryClient::new(listen.parse().unwrap(), registry_key.parse().unwrap());
    let mut targets = vec![registry.clone()];
    targets.extend(validators.iter().map(validator_client));
    for (relay, operator, role) in FOUR_RELAYS {
        chain.publish(&targets, relay, operator, role).await;
    }
    let trust = TrustConfig::new(keys.iter().map(|v| v.key.id()), 2, 3600).unwrap();
    (validators, registry, trust)
}

/// Waits for a served directory that verifies for a client of the genesis
/// set and lists exactly `relays`; its chain section.
async fn served_listing(
    registry: &RegistryClient,
    trust: &TrustConfig,
    relays: &[u8],
    within: Duration,
) -> ChainSection {
    let (verified, _) = served_at_epoch(registry, trust, relays, 0, within).await;
    verified.chain().unwrap().clone()
}

/// [`served_listing`] for a directory signed by the set of `epoch`: the
/// directory verified, and as served.
async fn served_at_epoch(
    registry: &RegistryClient,
    trust: &TrustConfig,
    relays: &[u8],
    epoch: u64,
    within: Duration,
) -> (VerifiedDirectory, Vec<u8>) {
    let mut want: Vec<_> = relays.iter().map(|r| relay_key(*r).id()).collect();
    want.sort();
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        if let Ok((200, bytes)) = registry
            .call(http::Method::GET, paths::DIRECTORY, Vec::new())
            .await
        {
            let verified = verify_directory_bytes(&bytes, trust, unix_now(), None).unwrap();
            let listed: Vec<_> = verified.relays().map(|r| r.id()).collect();
            let served_epoch = verified.chain().unwrap().validator_epoch;
            if listed == want && served_epoch == epoch {
                return (verified, bytes);
            }
            last = Some((listed, served_epoch));
        }
        assert!(
            Instant::now() < deadline,
            "no directory listing {relays:?} at validator epoch {epoch} in time; last \
             (listed, epoch): {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The epochs of the hand-overs `verified`'s envelope carries.
fn handover_epochs(verified: &VerifiedDirectory) -> Vec<u64> {
    verified
        .signed()
        .unwrap()
        .handovers
        .iter()
        .map(|h| h.change().epoch())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_lists_exactly_the_relays_staked_and_registered_on_chain() {
    let dir = tempfile::tempdir().unwrap();
    let keys = validator_keys(dir.path(), 3);
    // Operator 1 stakes for three relays (2, 3 and 5).
    let chain = Chain::start(&keys, &[(0, 2_000), (1, 3_000)]).await;
    chain.register(0, 0, RelayRole::Ingress, None).await;
    chain.register(1, 0, RelayRole::Egress, None).await;
    chain.register(2, 1, RelayRole::Ingress, None).await;
    chain.register(3, 1, RelayRole::Egress, None).await;
    // Relay 5's registered hash is not its descriptor's.
    chain
        .register(5, 1, RelayRole::Egress, Some([0xab; 32]))
        .await;
    // A squatter claims operator 0's published key with its own account,
    // stakes plenty and registers relay 4 (operator 0's, published below,
    // not registered by operator 0) with its true descriptor hash. Operator
    // 0's profile names its own account, so none of this lists relay 4.
    let squatter = PrivateKeySigner::random();
    chain
        .anvil
        .fund(squatter.address(), U256::from(100 * ETHER))
        .await
        .unwrap();
    let squatter = chain.as_account(squatter).await;
    squatter
        .register_operator(
            operator_key(0).id().to_bytes(),
            [0; 32],
            U256::from(10_000 * STAKE_PER_MBPS),
        )
        .await
        .unwrap();
    let relay_4 = SignedDescriptor::from_bytes(&descriptor(4, 0, RelayRole::Egress)).unwrap();
    squatter
        .register_relay(
            relay_key(4).id().to_bytes(),
            RelayRole::Egress,
            RELAY_MBPS,
            relay_4.descriptor().content_hash(),
        )
        .await
        .unwrap();

    let registry_proc = start_chain_registry(dir.path(), &keys, &chain);
    let listen = registry_proc.ready_field("listen");
    let registry_key = registry_proc.ready_field("key");
    let validators: Vec<Proc> = keys
        .iter()
        .map(|v| start_chain_validator(v, &keys, listen.parse().unwrap(), &registry_key, &chain))
        .collect();
    let registry = RegistryClient::new(listen.parse().unwrap(), registry_key.parse().unwrap());
    let mut targets = vec![registry.clone()];
    targets.extend(validators.iter().map(validator_client));
    // Relay 4 (operator 0) publishes without being registered on chain by
    // its operator (only by the squatter).
    let relays = [
        (0, 0, RelayRole::Ingress),
        (1, 0, RelayRole::Egress),
        (2, 1, RelayRole::Ingress),
        (3, 1, RelayRole::Egress),
        (4, 0, RelayRole::Egress),
        (5, 1, RelayRole::Egress),
    ];
    for (relay, operator, role) in relays {
        chain.publish(&targets, relay, operator, role).await;
    }

    let trust = TrustConfig::new(keys.iter().map(|v| v.key.id()), 2, 3600).unwrap();
    let section = served_listing(&registry, &trust, &[0, 1, 2, 3], Duration::from_secs(60)).await;
    assert_eq!(section.anchor.chain_id, CHAIN_ID);
    assert_eq!(section.anchor.contract, chain.contract.into_array());
    assert_eq!(section.validator_epoch, 0);
    let stakes: BTreeMap<[u8; 20], (u128, u64)> = section
        .operators
        .iter()
        .map(|o| (o.account, (o.stake_wei, o.covered_mbps)))
        .collect();
    assert_eq!(stakes[&chain.account(0)], (2 * ETHER, 2_000));
    assert_eq!(stakes[&chain.account(1)], (3 * ETHER, 3_000));
    assert!(
        section
            .relays
            .iter()
            .all(|r| r.bandwidth_mbps == RELAY_MBPS)
    );

    // Relay 1 removed on chain leaves; relay 4 registered mid-run joins.
    chain.operators[&0]
        .remove_relay(relay_key(1).id().to_bytes())
        .await
        .unwrap();
    chain.register(4, 0, RelayRole::Egress, None).await;
    served_listing(&registry, &trust, &[0, 2, 3, 4], Duration::from_secs(60)).await;
    drop(validators);
    drop(registry_proc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malicious_registry_on_chain_gets_no_signature() {
    let dir = tempfile::tempdir().unwrap();
    let keys = validator_keys(dir.path(), 3);
    let chain = Chain::with_four_relays(&keys).await;
    let relays = FOUR_RELAYS;
    let server = VotingImpostor::start();
    let impostor = &server.impostor;
    let (registry_addr, registry_key) = (server.addr, server.key.clone());
    let validators: Vec<Proc> = keys
        .iter()
        .map(|v| start_chain_validator(v, &keys, registry_addr, &registry_key, &chain))
        .collect();
    let targets: Vec<RegistryClient> = validators.iter().map(validator_client).collect();
    let mut published = chain.published();
    // Relay 4 publishes to every validator but is not on chain.
    for (relay, operator, role) in relays.into_iter().chain([(4, 2, RelayRole::Egress)]) {
        published.publish(&targets, relay, operator, role).await;
    }
    // Every validator votes for the four staked relays, not relay 4.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let votes = impostor.votes();
        if votes.len() == 3 && votes.iter().all(|v| v.vote().entries().len() == 4) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no votes for the relays: {votes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Signed when honest (at the validators' confirmed head: one below the
    // node's head, one confirmation).
    let mut sequence = 10;
    let honest_signed = async |sequence: u64| {
        let anchor = chain.anchor(1).await;
        let honest = chain.directory(&published, sequence, &[0, 1, 2, 3], anchor, |_| {});
        let digest = impostor.serve(&honest);
        let deadline = Instant::now() + Duration::from_secs(20);
        while impostor.signers(&digest) < 3 {
            if Instant::now() > deadline {
                let refusals: Vec<String> = keys
                    .iter()
                    .flat_map(|v| {
                        std::fs::read_to_string(v.dir.join("validator.log"))
                            .unwrap()
                            .lines()
                            .filter(|l| l.contains("sign"))
                            .map(str::to_owned)
                            .collect::<Vec<_>>()
                    })
                    .collect();
                panic!("the honest directory was not signed: {refusals:#?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    honest_signed(sequence).await;

    type Edit = Box<dyn FnOnce(&mut ChainSection)>;
    let attacks: Vec<(&str, &[u8], Edit)> = vec![
        ("a staked relay left out", &[0, 1, 2], Box::new(|_| {})),
        (
            "an unregistered relay added",
            &[0, 1, 2, 3, 4],
            Box::new(|_| {}),
        ),
        (
            "a stake misstated",
            &[0, 1, 2, 3],
            Box::new(|s| s.operators[0].stake_wei *= 10),
        ),
        (
            "a relay's bandwidth misstated",
            &[0, 1, 2, 3],
            Box::new(|s| s.relays[0].bandwidth_mbps = 5_000),
        ),
        (
            "a block nobody confirmed",
            &[0, 1, 2, 3],
            Box::new(|s| s.anchor.block_hash = [0xee; 32]),
        ),
    ];
    for (name, listed, edit) in attacks {
        sequence += 1;
        let anchor = chain.anchor(1).await;
        let attack = chain.directory(&published, sequence, listed, anchor, edit);
        let digest = impostor.serve(&attack);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(
            impostor.signers(&digest),
            0,
            "{name}: the validators signed it"
        );
    }
    sequence += 1;
    honest_signed(sequence).await;

    assert_every_validator_logged(
        &keys,
        &[
            "is elected and admitted on chain at the anchor but left out",
            "is listed but the chain does not admit it at the anchor",
            "the chain section's operators differ from the chain's at the anchor",
            "the chain section's relays differ from the chain's at the anchor",
            "not one of this validator's recent confirmed blocks",
        ],
    );
    drop(validators);
}

/// Item 4, on the real chain: a client that starts from its genesis
/// validator set follows three set changes. The genesis set is A, B and C;
/// D joins (epoch 1), A leaves (epoch 2), E joins while B leaves (epoch 3):
/// C is the only genesis member left, so the genesis set alone cannot
/// verify the final directory. Each change waits out its delay by time
/// travel and is approved on chain by more than two thirds of the previous
/// set's weight; the validators' processes sign the hand-overs once their
/// own nodes confirm each change and post them to the registry, which
/// serves them with the directory of the new set.
///
/// Clients (the client library's directory feed, as `openrelay client`
/// takes a directory): one with only the genesis set and no persisted set
/// walks the three hand-overs; one that took the directory of epoch 1
/// starts after a restart from the set it persisted, also when the registry
/// serves only the later hand-overs (which a genesis client cannot follow).
/// A forged hand-over (two thirds of epoch 2's weight, not more, handing
/// over to a set of their own) is refused by the registry and, carried in
/// an envelope, by the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_follows_three_validator_set_changes_on_chain_from_its_genesis_set() {
    let dir = tempfile::tempdir().unwrap();
    let keys = validator_keys(dir.path(), 5);
    let genesis_keys = &keys[..3];
    let chain = Chain::with_four_relays(genesis_keys).await;
    let registry_proc = start_chain_registry(dir.path(), genesis_keys, &chain);
    let listen = registry_proc.ready_field("listen");
    let registry_key = registry_proc.ready_field("key");
    // D and E run from the start: nobody counts their votes until they
    // join. A and B keep running after they leave: they still sign the
    // hand-overs from the sets they were in.
    let validators: Vec<Proc> = keys
        .iter()
        .map(|v| {
            start_chain_validator(
                v,
                genesis_keys,
                listen.parse().unwrap(),
                &registry_key,
                &chain,
            )
        })
        .collect();
    let registry = RegistryClient::new(listen.parse().unwrap(), registry_key.parse().unwrap());
    let mut targets = vec![registry.clone()];
    targets.extend(validators.iter().map(validator_client));
    for (relay, operator, role) in FOUR_RELAYS {
        chain.publish(&targets, relay, operator, role).await;
    }
    let trust = TrustConfig::new(genesis_keys.iter().map(|v| v.key.id()), 2, 3600).unwrap();
    served_listing(&registry, &trust, &[0, 1, 2, 3], Duration::from_secs(60)).await;

    // D and E ask to join, A and B to leave; the delays (10 s on the
    // devnet) pass by time travel.
    let [a, b, c] = <[PrivateKeySigner; 3]>::try_from(chain.validator_accounts.clone()).unwrap();
    let (d, e) = (chain.funded_account().await, chain.funded_account().await);
    for (account, joiner) in [(&d, &keys[3]), (&e, &keys[4])] {
        chain
            .as_account(account.clone())
            .await
            .validator_join(joiner.key.id().to_bytes(), U256::from(2 * ETHER))
            .await
            .unwrap();
    }
    for account in [&a, &b] {
        chain
            .as_account(account.clone())
            .await
            .validator_leave()
            .await
            .unwrap();
    }
    chain.time_travel(11).await;

    // 1: D joins, approved by the whole genesis set (two of three equal
    // stakes are 6666 bp, below the quorum).
    chain.approve(&[&a, &b, &c], 0, &[d.address()], &[]).await;
    let (first, first_bytes) =
        served_at_epoch(&registry, &trust, &[0, 1, 2, 3], 1, Duration::from_secs(90)).await;
    assert_eq!(handover_epochs(&first), vec![1]);
    // A client that takes it persists the set of epoch 1.
    let after_first = tempfile::tempdir().unwrap();
    let feed = |state: &Path| client_feed(&chain, genesis_keys, &listen, &registry_key, state);
    feed(after_first.path()).accept_copy(&first_bytes).unwrap();
    let persisted = std::fs::read(
        after_first
            .path()
            .join(client_directory::VALIDATOR_SET_FILE),
    )
    .unwrap();
    assert_eq!(ValidatorSet::from_bytes(&persisted).unwrap().epoch(), 1);

    // 2: A leaves, approved by B, C and D (three quarters).
    chain.approve(&[&b, &c, &d], 1, &[], &[a.address()]).await;
    // 3: E joins and B leaves, approved by all of B, C and D.
    chain
        .approve(&[&b, &c, &d], 2, &[e.address()], &[b.address()])
        .await;
    let (last, last_bytes) =
        served_at_epoch(&registry, &trust, &[0, 1, 2, 3], 3, Duration::from_secs(90)).await;
    assert_eq!(handover_epochs(&last), vec![1, 2, 3]);
    let members: Vec<ValidatorId> = last
        .validator_set()
        .members()
        .iter()
        .map(|m| m.validator)
        .collect();
    let mut expected: Vec<ValidatorId> = keys[2..].iter().map(|v| v.key.id()).collect();
    expected.sort();
    assert_eq!(members, expected, "the set of epoch 3 is C, D and E");

    // A client of the genesis set alone, with no persisted set, walks the
    // three hand-overs (and persists the set it reached).
    let fresh = tempfile::tempdir().unwrap();
    let taken = feed(fresh.path()).accept_copy(&last_bytes).unwrap();
    assert_eq!(taken.validator_set(), last.validator_set());
    let persisted = std::fs::read(fresh.path().join(client_directory::VALIDATOR_SET_FILE)).unwrap();
    assert_eq!(ValidatorSet::from_bytes(&persisted).unwrap().epoch(), 3);
    // Without the hand-overs the genesis set cannot verify it.
    let envelope = |handovers: &[SignedValidatorSetChange]| {
        let mut signed = last.signed().unwrap();
        signed.handovers = handovers.to_vec();
        signed.to_bytes()
    };
    let all = &last.signed().unwrap().handovers;
    let unwalked = tempfile::tempdir().unwrap();
    assert!(matches!(
        feed(unwalked.path()).accept_copy(&envelope(&[])),
        Err(DirectoryError::ValidatorEpochUnreached {
            epoch: 3,
            reached: 0
        })
    ));
    // The client that persisted epoch 1, restarted, verifies it from that
    // set, also with only the hand-overs after it; a genesis client cannot.
    assert_eq!(
        feed(after_first.path())
            .accept_copy(&envelope(&all[1..]))
            .unwrap()
            .validator_set(),
        last.validator_set()
    );
    assert!(matches!(
        feed(unwalked.path()).accept_copy(&envelope(&all[1..])),
        Err(DirectoryError::HandOverGap {
            expected: 1,
            found: 2
        })
    ));

    // C and D, two thirds of epoch 2's weight but not more, sign a
    // hand-over to a set of their own at the real change's block.
    let own = ValidatorSet::equal_weights(3, [keys[2].key.id(), keys[3].key.id()]).unwrap();
    let mut forged = SignedValidatorSetChange::new(
        ValidatorSetChange::new(*all[2].change().anchor(), own).unwrap(),
    );
    forged.sign(&keys[2].key);
    forged.sign(&keys[3].key);
    let (status, reply) = registry
        .call(http::Method::POST, paths::HANDOVERS, forged.to_bytes())
        .await
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert_eq!(status, 403, "{reply}");
    assert!(
        reply.contains("not the chain's set change of epoch 3"),
        "{reply}"
    );
    let forged_walk = [all[0].clone(), all[1].clone(), forged];
    assert!(matches!(
        feed(unwalked.path()).accept_copy(&envelope(&forged_walk)),
        Err(DirectoryError::HandOverUnderSigned { epoch: 3, .. })
    ));
    // And the directory the registry serves still carries the real ones.
    let (still, _) =
        served_at_epoch(&registry, &trust, &[0, 1, 2, 3], 3, Duration::from_secs(10)).await;
    assert_eq!(
        still.signed().unwrap().handovers,
        last.signed().unwrap().handovers
    );
    drop(validators);
    drop(registry_proc);
}

/// A registry started before its chain node is reachable waits, saying so
/// once in its log, never exits, and follows the chain once the node comes
/// up (here: a TCP forwarder to anvil starting on the configured port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_started_before_its_node_waits_and_then_follows() {
    let dir = tempfile::tempdir().unwrap();
    let keys = validator_keys(dir.path(), 3);
    let chain = Chain::with_four_relays(&keys).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rpc = format!("http://127.0.0.1:{port}");
    let registry_proc =
        start_chain_registry_through(dir.path(), &keys, &chain.config_through(&rpc));
    let listen = registry_proc.ready_field("listen");
    let registry_key = registry_proc.ready_field("key");
    let log = dir.path().join("registry.log");
    let waiting = "waiting for the chain node and the registry contract";
    let count = |needle: &str| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(waiting) == 0 {
        assert!(Instant::now() < deadline, "no waiting message in the log");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Several retries later: still running, still one message.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        kit::process::is_running(registry_proc.pid()),
        "the registry exited"
    );
    assert_eq!(
        count(waiting),
        1,
        "one warning while waiting, not one per retry"
    );
    assert_eq!(count("following the registry contract"), 0);

    // The node comes up on the configured port.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let target: std::net::SocketAddr = chain
        .anvil
        .endpoint()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let forwarder = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let start = |v: &ValidatorKeys| {
        start_chain_validator(v, &keys, listen.parse().unwrap(), &registry_key, &chain)
    };
    let (validators, registry, trust) =
        with_validators_and_relays(&chain, &keys, start, &listen, &registry_key).await;
    served_listing(&registry, &trust, &[0, 1, 2, 3], Duration::from_secs(90)).await;
    assert_eq!(count("following the registry contract"), 1);
    drop(validators);
    drop(registry_proc);
    forwarder.abort();
}

/// Issue 14, item 3, end to end: with a settled epoch in the records of the
/// registry and of every validator (written to their stores before they
/// start, as after a restart), the registry leaves out the relay found
/// down, carries every listed relay's measurement, the validators (checking
/// against their own records) sign it, and a client's verified directory
/// weighs the relay measured at a tenth of its claim at that tenth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_measurements_reach_the_signed_directory_and_its_weights() {
    use openrelay_testkit::measure::{one_epoch, record_settled};

    let dir = tempfile::tempdir().unwrap();
    let keys = validator_keys(dir.path(), 3);
    let chain = Chain::with_four_relays(&keys).await;
    // Relay 0 (ingress, operator 0) carries a tenth of its 1 Gbit/s, relays
    // 1 and 2 most of it, relay 3 (egress, operator 1) is down.
    let outcome = one_epoch(&[
        (0, Some(100_000_000)),
        (1, Some(900_000_000)),
        (2, Some(800_000_000)),
        (3, None),
    ]);
    let ended_at = unix_now() - 30;
    record_settled(
        &dir.path().join("registry/registry.redb"),
        &outcome,
        ended_at,
    );
    for v in &keys {
        record_settled(
            &v.dir.join(openrelay_registry::validator::STORE_FILE),
            &outcome,
            ended_at,
        );
    }
    let registry_proc = start_chain_registry(dir.path(), &keys, &chain);
    let listen = registry_proc.ready_field("listen");
    let registry_key = registry_proc.ready_field("key");
    let (validators, registry, trust) = with_validators_and_relays(
        &chain,
        &keys,
        |v| start_chain_validator(v, &keys, listen.parse().unwrap(), &registry_key, &chain),
        &listen,
        &registry_key,
    )
    .await;
    // Relay 3 published and is staked, but it is down: not listed.
    let (verified, _) =
        served_at_epoch(&registry, &trust, &[0, 1, 2], 0, Duration::from_secs(60)).await;
    let listed = |r: u8| {
        verified
            .relays()
            .find(|x| x.id() == relay_key(r).id())
            .unwrap()
    };
    // The low-median of the three reports (bps + 1, 2 and 3 Mbit/s).
    for (r, bps) in [(0, 102_000_000), (1, 902_000_000), (2, 802_000_000)] {
        let m = listed(r).measured().unwrap();
        assert_eq!(
            (m.measured_bps, m.measured_epoch, m.measured_at),
            (bps, 1, ended_at),
            "relay {r}"
        );
    }
    assert_eq!(listed(0).selection_bandwidth_bps(), 102_000_000);
    assert_eq!(listed(2).selection_bandwidth_bps(), 802_000_000);
    drop(validators);
    drop(registry_proc);
}
