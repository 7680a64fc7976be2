//! Nothing slow outside the egress holds up its payments.
//!
//! Name lookups against a nameserver that never answers, hundreds at once
//! by one client, leave payments of every session prompt: no paying session
//! is closed. (Blocking `getaddrinfo` on tokio's blocking pool, abandoned
//! at a timeout, once filled the pool the payment store's writes need.)
//! Runs in a network namespace made for it, whose /etc/resolv.conf names a
//! nameserver on its loopback that the test holds and never answers.
//!
//! A Redis double-spend set that stops answering (SIGSTOP) costs a payment
//! a 503 within the store's timeout, and payments succeed again once it
//! runs (SIGCONT).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openrelay_egress::payment::PAYMENT_OVERDUE;
use openrelay_testkit::dns::silent_nameserver;
use openrelay_testkit::egress::{RunningEgress, Session, start_egress};
use openrelay_testkit::netns::{self, Place};
use openrelay_tokens::testing::{RedisServer, issuer_key, mint, write_directory};
use openrelay_tokens::{PAYMENT_PATH, TokenChallenge};

const ISSUER: &str = "issuer.test:4450";

/// An egress charging a token per `quantum_secs` with `grace_secs` to pay,
/// with `more` `[egress.payment.tokens]` settings.
fn paying_egress(quantum_secs: u64, grace_secs: u64, more: &str) -> RunningEgress {
    let keys = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    write_directory(&keys, issuer_key());
    let egress = start_egress(&format!(
        "[egress]\nconnect_timeout_secs = 10\n\n[egress.payment]\nquantum_secs = {quantum_secs}\ngrace_secs = {grace_secs}\n\n[egress.payment.tokens]\nissuer_name = \"{ISSUER}\"\nissuer_keys = \"{}\"\n{more}",
        keys.display()
    ));
    // The egress read the keys at start.
    drop(keys);
    egress
}

fn challenge(egress: &RunningEgress) -> TokenChallenge {
    TokenChallenge::for_relay(ISSUER, egress.identity.pin().to_string())
}

/// Pays with a fresh token: the status and Proxy-Status.
async fn pay(session: &Session, challenge: &TokenChallenge) -> (u16, String) {
    let token = mint(issuer_key(), challenge);
    let authorization = openrelay_tokens::header::build_authorization(&token);
    let answer = session
        .post(
            PAYMENT_PATH,
            &[("authorization", &authorization)],
            Vec::new(),
        )
        .await;
    (answer.status, answer.proxy_status())
}

/// Pays each time the egress asks (its answer to a payment) until `stop`;
/// the payments accepted.
async fn keep_paying(
    session: Arc<Session>,
    challenge: TokenChallenge,
    stop: Arc<AtomicBool>,
) -> usize {
    let mut paid = 0;
    while !stop.load(Ordering::Relaxed) {
        let (status, details) = pay(&session, &challenge).await;
        assert_eq!(status, 200, "payment refused: {details}");
        paid += 1;
    }
    paid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_stuck_on_a_silent_nameserver_do_not_stall_payments() {
    let test = "lookups_stuck_on_a_silent_nameserver_do_not_stall_payments";
    let Place::Inside { .. } = netns::isolated("b", test, &[], Duration::from_secs(240)) else {
        return;
    };
    // /etc/resolv.conf here names 127.0.0.1:53.
    let _nameserver = silent_nameserver("127.0.0.1:53".parse().unwrap()).await;
    // A token per 2 s of session, 2 s to pay a due one.
    let egress = paying_egress(2, 2, "");
    let honest = Arc::new(Session::open(&egress).await);
    let flooder = Arc::new(Session::open(&egress).await);
    let stop = Arc::new(AtomicBool::new(false));
    let payers: Vec<_> = [&honest, &flooder]
        .into_iter()
        .map(|session| {
            tokio::spawn(keep_paying(
                Arc::clone(session),
                challenge(&egress),
                Arc::clone(&stop),
            ))
        })
        .collect();

    // 600 CONNECTs by name, each to a name of its own, kept up for 12 s:
    // more than tokio's 512 blocking threads.
    let answered = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let flood: Vec<_> = (0..600)
        .map(|i| {
            let (flooder, answered) = (Arc::clone(&flooder), Arc::clone(&answered));
            tokio::spawn(async move {
                let mut n = 0;
                while started.elapsed() < Duration::from_secs(12) {
                    let answer = flooder.connect(&format!("slow-{i}-{n}.example:443")).await;
                    // Every lookup ends in a DNS failure (never a hang).
                    assert!(
                        answer.status == 504 || answer.status == 502,
                        "{} {}",
                        answer.status,
                        answer.proxy_status()
                    );
                    answered.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(12)).await;
    stop.store(true, Ordering::Relaxed);

    // Both sessions paid all along (an answer to a payment comes when the
    // next token is due soon: about one per 2 s), neither was closed.
    for (who, session) in [("honest", &honest), ("flooding", &flooder)] {
        assert!(
            session.connection.close_reason().is_none(),
            "{who} session closed: {:?}",
            session.connection.close_reason()
        );
    }
    for payer in payers {
        let paid = tokio::time::timeout(Duration::from_secs(10), payer)
            .await
            .expect("a payment hangs")
            .unwrap();
        assert!(paid >= 5, "only {paid} payments in 12 s");
    }
    for task in flood {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a CONNECT hangs")
            .unwrap();
    }
    assert!(answered.load(Ordering::Relaxed) >= 600);
    assert!(
        !matches!(
            honest.connection.close_reason(),
            Some(quinn::ConnectionError::ApplicationClosed(ref close))
                if close.error_code == quinn::VarInt::from_u32(PAYMENT_OVERDUE)
        ),
        "honest session closed for payment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_costs_a_payment_503_within_its_timeout() {
    use openrelay_tokens::spent::REDIS_RESPONSE_TIMEOUT;

    let Some(redis) = RedisServer::start() else {
        return;
    };
    let egress = paying_egress(60, 30, &format!("redis_url = \"{}\"\n", redis.url()));
    let challenge = challenge(&egress);
    let session = Session::open(&egress).await;
    // Stopped before the egress ever connected to it, then again once it
    // had a connection.
    for round in ["before the first connection", "with a connection"] {
        redis.pause();
        for _ in 0..3 {
            let started = Instant::now();
            let (status, details) =
                tokio::time::timeout(Duration::from_secs(30), pay(&session, &challenge))
                    .await
                    .expect("a payment hangs while Redis is stopped");
            let elapsed = started.elapsed();
            assert_eq!(status, 503, "{round}: {details}");
            assert!(
                details.contains("double-spend store unavailable"),
                "{details}"
            );
            assert!(
                elapsed <= REDIS_RESPONSE_TIMEOUT + Duration::from_secs(2),
                "{round}: 503 only after {elapsed:?}"
            );
        }
        redis.resume();
        // The answer to an accepted payment is held until the next one is
        // due (a 60 s quantum): that it is held at all shows acceptance.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout(Duration::from_secs(2), pay(&session, &challenge)).await {
                Err(_) => break,
                Ok((status, details)) => {
                    assert_eq!(status, 503, "{details}");
                    assert!(
                        Instant::now() < deadline,
                        "{round}: payments still refused after SIGCONT"
                    );
                }
            }
        }
    }
    assert!(session.connection.close_reason().is_none());
}
