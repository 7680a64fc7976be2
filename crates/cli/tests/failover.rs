//! Failover: a relay process of the path in use is killed (SIGKILL, so it
//! says goodbye to no one); a flow in flight fails cleanly instead of hanging,
//! and a new download started right after the kill succeeds through another
//! path within 5 s, without user action.
//!
//! These tests measure time, so they live in their own test binary, away
//! from the bulk-traffic tests, and take a lock so that `cargo test` runs them
//! one at a time (under nextest each test is its own process anyway).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use openrelay_testkit as kit;

use std::time::{Duration, Instant};

use kit::{Devnet, assert_bytes_eq, content, fetch, servers};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The requirement: new flows work again this soon after a relay dies.
const RECOVERY: Duration = Duration::from_secs(5);
/// A flow in flight must have ended (with an error) this soon after the kill.
const IN_FLIGHT_END: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Victim {
    Ingress,
    Egress,
}

async fn kill_relay_in_use(victim: Victim) {
    let _serial = SERIAL.lock().await;
    let devnet = Devnet::start(3);
    let port = servers().http.port();
    let socks = devnet.socks.to_string();
    let proxy = ["--socks5-hostname", socks.as_str()];

    // The path works before the kill.
    let warm = fetch(
        &proxy,
        &format!("http://localhost:{port}/hello"),
        Duration::from_secs(20),
    )
    .await;
    warm.assert_ok("before the kill");

    // A download in flight: 8 MiB paced by the server at ~160 KB/s cannot
    // finish before the kill, so it must end in an error.
    let in_flight = tokio::spawn(fetch(
        &proxy,
        &format!("http://localhost:{port}/slow/{}", 8 << 20),
        Duration::from_secs(60),
    ));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!in_flight.is_finished(), "the slow download ended early");

    let (ingress, egress) = devnet.current_path();
    let name = match victim {
        Victim::Ingress => ingress,
        Victim::Egress => egress,
    };
    let pid = devnet.component_pid(&name);
    assert!(kit::send_signal(pid, "KILL"), "cannot kill {name}");
    let killed = Instant::now();

    // A new download started right after the kill, allowed 5 s in all
    // (curl's --max-time), succeeds byte-exact.
    let fresh = fetch(
        &["--socks5-hostname", &socks, "--max-time", "5"],
        &format!("http://localhost:{port}/bytes/{}/7", 1 << 20),
        Duration::from_secs(10),
    )
    .await;
    let recovered_in = killed.elapsed();
    fresh.assert_ok(&format!("new download after killing {name}"));
    assert_bytes_eq(&fresh.body, &content(7, 1 << 20), "new download");
    assert!(
        recovered_in <= RECOVERY + Duration::from_millis(500),
        "new download after killing {name} took {recovered_in:?}"
    );

    // The flow in flight ended with an error, not a hang.
    let remaining = IN_FLIGHT_END.saturating_sub(killed.elapsed());
    let ended = tokio::time::timeout(remaining, in_flight)
        .await
        .unwrap_or_else(|_| {
            panic!("the download in flight still runs {IN_FLIGHT_END:?} after the kill")
        })
        .unwrap();
    assert!(
        ended.exit.is_some_and(|c| c != 0) && ended.body.len() < 8 << 20,
        "the download in flight must fail: {ended:?}"
    );

    // Later downloads keep working, on a path without the dead relay.
    let after = fetch(
        &proxy,
        &format!("http://127.0.0.1:{port}/bytes/{}/8", 1 << 20),
        Duration::from_secs(20),
    )
    .await;
    after.assert_ok("a later download");
    assert_bytes_eq(&after.body, &content(8, 1 << 20), "later download");
    let log = devnet.log("client");
    let switched = kit::lines_with(&log, "relay failed; switching path");
    assert!(
        switched
            .iter()
            .any(|l| l.contains(&format!("relay={name}"))),
        "client.log blames {name}: {switched:?}"
    );
    let (new_ingress, new_egress) = devnet.current_path();
    assert!(
        new_ingress != name && new_egress != name,
        "the new path avoids {name}: ingress={new_ingress} egress={new_egress}"
    );
}

/// The ingress of the path dies: the client notices (idle timeout) and
/// rebuilds through another ingress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_ingress_in_use_fails_over_within_5s() {
    kill_relay_in_use(Victim::Ingress).await;
}

/// The egress of the path dies: the ingress loses it and ends the tunnel,
/// and the client rebuilds through another egress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_egress_in_use_fails_over_within_5s() {
    kill_relay_in_use(Victim::Egress).await;
}
