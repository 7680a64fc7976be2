//! A SOCKS5 client (RFC 1928), built on `openrelay_wire::socks5`, for what
//! curl cannot show: reply codes, raw bytes, UDP ASSOCIATE.

#![cfg(feature = "harness")]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use openrelay_wire::socks5::{self, ServerReply};
use openrelay_wire::target::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Time allowed for any one SOCKS exchange.
pub const SOCKS_TIMEOUT: Duration = Duration::from_secs(20);

/// Reads until `parse` yields a message; panics on timeout or EOF.
async fn read_socks<T>(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, socks5::Socks5Error>,
) -> T {
    let read = async {
        loop {
            if let Some((message, used)) = parse(buf).expect("malformed SOCKS reply") {
                buf.drain(..used);
                return message;
            }
            let mut chunk = [0u8; 512];
            let n = tcp.read(&mut chunk).await.expect("SOCKS read failed");
            assert!(n > 0, "the SOCKS server closed the connection mid-message");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(SOCKS_TIMEOUT, read)
        .await
        .expect("no SOCKS reply in time")
}

fn parse_method(buf: &[u8]) -> Result<Option<(u8, usize)>, socks5::Socks5Error> {
    match buf {
        [socks5::VERSION, method, ..] => Ok(Some((*method, 2))),
        [_, _, ..] => Err(socks5::Socks5Error::BadVersion),
        _ => Ok(None),
    }
}

/// Connects and negotiates "no authentication".
pub async fn socks_greet(socks: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(socks).await.unwrap();
    let mut out = Vec::new();
    socks5::encode_greeting(&[socks5::METHOD_NO_AUTH], &mut out);
    tcp.write_all(&out).await.unwrap();
    let method = read_socks(&mut tcp, &mut Vec::new(), parse_method).await;
    assert_eq!(method, socks5::METHOD_NO_AUTH);
    tcp
}

/// Sends one request on a greeted connection and reads the reply.
pub async fn socks_request(
    tcp: &mut TcpStream,
    command: socks5::Command,
    target: &Target,
) -> ServerReply {
    let mut out = Vec::new();
    socks5::encode_request(command, target, &mut out);
    tcp.write_all(&out).await.unwrap();
    read_socks(tcp, &mut Vec::new(), socks5::parse_reply).await
}

/// SOCKS5 CONNECT to `target`: the connection and the reply code.
pub async fn socks_connect(socks: SocketAddr, target: &Target) -> (TcpStream, u8) {
    let mut tcp = socks_greet(socks).await;
    let reply = socks_request(&mut tcp, socks5::Command::Connect, target).await;
    (tcp, reply.code)
}

/// Writes `bytes` raw and returns everything the server sends until it
/// closes the connection; panics if it does not close within `limit`.
pub async fn socks_raw(socks: SocketAddr, bytes: &[u8], limit: Duration) -> Vec<u8> {
    let mut tcp = TcpStream::connect(socks).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 512];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the SOCKS server neither answered nor closed: got {got:?}"));
    got
}

/// A SOCKS5 UDP association: the control connection (kept open) and the
/// app's UDP socket.
#[derive(Debug)]
pub struct SocksUdp {
    _control: TcpStream,
    socket: UdpSocket,
    relay: SocketAddr,
}

impl SocksUdp {
    /// UDP ASSOCIATE through `socks`.
    pub async fn associate(socks: SocketAddr) -> SocksUdp {
        let mut control = socks_greet(socks).await;
        let any = Target::from_socket_addr(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        let reply = socks_request(&mut control, socks5::Command::UdpAssociate, &any).await;
        assert_eq!(reply.code, 0, "UDP ASSOCIATE refused");
        let mut relay = reply.bound.socket_addr().expect("BND.ADDR is an IP");
        if relay.ip().is_unspecified() {
            relay.set_ip(socks.ip());
        }
        assert_ne!(relay.port(), 0, "BND.PORT of the association");
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        SocksUdp {
            _control: control,
            socket,
            relay,
        }
    }

    /// Sends `payload` to `target` through the association.
    pub async fn send(&self, target: &Target, payload: &[u8]) {
        let mut packet = Vec::with_capacity(payload.len() + 32);
        socks5::encode_udp_header(target, &mut packet);
        packet.extend_from_slice(payload);
        self.socket.send_to(&packet, self.relay).await.unwrap();
    }

    /// The next datagram from the association, as (source, payload), or
    /// `None` after `limit`.
    pub async fn recv(&self, limit: Duration) -> Option<(Target, Vec<u8>)> {
        let mut buf = vec![0u8; 65_535];
        let (n, from) = tokio::time::timeout(limit, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        assert_eq!(from, self.relay, "datagram from the association's address");
        let packet = socks5::parse_udp_packet(&buf[..n]).expect("a SOCKS UDP header");
        assert_eq!(packet.frag, 0, "FRAG");
        Some((packet.target, packet.payload.to_vec()))
    }
}
