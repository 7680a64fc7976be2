//! Local servers a test's traffic goes to: an HTTP/1.1 file server and a
//! UDP echo server started once per test binary ([`servers`]), more HTTP
//! servers on other loopback addresses ([`http_server_at`]), a port that
//! refuses connections ([`closed_port`]), and the deterministic bodies
//! they serve ([`content`]).

#![cfg(feature = "harness")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Deterministic pseudo-random bytes (SplitMix64 over a counter), distinct
/// for each `seed`. The file server serves exactly these.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut state = seed.wrapping_mul(0xA24B_AED4_963E_E407) ^ 0x5851_F42D_4C95_7F2D;
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `/slow/<n>` sends `content(0, n)` in chunks of this size ...
const SLOW_CHUNK: usize = 16 * 1024;
/// ... with this pause after each (about 160 KB/s).
const SLOW_PAUSE: Duration = Duration::from_millis(100);

/// The body of `/hello`.
pub const HELLO: &[u8] = b"hello from the openrelay test server\n";

/// The local servers, started once per test binary on their own runtime.
#[derive(Debug, Clone, Copy)]
pub struct Servers {
    /// The HTTP file server (127.0.0.1).
    pub http: SocketAddr,
    /// The UDP echo server (127.0.0.1, and ::1 on the same port if possible,
    /// so `localhost` reaches it whichever address it resolves to).
    pub udp: SocketAddr,
}

/// The local HTTP and UDP echo servers of this test binary.
///
/// HTTP paths: `/hello`; `/bytes/<n>` is `content(0, n)`; `/bytes/<n>/<seed>`
/// is `content(seed, n)`; `/slow/<n>` is `content(0, n)` sent at about
/// 160 KB/s. Responses carry Content-Length and close the
/// connection.
pub fn servers() -> Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    *SERVERS.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let (udp4, udp6) = bind_echo().await;
                let _ = tx.send(Servers {
                    http: http.local_addr().unwrap(),
                    udp: udp4.local_addr().unwrap(),
                });
                let mut echoes = vec![tokio::spawn(echo(udp4))];
                if let Some(udp6) = udp6 {
                    echoes.push(tokio::spawn(echo(udp6)));
                }
                serve_http_on(http).await;
            });
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("test servers did not start")
    })
}

async fn serve_http_on(listener: TcpListener) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_http(tcp, peer));
    }
}

/// Starts another instance of the test HTTP server, on `ip` (any address of
/// 127.0.0.0/8 works on Linux without set-up), in the caller's runtime: a
/// destination that is its own site for per-site isolation.
pub async fn http_server_at(ip: Ipv4Addr) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_http_on(listener));
    addr
}

async fn bind_echo() -> (UdpSocket, Option<UdpSocket>) {
    for _ in 0..20 {
        let v4 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = v4.local_addr().unwrap().port();
        match UdpSocket::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)).await {
            Ok(v6) => return (v4, Some(v6)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(_) => return (v4, None), // no IPv6 loopback here
        }
    }
    (UdpSocket::bind("127.0.0.1:0").await.unwrap(), None)
}

async fn echo(socket: UdpSocket) {
    let mut buf = vec![0u8; 65_535];
    loop {
        if let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    }
}

fn route(target: &str, peer: SocketAddr) -> Option<Vec<u8>> {
    // A proxy may pass the absolute form on; accept it.
    let path = match target.strip_prefix("http://") {
        Some(rest) => &rest[rest.find('/')?..],
        None => target,
    };
    if path == "/hello" {
        return Some(HELLO.to_vec());
    }
    // Who connected: through the devnet, the egress relay's address.
    if path == "/ip" {
        return Some(peer.ip().to_string().into_bytes());
    }
    if let Some(len) = path.strip_prefix("/slow/") {
        let len: usize = len.parse().ok()?;
        return (len <= 1 << 30).then(|| content(0, len));
    }
    let mut parts = path.strip_prefix("/bytes/")?.split('/');
    let len: usize = parts.next()?.parse().ok()?;
    let seed: u64 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    (len <= 1 << 30).then(|| content(seed, len))
}

async fn serve_http(mut tcp: TcpStream, peer: SocketAddr) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let target = text.split_whitespace().nth(1).unwrap_or_default();
    let Some(body) = route(target, peer) else {
        let _ = tcp
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if tcp.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    if target.contains("/slow/") {
        // Paced by the server, so the bytes are still crossing the relays
        // seconds later (no proxy buffer can hold them all in advance).
        for chunk in body.chunks(SLOW_CHUNK) {
            if tcp.write_all(chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(SLOW_PAUSE).await;
        }
    } else if tcp.write_all(&body).await.is_err() {
        return;
    }
    let _ = tcp.shutdown().await;
}

/// A TCP port on 127.0.0.1 that refuses connections: bound (so no other
/// socket can take it while the test runs) but not listening.
#[derive(Debug)]
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    /// The port.
    pub port: u16,
}

/// Reserves a [`ClosedPort`].
pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    ClosedPort {
        _socket: socket,
        port,
    }
}

/// Asserts two byte strings are equal without printing megabytes.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: body differs: got {} bytes, want {}; first difference at offset {first}",
            got.len(),
            want.len()
        );
    }
}
