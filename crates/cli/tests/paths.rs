//! Paths over time, in a running devnet: new flows rotate to a fresh path
//! while open flows finish on theirs, and per-site isolation gives sites
//! different egress relays and keeps each site on its own.
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use kit::{Devnet, assert_bytes_eq, content, fetch, http_server_at, servers};

/// Waits until `done` holds for the client's log, or panics with `what`.
async fn wait_for_log(devnet: &Devnet, what: &str, done: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&devnet.log("client")) {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_flows_rotate_to_a_fresh_path_while_open_flows_finish() {
    let devnet = Devnet::start_with_args(3, "debug", &["--rotation-secs", "2"]);
    let socks = devnet.socks.to_string();
    let port = servers().http.port();
    // Paced by the server: about six seconds, so it spans several rotations.
    let len = 1_000_000;
    let slow = tokio::spawn(fetch(
        &["--socks5-hostname", &socks],
        &format!("http://localhost:{port}/slow/{len}"),
        Duration::from_secs(40),
    ));
    wait_for_log(&devnet, "the path never rotated", |log| {
        log.contains("path retired") && log.matches("path established").count() >= 2
    })
    .await;
    // New flows take the new path...
    fetch(
        &["--socks5-hostname", &socks],
        &format!("http://localhost:{port}/bytes/100000"),
        Duration::from_secs(10),
    )
    .await
    .assert_ok("a flow after rotation");
    // ... and the flow opened before rotation finishes, byte-exact, on the
    // path that was retired under it.
    let slow = slow.await.unwrap();
    slow.assert_ok("the flow that spans the rotation");
    assert_bytes_eq(
        &slow.body,
        &content(0, len),
        "the flow that spans the rotation",
    );
    // A retired path is closed once its flows are done.
    wait_for_log(&devnet, "a retired path was never closed", |log| {
        log.contains("retired path closed")
    })
    .await;
    let log = devnet.log("client");
    assert!(
        !log.contains("relay failed"),
        "rotation blamed a relay:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_site_isolation_gives_sites_their_own_egress_and_keeps_it() {
    // Four egresses: the client's own directory fetches are a site too.
    let devnet = Devnet::start_with_args(4, "debug", &["--per-site"]);
    let socks = devnet.socks.to_string();
    let mut sites = Vec::new();
    for host in 11..=13 {
        sites.push(http_server_at(Ipv4Addr::new(127, 0, 0, host)).await);
    }
    // `/ip` answers with the address that connected: the egress relay's.
    let egress_of = |site: std::net::SocketAddr| {
        let socks = socks.clone();
        async move {
            let seen = fetch(
                &["--socks5-hostname", &socks],
                &format!("http://{site}/ip"),
                Duration::from_secs(10),
            )
            .await;
            seen.assert_ok("a flow to a site");
            String::from_utf8(seen.body).unwrap()
        }
    };
    let mut first = Vec::new();
    for site in &sites {
        first.push(egress_of(*site).await);
    }
    assert!(
        first.iter().all(|ip| ip.starts_with("127.0.2.")),
        "destinations must see egress relays: {first:?}"
    );
    let distinct: BTreeSet<&String> = first.iter().collect();
    assert_eq!(distinct.len(), 3, "sites shared an egress: {first:?}");
    // Each site keeps its egress for its next flows.
    for (site, egress) in sites.iter().zip(&first) {
        for _ in 0..2 {
            assert_eq!(&egress_of(*site).await, egress, "a site changed egress");
        }
    }
    let status = devnet.status();
    assert!(
        status["live_paths"].as_u64().unwrap() >= 3,
        "one path per site: {status}"
    );
}
