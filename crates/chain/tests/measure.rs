//! Measurement epochs on a real anvil: validators commit to their reports
//! during an epoch and reveal them in the next one's reveal window, every
//! refusal decoded into its typed error, the epoch read back with the
//! weights and adverts that apply, slash approvals reaching quorum, and the
//! gas of commits and reveals (docs/chain.md, "Measurement epochs").
//!
//! # What an attacker tries, and the test that shows it fails
//!
//! | attack | fails because | test |
//! |---|---|---|
//! | copy another validator's revealed numbers | commitments close when the epoch ends, before any reveal: `CommitTooLate`; revealing without one is `NotCommitted`; a copy under one's own commitment is `CommitmentMismatch` | `copying_a_revealed_report_is_too_late` |
//! | a non-validator reports | `NotValidator` | `every_refusal_is_typed` |
//! | commit twice (to pick the better one later), reveal twice | `AlreadyCommitted`, `AlreadyRevealed` | `every_refusal_is_typed` |
//! | commit for a past or future epoch | `CommitTooLate` / `CommitTooEarly` with the times | `every_refusal_is_typed` |
//! | reveal early (before others commit) or late (after seeing others) | `RevealTooEarly` / `RevealTooLate` | `every_refusal_is_typed` |
//! | reveal a report naming another validator or epoch (replay) | `WrongRevealKey` / `WrongRevealEpoch` | `every_refusal_is_typed` |
//! | fill the chain's logs with a huge reveal | `RevealLength` above the largest canonical reveal | `every_refusal_is_typed` |
//! | a hostile node serving garbage reveal logs | listed as refused with the reason, never a panic | `hostile_node.rs`: `garbage_reveal_logs_are_refused_not_fatal` |

use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use openrelay_chain::anvil::Anvil;
use openrelay_chain::contract::RelayRegistry;
use openrelay_chain::deploy::{ChainParams, DeployError, GenesisValidator, deploy};
use openrelay_chain::measure::{
    EpochReadError, KnownRegistrations, ReportRefusal, relay_slash_evidence,
    validator_slash_evidence,
};
use openrelay_chain::operator::{OperatorError, Refusal, Registry, Sent, signing_provider};
use openrelay_measure::{
    MeasureParams, MeasureState, Measurement, RelayId, Reveal, ValidatorId, ValidatorReport,
};
use openrelay_types::RelayRole;
use sha2::{Digest as _, Sha256};

const CHAIN_ID: u64 = 31_337;
const ETHER: u128 = 1_000_000_000_000_000_000;
/// Long enough that the seconds a test takes never move it across a
/// boundary it did not mean to cross.
const EPOCH: u64 = 600;
const WINDOW: u64 = 200;

fn eth(milli: u128) -> U256 {
    U256::from(milli * ETHER / 1_000)
}

fn validator_key(i: usize) -> [u8; 32] {
    [0xA0 + i as u8; 32]
}

/// An anvil with the registry: `n` genesis validators of 2 ETH each, keys
/// `validator_key(i)`.
struct Net {
    anvil: Anvil,
    address: Address,
    validators: Vec<PrivateKeySigner>,
}

impl Net {
    async fn start(n: usize) -> Net {
        let params = ChainParams::devnet()
            .with_measure_epochs(Duration::from_secs(EPOCH), Duration::from_secs(WINDOW));
        let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
        let deployer = funded(&anvil).await;
        let mut validators = Vec::new();
        for _ in 0..n {
            validators.push(funded(&anvil).await);
        }
        let genesis: Vec<GenesisValidator> = validators
            .iter()
            .enumerate()
            .map(|(i, v)| GenesisValidator {
                account: v.address(),
                key: validator_key(i),
                stake: eth(2_000),
            })
            .collect();
        let url = anvil.endpoint().parse().expect("endpoint");
        let address = deploy(signing_provider(url, deployer), &params, &genesis)
            .await
            .expect("deploy");
        Net {
            anvil,
            address,
            validators,
        }
    }

    async fn registry(&self, who: &PrivateKeySigner) -> Registry {
        Registry::connect(
            self.anvil.endpoint(),
            CHAIN_ID,
            self.address,
            who.clone(),
            Duration::from_secs(30),
        )
        .await
        .expect("connect")
    }

    async fn validator(&self, i: usize) -> Registry {
        self.registry(&self.validators[i]).await
    }

    async fn account(&self) -> PrivateKeySigner {
        funded(&self.anvil).await
    }

    /// Mines a block at chain time `time` (later blocks follow on from it).
    async fn goto(&self, time: u64) {
        let provider =
            ProviderBuilder::new().connect_http(self.anvil.endpoint().parse().expect("url"));
        let _: serde_json::Value = provider
            .raw_request("evm_setNextBlockTimestamp".into(), (time,))
            .await
            .expect("evm_setNextBlockTimestamp");
        let _: serde_json::Value = provider
            .raw_request("evm_mine".into(), ())
            .await
            .expect("evm_mine");
    }

    /// Moves chain time `secs` on and mines a block there.
    async fn advance(&self, secs: u64) {
        self.anvil.advance(secs).await.expect("advance");
    }

    /// A registered operator staking `stake` with relays `(key byte, Mbit/s)`.
    async fn operator(&self, stake: U256, relays: &[(u8, u32)]) -> PrivateKeySigner {
        let who = self.account().await;
        let r = self.registry(&who).await;
        r.register_operator([0x0F; 32], [0; 32], stake)
            .await
            .expect("operator");
        for &(byte, mbps) in relays {
            r.register_relay([byte; 32], RelayRole::Egress, mbps, [byte; 32])
                .await
                .expect("relay");
        }
        who
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

/// A reveal of `epoch` by key `key` reporting `capacity` Mbit/s for each of
/// `relays` (key bytes).
fn reveal(epoch: u64, key: [u8; 32], salt: u8, relays: &[u8], capacity: u64) -> Reveal {
    let reports = relays
        .iter()
        .map(|&byte| ValidatorReport {
            relay: RelayId([byte; 32]),
            probes_sent: 20,
            probes_answered: 20,
            measurement: Measurement::Reachable {
                capacity_bps: capacity * 1_000_000,
                rtt_micros: 20_000,
            },
        })
        .collect();
    Reveal::new(epoch, ValidatorId(key), reports, [salt; 32]).expect("reveal")
}

/// The contract's refusal in `result`.
fn refusal(result: Result<Sent, OperatorError>) -> Refusal {
    match result {
        Err(OperatorError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn report_refusal(result: Result<Sent, OperatorError>) -> ReportRefusal {
    match refusal(result) {
        Refusal::Report(r) => r,
        other => panic!("expected a report refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn measure_parameters_are_checked() {
    for (epoch, window) in [(60, 0), (60, 60), (60, 61)] {
        let params = ChainParams::devnet()
            .with_measure_epochs(Duration::from_secs(epoch), Duration::from_secs(window));
        let e = params.validate().expect_err("refused");
        assert!(matches!(e, DeployError::MeasureEpochs { .. }), "{e}");
    }
    let fractional = ChainParams::devnet()
        .with_measure_epochs(Duration::from_millis(60_500), Duration::from_secs(20));
    assert!(matches!(
        fractional.validate(),
        Err(DeployError::MeasureEpochs { .. })
    ));
    // The contract refuses them too, without the Rust check.
    let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
    let deployer = funded(&anvil).await;
    let provider = signing_provider(anvil.endpoint().parse().expect("url"), deployer);
    for (epoch, window) in [(60u64, 0u64), (60, 60)] {
        let mut params: RelayRegistry::Params = (&ChainParams::devnet()).into();
        params.measureEpochSeconds = epoch;
        params.revealWindowSeconds = window;
        let e = RelayRegistry::deploy_builder(
            &provider,
            params,
            vec![Address::repeat_byte(1)],
            vec![B256::repeat_byte(1)],
            vec![eth(1_000)],
            (&ChainParams::devnet().release).into(),
        )
        .value(eth(1_000))
        .deploy()
        .await
        .expect_err("refused");
        assert_eq!(Refusal::decode(&e), Some(Refusal::BadParams), "{e}");
    }
}

/// Item 2 (happy path): three of four validators commit during the epoch,
/// reveal in the window, and the epoch reads back with the set's weights,
/// the relays' adverts and operator accounts, ready for `apply_epoch`.
#[tokio::test]
async fn three_validators_commit_reveal_and_the_epoch_reads_back() {
    let net = Net::start(4).await;
    let alice = net.operator(eth(1_000), &[(0x10, 100), (0x11, 50)]).await;
    // Another operator registers alice's key 0x11 too: contested.
    let bob = net.operator(eth(1_000), &[(0x11, 10)]).await;
    let reader = net.validator(0).await;
    let clock = reader.measure_timing().await.expect("clock");
    assert_eq!(clock.epoch_seconds(), EPOCH);
    assert_eq!(clock.reveal_deadline(0) - clock.end(0), WINDOW);
    let phase = reader.measure_phase().await.expect("phase");
    let epoch = phase.epoch;
    assert_eq!(epoch, 0);
    assert_eq!(phase.commit_closes_at, clock.start(1));
    assert_eq!(phase.revealing, None);

    let reveals: Vec<Reveal> = (0..3)
        .map(|i| {
            reveal(
                epoch,
                validator_key(i),
                i as u8,
                &[0x10, 0x11],
                90 + i as u64,
            )
        })
        .collect();
    for (i, r) in reveals.iter().enumerate() {
        net.validator(i)
            .await
            .commit_report(epoch, r.commitment())
            .await
            .expect("commit");
    }
    net.goto(clock.end(epoch) + 10).await;
    let phase = reader.measure_phase().await.expect("phase");
    assert_eq!(phase.epoch, epoch + 1);
    assert_eq!(phase.revealing.map(|r| r.epoch), Some(epoch));
    for (i, r) in reveals.iter().enumerate() {
        net.validator(i)
            .await
            .reveal_report(epoch, &r.to_bytes())
            .await
            .expect("reveal");
    }
    // Not settled while the window is open.
    let mut known = KnownRegistrations::default();
    let e = reader
        .epoch_reveals(epoch, None, &mut known)
        .await
        .expect_err("open");
    assert!(
        matches!(e, EpochReadError::RevealWindowOpen { epoch: 0, closes_at, .. } if closes_at == clock.reveal_deadline(epoch)),
        "{e}"
    );
    net.goto(clock.reveal_deadline(epoch)).await;
    let read = reader
        .epoch_reveals(epoch, None, &mut known)
        .await
        .expect("settled");
    assert_eq!(read.epoch, epoch);
    assert_eq!(known.read_through(), Some(read.settlement_block));
    assert!(read.refused.is_empty(), "{:?}", read.refused);
    assert_eq!(read.verified(), reveals);
    let accounts: Vec<Address> = read.reveals.iter().map(|r| r.account).collect();
    let expected: Vec<Address> = net.validators[..3].iter().map(|v| v.address()).collect();
    assert_eq!(accounts, expected);
    assert_eq!(read.validators.len(), 4);
    assert!(read.validators.values().all(|&w| w == 2 * ETHER));
    assert_eq!(
        read.accounts.get(&ValidatorId(validator_key(3))),
        Some(&net.validators[3].address())
    );
    // The settlement block is the last one before the window's end.
    let provider = ProviderBuilder::new().connect_http(net.anvil.endpoint().parse().expect("url"));
    let time = |n: u64| {
        let provider = provider.clone();
        async move {
            provider
                .get_block_by_number(n.into())
                .await
                .expect("block")
                .expect("exists")
                .header
                .timestamp
        }
    };
    assert!(time(read.settlement_block).await < read.reveal_closed_at);
    assert!(time(read.settlement_block + 1).await >= read.reveal_closed_at);

    let relay = read.relays.get(&RelayId([0x10; 32])).expect("relay 0x10");
    assert_eq!(relay.operator, alice.address());
    assert!(relay.covered);
    assert_eq!(relay.advert.advertised_bps, 100_000_000);
    assert_eq!(relay.advert.operator_advertised_bps, 150_000_000);
    assert_eq!(relay.advert.operator_stake, ETHER);
    let contested = read
        .contested_relays
        .get(&RelayId([0x11; 32]))
        .expect("0x11 is contested");
    let mut holders: Vec<Address> = contested.iter().map(|r| r.operator).collect();
    holders.sort();
    let mut both = vec![alice.address(), bob.address()];
    both.sort();
    assert_eq!(holders, both);
    assert!(!read.relays.contains_key(&RelayId([0x11; 32])));

    // What the lead's epoch loop feeds the verdicts.
    let mut state = MeasureState::new(MeasureParams::devnet());
    let outcome = state
        .apply_epoch(epoch, &read.validators, &read.verified(), &read.adverts())
        .expect("applies");
    let explained = outcome
        .explanations
        .get(&RelayId([0x10; 32]))
        .expect("explained");
    assert_eq!(explained.reports.len(), 3);

    // The next epoch reads only the registrations since: a relay registered
    // in it is found, and the first epoch read again with what is known
    // now still leaves it out (it was not registered at that block).
    let carol = net.operator(U256::from(ETHER), &[(0x12, 100)]).await;
    net.goto(clock.reveal_deadline(epoch + 1)).await;
    let next = reader
        .epoch_reveals(epoch + 1, None, &mut known)
        .await
        .expect("settled");
    assert_eq!(known.read_through(), Some(next.settlement_block));
    assert_eq!(known.len(), 4, "alice's two, bob's one, carol's one");
    assert_eq!(
        next.relays.get(&RelayId([0x12; 32])).map(|r| r.operator),
        Some(carol.address())
    );
    assert!(next.relays.contains_key(&RelayId([0x10; 32])));
    let again = reader
        .epoch_reveals(epoch, None, &mut known)
        .await
        .expect("settled");
    assert_eq!(again.relays, read.relays);
    assert_eq!(again.contested_relays, read.contested_relays);
}

/// Item 2 (refusals): each rule of `commitReport` and `revealReport`, as
/// its typed error with the times and values it names.
#[tokio::test]
async fn every_refusal_is_typed() {
    let net = Net::start(6).await;
    let v: Vec<Registry> = {
        let mut v = Vec::new();
        for i in 0..6 {
            v.push(net.validator(i).await);
        }
        v
    };
    let clock = v[0].measure_timing().await.expect("clock");
    let epoch = v[0].measure_phase().await.expect("phase").epoch;
    let good = reveal(epoch, validator_key(0), 1, &[0x10], 100);

    let outsider = net.registry(&net.account().await).await;
    assert_eq!(
        refusal(outsider.commit_report(epoch, good.commitment()).await),
        Refusal::NotValidator
    );
    assert_eq!(
        report_refusal(
            v[0].commit_report(epoch, openrelay_measure::Commitment([0; 32]))
                .await
        ),
        ReportRefusal::ZeroCommitment
    );
    v[0].commit_report(epoch, good.commitment())
        .await
        .expect("commit");
    assert_eq!(
        report_refusal(v[0].commit_report(epoch, good.commitment()).await),
        ReportRefusal::AlreadyCommitted(epoch)
    );
    match report_refusal(v[1].commit_report(epoch + 1, good.commitment()).await) {
        ReportRefusal::CommitTooEarly {
            epoch: e,
            opens_at,
            now,
        } => {
            assert_eq!((e, opens_at), (epoch + 1, clock.start(epoch + 1)));
            assert!(now < opens_at);
        }
        other => panic!("{other:?}"),
    }
    match report_refusal(v[0].reveal_report(epoch, &good.to_bytes()).await) {
        ReportRefusal::RevealTooEarly {
            epoch: e, opens_at, ..
        } => assert_eq!((e, opens_at), (epoch, clock.end(epoch))),
        other => panic!("{other:?}"),
    }
    // Commitments for the checks of the reveal window.
    let mismatched = reveal(epoch, validator_key(1), 2, &[0x10], 100);
    v[1].commit_report(epoch, mismatched.commitment())
        .await
        .expect("commit");
    let other_key = reveal(epoch, validator_key(0), 3, &[0x10], 100);
    v[2].commit_report(epoch, other_key.commitment())
        .await
        .expect("commit");
    let other_epoch = reveal(epoch + 1, validator_key(3), 4, &[0x10], 100);
    v[3].commit_report(epoch, other_epoch.commitment())
        .await
        .expect("commit");
    let late = reveal(epoch, validator_key(4), 5, &[0x10], 100);
    v[4].commit_report(epoch, late.commitment())
        .await
        .expect("commit");

    net.goto(clock.end(epoch) + 10).await;
    match report_refusal(v[5].commit_report(epoch, good.commitment()).await) {
        ReportRefusal::CommitTooLate {
            epoch: e,
            closed_at,
            now,
        } => {
            assert_eq!((e, closed_at), (epoch, clock.start(epoch + 1)));
            assert!(now >= closed_at);
        }
        other => panic!("{other:?}"),
    }
    let own = reveal(epoch, validator_key(5), 6, &[0x10], 100);
    assert_eq!(
        report_refusal(v[5].reveal_report(epoch, &own.to_bytes()).await),
        ReportRefusal::NotCommitted(epoch)
    );
    let wrong = reveal(epoch, validator_key(1), 7, &[0x10], 100);
    match report_refusal(v[1].reveal_report(epoch, &wrong.to_bytes()).await) {
        ReportRefusal::CommitmentMismatch {
            epoch: e,
            commitment,
            reveal_hash,
        } => {
            assert_eq!(e, epoch);
            assert_eq!(commitment.0, mismatched.commitment().0);
            assert_eq!(reveal_hash.0, wrong.commitment().0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        report_refusal(v[2].reveal_report(epoch, &other_key.to_bytes()).await),
        ReportRefusal::WrongRevealKey {
            validator_key: B256::from(validator_key(2)),
            reveal_key: B256::from(validator_key(0)),
        }
    );
    assert_eq!(
        report_refusal(v[3].reveal_report(epoch, &other_epoch.to_bytes()).await),
        ReportRefusal::WrongRevealEpoch {
            epoch,
            reveal_epoch: epoch + 1
        }
    );
    let (min, max) = (77u64, 77 + 10_000 * 53);
    for length in [10, max + 1] {
        let mut bytes = good.to_bytes();
        bytes.resize(length as usize, 0xAB);
        assert_eq!(
            report_refusal(v[0].reveal_report(epoch, &bytes).await),
            ReportRefusal::RevealLength {
                length: U256::from(length),
                min: U256::from(min),
                max: U256::from(max),
            }
        );
    }
    v[0].reveal_report(epoch, &good.to_bytes())
        .await
        .expect("reveal");
    assert_eq!(
        report_refusal(v[0].reveal_report(epoch, &good.to_bytes()).await),
        ReportRefusal::AlreadyRevealed(epoch)
    );
    // The refused ones may still reveal what they committed to, in time.
    v[1].reveal_report(epoch, &mismatched.to_bytes())
        .await
        .expect("the committed reveal");

    net.goto(clock.reveal_deadline(epoch)).await;
    match report_refusal(v[4].reveal_report(epoch, &late.to_bytes()).await) {
        ReportRefusal::RevealTooLate {
            epoch: e,
            closed_at,
            now,
        } => {
            assert_eq!((e, closed_at), (epoch, clock.reveal_deadline(epoch)));
            assert!(now >= closed_at);
        }
        other => panic!("{other:?}"),
    }
    // Messages say what happened and when.
    let message = OperatorError::Refused(Refusal::Report(ReportRefusal::RevealTooLate {
        epoch: 3,
        closed_at: 100,
        now: 120,
    }))
    .to_string();
    assert!(message.contains("closed at unix time 100"), "{message}");

    let read = v[0]
        .epoch_reveals(epoch, None, &mut KnownRegistrations::default())
        .await
        .expect("settled");
    let accounts: Vec<Address> = read.reveals.iter().map(|r| r.account).collect();
    assert_eq!(
        accounts,
        vec![net.validators[0].address(), net.validators[1].address()]
    );
    assert!(read.refused.is_empty());
}

/// Item 2 (commit–reveal): a validator that sees another's reveal cannot
/// report the same numbers as its own for that epoch.
#[tokio::test]
async fn copying_a_revealed_report_is_too_late() {
    let net = Net::start(4).await;
    let honest = net.validator(0).await;
    let copier = net.validator(1).await;
    let clock = honest.measure_timing().await.expect("clock");
    let epoch = honest.measure_phase().await.expect("phase").epoch;
    let original = reveal(epoch, validator_key(0), 9, &[0x10, 0x20], 123);
    honest
        .commit_report(epoch, original.commitment())
        .await
        .expect("commit");
    // The copier commits to something of its own (or nothing) in time.
    let placeholder = reveal(epoch, validator_key(1), 1, &[0x10, 0x20], 1);
    copier
        .commit_report(epoch, placeholder.commitment())
        .await
        .expect("commit");

    net.goto(clock.end(epoch) + 5).await;
    honest
        .reveal_report(epoch, &original.to_bytes())
        .await
        .expect("reveal");
    // What the copier sees on the chain: the honest reveal's reports, as
    // its own (its key, a fresh salt).
    let copy = Reveal::new(
        epoch,
        ValidatorId(validator_key(1)),
        original.reports().to_vec(),
        [0xCC; 32],
    )
    .expect("copy");
    assert!(matches!(
        report_refusal(copier.reveal_report(epoch, &copy.to_bytes()).await),
        ReportRefusal::CommitmentMismatch { .. }
    ));
    // A fresh commitment to the copy is refused: the epoch is over.
    let third = net.validator(2).await;
    assert!(matches!(
        report_refusal(third.commit_report(epoch, copy.commitment()).await),
        ReportRefusal::CommitTooLate { .. }
    ));
    assert_eq!(
        report_refusal(third.reveal_report(epoch, &copy.to_bytes()).await),
        ReportRefusal::NotCommitted(epoch)
    );
}

/// Item 3: relay and validator slash approvals with the fixed evidence;
/// at quorum the stake moves and the approvers are paid; approving twice
/// or after execution is a typed refusal.
#[tokio::test]
async fn slash_approvals_reach_quorum_move_stake_and_pay_approvers() {
    let net = Net::start(4).await;
    let alice = net.operator(eth(1_000), &[(0x10, 500)]).await;
    let relay = RelayId([0x10; 32]);
    let epoch = 3;
    let v: Vec<Registry> = {
        let mut v = Vec::new();
        for i in 0..4 {
            v.push(net.validator(i).await);
        }
        v
    };
    let amount = eth(300);
    let first = v[0]
        .approve_relay_slash(epoch, &relay, alice.address(), amount)
        .await
        .expect("approve");
    assert_eq!(first.executed, None);
    assert_eq!(first.evidence, relay_slash_evidence(epoch, &relay));
    assert_eq!(
        refusal(
            v[0].approve_relay_slash(epoch, &relay, alice.address(), amount)
                .await
                .map(|a| a.sent)
        ),
        Refusal::AlreadyApproved
    );
    let second = v[1]
        .approve_relay_slash(epoch, &relay, alice.address(), amount)
        .await
        .expect("approve");
    assert_eq!(second.executed, None, "2 of 4 is no quorum");
    let third = v[2]
        .approve_relay_slash(epoch, &relay, alice.address(), amount)
        .await
        .expect("approve");
    assert_eq!(third.slash_id, first.slash_id);
    let executed = third.executed.expect("3 of 4 executes");
    assert_eq!(executed.taken, amount);
    assert_eq!(executed.burnt, eth(240));
    assert_eq!(executed.rewarded, eth(60));
    assert_eq!(executed.stake_left, eth(700));
    let contract = v[0].contract();
    let rewards = |i: usize| {
        let call = contract.rewards(net.validators[i].address());
        async move { call.call().await.expect("rewards") }
    };
    assert_eq!(
        contract
            .operators(alice.address())
            .call()
            .await
            .expect("operator")
            .stake,
        eth(700)
    );
    for i in 0..3 {
        assert_eq!(rewards(i).await, eth(20), "approver {i} is paid its share");
    }
    assert_eq!(rewards(3).await, U256::ZERO);
    assert_eq!(
        refusal(
            v[3].approve_relay_slash(epoch, &relay, alice.address(), amount)
                .await
                .map(|a| a.sent)
        ),
        Refusal::SlashAlreadyExecuted(first.slash_id)
    );

    // A validator slash, with its own evidence.
    let target = ValidatorId(validator_key(3));
    let account = net.validators[3].address();
    let mut last = None;
    for registry in &v[..3] {
        last = Some(
            registry
                .approve_validator_slash(epoch, &target, account, eth(500))
                .await
                .expect("approve"),
        );
    }
    let last = last.expect("three approvals");
    assert_eq!(last.evidence, validator_slash_evidence(epoch, &target));
    assert_eq!(last.executed.map(|e| e.stake_left), Some(eth(1_500)));
    assert_eq!(
        contract
            .validators(account)
            .call()
            .await
            .expect("validator")
            .stake,
        eth(1_500)
    );
    for i in 0..3 {
        assert_eq!(
            rewards(i).await,
            eth(20) + eth(100) / U256::from(3),
            "approver {i}: both slashes' shares"
        );
    }
}

/// Approvals sent at the same moment, each estimated before any landed:
/// the one that reaches the quorum executes the slash instead of running
/// out of gas (on the devnet three validators approved at once and the
/// third approval reverted, so the slash was never taken).
#[tokio::test]
async fn simultaneous_approvals_still_execute_the_slash() {
    let net = Net::start(4).await;
    let alice = net.operator(eth(1_000), &[(0x10, 500)]).await;
    let relay = RelayId([0x10; 32]);
    let (a, b, c) = (
        net.validator(0).await,
        net.validator(1).await,
        net.validator(2).await,
    );
    let (operator, amount) = (alice.address(), eth(300));
    let (a, b, c) = tokio::join!(
        a.approve_relay_slash(5, &relay, operator, amount),
        b.approve_relay_slash(5, &relay, operator, amount),
        c.approve_relay_slash(5, &relay, operator, amount),
    );
    let executed: Vec<_> = [a, b, c]
        .into_iter()
        .map(|approval| approval.expect("approve").executed)
        .collect();
    assert_eq!(
        executed.iter().filter(|e| e.is_some()).count(),
        1,
        "{executed:?}"
    );
    let reader = net.validator(3).await;
    let operator = reader.contract().operators(alice.address()).call().await;
    assert_eq!(operator.expect("operator").stake, eth(700));
}

/// The same race for a set change: three of four members approve a join
/// at the same moment, each estimated before any landed; the approval that
/// reaches the quorum applies the change instead of running out of gas
/// (the change rewrites the set, which costs more than an approval).
#[tokio::test]
async fn simultaneous_approvals_still_apply_the_set_change() {
    let net = Net::start(4).await;
    let joiner = net.account().await;
    net.registry(&joiner)
        .await
        .validator_join([0x55; 32], eth(1_000))
        .await
        .expect("join request");
    let delay = ChainParams::devnet().validator_join_delay.as_secs();
    net.advance(delay + 1).await;
    let (a, b, c) = (
        net.validator(0).await,
        net.validator(1).await,
        net.validator(2).await,
    );
    let join = vec![joiner.address()];
    let (a, b, c) = tokio::join!(
        a.approve_set_change(0, join.clone(), vec![]),
        b.approve_set_change(0, join.clone(), vec![]),
        c.approve_set_change(0, join.clone(), vec![]),
    );
    let applied: Vec<bool> = [a, b, c]
        .into_iter()
        .map(|approval| approval.expect("approve").applied)
        .collect();
    assert_eq!(
        applied.iter().filter(|&&applied| applied).count(),
        1,
        "{applied:?}"
    );
    let reader = net.validator(3).await;
    let epoch = reader
        .contract()
        .validatorEpoch()
        .call()
        .await
        .expect("epoch");
    assert_eq!(epoch, 1);
    let set = reader.contract().activeSet().call().await.expect("set");
    assert!(set.contains(&joiner.address()), "{set:?}");
}

/// A relay key as operators make them: 32 random-looking bytes (zero bytes
/// are cheaper calldata, so sequential keys would understate the gas).
fn relay_key(i: u32) -> [u8; 32] {
    Sha256::digest(i.to_be_bytes()).into()
}

/// The gas of a commitment and of reveals of 4, 100, 1,000 and 10,000
/// relays (run with `--nocapture` for the table; docs/chain.md has it).
#[tokio::test]
#[allow(clippy::print_stdout, reason = "the table is this test's output")]
async fn gas_of_commit_and_reveal() {
    let sizes = [4u32, 100, 1_000, 10_000];
    let net = Net::start(sizes.len()).await;
    let clock = net
        .validator(0)
        .await
        .measure_timing()
        .await
        .expect("clock");
    let epoch = 0;
    let mut reveals = Vec::new();
    let mut commits = Vec::new();
    for (i, &relays) in sizes.iter().enumerate() {
        let reports: Vec<ValidatorReport> = (0..relays)
            .map(|r| ValidatorReport {
                relay: RelayId(relay_key(r)),
                probes_sent: 48,
                probes_answered: 47,
                measurement: Measurement::Reachable {
                    capacity_bps: 734_003_200 + u64::from(r),
                    rtt_micros: 23_456,
                },
            })
            .collect();
        let reveal =
            Reveal::new(epoch, ValidatorId(validator_key(i)), reports, [0x5A; 32]).expect("reveal");
        assert_eq!(reveal.to_bytes().len(), 77 + 53 * relays as usize);
        let sent = net
            .validator(i)
            .await
            .commit_report(epoch, reveal.commitment())
            .await
            .expect("commit");
        commits.push(sent.gas_used);
        reveals.push(reveal);
    }
    net.goto(clock.end(epoch) + 5).await;
    println!("| operation | gas used |\n|---|---:|");
    println!("| commitReport | {} |", commits[0]);
    for (i, reveal) in reveals.iter().enumerate() {
        let bytes = reveal.to_bytes();
        let sent = net
            .validator(i)
            .await
            .reveal_report(epoch, &bytes)
            .await
            .expect("reveal");
        println!(
            "| revealReport, {} relays ({} bytes) | {} |",
            sizes[i],
            bytes.len(),
            sent.gas_used
        );
        assert!(sent.gas_used > 21_000);
    }
    assert!(commits.iter().all(|&g| g == commits[0]), "{commits:?}");
}
