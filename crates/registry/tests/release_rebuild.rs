//! Issue 15: a validator's `check = "rebuild"` (`RebuildFromSource`)
//! approves a proposal only after rebuilding its manifest bit-identically
//! from source, with a trusted signature, and only if the proposal names
//! the manifest's binary and measurements; it rejects a rebuild that
//! differs and a proposal carrying a foreign measurement, and abstains
//! while it has no manifest or the rebuild runs. Real builds of a tiny
//! fixture workspace (seconds).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use openrelay_chain::release::{ReleaseRecord, ReleaseStatus};
use openrelay_registry::validator::release_votes::{Decision, RebuildFromSource, ReleaseCheck};
use openrelay_release::SigningKey;
use openrelay_release::build::{BuildRequest, build};
use openrelay_release::fixture::{MAIN_RS, MAIN_RS_WITH_TIME, PACKAGE, fixture};

const SIMULATED: u8 = 0xF0;

fn request(checkout: &Path, work_dir: &Path) -> BuildRequest {
    BuildRequest {
        checkout: checkout.to_owned(),
        package: PACKAGE.to_owned(),
        binary: PACKAGE.to_owned(),
        source_date_epoch: 1_700_000_000,
        work_dir: work_dir.to_owned(),
    }
}

/// Asks `check` until it stops abstaining (the rebuild runs on a thread).
fn settled(check: &RebuildFromSource, release: &ReleaseRecord) -> Decision {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match check.decide(release) {
            Decision::Abstain if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            decision => return decision,
        }
    }
}

#[test]
fn a_validator_approves_only_what_it_rebuilt() {
    let root = tempfile::tempdir().unwrap();
    let published = fixture(&root.path().join("published"), MAIN_RS, None);
    let built = build(&request(&published, &root.path().join("work-published"))).unwrap();
    let mut manifest = built.manifest.clone();
    let key = SigningKey::from_bytes(&[7; 32]);
    manifest.sign(&key);
    let manifests = root.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("openrelay.manifest.json"),
        manifest.to_json(),
    )
    .unwrap();
    // Junk beside it is skipped.
    std::fs::write(manifests.join("notes.txt"), "not a manifest").unwrap();
    let proposal = ReleaseRecord {
        release_id: manifest.release_id().0,
        binary_sha256: built.sha256,
        measurements: vec![(
            SIMULATED,
            manifest.insecure_simulated_measurement().unwrap(),
        )],
        status: ReleaseStatus::Proposed,
        open_ballot: Some(1),
    };
    let check = |source: &Path, name: &str| {
        RebuildFromSource::new(
            manifests.clone(),
            source.to_owned(),
            root.path().join(name),
            vec![key.verifying_key()],
            1,
        )
    };

    // The validator's own checkout of the same source: approved.
    let own = fixture(&root.path().join("validator checkout"), MAIN_RS, None);
    let honest = check(&own, "work-honest");
    assert_eq!(honest.decide(&proposal), Decision::Abstain, "rebuilding");
    assert_eq!(settled(&honest, &proposal), Decision::Approve);
    // A proposal of the same id with a measurement the manifest does not
    // list: rejected at once (a foreign TEE image under a good binary).
    let mut foreign = proposal.clone();
    foreign.measurements.push((1, [9; 48]));
    assert_eq!(honest.decide(&foreign), Decision::Reject);
    let mut other_binary = proposal.clone();
    other_binary.binary_sha256 = [1; 32];
    assert_eq!(honest.decide(&other_binary), Decision::Reject);
    // An id it has no manifest of: no opinion, no commitment.
    let mut unknown = proposal.clone();
    unknown.release_id = [3; 32];
    assert_eq!(honest.decide(&unknown), Decision::Abstain);

    // A checkout whose source differs from the manifest's: rejected.
    let changed = fixture(&root.path().join("changed"), MAIN_RS_WITH_TIME, None);
    assert_eq!(
        settled(&check(&changed, "work-changed"), &proposal),
        Decision::Reject
    );
    // Signed by a key the validator does not trust: rejected.
    let untrusting = RebuildFromSource::new(
        manifests.clone(),
        own.clone(),
        root.path().join("work-honest"),
        vec![SigningKey::from_bytes(&[8; 32]).verifying_key()],
        1,
    );
    assert_eq!(settled(&untrusting, &proposal), Decision::Reject);
}
