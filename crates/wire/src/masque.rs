//! The connect-udp request path: RFC 9298 §2 (URI template) and §3.4
//! (HTTP/3 requests).
//!
//! We use the default template of RFC 9298 §2,
//! `https://$PROXY/.well-known/masque/udp/{target_host}/{target_port}/`,
//! so the `:path` of a request is
//! `/.well-known/masque/udp/{target_host}/{target_port}/`. Other templates
//! are not supported.

use std::fmt::Write as _;

use crate::target::{Host, Target, TargetError, parse_port};

/// The fixed part of the default connect-udp template's path (RFC 9298 §2).
pub const UDP_PATH_PREFIX: &str = "/.well-known/masque/udp/";

/// Fills the default template for `target` (RFC 9298 §2).
///
/// The host is expanded as RFC 6570 §3.2.2 simple string expansion does:
/// every byte outside the unreserved set (`ALPHA DIGIT - . _ ~`) is
/// percent-encoded, so IPv6 `2001:db8::1` becomes `2001%3Adb8%3A%3A1`
/// (RFC 9298 §2: IPv6 literals are not bracketed). Names and IPv4
/// literals need no encoding.
pub fn udp_path(target: &Target) -> String {
    let host = target.host.to_bare_string();
    let mut path = String::with_capacity(UDP_PATH_PREFIX.len() + host.len() * 3 + 7);
    path.push_str(UDP_PATH_PREFIX);
    for b in host.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            path.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(path, "%{b:02X}");
        }
    }
    let _ = write!(path, "/{}/", target.port);
    path
}

/// Parses a `:path` made from the default template (RFC 9298 §2, §3.4),
/// the inverse of [`udp_path`].
///
/// Exactly `/.well-known/masque/udp/{target_host}/{target_port}/` is
/// accepted, trailing slash included. The host is percent-decoded (any
/// `%XX`, hex digits of either case); a decoded IP literal (IPv6 without
/// brackets) becomes [`Host::Ip`], anything else must be a valid
/// [`crate::target::DomainName`]. Rejected: an empty host, a port that is
/// not a decimal in 1..=65535, extra or missing path segments, a query
/// string or fragment.
pub fn parse_udp_path(path: &str) -> Result<Target, TargetError> {
    if path.contains('?') {
        return Err(TargetError::QueryNotAllowed);
    }
    let rest = path
        .strip_prefix(UDP_PATH_PREFIX)
        .ok_or(TargetError::InvalidPath)?;
    let rest = rest.strip_suffix('/').ok_or(TargetError::InvalidPath)?;
    let (host_enc, port_text) = rest.split_once('/').ok_or(TargetError::InvalidPath)?;
    if port_text.contains('/') {
        return Err(TargetError::InvalidPath);
    }
    if host_enc.is_empty() {
        return Err(TargetError::EmptyHost);
    }
    let host_text = percent_decode(host_enc)?;
    let host = Host::parse(&host_text)?;
    let port = parse_port(port_text)?;
    Ok(Target { host, port })
}

/// Decodes every `%XX`; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, TargetError> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex_value);
            let lo = bytes.next().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi << 4) | lo),
                _ => return Err(TargetError::InvalidPercentEncoding),
            }
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| TargetError::InvalidPercentEncoding)
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::target::DomainName;

    #[test]
    fn rfc9298_examples() {
        // RFC 9298 §3.4 (and §2): IPv4 target 192.0.2.6, port 443.
        let t = parse_udp_path("/.well-known/masque/udp/192.0.2.6/443/").unwrap();
        assert_eq!(t.host, Host::Ip("192.0.2.6".parse().unwrap()));
        assert_eq!(t.port, 443);
        assert_eq!(udp_path(&t), "/.well-known/masque/udp/192.0.2.6/443/");

        // RFC 9298 §2: IPv6 2001:db8::42 expands to 2001%3Adb8%3A%3A42.
        let t = Target::parse_authority("[2001:db8::42]:443").unwrap();
        assert_eq!(
            udp_path(&t),
            "/.well-known/masque/udp/2001%3Adb8%3A%3A42/443/"
        );
        assert_eq!(
            parse_udp_path("/.well-known/masque/udp/2001%3Adb8%3A%3A42/443/").unwrap(),
            t
        );
        // Lower-case hex is fine too.
        assert_eq!(
            parse_udp_path("/.well-known/masque/udp/2001%3adb8%3a%3a42/443/").unwrap(),
            t
        );

        // RFC 9298 §2 names example.
        let t = parse_udp_path("/.well-known/masque/udp/example.org/53/").unwrap();
        assert_eq!(
            t.host,
            Host::Name(DomainName::parse("example.org").unwrap())
        );
        assert_eq!(udp_path(&t), "/.well-known/masque/udp/example.org/53/");
    }

    #[test]
    fn percent_encoded_name_letters_decode() {
        let t = parse_udp_path("/.well-known/masque/udp/ex%61mple.ORG/1/").unwrap();
        assert_eq!(udp_path(&t), "/.well-known/masque/udp/example.org/1/");
    }

    #[test]
    fn rejects() {
        use TargetError::*;
        for (path, err) in [
            ("/.well-known/masque/udp/192.0.2.6/443", InvalidPath),
            ("/.well-known/masque/udp/192.0.2.6/443//", InvalidPath),
            ("/.well-known/masque/udp/192.0.2.6/443/x/", InvalidPath),
            ("/.well-known/masque/udp/192.0.2.6/", InvalidPath),
            ("/.well-known/masque/udp/", InvalidPath),
            ("/.well-known/masque/tcp/192.0.2.6/443/", InvalidPath),
            (
                "/.well-known/masque/udp/192.0.2.6/443/?x=1",
                QueryNotAllowed,
            ),
            ("/.well-known/masque/udp/192.0.2.6/443?/", QueryNotAllowed),
            ("/.well-known/masque/udp//443/", EmptyHost),
            ("/.well-known/masque/udp/192.0.2.6/0/", InvalidPort),
            ("/.well-known/masque/udp/192.0.2.6/65536/", InvalidPort),
            ("/.well-known/masque/udp/192.0.2.6/http/", InvalidPort),
            ("/.well-known/masque/udp/192.0.2.6//", InvalidPort),
            ("/.well-known/masque/udp/a%2/1/", InvalidPercentEncoding),
            ("/.well-known/masque/udp/a%zz/1/", InvalidPercentEncoding),
            ("/.well-known/masque/udp/a%/1/", InvalidPercentEncoding),
            ("/.well-known/masque/udp/%C3%28/1/", InvalidPercentEncoding),
            ("/.well-known/masque/udp/a%2Fb/1/", InvalidDomainName),
            ("/.well-known/masque/udp/a%20b/1/", InvalidDomainName),
            (
                "/.well-known/masque/udp/%5B%3A%3A1%5D/1/",
                InvalidDomainName,
            ),
            ("/.well-known/masque/udp/127.1/1/", InvalidDomainName),
        ] {
            assert_eq!(parse_udp_path(path), Err(err), "{path}");
        }
    }
}
