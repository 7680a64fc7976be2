//! The local HTTP proxy: `CONNECT host:port` tunnels and absolute-form
//! `http://` requests (RFC 9112 §3.2.2), each over one CONNECT flow. Errors are
//! answered with the matching status and a Proxy-Status field (RFC 9209).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use openrelay_transport::tcp_pump::{self, PumpCounters};
use openrelay_wire::http1::{self, ProxyRequest};
use openrelay_wire::proxy_status::{self, ProxyErrorType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use crate::flow::{self, FlowError, FlowErrorKind};
use crate::manager::PathManager;

/// Time allowed for the request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const PROXY_NAME: &str = "openrelay-client";

/// Accepts connections and runs `handler` on each in its own task. Accept
/// errors (e.g. out of file descriptors) pause briefly instead of spinning.
pub(crate) async fn accept_loop<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                tokio::spawn(handler(tcp));
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves HTTP proxy connections until the listener fails.
pub async fn serve(listener: TcpListener, manager: Arc<PathManager>) {
    accept_loop(listener, move |tcp| handle(tcp, Arc::clone(&manager))).await;
}

fn error_response(status: u16, proxy_status: &str, message: &str) -> Vec<u8> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let body = format!("{status} {reason}: {message}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nProxy-Status: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        proxy_status,
    )
    .into_bytes()
}

async fn read_head(
    tcp: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<Option<ProxyRequest>, http1::Http1Error> {
    loop {
        if let Some(request) = http1::parse_proxy_request(buf)? {
            return Ok(Some(request));
        }
        match tcp.read_buf(buf).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

async fn handle(mut tcp: TcpStream, manager: Arc<PathManager>) {
    let _ = tcp.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(4096);
    let request = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut tcp, &mut buf)).await {
        Ok(Ok(Some(request))) => request,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            let response = request_error_response(e.status(), &e.to_string());
            let _ = tcp.write_all(&response).await;
            return;
        }
        Err(_) => {
            let response = request_error_response(408, "request head timed out");
            let _ = tcp.write_all(&response).await;
            return;
        }
    };
    let (target, initial, tunnel) = match request {
        ProxyRequest::Tunnel { target, consumed } => {
            let early = buf.split_off(consumed.min(buf.len())).freeze();
            (target, early, true)
        }
        ProxyRequest::Forward {
            target,
            head,
            consumed,
        } => {
            let mut initial = BytesMut::from(&head[..]);
            initial.extend_from_slice(buf.get(consumed..).unwrap_or_default());
            (target, initial.freeze(), false)
        }
    };
    // A forwarded request is already complete: send it with the CONNECT. A
    // tunnel's early bytes wait for the response, as the app expects.
    let (early, after) = if tunnel {
        (Bytes::new(), initial)
    } else {
        (initial, Bytes::new())
    };
    match flow::open_tcp(&manager, &target, &early).await {
        Ok(flow) => {
            if tunnel
                && tcp
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_err()
            {
                return;
            }
            let (send, recv) = flow.stream.split();
            tcp_pump::pump(tcp, send, recv, after, &PumpCounters::default(), None).await;
        }
        Err(e) => {
            debug!(error = %e, "proxy request failed");
            let _ = tcp.write_all(&flow_error_response(&e)).await;
        }
    }
}

/// The answer to a flow that could not be opened: the egress's refusal
/// with its status and Proxy-Status members first (nearest the origin,
/// RFC 9209 §2), then ours; a failure of the client's own is a 502 whose
/// Proxy-Status error is ours.
fn flow_error_response(error: &FlowError) -> Vec<u8> {
    let (status, field) = match (error.kind(), error.refusal()) {
        (FlowErrorKind::Refused, Some(refusal)) => (
            refusal.status,
            match &refusal.upstream_status {
                Some(upstream) => format!("{upstream}, {PROXY_NAME}"),
                None => proxy_status::format(
                    PROXY_NAME,
                    refusal.error.unwrap_or(ProxyErrorType::HttpRequestDenied),
                ),
            },
        ),
        _ => (
            502,
            proxy_status::format(PROXY_NAME, ProxyErrorType::ProxyInternalError),
        ),
    };
    error_response(status, &field, &error.to_string())
}

/// An error the proxy itself found in the app's request.
fn request_error_response(status: u16, message: &str) -> Vec<u8> {
    let field = proxy_status::format(PROXY_NAME, ProxyErrorType::HttpRequestDenied);
    error_response(status, &field, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::EgressRefusal;
    use crate::manager::PathError;

    fn head(error: &FlowError) -> String {
        let response = String::from_utf8(flow_error_response(error)).unwrap_or_default();
        response
            .split("\r\n")
            .filter(|l| l.starts_with("HTTP/1.1") || l.starts_with("Proxy-Status"))
            .collect::<Vec<_>>()
            .join("|")
    }

    /// The egress's status and Proxy-Status members come first, then ours;
    /// the client's own failure is a 502 with our error (RFC 9209 §2).
    #[test]
    fn flow_errors_get_the_status_and_proxy_status_that_say_why() {
        let upstream = FlowError::Refused(EgressRefusal {
            status: 403,
            error: Some(ProxyErrorType::DestinationIpProhibited),
            upstream_status: Some("egress; error=destination_ip_prohibited".into()),
        });
        let head_of = head(&upstream);
        assert!(head_of.starts_with("HTTP/1.1 403"), "{head_of}");
        assert!(
            head_of.contains("egress; error=destination_ip_prohibited, openrelay-client"),
            "{head_of}"
        );
        let bare = FlowError::Refused(EgressRefusal {
            status: 400,
            error: None,
            upstream_status: None,
        });
        let head_of = head(&bare);
        assert!(head_of.starts_with("HTTP/1.1 400"), "{head_of}");
        assert!(head_of.contains("error=http_request_denied"), "{head_of}");
        let own = head(&FlowError::NoPath(PathError::AllDied));
        assert!(own.starts_with("HTTP/1.1 502"), "{own}");
        assert!(own.contains("error=proxy_internal_error"), "{own}");
    }
}
