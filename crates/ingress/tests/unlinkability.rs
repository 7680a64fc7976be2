//! Unlinkability, as a test (issue 4; RFC 9576 §3.3, RFC 9578 §6): two
//! accounts get tokens from the real issuer, and everything the issuer sees
//! is recorded (account names, session bearers, every TokenRequest, every
//! TokenResponse). The tokens are then shown to a real ingress (access) or
//! prepared for an egress (payment), and everything the relays see is
//! recorded (the `Authorization` header, i.e. the whole token). Then:
//!
//! * no value the issuer saw appears in what the relays saw, nor the other
//!   way round (compared as every 16-byte window, so no field or part of one
//!   carries over);
//! * tokens of the two accounts are indistinguishable to the relays: the
//!   same shape, and every field but the random nonce and the signature over
//!   it is the same for both accounts; the relays accept both without
//!   knowing any account.
#![allow(clippy::unwrap_used)]

use openrelay_testkit::ingress as kit;

use kit::*;
use openrelay_issuer::testing::LocalIssuer;
use openrelay_issuer_client::IssuerClient;
use openrelay_tokens::header::{build_authorization, parse_authorization};
use openrelay_tokens::issuance::{self, REQUEST_MEDIA_TYPE};
use openrelay_tokens::{Token, TokenChallenge, TokenResponse};
use openrelay_transport::call::PinnedConnection;
use openrelay_transport::endpoint::OUTER_MTU;
use openrelay_transport::udp;

/// Everything one party saw, as byte strings.
#[derive(Default)]
struct View(Vec<Vec<u8>>);

impl View {
    fn saw(&mut self, bytes: impl Into<Vec<u8>>) {
        self.0.push(bytes.into());
    }

    /// Whether any 16-byte window of `other`'s items occurs in one of ours.
    fn shares_with(&self, other: &View) -> Option<String> {
        for theirs in &other.0 {
            for window in theirs.windows(16) {
                if self
                    .0
                    .iter()
                    .any(|ours| ours.windows(16).any(|w| w == window))
                {
                    return Some(format!("{window:02x?}"));
                }
            }
        }
        None
    }
}

/// Issues `count` tokens for `challenge` to `username` over the real issuer,
/// recording what the issuer sees and sends.
async fn issue(
    issuer: &IssuerClient,
    raw: &PinnedConnection,
    username: &str,
    challenge: &TokenChallenge,
    count: usize,
    issuer_view: &mut View,
) -> Vec<Token> {
    issuer
        .register(ISSUER_NAME, username, "a good long password")
        .await
        .unwrap();
    let session = issuer
        .login(ISSUER_NAME, username, "a good long password")
        .await
        .unwrap();
    issuer_view.saw(username.as_bytes());
    issuer_view.saw(session.bearer().as_bytes());
    let key = issuer.directory().await.unwrap().epoch_keys().unwrap()[0]
        .key
        .clone();
    let headers = [
        (
            http::header::AUTHORIZATION,
            format!("Bearer {}", session.bearer()),
        ),
        (http::header::CONTENT_TYPE, REQUEST_MEDIA_TYPE.to_owned()),
    ];
    let mut tokens = Vec::new();
    for _ in 0..count {
        let (request, pending) = issuance::request(&key, challenge.digest().unwrap()).unwrap();
        let body = request.encode();
        issuer_view.saw(body.clone());
        let answer = raw
            .request(http::Method::POST, "/token-request", &headers, body)
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        issuer_view.saw(answer.body.clone());
        let response = TokenResponse::decode(&answer.body).unwrap();
        tokens.push(pending.finalize(&response).unwrap());
    }
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_and_the_relays_share_no_value_and_accounts_look_alike() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalIssuer::start(&dir.path().join("issuer"), ISSUER_NAME);
    let (issuer_addr, issuer_pin) = (local.addr, local.pin);
    let issuer = IssuerClient::connect(issuer_addr, issuer_pin)
        .await
        .unwrap();
    let quic = udp::endpoint(udp::local_for(None, issuer_addr), None).unwrap();
    let raw = PinnedConnection::connect(&quic, issuer_addr, issuer_pin, OUTER_MTU)
        .await
        .unwrap();

    // Access tokens for the ingress below, scoped to its operator.
    let ingress_operator = operator();
    let access = TokenChallenge::for_ingress_operator(ISSUER_NAME, &ingress_operator.to_string());
    let payment = TokenChallenge::for_relay(ISSUER_NAME, "ed25519:an-egress-relay");
    let mut issuer_view = View::default();
    let mut alice = issue(&issuer, &raw, "alice", &access, 3, &mut issuer_view).await;
    let bob = issue(&issuer, &raw, "bob", &access, 3, &mut issuer_view).await;
    alice.extend(issue(&issuer, &raw, "carol", &payment, 2, &mut issuer_view).await);

    // The relays' view: the Authorization header, spent at a real ingress
    // for access tokens (and as an egress would receive it for payments).
    let egress = FakeEgress::start().await;
    let ingress = start_ingress_of(
        ingress_operator,
        egress.addr(),
        Some(admission(local.keys.clone(), None)),
        &dir.path().join("ingress"),
    );
    let mut relay_view = View::default();
    for token in alice.iter().chain(&bob) {
        let header = build_authorization(token);
        let seen = parse_authorization(&header).unwrap();
        relay_view.saw(header.into_bytes());
        relay_view.saw(seen.encode());
        if seen.challenge_digest == access.digest().unwrap() {
            let answer =
                connect_udp(&ingress, egress.addr(), Some(&build_authorization(&seen))).await;
            assert_eq!(answer.status, http::StatusCode::OK, "{:?}", answer.headers);
        }
    }

    // Nothing the issuer saw reaches the relays, nothing the relays see
    // reached the issuer.
    assert_eq!(issuer_view.shares_with(&relay_view), None);
    assert_eq!(relay_view.shares_with(&issuer_view), None);

    // Alice's and Bob's access tokens: one shape, and the same in every
    // field but the nonce and the authenticator over it.
    let shape = |t: &Token| {
        (
            t.token_type(),
            t.challenge_digest,
            t.token_key_id,
            t.encode().len(),
        )
    };
    let reference = shape(&bob[0]);
    for token in alice.iter().take(3).chain(&bob) {
        assert_eq!(shape(token), reference);
    }
    let mut nonces: Vec<[u8; 32]> = alice.iter().chain(&bob).map(|t| t.nonce).collect();
    nonces.sort_unstable();
    nonces.dedup();
    assert_eq!(
        nonces.len(),
        alice.len() + bob.len(),
        "nonces are fresh per token"
    );
}
