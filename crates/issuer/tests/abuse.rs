//! Attacks on a real issuer on loopback (issue 11, items 14 and 17): mass
//! registration, login lock-out and password guessing, settlements by keys
//! that are not the operator's, empty settlements, reading someone's ledger,
//! unbound signatures and OPAQUE exchanges.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialResponse, RegistrationResponse,
};
use openrelay_config::IssuerConfig;
use openrelay_issuer::IssuerService;
use openrelay_issuer_client::puzzle::Puzzle;
use openrelay_issuer_client::{IssuerClient, IssuerClientError, Suite, paths};
use openrelay_tokens::TokenChallenge;
use openrelay_tokens::settlement::{
    LEDGER_PATH, LEDGER_READ_SIGNATURE_PREFIX, LedgerRequest, OperatorLedger, Receipt, SETTLE_PATH,
    SETTLEMENT_SIGNATURE_PREFIX, SIGNATURE_HEADER, Settlement, signed_message,
};
use openrelay_transport::call::{PinnedConnection, Response};
use openrelay_transport::endpoint::OUTER_MTU;
use openrelay_transport::identity::Identity;
use openrelay_transport::udp;
use openrelay_types::KeyPin;

const ISSUER: &str = "issuer.test";
const PUZZLE_BITS: u8 = 12;

struct Issuer {
    addr: SocketAddr,
    pin: KeyPin,
    /// A relay listed for `operator-1`.
    relay: Identity,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An issuer whose `[settlement.relays]` lists one relay for `operator-1`.
fn start() -> Issuer {
    let dir = tempfile::tempdir().unwrap();
    let relay = Identity::generate().unwrap();
    let config = IssuerConfig::from_toml(&format!(
        "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\nissuer_name = \"{ISSUER}\"\n\
         registration_puzzle_bits = {PUZZLE_BITS}\ntokens_per_period = 100000\n\
         [settlement.relays]\n\"operator-1\" = [\"{}\"]\n",
        dir.path(),
        relay.pin()
    ))
    .unwrap();
    let identity = Identity::generate().unwrap();
    let service = Arc::new(IssuerService::new(&config).unwrap());
    let endpoint = IssuerService::bind(&config, &identity).unwrap();
    Issuer {
        addr: endpoint.local_addr().unwrap(),
        pin: identity.pin(),
        relay,
        task: tokio::spawn(service.run(endpoint, std::future::pending())),
        _dir: dir,
    }
}

/// A connection to `issuer` from the loopback address `from`.
async fn connect_from(issuer: &Issuer, from: &str) -> (PinnedConnection, quinn::Endpoint) {
    let quic = udp::endpoint(format!("{from}:0").parse().unwrap(), None).unwrap();
    let connection = PinnedConnection::connect(&quic, issuer.addr, issuer.pin, OUTER_MTU)
        .await
        .unwrap();
    (connection, quic)
}

async fn client_from(issuer: &Issuer, from: &str) -> (IssuerClient, quinn::Endpoint) {
    let quic = udp::endpoint(format!("{from}:0").parse().unwrap(), None).unwrap();
    let client = IssuerClient::connect_via(&quic, OUTER_MTU, issuer.addr, issuer.pin)
        .await
        .unwrap();
    (client, quic)
}

/// A client from `from` with a fresh account `name` (password `password`).
async fn registered(
    issuer: &Issuer,
    from: &str,
    name: &str,
    password: &str,
) -> (IssuerClient, quinn::Endpoint) {
    let (client, quic) = client_from(issuer, from).await;
    client.register(ISSUER, name, password).await.unwrap();
    (client, quic)
}

fn frame(name: &str, message: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(name.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(message);
    out
}

async fn post(connection: &PinnedConnection, path: &str, body: Vec<u8>) -> Response {
    connection
        .request(http::Method::POST, path, &[], body)
        .await
        .unwrap()
}

/// Runs OPAQUE registration for `name` by hand; returns the upload.
async fn registration_upload(connection: &PinnedConnection, name: &str) -> Vec<u8> {
    let mut rng = rand_core::OsRng;
    let start = ClientRegistration::<Suite>::start(&mut rng, b"pw").unwrap();
    let answer = post(
        connection,
        paths::REGISTER_START,
        frame(name, &start.message.serialize()),
    )
    .await;
    assert_eq!(answer.status, 200);
    let message = RegistrationResponse::<Suite>::deserialize(&answer.body).unwrap();
    let finish = start
        .state
        .finish(
            &mut rng,
            b"pw",
            message,
            ClientRegistrationFinishParameters::new(
                openrelay_issuer_client::opaque_identifiers(name, ISSUER),
                None,
            ),
        )
        .unwrap();
    finish.message.serialize().to_vec()
}

/// Registration without a solved puzzle is refused; a solved one is
/// accepted, once: the same solution replayed is refused, and a solution is
/// bound to its account name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_needs_a_fresh_solved_puzzle() {
    let issuer = start();
    let (connection, _quic) = connect_from(&issuer, "127.0.0.1").await;

    // As before this fix: the upload alone.
    let upload = registration_upload(&connection, "mass-made-1").await;
    let answer = post(
        &connection,
        paths::REGISTER_FINISH,
        frame("mass-made-1", &upload),
    )
    .await;
    assert_eq!(
        answer.status,
        403,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );

    // A puzzle, unsolved (counter 0 fails with probability 1 - 2^-12).
    let puzzle = connection
        .request(http::Method::GET, paths::REGISTER_PUZZLE, &[], Vec::new())
        .await
        .unwrap();
    let puzzle = Puzzle::decode(&puzzle.body).unwrap();
    assert_eq!(puzzle.bits, PUZZLE_BITS);
    let counter = puzzle.solve("alice");
    let with = |counter: u64, upload: &[u8]| {
        let mut message = puzzle.encode().to_vec();
        message.extend_from_slice(&counter.to_be_bytes());
        message.extend_from_slice(upload);
        message
    };
    let upload = registration_upload(&connection, "alice").await;
    if counter != 0 {
        let answer = post(
            &connection,
            paths::REGISTER_FINISH,
            frame("alice", &with(0, &upload)),
        )
        .await;
        assert_eq!(answer.status, 403);
        assert!(String::from_utf8_lossy(&answer.body).contains("not solved"));
    }
    // Solved: accepted.
    let body = frame("alice", &with(counter, &upload));
    let answer = post(&connection, paths::REGISTER_FINISH, body.clone()).await;
    assert_eq!(
        answer.status,
        204,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    // Replayed as is: refused because the puzzle was used (not "name taken").
    let answer = post(&connection, paths::REGISTER_FINISH, body).await;
    assert_eq!(answer.status, 403);
    assert!(
        String::from_utf8_lossy(&answer.body).contains("already used"),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    // The same solution for another name does not solve it (2^-12 chance).
    let upload = registration_upload(&connection, "bob").await;
    let answer = post(
        &connection,
        paths::REGISTER_FINISH,
        frame("bob", &with(counter, &upload)),
    )
    .await;
    assert_eq!(answer.status, 403);

    // The client does all of it, and the account works.
    let (client, _quic) = registered(&issuer, "127.0.0.1", "carol", "long password").await;
    client
        .login(ISSUER, "carol", "long password")
        .await
        .unwrap();
}

/// One address leaves 1,000 logins pending (under as many names, from
/// several connections); a login from another address still works.
/// Before this fix, 10,000 pending logins from one address locked out
/// every other address (503 "too many logins in progress").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_logins_from_one_address_do_not_lock_out_another() {
    let issuer = start();
    let _victim = registered(&issuer, "127.0.0.2", "victim", "victim password").await;
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut held = Vec::new();
    for _ in 0..4 {
        let (attacker, quic) = connect_from(&issuer, "127.0.0.1").await;
        let attacker = Arc::new(attacker);
        held.push(quic);
        for i in 0..250 {
            let attacker = Arc::clone(&attacker);
            tasks.spawn(async move {
                let start = ClientLogin::<Suite>::start(&mut rand_core::OsRng, b"x").unwrap();
                let body = frame(&format!("name-{i}"), &start.message.serialize());
                post(&attacker, paths::LOGIN_START, body).await.status
            });
        }
    }
    while let Some(status) = tasks.join_next().await {
        *statuses.entry(status.unwrap()).or_default() += 1;
    }
    // Its share of pending logins, then refusals.
    assert_eq!(statuses.get(&200), Some(&16), "{statuses:?}");
    assert_eq!(statuses.values().sum::<usize>(), 1000);

    let (victim, _q) = client_from(&issuer, "127.0.0.2").await;
    victim
        .login(ISSUER, "victim", "victim password")
        .await
        .unwrap();
}

/// Guessing one account's password is slowed after a few tries (429 with
/// Retry-After), whichever address the guesses come from; the rates
/// themselves are tested with a fake clock in `logins::tests`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_slowed() {
    let issuer = start();
    let _alice = registered(&issuer, "127.0.0.1", "alice", "the real one").await;
    let mut outcomes = Vec::new();
    for i in 0..12u8 {
        // A fresh address for each guess: the account's own limit holds.
        let (guesser, _q) = client_from(&issuer, &format!("127.0.9.{}", i + 1)).await;
        outcomes.push(guesser.login(ISSUER, "alice", &format!("guess {i}")).await);
    }
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, Err(IssuerClientError::LoginFailed)))
        .count();
    let throttled: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Err(IssuerClientError::Throttled(message)) => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!((failed, throttled.len()), (10, 2), "{outcomes:?}");
    assert!(throttled[0].contains("for this account"), "{throttled:?}");

    // Many accounts from one address: the address's limit.
    let (sprayer, _q) = connect_from(&issuer, "127.0.8.1").await;
    let mut codes = Vec::new();
    for i in 0..40 {
        let start = ClientLogin::<Suite>::start(&mut rand_core::OsRng, b"x").unwrap();
        let body = frame(&format!("user-{i}"), &start.message.serialize());
        let answer = post(&sprayer, paths::LOGIN_START, body).await;
        if answer.status == 429 {
            assert!(answer.headers.contains_key(http::header::RETRY_AFTER));
        }
        codes.push(answer.status);
        // Leave none pending: finish with garbage.
        if answer.status == 200 {
            let mut finish = answer.body[..16].to_vec();
            finish.extend_from_slice(&[0; 64]);
            assert_eq!(
                post(&sprayer, paths::LOGIN_FINISH, finish).await.status,
                401
            );
        }
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 30, "{codes:?}");
    assert!(codes[30..].iter().all(|c| *c == 429), "{codes:?}");
}

/// Tokens for `relay` from a fresh account.
async fn tokens_for(
    issuer: &Issuer,
    relay: &Identity,
    count: usize,
) -> Vec<openrelay_tokens::Token> {
    let (client, _q) = client_from(issuer, "127.0.0.1").await;
    let name = format!(
        "payer-{}",
        rand_core::RngCore::next_u32(&mut rand_core::OsRng)
    );
    client.register(ISSUER, &name, "pw pw pw").await.unwrap();
    let session = client.login(ISSUER, &name, "pw pw pw").await.unwrap();
    let key = client.directory().await.unwrap().epoch_keys().unwrap()[0]
        .key
        .clone();
    let challenge = TokenChallenge::for_relay(ISSUER, relay.pin().to_string());
    client
        .fetch_tokens(&session, &key, &challenge, count)
        .await
        .unwrap()
}

/// Posts `body` to `path` signed by `key` under `prefix` (or unsigned).
async fn signed_post(
    connection: &PinnedConnection,
    path: &str,
    body: Vec<u8>,
    signature: Option<[u8; 64]>,
) -> Response {
    let headers: Vec<_> = signature
        .map(|s| {
            (
                http::HeaderName::from_static(SIGNATURE_HEADER),
                openrelay_tokens::b64::encode(&s),
            )
        })
        .into_iter()
        .collect();
    connection
        .request(http::Method::POST, path, &headers, body)
        .await
        .unwrap()
}

fn sign(key: &Identity, prefix: &[u8], body: &[u8]) -> Option<[u8; 64]> {
    Some(key.sign(&signed_message(prefix, body)).unwrap())
}

fn ledger_request(signer: &Identity, operator: &str, issued_at: u64) -> Vec<u8> {
    LedgerRequest {
        signer: *signer.pin().as_bytes(),
        issuer: ISSUER.into(),
        operator: operator.into(),
        issued_at,
        nonce: {
            let mut nonce = [0u8; 16];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
            nonce
        },
    }
    .encode()
    .unwrap()
}

async fn read_ledger(connection: &PinnedConnection, relay: &Identity) -> OperatorLedger {
    let body = ledger_request(relay, "operator-1", openrelay_types::unix_now());
    let signature = sign(relay, LEDGER_READ_SIGNATURE_PREFIX, &body);
    let answer = signed_post(connection, LEDGER_PATH, body, signature).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    serde_json::from_slice(&answer.body).unwrap()
}

/// Settlements are taken only from a relay listed for the operator, signed
/// under the settlement prefix; one that redeems nothing changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlements_only_from_the_operators_relays_and_never_empty() {
    let issuer = start();
    let (connection, _q) = connect_from(&issuer, "127.0.0.1").await;
    let listed = &issuer.relay;
    let unlisted = Identity::generate().unwrap();
    let settlement = |relay: &Identity, operator: &str, bytes, tokens| {
        Settlement {
            relay: *relay.pin().as_bytes(),
            operator: operator.into(),
            bytes_carried: bytes,
            tokens,
        }
        .encode()
        .unwrap()
    };

    // An unlisted key, with tokens it really collected: refused.
    let tokens = tokens_for(&issuer, &unlisted, 2).await;
    let body = settlement(&unlisted, "operator-1", 0, tokens);
    let answer = signed_post(
        &connection,
        SETTLE_PATH,
        body.clone(),
        sign(&unlisted, SETTLEMENT_SIGNATURE_PREFIX, &body),
    )
    .await;
    assert_eq!(
        answer.status,
        403,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    // A listed relay naming another operator: refused.
    let body = settlement(listed, "operator-2", 0, Vec::new());
    let answer = signed_post(
        &connection,
        SETTLE_PATH,
        body.clone(),
        sign(listed, SETTLEMENT_SIGNATURE_PREFIX, &body),
    )
    .await;
    assert_eq!(answer.status, 403);

    // Zero tokens and a huge byte claim: the ledger does not move.
    let before = read_ledger(&connection, listed).await;
    let body = settlement(listed, "operator-1", 1 << 50, Vec::new());
    let answer = signed_post(
        &connection,
        SETTLE_PATH,
        body.clone(),
        sign(listed, SETTLEMENT_SIGNATURE_PREFIX, &body),
    )
    .await;
    assert_eq!(answer.status, 200);
    let receipt: Receipt = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(receipt.redeemed, 0);
    assert_eq!(read_ledger(&connection, listed).await, before);

    // Signed over the bare body (no domain separation): refused.
    let tokens = tokens_for(&issuer, listed, 2).await;
    let body = settlement(listed, "operator-1", 4096, tokens);
    let bare = Some(listed.sign(&body).unwrap());
    let answer = signed_post(&connection, SETTLE_PATH, body.clone(), bare).await;
    assert_eq!(answer.status, 401);
    // Properly signed: redeemed and credited.
    let answer = signed_post(
        &connection,
        SETTLE_PATH,
        body.clone(),
        sign(listed, SETTLEMENT_SIGNATURE_PREFIX, &body),
    )
    .await;
    let receipt: Receipt = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(receipt.redeemed, 2);
    let after = read_ledger(&connection, listed).await;
    assert_eq!(
        (
            after.tokens_redeemed,
            after.bytes_reported,
            after.settlements
        ),
        (2, 4096, 1)
    );
    // Replayed: nothing redeemed, so nothing changes (not even the bytes).
    let answer = signed_post(
        &connection,
        SETTLE_PATH,
        body.clone(),
        sign(listed, SETTLEMENT_SIGNATURE_PREFIX, &body),
    )
    .await;
    let receipt: Receipt = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(receipt.redeemed, 0);
    assert_eq!(read_ledger(&connection, listed).await, after);
}

/// A ledger is read only with a fresh request for this issuer, signed by
/// one of the operator's relays, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_reads_are_authenticated_fresh_and_not_replayable() {
    let issuer = start();
    let (connection, _q) = connect_from(&issuer, "127.0.0.1").await;
    let listed = &issuer.relay;
    let now = openrelay_types::unix_now();

    // The old way: a GET with the operator in the query.
    let answer = connection
        .request(
            http::Method::GET,
            &format!("{LEDGER_PATH}?operator=operator-1"),
            &[],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 405);
    // Unsigned, signed by an unlisted key, under the settlement prefix,
    // stale, for another issuer: refused.
    let body = ledger_request(listed, "operator-1", now);
    assert_eq!(
        signed_post(&connection, LEDGER_PATH, body.clone(), None)
            .await
            .status,
        401
    );
    let other = Identity::generate().unwrap();
    let by_other = ledger_request(&other, "operator-1", now);
    let signature = sign(&other, LEDGER_READ_SIGNATURE_PREFIX, &by_other);
    assert_eq!(
        signed_post(&connection, LEDGER_PATH, by_other, signature)
            .await
            .status,
        403
    );
    let wrong_purpose = sign(listed, SETTLEMENT_SIGNATURE_PREFIX, &body);
    assert_eq!(
        signed_post(&connection, LEDGER_PATH, body.clone(), wrong_purpose)
            .await
            .status,
        401
    );
    let stale = ledger_request(listed, "operator-1", now - 3600);
    let signature = sign(listed, LEDGER_READ_SIGNATURE_PREFIX, &stale);
    assert_eq!(
        signed_post(&connection, LEDGER_PATH, stale, signature)
            .await
            .status,
        401
    );
    let mut elsewhere = LedgerRequest::decode(&body).unwrap();
    elsewhere.issuer = "other-issuer.test".into();
    let elsewhere = elsewhere.encode().unwrap();
    let signature = sign(listed, LEDGER_READ_SIGNATURE_PREFIX, &elsewhere);
    assert_eq!(
        signed_post(&connection, LEDGER_PATH, elsewhere, signature)
            .await
            .status,
        401
    );
    // Signed properly: answered, once.
    let signature = sign(listed, LEDGER_READ_SIGNATURE_PREFIX, &body);
    let answer = signed_post(&connection, LEDGER_PATH, body.clone(), signature).await;
    assert_eq!(answer.status, 200);
    let answer = signed_post(&connection, LEDGER_PATH, body, signature).await;
    assert_eq!(answer.status, 401);
    assert!(String::from_utf8_lossy(&answer.body).contains("replayed"));
}

/// OPAQUE is bound to openrelay's context and to the issuer's name: a
/// client that expects another issuer, or no context, cannot log in; one
/// registered for another issuer's name cannot either. (Before this fix,
/// the server used neither, so a client binding both failed against it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_is_bound_to_the_context_and_the_issuer_name() {
    let issuer = start();
    let (client, _q) = registered(&issuer, "127.0.0.1", "alice", "pass phrase").await;
    client.login(ISSUER, "alice", "pass phrase").await.unwrap();
    assert!(matches!(
        client
            .login("other-issuer.test", "alice", "pass phrase")
            .await,
        Err(IssuerClientError::LoginFailed)
    ));
    // Registered under another issuer's name: the envelope does not open
    // for this one.
    client
        .register("other-issuer.test", "bob", "pass phrase")
        .await
        .unwrap();
    assert!(matches!(
        client.login(ISSUER, "bob", "pass phrase").await,
        Err(IssuerClientError::LoginFailed)
    ));

    // Without the context string (by hand): refused by the client's own
    // check of the server's MAC.
    let (connection, _q) = connect_from(&issuer, "127.0.0.1").await;
    let mut rng = rand_core::OsRng;
    let start = ClientLogin::<Suite>::start(&mut rng, b"pass phrase").unwrap();
    let answer = post(
        &connection,
        paths::LOGIN_START,
        frame("alice", &start.message.serialize()),
    )
    .await;
    let message = CredentialResponse::<Suite>::deserialize(&answer.body[16..]).unwrap();
    let finished = start.state.finish(
        &mut rng,
        b"pass phrase",
        message,
        ClientLoginFinishParameters::new(
            None,
            openrelay_issuer_client::opaque_identifiers("alice", ISSUER),
            None,
        ),
    );
    assert!(finished.is_err(), "a login without the context verified");
}
