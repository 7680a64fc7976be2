//! Token-gated admission on a real ingress (loopback sockets): no token gets a
//! 401 with a challenge our own parser reads; a valid token opens a tunnel
//! whose datagrams reach the egress; a replay is refused, on one ingress and
//! across two ingresses sharing one real Redis; bad tokens are refused; and
//! nothing is forwarded for any refusal.
#![allow(clippy::unwrap_used)]

use openrelay_testkit::ingress as kit;

use std::time::Duration;

use kit::*;
use openrelay_tokens::header::{build_authorization, parse_www_authenticate};
use openrelay_tokens::testing::RedisServer;
use openrelay_tokens::{SigningKey, TokenChallenge};

const NOTHING: Duration = Duration::from_millis(300);

fn details(answer: &Answer) -> String {
    answer
        .headers
        .get("proxy-status")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

async fn assert_refused(answer: &Answer, status: u16, detail: &str, egress: &FakeEgress) {
    assert_eq!(answer.status.as_u16(), status, "{}", details(answer));
    assert!(
        details(answer).contains(&format!("details=\"{detail}\"")),
        "{}",
        details(answer)
    );
    assert!(answer.sender.is_none());
    assert!(
        egress.recv(NOTHING).await.is_none(),
        "a refused request reached the egress"
    );
}

async fn assert_tunnel_works(answer: &Answer, egress: &FakeEgress) {
    assert_eq!(answer.status, http::StatusCode::OK, "{:?}", answer.headers);
    answer
        .sender
        .as_ref()
        .unwrap()
        .send(b"inner quic packet")
        .unwrap();
    assert_eq!(
        egress.recv(Duration::from_secs(5)).await.as_deref(),
        Some(&b"inner quic packet"[..])
    );
}

#[tokio::test]
async fn tokens_gate_the_tunnel_on_one_ingress() {
    let dir = tempfile::tempdir().unwrap();
    let TokenIngress {
        epoch,
        egress,
        ingress,
    } = start_token_ingress(dir.path()).await;
    let key = issuer_key();

    // No token: 401 with a challenge for this issuer and its current key.
    let answer = connect_udp(&ingress, egress.addr(), None).await;
    assert_refused(&answer, 401, "token required", &egress).await;
    let header = answer.headers.get(http::header::WWW_AUTHENTICATE).unwrap();
    let challenges = parse_www_authenticate(header.to_str().unwrap()).unwrap();
    assert_eq!(challenges.len(), 1);
    let challenge = TokenChallenge::decode(&challenges[0].challenge).unwrap();
    assert_eq!(challenge, ingress.challenge());
    assert_eq!(challenges[0].token_key.as_deref(), Some(epoch.key.spki()));

    // Another scheme is no token either.
    let answer = connect_udp(&ingress, egress.addr(), Some("Basic dXNlcjpwYXNz")).await;
    assert_refused(&answer, 401, "token required", &egress).await;

    // A valid token opens the tunnel; its datagrams reach the egress.
    let token = token(key, &ingress.challenge());
    let authorization = build_authorization(&token);
    let answer = connect_udp(&ingress, egress.addr(), Some(&authorization)).await;
    assert_tunnel_works(&answer, &egress).await;

    // The same token again: spent.
    let replay = connect_udp(&ingress, egress.addr(), Some(&authorization)).await;
    assert_refused(&replay, 401, "token already spent", &egress).await;
    assert!(replay.headers.contains_key(http::header::WWW_AUTHENTICATE));

    // Malformed credentials: 400.
    let answer = connect_udp(&ingress, egress.addr(), Some("PrivateToken token=\"%%%\"")).await;
    assert_refused(&answer, 400, "malformed token", &egress).await;

    // A forged signature, another issuer's key, another challenge: 401.
    let mut forged = kit::token(key, &ingress.challenge());
    forged.authenticator[7] ^= 0x40;
    let answer = connect_udp(&ingress, egress.addr(), Some(&build_authorization(&forged))).await;
    assert_refused(&answer, 401, "bad token signature", &egress).await;
    let stranger = SigningKey::generate().unwrap();
    let foreign = kit::token(&stranger, &ingress.challenge());
    let answer = connect_udp(
        &ingress,
        egress.addr(),
        Some(&build_authorization(&foreign)),
    )
    .await;
    assert_refused(&answer, 401, "unknown token key", &egress).await;
    let elsewhere = kit::token(
        key,
        &TokenChallenge::for_ingress_operator("other-issuer.test", &ingress.operator.to_string()),
    );
    let answer = connect_udp(
        &ingress,
        egress.addr(),
        Some(&build_authorization(&elsewhere)),
    )
    .await;
    assert_refused(&answer, 401, "token for another challenge", &egress).await;

    // The spent set survives a restart of the ingress.
    let operator = ingress.operator;
    drop(ingress);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let keys = dir.path().join("issuer-directory.json");
    let ingress = start_ingress_of(
        operator,
        egress.addr(),
        Some(admission(keys, None)),
        dir.path(),
    );
    let replay = connect_udp(&ingress, egress.addr(), Some(&authorization)).await;
    assert_refused(&replay, 401, "token already spent", &egress).await;
}

/// Issue 11, item 19: an ingress started before its issuer does not exit:
/// it serves, refusing tunnels with 503 and a clear Proxy-Status (without
/// spending the token), fetches the issuer's keys over the network once
/// the issuer is up (pinned by its key), and admits from then on. (Before,
/// it exited at start: "issuer keys ...: No such file or directory".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_started_before_its_issuer_waits_for_its_keys() {
    use openrelay_issuer::IssuerService;
    use openrelay_issuer_client::IssuerClient;
    let dir = tempfile::tempdir().unwrap();
    let issuer_addr = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let issuer_identity = openrelay_transport::identity::Identity::generate().unwrap();
    let egress = FakeEgress::start().await;
    let ingress = start_ingress(
        egress.addr(),
        Some(admission_from_issuer(issuer_addr, issuer_identity.pin())),
        &dir.path().join("ingress"),
    );
    // A token the ingress cannot check yet (a key it has never seen).
    let early = build_authorization(&token(issuer_key(), &ingress.challenge()));
    let answer = connect_udp(&ingress, egress.addr(), Some(&early)).await;
    assert_refused(&answer, 503, "issuer keys not yet available", &egress).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let answer = connect_udp(&ingress, egress.addr(), None).await;
    assert_refused(&answer, 503, "issuer keys not yet available", &egress).await;

    // The issuer comes up; a client gets a token from it.
    let config = openrelay_config::IssuerConfig::from_toml(&format!(
        "listen = \"{issuer_addr}\"\nstate_dir = {:?}\nissuer_name = \"{ISSUER_NAME}\"\nregistration_puzzle_bits = 8\n",
        dir.path().join("issuer")
    ))
    .unwrap();
    let service = std::sync::Arc::new(IssuerService::new(&config).unwrap());
    let endpoint = IssuerService::bind(&config, &issuer_identity).unwrap();
    let _issuer = tokio::spawn(service.run(endpoint, std::future::pending()));
    let client = IssuerClient::connect(issuer_addr, issuer_identity.pin())
        .await
        .unwrap();
    client
        .register(ISSUER_NAME, "erin", "pass phrase")
        .await
        .unwrap();
    let session = client
        .login(ISSUER_NAME, "erin", "pass phrase")
        .await
        .unwrap();
    let key = client.directory().await.unwrap().epoch_keys().unwrap()[0]
        .key
        .clone();
    let tokens = client
        .fetch_tokens(&session, &key, &ingress.challenge(), 1)
        .await
        .unwrap();
    let authorization = build_authorization(&tokens[0]);
    // Within the backoff (at most the 1 s refresh here), the ingress has
    // the keys; the token was never spent by the refusals.
    let mut answer = connect_udp(&ingress, egress.addr(), Some(&authorization)).await;
    for _ in 0..40 {
        if answer.status != http::StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        answer = connect_udp(&ingress, egress.addr(), Some(&authorization)).await;
    }
    assert_tunnel_works(&answer, &egress).await;
}

#[tokio::test]
async fn a_rotated_key_reaches_the_ingress_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("issuer-directory.json");
    write_directory(&keys, issuer_key());
    let egress = FakeEgress::start().await;
    let ingress = start_ingress(
        egress.addr(),
        Some(admission(keys.clone(), None)),
        dir.path(),
    );
    let next = SigningKey::generate().unwrap();
    let early = build_authorization(&token(&next, &ingress.challenge()));
    let answer = connect_udp(&ingress, egress.addr(), Some(&early)).await;
    assert_refused(&answer, 401, "unknown token key", &egress).await;
    write_directory(&keys, &next);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let fresh = build_authorization(&token(&next, &ingress.challenge()));
    let answer = connect_udp(&ingress, egress.addr(), Some(&fresh)).await;
    assert_tunnel_works(&answer, &egress).await;
}

#[tokio::test]
async fn two_ingresses_sharing_redis_admit_a_token_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("issuer-directory.json");
    write_directory(&keys, issuer_key());
    let egress = FakeEgress::start().await;
    let (state_a, state_b) = (dir.path().join("a"), dir.path().join("b"));
    // A fleet: two ingresses of one operator.
    let fleet = operator();
    let a = start_ingress_of(
        fleet,
        egress.addr(),
        Some(admission(keys.clone(), Some(redis.url()))),
        &state_a,
    );
    let b = start_ingress_of(
        fleet,
        egress.addr(),
        Some(admission(keys, Some(redis.url()))),
        &state_b,
    );

    let authorization = build_authorization(&token(issuer_key(), &a.challenge()));
    let answer = connect_udp(&a, egress.addr(), Some(&authorization)).await;
    assert_tunnel_works(&answer, &egress).await;
    let replay = connect_udp(&b, egress.addr(), Some(&authorization)).await;
    assert_refused(&replay, 401, "token already spent", &egress).await;
    let replay = connect_udp(&a, egress.addr(), Some(&authorization)).await;
    assert_refused(&replay, 401, "token already spent", &egress).await;

    // A fresh token works at the other one.
    let other = build_authorization(&token(issuer_key(), &b.challenge()));
    let answer = connect_udp(&b, egress.addr(), Some(&other)).await;
    assert_tunnel_works(&answer, &egress).await;

    // Redis gone: fail closed (503), nothing forwarded.
    drop(redis);
    let third = build_authorization(&token(issuer_key(), &a.challenge()));
    let answer = connect_udp(&a, egress.addr(), Some(&third)).await;
    assert_refused(&answer, 503, "double-spend store unavailable", &egress).await;
}

#[tokio::test]
async fn without_admission_no_token_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let egress = FakeEgress::start().await;
    let ingress = start_ingress(egress.addr(), None, dir.path());
    let answer = connect_udp(&ingress, egress.addr(), None).await;
    assert_tunnel_works(&answer, &egress).await;
}

/// The challenge `ingress` announces on a 401 (RFC 9577 §2.1).
async fn announced_challenge(ingress: &RunningIngress, egress: &FakeEgress) -> TokenChallenge {
    let answer = connect_udp(ingress, egress.addr(), None).await;
    assert_refused(&answer, 401, "token required", egress).await;
    let header = answer.headers.get(http::header::WWW_AUTHENTICATE).unwrap();
    let challenges = parse_www_authenticate(header.to_str().unwrap()).unwrap();
    TokenChallenge::decode(&challenges[0].challenge).unwrap()
}

/// Issue 11 item 12: an access token is scoped to the operator of the
/// ingress it is shown to (RFC 9577 §2.1.1 `origin_info`), so what one
/// operator's ingress collects opens nothing at another operator's, even
/// though each keeps its own spent set.
#[tokio::test]
async fn a_token_spent_at_one_operators_ingress_is_refused_at_anothers() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("issuer-directory.json");
    let key = issuer_key();
    write_directory(&keys, key);
    let egress = FakeEgress::start().await;
    let a = start_ingress(
        egress.addr(),
        Some(admission(keys.clone(), None)),
        &dir.path().join("a"),
    );
    let b = start_ingress(
        egress.addr(),
        Some(admission(keys, None)),
        &dir.path().join("b"),
    );
    let for_a = announced_challenge(&a, &egress).await;
    let for_b = announced_challenge(&b, &egress).await;
    assert_ne!(for_a, for_b, "each operator's ingress names its operator");

    // A's ingress collects a token made for it ...
    let collected = build_authorization(&openrelay_tokens::testing::mint(key, &for_a));
    let answer = connect_udp(&a, egress.addr(), Some(&collected)).await;
    assert_tunnel_works(&answer, &egress).await;
    // ... and replays it at B's: refused, nothing forwarded.
    let replay = connect_udp(&b, egress.addr(), Some(&collected)).await;
    assert_refused(&replay, 401, "token for another challenge", &egress).await;
    // A fresh token for A still works at A, one for B at B.
    let fresh = build_authorization(&openrelay_tokens::testing::mint(key, &for_a));
    assert_tunnel_works(&connect_udp(&a, egress.addr(), Some(&fresh)).await, &egress).await;
    let at_b = build_authorization(&openrelay_tokens::testing::mint(key, &for_b));
    assert_tunnel_works(&connect_udp(&b, egress.addr(), Some(&at_b)).await, &egress).await;
}
