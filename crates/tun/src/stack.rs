//! Packets to flows: the userspace TCP/IP stack (ipstack) terminates the
//! device's TCP connections and UDP flows; each TCP connection becomes a
//! CONNECT stream through the egress, each UDP flow (local address and port
//! to one destination) a connect-udp tunnel closed after an idle timeout,
//! port 53 is answered by the [`Resolver`], ICMP echo by [`icmp::answer`].
//!
//! Destinations are logged at debug level only, as everywhere in the client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ipstack::{IpStack, IpStackConfig, IpStackStream, IpStackUdpStream};
use openrelay_client::{PathManager, flow};
use openrelay_transport::tcp_pump::{self, PumpCounters};
use openrelay_wire::target::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::debug;

use crate::device::PacketStream;
use crate::dns::{self, Resolver};
use crate::icmp;

/// The largest UDP payload read from an app.
const MAX_UDP: usize = 65_535;

/// How the stack treats flows.
#[derive(Debug, Clone)]
pub struct StackSettings {
    /// The device MTU.
    pub mtu: u16,
    /// Close UDP flows idle this long.
    pub udp_idle_timeout: Duration,
}

/// Runs the stack on `packets` until the device closes.
pub async fn run(
    packets: PacketStream,
    settings: &StackSettings,
    manager: Arc<PathManager>,
    resolver: Resolver,
) {
    let mut config = IpStackConfig::default();
    config.mtu_unchecked(settings.mtu);
    config.udp_timeout(settings.udp_idle_timeout);
    let mut stack = IpStack::new(config, packets);
    let counters = Arc::new(PumpCounters::default());
    while let Ok(stream) = stack.accept().await {
        match stream {
            IpStackStream::Tcp(tcp) => {
                let destination = tcp.peer_addr();
                let (manager, resolver, counters) = (
                    Arc::clone(&manager),
                    resolver.clone(),
                    Arc::clone(&counters),
                );
                tokio::spawn(async move {
                    if destination.port() == 53 {
                        return dns::serve_tcp(&resolver, tcp).await;
                    }
                    let target = Target::from_socket_addr(destination);
                    match flow::open_tcp(&manager, &target, &Bytes::new()).await {
                        Ok(flow) => {
                            let (send, recv) = flow.stream.split();
                            let (read, write) = tokio::io::split(tcp);
                            tcp_pump::pump_halves(
                                read,
                                write,
                                send,
                                recv,
                                Bytes::new(),
                                &counters,
                                None,
                            )
                            .await;
                        }
                        // Dropping the connection resets it (the app's
                        // handshake already completed with the stack).
                        Err(e) => debug!(error = %e, kind = ?e.kind(), "tcp flow refused"),
                    }
                });
            }
            IpStackStream::Udp(udp) => {
                let (manager, resolver) = (Arc::clone(&manager), resolver.clone());
                tokio::spawn(async move {
                    if udp.peer_addr().port() == 53 {
                        serve_udp_dns(&resolver, udp).await;
                    } else {
                        relay_udp(&manager, udp).await;
                    }
                });
            }
            IpStackStream::UnknownTransport(packet) => {
                let protocol = u8::from(packet.ip_protocol());
                if (protocol == icmp::PROTO_ICMP || protocol == icmp::PROTO_ICMPV6)
                    && let Some(reply) =
                        icmp::answer(packet.src_addr(), packet.dst_addr(), packet.payload())
                {
                    let _ = packet.send(reply);
                }
            }
            IpStackStream::UnknownNetwork(_) => {}
        }
    }
    debug!("tun stack stopped");
}

/// Reads one datagram; `None` at the idle timeout or when the flow ends (an
/// empty read: ipstack reports its closed queue that way, so zero-length
/// datagrams end a flow).
async fn read_datagram(udp: &mut IpStackUdpStream, buf: &mut [u8]) -> Option<usize> {
    match udp.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

async fn serve_udp_dns(resolver: &Resolver, mut udp: IpStackUdpStream) {
    let mut buf = vec![0u8; MAX_UDP];
    while let Some(n) = read_datagram(&mut udp, &mut buf).await {
        if let Some(answer) = resolver.answer(&buf[..n]).await {
            // A UDP answer larger than 512 bytes without EDNS(0) would be
            // truncated by a real resolver; the stack drops what exceeds
            // the MTU, and the app retries over TCP (RFC 7766 §5).
            if udp.write(&answer).await.is_err() {
                return;
            }
        }
    }
}

async fn relay_udp(manager: &Arc<PathManager>, mut udp: IpStackUdpStream) {
    let destination: SocketAddr = udp.peer_addr();
    let mut flow = match flow::open_udp(manager, &Target::from_socket_addr(destination)).await {
        Ok(flow) => flow,
        Err(e) => {
            debug!(error = %e, kind = ?e.kind(), "udp flow refused");
            return;
        }
    };
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        tokio::select! {
            read = read_datagram(&mut udp, &mut buf) => {
                let Some(n) = read else { return };
                // Too large for the inner connection's datagrams: dropped,
                // as a link drops what exceeds its MTU.
                if let Err(e) = flow.sender.send(&buf[..n]) {
                    debug!(error = %e, "udp datagram not sent");
                }
            }
            incoming = flow.incoming.recv() => {
                let Some(payload) = incoming else { return };
                if udp.write(&payload).await.is_err() {
                    return;
                }
            }
        }
    }
}
