//! UDP sockets with room to absorb bursts. A relay forwards packets at line
//! rate between two sockets; with the kernel's default receive buffer (about
//! 200 KiB) a burst overflows it and the kernel drops packets, which the inner
//! QUIC connection reads as congestion. We ask for larger buffers; the kernel
//! caps the request at `net.core.rmem_max` / `wmem_max` without failing.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use socket2::{Domain, Protocol, Socket, Type};

/// Socket buffer size requested for relay sockets.
pub const SOCKET_BUFFER: usize = 4 << 20;

/// The firewall mark (`SO_MARK`) of UDP sockets bound from now on; 0: none.
static SOCKET_MARK: AtomicU32 = AtomicU32::new(0);

/// Marks every UDP socket this process binds from now on with `mark`
/// (`SO_MARK`, needs CAP_NET_ADMIN). The full-device VPN uses it so its own
/// packets to the ingress bypass the tunnel's routes and pass its kill
/// switch; 0 turns marking off.
pub fn set_socket_mark(mark: u32) {
    SOCKET_MARK.store(mark, Ordering::Relaxed);
}

/// A non-blocking UDP socket bound to `addr`, with large buffers.
pub fn bind_std(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Dual-stack is the OS default on Linux; be explicit so behaviour
        // does not depend on a sysctl.
        socket.set_only_v6(false)?;
    }
    // Best effort: a smaller buffer is slower, not wrong.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    let mark = SOCKET_MARK.load(Ordering::Relaxed);
    if mark != 0 {
        socket.set_mark(mark)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A tokio UDP socket bound to `addr`, with large buffers.
pub fn bind(addr: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    tokio::net::UdpSocket::from_std(bind_std(addr)?)
}

/// A quinn endpoint on a socket with large buffers; a server if
/// `server_config` is given.
pub fn endpoint(
    addr: SocketAddr,
    server_config: Option<quinn::ServerConfig>,
) -> io::Result<quinn::Endpoint> {
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server_config,
        bind_std(addr)?,
        Arc::new(quinn::TokioRuntime),
    )
}

/// The local address for a socket towards `peer`, port 0: `bind` where it
/// can reach the peer, else the unspecified address of the peer's family
/// (the kernel then picks the source by its routes).
///
/// `bind` can reach `peer` if it is of the same family and is not a
/// loopback address facing a peer that is not: the kernel never sends a
/// loopback source off the host (RFC 1122 §3.2.1.3), so a relay listening
/// on 127.0.2.1 (the devnet's egresses) reaches other loopback services
/// from that address, which they see, and the internet from its real one.
pub fn local_for(bind: Option<IpAddr>, peer: SocketAddr) -> SocketAddr {
    let reaches = |ip: IpAddr| !ip.is_loopback() || peer.ip().to_canonical().is_loopback();
    match (bind, peer) {
        (Some(ip @ IpAddr::V4(_)), SocketAddr::V4(_))
        | (Some(ip @ IpAddr::V6(_)), SocketAddr::V6(_))
            if reaches(ip) =>
        {
            SocketAddr::new(ip, 0)
        }
        (_, SocketAddr::V4(_)) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        (_, SocketAddr::V6(_)) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_is_bound_only_where_it_reaches_the_peer() {
        let loopback: IpAddr = "127.0.2.1".parse().unwrap();
        let public: IpAddr = "198.51.100.20".parse().unwrap();
        for (bind, peer, local) in [
            (Some(loopback), "127.0.4.1:4460", "127.0.2.1:0"),
            (Some(loopback), "[::ffff:127.0.4.1]:4460", "[::]:0"),
            (Some(loopback), "93.184.215.14:443", "0.0.0.0:0"),
            (Some(public), "93.184.215.14:443", "198.51.100.20:0"),
            (Some(public), "127.0.0.1:6379", "198.51.100.20:0"),
            (Some(public), "[2001:db8::1]:443", "[::]:0"),
            (Some("::1".parse().unwrap()), "[::1]:53", "[::1]:0"),
            (Some("::1".parse().unwrap()), "[2606:4700::1]:443", "[::]:0"),
            (None, "93.184.215.14:443", "0.0.0.0:0"),
        ] {
            assert_eq!(local_for(bind, sa(peer)), sa(local), "{bind:?} -> {peer}");
        }
    }
}
