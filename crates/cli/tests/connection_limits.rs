//! Item 2 of issue 11: connection, stream and time limits on every server,
//! and descriptor exhaustion answered with 503. Each test runs a real relay
//! (or registry) process with a `[limits]` section and attacks it with a
//! raw HTTP/3 client on real sockets.
//!
//! The IPv6 test runs inside a network namespace of its own
//! (`openrelay_testkit::netns::isolated`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use openrelay_testkit as kit;
use openrelay_testkit::standalone;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use openrelay_transport::endpoint::{INNER_MTU, OUTER_MTU};
use openrelay_transport::h3util;
use openrelay_transport::testing::{
    RawClient, RawError, close_code, frame_header, headers_frame, stream_fate,
};
use openrelay_wire::h3frame::{code, frame_type};
use openrelay_wire::target::Target;

/// QUIC's CONNECTION_REFUSED (RFC 9000 §20.1).
const CONNECTION_REFUSED: u64 = 0x02;

fn refused(result: &Result<RawClient, RawError>) -> bool {
    match result {
        Err(RawError::Connection(quinn::ConnectionError::ConnectionClosed(close))) => {
            u64::from(close.error_code) == CONNECTION_REFUSED
        }
        _ => false,
    }
}

async fn connect_from(relay: &standalone::Standalone, from: &str) -> Result<RawClient, RawError> {
    let bind: IpAddr = from.parse().unwrap();
    RawClient::connect(relay.addr, relay.pin, OUTER_MTU, Some(bind)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_count_per_address_and_in_total() {
    let relay = standalone::relay(
        "ingress",
        "[limits]\nmax_connections = 5\nmax_connections_per_address = 3\n",
        "debug",
    );
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(&relay, "127.0.0.2").await.unwrap());
    }
    // The fourth from that address is refused; another address is not.
    assert!(refused(&connect_from(&relay, "127.0.0.2").await));
    // The refusal may come after the handshake (a third connection still
    // completing at the relay): wait until the relay has said so, so that
    // the fourth holds no place below.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !relay.log_text().contains("reason=\"address_full\"") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    held.push(connect_from(&relay, "127.0.0.3").await.unwrap());
    held.push(connect_from(&relay, "127.0.0.4").await.unwrap());
    // Five in all. A sixth from a new address still gets in (fair share):
    // the address holding the most loses its oldest connection.
    match connect_from(&relay, "127.0.0.5").await {
        Ok(client) => held.push(client),
        Err(e) => panic!(
            "a newcomer at a full relay was refused: {e}\n{}",
            relay.log_text()
        ),
    }
    let evicted = held.remove(0);
    assert_eq!(
        close_code(&evicted.connection).await,
        Some(code::H3_EXCESSIVE_LOAD),
        "the top address's oldest connection leaves"
    );
    drop(evicted);
    // Shares are even now (2, 1, 1, 1): the next is refused.
    assert!(refused(&connect_from(&relay, "127.0.0.5").await));
    // A closed connection gives its place back.
    let first = held.remove(0);
    first.connection.close(0u32.into(), b"");
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match connect_from(&relay, "127.0.0.2").await {
            Ok(client) => break held.push(client),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the freed place was not given back: {e}"),
        }
    }
    let log = relay.log_text();
    assert!(
        log.contains("connection refused reason=\"address_full\""),
        "{log}"
    );
    assert!(
        log.contains("connection refused reason=\"server_full\""),
        "{log}"
    );
    assert!(log.contains("connection closed to make room"), "{log}");
}

#[test]
fn an_ipv6_slash_64_is_one_address() {
    // Runs again inside a namespace of its own, where these addresses are
    // local: two of one /64 and one of another.
    let addresses = [
        "fd00:ab::1/128",
        "fd00:ab::10/128",
        "fd00:ab::11/128",
        "fd00:ab:0:1::10/128",
    ];
    let place = kit::netns::isolated(
        "lim",
        "an_ipv6_slash_64_is_one_address",
        &addresses,
        Duration::from_secs(120),
    );
    if let kit::netns::Place::Done = place {
        return;
    }
    // `standalone` listens on 127.0.0.1; this relay listens on the namespace's address.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ingress.toml");
    std::fs::write(
        &config,
        format!(
            "role = \"ingress\"\noperator = \"test\"\nlisten = \"[fd00:ab::1]:0\"\nstate_dir = {:?}\n\
             worker_threads = 1\n[limits]\nmax_connections_per_address = 2\n\
             [ingress]\negress_relays = [\"127.0.0.1:9\"]\n",
            dir.path().join("state")
        ),
    )
    .unwrap();
    let relay = kit::Proc::start(
        &["relay", "--config", config.to_str().unwrap()],
        &dir.path().join("stderr"),
    );
    let addr: SocketAddr = relay.ready_field("listen").parse().unwrap();
    let pin: openrelay_types::KeyPin = relay.ready_field("key").parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcomes = runtime.block_on(async move {
        let connect = |from: &str| {
            let bind: IpAddr = from.parse().unwrap();
            RawClient::connect(addr, pin, OUTER_MTU, Some(bind))
        };
        // Two addresses of one /64 share its two places ...
        let a = connect("fd00:ab::10").await.unwrap();
        let b = connect("fd00:ab::11").await.unwrap();
        let third = connect("fd00:ab::11").await;
        // ... another /64 has its own.
        let other = connect("fd00:ab:0:1::10").await;
        drop((a, b));
        (refused(&third), other.is_ok())
    });
    assert_eq!(
        outcomes,
        (true, true),
        "(same /64 refused, other /64 accepted)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_that_never_completes_is_rejected_after_the_timeout() {
    let relay = standalone::relay(
        "ingress",
        "[limits]\nrequest_head_timeout_secs = 1\n",
        "debug",
    );
    let client = connect_from(&relay, "127.0.0.1").await.unwrap();
    for (what, partial) in [
        // A HEADERS frame of 100 bytes, 10 of them sent.
        ("a partial HEADERS frame", {
            let mut bytes = frame_header(frame_type::HEADERS, 100);
            bytes.extend([0u8; 10]);
            bytes
        }),
        // One byte of a two-byte frame type.
        ("a partial frame header", vec![0x40]),
    ] {
        let started = Instant::now();
        let (mut send, mut recv) = client.request(&partial).await.unwrap();
        let (stopped, reset) = stream_fate(&mut send, &mut recv).await;
        let elapsed = started.elapsed();
        eprintln!("{what}: stopped {stopped:?}, reset {reset:?} after {elapsed:?}");
        // RFC 9114 §4.1.1: not processed, safe to retry.
        assert_eq!(
            (stopped, reset),
            (
                Some(code::H3_REQUEST_REJECTED),
                Some(code::H3_REQUEST_REJECTED)
            ),
            "{what}"
        );
        assert!(
            elapsed >= Duration::from_millis(900),
            "{what}: only after the timeout"
        );
    }
    assert!(relay.log_text().contains("request head timed out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_request_body_is_cut_off() {
    let registry = standalone::registry("[limits]\nrequest_body_timeout_secs = 1\n", "debug");
    let client = RawClient::connect(registry.addr, registry.pin, INNER_MTU, None)
        .await
        .unwrap();
    let mut request = headers_frame(&[
        (":method", "POST"),
        (":scheme", "https"),
        (":authority", "registry.test"),
        (":path", "/v1/descriptors"),
    ]);
    request.extend(frame_header(frame_type::DATA, 1000));
    let (mut send, mut recv) = client.request(&request).await.unwrap();
    let started = Instant::now();
    // One byte every 100 ms: the 1000-byte body would take 100 s.
    let trickle = async {
        loop {
            if let Err(quinn::WriteError::Stopped(code)) = send.write_all(b"x").await {
                return code.into_inner();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let stopped = tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .expect("the body is cut off in time");
    eprintln!("stopped with {stopped:#x} after {:?}", started.elapsed());
    assert_eq!(stopped, code::H3_REQUEST_CANCELLED);
    // The registry still answers the request (it got no complete body).
    let answer = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 16))
        .await
        .unwrap()
        .unwrap();
    assert!(!answer.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_connection_are_bounded() {
    let relay = standalone::relay(
        "ingress",
        "[limits]\nmax_streams_per_connection = 4\nmax_uni_streams_per_connection = 3\n",
        "info",
    );
    let client = connect_from(&relay, "127.0.0.1").await.unwrap();
    // Four request streams whose heads are still arriving hold all four
    // places; a fifth cannot be opened.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            client
                .request(&frame_header(frame_type::HEADERS, 100))
                .await
                .unwrap(),
        );
    }
    let fifth = tokio::time::timeout(Duration::from_secs(1), client.connection.open_bi()).await;
    assert!(fifth.is_err(), "a fifth request stream opened");
    // Unidirectional: the control stream and two streams whose type is
    // still arriving hold all three places.
    let mut uni = Vec::new();
    for _ in 0..2 {
        let mut send = client.connection.open_uni().await.unwrap();
        send.write_all(&[0x40]).await.unwrap();
        uni.push(send);
    }
    let fourth = tokio::time::timeout(Duration::from_secs(1), client.connection.open_uni()).await;
    assert!(fourth.is_err(), "a fourth unidirectional stream opened");
    // A place freed is a place given back.
    let (mut send, _recv) = held.remove(0);
    send.reset(0u32.into()).unwrap();
    let fifth = tokio::time::timeout(Duration::from_secs(5), client.connection.open_bi()).await;
    assert!(
        fifth.is_ok(),
        "the freed request stream place was not given back"
    );
}

fn open_files_limit(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let relay = standalone::relay_under(&["prlimit", "--nofile=256:4096"], "ingress", "", "info");
    assert_eq!(open_files_limit(relay.proc.pid()), "4096 4096");
    assert!(relay.log_text().contains("open_files=4096"));
}

/// Sends requests made by `request` on `requests` until one is refused;
/// returns the open streams and the refusal, checked to be 503 with
/// `Proxy-Status: ...; error=connection_limit_reached` (RFC 9209 §2.3.12).
async fn open_until_refused(
    requests: &mut openrelay_transport::h3guard::ClientRequests,
    request: impl Fn() -> http::Request<()>,
) -> Vec<openrelay_transport::h3guard::ClientStream> {
    let mut open = Vec::new();
    let refusal = loop {
        assert!(open.len() < 100, "64 descriptors never ran out");
        let mut stream = requests.send_request(request()).await.unwrap();
        let response = stream.recv_response().await.unwrap();
        if response.status() != http::StatusCode::OK {
            break response;
        }
        open.push(stream);
    };
    eprintln!("{} opened, then {refusal:?}", open.len());
    assert_eq!(refusal.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    let proxy_status = refusal.headers()["proxy-status"].to_str().unwrap();
    assert!(
        proxy_status.contains("error=connection_limit_reached"),
        "{proxy_status}"
    );
    open
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_out_of_descriptors_answers_503_and_keeps_serving() {
    let egress = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let egress_addr = egress.local_addr().unwrap();
    let relay = standalone::relay_under(
        &["prlimit", "--nofile=64:64"],
        "ingress",
        &format!(
            "[limits]\nmax_streams_per_connection = 200\n\
             [ingress]\negress_relays = [\"{egress_addr}\"]\nmax_tunnels_per_client = 200\n"
        ),
        "info",
    );
    assert_eq!(open_files_limit(relay.proc.pid()), "64 64");
    let (_quic, connection, mut requests) =
        standalone::h3_client(relay.addr, relay.pin, OUTER_MTU).await;
    let target = Target::from_socket_addr(egress_addr);
    let tunnels = open_until_refused(&mut requests, || {
        h3util::connect_udp_request(&relay.addr.to_string(), &target).unwrap()
    })
    .await;
    assert!(kit::is_running(relay.proc.pid()), "the relay keeps running");
    // Descriptors given back are usable again, by another client.
    drop(tunnels);
    connection.close(0u32.into(), b"");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_quic, _connection, mut requests) =
            standalone::h3_client(relay.addr, relay.pin, OUTER_MTU).await;
        let request = h3util::connect_udp_request(&relay.addr.to_string(), &target).unwrap();
        let mut stream = requests.send_request(request).await.unwrap();
        if stream.recv_response().await.unwrap().status() == http::StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no tunnel after the descriptors came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The hard limit kept the soft one where it was.
    assert!(relay.log_text().contains("open_files=64"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_egress_out_of_descriptors_answers_503_and_keeps_serving() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let destination = listener.local_addr().unwrap();
    // Accept and hold every connection.
    let accepted = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let relay = standalone::relay_under(
        &["prlimit", "--nofile=64:64"],
        "egress",
        "[egress]\ndangerously_allow_networks = [\"127.0.0.0/8\"]\n",
        "info",
    );
    let (_quic, _connection, mut requests) =
        standalone::h3_client(relay.addr, relay.pin, INNER_MTU).await;
    let target = Target::from_socket_addr(destination);
    let mut flows = open_until_refused(&mut requests, || {
        h3util::connect_tcp_request(&target).unwrap()
    })
    .await;
    assert!(kit::is_running(relay.proc.pid()), "the relay keeps running");
    // Once flows close, new ones open again.
    for mut flow in flows.drain(..10) {
        flow.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let request = h3util::connect_tcp_request(&target).unwrap();
        let mut stream = requests.send_request(request).await.unwrap();
        if stream.recv_response().await.unwrap().status() == http::StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no flow after descriptors came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    accepted.abort();
}

/// Handshakes from addresses not yet proven count only in total; when many
/// are under way, newcomers are asked to prove theirs with a QUIC Retry
/// (RFC 9000 §8.1.2) first, which real clients pass transparently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piled_up_handshakes_make_newcomers_prove_their_address() {
    let relay = standalone::relay(
        "ingress",
        "[limits]\nmax_unvalidated_handshakes = 1\n",
        "debug",
    );
    let attempts: Vec<_> = (0..8)
        .map(|i| {
            let (addr, pin) = (relay.addr, relay.pin);
            tokio::spawn(async move {
                let bind: IpAddr = format!("127.0.1.{}", i + 1).parse().unwrap();
                RawClient::connect(addr, pin, OUTER_MTU, Some(bind)).await
            })
        })
        .collect();
    let mut clients = Vec::new();
    for attempt in attempts {
        clients.push(attempt.await.unwrap().expect("every client gets in"));
    }
    let log = relay.log_text();
    assert!(log.contains("address validation asked (retry)"), "{log}");
}
