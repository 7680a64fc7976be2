//! The registry as real processes: `openrelay registry` and three
//! `openrelay validator`s (threshold 2). The test publishes as relays of two
//! operators (to the registry and to every validator), then checks that the
//! directory the registry serves passes the client's verification, that a
//! relay that stops refreshing leaves a later directory (churn), and that
//! every kind of bad publication gets its own status on the wire (issue 11,
//! items 8 and 17).
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;
use openrelay_testkit::registry as registry_fixtures;

use std::time::{Duration, Instant};

use kit::Proc;
use openrelay_directory::{
    DirectoryDiff, DirectoryDigest, SignedDirectory, SignedDirectoryDigest, TrustConfig,
    ValidatorId, ValidatorKey, verify_directory_bytes,
};
use openrelay_registry_client::RegistryClient;
use openrelay_registry_client::follow::{DirectoryFollower, Refresh};
use openrelay_registry_client::paths;
use openrelay_types::RelayRole;
use openrelay_types::unix_now;
use registry_fixtures::*;

const RELAYS: [(u8, u8, RelayRole); 4] = [
    (0, 0, RelayRole::Ingress),
    (1, 0, RelayRole::Egress),
    (2, 1, RelayRole::Ingress),
    (3, 1, RelayRole::Egress),
];

/// The `[publication]` section of the registry and every validator: at most
/// two relays per operator and five in all, a TTL of 3 s, special-purpose
/// endpoints refused.
const PUBLICATION: &str = "descriptor_ttl_secs = 3\nmax_relays_per_operator = 2\nmax_relays = 5";

/// Waits for a served directory that verifies and satisfies `want`,
/// republishing `refresh` to `targets` meanwhile.
async fn served_directory(
    registry: &RegistryClient,
    targets: &[RegistryClient],
    trust: &TrustConfig,
    want: impl Fn(usize) -> bool,
    refresh: &[(u8, u8, RelayRole)],
) -> (u64, usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A second after any earlier publication, so each is newer.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        for &(relay, operator, role) in refresh {
            publish(targets, relay, operator, role).await;
        }
        if let Ok((200, bytes)) = registry
            .call(http::Method::GET, paths::DIRECTORY, Vec::new())
            .await
        {
            let verified = verify_directory_bytes(&bytes, trust, unix_now(), None).unwrap();
            let relays = verified.relays().count();
            if want(relays) {
                return (verified.sequence(), relays);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no suitable directory was served in time"
        );
    }
}

/// Starts `openrelay registry` with its state in `state_dir`, `keys` as
/// validators (threshold 2) and `extra` appended to its config; returns the
/// process, its address and its key.
fn start_registry(
    dir: &std::path::Path,
    state_dir: &std::path::Path,
    keys: &[ValidatorKeys],
    extra: &str,
) -> (Proc, String, String) {
    let registry_config = dir.join("registry.toml");
    std::fs::write(
        &registry_config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\nvalidators = {}\nthreshold = 2\ndirectory_lifetime_secs = 3600\nproposal_interval_secs = 1\n[publication]\n{PUBLICATION}\n{extra}",
            state_dir.display(),
            key_list(keys),
        ),
    )
    .unwrap();
    let registry_proc = Proc::start(
        &[
            "registry",
            "--config",
            &registry_config.display().to_string(),
        ],
        &dir.join("registry.stderr"),
    );
    let (listen, key) = (
        registry_proc.ready_field("listen"),
        registry_proc.ready_field("key"),
    );
    (registry_proc, listen, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_sign_what_the_registry_serves_and_bad_publications_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keys = validator_keys(dir.path(), 3);
    let log = format!(
        "[log]\nlevel = \"debug\"\nfile = {:?}\n",
        dir.path().join("registry.log").display()
    );
    let (_registry_proc, listen, key) =
        start_registry(dir.path(), &dir.path().join("registry"), &keys, &log);
    let validators: Vec<Proc> = keys
        .iter()
        .map(|v| start_validator(v, &keys, 2, listen.parse().unwrap(), &key, PUBLICATION))
        .collect();
    let registry = RegistryClient::new(listen.parse().unwrap(), key.parse().unwrap());
    let mut targets = vec![registry.clone()];
    targets.extend(validators.iter().map(validator_client));

    // A descriptor of an operator without a profile: 422.
    assert_eq!(
        post(
            &registry,
            paths::DESCRIPTORS,
            descriptor(0, 0, RelayRole::Ingress)
        )
        .await,
        422
    );
    // A forged descriptor: 403.
    let mut forged = descriptor(0, 0, RelayRole::Ingress);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(post(&registry, paths::PROFILES, profile(0)).await, 204);
    assert_eq!(post(&registry, paths::DESCRIPTORS, forged).await, 403);

    let trust = TrustConfig::new(
        keys.iter()
            .map(|v| v.key.id())
            .collect::<Vec<ValidatorId>>(),
        2,
        3600,
    )
    .unwrap();
    let (first, relays) = served_directory(&registry, &targets, &trust, |n| n == 4, &RELAYS).await;
    assert_eq!(relays, 4);

    // Item 21: the registry's answers to a signature tell a validator's
    // normal life from a real problem. A signature over the directory
    // served already: 200. Over one it no longer offers: 410. A bad one: 403.
    let (_, served) = registry
        .call(http::Method::GET, paths::DIRECTORY, Vec::new())
        .await
        .unwrap();
    let served = SignedDirectory::from_bytes(&served).unwrap();
    let submission = |key: &ValidatorKey, digest: DirectoryDigest, directory: &[u8]| {
        let mut body = key.id().as_bytes().to_vec();
        body.extend_from_slice(digest.as_bytes());
        body.extend_from_slice(key.sign_directory_bytes(directory).signature.as_bytes());
        body
    };
    let late = submission(&keys[0].key, served.digest(), &served.directory);
    assert_eq!(post(&registry, paths::SIGNATURES, late).await, 200);
    let gone = submission(
        &keys[0].key,
        DirectoryDigest::of(b"another directory"),
        b"another directory",
    );
    assert_eq!(post(&registry, paths::SIGNATURES, gone).await, 410);
    let forged = submission(&keys[0].key, served.digest(), b"other bytes");
    assert_eq!(post(&registry, paths::SIGNATURES, forged).await, 403);
    // The first directory as the registry now stores and serves it (with
    // every signature): a client holding it gets later ones as diffs.
    let (_, first_bytes) = registry
        .call(http::Method::GET, paths::DIRECTORY, Vec::new())
        .await
        .unwrap();

    // Replays: the descriptor just published again, and an older one: 409.
    // (A second later than the last refresh, so the first is newer.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let current = descriptor(1, 0, RelayRole::Egress);
    assert_eq!(
        post(&registry, paths::DESCRIPTORS, current.clone()).await,
        204
    );
    assert_eq!(post(&registry, paths::DESCRIPTORS, current).await, 409);
    let older = sign(fields(1, 0, RelayRole::Egress, 30), 1, 0);
    assert_eq!(post(&registry, paths::DESCRIPTORS, older).await, 409);
    // A third relay of operator 0: 403 (at most two per operator).
    assert_eq!(
        post(
            &registry,
            paths::DESCRIPTORS,
            descriptor(4, 0, RelayRole::Egress)
        )
        .await,
        403
    );
    // A loopback endpoint: 403 (special-purpose addresses are refused).
    let mut loopback = fields(5, 2, RelayRole::Egress, 0);
    loopback.endpoints = vec!["127.0.0.1:4433".parse().unwrap()];
    assert_eq!(post(&registry, paths::PROFILES, profile(2)).await, 204);
    assert_eq!(
        post(&registry, paths::DESCRIPTORS, sign(loopback, 5, 2)).await,
        403
    );
    // A fifth relay fits, a sixth does not: 503 (the registry is full).
    assert_eq!(
        post(
            &registry,
            paths::DESCRIPTORS,
            descriptor(5, 2, RelayRole::Egress)
        )
        .await,
        204
    );
    assert_eq!(post(&registry, paths::PROFILES, profile(3)).await, 204);
    assert_eq!(
        post(
            &registry,
            paths::DESCRIPTORS,
            descriptor(6, 3, RelayRole::Egress)
        )
        .await,
        503
    );

    // Relay 3 stops refreshing (and relay 5 never published to the
    // validators): a later directory lists relays 0 to 2 only.
    let (second, relays) =
        served_directory(&registry, &targets, &trust, |n| n == 3, &RELAYS[..3]).await;
    assert_eq!(relays, 3);
    assert!(second > first, "sequence {second} after {first}");

    // Issue 16: the diff from the first directory makes the one served,
    // which verifies as any; the held newest gets 204; a directory the
    // registry does not keep gets 404 (the client fetches it whole); a
    // malformed base 400.
    let diff_from = |bytes: &[u8]| {
        format!(
            "{}?from={}",
            paths::DIRECTORY_DIFF,
            SignedDirectoryDigest::of(bytes)
        )
    };
    let get = |path: String| {
        let registry = registry.clone();
        async move {
            registry
                .call(http::Method::GET, &path, Vec::new())
                .await
                .unwrap()
        }
    };
    let (status, diff) = get(diff_from(&first_bytes)).await;
    assert_eq!(status, 200);
    let made = DirectoryDiff::from_bytes(&diff)
        .unwrap()
        .apply(&first_bytes)
        .unwrap();
    let verified = verify_directory_bytes(&made, &trust, unix_now(), None).unwrap();
    assert!(verified.sequence() >= second);
    let (_, newest) = get(paths::DIRECTORY.to_owned()).await;
    assert_eq!(get(diff_from(&newest)).await.0, 204);
    assert_eq!(get(diff_from(b"a directory never served")).await.0, 404);
    for malformed in ["", "?from=12", "?to=00", "?from=zz"] {
        let path = format!("{}{malformed}", paths::DIRECTORY_DIFF);
        assert_eq!(get(path).await.0, 400, "{malformed}");
    }
    // Relays, the issuer and validators follow by diffs too: a follower
    // holding the first directory takes the next from a diff, and then
    // hears it is unchanged (or takes a newer one from a diff again).
    let follower =
        DirectoryFollower::with_trust(registry.clone(), trust.clone(), Duration::from_secs(60));
    follower.accept(&first_bytes, unix_now()).unwrap();
    let (followed, refresh) = follower.refresh().await.unwrap();
    assert!(
        matches!(
            refresh,
            Refresh::Taken {
                from_diff: true,
                ..
            }
        ),
        "{refresh:?}"
    );
    assert!(followed.sequence() >= second);
    let (_, refresh) = follower.refresh().await.unwrap();
    assert!(
        !matches!(
            refresh,
            Refresh::Taken {
                from_diff: false,
                ..
            }
        ),
        "{refresh:?}"
    );

    // Item 21: nothing a validator met here was a real problem.
    for v in &keys {
        let log = std::fs::read_to_string(v.dir.join("validator.log")).unwrap();
        let warnings = kit::logs::warnings(&log);
        assert!(warnings.is_empty(), "{warnings:#?}");
    }
}

/// Issue 14, item 4: a registry process serves the settled verdicts it
/// recorded (read back from its store at start) as JSON, filtered and
/// bounded, and `openrelay operator measurements` explains them per relay:
/// every validator's report, the aggregate, the tolerance and how far from
/// a slash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_explains_recorded_verdicts_and_the_operator_command_prints_them() {
    use openrelay_measure::ValidatorId as MeasurerId;
    use openrelay_registry_client::measurements::MeasurementsPage;
    use openrelay_testkit::measure::{one_epoch, record_settled, relay_id as relay};
    use openrelay_types::KeyPin;

    let dir = tempfile::tempdir().unwrap();
    let keys = validator_keys(dir.path(), 3);
    let state_dir = dir.path().join("registry");
    // One settled epoch, measured by three validators: relay 0 (operator
    // 0) carries a tenth of its 1 Gbit/s, relay 1 (operator 0) 900 Mbit/s,
    // relay 2 (operator 1) is unreachable.
    let outcome = one_epoch(&[(0, Some(100_000_000)), (1, Some(900_000_000)), (2, None)]);
    let ended_at = unix_now() - 30;
    record_settled(&state_dir.join("registry.redb"), &outcome, ended_at);
    let (registry_proc, listen, key) = start_registry(dir.path(), &state_dir, &keys, "");
    let registry = RegistryClient::new(listen.parse().unwrap(), key.parse().unwrap());
    publish(std::slice::from_ref(&registry), 0, 0, RelayRole::Ingress).await;
    publish(std::slice::from_ref(&registry), 1, 0, RelayRole::Egress).await;
    publish(std::slice::from_ref(&registry), 2, 1, RelayRole::Ingress).await;

    // The JSON: everything, one relay, an operator's relays.
    let page = |path: String| {
        let registry = registry.clone();
        async move {
            let (status, body) = registry
                .call(http::Method::GET, &path, Vec::new())
                .await
                .unwrap();
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            serde_json::from_slice::<MeasurementsPage>(&body).unwrap()
        }
    };
    let all = page(paths::MEASUREMENTS.to_owned()).await;
    assert_eq!(all.epoch, Some(1));
    assert_eq!(all.epoch_ended_at, Some(ended_at));
    assert_eq!(all.next_after, None);
    assert_eq!(
        all.explanations,
        outcome.explanations.values().cloned().collect::<Vec<_>>()
    );
    let relay_pin = |r: u8| KeyPin::from_ed25519(relay_key(r).id().to_bytes());
    let operator_pin = |o: u8| KeyPin::from_ed25519(operator_key(o).id().to_bytes());
    let one = page(format!("{}?relay={}", paths::MEASUREMENTS, relay_pin(2))).await;
    assert_eq!(one.explanations.len(), 1);
    assert_eq!(one.explanations[0].relay, relay(2));
    let op0 = page(format!(
        "{}?operator={}",
        paths::MEASUREMENTS,
        operator_pin(0)
    ))
    .await;
    let listed: Vec<_> = op0.explanations.iter().map(|e| e.relay).collect();
    let mut expected = vec![relay(0), relay(1)];
    expected.sort();
    assert_eq!(listed, expected);
    // Bad queries: 400 naming the parameter.
    for bad in ["?relay=nope", "?limit=10", "?relay=x&operator=y"] {
        let (status, body) = registry
            .call(
                http::Method::GET,
                &format!("{}{bad}", paths::MEASUREMENTS),
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(status, 400, "{bad}: {}", String::from_utf8_lossy(&body));
    }

    // The operator's command, as text and as the registry's JSON.
    let operator = |extra: &[&str]| {
        let mut args = vec![
            "operator".to_owned(),
            "measurements".to_owned(),
            "--registry".to_owned(),
            listen.clone(),
            "--registry-key".to_owned(),
            key.clone(),
            "--operator-key".to_owned(),
            operator_pin(0).to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let out = std::process::Command::new(kit::BIN)
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = operator(&[]);
    assert!(text.contains("measured  epoch 1"), "{text}");
    let r0 = relay_pin(0).to_string();
    let at = text.find(&format!("relay     {r0} up")).expect(&text);
    let block = &text[at..];
    let block = &block[..block[1..].find("\nrelay ").map_or(block.len(), |i| i + 1)];
    // Relay 0: the low-median of 101, 102 and 103 Mbit/s, failing against
    // 800 Mbit/s (20 % tolerance), one more failing epoch slashes (N = 2).
    assert!(block.contains("FAILED: aggregate 102.0 Mbit/s"), "{block}");
    assert!(
        block.contains("passes at 800.0 Mbit/s (20.0 % below"),
        "{block}"
    );
    for m in 1..=3u8 {
        let line = format!(
            "validator {} weight 1000: {}.0 Mbit/s rtt 2.5 ms, echo 12/12",
            MeasurerId([m; 32]),
            100 + u32::from(m)
        );
        assert!(block.contains(&line), "{line} in {block}");
    }
    assert!(
        block.contains("1 failing epoch(s) in a row; slashed after 1 more"),
        "{block}"
    );
    assert!(
        block.contains("weight: 102.0 Mbit/s (measured 102.0 Mbit/s in epoch 1)"),
        "{block}"
    );
    // Relay 2 is another operator's: not shown.
    assert!(!text.contains(&relay_pin(2).to_string()), "{text}");
    let json: MeasurementsPage = serde_json::from_str(operator(&["--json"]).trim()).unwrap();
    assert_eq!(json.explanations, op0.explanations);
    // One relay of another operator, explained as down.
    let out = std::process::Command::new(kit::BIN)
        .args([
            "operator",
            "measurements",
            "--registry",
            &listen,
            "--registry-key",
            &key,
            "--relay",
            &relay_pin(2).to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("DOWN: not listed"), "{text}");
    assert!(text.contains("unreachable, echo 0/12"), "{text}");
    drop(registry_proc);
}
