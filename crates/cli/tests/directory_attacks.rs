//! A running client refuses bad directories and keeps working: once it has
//! verified a directory, the devnet's registry is replaced by an impostor
//! holding the registry's own TLS key (so only the directory's validator
//! signatures can tell) that serves, in turn, a forged, an under-signed, a
//! stale and a replayed (rolled-back) directory. Each is refused with its
//! own error, and none changes the client's relays, cache or traffic.
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;
use openrelay_testkit::registry as registry_fixtures;

use std::time::{Duration, Instant};

use kit::{Devnet, fetch, servers};
use openrelay_directory::SignedDirectory;
use openrelay_types::unix_now;
use registry_fixtures::{reissued, take_over_registry};

/// Waits until the client's log holds `count` lines with `what`.
async fn wait_for(devnet: &Devnet, what: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while devnet.log("client").matches(what).count() < count {
        assert!(Instant::now() < deadline, "waited in vain for {what:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_under_signed_stale_and_replayed_directories_change_nothing() {
    let devnet = Devnet::start(3);
    let socks = devnet.socks.to_string();
    let url = format!("http://localhost:{}/bytes/100000", servers().http.port());
    let client_log = || devnet.log("client");
    wait_for(&devnet, "directory updated", 1).await;

    // Take the registry's place, with its key, at its address.
    let taken = take_over_registry(&devnet).await;
    let (current, cache, genuine) = (&taken.current, &taken.cache, &taken.genuine);
    let validators = &taken.validators;
    let serve = |bytes: Vec<u8>| taken.impostor.serve(bytes);

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
    serve(newer.clone());
    let updates = client_log().matches("directory updated").count();
    wait_for(&devnet, "directory updated", updates + 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read(cache).unwrap() != newer {
        assert!(
            Instant::now() < deadline,
            "the newer directory was not cached"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status_before = devnet.status();
    let relays_line = |log: &str| {
        log.lines()
            .rev()
            .find(|l| l.contains("directory updated"))
            .map(str::to_owned)
    };
    let last_update = relays_line(&client_log());

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
    let middle = forged.directory.len() / 2;
    forged.directory[middle] ^= 1;
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
    for (name, bytes, error) in attacks {
        let refusals = client_log().matches("directory not updated").count();
        serve(bytes);
        wait_for(&devnet, "directory not updated", refusals + 1).await;
        let log = client_log();
        let refusal = log
            .lines()
            .filter(|l| l.contains("directory not updated"))
            .nth(refusals)
            .unwrap();
        assert!(
            refusal.contains(error),
            "{name}: refused for the wrong reason: {refusal}"
        );
        // Nothing changed: no update, the same cache, the same directory
        // age reference, and traffic flows on the directory's relays.
        assert_eq!(relays_line(&log), last_update, "{name} was accepted");
        assert_eq!(std::fs::read(cache).unwrap(), newer, "{name} was cached");
        let status = devnet.status();
        assert!(
            status["directory_age_secs"].as_u64() >= status_before["directory_age_secs"].as_u64(),
            "{name} changed the directory in use: {status}"
        );
        fetch(
            &["--socks5-hostname", &socks],
            &url,
            Duration::from_secs(10),
        )
        .await
        .assert_ok(name);
    }
}
