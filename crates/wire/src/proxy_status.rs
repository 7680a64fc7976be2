//! The `Proxy-Status` HTTP response field, RFC 9209.
//!
//! ```text
//! Proxy-Status: openrelay-egress; error=destination_ip_prohibited
//! ```
//!
//! The field is a Structured Fields List (RFC 8941 §3.1); each member names
//! one intermediary (an sf-token or sf-string) and carries parameters, of
//! which we produce and read only `error` (RFC 9209 §2.1.1).

/// A Proxy Error Type (RFC 9209 §2.3). All 32 types the RFC defines are
/// here; the registry may grow, hence `#[non_exhaustive]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProxyErrorType {
    /// `dns_timeout` (§2.3.1).
    DnsTimeout,
    /// `dns_error` (§2.3.2).
    DnsError,
    /// `destination_not_found` (§2.3.3).
    DestinationNotFound,
    /// `destination_unavailable` (§2.3.4).
    DestinationUnavailable,
    /// `destination_ip_prohibited` (§2.3.5).
    DestinationIpProhibited,
    /// `destination_ip_unroutable` (§2.3.6).
    DestinationIpUnroutable,
    /// `connection_refused` (§2.3.7).
    ConnectionRefused,
    /// `connection_terminated` (§2.3.8).
    ConnectionTerminated,
    /// `connection_timeout` (§2.3.9).
    ConnectionTimeout,
    /// `connection_read_timeout` (§2.3.10).
    ConnectionReadTimeout,
    /// `connection_write_timeout` (§2.3.11).
    ConnectionWriteTimeout,
    /// `connection_limit_reached` (§2.3.12).
    ConnectionLimitReached,
    /// `tls_protocol_error` (§2.3.13).
    TlsProtocolError,
    /// `tls_certificate_error` (§2.3.14).
    TlsCertificateError,
    /// `tls_alert_received` (§2.3.15).
    TlsAlertReceived,
    /// `http_request_error` (§2.3.16).
    HttpRequestError,
    /// `http_request_denied` (§2.3.17).
    HttpRequestDenied,
    /// `http_response_incomplete` (§2.3.18).
    HttpResponseIncomplete,
    /// `http_response_header_section_size` (§2.3.19).
    HttpResponseHeaderSectionSize,
    /// `http_response_header_size` (§2.3.20).
    HttpResponseHeaderSize,
    /// `http_response_body_size` (§2.3.21).
    HttpResponseBodySize,
    /// `http_response_trailer_section_size` (§2.3.22).
    HttpResponseTrailerSectionSize,
    /// `http_response_trailer_size` (§2.3.23).
    HttpResponseTrailerSize,
    /// `http_response_transfer_coding` (§2.3.24).
    HttpResponseTransferCoding,
    /// `http_response_content_coding` (§2.3.25).
    HttpResponseContentCoding,
    /// `http_response_timeout` (§2.3.26).
    HttpResponseTimeout,
    /// `http_upgrade_failed` (§2.3.27).
    HttpUpgradeFailed,
    /// `http_protocol_error` (§2.3.28).
    HttpProtocolError,
    /// `proxy_internal_response` (§2.3.29).
    ProxyInternalResponse,
    /// `proxy_internal_error` (§2.3.30).
    ProxyInternalError,
    /// `proxy_configuration_error` (§2.3.31).
    ProxyConfigurationError,
    /// `proxy_loop_detected` (§2.3.32).
    ProxyLoopDetected,
}

/// Every type with its token and Recommended HTTP Status Code
/// (RFC 9209 §2.3).
const TABLE: &[(ProxyErrorType, &str, u16)] = {
    use ProxyErrorType::*;
    &[
        (DnsTimeout, "dns_timeout", 504),
        (DnsError, "dns_error", 502),
        (DestinationNotFound, "destination_not_found", 500),
        (DestinationUnavailable, "destination_unavailable", 503),
        (DestinationIpProhibited, "destination_ip_prohibited", 502),
        (DestinationIpUnroutable, "destination_ip_unroutable", 502),
        (ConnectionRefused, "connection_refused", 502),
        (ConnectionTerminated, "connection_terminated", 502),
        (ConnectionTimeout, "connection_timeout", 504),
        (ConnectionReadTimeout, "connection_read_timeout", 504),
        (ConnectionWriteTimeout, "connection_write_timeout", 504),
        (ConnectionLimitReached, "connection_limit_reached", 503),
        (TlsProtocolError, "tls_protocol_error", 502),
        (TlsCertificateError, "tls_certificate_error", 502),
        (TlsAlertReceived, "tls_alert_received", 502),
        // "The applicable 4xx status code"; 400 when nothing more specific.
        (HttpRequestError, "http_request_error", 400),
        (HttpRequestDenied, "http_request_denied", 403),
        (HttpResponseIncomplete, "http_response_incomplete", 502),
        (
            HttpResponseHeaderSectionSize,
            "http_response_header_section_size",
            502,
        ),
        (HttpResponseHeaderSize, "http_response_header_size", 502),
        (HttpResponseBodySize, "http_response_body_size", 502),
        (
            HttpResponseTrailerSectionSize,
            "http_response_trailer_section_size",
            502,
        ),
        (HttpResponseTrailerSize, "http_response_trailer_size", 502),
        (
            HttpResponseTransferCoding,
            "http_response_transfer_coding",
            502,
        ),
        (
            HttpResponseContentCoding,
            "http_response_content_coding",
            502,
        ),
        (HttpResponseTimeout, "http_response_timeout", 504),
        (HttpUpgradeFailed, "http_upgrade_failed", 502),
        (HttpProtocolError, "http_protocol_error", 502),
        // "The most appropriate status code"; 500 when nothing more specific.
        (ProxyInternalResponse, "proxy_internal_response", 500),
        (ProxyInternalError, "proxy_internal_error", 500),
        (ProxyConfigurationError, "proxy_configuration_error", 500),
        (ProxyLoopDetected, "proxy_loop_detected", 502),
    ]
};

impl ProxyErrorType {
    /// Every type defined by RFC 9209 §2.3, in section order.
    pub fn all() -> impl Iterator<Item = ProxyErrorType> {
        TABLE.iter().map(|&(t, _, _)| t)
    }

    fn entry(self) -> (ProxyErrorType, &'static str, u16) {
        // Every variant is in TABLE (a unit test checks); the fallback only
        // keeps this total without a panic.
        TABLE
            .iter()
            .copied()
            .find(|&(t, _, _)| t == self)
            .unwrap_or((
                ProxyErrorType::ProxyInternalError,
                "proxy_internal_error",
                500,
            ))
    }

    /// The registered token, e.g. `destination_ip_prohibited`
    /// (RFC 9209 §2.3).
    pub fn as_str(self) -> &'static str {
        self.entry().1
    }

    /// The type for a token; `None` for an unknown one. Tokens are
    /// case-sensitive (RFC 8941 §3.3.4).
    pub fn from_token(token: &str) -> Option<ProxyErrorType> {
        TABLE
            .iter()
            .find(|&&(_, name, _)| name == token)
            .map(|&(t, _, _)| t)
    }
}

/// The Recommended HTTP Status Code of `error` (RFC 9209 §2.3), which
/// RFC 9209 §2.1.1 says a proxy generating a response SHOULD use.
///
/// Note that `destination_ip_prohibited` is 502, not 403: RFC 9209 frames
/// it as a failure to reach the next hop. Two types leave the code open:
/// `http_request_error` ("the applicable 4xx") gives 400 and
/// `proxy_internal_response` ("the most appropriate") gives 500.
pub fn http_status(error: ProxyErrorType) -> u16 {
    error.entry().2
}

/// Formats one list member, `<proxy_name>; error=<token>` (RFC 9209 §2,
/// §2.1.1), e.g. `openrelay-egress; error=destination_ip_prohibited`.
///
/// RFC 9209 §2 lets the member be an sf-token or an sf-string. A
/// `proxy_name` that is a valid sf-token (RFC 8941 §3.3.4) is written
/// bare; anything else is written as an sf-string (RFC 8941 §3.3.3), with
/// `"` and `\` escaped and characters outside printable ASCII dropped, so
/// the result is always a valid field value.
pub fn format(proxy_name: &str, error: ProxyErrorType) -> String {
    let mut out = String::with_capacity(proxy_name.len() + 48);
    if is_sf_token(proxy_name) {
        out.push_str(proxy_name);
    } else {
        out.push('"');
        for c in proxy_name.chars().filter(|c| (' '..='~').contains(c)) {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push_str("; error=");
    out.push_str(error.as_str());
    out
}

/// RFC 8941 §3.3.4: `sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )`.
fn is_sf_token(s: &str) -> bool {
    let mut bytes = s.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == b'*')
        && bytes.all(|b| is_tchar(b) || b == b':' || b == b'/')
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// The error reported by the intermediary nearest the origin, if any.
///
/// RFC 9209 §2: "The first member of the list represents the intermediary
/// closest to the origin server, and the last member of the list represents
/// the intermediary closest to the user agent"; each intermediary appends
/// its member. For an openrelay client behind ingress and egress, the
/// egress — which actually tried the destination — is therefore first.
/// This returns the `error` parameter of the *first* member that has one;
/// members without `error` (intermediaries that merely passed the response
/// on) are skipped, so a later intermediary's error is reported only when
/// nobody nearer the origin reported one.
///
/// `None` if no member has an `error` parameter, or if the first one that
/// does names an unknown type. Parsing is tolerant: optional whitespace,
/// sf-string member names (with escapes, and with `,` or `;` inside),
/// other parameters, and an `error` value written as an sf-string are all
/// accepted. Several field lines should be joined with `,` first, as
/// RFC 9110 §5.3 says.
pub fn parse_error(header_value: &str) -> Option<ProxyErrorType> {
    split_outside_quotes(header_value, ',').find_map(|member| {
        let mut parts = split_outside_quotes(member, ';');
        parts.next(); // the member's item: the proxy name
        let token = parts.find_map(|param| {
            let (key, value) = param.split_once('=')?;
            (key.trim_matches([' ', '\t']) == "error")
                .then(|| unquote(value.trim_matches([' ', '\t'])))
        })?;
        // First member with an error parameter decides, known type or not.
        Some(ProxyErrorType::from_token(&token))
    })?
}

/// Splits on `sep` where it is not inside an sf-string.
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut in_string = false;
    let mut escaped = false;
    s.split(move |c: char| {
        if escaped {
            escaped = false;
        } else if in_string && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_string = !in_string;
        } else if c == sep && !in_string {
            return true;
        }
        false
    })
}

/// The content of an sf-string (RFC 8941 §3.3.3), or `s` itself if it is
/// not quoted.
fn unquote(s: &str) -> String {
    let Some(inner) = s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return s.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_consistent() {
        assert_eq!(ProxyErrorType::all().count(), 32);
        for t in ProxyErrorType::all() {
            assert_eq!(ProxyErrorType::from_token(t.as_str()), Some(t));
            assert_eq!(TABLE.iter().filter(|e| e.0 == t).count(), 1, "{t:?}");
        }
        assert_eq!(ProxyErrorType::from_token("Dns_Timeout"), None);
        assert_eq!(ProxyErrorType::from_token(""), None);
    }

    #[test]
    fn recommended_statuses() {
        use ProxyErrorType::*;
        for (t, status) in [
            (DnsTimeout, 504),
            (DnsError, 502),
            (DestinationNotFound, 500),
            (DestinationUnavailable, 503),
            (DestinationIpProhibited, 502),
            (DestinationIpUnroutable, 502),
            (ConnectionRefused, 502),
            (ConnectionTerminated, 502),
            (ConnectionTimeout, 504),
            (ConnectionReadTimeout, 504),
            (HttpRequestDenied, 403),
            (ProxyInternalError, 500),
            (ProxyConfigurationError, 500),
        ] {
            assert_eq!(http_status(t), status, "{t:?}");
        }
    }

    #[test]
    fn format_members() {
        assert_eq!(
            format("openrelay-egress", ProxyErrorType::DestinationIpProhibited),
            "openrelay-egress; error=destination_ip_prohibited"
        );
        assert_eq!(
            format("Example CDN", ProxyErrorType::ConnectionTimeout),
            "\"Example CDN\"; error=connection_timeout"
        );
        assert_eq!(
            format("a\"b\\c\r\nd\u{e9}", ProxyErrorType::DnsError),
            "\"a\\\"b\\\\cd\"; error=dns_error"
        );
        assert_eq!(
            format("", ProxyErrorType::DnsError),
            "\"\"; error=dns_error"
        );
        assert_eq!(
            format("1proxy", ProxyErrorType::DnsError),
            "\"1proxy\"; error=dns_error"
        );
    }

    #[test]
    fn parse_rfc9209_examples() {
        // RFC 9209 §2.1.1 examples.
        assert_eq!(
            parse_error("SomeCDN; error=connection_timeout"),
            Some(ProxyErrorType::ConnectionTimeout)
        );
        assert_eq!(
            parse_error("SomeReverseProxy; error=http_request_error, SomeCDN"),
            Some(ProxyErrorType::HttpRequestError)
        );
        assert_eq!(parse_error("FooProxy, ExampleCDN"), None);
        assert_eq!(parse_error("ExampleProxy; received-status=200"), None);
    }

    #[test]
    fn parse_picks_member_nearest_origin() {
        assert_eq!(
            parse_error(
                "openrelay-egress; error=destination_ip_prohibited, openrelay-ingress; error=connection_terminated"
            ),
            Some(ProxyErrorType::DestinationIpProhibited)
        );
        assert_eq!(
            parse_error("origin-side-cache, openrelay-ingress;error=connection_refused"),
            Some(ProxyErrorType::ConnectionRefused)
        );
        assert_eq!(
            parse_error("a; error=not_a_real_type, b; error=dns_error"),
            None
        );
    }

    #[test]
    fn parse_is_tolerant() {
        assert_eq!(
            parse_error(
                "  \"Example, CDN; x\" ;details=\"a,b;error=dns_error\\\"\" ; error = \"dns_timeout\" ;next-hop=x  "
            ),
            Some(ProxyErrorType::DnsTimeout)
        );
        assert_eq!(
            parse_error(&format("weird \"name\"", ProxyErrorType::ProxyLoopDetected)),
            Some(ProxyErrorType::ProxyLoopDetected)
        );
        assert_eq!(parse_error(""), None);
        assert_eq!(parse_error(";;,,=\"\\"), None);
        assert_eq!(parse_error("p; errors=dns_error"), None);
    }
}
