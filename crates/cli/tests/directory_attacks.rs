//! A running client refuses bad directories and keeps working: once it has
//! verified a directory, the devnet's registry is replaced by an impostor
//! holding the registry's own TLS key (so only the directory's validator
//! signatures can tell) that serves, in turn, a forged, an under-signed, a
//! stale and a replayed (rolled-back) directory. Each is refused with its
//! own error, and none changes the client's relays, cache or traffic.
//!
//! Issue 13: the same with a chain-backed registry (`devnet --chain`) that
//! turns malicious and lies about the chain: a directory leaving out a
//! staked relay or listing one nobody staked gets no validator signatures
//! (`registry_chain.rs`), so whatever the registry serves instead is
//! refused and the client keeps its last good chain-anchored directory.
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;
use openrelay_testkit::registry as registry_fixtures;

use std::time::{Duration, Instant};

use kit::{Devnet, fetch, servers};
use openrelay_directory::{
    ChainOperator, ChainRelay, Directory, SignedDescriptor, SignedDirectory, SignedOperatorProfile,
};
use openrelay_types::{RelayRole, unix_now};
use registry_fixtures::{TakenOver, reissued, take_over_registry};

/// Waits until the client's log holds `count` lines with `what`.
async fn wait_for(devnet: &Devnet, what: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while devnet.log("client").matches(what).count() < count {
        assert!(Instant::now() < deadline, "waited in vain for {what:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The last "directory updated" line of a client's log.
fn last_update(log: &str) -> Option<String> {
    log.lines()
        .rev()
        .find(|l| l.contains("directory updated"))
        .map(str::to_owned)
}

/// What the client holds once it took the last good directory: every
/// refusal must leave it so.
struct Held {
    /// The cache file's contents: that directory, as served.
    cache: Vec<u8>,
    /// The client's last "directory updated" line.
    last_update: Option<String>,
    /// The client's status then.
    status: serde_json::Value,
}

impl Held {
    /// Waits until `devnet`'s client cached `directory`; what it holds then.
    async fn once_cached(devnet: &Devnet, taken: &TakenOver, directory: &[u8]) -> Held {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read(&taken.cache).unwrap() != directory {
            assert!(Instant::now() < deadline, "the directory was not cached");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Held {
            cache: directory.to_vec(),
            last_update: last_update(&devnet.log("client")),
            status: devnet.status(),
        }
    }

    /// The impostor serves `bytes`: the client refuses them with `error` in
    /// its log, and nothing changes: no update, the same cache, the same
    /// directory in use, and traffic flows on its relays (so the client
    /// runs on).
    async fn refuses(
        &self,
        devnet: &Devnet,
        taken: &TakenOver,
        name: &str,
        bytes: Vec<u8>,
        error: &str,
    ) {
        let refusals = devnet
            .log("client")
            .matches("directory not updated")
            .count();
        taken.impostor.serve(bytes);
        wait_for(devnet, "directory not updated", refusals + 1).await;
        let log = devnet.log("client");
        let refusal = log
            .lines()
            .filter(|l| l.contains("directory not updated"))
            .nth(refusals)
            .unwrap();
        assert!(
            refusal.contains(error),
            "{name}: refused for the wrong reason: {refusal}"
        );
        assert_eq!(last_update(&log), self.last_update, "{name} was accepted");
        assert_eq!(
            std::fs::read(&taken.cache).unwrap(),
            self.cache,
            "{name} was cached"
        );
        let status = devnet.status();
        assert!(
            status["directory_age_secs"].as_u64() >= self.status["directory_age_secs"].as_u64(),
            "{name} changed the directory in use: {status}"
        );
        let socks = devnet.socks.to_string();
        let url = format!("http://localhost:{}/bytes/100000", servers().http.port());
        fetch(
            &["--socks5-hostname", &socks],
            &url,
            Duration::from_secs(10),
        )
        .await
        .assert_ok(name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_under_signed_stale_and_replayed_directories_change_nothing() {
    let devnet = Devnet::start(3);
    devnet.client_refreshed_directory().await;

    // Take the registry's place, with its key, at its address.
    let taken = take_over_registry(&devnet).await;
    let (current, genuine) = (&taken.current, &taken.genuine);
    let validators = &taken.validators;

    // A newer directory, properly signed by two of three validators, is
    // accepted (so the genuine one is now an old one, for the replay).
    let now = unix_now();
    let newer = reissued(
        current,
        &[&validators[0], &validators[2]],
        current.sequence() + 1,
        now,
        now + 3600,
    );
    let updates = devnet.log("client").matches("directory updated").count();
    taken.impostor.serve(newer.clone());
    wait_for(&devnet, "directory updated", updates + 1).await;
    let held = Held::once_cached(&devnet, &taken, &newer).await;
    // Issue 16: it came as a diff from the directory held.
    let update = held.last_update.as_deref().unwrap_or_default();
    assert!(update.contains("from_diff=true"), "{update}");

    let next = current.sequence() + 2;
    let mut forged = SignedDirectory::from_bytes(&reissued(
        current,
        &[&validators[0], &validators[1]],
        next,
        now,
        now + 3600,
    ))
    .unwrap();
    // One bit of content changed after signing (e.g. a relay slipped in).
    let mut changed = forged.directory.to_vec();
    let middle = changed.len() / 2;
    changed[middle] ^= 1;
    forged.directory = changed.into();
    let attacks = [
        (
            "forged",
            forged.to_bytes(),
            "directory has 0 valid validator signatures, 2 needed",
        ),
        (
            "under-signed",
            reissued(current, &[&validators[1]], next, now, now + 3600),
            "directory has 1 valid validator signatures, 2 needed",
        ),
        (
            "stale",
            reissued(
                current,
                &[&validators[0], &validators[1]],
                next,
                now - 3 * 86_400,
                now - 2 * 86_400,
            ),
            "expired",
        ),
        (
            "replayed",
            genuine.clone(),
            "is older than the last accepted",
        ),
    ];
    // Each as the whole directory and as a diff from the one held (a
    // diff is only bytes: what it makes is verified as a directory).
    for (name, bytes, error) in attacks {
        for diffs_off in [true, false] {
            taken.impostor.diffs_off(diffs_off);
            let name = format!("{name}{}", if diffs_off { "" } else { " as a diff" });
            held.refuses(&devnet, &taken, &name, bytes.clone(), error)
                .await;
        }
    }
}

/// Issue 13: a client of `devnet --chain` (anvil, the contract, the
/// registry and validators following it) holds a chain-anchored
/// directory; then the registry lies. It leaves out a staked relay, with
/// the signature of one colluding validator (below the threshold), and
/// lists a relay nobody staked, signed by nobody (no honest validator
/// signs either). Both are refused with the reason, the client keeps the
/// directory it had (the same anchor, validator epoch and relays) and
/// carries traffic on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_backed_registry_that_lies_changes_nothing() {
    let devnet = Devnet::start_with_args(3, "info", &["--chain"]);
    devnet.client_refreshed_directory().await;
    let taken = take_over_registry(&devnet).await;
    let (current, genuine) = (&taken.current, &taken.genuine);
    let section = current.chain().expect("a chain-anchored directory").clone();
    let held = Held::once_cached(&devnet, &taken, genuine).await;
    let now = unix_now();
    let next = current.sequence() + 1;

    // Every devnet operator runs two relays, so its profile stays listed.
    let left_out = current.descriptors()[0].descriptor().relay();
    let mut omitting = section.clone();
    omitting.relays.retain(|r| r.relay != left_out);
    let omitting = Directory::new(
        next,
        now,
        now + 3600,
        current.operators().to_vec(),
        current
            .descriptors()
            .iter()
            .filter(|d| d.descriptor().relay() != left_out)
            .cloned()
            .collect(),
    )
    .unwrap()
    .with_chain(omitting)
    .unwrap();
    held.refuses(
        &devnet,
        &taken,
        "a staked relay left out",
        reissued(&omitting, &[&taken.validators[0]], next, now, now + 3600),
        "directory has 1 valid validator signatures, 2 needed",
    )
    .await;

    // Relay 9 of operator 9: published nowhere, staked by nobody.
    let mut adding = section.clone();
    adding.operators.push(ChainOperator {
        operator: registry_fixtures::operator_key(9).id(),
        account: [9; 20],
        stake_wei: 1_000_000_000_000_000_000,
        covered_mbps: 1_000,
    });
    adding.relays.push(ChainRelay {
        relay: registry_fixtures::relay_key(9).id(),
        bandwidth_mbps: 1_000,
        measured: None,
    });
    let mut operators = current.operators().to_vec();
    operators.push(
        SignedOperatorProfile::from_bytes(&registry_fixtures::profile_naming(9, Some([9; 20])))
            .unwrap(),
    );
    let mut descriptors = current.descriptors().to_vec();
    descriptors.push(
        SignedDescriptor::from_bytes(&registry_fixtures::descriptor(9, 9, RelayRole::Egress))
            .unwrap(),
    );
    let adding = Directory::new(next, now, now + 3600, operators, descriptors)
        .unwrap()
        .with_chain(adding)
        .unwrap();
    held.refuses(
        &devnet,
        &taken,
        "an unstaked relay added",
        reissued(&adding, &[], next, now, now + 3600),
        "directory has 0 valid validator signatures, 2 needed",
    )
    .await;

    // The cache still holds the chain-anchored directory it had.
    let cached = SignedDirectory::from_bytes(&std::fs::read(&taken.cache).unwrap()).unwrap();
    let cached = Directory::from_bytes(&cached.directory).unwrap();
    assert_eq!(cached.chain(), Some(&section));
    assert_eq!(cached.descriptors(), current.descriptors());
}
