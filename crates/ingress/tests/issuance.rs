//! Issuance then redemption over the real services: an account logs in at
//! the issuer (OPAQUE), fetches tokens, and an ingress that reads the keys
//! the issuer published admits each token once.
#![allow(clippy::unwrap_used)]

use openrelay_testkit::ingress as kit;

use std::time::Duration;

use kit::*;
use openrelay_issuer::testing::LocalIssuer;
use openrelay_issuer_client::IssuerClient;
use openrelay_tokens::TokenChallenge;
use openrelay_tokens::header::{build_authorization, parse_www_authenticate};

#[tokio::test]
async fn tokens_from_the_issuer_open_tunnels_once() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = LocalIssuer::start(&dir.path().join("issuer"), ISSUER_NAME);
    let issuer_addr = issuer.addr;

    let egress = FakeEgress::start().await;
    // The ingress fetches the issuer's keys from the issuer.
    let ingress = start_ingress(
        egress.addr(),
        Some(admission_from_issuer(issuer_addr, issuer.pin)),
        &dir.path().join("ingress"),
    );

    // The client learns the challenge and key from the ingress's 401 (once
    // the ingress has the keys: 503 until then) ...
    let mut answer = connect_udp(&ingress, egress.addr(), None).await;
    for _ in 0..50 {
        if answer.status != http::StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = connect_udp(&ingress, egress.addr(), None).await;
    }
    assert_eq!(answer.status, http::StatusCode::UNAUTHORIZED);
    let header = answer.headers.get(http::header::WWW_AUTHENTICATE).unwrap();
    let offered = parse_www_authenticate(header.to_str().unwrap())
        .unwrap()
        .remove(0);
    let challenge = TokenChallenge::decode(&offered.challenge).unwrap();
    let key = openrelay_tokens::TokenKey::from_spki(&offered.token_key.unwrap()).unwrap();

    // ... and gets tokens from the issuer for it.
    let client = IssuerClient::connect(issuer_addr, issuer.pin)
        .await
        .unwrap();
    client
        .register(ISSUER_NAME, "dave", "a good long password")
        .await
        .unwrap();
    let session = client
        .login(ISSUER_NAME, "dave", "a good long password")
        .await
        .unwrap();
    let tokens = client
        .fetch_tokens(&session, &key, &challenge, 2)
        .await
        .unwrap();

    for token in &tokens {
        let authorization = build_authorization(token);
        let answer = connect_udp(&ingress, egress.addr(), Some(&authorization)).await;
        assert_eq!(answer.status, http::StatusCode::OK);
        answer.sender.as_ref().unwrap().send(b"hello").unwrap();
        assert_eq!(
            egress.recv(Duration::from_secs(5)).await.as_deref(),
            Some(&b"hello"[..])
        );
        let replay = connect_udp(&ingress, egress.addr(), Some(&authorization)).await;
        assert_eq!(replay.status, http::StatusCode::UNAUTHORIZED);
    }
}
