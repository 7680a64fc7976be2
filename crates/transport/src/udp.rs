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

/// Whether `error` says the process (EMFILE) or the system (ENFILE) has no
/// file descriptor left: a server answers such a request "unavailable,
/// retry later" and keeps serving, rather than blaming the destination.
pub fn out_of_descriptors(error: &io::Error) -> bool {
    // Linux errno values (asm-generic/errno-base.h); the standard library
    // has no `ErrorKind` for them.
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    matches!(error.raw_os_error(), Some(EMFILE | ENFILE))
}

/// The local address for a socket towards `peer`: `bind` if it is of the same
/// family, else the unspecified address of the peer's family; port 0.
pub fn local_for(bind: Option<IpAddr>, peer: SocketAddr) -> SocketAddr {
    match (bind, peer) {
        (Some(ip @ IpAddr::V4(_)), SocketAddr::V4(_))
        | (Some(ip @ IpAddr::V6(_)), SocketAddr::V6(_)) => SocketAddr::new(ip, 0),
        (_, SocketAddr::V4(_)) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        (_, SocketAddr::V6(_)) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    }
}
