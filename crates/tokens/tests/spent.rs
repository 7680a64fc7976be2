//! The double-spend stores: a token is admitted once, entries expire with
//! their key epoch, and two relays sharing one Redis admit a token once.
#![allow(clippy::unwrap_used)]

use openrelay_tokens::spent::{RedbSpentTokens, RedisSpentTokens};
use openrelay_tokens::testing::RedisServer;
use openrelay_tokens::{SpendKey, SpentTokens};

fn key(n: u8) -> SpendKey {
    SpendKey([n; 32])
}

async fn spends_once(store: &dyn SpentTokens, now: u64) {
    assert!(store.spend(key(1), now + 100, now).await.unwrap());
    assert!(!store.spend(key(1), now + 100, now).await.unwrap());
    assert!(!store.spend(key(1), now + 100, now + 50).await.unwrap());
    assert!(store.spend(key(2), now + 100, now).await.unwrap());
}

#[tokio::test]
async fn redb_store_spends_once_survives_restart_and_forgets_expired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spent.redb");
    let store = RedbSpentTokens::open(&path).unwrap();
    spends_once(&store, 1000).await;
    assert_eq!(store.len().unwrap(), 2);
    drop(store);

    let store = RedbSpentTokens::open(&path).unwrap();
    assert!(
        !store.spend(key(2), 1100, 1010).await.unwrap(),
        "forgot a spend across restart"
    );
    // After the epoch the entries go: pruned in passing, or all at once.
    for n in 10..20 {
        assert!(store.spend(key(n), 5000, 2000).await.unwrap());
    }
    assert_eq!(store.len().unwrap(), 10, "expired entries pruned on spend");
    assert_eq!(store.prune(6000).unwrap(), 10);
    assert!(store.is_empty().unwrap());
}

#[tokio::test]
async fn redis_store_is_shared_and_expires() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let now = openrelay_types::unix_now();
    let a = RedisSpentTokens::connect(&server.url()).await.unwrap();
    let b = RedisSpentTokens::connect(&server.url()).await.unwrap();
    spends_once(&a, now).await;
    assert!(
        !b.spend(key(1), now + 100, now).await.unwrap(),
        "second relay admitted a spent token"
    );
    // Racing relays: exactly one wins.
    let (x, y) = tokio::join!(
        a.spend(key(3), now + 100, now),
        b.spend(key(3), now + 100, now)
    );
    assert!(x.unwrap() ^ y.unwrap());
    // Entries carry their epoch's end as expiry, so Redis drops them.
    assert!(a.spend(key(4), now + 2, now).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert!(
        b.spend(key(4), now + 100, now + 3).await.unwrap(),
        "expired entry still held"
    );
    assert!(
        !a.spend(key(5), now, now).await.unwrap(),
        "an expired key admits nothing"
    );
}

/// A Redis that stops answering (SIGSTOP: its sockets stay open, nothing
/// is read) costs each spend at most the store's response timeout, as an
/// error (the relay answers 503), both on a connection made before and on
/// a first connection; once it runs again (SIGCONT) spends succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_fails_spends_within_the_timeout_and_recovers() {
    use openrelay_tokens::spent::REDIS_RESPONSE_TIMEOUT;
    use std::time::{Duration, Instant};

    let Some(server) = RedisServer::start() else {
        return;
    };
    let now = openrelay_types::unix_now();
    let connected = RedisSpentTokens::connect(&server.url()).await.unwrap();
    assert!(connected.spend(key(1), now + 100, now).await.unwrap());
    let fresh = RedisSpentTokens::new(&server.url()).unwrap();

    server.pause();
    // The bound under test, with room for a loaded machine; a hang would
    // run into the outer limit.
    let bound = REDIS_RESPONSE_TIMEOUT + Duration::from_secs(2);
    for (what, store) in [("connected", &connected), ("first use", &fresh)] {
        for n in 2..5 {
            let started = Instant::now();
            let spend =
                tokio::time::timeout(Duration::from_secs(30), store.spend(key(n), now + 100, now))
                    .await;
            let elapsed = started.elapsed();
            assert!(
                matches!(spend, Ok(Err(_))),
                "{what}: a stopped Redis must fail the spend, got {spend:?} after {elapsed:?}"
            );
            assert!(elapsed <= bound, "{what}: failed only after {elapsed:?}");
        }
    }

    server.resume();
    // Key 9 is new to the first store asked, spent for the second.
    for (what, store, new) in [
        ("connected", &connected, true),
        ("first use", &fresh, false),
    ] {
        let deadline = Instant::now() + Duration::from_secs(10);
        let answer = loop {
            match store.spend(key(9), now + 100, now).await {
                Ok(fresh_spend) => break fresh_spend,
                Err(e) => {
                    assert!(Instant::now() < deadline, "{what}: no recovery: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert_eq!(answer, new, "{what}: spend after recovery");
        assert!(
            !store.spend(key(1), now + 100, now).await.unwrap(),
            "{what}: the spend made before the stop is still held"
        );
    }
}

/// A spend entry never outlives the longest key epoch, whatever expiry it
/// is given: Redis refuses `EXAT` past its range (it answered an error for
/// `u64::MAX`, so the token was refused), and an embedded entry that never
/// expires would never be pruned.
#[tokio::test]
async fn spend_entries_expire_within_the_longest_key_lifetime() {
    use openrelay_tokens::spent::MAX_ENTRY_SECS;
    let now = openrelay_types::unix_now();
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbSpentTokens::open(&dir.path().join("spent.redb")).unwrap();
    assert!(redb.spend(key(1), u64::MAX, now).await.unwrap());
    assert!(!redb.spend(key(1), u64::MAX, now + 1).await.unwrap());
    let horizon = now + MAX_ENTRY_SECS;
    assert_eq!(redb.prune(horizon - 1).unwrap(), 0);
    assert_eq!(redb.prune(horizon).unwrap(), 1, "entry never pruned");

    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = RedisSpentTokens::connect(&server.url()).await.unwrap();
    assert!(
        redis.spend(key(2), u64::MAX, now).await.unwrap(),
        "a fresh token refused"
    );
    assert!(!redis.spend(key(2), u64::MAX, now).await.unwrap());
    // TTL over RESP's inline command form: the entry ends within the bound.
    let ttl: i64 = {
        use std::io::{Read, Write};
        let addr = server
            .url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(stream, "TTL openrelay:spent:{}\r\n", "02".repeat(32)).unwrap();
        let mut answer = [0u8; 32];
        let n = stream.read(&mut answer).unwrap();
        let answer = std::str::from_utf8(&answer[..n]).unwrap();
        answer.trim().trim_start_matches(':').parse().unwrap()
    };
    assert!(
        (1..=i64::try_from(MAX_ENTRY_SECS).unwrap()).contains(&ttl),
        "ttl {ttl}"
    );
}

/// Runs every task of `tasks` at once (each spends its keys in order, all
/// tasks concurrently on a multi-threaded runtime) and counts, per key, the
/// spends that were admitted.
fn admitted_per_key(
    store: std::sync::Arc<dyn SpentTokens>,
    tasks: Vec<Vec<u8>>,
    now: u64,
) -> std::collections::HashMap<u8, usize> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let handles: Vec<_> = tasks
            .into_iter()
            .map(|keys| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move {
                    let mut admitted = Vec::new();
                    for n in keys {
                        if store.spend(key(n), now + 100, now).await.unwrap() {
                            admitted.push(n);
                        }
                    }
                    admitted
                })
            })
            .collect();
        let mut counts = std::collections::HashMap::new();
        for handle in handles {
            for n in handle.await.unwrap() {
                *counts.entry(n).or_insert(0) += 1;
            }
        }
        counts
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Group commit: many tasks spending overlapping sets of tokens at once
    /// (so batches hold several spends, duplicates among them) admit each
    /// token exactly once, and every admitted spend is on disk: a reopened
    /// store refuses them all.
    #[test]
    fn concurrent_redb_spends_admit_each_token_exactly_once(
        tasks in proptest::collection::vec(proptest::collection::vec(0u8..48, 1..40), 2..24),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spent.redb");
        let distinct: std::collections::BTreeSet<u8> = tasks.iter().flatten().copied().collect();
        let store = RedbSpentTokens::open(&path).unwrap();
        let counts = admitted_per_key(std::sync::Arc::new(store.clone()), tasks, 1000);
        for n in &distinct {
            proptest::prop_assert_eq!(counts.get(n).copied(), Some(1), "token {}", n);
        }
        proptest::prop_assert_eq!(counts.len(), distinct.len());
        proptest::prop_assert_eq!(store.len().unwrap(), distinct.len() as u64);
        drop(store);

        let reopened = RedbSpentTokens::open(&path).unwrap();
        let again = admitted_per_key(
            std::sync::Arc::new(reopened),
            vec![distinct.iter().copied().collect()],
            1001,
        );
        proptest::prop_assert!(again.is_empty(), "admitted again after restart: {:?}", again);
    }
}

/// Spends of one token racing in the same instant, so that they share a
/// batch: one admitted, and the same through a shared Redis.
#[test]
fn racing_spends_of_one_token_admit_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let redb = RedbSpentTokens::open(&dir.path().join("spent.redb")).unwrap();
    let tasks = vec![vec![7u8; 4]; 64];
    let counts = admitted_per_key(std::sync::Arc::new(redb), tasks.clone(), 1000);
    assert_eq!(counts.get(&7), Some(&1), "redb");

    let Some(server) = RedisServer::start() else {
        return;
    };
    let redis = RedisSpentTokens::new(&server.url()).unwrap();
    let now = openrelay_types::unix_now();
    let counts = admitted_per_key(std::sync::Arc::new(redis), tasks, now);
    assert_eq!(counts.get(&7), Some(&1), "redis");
}
