//! Validators' release votes end to end on a real anvil: four validators'
//! voters (`openrelay_registry::validator::release_votes`), three judging
//! with `OwnBinaryInsecureDevnet` and one dissenting with
//! `RejectAllForTests`, approve a release whose binary is theirs, reject
//! another, and the dissenter loses stake to the majority.

use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;
use openrelay_chain::anvil::Anvil;
use openrelay_chain::contract::RelayRegistry;
use openrelay_chain::deploy::{ChainParams, GenesisValidator, deploy};
use openrelay_chain::operator::{Registry, signing_provider};
use openrelay_chain::release::{ReleaseStatus, ReleaseVotes};
use openrelay_registry::validator::release_votes::{
    Action, OwnBinaryInsecureDevnet, RejectAllForTests, ReleaseCheck, ReleaseVoter,
};

const CHAIN_ID: u64 = 31_337;
const ETHER: u128 = 1_000_000_000_000_000_000;
const PHASE: u64 = 60;

fn provider(anvil: &Anvil, who: &PrivateKeySigner) -> DynProvider {
    signing_provider(anvil.endpoint().parse().expect("endpoint"), who.clone())
}

async fn votes(anvil: &Anvil, contract: Address, who: &PrivateKeySigner) -> ReleaseVotes {
    Registry::connect(
        anvil.endpoint(),
        CHAIN_ID,
        contract,
        who.clone(),
        Duration::from_secs(10),
    )
    .await
    .expect("connect")
    .release_votes()
    .await
    .expect("release votes")
}

async fn advance(anvil: &Anvil, who: &PrivateKeySigner, seconds: u64) {
    let p = provider(anvil, who);
    let _: serde_json::Value = p
        .raw_request("evm_increaseTime".into(), (seconds,))
        .await
        .expect("evm_increaseTime");
    let _: serde_json::Value = p
        .raw_request("evm_mine".into(), ())
        .await
        .expect("evm_mine");
}

#[tokio::test]
async fn validators_approve_their_binary_reject_another_and_the_dissenter_pays() {
    let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
    let signers: Vec<PrivateKeySigner> = (0..6).map(|_| PrivateKeySigner::random()).collect();
    for s in &signers {
        anvil
            .fund(s.address(), U256::from(100 * ETHER))
            .await
            .expect("fund");
    }
    let (deployer, maintainer, validators) = (&signers[4], &signers[5], &signers[..4]);
    let genesis: Vec<GenesisValidator> = validators
        .iter()
        .enumerate()
        .map(|(i, v)| GenesisValidator {
            account: v.address(),
            key: [0xA0 + i as u8; 32],
            stake: U256::from(2 * ETHER),
        })
        .collect();
    let params = ChainParams::devnet()
        .with_release_phases(Duration::from_secs(PHASE), Duration::from_secs(PHASE));
    let contract = deploy(provider(&anvil, deployer), &params, &genesis)
        .await
        .expect("deploy");

    let own = OwnBinaryInsecureDevnet::of_current_exe().expect("own binary");
    let mut voters = Vec::new();
    for (i, v) in validators.iter().enumerate() {
        let check: Box<dyn ReleaseCheck> = if i == 3 {
            Box::new(RejectAllForTests)
        } else {
            Box::new(own.clone())
        };
        voters.push(ReleaseVoter::new(
            votes(&anvil, contract, v).await,
            v,
            check,
        ));
    }
    let proposer = votes(&anvil, contract, maintainer).await;
    let measurements = [(1u8, [0x11; 48])];
    let (_, ours) = proposer
        .propose([1; 32], own.own_sha256(), &measurements)
        .await
        .expect("propose ours");
    let (_, other) = proposer
        .propose([2; 32], [0xEE; 32], &measurements)
        .await
        .expect("propose another");

    // Commit phase: each voter commits to both ballots as its check says.
    for (i, voter) in voters.iter_mut().enumerate() {
        let actions = voter.step().await.expect("step");
        let dissent = i == 3;
        assert_eq!(
            actions,
            vec![
                Action::Committed {
                    ballot: ours,
                    approve: !dissent
                },
                Action::Committed {
                    ballot: other,
                    approve: false
                },
            ],
            "validator {i}"
        );
        // A second step in the same phase does nothing.
        assert!(voter.step().await.expect("step").is_empty());
    }
    advance(&anvil, deployer, PHASE).await;
    // Reveal phase: the salts are derived, not stored; a voter rebuilt
    // from scratch (a restarted validator) reveals what it committed.
    let restarted = ReleaseVoter::new(
        votes(&anvil, contract, &validators[0]).await,
        &validators[0],
        Box::new(RejectAllForTests),
    );
    voters[0] = restarted;
    for (i, voter) in voters.iter_mut().enumerate() {
        let actions = voter.step().await.expect("step");
        assert_eq!(
            actions,
            vec![
                Action::Revealed {
                    ballot: ours,
                    approve: i != 3
                },
                Action::Revealed {
                    ballot: other,
                    approve: false
                },
            ],
            "validator {i}"
        );
    }
    advance(&anvil, deployer, PHASE).await;
    // Settlement: the first voter settles both, the others find them done.
    assert_eq!(
        voters[1].step().await.expect("step"),
        vec![Action::Settled(ours), Action::Settled(other)]
    );
    for voter in &mut voters {
        assert!(voter.step().await.expect("step").is_empty());
    }

    let releases = proposer.read_releases(None).await.expect("read");
    let status = |id: [u8; 32]| {
        releases
            .iter()
            .find(|r| r.release_id == id)
            .map(|r| r.status)
    };
    assert_eq!(status([1; 32]), Some(ReleaseStatus::Approved));
    assert_eq!(status([2; 32]), Some(ReleaseStatus::Rejected));

    // The dissenter lost 10 % of its stake on the approved ballot; the
    // majority shares it (and the rejected proposal's bond) by weight.
    let registry = RelayRegistry::new(contract, provider(&anvil, deployer));
    let stake = |i: usize| {
        let registry = registry.clone();
        let account = validators[i].address();
        async move {
            registry
                .validators(account)
                .call()
                .await
                .expect("validator")
                .stake
        }
    };
    assert_eq!(stake(3).await, U256::from(2 * ETHER - ETHER / 5));
    let bond = params.release.proposal_bond;
    for (i, validator) in validators.iter().enumerate().take(3) {
        assert_eq!(stake(i).await, U256::from(2 * ETHER));
        let rewards = registry
            .rewards(validator.address())
            .call()
            .await
            .expect("rewards");
        // Its third of the dissenter's 0.2 ETH, and of the forfeited bond
        // of the rejected proposal (which all four rejected: a quarter).
        assert_eq!(
            rewards,
            U256::from(ETHER / 5) / U256::from(3) + bond / U256::from(4)
        );
    }
}
