//! An idle connect-udp bridge holds no receive buffer of its own (issue 11
//! item 3): the heap a bridge allocates once it runs, measured with a
//! counting global allocator, stays far below one receive buffer per flow.
//! Memory targets for whole relays are benchmarks (`openrelay-abuse idle`,
//! docs/BENCHMARKS.md); this only proves the structural property.
//!
//! One test per binary: the allocator counts the whole process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use openrelay_transport::datagrams::DatagramRouter;
use openrelay_transport::endpoint::{self, OUTER_MTU, Tuning};
use openrelay_transport::identity::Identity;
use openrelay_transport::udp_bridge::{self, BridgeCounters};
use openrelay_transport::{h3guard, h3util, server, udp};
use openrelay_wire::target::Target;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::sync::watch;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Flows bridged at once.
const FLOWS: usize = 200;
/// What one idle bridge may allocate: its route, sink, clock and datagram
/// header, not a 64 KiB receive buffer.
const BOUND_PER_FLOW: isize = 4 << 10;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Bytes allocated and not freed since `region` started.
fn held(region: &Region<'_, System>) -> isize {
    let change = region.change();
    change.bytes_allocated as isize - change.bytes_deallocated as isize + change.bytes_reallocated
}

#[tokio::test(flavor = "current_thread")]
async fn idle_bridges_hold_no_receive_buffer() {
    let identity = Identity::generate().unwrap();
    let mut tuning = Tuning::relay(Duration::from_secs(30), OUTER_MTU);
    tuning.max_concurrent_bidi_streams = 2 * FLOWS as u32;
    let server_endpoint = udp::endpoint(
        loopback(),
        Some(endpoint::server_config(&identity, &tuning).unwrap()),
    )
    .unwrap();
    let server_addr = server_endpoint.local_addr().unwrap();
    // Where the bridged sockets point: nobody sends from there.
    let sink = udp::bind(loopback()).unwrap();
    let sink_addr = sink.local_addr().unwrap();

    let ready = Arc::new(AtomicUsize::new(0));
    let (go, go_signal) = watch::channel(false);
    let router = DatagramRouter::new();
    let server = tokio::spawn({
        let (ready, router) = (Arc::clone(&ready), Arc::clone(&router));
        async move {
            let connection = server_endpoint.accept().await.unwrap().await.unwrap();
            let mut h3 = h3guard::server(
                &connection,
                h3guard::RequestDeadlines::new(Duration::from_secs(600)),
            )
            .await
            .unwrap();
            while let Ok(Some(resolver)) = h3.accept().await {
                let (ready, router, connection) =
                    (Arc::clone(&ready), Arc::clone(&router), connection.clone());
                let mut go = go_signal.clone();
                tokio::spawn(async move {
                    let (_request, stream) = resolver.resolve_request().await.unwrap();
                    let mut stream: server::ServerStream = Box::new(stream);
                    let socket = udp::bind(loopback()).unwrap();
                    socket.connect(sink_addr).await.unwrap();
                    assert!(server::respond_ok(&mut stream, true).await);
                    ready.fetch_add(1, Ordering::SeqCst);
                    let _ = go.wait_for(|go| *go).await;
                    let _ = udp_bridge::run(
                        &router,
                        connection,
                        &mut stream,
                        Arc::new(socket),
                        Duration::from_secs(600),
                        Arc::new(BridgeCounters::default()),
                        None,
                        std::future::pending(),
                    )
                    .await;
                });
            }
            drop(h3);
        }
    });

    let client_endpoint = udp::endpoint(loopback(), None).unwrap();
    let client_tuning = Tuning::client(Duration::from_secs(30), Duration::from_secs(5), OUTER_MTU);
    let connection = client_endpoint
        .connect_with(
            endpoint::client_config(identity.pin(), &client_tuning).unwrap(),
            server_addr,
            "127.0.0.1",
        )
        .unwrap()
        .await
        .unwrap();
    let (mut driver, mut requests) = h3guard::client(&connection).await.unwrap();
    let _driver = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    assert!(h3util::wait_for_datagram_support(&requests, Duration::from_secs(5)).await);
    let mut streams = Vec::new();
    for _ in 0..FLOWS {
        let request = h3util::connect_udp_request(
            &server_addr.to_string(),
            &Target::from_socket_addr(sink_addr),
        )
        .unwrap();
        let mut stream = requests.send_request(request).await.unwrap();
        let response = stream.recv_response().await.unwrap();
        assert!(response.status().is_success());
        streams.push(stream);
    }
    while ready.load(Ordering::SeqCst) < FLOWS {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Quiet: nothing crosses the connection from here on.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let region = Region::new(GLOBAL);
    go.send(true).unwrap();
    while router.len() < FLOWS {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Every bridge has reached its first wait for the socket.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let per_flow = held(&region) / FLOWS as isize;
    assert!(
        per_flow < BOUND_PER_FLOW,
        "an idle bridge holds {per_flow} bytes of heap (bound {BOUND_PER_FLOW})"
    );
    drop(streams);
    server.abort();
}
