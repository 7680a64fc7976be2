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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
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
