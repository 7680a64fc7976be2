//! `RelayRegistry` on a real anvil: every rule and every refusal (decoded
//! custom errors, not just "reverted"), the events each change emits, the
//! operator operations' error messages, and the gas each operation costs.
//!
//! # What an attacker tries, and the test that shows it fails
//!
//! | attack | fails because | test |
//! |---|---|---|
//! | Sybil: split one stake over many relays to gain selection weight | cover is operator-wide: 10 relays of 100 Mbit/s need the stake of one of 1000; the 11th is refused | `sybil_splitting_buys_no_bandwidth` |
//! | advertise bandwidth without stake (register or raise it) | `InsufficientStake{required, stake}` | `relay_rules`, `sybil_splitting_buys_no_bandwidth` |
//! | squat another operator's relay key | relays are stored under (operator account, key): the victim still registers its key | `relay_rules` |
//! | squat another operator's *operator* key (claim it first, to block the holder) | nothing to squat: several accounts may name one key; the key holder's signed profile names its account, and registries count only that one (`openrelay-registry`'s `ChainView::admit`) | `operator_registration_rules` (a second account registers the same key) |
//! | pull stake out from under advertised relays | `unstake` below cover is refused | `unstake_and_withdraw` |
//! | withdraw before a pending slash lands | stake unbonds for `unbondingDelay` and stays slashable meanwhile | `unbonding_stake_is_still_slashed` |
//! | flash-stake into the validator set | a join waits `validatorJoinDelay`, and only the current set's 2/3 admit it; its stake weighs nothing until then | `validator_set_changes` |
//! | a validator leaves before its misbehaviour is judged | leave waits `validatorLeaveDelay`, then its stake unbonds (still slashable) | `validator_set_changes` |
//! | a minority coalition (< 2/3 of weight) changes the set or slashes | approvals below quorum change nothing; exactly 2/3 is not enough | `validator_set_changes`, `exactly_two_thirds_is_not_a_quorum`, `slashing` |
//! | replay a set-change or slash approval in a later epoch | proposal ids include the epoch: `WrongEpoch`, and old slash approvals do not count | `validator_set_changes`, `slash_approvals_do_not_carry_across_epochs` |
//! | a set slashed to no weight, where any one member is a quorum | a change leaving a weightless set is refused | `a_set_change_may_not_leave_a_weightless_set` |
//! | approve twice to double one's weight | `AlreadyApproved` | `validator_set_changes`, `slashing` |
//! | execute one slash twice | `SlashAlreadyExecuted` once executed | `slashing` |
//! | a non-validator approves | `NotValidator` | `validator_set_changes`, `slashing` |

use std::time::Duration;

use alloy::primitives::{Address, B256, FixedBytes, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use openrelay_chain::anvil::Anvil;
use openrelay_chain::contract::RelayRegistry::{self, RelayRegistryInstance};
use openrelay_chain::deploy::{ChainParams, DeployError, GenesisValidator, deploy};
use openrelay_chain::operator::{
    OperatorError, Refusal, Registry, SetChangeProblem, signing_provider,
};
use openrelay_types::{ErrorKind, HasKind, RelayRole};

type Contract = RelayRegistryInstance<DynProvider>;

const CHAIN_ID: u64 = 31_337;
const ETHER: u128 = 1_000_000_000_000_000_000;
const INGRESS: u8 = 1;
const EGRESS: u8 = 2;
const OPERATOR: u8 = 1;
const VALIDATOR: u8 = 2;

fn eth(milli: u128) -> U256 {
    U256::from(milli * ETHER / 1_000)
}

fn key(byte: u8) -> FixedBytes<32> {
    FixedBytes([byte; 32])
}

/// An anvil with the registry deployed: four genesis validators of 2 ETH
/// each (3 of 4 is a quorum, 2 of 4 is not).
struct Chain {
    anvil: Anvil,
    address: Address,
    params: ChainParams,
    validators: Vec<PrivateKeySigner>,
}

impl Chain {
    async fn start() -> Chain {
        Chain::with(ChainParams::devnet(), 4).await
    }

    async fn with(params: ChainParams, validators: usize) -> Chain {
        let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
        let deployer = Chain::funded(&anvil).await;
        let validators: Vec<PrivateKeySigner> = (0..validators)
            .map(|_| PrivateKeySigner::random())
            .collect();
        for v in &validators {
            anvil.fund(v.address(), eth(100_000)).await.expect("fund");
        }
        let genesis: Vec<GenesisValidator> = validators
            .iter()
            .enumerate()
            .map(|(i, v)| GenesisValidator {
                account: v.address(),
                key: [0xA0 + i as u8; 32],
                stake: eth(2_000),
            })
            .collect();
        let address = deploy(provider(&anvil, &deployer), &params, &genesis)
            .await
            .expect("deploy");
        Chain {
            anvil,
            address,
            params,
            validators,
        }
    }

    async fn funded(anvil: &Anvil) -> PrivateKeySigner {
        let signer = PrivateKeySigner::random();
        anvil
            .fund(signer.address(), eth(100_000))
            .await
            .expect("fund");
        signer
    }

    /// A new funded account.
    async fn account(&self) -> PrivateKeySigner {
        Chain::funded(&self.anvil).await
    }

    fn as_(&self, who: &PrivateKeySigner) -> Contract {
        RelayRegistry::new(self.address, provider(&self.anvil, who))
    }

    fn validator(&self, i: usize) -> Contract {
        self.as_(&self.validators[i])
    }

    fn reader(&self) -> Contract {
        self.validator(0)
    }

    /// Moves the chain's clock forward by `seconds` and mines a block.
    async fn advance(&self, seconds: u64) {
        self.anvil.advance(seconds).await.expect("advance");
    }

    async fn balance(&self, account: Address) -> U256 {
        self.reader()
            .provider()
            .get_balance(account)
            .await
            .expect("balance")
    }

    async fn epoch(&self) -> u64 {
        self.reader().validatorEpoch().call().await.expect("epoch")
    }

    async fn operator_stake(&self, account: Address) -> U256 {
        self.reader()
            .operators(account)
            .call()
            .await
            .expect("operator")
            .stake
    }

    /// A registered operator with `stake`, key byte `byte`.
    async fn operator(&self, byte: u8, stake: U256) -> PrivateKeySigner {
        let who = self.account().await;
        ok(self
            .as_(&who)
            .registerOperator(key(byte), key(byte ^ 0xFF))
            .value(stake))
        .await;
        who
    }

    /// Approves a slash by validators `by`; returns the receipts.
    async fn slash_by(
        &self,
        by: &[usize],
        kind: u8,
        target: Address,
        amount: U256,
    ) -> Vec<TransactionReceipt> {
        let mut receipts = Vec::new();
        for &i in by {
            receipts.push(
                ok(self
                    .validator(i)
                    .approveSlash(kind, target, amount, key(0xEE)))
                .await,
            );
        }
        receipts
    }
}

fn provider(anvil: &Anvil, who: &PrivateKeySigner) -> DynProvider {
    signing_provider(anvil.endpoint().parse().expect("endpoint"), who.clone())
}

/// Sends `call`, which must succeed; returns its receipt.
async fn ok<C: SolCall>(
    call: alloy::contract::SolCallBuilder<&DynProvider, C>,
) -> TransactionReceipt {
    let receipt = call
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", Refusal::decode(&e)))
        .get_receipt()
        .await
        .expect("receipt");
    assert!(receipt.status(), "reverted: {receipt:?}");
    receipt
}

/// Sends `call`, which the contract must refuse; returns the decoded error.
async fn refused<C: SolCall>(call: alloy::contract::SolCallBuilder<&DynProvider, C>) -> Refusal {
    match call.send().await {
        Ok(_) => panic!("expected a refusal"),
        Err(e) => Refusal::decode(&e).unwrap_or_else(|| panic!("not a custom error: {e}")),
    }
}

/// The contract's refusal for stake `stake` short of `required`.
fn short(required: U256, stake: U256) -> Refusal {
    Refusal::InsufficientStake { required, stake }
}

/// Sends `call`, which the contract must refuse with `expected`.
async fn refuses<C: SolCall>(
    call: alloy::contract::SolCallBuilder<&DynProvider, C>,
    expected: Refusal,
) {
    assert_eq!(refused(call).await, expected);
}

/// The events of type `E` in a receipt.
fn events<E: SolEvent>(receipt: &TransactionReceipt) -> Vec<E> {
    receipt
        .inner
        .logs()
        .iter()
        .filter_map(|log| log.log_decode::<E>().ok())
        .map(|log| log.inner.data)
        .collect()
}

async fn block_time(chain: &Chain, receipt: &TransactionReceipt) -> u64 {
    let number = receipt.block_number.expect("block number");
    chain
        .reader()
        .provider()
        .get_block_by_number(number.into())
        .await
        .expect("block")
        .expect("block exists")
        .header
        .timestamp
}

fn gas_cost(receipt: &TransactionReceipt) -> U256 {
    U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price)
}

#[tokio::test]
async fn deployment_checks_parameters_and_announces_the_genesis_set() {
    let chain = Chain::start().await;
    let release = chain
        .reader()
        .releaseRegistry()
        .call()
        .await
        .expect("release registry");
    let release = openrelay_chain::contract::votes::ReleaseRegistry::new(
        release,
        chain.reader().provider().clone(),
    );
    let onchain = ChainParams::from_contracts(
        chain.reader().params().call().await.expect("params"),
        release.params().call().await.expect("release params"),
    );
    assert_eq!(onchain, chain.params);
    let genesis = chain
        .reader()
        .ValidatorSetChanged_filter()
        .from_block(0)
        .query()
        .await
        .expect("logs");
    assert_eq!(genesis.len(), 1);
    let (set, _) = &genesis[0];
    assert_eq!(set.epoch, 0);
    let members: Vec<Address> = chain.validators.iter().map(|v| v.address()).collect();
    assert_eq!(set.members, members);
    assert_eq!(set.keys[1], key(0xA1));
    assert_eq!(set.weights, vec![eth(2_000); 4]);
    assert_eq!(
        chain.reader().activeWeight().call().await.expect("weight"),
        eth(8_000)
    );

    // What `deploy` refuses before sending, each with its reason.
    let deployer = chain.account().await;
    let one = [GenesisValidator {
        account: deployer.address(),
        key: [1; 32],
        stake: eth(2_000),
    }];
    let simple_majority = ChainParams {
        quorum_bps: 5_001,
        ..ChainParams::devnet()
    };
    let p = provider(&chain.anvil, &deployer);
    let e = deploy(p.clone(), &simple_majority, &one)
        .await
        .expect_err("refused");
    assert!(matches!(e, DeployError::Quorum(5_001)), "{e}");
    assert_eq!(e.kind(), ErrorKind::Config);
    let shares = ChainParams {
        slash_burn_bps: 9_000,
        ..ChainParams::devnet()
    };
    let e = deploy(p.clone(), &shares, &one).await.expect_err("refused");
    assert!(matches!(e, DeployError::SlashShares { .. }), "{e}");
    let e = deploy(p.clone(), &ChainParams::devnet(), &[])
        .await
        .expect_err("refused");
    assert!(
        matches!(e, DeployError::GenesisSize { members: 0, .. }),
        "{e}"
    );
    let poor = [GenesisValidator {
        stake: eth(10),
        ..one[0].clone()
    }];
    let e = deploy(p.clone(), &ChainParams::devnet(), &poor)
        .await
        .expect_err("refused");
    assert!(matches!(e, DeployError::GenesisStake { .. }), "{e}");
    // The contract refuses on its own too (a deployer bypassing `deploy`):
    // a simple-majority quorum, and genesis stakes not paid in full.
    let raw = |params: ChainParams, paid: U256| {
        let p = p.clone();
        let account = deployer.address();
        async move {
            RelayRegistry::deploy_builder(
                p,
                (&params).into(),
                vec![account],
                vec![key(1)],
                vec![eth(2_000)],
                (&params.release).into(),
            )
            .value(paid)
            .deploy()
            .await
            .expect_err("refused")
        }
    };
    let e = raw(simple_majority, eth(2_000)).await;
    assert_eq!(Refusal::decode(&e), Some(Refusal::BadParams));
    let e = raw(ChainParams::devnet(), eth(1_000)).await;
    assert_eq!(Refusal::decode(&e), Some(Refusal::BadParams));
}

#[tokio::test]
async fn operator_registration_rules() {
    let chain = Chain::start().await;
    let alice = chain.account().await;
    let a = chain.as_(&alice);
    refuses(a.registerOperator(B256::ZERO, key(9)), Refusal::ZeroKey).await;
    refuses(a.stake().value(eth(1)), Refusal::NotOperator).await;

    let receipt = ok(a.registerOperator(key(1), key(9)).value(eth(500))).await;
    let registered = events::<RelayRegistry::OperatorRegistered>(&receipt);
    assert_eq!(registered.len(), 1);
    assert_eq!(
        (
            registered[0].operator,
            registered[0].operatorKey,
            registered[0].profileHash
        ),
        (alice.address(), key(1), key(9))
    );
    let staked = events::<RelayRegistry::Staked>(&receipt);
    assert_eq!((staked[0].amount, staked[0].stake), (eth(500), eth(500)));
    refuses(
        a.registerOperator(key(2), key(9)),
        Refusal::AlreadyRegistered,
    )
    .await;
    // Squatting: another account claiming Alice's key is refused after
    // Alice; before her, the squatter would hold it (see the attack list).
    // Anyone may claim Alice's published key too: that blocks nothing.
    let mallory = chain.account().await;
    let receipt = ok(chain.as_(&mallory).registerOperator(key(1), key(9))).await;
    let registered = events::<RelayRegistry::OperatorRegistered>(&receipt);
    assert_eq!(
        (registered[0].operator, registered[0].operatorKey),
        (mallory.address(), key(1))
    );

    let receipt = ok(a.stake().value(eth(250))).await;
    let staked = events::<RelayRegistry::Staked>(&receipt);
    assert_eq!((staked[0].amount, staked[0].stake), (eth(250), eth(750)));
    assert_eq!(chain.operator_stake(alice.address()).await, eth(750));

    let receipt = ok(a.updateProfile(key(7))).await;
    assert_eq!(
        events::<RelayRegistry::ProfileUpdated>(&receipt)[0].profileHash,
        key(7)
    );
}

#[tokio::test]
async fn relay_rules() {
    let params = ChainParams {
        max_relays_per_operator: 3,
        ..ChainParams::devnet()
    };
    let chain = Chain::with(params, 4).await;
    // 0.5 ETH covers 500 Mbit/s at 0.001 ETH per Mbit/s.
    let alice = chain.operator(1, eth(500)).await;
    let a = chain.as_(&alice);
    refuses(
        a.registerRelay(key(10), 0, 100, key(0)),
        Refusal::BadRole(0),
    )
    .await;
    refuses(
        a.registerRelay(key(10), 3, 100, key(0)),
        Refusal::BadRole(3),
    )
    .await;
    refuses(
        a.registerRelay(key(10), INGRESS, 0, key(0)),
        Refusal::ZeroBandwidth,
    )
    .await;
    refuses(
        a.registerRelay(B256::ZERO, INGRESS, 1, key(0)),
        Refusal::ZeroKey,
    )
    .await;
    refuses(
        a.registerRelay(key(10), INGRESS, 501, key(0)),
        short(eth(501), eth(500)),
    )
    .await;
    refuses(
        chain
            .as_(&chain.account().await)
            .registerRelay(key(10), INGRESS, 1, key(0)),
        Refusal::NotOperator,
    )
    .await;

    let receipt = ok(a.registerRelay(key(10), INGRESS, 300, key(0x31))).await;
    let e = &events::<RelayRegistry::RelayRegistered>(&receipt)[0];
    assert_eq!(
        (
            e.operator,
            e.relayKey,
            e.role,
            e.bandwidthMbps,
            e.descriptorHash
        ),
        (alice.address(), key(10), INGRESS, 300, key(0x31))
    );
    refuses(
        a.registerRelay(key(10), EGRESS, 1, key(0)),
        Refusal::AlreadyRegistered,
    )
    .await;
    // The cover counts every relay of the operator.
    refuses(
        a.registerRelay(key(11), EGRESS, 201, key(0)),
        short(eth(501), eth(500)),
    )
    .await;
    ok(a.registerRelay(key(11), EGRESS, 100, key(0x32))).await;

    // Squatting Alice's relay key under another account does not touch
    // her relay: relays are stored under (operator account, key).
    let mallory = chain.operator(2, eth(500)).await;
    ok(chain
        .as_(&mallory)
        .registerRelay(key(10), EGRESS, 50, key(0x66)))
    .await;
    let id = chain
        .reader()
        .relayId(alice.address(), key(10))
        .call()
        .await
        .expect("id");
    let relay = chain.reader().relays(id).call().await.expect("relay");
    assert_eq!(
        (relay.role, relay.bandwidthMbps, relay.descriptorHash),
        (INGRESS, 300, key(0x31))
    );
    // ... and Mallory cannot change or remove it.
    refuses(
        chain.as_(&mallory).updateRelay(key(11), 1, key(0)),
        Refusal::UnknownRelay,
    )
    .await;
    refuses(
        chain.as_(&mallory).removeRelay(key(11)),
        Refusal::UnknownRelay,
    )
    .await;

    // Update: more bandwidth needs cover, less does not.
    refuses(
        a.updateRelay(key(10), 401, key(0x33)),
        short(eth(501), eth(500)),
    )
    .await;
    refuses(a.updateRelay(key(10), 0, key(0x33)), Refusal::ZeroBandwidth).await;
    let receipt = ok(a.updateRelay(key(10), 400, key(0x33))).await;
    let e = &events::<RelayRegistry::RelayUpdated>(&receipt)[0];
    assert_eq!(
        (e.relayKey, e.bandwidthMbps, e.descriptorHash),
        (key(10), 400, key(0x33))
    );
    ok(a.updateRelay(key(10), 10, key(0x34))).await;
    let operator = chain
        .reader()
        .operators(alice.address())
        .call()
        .await
        .expect("operator");
    assert_eq!((operator.advertisedMbps, operator.relayCount), (110, 2));

    // The most relays per operator.
    ok(a.registerRelay(key(12), EGRESS, 1, key(0))).await;
    refuses(
        a.registerRelay(key(13), EGRESS, 1, key(0)),
        Refusal::TooManyRelays(3),
    )
    .await;

    // Removing a relay frees its cover and its slot.
    ok(a.updateRelay(key(11), 489, key(0))).await;
    refuses(a.updateRelay(key(12), 2, key(0)), short(eth(501), eth(500))).await;
    let receipt = ok(a.removeRelay(key(11))).await;
    assert_eq!(
        events::<RelayRegistry::RelayRemoved>(&receipt)[0].relayKey,
        key(11)
    );
    refuses(a.removeRelay(key(11)), Refusal::UnknownRelay).await;
    ok(a.registerRelay(key(13), INGRESS, 489, key(0))).await;
    let removed = chain
        .reader()
        .relayId(alice.address(), key(11))
        .call()
        .await
        .expect("id");
    let relay = chain.reader().relays(removed).call().await.expect("relay");
    assert_eq!(relay.role, 0);
    assert!(
        chain
            .reader()
            .isCovered(alice.address())
            .call()
            .await
            .expect("covered")
    );
}

#[tokio::test]
async fn sybil_splitting_buys_no_bandwidth() {
    let chain = Chain::start().await;
    // Stake for 1 Gbit/s.
    let sybil = chain.operator(1, eth(1_000)).await;
    let s = chain.as_(&sybil);
    for i in 0..10u8 {
        ok(s.registerRelay(key(100 + i), EGRESS, 100, key(0))).await;
    }
    // Ten relays of 100 Mbit/s used up the stake of one of 1000.
    refuses(
        s.registerRelay(key(200), EGRESS, 1, key(0)),
        short(eth(1_001), eth(1_000)),
    )
    .await;
    // Another account (a second Sybil identity) needs its own stake.
    let second = chain.operator(2, U256::ZERO).await;
    refuses(
        chain
            .as_(&second)
            .registerRelay(key(200), EGRESS, 1, key(0)),
        short(eth(1), U256::ZERO),
    )
    .await;
}

#[tokio::test]
async fn unstake_and_withdraw() {
    let chain = Chain::start().await;
    let alice = chain.operator(1, eth(1_000)).await;
    let a = chain.as_(&alice);
    ok(a.registerRelay(key(10), INGRESS, 600, key(0))).await;
    // What stays must cover 600 Mbit/s: 0.6 ETH; unstaking 0.5 would leave
    // 0.5, so the stake needed is 0.6 + 0.5.
    refuses(a.unstake(eth(500)), short(eth(1_100), eth(1_000))).await;
    refuses(a.unstake(eth(1_001)), short(eth(1_001), eth(1_000))).await;
    refuses(a.withdraw(), Refusal::NothingToWithdraw).await;

    let receipt = ok(a.unstake(eth(400))).await;
    let now = block_time(&chain, &receipt).await;
    let ready_at = now + chain.params.unbonding_delay.as_secs();
    let e = &events::<RelayRegistry::UnstakeRequested>(&receipt)[0];
    assert_eq!(
        (e.amount, e.stake, e.readyAt),
        (eth(400), eth(600), ready_at)
    );
    assert_eq!(chain.operator_stake(alice.address()).await, eth(600));
    assert!(
        chain
            .reader()
            .isCovered(alice.address())
            .call()
            .await
            .expect("covered")
    );

    // Early withdrawal.
    refuses(a.withdraw(), Refusal::NotReady(ready_at)).await;
    chain
        .advance(chain.params.unbonding_delay.as_secs() - 5)
        .await;
    refuses(a.withdraw(), Refusal::NotReady(ready_at)).await;
    chain.advance(5).await;

    let before = chain.balance(alice.address()).await;
    let receipt = ok(a.withdraw()).await;
    let after = chain.balance(alice.address()).await;
    assert_eq!(after + gas_cost(&receipt), before + eth(400));
    let e = &events::<RelayRegistry::Withdrawn>(&receipt)[0];
    assert_eq!((e.account, e.amount), (alice.address(), eth(400)));
    refuses(a.withdraw(), Refusal::NothingToWithdraw).await;
}

#[tokio::test]
async fn unbonding_stake_is_still_slashed() {
    let chain = Chain::start().await;
    let liar = chain.operator(1, eth(1_000)).await;
    let l = chain.as_(&liar);
    // The liar sees a slash coming, drops its relay and unstakes all...
    ok(l.registerRelay(key(10), EGRESS, 1_000, key(0))).await;
    ok(l.removeRelay(key(10))).await;
    ok(l.unstake(eth(1_000))).await;
    // ... but the slash lands during unbonding and takes from it.
    let receipts = chain
        .slash_by(&[0, 1, 2], OPERATOR, liar.address(), eth(700))
        .await;
    let slashed = events::<RelayRegistry::Slashed>(&receipts[2]);
    assert_eq!(
        (slashed[0].amount, slashed[0].stakeLeft),
        (eth(700), U256::ZERO)
    );
    let unbonding = chain
        .reader()
        .unbonding(liar.address())
        .call()
        .await
        .expect("unbonding");
    assert_eq!(unbonding.amount, eth(300));
    chain.advance(chain.params.unbonding_delay.as_secs()).await;
    let receipt = ok(l.withdraw()).await;
    assert_eq!(
        events::<RelayRegistry::Withdrawn>(&receipt)[0].amount,
        eth(300)
    );
}

#[tokio::test]
async fn validator_set_changes() {
    let chain = Chain::start().await;
    let carol = chain.account().await;
    let c = chain.as_(&carol);
    refuses(
        c.requestJoin(key(0xC0)).value(eth(999)),
        Refusal::BelowMinimumStake(eth(1_000)),
    )
    .await;
    refuses(
        c.requestJoin(B256::ZERO).value(eth(1_000)),
        Refusal::ZeroKey,
    )
    .await;
    refuses(c.withdrawJoin(), Refusal::NotPending).await;
    // A flash stake: far more than the whole set.
    let receipt = ok(c.requestJoin(key(0xC0)).value(eth(50_000))).await;
    let joined = &events::<RelayRegistry::ValidatorJoinRequested>(&receipt)[0];
    let join_at = block_time(&chain, &receipt).await + chain.params.validator_join_delay.as_secs();
    assert_eq!(
        (
            joined.validator,
            joined.validatorKey,
            joined.stake,
            joined.readyAt
        ),
        (carol.address(), key(0xC0), eth(50_000), join_at)
    );
    refuses(
        c.requestJoin(key(0xC0)).value(eth(1_000)),
        Refusal::AlreadyValidator,
    )
    .await;
    // Not a member yet: its stake gives it no say.
    let join = vec![carol.address()];
    refuses(
        c.approveSetChange(0, join.clone(), vec![]),
        Refusal::NotValidator,
    )
    .await;
    // Before the join delay, no approval is recorded.
    refuses(
        chain.validator(0).approveSetChange(0, join.clone(), vec![]),
        Refusal::BadSetChange,
    )
    .await;
    refuses(
        chain.validator(0).approveSetChange(0, vec![], vec![]),
        Refusal::BadSetChange,
    )
    .await;
    chain
        .advance(chain.params.validator_join_delay.as_secs())
        .await;

    refuses(
        chain.validator(0).approveSetChange(1, join.clone(), vec![]),
        Refusal::WrongEpoch(0),
    )
    .await;
    // Half the weight (2 of 4): recorded, not applied.
    for i in 0..2 {
        let receipt = ok(chain.validator(i).approveSetChange(0, join.clone(), vec![])).await;
        let approved = &events::<RelayRegistry::SetChangeApproved>(&receipt)[0];
        assert_eq!((approved.epoch, approved.weight), (0, eth(2_000)));
        assert!(events::<RelayRegistry::ValidatorSetChanged>(&receipt).is_empty());
    }
    refuses(
        chain.validator(1).approveSetChange(0, join.clone(), vec![]),
        Refusal::AlreadyApproved,
    )
    .await;
    assert_eq!(chain.epoch().await, 0);
    // 3 of 4: applied.
    let receipt = ok(chain.validator(2).approveSetChange(0, join.clone(), vec![])).await;
    let changed = &events::<RelayRegistry::ValidatorSetChanged>(&receipt)[0];
    let mut members: Vec<Address> = chain.validators.iter().map(|v| v.address()).collect();
    members.push(carol.address());
    assert_eq!(changed.epoch, 1);
    assert_eq!(changed.members, members);
    assert_eq!(
        changed.keys,
        vec![key(0xA0), key(0xA1), key(0xA2), key(0xA3), key(0xC0)]
    );
    assert_eq!(
        changed.weights,
        vec![eth(2_000), eth(2_000), eth(2_000), eth(2_000), eth(50_000)]
    );
    assert_eq!(chain.epoch().await, 1);
    assert_eq!(
        chain.reader().activeSet().call().await.expect("set"),
        members
    );
    // Replaying the approval (the 4th member's, or anyone's) in epoch 1.
    refuses(
        chain.validator(3).approveSetChange(0, join.clone(), vec![]),
        Refusal::WrongEpoch(1),
    )
    .await;

    // Leaving: not before the leave delay.
    let dave = chain.validators[3].clone();
    let receipt = ok(chain.validator(3).requestLeave()).await;
    let leave_at =
        block_time(&chain, &receipt).await + chain.params.validator_leave_delay.as_secs();
    assert_eq!(
        events::<RelayRegistry::ValidatorLeaveRequested>(&receipt)[0].readyAt,
        leave_at
    );
    let leave = vec![dave.address()];
    refuses(
        c.approveSetChange(1, vec![], leave.clone()),
        Refusal::BadSetChange,
    )
    .await;
    // Nor can a member be removed who did not ask to leave.
    refuses(
        c.approveSetChange(1, vec![], vec![chain.validators[0].address()]),
        Refusal::BadSetChange,
    )
    .await;
    refuses(
        chain.as_(&chain.account().await).requestLeave(),
        Refusal::NotValidator,
    )
    .await;
    chain
        .advance(chain.params.validator_leave_delay.as_secs())
        .await;
    // The four genesis members hold 8 of 58 ETH: not a quorum.
    for i in 0..4 {
        ok(chain
            .validator(i)
            .approveSetChange(1, vec![], leave.clone()))
        .await;
    }
    assert_eq!(chain.epoch().await, 1);
    let receipt = ok(c.approveSetChange(1, vec![], leave.clone())).await;
    let changed = &events::<RelayRegistry::ValidatorSetChanged>(&receipt)[0];
    assert_eq!(changed.epoch, 2);
    assert!(!changed.members.contains(&dave.address()));
    assert_eq!(changed.members.len(), 4);
    // The leaver's stake unbonds.
    let unbonding = chain
        .reader()
        .unbonding(dave.address())
        .call()
        .await
        .expect("unbonding");
    assert_eq!(unbonding.amount, eth(2_000));
    refuses(
        chain
            .validator(3)
            .approveSetChange(2, vec![], vec![members[0]]),
        Refusal::NotValidator,
    )
    .await;
}

#[tokio::test]
async fn a_withdrawn_or_slashed_join_cannot_be_applied() {
    let chain = Chain::start().await;
    let erin = chain.account().await;
    let e = chain.as_(&erin);
    ok(e.requestJoin(key(0xE0)).value(eth(1_000))).await;
    // Slashed below the minimum while waiting: no longer admissible.
    chain
        .slash_by(&[0, 1, 2], VALIDATOR, erin.address(), eth(1))
        .await;
    chain
        .advance(chain.params.validator_join_delay.as_secs())
        .await;
    refuses(
        chain
            .validator(0)
            .approveSetChange(0, vec![erin.address()], vec![]),
        Refusal::BadSetChange,
    )
    .await;
    let receipt = ok(e.withdrawJoin()).await;
    assert_eq!(
        events::<RelayRegistry::JoinWithdrawn>(&receipt)[0].stake,
        eth(999)
    );
    refuses(
        chain
            .validator(0)
            .approveSetChange(0, vec![erin.address()], vec![]),
        Refusal::BadSetChange,
    )
    .await;
}

#[tokio::test]
async fn exactly_two_thirds_is_not_a_quorum() {
    let chain = Chain::with(ChainParams::devnet(), 3).await;
    let carol = chain.account().await;
    ok(chain.as_(&carol).requestJoin(key(0xC0)).value(eth(1_000))).await;
    chain
        .advance(chain.params.validator_join_delay.as_secs())
        .await;
    let join = vec![carol.address()];
    for i in 0..2 {
        ok(chain.validator(i).approveSetChange(0, join.clone(), vec![])).await;
    }
    assert_eq!(
        chain.epoch().await,
        0,
        "2 of 3 equal weights applied a change"
    );
    ok(chain.validator(2).approveSetChange(0, join, vec![])).await;
    assert_eq!(chain.epoch().await, 1);
}

#[tokio::test]
async fn a_set_change_may_not_leave_a_weightless_set() {
    let chain = Chain::with(ChainParams::devnet(), 3).await;
    // The set slashes two of its members to nothing; the third leaves.
    for i in 0..2 {
        let target = chain.validators[i].address();
        chain
            .slash_by(&[0, 1, 2], VALIDATOR, target, eth(2_000))
            .await;
    }
    ok(chain.validator(2).requestLeave()).await;
    chain
        .advance(chain.params.validator_leave_delay.as_secs())
        .await;
    let leave = vec![chain.validators[2].address()];
    for i in 0..2 {
        ok(chain
            .validator(i)
            .approveSetChange(0, vec![], leave.clone()))
        .await;
    }
    // The last approval would leave two members of weight 0, each a quorum
    // on its own.
    refuses(
        chain.validator(2).approveSetChange(0, vec![], leave),
        Refusal::BadSetChange,
    )
    .await;
    assert_eq!(chain.epoch().await, 0);
}

#[tokio::test]
async fn slashing() {
    let chain = Chain::start().await;
    let alice = chain.operator(1, eth(1_000)).await;
    ok(chain
        .as_(&alice)
        .registerRelay(key(10), EGRESS, 900, key(0)))
    .await;
    let target = alice.address();
    let outsider = chain.account().await;
    refuses(
        chain
            .as_(&outsider)
            .approveSlash(OPERATOR, target, eth(300), key(0xEE)),
        Refusal::NotValidator,
    )
    .await;
    refuses(
        chain
            .validator(0)
            .approveSlash(3, target, eth(300), key(0xEE)),
        Refusal::BadSlash,
    )
    .await;
    refuses(
        chain
            .validator(0)
            .approveSlash(OPERATOR, target, U256::ZERO, key(0xEE)),
        Refusal::BadSlash,
    )
    .await;
    // 2 of 4: nothing happens.
    let receipts = chain.slash_by(&[0, 1], OPERATOR, target, eth(300)).await;
    for receipt in &receipts {
        assert!(events::<RelayRegistry::Slashed>(receipt).is_empty());
        assert_eq!(events::<RelayRegistry::SlashApproved>(receipt).len(), 1);
    }
    refuses(
        chain
            .validator(1)
            .approveSlash(OPERATOR, target, eth(300), key(0xEE)),
        Refusal::AlreadyApproved,
    )
    .await;
    assert_eq!(chain.operator_stake(target).await, eth(1_000));
    // The third approval executes it: 80% burnt, 20% to the three.
    let receipt = &chain.slash_by(&[2], OPERATOR, target, eth(300)).await[0];
    let slashed = &events::<RelayRegistry::Slashed>(receipt)[0];
    assert_eq!(
        (
            slashed.targetKind,
            slashed.target,
            slashed.amount,
            slashed.burnt,
            slashed.rewarded,
            slashed.stakeLeft,
            slashed.evidence
        ),
        (
            OPERATOR,
            target,
            eth(300),
            eth(240),
            eth(60),
            eth(700),
            key(0xEE)
        )
    );
    assert_eq!(chain.operator_stake(target).await, eth(700));
    for i in 0..3 {
        let reward = chain
            .reader()
            .rewards(chain.validators[i].address())
            .call()
            .await
            .expect("rewards");
        assert_eq!(reward, eth(20));
    }
    assert_eq!(
        chain
            .reader()
            .rewards(chain.validators[3].address())
            .call()
            .await
            .expect("rewards"),
        U256::ZERO
    );
    assert_eq!(
        chain.reader().totalBurnt().call().await.expect("burnt"),
        eth(240)
    );
    // 0.7 ETH no longer covers 900 Mbit/s: none of Alice's relays is listed.
    assert!(
        !chain
            .reader()
            .isCovered(target)
            .call()
            .await
            .expect("covered")
    );
    // Executed once.
    let id = chain
        .reader()
        .slashId(OPERATOR, target, eth(300), key(0xEE))
        .call()
        .await
        .expect("slash id");
    refuses(
        chain
            .validator(3)
            .approveSlash(OPERATOR, target, eth(300), key(0xEE)),
        Refusal::SlashAlreadyExecuted(id),
    )
    .await;
    // The reward is withdrawable at once.
    let v = chain.validators[0].address();
    let before = chain.balance(v).await;
    let receipt = ok(chain.validator(0).withdraw()).await;
    assert_eq!(
        chain.balance(v).await + gas_cost(&receipt),
        before + eth(20)
    );

    // Slashing a validator.
    let receipts = chain
        .slash_by(
            &[0, 1, 2],
            VALIDATOR,
            chain.validators[3].address(),
            eth(500),
        )
        .await;
    let slashed = &events::<RelayRegistry::Slashed>(&receipts[2])[0];
    assert_eq!(
        (slashed.targetKind, slashed.stakeLeft),
        (VALIDATOR, eth(1_500))
    );
}

#[tokio::test]
async fn slash_approvals_do_not_carry_across_epochs() {
    let chain = Chain::start().await;
    let alice = chain.operator(1, eth(1_000)).await;
    chain
        .slash_by(&[0, 1], OPERATOR, alice.address(), eth(100))
        .await;
    // A set change moves to epoch 1.
    let carol = chain.account().await;
    ok(chain.as_(&carol).requestJoin(key(0xC0)).value(eth(1_000))).await;
    chain
        .advance(chain.params.validator_join_delay.as_secs())
        .await;
    for i in 0..3 {
        ok(chain
            .validator(i)
            .approveSetChange(0, vec![carol.address()], vec![]))
        .await;
    }
    assert_eq!(chain.epoch().await, 1);
    // One more approval would have made 3 of 4 in epoch 0; in epoch 1 it
    // starts a new vote.
    let receipt = &chain
        .slash_by(&[2], OPERATOR, alice.address(), eth(100))
        .await[0];
    assert!(events::<RelayRegistry::Slashed>(receipt).is_empty());
    assert_eq!(chain.operator_stake(alice.address()).await, eth(1_000));
}

// ---- operator operations: typed errors with clear messages ----

async fn registry(chain: &Chain, who: &PrivateKeySigner) -> Registry {
    Registry::connect(
        chain.anvil.endpoint(),
        CHAIN_ID,
        chain.address,
        who.clone(),
        Duration::from_secs(10),
    )
    .await
    .expect("connect")
}

#[tokio::test]
async fn operator_errors_say_what_to_do() {
    let chain = Chain::start().await;
    let alice = chain.account().await;
    let r = registry(&chain, &alice).await;
    assert_eq!(r.params(), &chain.params);

    let e = r.stake(eth(1)).await.expect_err("refused");
    assert_eq!(
        e.to_string(),
        "the registry contract refused: this account is not a registered operator (register it first)"
    );
    assert_eq!(e.kind(), ErrorKind::Refused);

    r.register_operator([1; 32], [2; 32], eth(500))
        .await
        .expect("register");
    r.register_relay([10; 32], RelayRole::Ingress, 500, [0; 32])
        .await
        .expect("relay");
    let e = r
        .register_relay([11; 32], RelayRole::Egress, 1_000, [0; 32])
        .await
        .expect_err("refused");
    assert_eq!(
        e.to_string(),
        "stake 0.5 ETH covers 500 Mbit/s; registering 1000 Mbit/s more needs 1.5 ETH in total"
    );
    assert_eq!(e.kind(), ErrorKind::Refused);
    let e = r
        .update_relay([10; 32], 700, [0; 32])
        .await
        .expect_err("refused");
    assert_eq!(
        e.to_string(),
        "stake 0.5 ETH covers 500 Mbit/s; registering 200 Mbit/s more needs 0.7 ETH in total"
    );
    let e = r.unstake(eth(100)).await.expect_err("refused");
    assert_eq!(
        e.to_string(),
        "unstaking 0.1 ETH would leave 0.4 ETH, less than the 0.5 ETH covering the 500 Mbit/s your relays advertise (remove or shrink relays first)"
    );
    let e = r.unstake(eth(600)).await.expect_err("refused");
    assert_eq!(
        e.to_string(),
        "unstaking 0.6 ETH is more than the 0.5 ETH staked"
    );

    r.stake(eth(1_000)).await.expect("stake");
    r.register_relay([11; 32], RelayRole::Egress, 1_000, [3; 32])
        .await
        .expect("relay after staking");
    r.update_relay([10; 32], 200, [4; 32])
        .await
        .expect("shrink");
    let sent = r.unstake(eth(300)).await.expect("unstake");
    let e = r.withdraw().await.expect_err("refused");
    assert!(
        matches!(e, OperatorError::Refused(Refusal::NotReady(_))),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(
            "the registry contract refused: the unbonding stake can be withdrawn from unix time "
        ),
        "{e}"
    );

    let status = r.status(None).await.expect("status");
    assert_eq!(status.account, alice.address());
    assert_eq!(status.operator_key, Some([1; 32]));
    assert_eq!(status.stake, eth(1_200));
    assert_eq!(status.advertised_mbps, 1_200);
    assert_eq!(status.cover_required, eth(1_200));
    assert!(status.covered);
    assert_eq!(status.unbonding, eth(300));
    let tx_block = sent.block;
    assert!(tx_block > 0);
    assert!(status.unbonding_ready_at.is_some());
    let mut relays = status.relays.clone();
    relays.sort_by_key(|relay| relay.relay_key);
    assert_eq!(relays.len(), 2);
    assert_eq!(
        (
            relays[0].relay_key,
            relays[0].role,
            relays[0].bandwidth_mbps,
            relays[0].descriptor_hash
        ),
        ([10; 32], RelayRole::Ingress, 200, [4; 32])
    );
    assert_eq!(
        (relays[1].role, relays[1].bandwidth_mbps),
        (RelayRole::Egress, 1_000)
    );
    r.remove_relay([11; 32]).await.expect("remove");
    assert_eq!(r.status(None).await.expect("status").relays.len(), 1);

    // Validator operations.
    let e = r
        .validator_join([5; 32], eth(10))
        .await
        .expect_err("refused");
    assert_eq!(
        e.to_string(),
        "the registry contract refused: a validator stakes at least 1 ETH"
    );
    let e = r.validator_leave().await.expect_err("refused");
    assert!(
        matches!(e, OperatorError::Refused(Refusal::NotValidator)),
        "{e}"
    );
    r.validator_join([5; 32], eth(1_000)).await.expect("join");
    let v0 = registry(&chain, &chain.validators[0]).await;
    let e = v0
        .approve_set_change(0, vec![alice.address()], vec![])
        .await
        .expect_err("refused");
    // The contract says only `BadSetChange`; the library names the
    // account and the time.
    assert!(
        matches!(
            &e,
            OperatorError::SetChange(SetChangeProblem::JoinNotReady { account, ready_at, now })
                if *account == alice.address() && now < ready_at
        ),
        "{e}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "the registry contract refused the set change: {} may join from unix time",
            alice.address()
        )),
        "{e}"
    );
    let e = v0
        .approve_set_change(0, vec![], vec![chain.validators[1].address()])
        .await
        .expect_err("refused");
    assert!(
        matches!(e, OperatorError::SetChange(SetChangeProblem::NotLeaving(_))),
        "{e}"
    );
    let e = v0
        .approve_set_change(3, vec![alice.address()], vec![])
        .await
        .expect_err("refused");
    assert_eq!(
        e.to_string(),
        "the registry contract refused: the validator set is at epoch 0"
    );
}

#[tokio::test]
async fn a_transaction_not_mined_in_time_says_so() {
    let chain = Chain::start().await;
    let alice = chain.account().await;
    let r = registry(&chain, &alice)
        .await
        .confirm_within(Duration::from_secs(1));
    let _: serde_json::Value = chain
        .reader()
        .provider()
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .expect("evm_setAutomine");
    let e = r
        .register_operator([1; 32], [2; 32], eth(1))
        .await
        .expect_err("not mined");
    assert!(matches!(e, OperatorError::NotConfirmed { .. }), "{e}");
    assert!(
        e.to_string().ends_with(
            "was sent but not mined within 1s; it may still be: check `openrelay operator status` before sending it again"
        ),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Unreachable);
}

#[tokio::test]
async fn connecting_checks_the_url_the_chain_and_the_contract() {
    let chain = Chain::start().await;
    let who = chain.account().await;
    let connect = |rpc: String, chain_id: u64, contract: Address| {
        let who = who.clone();
        async move {
            Registry::connect(&rpc, chain_id, contract, who, Duration::from_secs(2))
                .await
                .map(|_| ())
                .expect_err("refused")
        }
    };
    let e = connect("https://rpc.example.org".into(), CHAIN_ID, chain.address).await;
    assert_eq!(
        e.to_string(),
        "https://rpc.example.org: https RPC is not supported (openrelay speaks plain HTTP to a node you run, or through a local proxy such as `ssh -L`); use an http:// URL"
    );
    assert_eq!(e.kind(), ErrorKind::Config);
    let e = connect("127.0.0.1:8545".into(), CHAIN_ID, chain.address).await;
    assert!(matches!(e, OperatorError::BadUrl { .. }), "{e}");

    let e = connect(chain.anvil.endpoint().into(), 1, chain.address).await;
    assert_eq!(
        e.to_string(),
        "the RPC node is on chain 31337, not the expected chain 1"
    );
    assert_eq!(e.kind(), ErrorKind::Config);

    let e = connect(
        chain.anvil.endpoint().into(),
        CHAIN_ID,
        Address::repeat_byte(7),
    )
    .await;
    assert_eq!(
        e.to_string(),
        format!("no contract at {} on chain 31337", Address::repeat_byte(7))
    );

    // Nothing listens: unreachable, with the URL.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let url = format!("http://{closed}");
    let e = connect(url.clone(), CHAIN_ID, chain.address).await;
    assert!(matches!(e, OperatorError::Unreachable { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("the RPC node at {url} is unreachable: ")),
        "{e}"
    );
    assert_eq!(e.kind(), ErrorKind::Unreachable);

    // Something accepts connections and never answers: timed out.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", silent.local_addr().expect("addr"));
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let e = connect(url.clone(), CHAIN_ID, chain.address).await;
    hold.abort();
    assert_eq!(
        e.to_string(),
        format!("the RPC node at {url} did not answer within 2s")
    );
    assert_eq!(e.kind(), ErrorKind::Unreachable);
}

// ---- gas ----

/// The gas of each operation, from receipts (run with `--nocapture` to
/// see the table; docs/chain.md has it).
#[tokio::test]
#[allow(clippy::print_stdout, reason = "the table is this test's output")]
async fn gas_of_each_operation() {
    let chain = Chain::start().await;
    let alice = chain.account().await;
    let r = registry(&chain, &alice).await;
    let mut table: Vec<(&str, u64)> = Vec::new();
    // Funding is not a transaction: the deployment is block 1's only one.
    let deployment = chain
        .reader()
        .provider()
        .get_block_receipts(1.into())
        .await
        .expect("receipts")
        .expect("block 1");
    assert_eq!(deployment[0].contract_address, Some(chain.address));
    table.push(("deploy (4 genesis validators)", deployment[0].gas_used));
    let gas = |sent: Result<openrelay_chain::operator::Sent, OperatorError>| {
        sent.expect("operation").gas_used
    };
    table.push((
        "registerOperator (with stake)",
        gas(r.register_operator([1; 32], [2; 32], eth(500)).await),
    ));
    table.push(("stake", gas(r.stake(eth(2_000)).await)));
    table.push((
        "registerRelay (first)",
        gas(r
            .register_relay([10; 32], RelayRole::Ingress, 500, [3; 32])
            .await),
    ));
    table.push((
        "registerRelay (second)",
        gas(r
            .register_relay([11; 32], RelayRole::Egress, 500, [3; 32])
            .await),
    ));
    table.push((
        "updateRelay",
        gas(r.update_relay([10; 32], 400, [4; 32]).await),
    ));
    table.push(("removeRelay", gas(r.remove_relay([11; 32]).await)));
    table.push(("unstake", gas(r.unstake(eth(1_000)).await)));
    chain.advance(chain.params.unbonding_delay.as_secs()).await;
    table.push(("withdraw", gas(r.withdraw().await)));
    table.push((
        "requestJoin (validator)",
        gas(r.validator_join([5; 32], eth(1_000)).await),
    ));
    chain
        .advance(chain.params.validator_join_delay.as_secs())
        .await;
    let mut approvals = Vec::new();
    for i in 0..3 {
        let v = registry(&chain, &chain.validators[i]).await;
        approvals.push(gas(v
            .approve_set_change(0, vec![alice.address()], vec![])
            .await
            .map(|approval| approval.sent)));
    }
    table.push(("approveSetChange (below quorum)", approvals[0]));
    table.push((
        "approveSetChange (reaching quorum, 4 -> 5 members)",
        approvals[2],
    ));
    table.push(("requestLeave (validator)", gas(r.validator_leave().await)));
    let receipts = chain
        .slash_by(&[0, 1, 2, 3], OPERATOR, alice.address(), eth(100))
        .await;
    let (below, executing) = (receipts[0].gas_used, receipts[3].gas_used);
    table.push(("approveSlash (below quorum)", below));
    table.push(("approveSlash (executing, 4 approvers)", executing));

    println!("| operation | gas used |\n|---|---:|");
    for (operation, gas) in &table {
        println!("| {operation} | {gas} |");
        assert!(*gas > 21_000, "{operation}: {gas}");
    }
}
