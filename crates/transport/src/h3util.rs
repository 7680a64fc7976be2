//! Helpers around the `h3` crate.

use std::time::Duration;

use h3::ConnectionState;
use openrelay_wire::masque;
use openrelay_wire::target::Target;

/// `Capsule-Protocol: ?1` (RFC 9297 §3.4), required on connect-udp requests
/// and 2xx responses (RFC 9298 §3.2, §3.3).
pub const CAPSULE_PROTOCOL: &str = "capsule-protocol";

/// An extended CONNECT request with `:protocol = connect-udp` (RFC 9298 §3.4)
/// to `proxy_authority`, for `target`, using the default URI template.
pub fn connect_udp_request(
    proxy_authority: &str,
    target: &Target,
) -> Result<http::Request<()>, http::Error> {
    let uri = format!("https://{proxy_authority}{}", masque::udp_path(target));
    let mut request = http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(uri)
        .header(CAPSULE_PROTOCOL, "?1")
        .body(())?;
    request
        .extensions_mut()
        .insert(h3::ext::Protocol::CONNECT_UDP);
    Ok(request)
}

/// A CONNECT request for a TCP tunnel to `target` (RFC 9114 §4.4).
///
/// h3 0.0.8 adds `:scheme` and `:path` pseudo-headers to every request, which
/// §4.4 says CONNECT omits; our egress accepts both forms.
pub fn connect_tcp_request(target: &Target) -> Result<http::Request<()>, http::Error> {
    let uri = http::Uri::builder().authority(target.authority()).build()?;
    http::Request::builder()
        .method(http::Method::CONNECT)
        .uri(uri)
        .body(())
}

/// Waits (bounded) until the peer's SETTINGS say it accepts HTTP Datagrams:
/// RFC 9297 §2.1.1 forbids sending datagrams before that. The connection's
/// driver must be running for SETTINGS to arrive.
pub async fn wait_for_datagram_support(state: &impl ConnectionState, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let settings = state.settings();
        if settings.enable_datagram() && settings.enable_extended_connect() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
