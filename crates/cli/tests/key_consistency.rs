//! Issue 11, item 11: key consistency (RFC 9576 §6). Clients and relays
//! accept only the issuer keys the validator-signed directory lists, so an
//! issuer cannot tag users with keys of their own. Real processes: a
//! registry, three validators, relays and issuers from `devnet --export`.
//!
//! - `keys_the_directory_does_not_list_are_refused_by_relays_and_clients`:
//!   a second issuer process holding the issuer's identity key (so every
//!   pin matches) but keys of its own stands for an issuer showing a user a
//!   key of its own. Relays that follow the directory refuse tokens under
//!   its key although their configured issuer endpoint (that process) lists
//!   it; a relay configured as every relay was before (keys from the
//!   issuer) accepts them, which is the attack this closes. A client with
//!   a directory refuses to fetch tokens from it, and drops the ones it got
//!   without a directory; from the real issuer it fetches as before.
//! - `an_issuer_showing_validators_different_key_sets_gets_at_most_one_listed`:
//!   equivocation at the validators, and the bounds every one of them
//!   enforces on a publication.
//! - `a_devnet_keeps_working_across_an_issuer_key_rotation`: keys that
//!   rotate every minute are listed before they sign.
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;
use openrelay_testkit::registry as registry_fixtures;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kit::devnet::{free_udp_port, issuer_with_own_keys, start_exported as start};
use kit::{Devnet, Proc, account, fetch, run_openrelay, servers};
use openrelay_config::{ClientConfig, IssuerConfig, RelayCommon, RelayConfig, ServiceEndpoint};
use openrelay_directory::{
    Directory, IssuerId, IssuerKey, IssuerKeySet, IssuerTokenKey, KeySetFields, SignedDirectory,
    SignedIssuerKeySet, TOKEN_TYPE_BLIND_RSA,
};
use openrelay_registry_client::RegistryClient;
use openrelay_registry_client::paths;
use openrelay_tokens::header::build_authorization;
use openrelay_tokens::{PAYMENT_PATH, SigningKey, Token, TokenChallenge};
use openrelay_transport::call::PinnedConnection;
use openrelay_transport::endpoint::{self, OUTER_MTU, Tuning};
use openrelay_transport::{h3guard, h3util, udp};
use openrelay_types::KeyPin;
use openrelay_types::unix_now;
use openrelay_wire::target::Target;
use registry_fixtures::*;

const PASSWORD: &str = "correct horse battery staple";

/// The signed directory the registry serves now, if any.
async fn served(registry: &RegistryClient) -> Option<Vec<u8>> {
    match registry
        .call(http::Method::GET, paths::DIRECTORY, Vec::new())
        .await
    {
        Ok((200, bytes)) => Some(bytes),
        _ => None,
    }
}

fn directory_of(signed: &[u8]) -> Directory {
    Directory::from_bytes(&SignedDirectory::from_bytes(signed).unwrap().directory).unwrap()
}

/// Waits (up to `limit`) until the registry serves a directory for which
/// `done` holds; that directory's signed bytes.
async fn directory_where(
    registry: &RegistryClient,
    limit: Duration,
    done: impl Fn(&Directory) -> bool,
) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(bytes) = served(registry).await
            && done(&directory_of(&bytes))
        {
            return bytes;
        }
        assert!(
            Instant::now() < deadline,
            "the registry served no such directory within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The one token key in an issuer's `state_dir`.
fn token_key_of(state_dir: &Path) -> SigningKey {
    let mut files: Vec<PathBuf> = std::fs::read_dir(state_dir.join("token-keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    SigningKey::from_pem(&std::fs::read_to_string(files.remove(0)).unwrap()).unwrap()
}

/// A connect-udp request for `egress` at the ingress `ingress` (holding
/// `pin`) carrying `token`; the status and the Proxy-Status field.
async fn connect_udp(
    ingress: SocketAddr,
    pin: KeyPin,
    egress: SocketAddr,
    token: &Token,
) -> (u16, String) {
    let quic = udp::endpoint(udp::local_for(None, ingress), None).unwrap();
    let tuning = Tuning::client(Duration::from_secs(10), Duration::from_secs(2), OUTER_MTU);
    let config = endpoint::client_config(pin, &tuning).unwrap();
    let connection = quic
        .connect_with(config, ingress, "ingress")
        .unwrap()
        .await
        .unwrap();
    let (mut driver, mut requests) = h3guard::client(&connection).await.unwrap();
    let driving = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    assert!(h3util::wait_for_datagram_support(&requests, Duration::from_secs(5)).await);
    let mut request =
        h3util::connect_udp_request(&ingress.to_string(), &Target::from_socket_addr(egress))
            .unwrap();
    request.headers_mut().insert(
        http::header::AUTHORIZATION,
        build_authorization(token).parse().unwrap(),
    );
    let mut stream = requests.send_request(request).await.unwrap();
    let response = stream.recv_response().await.unwrap();
    let proxy_status = response
        .headers()
        .get("proxy-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    connection.close(quinn::VarInt::from_u32(0), b"done");
    driving.abort();
    (response.status().as_u16(), proxy_status)
}

/// A payment at the egress `egress` (holding `pin`) with `token`: its
/// status and Proxy-Status, or `None` if the answer is held for `wait`
/// (the egress holds an accepted payment's answer until the next is due).
async fn pay(
    egress: SocketAddr,
    pin: KeyPin,
    token: &Token,
    wait: Duration,
) -> Option<(u16, String)> {
    let quic = udp::endpoint(udp::local_for(None, egress), None).unwrap();
    let session = PinnedConnection::connect(&quic, egress, pin, OUTER_MTU)
        .await
        .unwrap();
    let headers = [(http::header::AUTHORIZATION, build_authorization(token))];
    let answer = tokio::time::timeout(
        wait,
        session.request(http::Method::POST, PAYMENT_PATH, &headers, Vec::new()),
    )
    .await
    .ok()?
    .unwrap();
    let proxy_status = answer
        .headers
        .get("proxy-status")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    Some((answer.status, proxy_status))
}

/// `openrelay account <action> --config <config> --username <user>`.
fn account_at(action: &[&str], config: &Path, username: &str) -> (bool, String) {
    let mut args = action.to_vec();
    args.extend_from_slice(&[
        "--config",
        config.to_str().unwrap(),
        "--username",
        username,
        "--password-stdin",
    ]);
    account(&args, PASSWORD)
}

/// The wallet balance `openrelay account status` reports.
fn balance(config: &Path) -> u64 {
    let out = run_openrelay(
        &["account", "status", "--config", config.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "{}", out.stderr);
    out.stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no balance in {:?}", out.stdout))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_directory_does_not_list_are_refused_by_relays_and_clients() {
    let dir = tempfile::Builder::new()
        .prefix("openrelay-keys-")
        .tempdir()
        .unwrap();
    let configs = kit::export_devnet(dir.path(), &["--log-level", "debug"]);
    let issuer_config = IssuerConfig::load(&configs.join("issuer.toml")).unwrap();
    let issuer_name = issuer_config.issuer_name.clone();

    // The second issuer: the issuer's identity (so clients' and relays' pins
    // match), keys of its own, publishing nothing.
    let (rogue_path, rogue_addr) =
        issuer_with_own_keys(&configs, dir.path(), Ipv4Addr::new(127, 0, 5, 2));
    let rogue_state = dir.path().join("rogue");

    // Ingress 1 and egress 1 follow the directory, but ask the second
    // issuer for keys (it lists its own); a third relay is configured as
    // every relay was before this item (keys from the issuer, no
    // directory).
    let rogue_endpoint = |key: KeyPin| ServiceEndpoint {
        addr: rogue_addr,
        key,
    };
    let RelayConfig::Ingress(mut ingress) =
        RelayConfig::load(&configs.join("ingress-1.toml")).unwrap()
    else {
        panic!("ingress-1 is an ingress");
    };
    let admission = ingress.role.admission.as_mut().unwrap();
    let issuer_pin = admission.issuer.as_ref().unwrap().key;
    admission.issuer = Some(rogue_endpoint(issuer_pin));
    assert!(
        ingress.common.directory.is_some(),
        "the devnet's relays follow the directory"
    );
    let to_toml = |relay: RelayConfig| relay.to_toml().unwrap();
    std::fs::write(
        configs.join("ingress-1.toml"),
        to_toml(RelayConfig::Ingress(ingress.clone())),
    )
    .unwrap();
    let RelayConfig::Egress(mut egress) =
        RelayConfig::load(&configs.join("egress-1.toml")).unwrap()
    else {
        panic!("egress-1 is an egress");
    };
    let tokens = &mut egress.role.payment.as_mut().unwrap().tokens;
    tokens.issuer = Some(rogue_endpoint(issuer_pin));
    std::fs::write(
        configs.join("egress-1.toml"),
        to_toml(RelayConfig::Egress(egress.clone())),
    )
    .unwrap();
    let mut today = ingress.clone();
    today.common = RelayCommon {
        listen: SocketAddr::from((
            Ipv4Addr::new(127, 0, 1, 1),
            free_udp_port(Ipv4Addr::new(127, 0, 1, 1)),
        )),
        state_dir: dir.path().join("ingress-today"),
        directory: None,
        publish: None,
        ..ingress.common.clone()
    };
    std::fs::write(
        configs.join("ingress-today.toml"),
        to_toml(RelayConfig::Ingress(today.clone())),
    )
    .unwrap();

    let _registry = start("registry", &configs.join("registry.toml"));
    let _validators: Vec<Proc> = (1..=3)
        .map(|i| start("validator", &configs.join(format!("validator-{i}.toml"))))
        .collect();
    let _issuer = start("issuer", &configs.join("issuer.toml"));
    let _rogue = start("issuer", &rogue_path);
    let relays: Vec<Proc> = [
        "ingress-1",
        "ingress-2",
        "egress-1",
        "egress-2",
        "ingress-today",
    ]
    .iter()
    .map(|name| start("relay", &configs.join(format!("{name}.toml"))))
    .collect();
    let pin_of = |proc: &Proc| -> KeyPin { proc.ready_field("key").parse().unwrap() };
    let (ingress_pin, egress_pin, today_pin) =
        (pin_of(&relays[0]), pin_of(&relays[2]), pin_of(&relays[4]));

    // The directory lists the issuer's key set (its real key).
    let client = ClientConfig::load(&configs.join("client.toml")).unwrap();
    let followed = client.directory.clone().unwrap();
    let registry = RegistryClient::new(followed.registry.addr, followed.registry.key);
    let issuer_id = IssuerId::try_from(issuer_pin).unwrap();
    let listed = directory_where(&registry, Duration::from_secs(60), |d| {
        d.key_set(&issuer_id).is_some() && d.descriptors().len() >= 4
    })
    .await;
    let listed_key = token_key_of(&issuer_config.state_dir);
    let unlisted_key = token_key_of(&rogue_state);
    let set = directory_of(&listed).key_set(&issuer_id).unwrap().clone();
    assert_eq!(set.key_set().keys()[0].key, listed_key.public().spki());

    // --- Relays (item 5b) ---------------------------------------------
    let access = TokenChallenge::for_ingress_operator(
        &issuer_name,
        &ingress.common.operator_key.unwrap().to_string(),
    );
    let mint = |key: &SigningKey, challenge: &TokenChallenge| {
        openrelay_tokens::testing::mint(key, challenge)
    };
    let egress_addr = egress.common.listen;
    // Until the ingress has taken the listed key, it answers 503.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, details) = connect_udp(
            ingress.common.listen,
            ingress_pin,
            egress_addr,
            &mint(&listed_key, &access),
        )
        .await;
        if status == 200 {
            break;
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "a token under the listed key: {status} {details}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, details) = connect_udp(
        ingress.common.listen,
        ingress_pin,
        egress_addr,
        &mint(&unlisted_key, &access),
    )
    .await;
    assert_eq!(
        (status, details.contains("unknown token key")),
        (401, true),
        "the ingress that follows the directory took a token under an unlisted key: {details}"
    );
    // As every ingress did before: keys from the issuer, whatever it says.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, details) = loop {
        let answer = connect_udp(
            today.common.listen,
            today_pin,
            egress_addr,
            &mint(&unlisted_key, &access),
        )
        .await;
        if answer.0 != 503 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        status, 200,
        "without a directory the issuer's own key is taken (the attack): {details}"
    );

    let payment = TokenChallenge::for_relay(&issuer_name, egress_pin.to_string());
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, details) = loop {
        let answer = pay(
            egress_addr,
            egress_pin,
            &mint(&unlisted_key, &payment),
            Duration::from_secs(10),
        )
        .await
        .expect("a refused payment is answered at once");
        if answer.0 != 503 || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        (status, details.contains("unknown token key")),
        (401, true),
        "the egress that follows the directory took a payment under an unlisted key: {details}"
    );
    // A payment under the listed key is taken: its answer is held until
    // the next one is due, and the token is spent.
    let paid = mint(&listed_key, &payment);
    assert_eq!(
        pay(egress_addr, egress_pin, &paid, Duration::from_secs(3)).await,
        None,
        "a payment under the listed key is accepted"
    );
    let (status, details) = pay(egress_addr, egress_pin, &paid, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (status, details.contains("already spent")),
        (401, true),
        "{details}"
    );

    // --- Clients (item 5a) --------------------------------------------
    // One state directory, two configs: as before this item (relays from
    // the config, no directory), and with the directory (cached, as a
    // running client keeps it); both with the second issuer as theirs.
    let state = dir.path().join("client-a");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("directory.bin"), &listed).unwrap();
    let mut checked = ClientConfig {
        state_dir: state.clone(),
        ..client.clone()
    };
    checked.account.as_mut().unwrap().issuer.addr = rogue_addr;
    let unchecked = ClientConfig {
        directory: None,
        ..checked.clone()
    };
    let (checked_path, unchecked_path) = (
        configs.join("client-a.toml"),
        configs.join("client-today.toml"),
    );
    std::fs::write(&checked_path, checked.to_toml().unwrap()).unwrap();
    std::fs::write(&unchecked_path, unchecked.to_toml().unwrap()).unwrap();

    let (ok, said) = account_at(&["register"], &unchecked_path, "alice");
    assert!(ok, "{said}");
    assert!(
        balance(&unchecked_path) > 0,
        "without a directory the tokens are taken: {said}"
    );

    let (ok, said) = account_at(&["login", "--direct"], &checked_path, "alice");
    assert!(
        !ok,
        "a client with a directory fetched tokens under an unlisted key: {said}"
    );
    assert!(
        said.contains("does not list") && said.contains("RFC 9576"),
        "the refusal names its reason: {said}"
    );
    assert_eq!(
        balance(&checked_path),
        0,
        "the tokens under the unlisted key are dropped from the wallet"
    );

    // From the real issuer, the same client fetches as ever.
    let honest_path = configs.join("client-b.toml");
    let honest = ClientConfig {
        state_dir: dir.path().join("client-b"),
        ..client.clone()
    };
    std::fs::write(&honest_path, honest.to_toml().unwrap()).unwrap();
    let (ok, said) = account_at(&["register"], &honest_path, "bob");
    assert!(ok && said.contains("logged in as bob"), "{said}");
    assert!(balance(&honest_path) > 0, "{said}");
}

/// A key set of `issuer` with one stand-in key (`n`; the registry and
/// validators do not parse token keys) signing from `not_before` for
/// `period` seconds, published at `published_at`.
fn one_key_set(
    issuer: &IssuerKey,
    n: u8,
    not_before: u64,
    period: u64,
    published_at: u64,
) -> SignedIssuerKeySet {
    let set = IssuerKeySet::new(KeySetFields {
        issuer: issuer.id(),
        issuer_name: "issuer.test:4450".into(),
        published_at,
        keys: vec![IssuerTokenKey {
            token_type: TOKEN_TYPE_BLIND_RSA,
            key: vec![n; 342],
            not_before,
            expires: not_before + 2 * period,
        }],
    })
    .unwrap();
    issuer.sign_key_set(set).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_showing_validators_different_key_sets_gets_at_most_one_listed() {
    let dir = tempfile::tempdir().unwrap();
    let keys = validator_keys(dir.path(), 3);
    let issuers: Vec<IssuerKey> = (1..=3)
        .map(|i| IssuerKey::from_bytes(&[0x40 + i; 32]))
        .collect();
    // Issuers 1 and 2 are recognised; keys must sign for at least a minute.
    let publication = format!(
        "issuers = [\"{}\", \"{}\"]\nmin_token_key_period_secs = 60",
        issuers[0].id(),
        issuers[1].id()
    );
    let registry_dir = dir.path().join("registry");
    std::fs::create_dir_all(&registry_dir).unwrap();
    let registry_config = registry_dir.join("registry.toml");
    std::fs::write(
        &registry_config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\nvalidators = {}\nthreshold = 2\nproposal_interval_secs = 1\n[publication]\n{publication}\n[log]\nlevel = \"debug\"\nfile = {:?}\n",
            registry_dir,
            key_list(&keys),
            registry_dir.join("registry.log"),
        ),
    )
    .unwrap();
    let registry_proc = start("registry", &registry_config);
    let registry_addr: SocketAddr = registry_proc.ready_field("listen").parse().unwrap();
    let registry_key = registry_proc.ready_field("key");
    let registry = RegistryClient::new(registry_addr, registry_key.parse().unwrap());
    let _validators: Vec<Proc> = keys
        .iter()
        .map(|v| start_validator(v, &keys, 2, registry_addr, &registry_key, &publication))
        .collect();
    let validators: Vec<RegistryClient> = _validators.iter().map(validator_client).collect();
    let everyone: Vec<RegistryClient> = std::iter::once(registry.clone())
        .chain(validators.clone())
        .collect();

    // Two relays, so the registry has a directory to propose.
    publish(&everyone, 0, 0, openrelay_types::RelayRole::Ingress).await;
    publish(&everyone, 1, 1, openrelay_types::RelayRole::Egress).await;

    let now = unix_now();
    // Issuer 1 shows set A to validators 1 and 2, set B (newer) to
    // validator 3 and to the registry (which sides with the minority).
    let a = one_key_set(&issuers[0], 1, now - 60, 3600, now - 20);
    let b = one_key_set(&issuers[0], 2, now - 60, 3600, now - 10);
    for (target, set) in [
        (&validators[0], &a),
        (&validators[1], &a),
        (&validators[2], &b),
        (&registry, &b),
    ] {
        assert_eq!(post(target, paths::ISSUER_KEYS, set.to_bytes()).await, 204);
    }
    // Issuer 2 shows each validator another set: none may be listed.
    for (i, target) in validators.iter().enumerate() {
        let set = one_key_set(&issuers[1], 10 + i as u8, now - 60, 3600, now - 5);
        assert_eq!(post(target, paths::ISSUER_KEYS, set.to_bytes()).await, 204);
    }
    let first = one_key_set(&issuers[1], 10, now - 60, 3600, now - 5);
    assert_eq!(
        post(&registry, paths::ISSUER_KEYS, first.to_bytes()).await,
        204
    );

    let listed = directory_where(&registry, Duration::from_secs(60), |d| {
        d.key_set(&issuers[0].id()).is_some()
    })
    .await;
    let directory = directory_of(&listed);
    assert_eq!(
        directory.key_set(&issuers[0].id()).unwrap().digest(),
        a.digest(),
        "the set most validators saw is listed, not the registry's"
    );
    assert!(
        directory.key_set(&issuers[1].id()).is_none(),
        "an issuer showing each validator another set has none listed"
    );
    // The clients' verification agrees.
    let trust =
        openrelay_directory::TrustConfig::new(keys.iter().map(|v| v.key.id()), 2, 3600).unwrap();
    let verified =
        openrelay_directory::verify_directory_bytes(&listed, &trust, unix_now(), None).unwrap();
    assert!(verified.issuer_keys(&issuers[1].id()).is_none());
    // A few rounds later, still so.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = directory_of(&served(&registry).await.unwrap());
    assert_eq!(
        later.key_set(&issuers[0].id()).unwrap().digest(),
        a.digest()
    );
    assert!(later.key_set(&issuers[1].id()).is_none());

    // --- Item 5d: what no registry or validator holds ---------------------
    let over_bounded = {
        // Three keys, then the count made four.
        let set = IssuerKeySet::new(KeySetFields {
            issuer: issuers[0].id(),
            issuer_name: "issuer.test:4450".into(),
            published_at: now,
            keys: (0..3)
                .map(|i: u64| IssuerTokenKey {
                    token_type: TOKEN_TYPE_BLIND_RSA,
                    key: vec![20 + i as u8; 342],
                    not_before: now + i * 7200,
                    expires: now + i * 7200 + 7200,
                })
                .collect(),
        })
        .unwrap();
        let mut bytes = issuers[0].sign_key_set(set).unwrap().to_bytes();
        bytes[1 + 32 + 1 + "issuer.test:4450".len() + 8] = 4;
        bytes
    };
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("four keys", over_bounded, 400),
        ("an oversized body", vec![1; 17 * 1024], 413),
        (
            "an unrecognised issuer",
            one_key_set(&issuers[2], 30, now - 60, 3600, now).to_bytes(),
            403,
        ),
        (
            "a key signing for 30 s",
            one_key_set(&issuers[0], 31, now - 10, 30, now).to_bytes(),
            403,
        ),
        (
            "a forged signature",
            SignedIssuerKeySet::from_parts(
                one_key_set(&issuers[0], 32, now - 60, 3600, now)
                    .key_set()
                    .clone(),
                *a.signature(),
            )
            .to_bytes(),
            403,
        ),
    ];
    for (what, body, status) in &cases {
        for target in &everyone {
            assert_eq!(
                post(target, paths::ISSUER_KEYS, body.clone()).await,
                *status,
                "{what} at {}",
                target.addr()
            );
        }
    }
    // A replay of the older set: refused by the validator holding the newer.
    assert_eq!(
        post(&validators[2], paths::ISSUER_KEYS, a.to_bytes()).await,
        409
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_devnet_keeps_working_across_an_issuer_key_rotation() {
    const PERIOD: u64 = 60;
    let devnet = Devnet::start_with_args(2, "debug", &["--key-rotation-secs", "60"]);
    let client = ClientConfig::load(&devnet.state_dir.join("configs/client.toml")).unwrap();
    let followed = client.directory.clone().unwrap();
    let registry = RegistryClient::new(followed.registry.addr, followed.registry.key);
    let issuer = IssuerId::try_from(client.account.as_ref().unwrap().issuer.key).unwrap();
    let first = directory_of(&served(&registry).await.unwrap())
        .key_set(&issuer)
        .unwrap()
        .key_set()
        .keys()[0]
        .clone();
    let url = format!("http://localhost:{}/bytes/100000", servers().http.port());
    fetch(
        &["--socks5-hostname", &devnet.socks.to_string()],
        &url,
        Duration::from_secs(20),
    )
    .await
    .assert_ok("a download before the rotation");

    // The next key is listed before it signs: half a period ahead.
    let next = directory_where(&registry, Duration::from_secs(PERIOD + 20), |d| {
        d.key_set(&issuer).is_some_and(|s| {
            s.key_set()
                .keys()
                .iter()
                .any(|k| k.not_before >= first.issue_until())
        })
    })
    .await;
    let next_key = directory_of(&next)
        .key_set(&issuer)
        .unwrap()
        .key_set()
        .keys()
        .last()
        .unwrap()
        .clone();
    assert!(
        unix_now() < next_key.not_before,
        "the next key was listed before it started signing"
    );
    // Past the rotation: a login fetches tokens under the new key, and the
    // client keeps carrying traffic.
    while unix_now() < next_key.not_before + 2 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let config = devnet.state_dir.join("configs/client.toml");
    let secret =
        std::fs::read_to_string(devnet.state_dir.join("client/devnet-account.secret")).unwrap();
    let (ok, said) = account(
        &[
            "login",
            "--direct",
            "--config",
            config.to_str().unwrap(),
            "--username",
            openrelay_devnet::DEVNET_ACCOUNT,
            "--password-stdin",
        ],
        &secret,
    );
    assert!(ok && said.contains("tokens fetched"), "{said}");
    fetch(
        &["--socks5-hostname", &devnet.socks.to_string()],
        &url,
        Duration::from_secs(20),
    )
    .await
    .assert_ok("a download after the rotation");
    // Nobody refused a token of either key.
    for (name, log) in devnet.logs() {
        assert!(
            !log.contains("unknown token key") && !log.contains("not (yet) listed"),
            "{name} refused a token across the rotation"
        );
    }
}
