//! A running client refuses bad directories and keeps working: once it has
//! verified a directory, the devnet's registry is replaced by an impostor
//! holding the registry's own TLS key (so only the directory's validator
//! signatures can tell) that serves, in turn, a forged, an under-signed, a
//! stale and a replayed (rolled-back) directory. Each is refused with its
//! own error, and none changes the client's relays, cache or traffic.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Devnet, fetch, send_signal, servers};
use openrelay_config::ClientConfig;
use openrelay_directory::{Directory, SignedDirectory, ValidatorKey};
use openrelay_registry::service::unix_now;
use openrelay_transport::endpoint::{TUNNELLED_MTU, Tuning};
use openrelay_transport::identity::Identity;
use openrelay_transport::limits::ServerLimits;
use openrelay_transport::server::{
    self, RequestContext, RequestHandler, ServerCounters, ServerStream,
};

/// The impostor: answers every request with the bytes it is told to serve.
#[derive(Debug, Default)]
struct Impostor(Mutex<Vec<u8>>);

impl RequestHandler for Impostor {
    fn handle(
        self: Arc<Self>,
        _request: http::Request<()>,
        stream: ServerStream,
        _context: RequestContext,
    ) -> impl Future<Output = ()> + Send + 'static {
        let body = Bytes::from(self.0.lock().unwrap().clone());
        server::respond(stream, http::StatusCode::OK, body)
    }
}

fn signed(directory: &Directory, validators: &[&ValidatorKey]) -> Vec<u8> {
    let mut signed = SignedDirectory::new(directory);
    for key in validators {
        signed.sign(key);
    }
    signed.to_bytes()
}

/// `directory` with a new sequence and validity window, same relays.
fn reissued(directory: &Directory, sequence: u64, issued_at: u64, valid_until: u64) -> Directory {
    Directory::new(
        sequence,
        issued_at,
        valid_until,
        directory.operators().to_vec(),
        directory.descriptors().to_vec(),
    )
    .unwrap()
}

/// Waits until the client's log holds `count` lines with `what`.
async fn wait_for(devnet: &Devnet, what: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while devnet.log("client").matches(what).count() < count {
        assert!(Instant::now() < deadline, "waited in vain for {what:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_under_signed_stale_and_replayed_directories_change_nothing() {
    let devnet = Devnet::start(3);
    let socks = devnet.socks.to_string();
    let url = format!("http://localhost:{}/bytes/100000", servers().http.port());
    let client_log = || devnet.log("client");
    wait_for(&devnet, "directory updated", 1).await;

    // Take the registry's place, with its key, at its address.
    let config = ClientConfig::load(&devnet.state_dir.join("configs/client.toml")).unwrap();
    let registry = config.directory.unwrap().registry.addr;
    let identity = Identity::load_or_create(&devnet.state_dir.join("registry")).unwrap();
    let validators: Vec<ValidatorKey> = (1..=3)
        .map(|i| {
            openrelay_registry::keyfile::load_or_create(
                &devnet.state_dir.join(format!("validator-{i}")),
            )
            .unwrap()
        })
        .collect();
    let registry_pid = devnet.component_pid("registry");
    assert!(send_signal(registry_pid, "KILL"));
    // Its socket is free once it is gone.
    while common::is_running(registry_pid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cache = devnet.state_dir.join("client/directory.bin");
    let genuine = std::fs::read(&cache).unwrap();
    let current =
        Directory::from_bytes(&SignedDirectory::from_bytes(&genuine).unwrap().directory).unwrap();
    let impostor = Arc::new(Impostor::default());
    let tuning = Tuning::relay(Duration::from_secs(30), TUNNELLED_MTU);
    // The kernel may take a moment to release the dead registry's port.
    let mut tries = 0;
    let endpoint = loop {
        match server::bind(registry, &identity, &tuning, ServerLimits::service()) {
            Ok(endpoint) => break endpoint,
            Err(_) if tries < 40 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot take the registry's place: {e}"),
        }
    };
    let serving = tokio::spawn(server::serve(
        endpoint,
        Arc::clone(&impostor),
        Arc::new(ServerCounters::default()),
        std::future::pending(),
    ));
    let serve = |bytes: Vec<u8>| *impostor.0.lock().unwrap() = bytes;

    // A newer directory, properly signed by two of three validators, is
    // accepted (so the genuine one is now an old one, for the replay).
    let now = unix_now();
    let newer = signed(
        &reissued(&current, current.sequence() + 1, now, now + 3600),
        &[&validators[0], &validators[2]],
    );
    serve(newer.clone());
    let updates = client_log().matches("directory updated").count();
    wait_for(&devnet, "directory updated", updates + 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read(&cache).unwrap() != newer {
        assert!(
            Instant::now() < deadline,
            "the newer directory was not cached"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status_before = devnet.status();
    let relays_line = |log: &str| {
        log.lines()
            .rev()
            .find(|l| l.contains("directory updated"))
            .map(str::to_owned)
    };
    let last_update = relays_line(&client_log());

    let next = current.sequence() + 2;
    let mut forged = SignedDirectory::from_bytes(&signed(
        &reissued(&current, next, now, now + 3600),
        &[&validators[0], &validators[1]],
    ))
    .unwrap();
    // One bit of content changed after signing (e.g. a relay slipped in).
    let middle = forged.directory.len() / 2;
    forged.directory[middle] ^= 1;
    let attacks = [
        (
            "forged",
            forged.to_bytes(),
            "directory has 0 valid validator signatures, 2 needed",
        ),
        (
            "under-signed",
            signed(
                &reissued(&current, next, now, now + 3600),
                &[&validators[1]],
            ),
            "directory has 1 valid validator signatures, 2 needed",
        ),
        (
            "stale",
            signed(
                &reissued(&current, next, now - 3 * 86_400, now - 2 * 86_400),
                &[&validators[0], &validators[1]],
            ),
            "expired",
        ),
        (
            "replayed",
            genuine.clone(),
            "is older than the last accepted",
        ),
    ];
    for (name, bytes, error) in attacks {
        let refusals = client_log().matches("directory not updated").count();
        serve(bytes);
        wait_for(&devnet, "directory not updated", refusals + 1).await;
        let log = client_log();
        let refusal = log
            .lines()
            .filter(|l| l.contains("directory not updated"))
            .nth(refusals)
            .unwrap();
        assert!(
            refusal.contains(error),
            "{name}: refused for the wrong reason: {refusal}"
        );
        // Nothing changed: no update, the same cache, the same directory
        // age reference, and traffic flows on the directory's relays.
        assert_eq!(relays_line(&log), last_update, "{name} was accepted");
        assert_eq!(std::fs::read(&cache).unwrap(), newer, "{name} was cached");
        let status = devnet.status();
        assert!(
            status["directory_age_secs"].as_u64() >= status_before["directory_age_secs"].as_u64(),
            "{name} changed the directory in use: {status}"
        );
        fetch(
            &["--socks5-hostname", &socks],
            &url,
            Duration::from_secs(10),
        )
        .await
        .assert_ok(name);
    }
    serving.abort();
}
