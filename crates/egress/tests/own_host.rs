//! The egress refuses its own host and the operator's infrastructure.
//!
//! In a network namespace made for the test, the egress host has a
//! public-looking address on a veth link, with a TCP service listening on
//! it: CONNECT to that address, or to a name resolving to it, is refused
//! with 403 and Proxy-Status `destination_ip_prohibited`, and the service
//! sees no connection; an address added while the egress runs is refused
//! too; an egress whose `allow` names the address reaches the service. Then
//! the operator's deny list (beating `allow`, per port where it says so) and
//! the infrastructure the config names (issuer, registry, Redis, resolver).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openrelay_testkit::dns::{dns_server, zone};
use openrelay_testkit::egress::{Session, start_egress};
use openrelay_testkit::netns::{self, Place, must};
use openrelay_transport::task::AbortOnDrop;
use tokio::net::TcpListener;

/// A TCP service on `addr` counting the connections it accepts.
async fn service(addr: &str) -> (SocketAddr, Arc<AtomicUsize>, AbortOnDrop<()>) {
    let listener = TcpListener::bind(addr).await.unwrap();
    let bound = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        while let Ok((_tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::Relaxed);
        }
    });
    (bound, accepted, AbortOnDrop(task))
}

fn prohibited(status: u16, proxy_status: &str) -> bool {
    status == 403 && proxy_status.contains("error=destination_ip_prohibited")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_to_the_egress_hosts_own_addresses_is_refused() {
    let test = "connect_to_the_egress_hosts_own_addresses_is_refused";
    let Place::Inside { link } = netns::isolated(
        "h",
        test,
        &["11.79.114.2/30", "2a0c:79:114::2/64"],
        Duration::from_secs(120),
    ) else {
        return;
    };
    let (v4, accepted, _v4_task) = service("11.79.114.2:0").await;
    let (v6, accepted_v6, _v6_task) = service("[2a0c:79:114::2]:0").await;
    let resolver = dns_server(
        "127.0.0.1".parse().unwrap(),
        zone(&[
            ("own.test.", &["11.79.114.2"]),
            ("own6.test.", &["2a0c:79:114::2"]),
        ]),
    )
    .await;
    let egress = start_egress(&format!(
        "[egress]\nconnect_timeout_secs = 3\ndns_resolver = \"{}\"\n",
        resolver.addr
    ));
    let session = Session::open(&egress).await;
    for target in [
        v4.to_string(),
        format!("own.test:{}", v4.port()),
        v6.to_string(),
        format!("own6.test:{}", v6.port()),
        format!("[::ffff:11.79.114.2]:{}", v4.port()),
    ] {
        let answer = session.connect(&target).await;
        assert!(
            prohibited(answer.status, &answer.proxy_status()),
            "CONNECT {target}: {} {}",
            answer.status,
            answer.proxy_status()
        );
    }
    assert_eq!(
        accepted.load(Ordering::Relaxed),
        0,
        "the service was reached"
    );
    assert_eq!(
        accepted_v6.load(Ordering::Relaxed),
        0,
        "the IPv6 service was reached"
    );

    // An address the host gains while the egress runs is refused as soon as
    // the egress has heard of it (within seconds at most).
    must("ip", &["addr", "add", "11.79.114.6/32", "dev", &link]);
    let (added, accepted_added, _added_task) = service("11.79.114.6:0").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = session.connect(&added.to_string()).await;
        if prohibited(answer.status, &answer.proxy_status()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an added address is still reachable: {} {}",
            answer.status,
            answer.proxy_status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = accepted_added.load(Ordering::Relaxed);
    let answer = session.connect(&added.to_string()).await;
    assert!(prohibited(answer.status, &answer.proxy_status()));
    assert_eq!(accepted_added.load(Ordering::Relaxed), before);

    // The operator's allow list names the address: reached (so the refusal
    // above was the policy, not the network).
    let lab = start_egress(
        "[egress]\ndangerously_allow_networks = [\"11.79.114.2/32\"]\nconnect_timeout_secs = 3\n",
    );
    let answer = Session::open(&lab).await.connect(&v4.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.proxy_status());
    drop(answer);
    let deadline = Instant::now() + Duration::from_secs(5);
    while accepted.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "the allowed service was not reached"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deny_list_beats_allow_and_can_name_ports() {
    // Loopback allowed, as on a development network; the deny list then
    // takes some of it back.
    let (one, accepted_one, _t1) = service("127.0.0.51:0").await;
    let (two, accepted_two, _t2) = service("127.0.0.52:0").await;
    let (other_port, _, _t3) = service("127.0.0.52:0").await;
    let (allowed, accepted_allowed, _t4) = service("127.0.0.53:0").await;
    let egress = start_egress(&format!(
        "[egress]\ndangerously_allow_networks = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.51\", {{ net = \"127.0.0.52/32\", ports = [{}] }}]\n",
        two.port()
    ));
    let session = Session::open(&egress).await;
    for target in [one, two] {
        let answer = session.connect(&target.to_string()).await;
        assert!(
            prohibited(answer.status, &answer.proxy_status()),
            "CONNECT {target}: {} {}",
            answer.status,
            answer.proxy_status()
        );
    }
    for target in [other_port, allowed] {
        let answer = session.connect(&target.to_string()).await;
        assert_eq!(
            answer.status,
            200,
            "CONNECT {target}: {}",
            answer.proxy_status()
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(accepted_one.load(Ordering::Relaxed), 0);
    assert_eq!(accepted_two.load(Ordering::Relaxed), 0);
    assert_eq!(accepted_allowed.load(Ordering::Relaxed), 1);
}

/// The issuer, registry, validators, Redis and resolver the config names
/// are refused as destinations, without the operator listing them; the
/// issuer's, registry's and validators' own QUIC ports stay open (clients
/// reach them through the relays). In a namespace without routes, so nothing leaves this machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_infrastructure_in_the_config_is_refused() {
    let test = "the_infrastructure_in_the_config_is_refused";
    let Place::Inside { .. } = netns::isolated("i", test, &[], Duration::from_secs(120)) else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let keys = state.path().join("issuer-directory.json");
    openrelay_tokens::testing::write_directory(&keys, openrelay_tokens::testing::issuer_key());
    let operator_key = state.path().join("operator.key");
    let pin = openrelay_transport::identity::Identity::generate()
        .unwrap()
        .pin();
    let egress = start_egress(&format!(
        r#"[egress]
connect_timeout_secs = 1
dns_resolver = "11.79.114.13:53"

[egress.payment]
settle_at = {{ addr = "11.79.114.10:4450", key = "{pin}" }}

[egress.payment.tokens]
issuer_name = "issuer.test:4450"
issuer_keys = "{keys}"
redis_url = "redis://11.79.114.11:6379/0"

[publish]
registry = {{ addr = "11.79.114.12:4460", key = "{pin}" }}
validators = [{{ addr = "11.79.114.15:4470", key = "{pin}" }}]
operator_key_file = "{operator_key}"
operator_name = "Test"
operator_contact = "mailto:test@example.invalid"
jurisdiction = "DE"
country = "DE"
city = "Berlin"
network = "AS64500"
bandwidth_bps = 1000000
"#,
        keys = keys.display(),
        operator_key = operator_key.display(),
    ));
    let session = Session::open(&egress).await;
    for target in [
        "11.79.114.10:22",
        "11.79.114.11:6379",
        "11.79.114.11:22",
        "11.79.114.12:22",
        "11.79.114.13:53",
        "11.79.114.13:443",
        "11.79.114.15:22",
    ] {
        let answer = session.connect(target).await;
        assert!(
            prohibited(answer.status, &answer.proxy_status()),
            "CONNECT {target}: {} {}",
            answer.status,
            answer.proxy_status()
        );
    }
    // The services' own ports are not refused by the policy (nothing
    // listens there: the connection fails, it is not prohibited).
    for target in [
        "11.79.114.10:4450",
        "11.79.114.12:4460",
        "11.79.114.15:4470",
        "11.79.114.14:22",
    ] {
        let answer = session.connect(target).await;
        assert!(
            !prohibited(answer.status, &answer.proxy_status()),
            "CONNECT {target}: {}",
            answer.proxy_status()
        );
    }
}
