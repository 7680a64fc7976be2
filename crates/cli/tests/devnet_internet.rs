//! A plain `openrelay devnet` reaches destinations beyond loopback, as on a
//! machine with internet: its egresses listen on 127.0.2.x, but connect to
//! a non-loopback destination from an address that can reach it.
//!
//! The "internet" is a network namespace the test makes, linked to this
//! one by a veth pair: a web server there on a public-looking address
//! (11.79.115.2, which the default destination policy permits), routed from
//! here to the link, so no packet leaves the machine. curl fetches from it
//! by SOCKS5 (`--socks5-hostname`, by address and by a name the egresses
//! resolve) and through the HTTP proxy.
//!
//! Needs root; skipped with a message otherwise. Leftovers of a killed
//! earlier run (namespace, link) are removed first.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::panic)]

use openrelay_testkit as kit;
use openrelay_testkit::netns;

use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

use kit::{Devnet, fetch};
use openrelay_wire::dns::Query;

/// The web server's address, in the namespace.
const WEB: &str = "11.79.115.2";
const WEB_PORT: u16 = 8080;
/// The name the egresses' resolver gives it.
const WEB_NAME: &str = "web.ore.test";

/// The web server, killed on drop.
struct WebServer(Child);

impl Drop for WebServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A DNS server on 127.0.0.1 that answers A queries for [`WEB_NAME`] with
/// [`WEB`], and anything else with NXDOMAIN.
async fn resolver() -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let message = &buf[..n];
            let Ok(query) = Query::parse(message) else {
                continue;
            };
            let mut name = Vec::new();
            for label in WEB_NAME.split('.') {
                name.push(label.len() as u8);
                name.extend_from_slice(label.as_bytes());
            }
            name.push(0);
            let question = query.question(message);
            let ours = question[..question.len() - 4].eq_ignore_ascii_case(&name);
            let a = query.question_type(message) == 1;
            let mut answer = message[..2].to_vec();
            answer.extend_from_slice(&[0x81, if ours { 0x80 } else { 0x83 }]);
            answer.extend_from_slice(&[0, 1, 0, u8::from(ours && a), 0, 0, 0, 0]);
            answer.extend_from_slice(question);
            if ours && a {
                answer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                answer.extend_from_slice(&WEB.parse::<std::net::Ipv4Addr>().unwrap().octets());
            }
            let _ = socket.send_to(&answer, from).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_devnet_reaches_a_destination_beyond_loopback() {
    if !netns::is_root() {
        eprintln!("SKIPPED: needs root (a network namespace for the destination)");
        return;
    }
    let internet = netns::Netns::create("w", &["11.79.115.2/30"], &["11.79.115.1/30"]);
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("hello"), "hello from beyond loopback\n").unwrap();
    let _web = WebServer(internet.spawn(
        "python3",
        &[
            "-m",
            "http.server",
            &WEB_PORT.to_string(),
            "--bind",
            WEB,
            "--directory",
            &site.path().display().to_string(),
        ],
    ));
    let url = format!("http://{WEB}:{WEB_PORT}/hello");
    // Reachable from here without the relays first.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let direct = fetch(&["--noproxy", "*"], &url, Duration::from_secs(5)).await;
        if direct.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the web server did not start: {direct:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let resolver = resolver().await;
    let devnet = Devnet::start_with_args(2, "info", &["--dns-resolver", &resolver.to_string()]);
    let socks = devnet.socks.to_string();
    let http = format!("http://{}", devnet.http);
    let named = format!("http://{WEB_NAME}:{WEB_PORT}/hello");
    for (what, proxy, target) in [
        (
            "SOCKS5 by address",
            ["--socks5-hostname", socks.as_str()],
            &url,
        ),
        (
            "SOCKS5 by name",
            ["--socks5-hostname", socks.as_str()],
            &named,
        ),
        ("HTTP proxy", ["-x", http.as_str()], &url),
        ("HTTP proxy by name", ["-x", http.as_str()], &named),
    ] {
        let got = fetch(&proxy, target, Duration::from_secs(20)).await;
        got.assert_ok(what);
        assert_eq!(got.body, b"hello from beyond loopback\n", "{what}");
    }
}
