//! The registry as real processes: `openrelay registry` and two of three
//! `openrelay validator`s (threshold 2). The test publishes as two operators
//! (an ingress and an egress each), then checks that the directory the
//! registry serves passes the client's verification, and that a relay that
//! stops refreshing leaves the next directory (churn).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Proc, run_openrelay};
use openrelay_directory::{
    CountryCode, DescriptorFields, Network, OperatorKey, OperatorProfile, ProfileFields, Region,
    RelayDescriptor, RelayKey, RelayRole, SignedDescriptor, TrustConfig, ValidatorId,
    verify_directory_bytes,
};
use openrelay_registry::http::RegistryClient;
use openrelay_registry::service::{paths, unix_now};

fn seed(tag: u8, index: u8) -> [u8; 32] {
    let mut s = [tag; 32];
    s[31] = index;
    s
}

fn profile(operator: u8) -> Vec<u8> {
    let key = OperatorKey::from_bytes(&seed(0x2a, operator));
    let fields = ProfileFields {
        operator: key.id(),
        name: format!("Operator {operator}"),
        contact: format!("mailto:ops{operator}@example.org"),
        jurisdiction: CountryCode::parse("NL").unwrap(),
        published_at: unix_now() - 60,
    };
    key.sign_profile(OperatorProfile::new(fields).unwrap())
        .unwrap()
        .to_bytes()
}

fn descriptor(relay: u8, operator: u8, role: RelayRole) -> Vec<u8> {
    let relay_key = RelayKey::from_bytes(&seed(0x2b, relay));
    let operator_key = OperatorKey::from_bytes(&seed(0x2a, operator));
    let now = unix_now();
    let fields = DescriptorFields {
        relay: relay_key.id(),
        operator: operator_key.id(),
        role,
        endpoints: vec![format!("127.0.0.{}:4433", relay + 10).parse().unwrap()],
        quic_pin: RelayKey::from_bytes(&seed(0x2c, relay)).id().into(),
        region: Region {
            country: CountryCode::parse("DE").unwrap(),
            city: "Berlin".to_owned(),
        },
        network: Network::Asn(64_500 + u32::from(relay)),
        bandwidth_bps: 1_000_000_000,
        software_version: "openrelay 0.1.0".to_owned(),
        software_measurement: None,
        not_before: now - 60,
        not_after: now + 7200,
    };
    SignedDescriptor::sign(
        RelayDescriptor::new(fields).unwrap(),
        &relay_key,
        &operator_key,
    )
    .unwrap()
    .to_bytes()
}

const RELAYS: [(u8, u8, RelayRole); 4] = [
    (0, 0, RelayRole::Ingress),
    (1, 0, RelayRole::Egress),
    (2, 1, RelayRole::Ingress),
    (3, 1, RelayRole::Egress),
];

fn validator_config(dir: &Path, registry: SocketAddr, key: &str) -> String {
    let path = dir.join("validator.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = {:?}\npoll_interval_secs = 1\n[registry]\naddr = \"{registry}\"\nkey = \"{key}\"\n[log]\nlevel = \"debug\"\n",
            dir.display()
        ),
    )
    .unwrap();
    path.display().to_string()
}

async fn publish(client: &RegistryClient, path: &str, body: Vec<u8>) -> u16 {
    client.call(http::Method::POST, path, body).await.unwrap().0
}

/// Waits for a served directory that verifies and satisfies `want`.
async fn served_directory(
    client: &RegistryClient,
    trust: &TrustConfig,
    want: impl Fn(usize) -> bool,
    refresh: &[(u8, u8, RelayRole)],
) -> (u64, usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for &(relay, operator, role) in refresh {
            assert_eq!(
                publish(
                    client,
                    paths::DESCRIPTORS,
                    descriptor(relay, operator, role)
                )
                .await,
                204
            );
        }
        if let Ok((200, bytes)) = client
            .call(http::Method::GET, paths::DIRECTORY, Vec::new())
            .await
        {
            let verified = verify_directory_bytes(&bytes, trust, unix_now(), None).unwrap();
            let relays = verified.relays().count();
            if want(relays) {
                return (verified.sequence(), relays);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no suitable directory was served in time"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validators_sign_what_the_registry_serves_and_silent_relays_leave() {
    let dir = tempfile::tempdir().unwrap();
    // Three validator keys; the registry counts any two.
    let mut validator_ids = Vec::new();
    for i in 0..3 {
        let vdir = dir.path().join(format!("validator-{i}"));
        std::fs::create_dir_all(&vdir).unwrap();
        let config = validator_config(
            &vdir,
            "127.0.0.1:9".parse().unwrap(),
            "ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        );
        let out = run_openrelay(
            &["validator", "--config", &config, "--print-key"],
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "{}", out.stderr);
        validator_ids.push(out.stdout.trim().to_owned());
    }
    let registry_config = dir.path().join("registry.toml");
    std::fs::write(
        &registry_config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\nvalidators = [{}]\nthreshold = 2\ndescriptor_ttl_secs = 3\ndirectory_lifetime_secs = 3600\nproposal_interval_secs = 1\n[log]\nlevel = \"debug\"\nfile = {:?}\n",
            dir.path().join("registry").display(),
            validator_ids.iter().map(|id| format!("\"{id}\"")).collect::<Vec<_>>().join(", "),
            dir.path().join("registry.log").display(),
        ),
    )
    .unwrap();
    let registry = Proc::start(
        &[
            "registry",
            "--config",
            &registry_config.display().to_string(),
        ],
        &dir.path().join("registry.stderr"),
    );
    let (listen, key) = (registry.ready_field("listen"), registry.ready_field("key"));
    let listen: SocketAddr = listen.parse().unwrap();
    // Two of the three validators run.
    let _validators: Vec<Proc> = (0..2)
        .map(|i| {
            let vdir = dir.path().join(format!("validator-{i}"));
            let config = validator_config(&vdir, listen, &key);
            Proc::start(&["validator", "--config", &config], &vdir.join("stderr"))
        })
        .collect();

    let client = RegistryClient::new(listen, key.parse().unwrap());
    // A descriptor of an operator without a profile is refused.
    assert_eq!(
        publish(
            &client,
            paths::DESCRIPTORS,
            descriptor(0, 0, RelayRole::Ingress)
        )
        .await,
        422
    );
    for operator in 0..2 {
        assert_eq!(
            publish(&client, paths::PROFILES, profile(operator)).await,
            204
        );
    }
    let mut forged = descriptor(0, 0, RelayRole::Ingress);
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(publish(&client, paths::DESCRIPTORS, forged).await, 403);

    let trust = TrustConfig::new(
        validator_ids
            .iter()
            .map(|id| id.parse::<ValidatorId>().unwrap()),
        2,
        3600,
    )
    .unwrap();
    let (first, relays) = served_directory(&client, &trust, |n| n == 4, &RELAYS).await;
    assert_eq!(relays, 4);

    // Relay 3 stops refreshing: it leaves a later directory.
    let (second, relays) = served_directory(&client, &trust, |n| n == 3, &RELAYS[..3]).await;
    assert_eq!(relays, 3);
    assert!(second > first, "sequence {second} after {first}");
}
