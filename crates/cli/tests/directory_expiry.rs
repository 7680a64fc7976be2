//! Issue 11, item 6: a client whose directory expires stops building paths
//! with a clear error, instead of using a stale relay list forever, and
//! recovers by itself once a fresh directory arrives. The devnet's registry
//! is replaced by an impostor holding its key (as in `directory_attacks.rs`)
//! that serves a properly signed directory valid for only a few seconds, then
//! nothing newer until the test lets a fresh one through.
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;
use openrelay_testkit::registry as registry_fixtures;

use std::time::{Duration, Instant};

use kit::{Devnet, fetch, servers};
use openrelay_types::unix_now;
use registry_fixtures::{reissued, take_over_registry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain request through the client's HTTP proxy: the whole answer.
async fn through_http_proxy(proxy: std::net::SocketAddr, url: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let host = url.trim_start_matches("http://").split('/').next().unwrap();
    tcp.write_all(
        format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

async fn wait_for(devnet: &Devnet, what: &str, count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while devnet.log("client").matches(what).count() < count {
        assert!(Instant::now() < deadline, "waited in vain for {what:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Serves `directory`, waits until the client took it and downloads `url`
/// through it.
async fn serve_and_use(
    devnet: &Devnet,
    taken: &registry_fixtures::TakenOver,
    directory: Vec<u8>,
    url: &str,
    what: &str,
) {
    let updates = devnet.log("client").matches("directory updated").count();
    taken.impostor.serve(directory);
    wait_for(
        devnet,
        "directory updated",
        updates + 1,
        Duration::from_secs(30),
    )
    .await;
    let socks = devnet.socks.to_string();
    fetch(&["--socks5-hostname", &socks], url, Duration::from_secs(10))
        .await
        .assert_ok(what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_directory_stops_paths_with_a_clear_error_until_a_fresh_one_arrives() {
    let devnet = Devnet::start(3);
    let socks = devnet.socks.to_string();
    let url = format!("http://localhost:{}/bytes/10000", servers().http.port());
    devnet.client_refreshed_directory().await;

    // Take the registry's place, with its key, at its address.
    let taken = take_over_registry(&devnet).await;
    let (current, cache) = (&taken.current, &taken.cache);
    let signers = [&taken.validators[0], &taken.validators[1]];

    // A genuine directory valid for 12 more seconds.
    let now = unix_now();
    let short = reissued(current, &signers, current.sequence() + 1, now, now + 12);
    serve_and_use(&devnet, &taken, short, &url, "on the short-lived directory").await;

    // It expires and nothing newer comes: no path for traffic, and the
    // answer says why and what to do.
    let expired_at = now + 12;
    while unix_now() <= expired_at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let answer = through_http_proxy(devnet.http, &url).await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        answer.contains("the relay directory expired")
            && answer.contains("issued")
            && answer.contains("check the network connection and the registry"),
        "{answer}"
    );
    let socks_try = fetch(
        &["--socks5-hostname", &socks],
        &url,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        socks_try.status != 200,
        "traffic flowed on an expired directory: {socks_try:?}"
    );
    wait_for(
        &devnet,
        "the one in use has expired",
        1,
        Duration::from_secs(20),
    )
    .await;

    // A fresh directory arrives (fetched through the expired one's relays):
    // traffic flows again without anyone touching the client.
    let now = unix_now();
    let fresh = reissued(current, &signers, current.sequence() + 2, now, now + 3600);
    serve_and_use(
        &devnet,
        &taken,
        fresh.clone(),
        &url,
        "after a fresh directory arrived",
    )
    .await;
    assert_eq!(std::fs::read(cache).unwrap(), fresh);
}
