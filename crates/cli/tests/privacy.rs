//! "No logs of who or where": with every component logging at `trace`, a
//! devnet carries TCP (SOCKS5 by name and by IP, the HTTP proxy forwarding and
//! tunnelling), UDP (by IP and by name) and refused or failing flows; then the
//! relay logs are searched for every destination (names, addresses, ports,
//! paths) and for the client's address and ports. The client may log
//! destinations, but only at debug level and below.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use openrelay_testkit as kit;
use openrelay_testkit::standalone;

use std::net::SocketAddr;
use std::time::Duration;

use kit::{Devnet, SocksUdp, events, fetch, port_mentions, servers};
use openrelay_transport::endpoint::{INNER_MTU, OUTER_MTU};
use openrelay_transport::testing::{RawClient, headers_frame, stream_fate};
use openrelay_wire::target::Target;

const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_never_log_destinations_or_client_addresses_at_trace_level() {
    let mut devnet = Devnet::start_with(2, "trace");
    let servers = servers();
    let (http_port, udp_port) = (servers.http.port(), servers.udp.port());
    let closed_port = kit::closed_port();
    let closed = closed_port.port;
    let socks = devnet.socks.to_string();
    let http_proxy = format!("http://{}", devnet.http);

    // TCP, every way in.
    for (what, proxy, url) in [
        (
            "socks5 by name",
            vec!["--socks5-hostname", socks.as_str()],
            format!("http://localhost:{http_port}/bytes/100000"),
        ),
        (
            "socks5 by IP",
            vec!["--socks5", socks.as_str()],
            format!("http://127.0.0.1:{http_port}/bytes/100000"),
        ),
        (
            "http proxy",
            vec!["-x", http_proxy.as_str()],
            format!("http://127.0.0.1:{http_port}/bytes/100000"),
        ),
        (
            "http proxy CONNECT",
            vec!["-p", "-x", http_proxy.as_str()],
            format!("http://localhost:{http_port}/bytes/100000"),
        ),
    ] {
        fetch(&proxy, &url, LIMIT).await.assert_ok(what);
    }

    // UDP by IP and by name.
    let association = SocksUdp::associate(devnet.socks).await;
    let by_name = Target::parse_authority(&format!("localhost:{udp_port}")).unwrap();
    for target in [Target::from_socket_addr(servers.udp), by_name] {
        let mut echoed = false;
        for _ in 0..10 {
            association.send(&target, b"where am I").await;
            if let Some((_, payload)) = association.recv(Duration::from_millis(500)).await {
                echoed = payload == b"where am I";
                break;
            }
        }
        assert!(echoed, "UDP echo");
    }
    drop(association);

    // Flows that fail at the egress: refused by policy, connection refused,
    // a name that does not resolve.
    for (target, want) in [
        ("10.0.0.1:80".to_owned(), 0x02),
        (format!("127.0.0.1:{closed}"), 0x05),
        ("nonexistent.invalid:80".to_owned(), 0x04),
    ] {
        let (_tcp, code) =
            kit::socks_connect(devnet.socks, &Target::parse_authority(&target).unwrap()).await;
        assert_eq!(code, want, "{target}");
    }

    // Stop cleanly (SIGINT, as Ctrl-C would) so every log is complete.
    assert!(kit::send_signal(devnet.pid(), "INT"));
    let status = devnet.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "devnet exit: {status:?}"
    );

    let logs = devnet.logs();
    let relays: Vec<&(String, String)> = logs
        .iter()
        .filter(|(name, _)| name.starts_with("ingress-") || name.starts_with("egress-"))
        .collect();
    assert_eq!(relays.len(), 4, "one log per relay");

    // The logs are real: each relay logged its start and stop, the relays
    // logged below info level, and the path's relays saw the traffic.
    for (name, text) in &relays {
        assert!(text.contains("relay serving"), "{name}.log: {text}");
        assert!(text.contains("relay stopped"), "{name}.log: {text}");
    }
    assert!(
        relays
            .iter()
            .any(|(_, text)| text.lines().any(|l| kit::level_of(l) == Some("DEBUG"))),
        "relays log at debug level when asked"
    );
    let (ingress, egress) = devnet.current_path();
    let egress_log = devnet.log(&egress);
    let stopped = kit::lines_with(&egress_log, "relay stopped").join("\n");
    assert!(
        !stopped.contains("tcp_flows=0") && !stopped.contains("udp_flows=0"),
        "{egress} carried the flows: {stopped}"
    );
    assert!(
        kit::lines_with(&devnet.log(&ingress), "relay stopped")
            .iter()
            .any(|l| !l.contains("tunnels=0")),
        "{ingress} carried the tunnel"
    );

    // Nothing about where, nor who.
    let client_ports = [devnet.socks.port(), devnet.http.port()];
    let destination_ports = [http_port, udp_port, closed];
    let client_ip = "127.0.3.1";
    for (name, text) in &relays {
        for needle in [
            "localhost",
            "127.0.0.1",
            "::1",
            "/bytes/",
            "10.0.0.1",
            "nonexistent",
            ".invalid",
            client_ip,
        ] {
            let hits = kit::lines_with(text, needle);
            assert!(hits.is_empty(), "{name}.log mentions {needle:?}: {hits:#?}");
        }
        for port in destination_ports.iter().chain(&client_ports) {
            let hits = port_mentions(text, *port);
            assert!(
                hits.is_empty(),
                "{name}.log mentions port {port}: {hits:#?}"
            );
        }
    }

    // The client logs destinations, but only at debug and trace.
    let client = devnet.log("client");
    // (A control: the checks above do find destinations in a real log.)
    assert!(!port_mentions(&client, http_port).is_empty());
    assert!(!kit::lines_with(&client, "localhost").is_empty());
    let client_events = events(&client);
    let destination = format!("localhost:{http_port}");
    assert!(
        client_events
            .iter()
            .any(|(level, e)| matches!(level.as_str(), "DEBUG" | "TRACE")
                && e.contains(&destination)),
        "client.log has the destination at debug level"
    );
    for (level, event) in &client_events {
        if matches!(level.as_str(), "DEBUG" | "TRACE") {
            continue;
        }
        for needle in ["localhost", "/bytes/", "10.0.0.1", "nonexistent"] {
            assert!(
                !event.contains(needle),
                "client.log mentions {needle:?} at {level}: {event}"
            );
        }
        for port in destination_ports {
            assert!(
                port_mentions(event, port).is_empty(),
                "client.log mentions port {port} at {level}: {event}"
            );
            let address = SocketAddr::from(([127, 0, 0, 1], port)).to_string();
            assert!(
                !event.contains(&address),
                "client.log mentions {address} at {level}: {event}"
            );
        }
    }
}

/// The port check used above finds ports and ignores other numbers, so
/// the privacy test can neither miss a leak nor fail on a byte counter.
#[test]
fn port_mentions_finds_ports_not_counters() {
    let port = 40097;
    for leak in [
        "connect to 127.0.0.1:40097 failed",
        "target=[::1]:40097",
        "port=40097",
        "dst_port=40097 other=1",
        "Target { port: 40097 }",
        "destination 40097",
        "\"40097\"",
        "40097",
    ] {
        assert_eq!(port_mentions(leak, port).len(), 1, "{leak}");
    }
    for benign in [
        "bytes_out=40097",
        "bytes_in=140097 sent=400970",
        "2026-11-21T19:49:30.400971Z",
        "rtt_us=40097",
        "port=400971",
    ] {
        assert!(port_mentions(benign, port).is_empty(), "{benign}");
    }
}

/// Malformed requests naming `secret.example`: h3 quotes the offending field
/// in its errors (an invalid `:authority`, header value or name), so a relay
/// that logged those errors would write the destination to its log.
fn malformed_requests() -> Vec<(&'static str, Vec<u8>)> {
    let pseudo = |authority: &'static str| vec![(":method", "CONNECT"), (":authority", authority)];
    let mut with_header = pseudo("relay.test:443");
    with_header.push(("x-where", "secret.example:443\u{1}"));
    let mut with_name = pseudo("relay.test:443");
    with_name.push(("Secret.Example", "1"));
    vec![
        (
            "authority with a space",
            headers_frame(&pseudo("secret.example:443 x")),
        ),
        (
            "authority with a control byte",
            headers_frame(&pseudo("secret.example:443\u{7f}")),
        ),
        (
            "header value with a control byte",
            headers_frame(&with_header),
        ),
        ("upper-case header name", headers_frame(&with_name)),
        (
            "path with a control byte",
            headers_frame(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", "relay.test"),
                (":path", "/secret.example\u{1}"),
            ]),
        ),
    ]
}

/// What a leak of `secret.example` looks like in a log: the text, or its
/// bytes as Rust prints a byte slice (`[115, 101, 99, ...]`), from the
/// second letter on so an upper-case copy (`Secret.Example`) is found too.
fn leak_needles() -> Vec<String> {
    let bytes: Vec<String> = "ecret.".bytes().map(|b| b.to_string()).collect();
    vec!["secret.example".to_owned(), bytes.join(", ")]
}

/// Item 16 of issue 11: relays log error kinds, never the Display of a
/// library error that may carry peer data. Malformed requests naming a
/// destination reach a real ingress and egress logging at trace level; the
/// destination appears in neither log, in any form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_never_put_their_fields_in_relay_logs() {
    for role in ["ingress", "egress"] {
        let relay = standalone::relay(role, "", "trace");
        let mtu = if role == "ingress" {
            OUTER_MTU
        } else {
            INNER_MTU
        };
        let client = RawClient::connect(relay.addr, relay.pin, mtu, None)
            .await
            .unwrap();
        for (what, head) in malformed_requests() {
            let (mut send, mut recv) = client.request(&head).await.unwrap();
            send.finish().unwrap();
            // The request is complete (finished), so only the answer's
            // reset tells: RFC 9114 §4.1.2 makes a malformed request a
            // stream error of type H3_MESSAGE_ERROR (0x10e).
            let (_, reset) = stream_fate(&mut send, &mut recv).await;
            assert_eq!(reset, Some(0x10e), "{role}: {what} is refused as malformed");
        }
        drop(client);
        assert!(kit::send_signal(relay.proc.pid(), "INT"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !relay.log_text().contains("relay stopped") {
            assert!(std::time::Instant::now() < deadline, "{role} stops");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = relay.log_text();
        assert!(
            log.lines()
                .any(|l| kit::level_of(l) == Some("TRACE") || kit::level_of(l) == Some("DEBUG")),
            "{role} logged below info: {log}"
        );
        assert!(
            !kit::lines_with(&log, "malformed").is_empty(),
            "{role} logged the refusals: {log}"
        );
        let lower = log.to_lowercase();
        for needle in leak_needles() {
            let hits = kit::lines_with(&lower, &needle);
            assert!(hits.is_empty(), "{role}.log mentions {needle:?}: {hits:#?}");
        }
    }
}
