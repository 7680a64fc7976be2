//! UDP sockets with room to absorb bursts. A relay forwards packets at line
//! rate between two sockets; with the kernel's default receive buffer (about
//! 200 KiB) a burst overflows it and the kernel drops packets, which the inner
//! QUIC connection reads as congestion. We ask for larger buffers; the kernel
//! caps the request at `net.core.rmem_max` / `wmem_max` without failing.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

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

/// Keeps the kernel's UDP GRO static keys enabled for the life of the
/// process. quinn-udp probes GSO and GRO on two throwaway IPv6 sockets each
/// time it takes a socket (every endpoint, every bridged flow). Enabling
/// GRO on the only UDP socket that has it, and closing it again, switches a
/// kernel static key on and off: a patch of kernel text on every core.
/// Taking a socket cost 226–258 µs here, 23 µs with the keys held
/// (`docs/BENCHMARKS.md`, "Scale of one relay"). One loopback socket with
/// GRO, never read and never closed, keeps the keys on.
fn hold_gro_static_keys() {
    static HOLDER: OnceLock<Option<std::net::UdpSocket>> = OnceLock::new();
    HOLDER.get_or_init(|| {
        let socket = std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0))
            .or_else(|_| std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)))
            .ok()?;
        // Enables GRO on it (and is the one probe this costs).
        quinn::udp::UdpSocketState::new((&socket).into()).ok()?;
        Some(socket)
    });
}

/// A non-blocking UDP socket bound to `addr`, with large buffers.
pub fn bind_std(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    hold_gro_static_keys();
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

/// Runs `connect` (a TCP or UDP socket bound to the local address it is
/// given, connected to `peer`) from `bind` where that source reaches the
/// peer, else from the unspecified address (the kernel then picks the
/// source by its routes).
///
/// Whether it reaches is the kernel's answer: connecting from a source it
/// cannot send from fails with EINVAL before any packet leaves (a loopback
/// source towards a remote peer, RFC 1122 §3.2.1.3). A loopback source
/// reaches every address of this host, loopback or not, so a relay
/// listening on 127.0.2.1 (the devnet's egresses) keeps that address
/// towards the services on this machine, which see it, and reaches the
/// internet from its real one.
pub async fn connect_from<T, F, Fut>(
    bind: Option<IpAddr>,
    peer: SocketAddr,
    connect: F,
) -> io::Result<T>
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let local = local_for(bind, peer);
    match connect(local).await {
        Err(e) if e.kind() == io::ErrorKind::InvalidInput && !local.ip().is_unspecified() => {
            connect(local_for(None, peer)).await
        }
        result => result,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The kernel's answer decides: refused (EINVAL) from the configured
    /// source, the connection is made from the unspecified one; any other
    /// outcome stands.
    #[tokio::test]
    async fn a_source_that_cannot_reach_the_peer_is_replaced() {
        let loopback = Some(IpAddr::from([127, 0, 2, 1]));
        let peer: SocketAddr = "11.79.115.2:443".parse().unwrap();
        let tried = std::sync::Mutex::new(Vec::new());
        let kernel = |local: SocketAddr| {
            tried.lock().unwrap().push(local);
            let refused = local.ip().is_loopback();
            async move {
                if refused {
                    Err(io::Error::from(io::ErrorKind::InvalidInput))
                } else {
                    Ok(local)
                }
            }
        };
        let used = connect_from(loopback, peer, kernel).await.unwrap();
        assert_eq!(used, "0.0.0.0:0".parse::<SocketAddr>().unwrap());
        assert_eq!(tried.lock().unwrap().len(), 2);
        // Other errors are the destination's: no second try.
        tried.lock().unwrap().clear();
        let refused = connect_from(loopback, peer, |local| {
            tried.lock().unwrap().push(local);
            async { Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionRefused)) }
        })
        .await;
        assert_eq!(
            refused.unwrap_err().kind(),
            io::ErrorKind::ConnectionRefused
        );
        assert_eq!(tried.lock().unwrap().len(), 1);
    }

    /// A loopback source is kept towards this host (the devnet's egresses
    /// show their own address to its registry).
    #[tokio::test]
    async fn a_loopback_source_is_kept_towards_this_host() {
        let server = tokio::net::UdpSocket::bind("127.0.4.9:0").await.unwrap();
        let peer = server.local_addr().unwrap();
        let socket = connect_from(
            Some(IpAddr::from([127, 0, 2, 9])),
            peer,
            |local| async move {
                let socket = bind(local)?;
                socket.connect(peer).await?;
                Ok(socket)
            },
        )
        .await
        .unwrap();
        socket.send(b"ping").await.unwrap();
        let mut buf = [0u8; 8];
        let (_, from) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!(from.ip(), IpAddr::from([127, 0, 2, 9]));
    }
}
