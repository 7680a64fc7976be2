//! The issuer service on a loopback socket: OPAQUE registration and login,
//! sessions, the token quota, the directory and key files.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use openrelay_config::IssuerConfig;
use openrelay_issuer::IssuerService;
use openrelay_issuer_client::{IssuerClient, IssuerClientError, Suite};
use openrelay_tokens::{TokenChallenge, TokenVerifier};
use openrelay_transport::identity::Identity;
use tokio::sync::oneshot;

const ISSUER: &str = "issuer.test";

fn config(state_dir: &std::path::Path, tokens_per_period: u32) -> IssuerConfig {
    IssuerConfig::from_toml(&format!(
        "listen = \"127.0.0.1:0\"\nstate_dir = {state_dir:?}\nissuer_name = \"{ISSUER}\"\ntokens_per_period = {tokens_per_period}\nregistration_puzzle_bits = 8\n\
         [account_quotas]\nprober = 5\n"
    ))
    .unwrap()
}

struct Running {
    addr: std::net::SocketAddr,
    pin: openrelay_types::KeyPin,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(config: &IssuerConfig) -> Running {
    let identity = Identity::generate().unwrap();
    let service = Arc::new(IssuerService::new(config).unwrap());
    let endpoint = IssuerService::bind(config, &identity).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(service.run(endpoint, async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        pin: identity.pin(),
        stop,
        task,
    }
}

#[tokio::test]
async fn accounts_sessions_quota_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 3);
    let issuer = start(&config).await;
    let client = IssuerClient::connect(issuer.addr, issuer.pin)
        .await
        .unwrap();

    client
        .register(ISSUER, "alice", "correct horse")
        .await
        .unwrap();
    assert!(matches!(
        client.register(ISSUER, "alice", "another").await,
        Err(IssuerClientError::Taken)
    ));
    assert!(matches!(
        client.login(ISSUER, "alice", "wrong horse").await,
        Err(IssuerClientError::LoginFailed)
    ));
    assert!(matches!(
        client.login(ISSUER, "mallory", "correct horse").await,
        Err(IssuerClientError::LoginFailed)
    ));
    let session = client
        .login(ISSUER, "alice", "correct horse")
        .await
        .unwrap();

    let directory = client.directory().await.unwrap();
    let keys = directory.epoch_keys().unwrap();
    assert_eq!(keys.len(), 1);
    let challenge = TokenChallenge::for_issuer("issuer.test");
    let tokens = client
        .fetch_tokens(&session, &keys[0].key, &challenge, 3)
        .await
        .unwrap();
    let verifier = TokenVerifier::new(&challenge, keys.clone()).unwrap();
    let now = keys[0].not_before + 1;
    for token in &tokens {
        verifier.verify(token, now).unwrap();
    }
    // Over the quota: a clear 429.
    match client
        .fetch_tokens(&session, &keys[0].key, &challenge, 1)
        .await
    {
        Err(IssuerClientError::QuotaExhausted(message)) => {
            assert!(message.contains("3 tokens per 86400 seconds"), "{message}")
        }
        other => panic!("expected the quota, got {other:?}"),
    }
    // A measuring validator's probe account named in `account_quotas`
    // has its larger quota, and no more.
    client
        .register(ISSUER, "prober", "probe horse")
        .await
        .unwrap();
    let prober = client.login(ISSUER, "prober", "probe horse").await.unwrap();
    let fetched = client
        .fetch_tokens(&prober, &keys[0].key, &challenge, 5)
        .await
        .unwrap();
    assert_eq!(fetched.len(), 5);
    match client
        .fetch_tokens(&prober, &keys[0].key, &challenge, 1)
        .await
    {
        Err(IssuerClientError::QuotaExhausted(message)) => {
            assert!(message.contains("5 tokens per 86400 seconds"), "{message}")
        }
        other => panic!("expected the larger quota's end, got {other:?}"),
    }
    // Another account has its own quota; a session from a failed login has none.
    client
        .register(ISSUER, "bob", "hunter2 but longer")
        .await
        .unwrap();
    let bob = client
        .login(ISSUER, "bob", "hunter2 but longer")
        .await
        .unwrap();
    assert_eq!(
        client
            .fetch_tokens(&bob, &keys[0].key, &challenge, 1)
            .await
            .unwrap()
            .len(),
        1
    );

    // Keys on disk are private; the directory file matches what is served.
    let key_file = std::fs::read_dir(dir.path().join("token-keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let file = std::fs::read(dir.path().join("issuer-directory.json")).unwrap();
    assert_eq!(
        openrelay_tokens::IssuerDirectory::from_json(&file).unwrap(),
        directory
    );
}

#[tokio::test]
async fn accounts_and_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), 10);
    let issuer = start(&config).await;
    let client = IssuerClient::connect(issuer.addr, issuer.pin)
        .await
        .unwrap();
    client
        .register(ISSUER, "carol", "pass phrase")
        .await
        .unwrap();
    let before = client.directory().await.unwrap();
    drop(client);
    // The store is released once the service has stopped.
    let _ = issuer.stop.send(());
    issuer.task.await.unwrap();

    let issuer = start(&config).await;
    let client = IssuerClient::connect(issuer.addr, issuer.pin)
        .await
        .unwrap();
    client.login(ISSUER, "carol", "pass phrase").await.unwrap();
    assert_eq!(client.directory().await.unwrap(), before);
}

#[test]
fn opaque_messages_do_not_carry_the_password() {
    use opaque_ke::{ClientLogin, ClientRegistration};
    let password = b"a rather distinctive password";
    let mut rng = rand_core::OsRng;
    let registration = ClientRegistration::<Suite>::start(&mut rng, password).unwrap();
    let login = ClientLogin::<Suite>::start(&mut rng, password).unwrap();
    for message in [
        registration.message.serialize().to_vec(),
        login.message.serialize().to_vec(),
    ] {
        assert!(!message.windows(password.len()).any(|w| w == password));
    }
}
