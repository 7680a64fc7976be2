//! DNS for the client's full-device VPN: `POST /dns-query` with a DNS message
//! in the DNS-over-HTTPS wire format (RFC 8484 §4.1), answered by forwarding
//! the message to this relay's resolver over UDP, and again over TCP when the
//! answer was truncated (RFC 7766 §5). The query arrives inside the inner
//! connection, so it never crossed the client's network in the clear, and the
//! resolver sees this relay, not the client. Names are never logged. Query and
//! answer bytes are metered with the session's UDP (pay-as-you-go).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use openrelay_transport::server::{self, ServerStream};
use openrelay_transport::udp_bridge::BridgeCounters;
use openrelay_wire::dns::{self, MAX_MESSAGE, Query};
use openrelay_wire::proxy_status::ProxyErrorType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::{PROXY_NAME, Shared, log_refusal};

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

/// The first `nameserver` of a resolv.conf text (resolv.conf(5)), port 53.
pub(crate) fn first_nameserver(text: &str) -> Option<SocketAddr> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next()?.parse().ok())
            .flatten()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

/// The resolver the egress forwards to: the configured one, else the system's.
pub(crate) fn system_resolver() -> Option<SocketAddr> {
    first_nameserver(&std::fs::read_to_string("/etc/resolv.conf").ok()?)
}

/// Serves one `POST /dns-query`.
pub(crate) async fn answer(
    request: http::Request<()>,
    mut stream: ServerStream,
    shared: Arc<Shared>,
    counters: Arc<BridgeCounters>,
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
    let timeout = shared.settings.connect_timeout;
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
    let resolver = shared.settings.dns_resolver.or_else(system_resolver);
    counters
        .bytes_out
        .fetch_add(message.len() as u64, Ordering::Relaxed);
    match forward(resolver, &query, &message, timeout).await {
        Ok(answer) => {
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

async fn forward(
    resolver: Option<SocketAddr>,
    query: &Query,
    message: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, ResolverError> {
    let resolver = resolver.ok_or(ResolverError::NoResolver)?;
    let answer = tokio::time::timeout(timeout, over_udp(resolver, query, message))
        .await
        .map_err(|_| ResolverError::Timeout)??;
    if !dns::truncated(&answer) {
        return Ok(answer);
    }
    tokio::time::timeout(timeout, over_tcp(resolver, query, message))
        .await
        .map_err(|_| ResolverError::Timeout)?
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_first_nameserver_is_the_resolver() {
        let text = "# generated\nsearch example\nnameserver 192.0.2.53\nnameserver 2001:db8::53\n";
        assert_eq!(
            first_nameserver(text),
            Some("192.0.2.53:53".parse().unwrap())
        );
        assert_eq!(
            first_nameserver("nameserver 2001:db8::1"),
            Some("[2001:db8::1]:53".parse().unwrap())
        );
        assert_eq!(first_nameserver("nameserver\noptions ndots:2"), None);
    }
}
