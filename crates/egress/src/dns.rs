//! DNS for the client's full-device VPN: `POST /dns-query` with a DNS message
//! in the DNS-over-HTTPS wire format (RFC 8484 §4.1), answered by forwarding
//! the message to this relay's resolver over UDP, and again over TCP when the
//! answer was truncated (RFC 7766 §5). The query arrives inside the inner
//! connection, so it never crossed the client's network in the clear, and the
//! resolver sees this relay, not the client. Names are never logged. Query and
//! answer bytes are metered with the session's UDP (pay-as-you-go).
//!
//! The resolver is often the operator's internal one, so what reaches it and
//! what comes back are both checked:
//!
//! - Only the query types browsers and apps ask for are forwarded
//!   ([`ANSWERED_TYPES`]), in class IN; anything else is answered REFUSED
//!   (RFC 1035 §4.1.1, RCODE 5) in a valid DNS answer (HTTP 200), without
//!   reaching the resolver. That keeps out zone transfers (AXFR, IXFR) and
//!   ANY (enumeration of the operator's zones), CHAOS-class queries
//!   (`version.bind`: the resolver's software), and obsolete or
//!   experimental types nobody's app needs.
//! - A reverse lookup (PTR) must name one whole address the destination
//!   policy permits: internal names of private, loopback or this host's
//!   addresses are not handed out.
//! - Answers lose the addresses the destination policy refuses (loopback,
//!   private, this host's, the deny list): A and AAAA records and SVCB/HTTPS
//!   address hints, rewritten by [`dns::filter_answer`]. A name that
//!   resolves to such addresses (DNS rebinding, against the egress's
//!   network or the user's own LAN) gets an answer without them: NOERROR
//!   with the other records, or none. An answer whose records do not parse
//!   is not passed on unchecked: the client gets SERVFAIL.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, Bytes, BytesMut};
use openrelay_policy::DestinationPolicy;
use openrelay_transport::server::{self, ServerStream};
use openrelay_transport::udp_bridge::BridgeCounters;
use openrelay_wire::dns::{self, CLASS_IN, Filtered, MAX_MESSAGE, Query, ReverseName, types};
use openrelay_wire::proxy_status::ProxyErrorType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::{PROXY_NAME, Shared, log_refusal};

/// The query types forwarded to the resolver: addresses and names (A, AAAA,
/// CNAME, PTR), what browsers ask before connecting (HTTPS, SVCB: ECH keys,
/// ALPN), mail and services (MX, SRV, NAPTR for SIP), TXT (SPF, domain
/// verification), zone facts tools ask (NS, SOA, CAA), and the keys
/// validating stubs and SSH, TLS and mail clients check (DS, DNSKEY, SSHFP,
/// TLSA).
pub(crate) const ANSWERED_TYPES: &[u16] = &[
    types::A,
    types::NS,
    types::CNAME,
    types::SOA,
    types::PTR,
    types::MX,
    types::TXT,
    types::AAAA,
    types::SRV,
    types::NAPTR,
    types::DS,
    types::SSHFP,
    types::DNSKEY,
    types::TLSA,
    types::SVCB,
    types::HTTPS,
    types::CAA,
];

/// Whether `query` (the message `message`) may go to the resolver.
fn forwarded(query: &Query, message: &[u8], policy: &DestinationPolicy) -> bool {
    let qtype = query.question_type(message);
    if query.question_class(message) != CLASS_IN || !ANSWERED_TYPES.contains(&qtype) {
        return false;
    }
    match query.reverse_name(message) {
        Some(ReverseName::Address(ip)) if qtype == types::PTR => policy.check_ip(ip).is_ok(),
        Some(ReverseName::Incomplete) if qtype == types::PTR => false,
        _ => true,
    }
}

/// Why the resolver gave no usable answer. Carries no name.
#[derive(Debug, thiserror::Error)]
enum ResolverError {
    #[error("no resolver configured")]
    NoResolver,
    #[error("resolver timed out")]
    Timeout,
    #[error("resolver socket error: {0:?}")]
    Io(std::io::ErrorKind),
    #[error("resolver answer does not match the query")]
    Mismatch,
}

impl From<std::io::Error> for ResolverError {
    fn from(e: std::io::Error) -> Self {
        ResolverError::Io(e.kind())
    }
}

/// Serves one `POST /dns-query` for the client connection `connection`
/// (its QUIC `stable_id`).
pub(crate) async fn answer(
    request: http::Request<()>,
    mut stream: ServerStream,
    shared: Arc<Shared>,
    counters: Arc<BridgeCounters>,
    connection: usize,
) {
    let media_ok = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .eq_ignore_ascii_case(dns::MEDIA_TYPE.as_bytes())
        });
    if !media_ok {
        log_refusal("dns query without application/dns-message");
        return server::respond_error(
            stream,
            http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PROXY_NAME,
            Some(ProxyErrorType::HttpRequestDenied),
        )
        .await;
    }
    let timeout = shared.settings.dns_timeout;
    let Ok(Some(message)) = tokio::time::timeout(timeout, read_body(&mut stream)).await else {
        log_refusal("dns query body unreadable or too large");
        return server::respond_error(stream, http::StatusCode::BAD_REQUEST, PROXY_NAME, None)
            .await;
    };
    let Ok(query) = Query::parse(&message) else {
        log_refusal("malformed dns query");
        return server::respond_error(stream, http::StatusCode::BAD_REQUEST, PROXY_NAME, None)
            .await;
    };
    counters
        .bytes_out
        .fetch_add(message.len() as u64, Ordering::Relaxed);
    let policy = shared.policy.get();
    if !forwarded(&query, &message, &policy) {
        log_refusal("dns query type not answered");
        return send_answer(stream, &counters, query.refused(&message)).await;
    }
    let resolver = shared.settings.nameservers.first().copied();
    let forwarding = async {
        let _slot = shared.slots.acquire(connection).await;
        forward(resolver, &query, &message).await
    };
    let answer = tokio::time::timeout(timeout, forwarding)
        .await
        .unwrap_or(Err(ResolverError::Timeout));
    match answer {
        Ok(answer) => {
            let keep = |ip| policy.check_ip(ip).is_ok();
            let answer = match dns::filter_answer(&answer, keep) {
                Ok(Filtered::Unchanged) => answer,
                Ok(Filtered::Rewritten(filtered)) => {
                    log_refusal("dns answer addresses removed");
                    filtered
                }
                Err(_) => {
                    tracing::warn!("dns answer unreadable; answering SERVFAIL");
                    query.servfail(&message)
                }
            };
            send_answer(stream, &counters, answer).await;
        }
        Err(e) => {
            tracing::warn!(error = %e, "dns query failed");
            let error = match e {
                ResolverError::Timeout => ProxyErrorType::DnsTimeout,
                _ => ProxyErrorType::DnsError,
            };
            server::respond_error(
                stream,
                http::StatusCode::BAD_GATEWAY,
                PROXY_NAME,
                Some(error),
            )
            .await;
        }
    }
}

/// Sends a DNS answer (HTTP 200, RFC 8484 §4.2.1), counted as UDP in.
async fn send_answer(mut stream: ServerStream, counters: &BridgeCounters, answer: Vec<u8>) {
    counters
        .bytes_in
        .fetch_add(answer.len() as u64, Ordering::Relaxed);
    let response = http::Response::builder()
        .status(http::StatusCode::OK)
        .header(http::header::CONTENT_TYPE, dns::MEDIA_TYPE)
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(());
    if let Ok(response) = response
        && stream.send_response(response).await.is_ok()
        && stream.send_data(Bytes::from(answer)).await.is_ok()
    {
        let _ = stream.finish().await;
    }
}

/// The request body, or `None` past [`MAX_MESSAGE`] or on a stream error.
async fn read_body(stream: &mut ServerStream) -> Option<Vec<u8>> {
    let mut body = BytesMut::new();
    while let Some(mut chunk) = stream.recv_data().await.ok()? {
        if body.len() + chunk.remaining() > MAX_MESSAGE {
            return None;
        }
        body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
    }
    Some(body.to_vec())
}

/// The resolver's answer (the caller bounds the time).
async fn forward(
    resolver: Option<SocketAddr>,
    query: &Query,
    message: &[u8],
) -> Result<Vec<u8>, ResolverError> {
    let resolver = resolver.ok_or(ResolverError::NoResolver)?;
    let answer = over_udp(resolver, query, message).await?;
    if !dns::truncated(&answer) {
        return Ok(answer);
    }
    over_tcp(resolver, query, message).await
}

async fn over_udp(
    resolver: SocketAddr,
    query: &Query,
    message: &[u8],
) -> Result<Vec<u8>, ResolverError> {
    let local: SocketAddr = match resolver {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    // A fresh socket (random source port) per query, connected so only the
    // resolver's datagrams are received (RFC 5452 §4, §9.1).
    let socket = UdpSocket::bind(local).await?;
    socket.connect(resolver).await?;
    socket.send(message).await?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Spoofed or stale datagrams are skipped, not answers.
        if query.check_answer(message, &buf[..n]).is_ok() {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn over_tcp(
    resolver: SocketAddr,
    query: &Query,
    message: &[u8],
) -> Result<Vec<u8>, ResolverError> {
    let mut tcp = TcpStream::connect(resolver).await?;
    let len = u16::try_from(message.len()).map_err(|_| ResolverError::Mismatch)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    tcp.write_all(&framed).await?;
    let len = usize::from(tcp.read_u16().await?);
    let mut answer = vec![0u8; len];
    tcp.read_exact(&mut answer).await?;
    query
        .check_answer(message, &answer)
        .map_err(|_| ResolverError::Mismatch)?;
    Ok(answer)
}
