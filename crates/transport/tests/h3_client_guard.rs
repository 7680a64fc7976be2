//! Our HTTP/3 clients facing a malicious server (item 1 of issue 11, the
//! client side): a server that answers with a HEADERS frame declaring 4 GiB
//! and streams zeros must get an error back quickly, not our memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openrelay_transport::call::PinnedConnection;
use openrelay_transport::endpoint::OUTER_MTU;
use openrelay_transport::testing::{EndlessHeadServer, resident_memory};
use openrelay_transport::udp;
use openrelay_wire::h3frame::code;

/// What the server may push before giving up on a client that never stops it.
const SERVER_CAP: u64 = 512 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_response_head_is_an_error_with_bounded_memory() {
    let server = EndlessHeadServer::start(SERVER_CAP).unwrap();
    let me = std::process::id();
    let before = resident_memory(me).unwrap();
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = tokio::spawn({
        let peak = Arc::clone(&peak);
        async move {
            loop {
                if let Some(rss) = resident_memory(me) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    let quic = udp::endpoint(udp::local_for(None, server.addr), None).unwrap();
    let connection = PinnedConnection::connect(&quic, server.addr, server.pin, OUTER_MTU)
        .await
        .unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        connection.request(http::Method::GET, "/", &[], Vec::new()),
    )
    .await;
    sampler.abort();
    let written = server.written.load(Ordering::Relaxed);
    let growth = peak.load(Ordering::Relaxed).saturating_sub(before);
    eprintln!(
        "client RSS before {} KiB, peak growth {} KiB; server wrote {} KiB of head",
        before / 1024,
        growth / 1024,
        written / 1024
    );
    let Ok(result) = answer else {
        panic!(
            "the request did not end within 20 s (grew {} KiB)",
            growth / 1024
        );
    };
    assert!(result.is_err(), "an endless head is an error: {result:?}");
    assert!(
        growth < 32 << 20,
        "the client's memory grew by {} KiB",
        growth / 1024
    );
    // The client stopped the stream with H3_EXCESSIVE_LOAD (RFC 9114 §8.1)
    // after reading at most the frame header.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        server.stops.lock().unwrap().as_slice(),
        &[code::H3_EXCESSIVE_LOAD]
    );
    assert!(
        written < 1 << 20,
        "server wrote {written} bytes before the stop"
    );
}
