//! Traffic through a real devnet (`openrelay devnet`: two operators, each with
//! an ingress and an egress relay process, and a client process), driven by
//! real clients: curl over SOCKS5 and the HTTP proxy, and a SOCKS5 client for
//! UDP ASSOCIATE and reply codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use openrelay_testkit as kit;

use std::net::SocketAddr;
use std::time::Duration;

use kit::{Devnet, assert_bytes_eq, content, fetch, servers};
use openrelay_wire::socks5;
use openrelay_wire::target::{Host, Target};

const MIB: usize = 1 << 20;
const LIMIT: Duration = Duration::from_secs(60);

fn authority(host: &str, port: u16) -> Target {
    Target::parse_authority(&format!("{host}:{port}")).unwrap()
}

/// TCP through both hops with curl, byte-exact: SOCKS5 with the name resolved
/// at the egress (`--socks5-hostname`, host `localhost`), SOCKS5 with an IP
/// literal, the HTTP proxy forwarding an absolute-form `http://` request, and
/// the HTTP proxy's CONNECT tunnel (`-p`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_downloads_are_byte_exact_over_socks5_and_http_proxy() {
    let devnet = Devnet::start(2);
    let port = servers().http.port();
    let (socks, http) = (devnet.socks.to_string(), devnet.http.to_string());
    let http_proxy = format!("http://{http}");

    let cases: Vec<(&str, Vec<&str>, String, usize)> = vec![
        (
            "socks5-hostname, 1 MiB",
            vec!["--socks5-hostname", &socks],
            format!("http://localhost:{port}/bytes/{}", MIB),
            MIB,
        ),
        (
            "socks5-hostname, 20 MiB",
            vec!["--socks5-hostname", &socks],
            format!("http://localhost:{port}/bytes/{}", 20 * MIB),
            20 * MIB,
        ),
        (
            "socks5 with an IP literal, 1 MiB",
            vec!["--socks5", &socks],
            format!("http://127.0.0.1:{port}/bytes/{}", MIB),
            MIB,
        ),
        (
            "http proxy (absolute-form GET), 1 MiB",
            vec!["-x", &http_proxy],
            format!("http://127.0.0.1:{port}/bytes/{}", MIB),
            MIB,
        ),
        (
            "http proxy (absolute-form GET), 20 MiB",
            vec!["-x", &http_proxy],
            format!("http://127.0.0.1:{port}/bytes/{}", 20 * MIB),
            20 * MIB,
        ),
        (
            "http proxy CONNECT tunnel (-p), 20 MiB",
            vec!["-p", "-x", &http_proxy],
            format!("http://localhost:{port}/bytes/{}", 20 * MIB),
            20 * MIB,
        ),
        (
            "http proxy CONNECT tunnel (-p), empty body",
            vec!["-p", "-x", &http_proxy],
            format!("http://localhost:{port}/bytes/0"),
            0,
        ),
    ];
    for (what, proxy, url, len) in cases {
        let got = fetch(&proxy, &url, LIMIT).await;
        got.assert_ok(what);
        assert_bytes_eq(&got.body, &content(0, len), what);
    }
}

/// UDP ASSOCIATE (RFC 1928 §7): datagrams of distinct payloads and sizes to
/// the echo server by IP literal and by the name `localhost` (resolved at the
/// egress) all come back byte-exact, each with a SOCKS UDP header naming the
/// echo server as the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_echo_through_socks5_udp_associate() {
    let devnet = Devnet::start(2);
    let echo = servers().udp;
    let association = kit::SocksUdp::associate(devnet.socks).await;
    let by_ip = Target::from_socket_addr(echo);
    let by_name = authority("localhost", echo.port());

    for (label, target) in [("ip", &by_ip), ("name", &by_name)] {
        // The first datagram of a destination opens its flow; wait for it
        // to work before counting.
        let mut open = false;
        for attempt in 0..10 {
            let probe = format!("probe {label} {attempt}").into_bytes();
            association.send(target, &probe).await;
            while let Some((_, payload)) = association.recv(Duration::from_millis(500)).await {
                if payload == probe {
                    open = true;
                    break;
                }
            }
            if open {
                break;
            }
        }
        assert!(open, "no echo from {label} target at all");

        // Then 20 distinct datagrams of 1..=1181 bytes: every one must come back.
        let payloads: Vec<Vec<u8>> = (0..20u64)
            .map(|i| {
                let mut p = format!("{label}-{i}:").into_bytes();
                p.extend_from_slice(&content(i + 1, (i as usize) * 61 + 1));
                p
            })
            .collect();
        for payload in &payloads {
            association.send(target, payload).await;
        }
        let mut pending: Vec<&Vec<u8>> = payloads.iter().collect();
        while !pending.is_empty() {
            let Some((source, payload)) = association.recv(Duration::from_secs(5)).await else {
                panic!(
                    "{label}: {} of {} echoes missing",
                    pending.len(),
                    payloads.len()
                );
            };
            if payload.starts_with(b"probe ") {
                continue; // a late duplicate of a probe
            }
            let Some(i) = pending.iter().position(|p| **p == payload) else {
                panic!("{label}: unexpected datagram of {} bytes", payload.len());
            };
            pending.swap_remove(i);
            assert_eq!(source.port, echo.port(), "{label}: source port");
            let source_ok = match &source.host {
                Host::Ip(ip) => ip.is_loopback(),
                Host::Name(name) => name.as_str() == "localhost",
            };
            assert!(
                source == *target || source_ok,
                "{label}: the source is the echo server"
            );
            if label == "ip" {
                assert!(source == by_ip, "source address of an IP flow");
            }
        }
    }
}

/// 100 downloads at once in one curl (`-Z --parallel-max 100`) through the
/// SOCKS5 proxy, each with its own content: all byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_concurrent_downloads() {
    const N: u64 = 100;
    const SIZE: usize = 256 * 1024;
    let devnet = Devnet::start(2);
    let port = servers().http.port();
    let dir = tempfile::tempdir().unwrap();
    let socks = devnet.socks.to_string();
    let mut args: Vec<String> = [
        "-sS",
        "--fail",
        "-Z",
        "--parallel-max",
        "100",
        "--parallel-immediate",
        "--socks5-hostname",
        &socks,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for i in 0..N {
        args.push("-o".into());
        args.push(dir.path().join(format!("{i}")).display().to_string());
        args.push(format!("http://localhost:{port}/bytes/{SIZE}/{i}"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = kit::run_curl(&refs, LIMIT).await;
    assert_eq!(run.exit, Some(0), "curl -Z failed: {}", run.stderr);
    for i in 0..N {
        let body = std::fs::read(dir.path().join(format!("{i}"))).unwrap_or_default();
        assert_bytes_eq(&body, &content(i, SIZE), &format!("download {i}"));
    }
    // All of them rode one path: the client did not need to rebuild it.
    let paths = kit::lines_with(&devnet.log("client"), "path established");
    assert_eq!(paths.len(), 1, "{paths:?}");
}

/// Refused or unreachable destinations get the right SOCKS5 reply code and
/// HTTP status, promptly; malformed SOCKS requests get the right reply and
/// a closed connection, not a hang. The client stays usable afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_unreachable_destinations_and_malformed_requests() {
    let devnet = Devnet::start(2);
    let socks = devnet.socks;
    let http_proxy = format!("http://{}", devnet.http);
    let closed_port = kit::closed_port();
    let closed = closed_port.port;

    // SOCKS5 reply codes (RFC 1928 §6), checked on the wire.
    let cases = [
        (
            "private address 10.0.0.1:80",
            authority("10.0.0.1", 80),
            0x02,
        ),
        ("denied port 127.0.0.1:25", authority("127.0.0.1", 25), 0x02),
        (
            "loopback by name, denied port",
            authority("localhost", 25),
            0x02,
        ),
        (
            "closed local port",
            Target::from_socket_addr(SocketAddr::from(([127, 0, 0, 1], closed))),
            0x05,
        ),
        (
            "unresolvable name",
            authority("nonexistent.invalid", 80),
            0x04,
        ),
    ];
    for (what, target, want) in &cases {
        let started = std::time::Instant::now();
        let (_tcp, code) = kit::socks_connect(socks, target).await;
        assert_eq!(code, *want, "{what}: SOCKS reply code");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what}: reply took {:?}",
            started.elapsed()
        );
    }

    // curl sees the refusal as a failure too.
    let refused = fetch(
        &["--socks5-hostname", &socks.to_string()],
        "http://10.0.0.1/",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        refused.exit.is_some_and(|c| c != 0),
        "curl through SOCKS5 to 10.0.0.1 must fail: {refused:?}"
    );
    assert!(refused.body.is_empty());

    // The HTTP proxy: status and Proxy-Status (RFC 9209).
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let headers_arg = headers.display().to_string();
    let http_cases = [
        (
            "private address",
            "http://10.0.0.1/".to_owned(),
            403,
            Some("destination_ip_prohibited"),
        ),
        (
            "denied port",
            "http://127.0.0.1:25/".to_owned(),
            403,
            Some("http_request_denied"),
        ),
        (
            "closed port",
            format!("http://127.0.0.1:{closed}/"),
            502,
            None,
        ),
    ];
    for (what, url, status, error) in http_cases {
        let got = fetch(
            &["-x", &http_proxy, "-D", &headers_arg],
            &url,
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(got.exit, Some(0), "{what}: {got:?}");
        assert_eq!(got.status, status, "{what}: HTTP status");
        let head = std::fs::read_to_string(&headers).unwrap();
        let proxy_status = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("proxy-status:"))
            .unwrap_or_else(|| panic!("{what}: no Proxy-Status in {head}"));
        if let Some(error) = error {
            // RFC 9209 §2: the member nearest the origin (the egress, with the
            // error) first, then each proxy towards the client appends its own.
            let value = proxy_status.split_once(':').unwrap().1.trim();
            assert_eq!(
                value,
                format!("openrelay-egress; error={error}, openrelay-client"),
                "{what}"
            );
        }
    }

    // Malformed SOCKS5: bad version (no reply, closed), unknown command
    // (0x07), BIND (0x07, not supported), unknown address type (0x08).
    let limit = Duration::from_secs(5);
    let got = kit::socks_raw(socks, &[0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0], limit).await;
    assert!(
        got.is_empty(),
        "SOCKS4 greeting: closed without a reply, got {got:?}"
    );
    let mut unknown_command = vec![0x05, 0x01, 0x00];
    unknown_command.extend_from_slice(&[0x05, 0x09, 0x00, 0x01, 127, 0, 0, 1, 0, 80]);
    let mut bind = vec![0x05, 0x01, 0x00];
    bind.extend_from_slice(&[0x05, 0x02, 0x00, 0x01, 127, 0, 0, 1, 0, 80]);
    let mut unknown_atyp = vec![0x05, 0x01, 0x00];
    unknown_atyp.extend_from_slice(&[0x05, 0x01, 0x00, 0x07, 127, 0, 0, 1, 0, 80]);
    let mut bad_request_version = vec![0x05, 0x01, 0x00];
    bad_request_version.extend_from_slice(&[0x04, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0, 80]);
    for (what, bytes, want) in [
        ("unknown command 0x09", unknown_command, Some(0x07)),
        ("BIND", bind, Some(0x07)),
        ("unknown address type 0x07", unknown_atyp, Some(0x08)),
        ("request with version 4", bad_request_version, None),
    ] {
        let got = kit::socks_raw(socks, &bytes, limit).await;
        assert_eq!(
            got.get(..2),
            Some(&[0x05, 0x00][..]),
            "{what}: method selection"
        );
        let rest = &got[2..];
        match want {
            Some(code) => {
                let (reply, used) = socks5::parse_reply(rest)
                    .expect("a well-formed reply")
                    .unwrap_or_else(|| panic!("{what}: no complete reply in {rest:?}"));
                assert_eq!(reply.code, code, "{what}: reply code");
                assert_eq!(used, rest.len(), "{what}: nothing after the reply");
            }
            None => assert!(rest.is_empty(), "{what}: no reply, got {rest:?}"),
        }
    }
    // A greeting that offers only username/password gets 0xFF.
    let got = kit::socks_raw(socks, &[0x05, 0x01, 0x02], limit).await;
    assert_eq!(got, [0x05, socks5::METHOD_NO_ACCEPTABLE]);

    // Still usable, on the same path.
    let port = servers().http.port();
    let ok = fetch(
        &["--socks5-hostname", &socks.to_string()],
        &format!("http://localhost:{port}/hello"),
        Duration::from_secs(20),
    )
    .await;
    ok.assert_ok("after the refusals");
    assert_eq!(ok.body, kit::HELLO);
    let (_tcp, code) = kit::socks_connect(socks, &authority("localhost", port)).await;
    assert_eq!(code, 0x00);
}
