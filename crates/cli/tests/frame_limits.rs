//! Item 1 of issue 11: HTTP/3 frames are never buffered without bound. A
//! real relay process receives streams that declare a 4 GiB HEADERS frame
//! or a 4 GiB frame of an unknown type and then stream zeros: each stream is
//! reset after at most 64 KiB, and the relay's resident memory stays flat
//! while a hundred such streams run at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use openrelay_testkit::standalone;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openrelay_transport::endpoint::{INNER_MTU, OUTER_MTU};
use openrelay_transport::testing::{
    RawClient, close_code, frame_header, headers_frame, stream_fate, write_zeros,
};
use openrelay_wire::h3frame::{UniStreamType, code, frame_type};

const ATTACKS: [(&str, u64); 2] = [("HEADERS", frame_type::HEADERS), ("unknown 0x21", 0x21)];

fn mtu(role: &str) -> u16 {
    if role == "ingress" {
        OUTER_MTU
    } else {
        INNER_MTU
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_4_gib_frame_is_reset_within_64_kib() {
    for role in ["ingress", "egress"] {
        let relay = standalone::relay(role, "", "debug");
        let client = RawClient::connect(relay.addr, relay.pin, mtu(role), None)
            .await
            .unwrap();
        for (what, frame_type) in ATTACKS {
            let (mut send, mut recv) = client
                .request(&frame_header(frame_type, 1 << 32))
                .await
                .unwrap();
            let started = Instant::now();
            let end = write_zeros(&mut send, 64 << 10).await;
            let (stopped, reset) = stream_fate(&mut send, &mut recv).await;
            eprintln!(
                "{role}, {what}: wrote {} bytes; stopped with {stopped:?}, reset with {reset:?} after {:?}",
                end.written,
                started.elapsed()
            );
            assert_eq!(
                (stopped, reset),
                (Some(code::H3_EXCESSIVE_LOAD), Some(code::H3_EXCESSIVE_LOAD)),
                "{role}: a stream declaring a 4 GiB {what} frame is stopped and reset"
            );
        }
        // The relay still serves, on the same connection: a request answered
        // (403 at the ingress, 405 at the egress) rather than reset.
        let head = headers_frame(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "relay.test"),
            (":path", "/"),
        ]);
        let (mut send, mut recv) = client.request(&head).await.unwrap();
        send.finish().unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 16))
            .await
            .expect("answered in time")
            .expect("answered, not reset");
        assert!(!answer.is_empty(), "{role} answers after the attacks");
    }
}

/// A hundred streams at once, each declaring a 4 GiB frame and pushing up
/// to 8 MiB of zeros (reopened as soon as it is stopped), over
/// `connections` connections to a relay of `role`; returns the relay's
/// resident memory growth at its peak.
async fn endless_frames_memory_growth(role: &str, connections: usize) -> u64 {
    // A relay that buffered would grow by up to 800 MiB at a time.
    const STREAMS: usize = 100;
    const PER_STREAM: u64 = 8 << 20;
    const RUN: Duration = Duration::from_secs(8);
    let relay = standalone::relay(role, "", "info");
    let mut clients = Vec::new();
    for _ in 0..connections {
        let client = RawClient::connect(relay.addr, relay.pin, mtu(role), None)
            .await
            .unwrap();
        clients.push(Arc::new(client));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = relay.rss();
    let peak = Arc::new(AtomicU64::new(before));
    let written = Arc::new(AtomicU64::new(0));
    let resets = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + RUN;
    let mut attackers = Vec::new();
    for i in 0..STREAMS {
        let (client, written, resets) = (
            Arc::clone(&clients[i % connections]),
            Arc::clone(&written),
            Arc::clone(&resets),
        );
        let frame_type = ATTACKS[i % 2].1;
        attackers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let Ok((mut send, _recv)) =
                    client.request(&frame_header(frame_type, 1 << 32)).await
                else {
                    break;
                };
                let end = write_zeros(&mut send, PER_STREAM).await;
                written.fetch_add(end.written, Ordering::Relaxed);
                match end.stopped {
                    Some(_) => resets.fetch_add(1, Ordering::Relaxed),
                    // Never stopped: this stream holds its 8 MiB; keep it
                    // open until the end of the run.
                    None => {
                        tokio::time::sleep_until(deadline.into()).await;
                        break;
                    }
                };
            }
        }));
    }
    while Instant::now() < deadline + Duration::from_secs(1) {
        peak.fetch_max(relay.rss(), Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for attacker in attackers {
        let _ = attacker.await;
    }
    let after = relay.rss();
    let peak = peak.load(Ordering::Relaxed);
    eprintln!(
        "{role} VmRSS: before {} KiB, peak {} KiB (+{} KiB), after {} KiB; \
         {STREAMS} concurrent streams on {connections} connection(s) wrote {} KiB in total, \
         {} streams stopped",
        before / 1024,
        peak / 1024,
        peak.saturating_sub(before) / 1024,
        after / 1024,
        written.load(Ordering::Relaxed) / 1024,
        resets.load(Ordering::Relaxed),
    );
    assert!(
        resets.load(Ordering::Relaxed) >= STREAMS as u64,
        "every stream was stopped"
    );
    peak.saturating_sub(before)
}

/// The bound: what each connection's receive window lets a peer park in
/// QUIC before the relay reads a stream's first bytes (32 MiB at an
/// egress, whose uploads need it; 1 MiB at an ingress), plus allocator
/// slack; never the declared 4 GiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_endless_frames_at_once_leave_the_relay_memory_bounded() {
    let egress = endless_frames_memory_growth("egress", 1).await;
    assert!(
        egress < 48 << 20,
        "the egress grew by {} KiB",
        egress / 1024
    );
    // The ingress allows 20 streams per connection.
    let ingress = endless_frames_memory_growth("ingress", 5).await;
    assert!(
        ingress < 24 << 20,
        "the ingress grew by {} KiB",
        ingress / 1024
    );
}

/// Unidirectional streams (RFC 9114 §6.2): a stream of an unknown type is
/// stopped whatever it carries; the QPACK streams, read by the guard since
/// h3 never reads them, may carry nothing a table-less peer accepts; the
/// control stream's frames are bounded like a request's; a client may not
/// push. Each breach ends what the RFC says it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unidirectional_streams_are_bounded_too() {
    let relay = standalone::relay("ingress", "", "debug");
    let connect = || RawClient::connect(relay.addr, relay.pin, OUTER_MTU, None);

    // An unknown type streaming zeros: stopped, the connection lives on.
    let client = connect().await.unwrap();
    let mut grease = client.uni(UniStreamType::Other(0x21), &[]).await.unwrap();
    let end = write_zeros(&mut grease, 16 << 20).await;
    assert_eq!(end.stopped, Some(code::H3_STREAM_CREATION_ERROR), "{end:?}");
    assert!(end.written < 16 << 20);
    assert!(client.connection.close_reason().is_none());

    // Connection errors, each on a fresh connection.
    let mut insert = Vec::new();
    // Insert with Literal Name (RFC 9204 §4.3.3) into a table of capacity 0.
    openrelay_wire::qpack::encode_integer(1, 5, 0x40, &mut insert);
    insert.extend(b"a\x01b");
    let mut endless_unknown = frame_header(0x21, 1 << 32);
    endless_unknown.extend([0u8; 1024]);
    for (what, expected) in [
        ("QPACK encoder insert", code::QPACK_ENCODER_STREAM_ERROR),
        (
            "QPACK decoder section acknowledgment",
            code::QPACK_DECODER_STREAM_ERROR,
        ),
        ("push stream from a client", code::H3_STREAM_CREATION_ERROR),
        (
            "endless unknown frame on the control stream",
            code::H3_EXCESSIVE_LOAD,
        ),
        ("GOAWAY longer than one integer", code::H3_FRAME_ERROR),
    ] {
        let mut client = connect().await.unwrap();
        let _stream = match what {
            "QPACK encoder insert" => Some(
                client
                    .uni(UniStreamType::QpackEncoder, &insert)
                    .await
                    .unwrap(),
            ),
            "QPACK decoder section acknowledgment" => Some(
                client
                    .uni(UniStreamType::QpackDecoder, &[0x84])
                    .await
                    .unwrap(),
            ),
            "push stream from a client" => {
                Some(client.uni(UniStreamType::Push, &[0x00]).await.unwrap())
            }
            "endless unknown frame on the control stream" => {
                client.control.write_all(&endless_unknown).await.unwrap();
                None
            }
            _ => {
                // A GOAWAY declaring 1 MiB: one integer is at most 8 bytes.
                client
                    .control
                    .write_all(&frame_header(frame_type::GOAWAY, 1 << 20))
                    .await
                    .unwrap();
                None
            }
        };
        assert_eq!(
            close_code(&client.connection).await,
            Some(expected),
            "{what}"
        );
    }
    // The relay serves on.
    assert!(connect().await.is_ok());
}
