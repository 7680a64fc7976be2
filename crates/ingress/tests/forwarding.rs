//! Forwarding through a real ingress in batches (issue 16): datagrams that
//! arrive together from the client leave towards the egress as GSO sends,
//! and GSO bursts from the egress, received whole (GRO), reach the client
//! as one HTTP datagram each. Every payload arrives byte-exact and in order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::IoSliceMut;
use std::net::SocketAddr;
use std::time::Duration;

use openrelay_testkit::ingress::{connect_udp, start_ingress};
use openrelay_wire::datagram;
use quinn::udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Payloads each way, sent in bursts of `BURST`.
const PAYLOADS: usize = 600;
const BURST: usize = 30;
/// Payload size: what a full inner QUIC packet takes.
const SIZE: usize = 1200;

/// Payload `i`: its index, then bytes that depend on it (any misplaced or
/// damaged byte shows).
fn payload(i: usize) -> Vec<u8> {
    let mut p = (i as u32).to_be_bytes().to_vec();
    p.extend((0..SIZE - 4).map(|j| (i * 31 + j * 7) as u8));
    p
}

/// The egress's side: a UDP socket with GRO on receives and GSO on sends
/// (quinn-udp), as the ingress's bridge sockets have.
struct GroSocket {
    socket: UdpSocket,
    state: UdpSocketState,
}

impl GroSocket {
    fn bind() -> Self {
        let socket = openrelay_transport::udp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let state = UdpSocketState::new((&socket).into()).unwrap();
        GroSocket { socket, state }
    }

    /// Datagrams received within `limit` until `want` have come, with the
    /// number of receive messages that held more than one (GRO kept a GSO
    /// burst whole), and where they came from.
    async fn receive(&self, want: usize, limit: Duration) -> (Vec<Vec<u8>>, usize, SocketAddr) {
        let mut got = Vec::new();
        let mut coalesced = 0;
        let mut from = None;
        let mut storage = vec![0u8; 1 << 16];
        let deadline = tokio::time::Instant::now() + limit;
        while got.len() < want {
            let ready = tokio::time::timeout_at(deadline, self.socket.readable()).await;
            if ready.is_err() {
                break;
            }
            let mut bufs = [IoSliceMut::new(&mut storage)];
            let mut meta = [RecvMeta::default()];
            let received = self.socket.try_io(Interest::READABLE, || {
                self.state.recv((&self.socket).into(), &mut bufs, &mut meta)
            });
            if received.is_err() {
                continue;
            }
            let meta = meta[0];
            if meta.len > meta.stride {
                coalesced += 1;
            }
            from = Some(meta.addr);
            got.extend(bufs[0][..meta.len].chunks(meta.stride).map(<[u8]>::to_vec));
        }
        (got, coalesced, from.expect("nothing arrived"))
    }

    /// Sends `payloads` (equal sizes) to `to` as one GSO burst.
    async fn send_burst(&self, payloads: &[Vec<u8>], to: SocketAddr) {
        let contents = payloads.concat();
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents: &contents,
            segment_size: Some(SIZE),
            src_ip: None,
        };
        self.socket
            .async_io(Interest::WRITABLE, || {
                self.state.send((&self.socket).into(), &transmit)
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn batches_cross_the_ingress_byte_exact_with_gso() {
    let state = tempfile::tempdir().unwrap();
    let egress = GroSocket::bind();
    let ingress = start_ingress(egress.socket.local_addr().unwrap(), None, state.path());
    let answer = connect_udp(&ingress, egress.socket.local_addr().unwrap(), None).await;
    let sender = answer.sender.as_ref().expect("tunnel refused");
    let expected: Vec<Vec<u8>> = (0..PAYLOADS).map(payload).collect();

    // Client → egress: bursts of datagrams, as a QUIC endpoint hands them over.
    for burst in expected.chunks(BURST) {
        sender.send_segments(&burst.concat(), SIZE).unwrap();
    }
    let (got, coalesced, bridge) = egress.receive(PAYLOADS, Duration::from_secs(10)).await;
    assert_eq!(
        got.len(),
        PAYLOADS,
        "datagrams lost on the way to the egress"
    );
    assert!(
        got == expected,
        "payloads changed or reordered towards the egress"
    );
    if egress.state.max_gso_segments() > 1 {
        assert!(
            coalesced > 0,
            "every datagram left the ingress in a send of its own (no GSO)"
        );
    }

    // Egress → client: GSO bursts, each datagram an HTTP datagram of the
    // tunnel's request on the client's connection.
    let connection = answer.connection().clone();
    let reader = tokio::spawn(async move {
        let mut payloads = Vec::new();
        while payloads.len() < PAYLOADS {
            let read = tokio::time::timeout(Duration::from_secs(10), connection.read_datagram());
            let Ok(Ok(datagram)) = read.await else { break };
            let framed = datagram::decode(&datagram).unwrap();
            assert_eq!(framed.context_id, datagram::UDP_PAYLOAD_CONTEXT);
            payloads.push(framed.payload.to_vec());
        }
        payloads
    });
    for burst in expected.chunks(BURST) {
        egress.send_burst(burst, bridge).await;
        // The client's datagram receive buffer is not what is tested here.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let back = reader.await.unwrap();
    assert_eq!(
        back.len(),
        PAYLOADS,
        "datagrams lost on the way to the client"
    );
    assert!(
        back == expected,
        "payloads changed or reordered towards the client"
    );
}
