//! Datagrams a client sends before its connect-udp request is answered
//! (RFC 9298 §5), on a real ingress over loopback sockets: held until the
//! request is admitted, then forwarded byte-exact and in order; dropped if
//! it is refused (not one reaches the egress); and bounded per
//! connection, however many a client sends for requests it never makes.
#![allow(clippy::unwrap_used)]

use openrelay_testkit::ingress as kit;

use std::time::Duration;

use kit::*;
use openrelay_tokens::header::build_authorization;
use openrelay_transport::early_datagrams::EarlyLimits;

const NOTHING: Duration = Duration::from_millis(300);

/// Every datagram that reaches `egress` until it has been quiet for
/// [`NOTHING`].
async fn everything(egress: &FakeEgress) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while let Some(datagram) = egress.recv(NOTHING).await {
        got.push(datagram);
    }
    got
}

#[tokio::test]
async fn early_datagrams_reach_the_egress_byte_exact_once_the_token_is_admitted() {
    let dir = tempfile::tempdir().unwrap();
    let TokenIngress {
        egress, ingress, ..
    } = start_token_ingress(dir.path()).await;
    let key = issuer_key();
    let authorization = build_authorization(&token(key, &ingress.challenge()));

    // An inner QUIC Initial is padded to 1200 bytes; one datagram may even
    // arrive before its request's stream exists.
    let initial: Vec<u8> = (0..1200u32).map(|i| (i * 7 % 251) as u8).collect();
    let early = [
        Early::BeforeRequest(b"ahead of the request"),
        Early::AfterRequest(&initial),
        Early::AfterRequest(b"x"),
    ];
    let answer =
        connect_udp_with_early(&ingress, egress.addr(), Some(&authorization), &early).await;
    assert_eq!(answer.status, http::StatusCode::OK);
    answer.sender.as_ref().unwrap().send(b"after").unwrap();
    let got = everything(&egress).await;
    let expected = [&b"ahead of the request"[..], &initial, b"x", b"after"];
    assert!(
        got == expected,
        "got {} datagrams of {:?} bytes",
        got.len(),
        got.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_refused_request_forwards_none_of_its_early_datagrams() {
    let dir = tempfile::tempdir().unwrap();
    let TokenIngress {
        egress, ingress, ..
    } = start_token_ingress(dir.path()).await;
    let key = issuer_key();
    let mut forged = token(key, &ingress.challenge());
    forged.authenticator[3] ^= 0x10;
    let early = [
        Early::BeforeRequest(b"inner initial, before"),
        Early::AfterRequest(b"inner initial"),
        Early::AfterRequest(b"inner initial, again"),
    ];
    for authorization in [None, Some(build_authorization(&forged))] {
        let answer =
            connect_udp_with_early(&ingress, egress.addr(), authorization.as_deref(), &early).await;
        assert_eq!(answer.status.as_u16(), 401);
        assert!(
            everything(&egress).await.is_empty(),
            "a refused request's early datagram reached the egress"
        );
    }
}

#[tokio::test]
async fn early_datagrams_are_bounded_per_connection() {
    let dir = tempfile::tempdir().unwrap();
    let egress = FakeEgress::start().await;
    let ingress = start_ingress(egress.addr(), None, dir.path());
    let limit = EarlyLimits::RELAY.max_datagrams;

    // A client floods datagrams for requests it never makes, then for its
    // first request a few hundred more than the ingress holds, all before
    // the request: the ingress keeps the first `limit` of the request's
    // own and forwards just those once it admits it.
    let junk = vec![0xEE; 1000];
    let numbered: Vec<Vec<u8>> = (0..200u8).map(|i| vec![i; 1000]).collect();
    let mut early: Vec<Early<'_>> = numbered
        .iter()
        .map(|payload| Early::BeforeRequest(payload))
        .collect();
    early.extend((1..=500).map(|i| Early::NeverRequested(4 * (1000 + i), &junk)));
    early.push(Early::PauseBeforeRequest(Duration::from_millis(300)));
    let answer = connect_udp_with_early(&ingress, egress.addr(), None, &early).await;
    assert_eq!(answer.status, http::StatusCode::OK);
    let got = everything(&egress).await;
    let first: Vec<u8> = got.iter().map(|d| d[0]).collect();
    assert_eq!(
        first,
        (0..limit as u8).collect::<Vec<_>>(),
        "held: the first {limit} only"
    );
    assert!(
        got.iter()
            .all(|d| d.len() == 1000 && d.iter().all(|b| *b == d[0]))
    );
    answer.sender.as_ref().unwrap().send(b"after").unwrap();
    assert_eq!(everything(&egress).await, [b"after"]);

    // The junk never reached the egress, and the ingress still serves.
    let again = connect_udp(&ingress, egress.addr(), None).await;
    assert_eq!(again.status, http::StatusCode::OK);
    again
        .sender
        .as_ref()
        .unwrap()
        .send(b"still serving")
        .unwrap();
    assert_eq!(everything(&egress).await, [b"still serving"]);
}
