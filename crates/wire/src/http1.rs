//! The request head a local HTTP proxy receives (HTTP/1.0 and HTTP/1.1,
//! RFC 9112), classified by request-target form (RFC 9112 §3.2):
//!
//! * authority-form, `CONNECT host:port` (RFC 9112 §3.2.3,
//!   RFC 9110 §9.3.6): a tunnel;
//! * absolute-form, `GET http://host/path` (RFC 9112 §3.2.2): a request to
//!   forward, rewritten for the origin server;
//! * origin-form and asterisk-form: not proxy requests.

use std::fmt;

use crate::target::{Target, TargetError, parse_authority_with_default};

/// The largest request head we buffer, 16 KiB. A longer one is refused with
/// 431 rather than buffered without bound.
pub const MAX_HEAD_LEN: usize = 16 * 1024;

/// The most header fields a request head may have.
pub const MAX_HEADERS: usize = 64;

/// Why a request head was refused. [`Http1Error::status`] gives the status
/// code to answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Http1Error {
    /// The head is not valid HTTP/1.x syntax.
    #[error("malformed request head")]
    Malformed,
    /// The head is longer than [`MAX_HEAD_LEN`].
    #[error("request head too large")]
    HeadTooLarge,
    /// The head has more than [`MAX_HEADERS`] fields.
    #[error("too many header fields")]
    TooManyHeaders,
    /// An origin-form (`GET /x`) or asterisk-form (`OPTIONS *`) request: it
    /// is meant for an origin server, not a proxy.
    #[error("not a proxy request")]
    NotAProxyRequest,
    /// An absolute-form request whose scheme is not `http`; `https` must
    /// use CONNECT.
    #[error("unsupported URI scheme")]
    UnsupportedScheme,
    /// The request target's host or port is invalid, or it has userinfo.
    #[error("invalid request target")]
    InvalidTarget(#[from] TargetError),
    /// Both Content-Length and Transfer-Encoding: forwarding such a request
    /// invites request smuggling (RFC 9112 §6.1 allows rejecting it).
    #[error("both Content-Length and Transfer-Encoding")]
    AmbiguousFraming,
}

impl Http1Error {
    /// The status code to answer with (RFC 9110 §15):
    ///
    /// * 431 Request Header Fields Too Large (RFC 6585 §5) for
    ///   [`HeadTooLarge`](Http1Error::HeadTooLarge) and
    ///   [`TooManyHeaders`](Http1Error::TooManyHeaders);
    /// * 501 Not Implemented for
    ///   [`UnsupportedScheme`](Http1Error::UnsupportedScheme): the request
    ///   is well-formed, this proxy just does not implement that scheme
    ///   (RFC 9110 §15.6.2);
    /// * 400 Bad Request for everything else.
    pub fn status(&self) -> u16 {
        match self {
            Http1Error::HeadTooLarge | Http1Error::TooManyHeaders => 431,
            Http1Error::UnsupportedScheme => 501,
            Http1Error::Malformed
            | Http1Error::NotAProxyRequest
            | Http1Error::InvalidTarget(_)
            | Http1Error::AmbiguousFraming => 400,
        }
    }
}

/// A complete proxy request head.
///
/// `Debug` is redacted: it prints neither the target nor the head.
#[derive(Clone, PartialEq, Eq)]
pub enum ProxyRequest {
    /// `CONNECT host:port`: open a TCP tunnel to `target`. The first
    /// `consumed` bytes of the input were the head; anything after them is
    /// already tunnel payload.
    Tunnel {
        /// Where to connect.
        target: Target,
        /// Length of the request head.
        consumed: usize,
    },
    /// An absolute-form `http://` request: connect to `target`, send
    /// `head`, then relay the rest of the client's bytes (the body, framed
    /// by the Content-Length or Transfer-Encoding kept in `head`).
    Forward {
        /// The origin server; port 80 unless the URI says otherwise.
        target: Target,
        /// The head rewritten for the origin: origin-form request line,
        /// hop-by-hop fields removed, `Host` from the URI,
        /// `Connection: close`.
        head: Vec<u8>,
        /// Length of the original request head.
        consumed: usize,
    },
}

impl fmt::Debug for ProxyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyRequest::Tunnel { target, consumed } => f
                .debug_struct("Tunnel")
                .field("target", target)
                .field("consumed", consumed)
                .finish(),
            ProxyRequest::Forward {
                target,
                head,
                consumed,
            } => f
                .debug_struct("Forward")
                .field("target", target)
                .field("head_len", &head.len())
                .field("consumed", consumed)
                .finish(),
        }
    }
}

/// Hop-by-hop fields never forwarded (RFC 9110 §7.6.1), plus the proxy
/// credentials meant for us. `Transfer-Encoding` is hop-by-hop too, but we
/// relay the body bytes unchanged, so its framing must reach the origin.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "proxy-authorization",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    // Replaced from the URI (RFC 9112 §3.2.2).
    "host",
];

/// Fields that `Connection` may not remove: the body is relayed verbatim,
/// so its framing must stay intact.
const FRAMING: &[&str] = &["content-length", "transfer-encoding"];

/// Parses a proxy request head with `httparse` (at most [`MAX_HEADERS`]
/// fields, at most [`MAX_HEAD_LEN`] bytes).
///
/// `Ok(None)` means the head is incomplete: read more and call again with
/// the longer buffer. See [`ProxyRequest`] for the two outcomes.
///
/// For `Forward`, the rewrite follows RFC 9112 §3.2.2: a proxy MUST replace
/// any received `Host` with the host of the request target, so `Host` is
/// always regenerated from the URI (placed first), not only added when
/// missing. Removed: `Connection` and the fields it names,
/// `Proxy-Connection`, `Proxy-Authorization`, `Keep-Alive`, `TE`,
/// `Trailer`, `Upgrade`. Appended: `Connection: close`, since each proxied
/// connection carries one request. The HTTP version is kept.
pub fn parse_proxy_request(buf: &[u8]) -> Result<Option<ProxyRequest>, Http1Error> {
    let window = buf.get(..MAX_HEAD_LEN).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let consumed = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_LEN => {
            return Err(Http1Error::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Http1Error::TooManyHeaders),
        Err(_) => return Err(Http1Error::Malformed),
    };
    let (Some(method), Some(uri), Some(version)) = (req.method, req.path, req.version) else {
        return Err(Http1Error::Malformed);
    };

    if method == "CONNECT" {
        let target = Target::parse_authority(uri)?;
        return Ok(Some(ProxyRequest::Tunnel { target, consumed }));
    }

    let (authority, origin_form) = split_absolute_form(uri)?;
    let target = parse_authority_with_default(authority, Some(80))?;

    let mut has_content_length = false;
    let mut has_transfer_encoding = false;
    let mut nominated: Vec<String> = Vec::new();
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            has_content_length = true;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            has_transfer_encoding = true;
        } else if h.name.eq_ignore_ascii_case("connection") {
            // RFC 9110 §7.6.1: Connection = #connection-option.
            let value = String::from_utf8_lossy(h.value);
            nominated.extend(
                value
                    .split(',')
                    .map(|o| o.trim_matches([' ', '\t']).to_ascii_lowercase())
                    .filter(|o| !o.is_empty() && !FRAMING.contains(&o.as_str())),
            );
        }
    }
    if has_content_length && has_transfer_encoding {
        return Err(Http1Error::AmbiguousFraming);
    }

    let mut head = Vec::with_capacity(consumed + 64);
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(origin_form.as_bytes());
    head.extend_from_slice(if version == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    head.extend_from_slice(b"Host: ");
    head.extend_from_slice(authority.as_bytes());
    head.extend_from_slice(b"\r\n");
    for h in req.headers.iter() {
        let lower = h.name.to_ascii_lowercase();
        if HOP_BY_HOP.contains(&lower.as_str()) || nominated.contains(&lower) {
            continue;
        }
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");

    Ok(Some(ProxyRequest::Forward {
        target,
        head,
        consumed,
    }))
}

/// Splits an absolute-form `http://authority/path?query` (RFC 9112 §3.2.2)
/// into the authority and the origin-form `/path?query` (RFC 9112 §3.2.1).
/// A fragment is dropped; an empty path becomes `/`.
fn split_absolute_form(uri: &str) -> Result<(&str, String), Http1Error> {
    if uri.starts_with('/') || uri == "*" {
        return Err(Http1Error::NotAProxyRequest);
    }
    let (scheme, rest) = uri
        .split_once("://")
        .ok_or(Http1Error::InvalidTarget(TargetError::InvalidPath))?;
    // RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(Http1Error::InvalidTarget(TargetError::InvalidPath));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(Http1Error::UnsupportedScheme);
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    // RFC 9110 §4.2.4: userinfo in an http URI is to be treated as an error.
    if authority.contains('@') {
        return Err(Http1Error::InvalidTarget(TargetError::InvalidDomainName));
    }
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    let origin_form = if path.is_empty() || path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok((authority, origin_form))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::target::{DomainName, Host};

    fn forward(req: &[u8]) -> (Target, String, usize) {
        match parse_proxy_request(req).unwrap().unwrap() {
            ProxyRequest::Forward {
                target,
                head,
                consumed,
            } => (target, String::from_utf8(head).unwrap(), consumed),
            other => panic!("expected Forward, got {other:?}"),
        }
    }

    #[test]
    fn connect_tunnel() {
        let req = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01";
        let Some(ProxyRequest::Tunnel { target, consumed }) = parse_proxy_request(req).unwrap()
        else {
            panic!("expected a tunnel");
        };
        assert_eq!(target, Target::parse_authority("example.com:443").unwrap());
        assert_eq!(consumed, req.len() - 3);

        let req = b"CONNECT [2001:db8::1]:8443 HTTP/1.0\r\n\r\n";
        let Some(ProxyRequest::Tunnel { target, .. }) = parse_proxy_request(req).unwrap() else {
            panic!("expected a tunnel");
        };
        assert_eq!(target.authority(), "[2001:db8::1]:8443");
    }

    #[test]
    fn connect_needs_authority_form() {
        for req in [
            &b"CONNECT example.com HTTP/1.1\r\n\r\n"[..],
            b"CONNECT example.com:0 HTTP/1.1\r\n\r\n",
            b"CONNECT http://example.com/ HTTP/1.1\r\n\r\n",
            b"CONNECT / HTTP/1.1\r\n\r\n",
        ] {
            let err = parse_proxy_request(req).unwrap_err();
            assert!(matches!(err, Http1Error::InvalidTarget(_)), "{err:?}");
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn absolute_form_is_rewritten() {
        let req = b"GET http://Example.com/a/b?q=1#frag HTTP/1.1\r\n\
Host: evil.example\r\n\
User-Agent: t\r\n\
Proxy-Connection: keep-alive\r\n\
Proxy-Authorization: Basic Zm9v\r\n\
Connection: keep-alive, X-Secret, Content-Length\r\n\
X-Secret: 1\r\n\
Keep-Alive: timeout=5\r\n\
TE: trailers\r\n\
Trailer: X\r\n\
Upgrade: websocket\r\n\
Accept: */*\r\n\
\r\nbody";
        let (target, head, consumed) = forward(req);
        assert_eq!(target.authority(), "example.com:80");
        assert_eq!(consumed, req.len() - 4);
        assert_eq!(
            head,
            "GET /a/b?q=1 HTTP/1.1\r\nHost: Example.com\r\nUser-Agent: t\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn absolute_form_variants() {
        let (t, head, _) =
            forward(b"POST http://192.0.2.1:8080 HTTP/1.0\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(t.authority(), "192.0.2.1:8080");
        assert_eq!(
            head,
            "POST / HTTP/1.0\r\nHost: 192.0.2.1:8080\r\nContent-Length: 3\r\nConnection: close\r\n\r\n"
        );
        let (t, head, _) = forward(b"GET HTTP://[::1]?x HTTP/1.1\r\n\r\n");
        assert_eq!(t.authority(), "[::1]:80");
        assert!(
            head.starts_with("GET /?x HTTP/1.1\r\nHost: [::1]\r\n"),
            "{head}"
        );
        let (t, _, _) = forward(b"GET http://a.example:/ HTTP/1.1\r\n\r\n");
        assert_eq!(t.port, 80);
        assert_eq!(t.host, Host::Name(DomainName::parse("a.example").unwrap()));
    }

    #[test]
    fn errors_and_statuses() {
        use Http1Error::*;
        for (req, err, status) in [
            (&b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"[..], NotAProxyRequest, 400),
            (b"OPTIONS * HTTP/1.1\r\n\r\n", NotAProxyRequest, 400),
            (b"GET https://a.example/ HTTP/1.1\r\n\r\n", UnsupportedScheme, 501),
            (b"GET ftp://a.example/ HTTP/1.1\r\n\r\n", UnsupportedScheme, 501),
            (
                b"GET http://u:p@a.example/ HTTP/1.1\r\n\r\n",
                InvalidTarget(TargetError::InvalidDomainName),
                400,
            ),
            (
                b"GET http:///x HTTP/1.1\r\n\r\n",
                InvalidTarget(TargetError::EmptyHost),
                400,
            ),
            (
                b"GET a.example:80 HTTP/1.1\r\n\r\n",
                InvalidTarget(TargetError::InvalidPath),
                400,
            ),
            (
                b"POST http://a.example/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                AmbiguousFraming,
                400,
            ),
            (b"GET http://a.example/ HTTP/1.1\r\nBad Header: x\r\n\r\n", Malformed, 400),
            (b"\x05\x01\x00", Malformed, 400),
        ] {
            let got = parse_proxy_request(req);
            assert_eq!(got, Err(err), "{}", String::from_utf8_lossy(req));
            assert_eq!(err.status(), status);
        }
    }

    #[test]
    fn incomplete_and_limits() {
        let req = b"GET http://a.example/ HTTP/1.1\r\nAccept: */*\r\n\r\n";
        for cut in 0..req.len() {
            assert_eq!(parse_proxy_request(&req[..cut]), Ok(None), "cut {cut}");
        }

        let mut big = b"GET http://a.example/ HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD_LEN - 1, b'a');
        assert_eq!(parse_proxy_request(&big), Ok(None));
        big.push(b'a');
        assert_eq!(parse_proxy_request(&big), Err(Http1Error::HeadTooLarge));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_proxy_request(&big), Err(Http1Error::HeadTooLarge));
        assert_eq!(Http1Error::HeadTooLarge.status(), 431);

        let mut many = b"GET http://a.example/ HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_proxy_request(&many), Err(Http1Error::TooManyHeaders));
        assert_eq!(Http1Error::TooManyHeaders.status(), 431);
    }

    #[test]
    fn head_exactly_at_limit_is_accepted_with_trailing_payload() {
        let mut req = b"CONNECT a.example:443 HTTP/1.1\r\nX: ".to_vec();
        req.resize(MAX_HEAD_LEN - 4, b'a');
        req.extend_from_slice(b"\r\n\r\n");
        assert_eq!(req.len(), MAX_HEAD_LEN);
        req.extend_from_slice(b"payload");
        let Some(ProxyRequest::Tunnel { consumed, .. }) = parse_proxy_request(&req).unwrap() else {
            panic!("expected a tunnel");
        };
        assert_eq!(consumed, MAX_HEAD_LEN);
    }

    #[test]
    fn debug_is_redacted() {
        let req = b"GET http://secret.example/private-path HTTP/1.1\r\n\r\n";
        let s = format!("{:?}", parse_proxy_request(req).unwrap().unwrap());
        assert!(!s.contains("secret") && !s.contains("private"), "{s}");
    }
}
