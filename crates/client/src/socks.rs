//! The local SOCKS5 server (RFC 1928): no-authentication method, CONNECT with
//! IPv4, IPv6 or domain-name targets (names are resolved at the egress, so
//! `socks5h` semantics always hold), and UDP ASSOCIATE. BIND is refused with
//! "command not supported". Failures get the reply code that says why.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use openrelay_transport::tcp_pump::{self, PumpCounters};
use openrelay_wire::proxy_status::ProxyErrorType;
use openrelay_wire::socks5::{self, Command, Reply, Socks5Error};
use openrelay_wire::target::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::debug;

use crate::flow::{self, FlowError, FlowErrorKind};
use crate::manager::PathManager;

/// The SOCKS5 reply for a flow that could not be opened (RFC 1928 §6):
/// what the egress's refusal says, else a general failure.
fn flow_error_reply(error: &FlowError) -> Reply {
    match (error.kind(), error.refusal()) {
        (FlowErrorKind::Refused, Some(refusal)) => match refusal.error {
            Some(ProxyErrorType::DestinationIpProhibited | ProxyErrorType::HttpRequestDenied) => {
                Reply::NotAllowedByRuleset
            }
            Some(
                ProxyErrorType::DnsError
                | ProxyErrorType::DnsTimeout
                | ProxyErrorType::DestinationNotFound
                | ProxyErrorType::DestinationUnavailable
                | ProxyErrorType::ConnectionTimeout,
            ) => Reply::HostUnreachable,
            Some(ProxyErrorType::DestinationIpUnroutable) => Reply::NetworkUnreachable,
            Some(ProxyErrorType::ConnectionRefused) => Reply::ConnectionRefused,
            _ if refusal.status == 403 => Reply::NotAllowedByRuleset,
            _ => Reply::GeneralFailure,
        },
        _ => Reply::GeneralFailure,
    }
}

/// Time allowed for the greeting and the request.
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest greeting or request we buffer (a request is at most 262 bytes).
const MAX_MESSAGE: usize = 1024;
/// Datagrams queued per UDP destination while its flow opens.
const UDP_FLOW_QUEUE: usize = 256;
/// Destinations one association may talk to at once (each is a connect-udp
/// request on the egress); datagrams to further ones are dropped.
const MAX_UDP_FLOWS_PER_ASSOCIATION: usize = 256;

/// Accepts SOCKS5 connections until the listener fails.
pub async fn serve(listener: TcpListener, manager: Arc<PathManager>) {
    crate::http_proxy::accept_loop(listener, move |tcp| handle(tcp, Arc::clone(&manager))).await;
}

#[derive(Debug)]
enum NegotiationError {
    Protocol(Socks5Error),
    Closed,
}

async fn read_message<T>(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, Socks5Error>,
) -> Result<T, NegotiationError> {
    loop {
        if let Some((message, used)) = parse(buf).map_err(NegotiationError::Protocol)? {
            buf.advance(used);
            return Ok(message);
        }
        if buf.len() >= MAX_MESSAGE {
            return Err(NegotiationError::Closed);
        }
        match tcp.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(NegotiationError::Closed),
            Ok(_) => {}
        }
    }
}

async fn reply(tcp: &mut TcpStream, code: Reply, bound: SocketAddr) {
    let mut out = Vec::with_capacity(22);
    socks5::encode_reply(code, bound, &mut out);
    let _ = tcp.write_all(&out).await;
}

const NO_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

async fn negotiate(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<socks5::Request, NegotiationError> {
    let greeting = read_message(tcp, buf, socks5::parse_greeting).await?;
    if !greeting.offers(socks5::METHOD_NO_AUTH) {
        let _ = tcp
            .write_all(&socks5::encode_method_selection(
                socks5::METHOD_NO_ACCEPTABLE,
            ))
            .await;
        return Err(NegotiationError::Closed);
    }
    tcp.write_all(&socks5::encode_method_selection(socks5::METHOD_NO_AUTH))
        .await
        .map_err(|_| NegotiationError::Closed)?;
    read_message(tcp, buf, socks5::parse_request).await
}

async fn handle(mut tcp: TcpStream, manager: Arc<PathManager>) {
    let _ = tcp.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(512);
    let request =
        match tokio::time::timeout(NEGOTIATION_TIMEOUT, negotiate(&mut tcp, &mut buf)).await {
            Ok(Ok(request)) => request,
            Ok(Err(NegotiationError::Protocol(e))) => {
                debug!(error = %e, "bad socks request");
                if let Some(code) = e.reply() {
                    reply(&mut tcp, code, NO_ADDRESS).await;
                }
                return;
            }
            Ok(Err(NegotiationError::Closed)) | Err(_) => return,
        };
    match request.command {
        Command::Connect => connect(tcp, request.target, buf.freeze(), &manager).await,
        Command::UdpAssociate => associate(tcp, &manager).await,
        Command::Bind => reply(&mut tcp, Reply::CommandNotSupported, NO_ADDRESS).await,
    }
}

async fn connect(
    mut tcp: TcpStream,
    target: Target,
    early_data: Bytes,
    manager: &Arc<PathManager>,
) {
    match flow::open_tcp(manager, &target, &Bytes::new()).await {
        Ok(flow) => {
            let bound = tcp.local_addr().unwrap_or(NO_ADDRESS);
            reply(&mut tcp, Reply::Succeeded, bound).await;
            let (send, recv) = flow.stream.split();
            tcp_pump::pump(tcp, send, recv, early_data, &PumpCounters::default(), None).await;
        }
        Err(e) => {
            debug!(error = %e, "socks connect failed");
            reply(&mut tcp, flow_error_reply(&e), NO_ADDRESS).await;
        }
    }
}

/// UDP ASSOCIATE (RFC 1928 §7): a UDP socket for the app, one connect-udp
/// flow per destination, for as long as the control connection stays open.
async fn associate(mut control: TcpStream, manager: &Arc<PathManager>) {
    let (Ok(local), Ok(app_peer)) = (control.local_addr(), control.peer_addr()) else {
        return;
    };
    let socket = match UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await {
        Ok(socket) => Arc::new(socket),
        Err(_) => return reply(&mut control, Reply::GeneralFailure, NO_ADDRESS).await,
    };
    let bound = socket.local_addr().unwrap_or(NO_ADDRESS);
    reply(&mut control, Reply::Succeeded, bound).await;

    let mut flows: HashMap<Target, mpsc::Sender<Bytes>> = HashMap::new();
    let mut app: Option<SocketAddr> = None;
    let mut datagram = vec![0u8; 65_535];
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            read = control.read(&mut scratch) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            received = socket.recv_from(&mut datagram) => {
                let Ok((n, from)) = received else { break };
                // Only the client that asked may use the association (§7).
                if from.ip() != app_peer.ip() || app.is_some_and(|a| a != from) {
                    continue;
                }
                app = Some(from);
                let Ok(packet) = socks5::parse_udp_packet(&datagram[..n]) else { continue };
                // We do not reassemble fragments: §7 says drop them.
                if packet.frag != 0 {
                    continue;
                }
                let payload = Bytes::copy_from_slice(packet.payload);
                let target = packet.target;
                if flows.get(&target).is_some_and(|tx| tx.is_closed()) {
                    flows.remove(&target);
                }
                if !flows.contains_key(&target) && flows.len() >= MAX_UDP_FLOWS_PER_ASSOCIATION {
                    // Ended flows free their slots; over the cap, drop as UDP would.
                    flows.retain(|_, tx| !tx.is_closed());
                    if flows.len() >= MAX_UDP_FLOWS_PER_ASSOCIATION {
                        continue;
                    }
                }
                let tx = flows.entry(target.clone()).or_insert_with(|| {
                    spawn_udp_flow(target, Arc::clone(manager), Arc::clone(&socket), from)
                });
                let _ = tx.try_send(payload);
            }
        }
    }
}

fn spawn_udp_flow(
    target: Target,
    manager: Arc<PathManager>,
    socket: Arc<UdpSocket>,
    app: SocketAddr,
) -> mpsc::Sender<Bytes> {
    let (tx, mut outgoing) = mpsc::channel::<Bytes>(UDP_FLOW_QUEUE);
    tokio::spawn(async move {
        let mut flow = match flow::open_udp(&manager, &target).await {
            Ok(flow) => flow,
            Err(e) => {
                debug!(error = %e, "udp flow failed");
                return;
            }
        };
        let mut header = Vec::with_capacity(32);
        socks5::encode_udp_header(&target, &mut header);
        let mut packet = Vec::with_capacity(2048);
        loop {
            tokio::select! {
                out = outgoing.recv() => match out {
                    // Too large for the tunnel: dropped, as on a small-MTU link.
                    Some(payload) => { let _ = flow.sender.send(&payload); }
                    None => break,
                },
                incoming = flow.incoming.recv() => match incoming {
                    Some(payload) => {
                        packet.clear();
                        packet.extend_from_slice(&header);
                        packet.extend_from_slice(&payload);
                        let _ = socket.send_to(&packet, app).await;
                    }
                    None => break,
                },
                ended = flow.stream.recv_data() => match ended {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                },
            }
        }
        let _ = flow.stream.finish().await;
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::EgressRefusal;
    use crate::manager::PathError;

    fn refused(status: u16, error: Option<ProxyErrorType>) -> FlowError {
        FlowError::Refused(EgressRefusal {
            status,
            error,
            upstream_status: None,
        })
    }

    /// The reply follows the egress's refusal (RFC 1928 §6); anything else
    /// is a general failure.
    #[test]
    fn flow_errors_get_the_reply_that_says_why() {
        let cases = [
            (
                refused(403, Some(ProxyErrorType::DestinationIpProhibited)),
                Reply::NotAllowedByRuleset,
            ),
            (
                refused(502, Some(ProxyErrorType::DnsError)),
                Reply::HostUnreachable,
            ),
            (
                refused(502, Some(ProxyErrorType::DestinationIpUnroutable)),
                Reply::NetworkUnreachable,
            ),
            (
                refused(502, Some(ProxyErrorType::ConnectionRefused)),
                Reply::ConnectionRefused,
            ),
            (refused(403, None), Reply::NotAllowedByRuleset),
            (refused(500, None), Reply::GeneralFailure),
            (FlowError::NoPath(PathError::Closed), Reply::GeneralFailure),
            (FlowError::NoPath(PathError::AllDied), Reply::GeneralFailure),
        ];
        for (error, reply) in cases {
            assert_eq!(flow_error_reply(&error), reply, "{error}");
        }
    }
}
