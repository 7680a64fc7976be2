//! A TCP tunnel in a CONNECT stream (RFC 9114 §4.4) between two real
//! guarded HTTP/3 peers on quinn, `tcp_pump` on both ends as the client and
//! the egress run it: a bulk transfer each way at once must arrive
//! byte-exact. It crosses both send paths (large reads lent to quinn
//! without a copy, small ones copied) and the vectored writes to TCP, and
//! each peer's frame guard checks every DATA frame the other one wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use openrelay_transport::endpoint::{self, OUTER_MTU, Tuning};
use openrelay_transport::h3guard::{self, RequestDeadlines};
use openrelay_transport::identity::Identity;
use openrelay_transport::tcp_pump::{PumpCounters, pump};
use openrelay_transport::udp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(60);

/// `len` bytes no shift or repetition of a block would reproduce.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Writes `out` in writes of varying size (small ones take the pump's copy
/// path, large ones its lending path), ends its half, and reads all that
/// comes back.
async fn exchange(tcp: TcpStream, out: Vec<u8>) -> Vec<u8> {
    let (mut read, mut write) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let mut at = 0;
        let mut size = 1;
        while at < out.len() {
            let end = (at + size).min(out.len());
            write.write_all(&out[at..end]).await.unwrap();
            at = end;
            size = if size > 200_000 { 1 } else { size * 3 };
        }
        write.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    read.read_to_end(&mut back).await.unwrap();
    writer.await.unwrap();
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_carries_bulk_both_ways_byte_exact() {
    let upload = pattern(1, 24 << 20);
    let download = pattern(2, 24 << 20);

    // The destination: sends `download`, returns what it received.
    let origin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin_addr = origin.local_addr().unwrap();
    let origin_task = tokio::spawn({
        let download = download.clone();
        async move {
            let (tcp, _) = origin.accept().await.unwrap();
            exchange(tcp, download).await
        }
    });

    // The egress: one CONNECT, pumped to the destination.
    let identity = Identity::generate().unwrap();
    let tuning = Tuning::relay(Duration::from_secs(30), OUTER_MTU);
    let config = endpoint::server_config(&identity, &tuning).unwrap();
    let server = udp::endpoint(SocketAddr::from(([127, 0, 0, 1], 0)), Some(config)).unwrap();
    let server_addr = server.local_addr().unwrap();
    let server_task = tokio::spawn(async move {
        let connection = server.accept().await.unwrap().await.unwrap();
        let deadlines = RequestDeadlines::new(Duration::from_secs(10));
        let mut h3 = h3guard::server(&connection, deadlines).await.unwrap();
        let resolver = h3.accept().await.unwrap().unwrap();
        let (request, mut stream) = resolver.resolve_request().await.unwrap();
        assert_eq!(request.method(), http::Method::CONNECT);
        let tcp = TcpStream::connect(origin_addr).await.unwrap();
        let ok = http::Response::builder().status(200).body(()).unwrap();
        stream.send_response(ok).await.unwrap();
        let (send, recv) = stream.split();
        let counters = PumpCounters::default();
        pump(tcp, send, recv, Bytes::new(), &counters, None).await;
        // Keep the connection until the client has read everything.
        let _ = tokio::time::timeout(LIMIT, connection.closed()).await;
        counters
    });

    // The client: the app's TCP connection pumped into the CONNECT stream.
    let quic = udp::endpoint(udp::local_for(None, server_addr), None).unwrap();
    let tuning = Tuning::client(Duration::from_secs(10), Duration::from_secs(2), OUTER_MTU);
    let config = endpoint::client_config(identity.pin(), &tuning).unwrap();
    let connection = quic
        .connect_with(config, server_addr, "127.0.0.1")
        .unwrap()
        .await
        .unwrap();
    let (mut driver, mut requests) = h3guard::client(&connection).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    let request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("{origin_addr}"))
        .body(())
        .unwrap();
    let mut stream = requests.send_request(request).await.unwrap();
    let response = stream.recv_response().await.unwrap();
    assert_eq!(response.status(), 200);
    let app = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = app.local_addr().unwrap();
    let app_task = tokio::spawn({
        let upload = upload.clone();
        async move { exchange(TcpStream::connect(app_addr).await.unwrap(), upload).await }
    });
    let (tcp, _) = app.accept().await.unwrap();
    let (send, recv) = stream.split();
    let client_counters = PumpCounters::default();
    tokio::time::timeout(
        LIMIT,
        pump(tcp, send, recv, Bytes::new(), &client_counters, None),
    )
    .await
    .expect("the client's pump did not finish");

    let received_by_app = tokio::time::timeout(LIMIT, app_task)
        .await
        .unwrap()
        .unwrap();
    let received_by_origin = tokio::time::timeout(LIMIT, origin_task)
        .await
        .unwrap()
        .unwrap();
    // Compared by length first, then content, so a failure prints little.
    assert_eq!(received_by_app.len(), download.len());
    assert!(received_by_app == download, "the download differs");
    assert_eq!(received_by_origin.len(), upload.len());
    assert!(received_by_origin == upload, "the upload differs");

    connection.close(0u32.into(), b"done");
    let server_counters = tokio::time::timeout(LIMIT, server_task)
        .await
        .unwrap()
        .unwrap();
    driver.abort();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        server_counters.from_tcp.load(Relaxed),
        download.len() as u64
    );
    assert_eq!(server_counters.to_tcp.load(Relaxed), upload.len() as u64);
    assert_eq!(client_counters.from_tcp.load(Relaxed), upload.len() as u64);
    assert_eq!(client_counters.to_tcp.load(Relaxed), download.len() as u64);
}
