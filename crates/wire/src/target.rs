//! A destination: a host name or IP literal, and a port.
//!
//! # Privacy
//!
//! Relays must never log destinations, so [`Target`], [`Host`] and
//! [`DomainName`] implement no `Display`, their `Debug` output is redacted,
//! and [`TargetError`] never quotes its input. Code that really needs the
//! text asks for it explicitly with [`Target::authority`] or
//! [`DomainName::as_str`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest domain name in text form, without the trailing dot
/// (RFC 1035 §2.3.4 allows 255 octets on the wire, i.e. 253 in text).
pub const MAX_DOMAIN_NAME_LEN: usize = 253;

/// The longest label of a domain name (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a host, port or destination could not be parsed.
///
/// Messages never contain the input: destinations must not reach logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The host is empty.
    #[error("empty host")]
    EmptyHost,
    /// The host is neither an IP literal nor a valid domain name.
    #[error("invalid domain name")]
    InvalidDomainName,
    /// A bracketed IP literal does not hold an IPv6 address.
    #[error("invalid IP literal")]
    InvalidIpLiteral,
    /// An IPv6 address appears without the brackets an authority needs
    /// (RFC 3986 §3.2.2).
    #[error("IPv6 address without brackets")]
    UnbracketedIpv6,
    /// The port is required but absent.
    #[error("missing port")]
    MissingPort,
    /// The port is not a decimal number in 1..=65535.
    #[error("invalid port")]
    InvalidPort,
    /// The path does not have the shape of the connect-udp URI template.
    #[error("path does not match the connect-udp template")]
    InvalidPath,
    /// The path has a query string, which the template does not produce.
    #[error("unexpected query string")]
    QueryNotAllowed,
    /// A `%` is not followed by two hexadecimal digits, or the decoded
    /// bytes are not UTF-8.
    #[error("invalid percent-encoding")]
    InvalidPercentEncoding,
}

/// A validated, lower-cased DNS host name.
///
/// Accepted: 1..=253 bytes (one trailing dot is stripped first), labels of
/// 1..=63 ASCII letters, digits, hyphens and underscores, no label starting
/// or ending with a hyphen. Rejected as well: names whose last label is
/// numeric (all digits, or `0x` and hex digits), because resolvers such as
/// `getaddrinfo` read names like `127.1` or `0x7f000001` as IPv4 addresses,
/// which would let a client slip an address past a check meant for names;
/// no top-level domain is numeric (RFC 3696 §2), and the WHATWG URL
/// Standard's "ends in a number" rule rejects the same names.
///
/// `Debug` is redacted and there is no `Display`; use [`DomainName::as_str`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DomainName(String);

impl DomainName {
    /// Validates and normalises a host name; see the type documentation.
    pub fn parse(s: &str) -> Result<DomainName, TargetError> {
        if s.is_empty() {
            return Err(TargetError::EmptyHost);
        }
        let name = s.strip_suffix('.').unwrap_or(s);
        if name.is_empty() || name.len() > MAX_DOMAIN_NAME_LEN {
            return Err(TargetError::InvalidDomainName);
        }
        let mut last = "";
        for label in name.split('.') {
            let valid = (1..=MAX_LABEL_LEN).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !valid {
                return Err(TargetError::InvalidDomainName);
            }
            last = label;
        }
        if is_numeric_label(last) {
            return Err(TargetError::InvalidDomainName);
        }
        Ok(DomainName(name.to_ascii_lowercase()))
    }

    /// The name, lower-cased, without a trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DomainName(<redacted>)")
    }
}

/// The WHATWG URL Standard's "ends in a number" test, for one label.
fn is_numeric_label(label: &str) -> bool {
    if !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    match label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"))
    {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

/// The host part of a destination.
///
/// IP literals are kept as parsed: an IPv4-mapped IPv6 address stays
/// [`IpAddr::V6`]; canonicalising it is the destination policy's business.
///
/// `Debug` is redacted and there is no `Display`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A DNS name, to be resolved by whoever connects.
    Name(DomainName),
}

impl Host {
    /// Parses a bare host: an IPv4 literal in dotted-quad form, an IPv6
    /// literal *without* brackets, or else a [`DomainName`]. This is the
    /// form found in the connect-udp `target_host` variable (after
    /// percent-decoding, RFC 9298 §2) and in a SOCKS5 domain field.
    pub fn parse(s: &str) -> Result<Host, TargetError> {
        match s.parse::<IpAddr>() {
            Ok(ip) => Ok(Host::Ip(ip)),
            Err(_) => DomainName::parse(s).map(Host::Name),
        }
    }

    /// The host as text without brackets: the inverse of [`Host::parse`].
    pub fn to_bare_string(&self) -> String {
        match self {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.as_str().to_owned(),
        }
    }
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Host(<redacted>)")
    }
}

/// A destination: host and port.
///
/// The text parsers ([`Target::parse_authority`],
/// [`crate::masque::parse_udp_path`]) never produce port 0, but the type
/// can hold it: [`Target::from_socket_addr`] and the SOCKS5 UDP ASSOCIATE
/// request ([`crate::socks5::parse_request`]) legitimately carry it.
///
/// `Debug` is redacted and there is no `Display`; use [`Target::authority`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The host.
    pub host: Host,
    /// The port.
    pub port: u16,
}

impl Target {
    /// Parses the authority-form `host:port` of an HTTP CONNECT request
    /// target or `:authority` pseudo-header (RFC 9110 §9.3.6,
    /// RFC 9114 §4.4, RFC 3986 §3.2.2): `example.com:443`, `192.0.2.1:80`,
    /// `[2001:db8::1]:443`.
    ///
    /// The port is required and must be in 1..=65535. An IPv6 literal must
    /// be bracketed; zone identifiers are not accepted. Userinfo (`u@h`) is
    /// not accepted.
    pub fn parse_authority(s: &str) -> Result<Target, TargetError> {
        parse_authority_with_default(s, None)
    }

    /// The `host:port` authority text, with IPv6 literals bracketed: the
    /// inverse of [`Target::parse_authority`].
    pub fn authority(&self) -> String {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => format!("[{ip}]:{}", self.port),
            Host::Ip(IpAddr::V4(ip)) => format!("{ip}:{}", self.port),
            Host::Name(name) => format!("{}:{}", name.as_str(), self.port),
        }
    }

    /// A target for a socket address. The IPv6 flow label and scope ID are
    /// dropped; port 0 is kept.
    pub fn from_socket_addr(addr: SocketAddr) -> Target {
        Target {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }

    /// The socket address, if the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }
}

impl From<SocketAddr> for Target {
    fn from(addr: SocketAddr) -> Target {
        Target::from_socket_addr(addr)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Target(<redacted>)")
    }
}

/// Parses `host[:port]`; without a port (or with an empty one, which
/// RFC 3986 §3.2.3 allows) `default_port` is used, and if that is `None`
/// the port is required.
pub(crate) fn parse_authority_with_default(
    s: &str,
    default_port: Option<u16>,
) -> Result<Target, TargetError> {
    let (host, port_text) = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or(TargetError::InvalidIpLiteral)?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| TargetError::InvalidIpLiteral)?;
        let port_text = match after {
            "" => None,
            after => Some(after.strip_prefix(':').ok_or(TargetError::InvalidPort)?),
        };
        (Host::Ip(IpAddr::V6(ip)), port_text)
    } else {
        let (host_text, port_text) = match s.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        };
        if host_text.contains(':') {
            return Err(TargetError::UnbracketedIpv6);
        }
        let host = match host_text.parse::<Ipv4Addr>() {
            Ok(ip) => Host::Ip(IpAddr::V4(ip)),
            Err(_) => Host::Name(DomainName::parse(host_text)?),
        };
        (host, port_text)
    };
    let port = match port_text {
        Some(p) if !p.is_empty() => parse_port(p)?,
        _ => default_port.ok_or(TargetError::MissingPort)?,
    };
    Ok(Target { host, port })
}

/// Parses a decimal port in 1..=65535: ASCII digits only (no sign, no
/// spaces), at most five of them.
pub(crate) fn parse_port(s: &str) -> Result<u16, TargetError> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TargetError::InvalidPort);
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(TargetError::InvalidPort),
        Ok(port) => Ok(port),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn name(s: &str) -> Host {
        Host::Name(DomainName::parse(s).unwrap())
    }

    #[test]
    fn authority_forms() {
        let t = Target::parse_authority("example.com:443").unwrap();
        assert_eq!(t.host, name("example.com"));
        assert_eq!(t.port, 443);
        assert_eq!(t.authority(), "example.com:443");

        let t = Target::parse_authority("192.0.2.1:80").unwrap();
        assert_eq!(t.host, Host::Ip("192.0.2.1".parse().unwrap()));
        assert_eq!(t.authority(), "192.0.2.1:80");

        let t = Target::parse_authority("[2001:db8::1]:443").unwrap();
        assert_eq!(t.host, Host::Ip("2001:db8::1".parse().unwrap()));
        assert_eq!(t.authority(), "[2001:db8::1]:443");

        let t = Target::parse_authority("Example.COM.:8080").unwrap();
        assert_eq!(t.authority(), "example.com:8080");

        let t = Target::parse_authority("_srv.example-1.org:65535").unwrap();
        assert_eq!(t.port, 65535);
    }

    #[test]
    fn authority_rejects() {
        use TargetError::*;
        for (input, err) in [
            ("example.com", MissingPort),
            ("example.com:", MissingPort),
            ("example.com:0", InvalidPort),
            ("example.com:65536", InvalidPort),
            ("example.com:+443", InvalidPort),
            ("example.com: 443", InvalidPort),
            ("example.com:443 ", InvalidPort),
            ("example.com:100000", InvalidPort),
            ("example.com:https", InvalidPort),
            (":443", EmptyHost),
            ("2001:db8::1", UnbracketedIpv6),
            ("2001:db8::1:443", UnbracketedIpv6),
            ("[2001:db8::1]", MissingPort),
            ("[2001:db8::1]443", InvalidPort),
            ("[192.0.2.1]:443", InvalidIpLiteral),
            ("[fe80::1%25eth0]:443", InvalidIpLiteral),
            ("[2001:db8::1:443", InvalidIpLiteral),
            ("user@example.com:443", InvalidDomainName),
            ("exa mple.com:443", InvalidDomainName),
            ("example.com/x:443", InvalidDomainName),
            ("ex%61mple.com:443", InvalidDomainName),
            ("bücher.de:443", InvalidDomainName),
            ("127.1:80", InvalidDomainName),
            ("01.2.3.4:80", InvalidDomainName),
            ("0x7f000001:80", InvalidDomainName),
            ("2130706433:80", InvalidDomainName),
        ] {
            assert_eq!(Target::parse_authority(input), Err(err), "{input}");
        }
    }

    #[test]
    fn default_port() {
        let t = parse_authority_with_default("example.com", Some(80)).unwrap();
        assert_eq!(t.port, 80);
        let t = parse_authority_with_default("example.com:", Some(80)).unwrap();
        assert_eq!(t.port, 80);
        let t = parse_authority_with_default("[::1]", Some(80)).unwrap();
        assert_eq!(t.authority(), "[::1]:80");
        let t = parse_authority_with_default("example.com:8080", Some(80)).unwrap();
        assert_eq!(t.port, 8080);
    }

    #[test]
    fn domain_names() {
        assert_eq!(
            DomainName::parse("A.b-C.d_e.").unwrap().as_str(),
            "a.b-c.d_e"
        );
        assert_eq!(
            DomainName::parse("localhost").unwrap().as_str(),
            "localhost"
        );
        assert_eq!(
            DomainName::parse("1.2.3.example").unwrap().as_str(),
            "1.2.3.example"
        );
        assert!(DomainName::parse("x.0xg").is_ok());
        let longest_label = "a".repeat(63);
        assert!(DomainName::parse(&longest_label).is_ok());
        assert!(DomainName::parse(&"a".repeat(64)).is_err());
        // 4 * 63 + 3 dots = 255 > 253; 3 * 63 + 61 + 3 = 253.
        let long = [longest_label.as_str(); 3].join(".") + "." + &"b".repeat(61);
        assert_eq!(long.len(), 253);
        assert!(DomainName::parse(&long).is_ok());
        assert!(DomainName::parse(&format!("{long}.")).is_ok());
        assert!(DomainName::parse(&format!("{long}b")).is_err());
        for bad in [
            "", ".", "..", "a..b", ".a", "-a", "a-", "a.-b", "a b", "a/b", "a%b", "a@b", "a:b",
            "é.fr", "a\0b", "a\r\nb", "1.2.3.4", "10", "a.0x", "a.0X1f",
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_parse() {
        assert_eq!(
            Host::parse("::1").unwrap(),
            Host::Ip("::1".parse().unwrap())
        );
        assert_eq!(
            Host::parse("1.2.3.4").unwrap(),
            Host::Ip("1.2.3.4".parse().unwrap())
        );
        assert_eq!(Host::parse("a.example").unwrap(), name("a.example"));
        assert!(Host::parse("[::1]").is_err());
        for s in ["::ffff:1.2.3.4", "2001:db8::42", "a.example", "192.0.2.6"] {
            assert_eq!(Host::parse(s).unwrap().to_bare_string(), s);
        }
    }

    #[test]
    fn socket_addrs() {
        let addr: SocketAddr = "[2001:db8::1]:0".parse().unwrap();
        let t = Target::from_socket_addr(addr);
        assert_eq!(t.port, 0);
        assert_eq!(t.socket_addr(), Some(addr));
        assert_eq!(Target::from(addr), t);
        assert_eq!(
            Target::parse_authority("a.example:1")
                .unwrap()
                .socket_addr(),
            None
        );
    }

    #[test]
    fn debug_is_redacted() {
        for s in [
            "secret-host.example:8443",
            "[2001:db8::1234]:8443",
            "198.51.100.77:8443",
        ] {
            let t = Target::parse_authority(s).unwrap();
            let dbg = format!("{t:?} {:?} {:#?}", t.host, t);
            for needle in ["secret", "example", "2001", "1234", "198", "77", "8443"] {
                assert!(!dbg.contains(needle), "{dbg} leaks {needle}");
            }
            if let Host::Name(n) = &t.host {
                assert!(!format!("{n:?}").contains("secret"));
            }
        }
    }

    #[test]
    fn errors_do_not_quote_input() {
        let err = Target::parse_authority("secret host:1").unwrap_err();
        assert!(!err.to_string().contains("secret"));
        assert!(!format!("{err:?}").contains("secret"));
    }
}
