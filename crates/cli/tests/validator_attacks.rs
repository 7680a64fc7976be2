//! Issue 11, item 6: a malicious registry against three real
//! `openrelay validator`s (threshold 2). The test is the registry: it takes
//! the validators' votes and signatures and serves the proposals it likes.
//! Four relays publish to the validators. An honest proposal is signed;
//! then each attack is served in turn and gets no signature at all:
//!
//! - a second directory under the sequence already signed (splitting
//!   clients), also after a validator restarts (its record is on disk);
//! - sequence `u64::MAX` (every later directory would look rolled back);
//! - a directory listing only the registry's own relay;
//! - a directory leaving out one live relay;
//! - a directory adding a relay the validators never saw;
//! - a directory issued long ago, and one valid for too long.
//!
//! A last honest proposal is signed again, so the refusals were the attacks'.
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;
use openrelay_testkit::registry as registry_fixtures;

use std::time::{Duration, Instant};

use kit::Proc;
use openrelay_directory::vote::{SignedVote, tally};
use openrelay_directory::{Directory, DirectoryDigest};
use openrelay_registry_client::RegistryClient;
use openrelay_types::RelayRole;
use openrelay_types::unix_now;
use registry_fixtures::*;

const RELAYS: [(u8, u8, RelayRole); 4] = [
    (0, 0, RelayRole::Ingress),
    (1, 0, RelayRole::Egress),
    (2, 1, RelayRole::Ingress),
    (3, 1, RelayRole::Egress),
];

/// Waits until `digest` has at least `at_least` signers.
async fn signed_by(impostor: &VotingImpostor, digest: &DirectoryDigest, at_least: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while impostor.signers(digest) < at_least {
        assert!(
            Instant::now() < deadline,
            "{digest} was not signed by {at_least} validators"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Serves `directory` for a few poll intervals: nobody may sign it.
async fn refused(impostor: &VotingImpostor, name: &str, directory: &Directory) {
    let digest = impostor.serve(directory);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        impostor.signers(&digest),
        0,
        "{name}: the validators signed {digest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malicious_registry_gets_no_signature_on_any_attack() {
    let dir = tempfile::tempdir().unwrap();
    let keys = validator_keys(dir.path(), 3);
    // The test is the registry.
    let server = VotingImpostor::start();
    let impostor = &server.impostor;
    let (registry_addr, registry_key) = (server.addr, server.key.clone());
    let publication = "descriptor_ttl_secs = 600";
    let start =
        |v: &ValidatorKeys| start_validator(v, &keys, 2, registry_addr, &registry_key, publication);
    let mut validators: Vec<Proc> = keys.iter().map(start).collect();
    let targets: Vec<RegistryClient> = validators.iter().map(validator_client).collect();

    // The relays publish to every validator (not refreshed: a TTL of 10 min).
    let mut published = Published::default();
    for (relay, operator, role) in RELAYS {
        published.publish(&targets, relay, operator, role).await;
    }
    // The registry's own relay, which no validator ever saw.
    published.unpublished(9, 9, RelayRole::Egress);
    // Every validator votes for the four relays.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let votes = impostor.votes();
        let elected = tally(votes.iter().map(SignedVote::vote));
        if votes.len() == 3 && elected.len() == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no votes for the relays: {votes:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let all = [0, 1, 2, 3];
    let now = unix_now();
    let honest = published.directory(10, now, now + 3600, &all);
    let digest = impostor.serve(&honest);
    signed_by(impostor, &digest, 3).await;

    let now = unix_now();
    refused(
        impostor,
        "a second directory under sequence 10",
        &published.directory(10, now, now + 3000, &all),
    )
    .await;
    refused(
        impostor,
        "sequence u64::MAX",
        &published.directory(u64::MAX, now, now + 3600, &all),
    )
    .await;
    refused(
        impostor,
        "only the registry's own relay",
        &published.directory(11, now, now + 3600, &[9]),
    )
    .await;
    refused(
        impostor,
        "one live relay left out",
        &published.directory(11, now, now + 3600, &[0, 1, 3]),
    )
    .await;
    refused(
        impostor,
        "a relay the validators never saw",
        &published.directory(11, now, now + 3600, &[0, 1, 2, 3, 9]),
    )
    .await;
    refused(
        impostor,
        "issued an hour ago",
        &published.directory(11, now - 3600, now + 60, &all),
    )
    .await;
    refused(
        impostor,
        "valid for a week",
        &published.directory(11, now, now + 7 * 86_400, &all),
    )
    .await;

    // A validator restarted keeps its record: no second directory under 10.
    drop(validators.remove(0));
    validators.insert(0, start(&keys[0]));
    refused(
        impostor,
        "a second directory under sequence 10, after a restart",
        &published.directory(10, now, now + 2000, &all),
    )
    .await;

    // Each refusal was logged with its reason.
    assert_every_validator_logged(
        &keys,
        &[
            "sequence 10 was already signed with other contents",
            "jumps beyond",
            "is listed but only 0 of 3 votes list it",
            "is left out but 3 of 3 votes list it",
            "issued at",
            "at most 7200 s signed",
        ],
    );

    // And an honest next directory is signed again.
    let now = unix_now();
    let next = published.directory(12, now, now + 3600, &all);
    let digest = impostor.serve(&next);
    signed_by(impostor, &digest, 3).await;
}
