//! `ReleaseRegistry` (release votes, docs/chain.md "Release votes") on a
//! real anvil, through `openrelay_chain::release`: every rule and refusal,
//! the slashes and rewards a settlement moves, and the gas of each
//! operation.
//!
//! # What an attacker tries, and the test that shows it fails
//!
//! | attack | fails because | test |
//! |---|---|---|
//! | a non-validator votes | `NotValidator` | `votes_are_validators_only_once_and_in_their_phase` |
//! | vote twice (commit or reveal again) | `AlreadyCommitted`, `AlreadyRevealed` | `votes_are_validators_only_once_and_in_their_phase` |
//! | reveal another vote than committed | `CommitmentMismatch` | `votes_are_validators_only_once_and_in_their_phase` |
//! | copy another validator's commitment, reveal its vote once public | the commitment names the voter: the copy's reveal is `CommitmentMismatch` | `votes_are_validators_only_once_and_in_their_phase` |
//! | commit late (after seeing reveals), reveal early or late | `CommitPhaseOver`, `NotRevealPhase` | `votes_are_validators_only_once_and_in_their_phase` |
//! | settle before the reveal phase ends, or twice | `TooEarly`, `AlreadySettled` | `settlement_rules` |
//! | re-propose a known release (to reset a rejection or a revocation) | `ReleaseKnown` (a rejection is final for its content, a revocation for the id) | `settlement_rules`, `revocation` |
//! | bar a published release: propose its id first with a wrong binary, have it rejected | other content under a rejected id is a new vote | `settlement_rules` |
//! | propose oversized or malformed measurements | `BadMeasurements` (and refused before sending in Rust) | `proposals_are_bonded_and_bounded` |
//! | spam proposals for free | exact bond (`WrongBond`), lost to the majority on rejection | `proposals_are_bonded_and_bounded`, `the_minority_pays_the_majority` |
//! | a minority of 1/3+ of the weight forces an outcome | it only blocks: undecided, no one slashed for voting; re-proposable | `a_blocking_third_leaves_it_undecided` |
//! | vote against the majority without cost | loses `voteSlashBps` of stake, paid to the majority by weight | `the_minority_pays_the_majority` |
//! | commit, then reveal only if on the winning side | committing without revealing is slashed like the minority | `the_minority_pays_the_majority`, `a_blocking_third_leaves_it_undecided` |
//! | revoke a release that is not approved | `NotRevocable` | `revocation` |
//! | votes of a validator that has left the set | not counted, neither slashed nor paid; no new commitments (`NotValidator`) | `a_validator_that_left_does_not_count` |
//! | slash through the registry's hook directly | `NotReleaseRegistry` | `proposals_are_bonded_and_bounded` |
//! | a node lies about the release count | `TooManyReleases`, bounded before reading | (`read_releases`; unit-checked by the bound) |

use std::time::Duration;

use alloy::primitives::{Address, FixedBytes, U256};
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use openrelay_chain::anvil::Anvil;
use openrelay_chain::contract::RelayRegistry::{self, RelayRegistryInstance};
use openrelay_chain::deploy::{ChainParams, GenesisValidator, deploy};
use openrelay_chain::operator::{Registry, signing_provider};
use openrelay_chain::release::{
    BallotOutcome, MeasurementsError, ReleaseError, ReleaseRefusal, ReleaseStatus, ReleaseVotes,
    vote_commitment,
};

const CHAIN_ID: u64 = 31_337;
const ETHER: u128 = 1_000_000_000_000_000_000;
const COMMIT: u64 = 100;
const REVEAL: u64 = 100;

fn eth(milli: u128) -> U256 {
    U256::from(milli * ETHER / 1_000)
}

/// An anvil with the registry (and its release votes) deployed: four
/// genesis validators of 2 ETH each, release phases of 100 s.
struct Chain {
    anvil: Anvil,
    address: Address,
    params: ChainParams,
    validators: Vec<PrivateKeySigner>,
}

impl Chain {
    async fn start() -> Chain {
        let anvil = Anvil::start(CHAIN_ID, None).await.expect("anvil");
        let deployer = funded(&anvil).await;
        let validators: Vec<PrivateKeySigner> =
            (0..4).map(|_| PrivateKeySigner::random()).collect();
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
        let params = ChainParams::devnet()
            .with_release_phases(Duration::from_secs(COMMIT), Duration::from_secs(REVEAL));
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

    async fn votes(&self, who: &PrivateKeySigner) -> ReleaseVotes {
        Registry::connect(
            self.anvil.endpoint(),
            CHAIN_ID,
            self.address,
            who.clone(),
            Duration::from_secs(10),
        )
        .await
        .expect("connect")
        .release_votes()
        .await
        .expect("release votes")
    }

    async fn validator(&self, i: usize) -> ReleaseVotes {
        self.votes(&self.validators[i]).await
    }

    async fn outsider(&self) -> ReleaseVotes {
        let who = funded(&self.anvil).await;
        self.votes(&who).await
    }

    fn registry(&self, who: &PrivateKeySigner) -> RelayRegistryInstance<DynProvider> {
        RelayRegistry::new(self.address, provider(&self.anvil, who))
    }

    async fn advance(&self, seconds: u64) {
        self.anvil.advance(seconds).await.expect("advance");
    }

    async fn stake(&self, i: usize) -> U256 {
        self.registry(&self.validators[0])
            .validators(self.validators[i].address())
            .call()
            .await
            .expect("validator")
            .stake
    }

    async fn rewards(&self, account: Address) -> U256 {
        self.registry(&self.validators[0])
            .rewards(account)
            .call()
            .await
            .expect("rewards")
    }

    async fn burnt(&self) -> U256 {
        self.registry(&self.validators[0])
            .totalBurnt()
            .call()
            .await
            .expect("burnt")
    }

    /// Validators `votes[i].0` commit to `votes[i].1`, the phase turns,
    /// and those with `votes[i].2` reveal; then the reveal phase ends.
    async fn vote(&self, ballot: u64, votes: &[(usize, bool, bool)]) {
        for &(i, approve, _) in votes {
            self.validator(i)
                .await
                .commit_vote(ballot, approve, salt(i))
                .await
                .expect("commit");
        }
        self.advance(COMMIT).await;
        for &(i, approve, reveal) in votes {
            if reveal {
                self.validator(i)
                    .await
                    .reveal_vote(ballot, approve, salt(i))
                    .await
                    .expect("reveal");
            }
        }
        self.advance(REVEAL).await;
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

fn provider(anvil: &Anvil, who: &PrivateKeySigner) -> DynProvider {
    signing_provider(anvil.endpoint().parse().expect("endpoint"), who.clone())
}

fn salt(i: usize) -> [u8; 32] {
    [0x50 + i as u8; 32]
}

fn release(byte: u8) -> [u8; 32] {
    [byte; 32]
}

fn measurements() -> Vec<(u8, [u8; 48])> {
    vec![(1, [0x11; 48]), (3, [0x33; 48])]
}

fn refusal<T: std::fmt::Debug>(result: Result<T, ReleaseError>) -> ReleaseRefusal {
    match result {
        Err(ReleaseError::Refused(refusal)) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn proposals_are_bonded_and_bounded() {
    let chain = Chain::start().await;
    let maintainer = chain.outsider().await;
    let bond = chain.params.release.proposal_bond;
    assert_eq!(maintainer.params(), &chain.params.release);

    // Measurements the contract would refuse are refused before sending.
    let too_many = vec![(1u8, [0u8; 48]); 17];
    assert!(matches!(
        maintainer.propose(release(1), [2; 32], &too_many).await,
        Err(ReleaseError::Measurements(MeasurementsError::Count(17)))
    ));
    // And by the contract, for a caller bypassing the bindings: oversized,
    // not whole entries, empty; zero ids; a wrong bond.
    let raw = openrelay_chain::contract::votes::ReleaseRegistry::new(
        maintainer.address(),
        maintainer.registry().contract().provider().clone(),
    );
    for (bytes, length) in [(17 * 49, 833u64), (50, 50), (0, 0)] {
        let e = raw
            .propose(
                FixedBytes(release(1)),
                FixedBytes([2; 32]),
                vec![1u8; bytes].into(),
            )
            .value(bond)
            .send()
            .await
            .expect_err("refused");
        assert_eq!(
            ReleaseRefusal::decode(&e),
            Some(ReleaseRefusal::BadMeasurements(U256::from(length)))
        );
    }
    let e = raw
        .propose(
            FixedBytes([0; 32]),
            FixedBytes([2; 32]),
            vec![1u8; 49].into(),
        )
        .value(bond)
        .send()
        .await
        .expect_err("refused");
    assert_eq!(
        ReleaseRefusal::decode(&e),
        Some(ReleaseRefusal::ZeroRelease)
    );
    let e = raw
        .propose(
            FixedBytes(release(1)),
            FixedBytes([2; 32]),
            vec![1u8; 49].into(),
        )
        .value(bond - U256::from(1))
        .send()
        .await
        .expect_err("refused");
    assert_eq!(
        ReleaseRefusal::decode(&e),
        Some(ReleaseRefusal::WrongBond {
            required: bond,
            sent: bond - U256::from(1)
        })
    );

    let (_, ballot) = maintainer
        .propose(release(1), [2; 32], &measurements())
        .await
        .expect("propose");
    assert_eq!(ballot, 1);
    let listed = maintainer.read_releases(None).await.expect("read");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].release_id, release(1));
    assert_eq!(listed[0].binary_sha256, [2; 32]);
    assert_eq!(listed[0].measurements, measurements());
    assert_eq!(listed[0].status, ReleaseStatus::Proposed);
    assert_eq!(listed[0].open_ballot, Some(1));
    // Re-proposing while it is open is refused.
    let again = refusal(
        maintainer
            .propose(release(1), [9; 32], &measurements())
            .await,
    );
    assert!(
        matches!(
            again,
            ReleaseRefusal::ReleaseKnown {
                status: Some(ReleaseStatus::Proposed),
                ..
            }
        ),
        "{again}"
    );

    // Nobody but the release contract reaches the registry's slashing hook.
    let outsider = funded(&chain.anvil).await;
    let e = chain
        .registry(&outsider)
        .settleReleaseVote(
            vec![chain.validators[0].address()],
            10_000,
            vec![outsider.address()],
            outsider.address(),
            U256::ZERO,
            FixedBytes([0; 32]),
        )
        .send()
        .await
        .expect_err("refused");
    assert!(
        e.as_decoded_interface_error::<RelayRegistry::RelayRegistryErrors>()
            .is_some_and(|e| matches!(
                e,
                RelayRegistry::RelayRegistryErrors::NotReleaseRegistry(_)
            )),
        "{e}"
    );
    assert_eq!(chain.stake(0).await, eth(2_000));
}

#[tokio::test]
async fn votes_are_validators_only_once_and_in_their_phase() {
    let chain = Chain::start().await;
    let maintainer = chain.outsider().await;
    let (_, ballot) = maintainer
        .propose(release(1), [2; 32], &measurements())
        .await
        .expect("propose");
    let v0 = chain.validator(0).await;
    let v1 = chain.validator(1).await;

    // A non-validator cannot vote.
    assert_eq!(
        refusal(maintainer.commit_vote(ballot, true, salt(9)).await),
        ReleaseRefusal::NotValidator
    );
    // An unknown ballot.
    assert_eq!(
        refusal(v0.commit_vote(99, true, salt(0)).await),
        ReleaseRefusal::UnknownBallot(99)
    );
    v0.commit_vote(ballot, true, salt(0)).await.expect("commit");
    assert_eq!(
        refusal(v0.commit_vote(ballot, false, salt(0)).await),
        ReleaseRefusal::AlreadyCommitted(ballot)
    );
    // Copying v0's commitment: v1 commits the very same hash.
    let copied = vote_commitment(ballot, v0.registry().account(), true, salt(0));
    let raw = openrelay_chain::contract::votes::ReleaseRegistry::new(
        v1.address(),
        v1.registry().contract().provider().clone(),
    );
    raw.commitVote(ballot, copied)
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("mined");
    // No reveal during the commit phase (nobody sees a vote while others
    // may still commit).
    assert!(matches!(
        refusal(v0.reveal_vote(ballot, true, salt(0)).await),
        ReleaseRefusal::NotRevealPhase { .. }
    ));
    chain.advance(COMMIT).await;
    // No commitment after the commit phase.
    assert!(matches!(
        refusal(
            chain
                .validator(2)
                .await
                .commit_vote(ballot, true, salt(2))
                .await
        ),
        ReleaseRefusal::CommitPhaseOver { .. }
    ));
    // A reveal that is not the vote committed to.
    assert!(matches!(
        refusal(v0.reveal_vote(ballot, false, salt(0)).await),
        ReleaseRefusal::CommitmentMismatch { .. }
    ));
    assert!(matches!(
        refusal(v0.reveal_vote(ballot, true, salt(1)).await),
        ReleaseRefusal::CommitmentMismatch { .. }
    ));
    v0.reveal_vote(ballot, true, salt(0)).await.expect("reveal");
    assert_eq!(
        refusal(v0.reveal_vote(ballot, true, salt(0)).await),
        ReleaseRefusal::AlreadyRevealed(ballot)
    );
    // The copier cannot reveal the copied vote: the commitment names v0.
    assert!(matches!(
        refusal(v1.reveal_vote(ballot, true, salt(0)).await),
        ReleaseRefusal::CommitmentMismatch { .. }
    ));
    // A validator that did not commit has nothing to reveal.
    assert_eq!(
        refusal(
            chain
                .validator(3)
                .await
                .reveal_vote(ballot, true, salt(3))
                .await
        ),
        ReleaseRefusal::NotCommitted(ballot)
    );
    chain.advance(REVEAL).await;
    // Reveals close with the phase.
    assert!(matches!(
        refusal(v1.reveal_vote(ballot, true, salt(1)).await),
        ReleaseRefusal::NotRevealPhase { .. }
    ));
}

#[tokio::test]
async fn settlement_rules() {
    let chain = Chain::start().await;
    let maintainer = chain.outsider().await;
    let (_, ballot) = maintainer
        .propose(release(1), [2; 32], &measurements())
        .await
        .expect("propose");
    assert!(matches!(
        refusal(maintainer.settle(ballot).await),
        ReleaseRefusal::TooEarly { .. }
    ));
    chain
        .vote(ballot, &[(0, true, true), (1, true, true), (2, true, true)])
        .await;
    let approved_at = maintainer.settle(ballot).await.expect("settle").block;
    assert_eq!(
        refusal(maintainer.settle(ballot).await),
        ReleaseRefusal::AlreadySettled(ballot)
    );
    let record = maintainer
        .ballot(ballot)
        .await
        .expect("ballot")
        .expect("exists");
    assert_eq!(record.outcome, BallotOutcome::Approved);
    assert_eq!(record.approve_weight, eth(6_000));
    let listed = maintainer
        .read_releases(Some(approved_at))
        .await
        .expect("read");
    assert_eq!(listed[0].status, ReleaseStatus::Approved);
    assert_eq!(listed[0].open_ballot, None);
    // Validator 3 did not commit: it is not slashed for staying out (it
    // just earns nothing); the bond went back to the proposer.
    assert_eq!(chain.stake(3).await, eth(2_000));
    assert_eq!(
        chain.rewards(maintainer.registry().account()).await,
        chain.params.release.proposal_bond
    );
    // An approved release is never proposed again.
    let again = refusal(
        maintainer
            .propose(release(1), [2; 32], &measurements())
            .await,
    );
    assert!(matches!(
        again,
        ReleaseRefusal::ReleaseKnown {
            status: Some(ReleaseStatus::Approved),
            ..
        }
    ));

    // A rejected one is listed as rejected, and final.
    let (_, ballot) = maintainer
        .propose(release(2), [3; 32], &measurements())
        .await
        .expect("propose");
    chain
        .vote(
            ballot,
            &[
                (0, false, true),
                (1, false, true),
                (2, false, true),
                (3, false, true),
            ],
        )
        .await;
    maintainer.settle(ballot).await.expect("settle");
    let listed = maintainer.read_releases(None).await.expect("read");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].status, ReleaseStatus::Rejected);
    let again = refusal(
        maintainer
            .propose(release(2), [3; 32], &measurements())
            .await,
    );
    assert!(matches!(
        again,
        ReleaseRefusal::ReleaseKnown {
            status: Some(ReleaseStatus::Rejected),
            ..
        }
    ));
    // A griefer who proposed a published release id first, with a wrong
    // binary, cannot bar the real release: other content under a rejected
    // id is a new vote.
    let (_, real) = maintainer
        .propose(release(2), [4; 32], &measurements())
        .await
        .expect("the real content under a rejected id");
    chain
        .vote(real, &[(0, true, true), (1, true, true), (2, true, true)])
        .await;
    maintainer.settle(real).await.expect("settle");
    let record = maintainer
        .release(release(2), None)
        .await
        .expect("read")
        .expect("known");
    assert_eq!(record.status, ReleaseStatus::Approved);
    assert_eq!(record.binary_sha256, [4; 32]);
    // The history stays readable at the earlier block.
    let then = maintainer
        .read_releases(Some(approved_at))
        .await
        .expect("read");
    assert_eq!(then.len(), 1);
}

#[tokio::test]
async fn the_minority_pays_the_majority() {
    let chain = Chain::start().await;
    let maintainer = chain.outsider().await;
    let bond = chain.params.release.proposal_bond;
    // A garbage proposal: three reject, one approves against them.
    let (_, ballot) = maintainer
        .propose(release(1), [2; 32], &measurements())
        .await
        .expect("propose");
    chain
        .vote(
            ballot,
            &[
                (0, false, true),
                (1, false, true),
                (2, false, true),
                (3, true, true),
            ],
        )
        .await;
    let burnt_before = chain.burnt().await;
    maintainer.settle(ballot).await.expect("settle");
    // 10 % of the dissenter's 2 ETH, with the forfeited bond, to the three
    // by weight.
    let slashed = eth(200);
    assert_eq!(chain.stake(3).await, eth(2_000) - slashed);
    let share = (slashed + bond) / U256::from(3);
    for i in 0..3 {
        assert_eq!(chain.stake(i).await, eth(2_000));
        assert_eq!(chain.rewards(chain.validators[i].address()).await, share);
    }
    assert_eq!(
        chain.rewards(chain.validators[3].address()).await,
        U256::ZERO
    );
    assert_eq!(
        chain.rewards(maintainer.registry().account()).await,
        U256::ZERO
    );
    // Rounding dust is burnt.
    assert_eq!(
        chain.burnt().await - burnt_before,
        slashed + bond - share * U256::from(3)
    );

    // Committing and staying silent (to reveal only when winning) costs
    // as much as losing.
    let (_, ballot) = maintainer
        .propose(release(3), [4; 32], &measurements())
        .await
        .expect("propose");
    chain
        .vote(
            ballot,
            &[
                (0, true, true),
                (1, true, true),
                (2, true, true),
                (3, true, false),
            ],
        )
        .await;
    let before = chain.stake(3).await;
    maintainer.settle(ballot).await.expect("settle");
    assert_eq!(chain.stake(3).await, before - before / U256::from(10));
    let listed = maintainer.read_releases(None).await.expect("read");
    assert_eq!(listed[1].status, ReleaseStatus::Approved);
}

#[tokio::test]
async fn a_blocking_third_leaves_it_undecided() {
    let chain = Chain::start().await;
    let maintainer = chain.outsider().await;
    let (_, ballot) = maintainer
        .propose(release(1), [2; 32], &measurements())
        .await
        .expect("propose");
    // Two approve, two reject (half each: neither reaches 2/3); one of
    // the rejecters committed and stayed silent.
    chain
        .vote(
            ballot,
            &[
                (0, true, true),
                (1, true, true),
                (2, false, true),
                (3, false, false),
            ],
        )
        .await;
    let burnt_before = chain.burnt().await;
    maintainer.settle(ballot).await.expect("settle");
    let record = maintainer
        .ballot(ballot)
        .await
        .expect("ballot")
        .expect("exists");
    assert_eq!(record.outcome, BallotOutcome::Undecided);
    let listed = maintainer.read_releases(None).await.expect("read");
    assert_eq!(listed[0].status, ReleaseStatus::Undecided);
    // An honest split slashes nobody who revealed; the silent one loses
    // its share, burnt (there is no majority to pay); the bond returns.
    for i in 0..3 {
        assert_eq!(chain.stake(i).await, eth(2_000));
    }
    assert_eq!(chain.stake(3).await, eth(1_800));
    assert_eq!(chain.burnt().await - burnt_before, eth(200));
    assert_eq!(
        chain.rewards(maintainer.registry().account()).await,
        chain.params.release.proposal_bond
    );
    // An undecided release may be proposed again, and approved then.
    let (_, again) = maintainer
        .propose(release(1), [2; 32], &measurements())
        .await
        .expect("re-propose");
    chain
        .vote(again, &[(0, true, true), (1, true, true), (2, true, true)])
        .await;
    maintainer.settle(again).await.expect("settle");
    let listed = maintainer.read_releases(None).await.expect("read");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, ReleaseStatus::Approved);
}

#[tokio::test]
async fn revocation() {
    let chain = Chain::start().await;
    let maintainer = chain.outsider().await;
    // Only an approved release can be revoked.
    let unknown = refusal(maintainer.propose_revocation(release(1)).await);
    assert!(
        matches!(unknown, ReleaseRefusal::NotRevocable { status: None, .. }),
        "{unknown}"
    );
    let (_, ballot) = maintainer
        .propose(release(1), [2; 32], &measurements())
        .await
        .expect("propose");
    let proposed = refusal(maintainer.propose_revocation(release(1)).await);
    assert!(matches!(
        proposed,
        ReleaseRefusal::NotRevocable {
            status: Some(ReleaseStatus::Proposed),
            ..
        }
    ));
    chain
        .vote(
            ballot,
            &[
                (0, true, true),
                (1, true, true),
                (2, true, true),
                (3, true, true),
            ],
        )
        .await;
    maintainer.settle(ballot).await.expect("settle");

    // A revocation the validators reject leaves it approved.
    let (_, revoke) = maintainer
        .propose_revocation(release(1))
        .await
        .expect("revoke");
    // One revocation at a time.
    assert!(matches!(
        refusal(maintainer.propose_revocation(release(1)).await),
        ReleaseRefusal::NotRevocable { .. }
    ));
    chain
        .vote(
            revoke,
            &[(0, false, true), (1, false, true), (2, false, true)],
        )
        .await;
    maintainer.settle(revoke).await.expect("settle");
    assert_eq!(
        maintainer
            .release(release(1), None)
            .await
            .expect("read")
            .expect("known")
            .status,
        ReleaseStatus::Approved
    );
    // One they approve revokes it for good.
    let (_, revoke) = maintainer
        .propose_revocation(release(1))
        .await
        .expect("revoke");
    chain
        .vote(revoke, &[(0, true, true), (1, true, true), (2, true, true)])
        .await;
    maintainer.settle(revoke).await.expect("settle");
    let record = maintainer
        .release(release(1), None)
        .await
        .expect("read")
        .expect("known");
    assert_eq!(record.status, ReleaseStatus::Revoked);
    assert!(matches!(
        refusal(
            maintainer
                .propose(release(1), [2; 32], &measurements())
                .await
        ),
        ReleaseRefusal::ReleaseKnown {
            status: Some(ReleaseStatus::Revoked),
            ..
        }
    ));
    assert!(matches!(
        refusal(maintainer.propose_revocation(release(1)).await),
        ReleaseRefusal::NotRevocable {
            status: Some(ReleaseStatus::Revoked),
            ..
        }
    ));
}

#[tokio::test]
async fn a_validator_that_left_does_not_count() {
    let chain = Chain::start().await;
    let maintainer = chain.outsider().await;
    let leaver = chain.validator(3).await;
    leaver
        .registry()
        .validator_leave()
        .await
        .expect("request leave");
    let (_, ballot) = maintainer
        .propose(release(1), [2; 32], &measurements())
        .await
        .expect("propose");
    // It votes against the others, then leaves before the settlement.
    for (i, approve) in [(0, true), (1, true), (2, true), (3, false)] {
        chain
            .validator(i)
            .await
            .commit_vote(ballot, approve, salt(i))
            .await
            .expect("commit");
    }
    chain.advance(COMMIT).await;
    for (i, approve) in [(0, true), (1, true), (2, true), (3, false)] {
        chain
            .validator(i)
            .await
            .reveal_vote(ballot, approve, salt(i))
            .await
            .expect("reveal");
    }
    let gone = chain.validators[3].address();
    for i in 0..3 {
        chain
            .validator(i)
            .await
            .registry()
            .approve_set_change(0, vec![], vec![gone])
            .await
            .expect("approve leave");
    }
    chain.advance(REVEAL).await;
    maintainer.settle(ballot).await.expect("settle");
    // Counted against the remaining set only (3 of 3), and the leaver's
    // stake, now unbonding, is untouched: it is neither slashed nor paid.
    let record = maintainer
        .ballot(ballot)
        .await
        .expect("ballot")
        .expect("exists");
    assert_eq!(record.outcome, BallotOutcome::Approved);
    assert_eq!(record.reject_weight, U256::ZERO);
    let unbonding = chain
        .registry(&chain.validators[0])
        .unbonding(gone)
        .call()
        .await
        .expect("unbonding");
    assert_eq!(unbonding.amount, eth(2_000));
    assert_eq!(chain.rewards(gone).await, U256::ZERO);
    // It votes no more.
    let (_, next) = maintainer
        .propose(release(2), [3; 32], &measurements())
        .await
        .expect("propose");
    assert_eq!(
        refusal(leaver.commit_vote(next, true, salt(3)).await),
        ReleaseRefusal::NotValidator
    );
}

/// The gas of each operation, from receipts (run with `--nocapture` for
/// the table; docs/chain.md has it).
#[tokio::test]
#[allow(clippy::print_stdout, reason = "the table is this test's output")]
async fn gas_of_release_votes() {
    let chain = Chain::start().await;
    let maintainer = chain.outsider().await;
    let mut table: Vec<(String, u64)> = Vec::new();
    let (sent, ballot) = maintainer
        .propose(release(1), [2; 32], &measurements())
        .await
        .expect("propose");
    table.push(("propose (2 measurements)".into(), sent.gas_used));
    let sixteen = vec![(1u8, [0x5A; 48]); 16];
    let (sent, _) = maintainer
        .propose(release(9), [2; 32], &sixteen)
        .await
        .expect("propose");
    table.push(("propose (16 measurements)".into(), sent.gas_used));
    let mut commits = Vec::new();
    for i in 0..4 {
        commits.push(
            chain
                .validator(i)
                .await
                .commit_vote(ballot, i != 3, salt(i))
                .await
                .expect("commit")
                .gas_used,
        );
    }
    table.push(("commitVote".into(), commits[1]));
    chain.advance(COMMIT).await;
    let mut reveals = Vec::new();
    for i in 0..4 {
        reveals.push(
            chain
                .validator(i)
                .await
                .reveal_vote(ballot, i != 3, salt(i))
                .await
                .expect("reveal")
                .gas_used,
        );
    }
    table.push(("revealVote".into(), reveals[1]));
    chain.advance(REVEAL).await;
    let settled = maintainer.settle(ballot).await.expect("settle").gas_used;
    table.push(("settle (4 voters, 1 slashed, approved)".into(), settled));
    let (sent, _) = maintainer
        .propose_revocation(release(1))
        .await
        .expect("revoke");
    table.push(("proposeRevocation".into(), sent.gas_used));
    println!("| operation | gas used |\n|---|---:|");
    for (operation, gas) in &table {
        println!("| {operation} | {gas} |");
        assert!(*gas > 21_000, "{operation}: {gas}");
    }
}
