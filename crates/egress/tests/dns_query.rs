//! `POST /dns-query` (RFC 8484) through a real egress: query types outside
//! the egress's list are answered REFUSED (RFC 1035 §4.1.1, RCODE 5) in a
//! valid DNS answer without reaching the resolver, and answers lose the
//! address records the egress's destination policy refuses (loopback,
//! private, the egress host's own addresses), so DNS rebinding through the
//! egress fails.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use openrelay_testkit::dns::{addresses, dns_server, query, zone};
use openrelay_testkit::egress::{Session, start_egress};
use openrelay_testkit::netns::{self, Place};

const IN: u16 = 1;
const CH: u16 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_types_outside_the_list_are_refused_in_dns() {
    let resolver = dns_server(
        "127.0.0.1".parse().unwrap(),
        zone(&[("example.test.", &["93.184.215.14"])]),
    )
    .await;
    let egress = start_egress(&format!("[egress]\ndns_resolver = \"{}\"\n", resolver.addr));
    let session = Session::open(&egress).await;

    let refused = [
        ("example.test.", 255, IN),          // ANY
        ("example.test.", 252, IN),          // AXFR
        ("example.test.", 251, IN),          // IXFR
        ("example.test.", 13, IN),           // HINFO
        ("example.test.", 10, IN),           // NULL
        ("version.bind.", 16, CH),           // TXT, CHAOS class
        ("1.0.0.127.in-addr.arpa.", 12, IN), // PTR of loopback
        ("1.0.0.10.in-addr.arpa.", 12, IN),  // PTR of a private address
        ("3.2.10.in-addr.arpa.", 12, IN),    // PTR of a network
    ];
    for (name, qtype, class) in refused {
        let question = query(name, qtype, class);
        let (status, answer) = session.dns(&question).await;
        assert_eq!(
            status, 200,
            "{name} type {qtype}: a DNS answer, not an HTTP error"
        );
        let answer = answer.unwrap_or_else(|| panic!("{name} type {qtype}: not a DNS message"));
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::Refused,
            "{name} type {qtype} class {class}"
        );
        assert_eq!(answer.metadata.id, question.metadata.id);
        assert_eq!(answer.queries, question.queries);
        assert!(answer.answers.is_empty());
    }
    assert_eq!(
        resolver.queries.load(Ordering::Relaxed),
        0,
        "refused queries never reach the resolver"
    );

    // What browsers and apps ask is answered.
    for (name, qtype) in [
        ("example.test.", 1),                // A
        ("example.test.", 65),               // HTTPS
        ("example.test.", 28),               // AAAA
        ("example.test.", 15),               // MX
        ("example.test.", 16),               // TXT
        ("_xmpp._tcp.example.test.", 33),    // SRV
        ("14.215.184.93.in-addr.arpa.", 12), // PTR of a public address
    ] {
        let (status, answer) = session.dns(&query(name, qtype, IN)).await;
        assert_eq!(status, 200);
        let answer = answer.unwrap();
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "{name} {qtype}"
        );
        if qtype == 1 {
            assert_eq!(
                addresses(&answer),
                ["93.184.215.14".parse::<IpAddr>().unwrap()]
            );
        }
    }
    assert_eq!(resolver.queries.load(Ordering::Relaxed), 7);
}

/// A resolver answering a name with loopback, private, the egress host's
/// own address and a public one: only the public address arrives. Runs in a
/// network namespace whose veth link gives the egress a public-looking own
/// address (which no special-purpose range covers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebinding_records_are_removed_from_answers() {
    const OWN: &str = "11.79.114.2";
    let test = "rebinding_records_are_removed_from_answers";
    let Place::Inside { .. } =
        netns::isolated("q", test, &["11.79.114.2/30"], Duration::from_secs(120))
    else {
        return;
    };
    let resolver = dns_server(
        "127.0.0.1".parse().unwrap(),
        zone(&[(
            "rebind.test.",
            &[
                "127.0.0.1",
                "10.0.0.1",
                OWN,
                "93.184.215.14",
                "::1",
                "fd00::5",
                "2606:2800:21f:cb07::6",
            ],
        )]),
    )
    .await;
    let egress = start_egress(&format!("[egress]\ndns_resolver = \"{}\"\n", resolver.addr));
    let session = Session::open(&egress).await;
    let (status, answer) = session.dns(&query("rebind.test.", 1, IN)).await;
    assert_eq!(status, 200);
    let answer = answer.unwrap();
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        addresses(&answer),
        ["93.184.215.14".parse::<IpAddr>().unwrap()]
    );
    let (_, answer) = session.dns(&query("rebind.test.", 28, IN)).await;
    assert_eq!(
        addresses(&answer.unwrap()),
        ["2606:2800:21f:cb07::6".parse::<IpAddr>().unwrap()]
    );

    // What the operator allows is kept (a lab network, as the devnet does).
    let lab = start_egress(&format!(
        "[egress]\ndangerously_allow_networks = [\"10.0.0.0/8\"]\ndns_resolver = \"{}\"\n",
        resolver.addr
    ));
    let (_, answer) = Session::open(&lab)
        .await
        .dns(&query("rebind.test.", 1, IN))
        .await;
    assert_eq!(
        addresses(&answer.unwrap()),
        [
            "10.0.0.1".parse::<IpAddr>().unwrap(),
            "93.184.215.14".parse().unwrap()
        ]
    );
}
