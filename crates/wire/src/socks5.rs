//! SOCKS Protocol Version 5, RFC 1928, without I/O.
//!
//! The server side (what the local proxy needs) is complete: method
//! negotiation (§3), requests (§4, §5), replies (§6) and the UDP relay
//! header (§7). Encoders for the client side ([`encode_greeting`],
//! [`encode_request`], [`parse_reply`]) exist for tests and tools.
//!
//! Parsers of the TCP messages are streaming: `Ok(None)` means "read more
//! and call again". Every message is at most 262 bytes, so buffering is
//! bounded.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::target::{Host, Target};

/// The protocol version byte, `X'05'`.
pub const VERSION: u8 = 5;
/// Method `X'00'`: no authentication required (RFC 1928 §3).
pub const METHOD_NO_AUTH: u8 = 0x00;
/// Method `X'FF'`: none of the offered methods is acceptable (RFC 1928 §3).
pub const METHOD_NO_ACCEPTABLE: u8 = 0xff;

/// Address type `X'01'`: IPv4 address (RFC 1928 §5).
pub const ATYP_IPV4: u8 = 0x01;
/// Address type `X'03'`: length-prefixed domain name (RFC 1928 §5).
pub const ATYP_DOMAIN: u8 = 0x03;
/// Address type `X'04'`: IPv6 address (RFC 1928 §5).
pub const ATYP_IPV6: u8 = 0x04;

/// Why a SOCKS5 message was rejected. [`Socks5Error::reply`] says which
/// reply (if any) to send before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Socks5Error {
    /// The version byte is not 5: not a SOCKS5 client.
    #[error("not SOCKS version 5")]
    BadVersion,
    /// The greeting offers no method at all.
    #[error("greeting offers no authentication method")]
    NoMethods,
    /// The command is none of CONNECT, BIND, UDP ASSOCIATE.
    #[error("unknown command")]
    UnknownCommand,
    /// The address type is none of IPv4, domain name, IPv6.
    #[error("unknown address type")]
    UnknownAddressType,
    /// The domain field is empty, not UTF-8, or not a valid host name.
    #[error("invalid domain name")]
    InvalidDomainName,
    /// Port 0 where a real destination is needed (CONNECT, UDP datagrams).
    #[error("invalid port")]
    InvalidPort,
    /// A UDP datagram is shorter than its header.
    #[error("truncated UDP datagram header")]
    Truncated,
}

impl Socks5Error {
    /// The reply to send before closing the connection, or `None` to close
    /// without one (the peer does not speak SOCKS5, or the error concerns a
    /// UDP datagram, which is silently dropped — RFC 1928 §7).
    ///
    /// An invalid domain name gets `HostUnreachable`, what the client would
    /// see had we tried to resolve it; port 0 on CONNECT gets
    /// `GeneralFailure`.
    pub fn reply(&self) -> Option<Reply> {
        match self {
            Socks5Error::UnknownCommand => Some(Reply::CommandNotSupported),
            Socks5Error::UnknownAddressType => Some(Reply::AddressTypeNotSupported),
            Socks5Error::InvalidDomainName => Some(Reply::HostUnreachable),
            Socks5Error::InvalidPort => Some(Reply::GeneralFailure),
            Socks5Error::BadVersion | Socks5Error::NoMethods | Socks5Error::Truncated => None,
        }
    }
}

/// The client's method-selection message (RFC 1928 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting {
    /// The authentication methods the client offers, in its order.
    pub methods: Vec<u8>,
}

impl Greeting {
    /// Whether the client offers `method`.
    pub fn offers(&self, method: u8) -> bool {
        self.methods.contains(&method)
    }
}

/// Parses `VER NMETHODS METHODS` (RFC 1928 §3), returning the greeting and
/// the bytes consumed, or `Ok(None)` if more bytes are needed.
pub fn parse_greeting(buf: &[u8]) -> Result<Option<(Greeting, usize)>, Socks5Error> {
    match buf.first() {
        None => return Ok(None),
        Some(&VERSION) => {}
        Some(_) => return Err(Socks5Error::BadVersion),
    }
    let Some(&nmethods) = buf.get(1) else {
        return Ok(None);
    };
    if nmethods == 0 {
        return Err(Socks5Error::NoMethods);
    }
    let end = 2 + usize::from(nmethods);
    let Some(methods) = buf.get(2..end) else {
        return Ok(None);
    };
    Ok(Some((
        Greeting {
            methods: methods.to_vec(),
        },
        end,
    )))
}

/// Encodes a greeting offering `methods` (client side, RFC 1928 §3). At
/// most 255 methods are written.
pub fn encode_greeting(methods: &[u8], out: &mut Vec<u8>) {
    let methods = methods.get(..255).unwrap_or(methods);
    out.push(VERSION);
    out.push(u8::try_from(methods.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(methods);
}

/// The server's method-selection message, `VER METHOD` (RFC 1928 §3).
pub fn encode_method_selection(method: u8) -> [u8; 2] {
    [VERSION, method]
}

/// A request command (RFC 1928 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `X'01'`: open a TCP connection.
    Connect,
    /// `X'02'`: accept one inbound TCP connection.
    Bind,
    /// `X'03'`: relay UDP datagrams.
    UdpAssociate,
}

impl Command {
    /// The CMD byte.
    pub fn code(self) -> u8 {
        match self {
            Command::Connect => 0x01,
            Command::Bind => 0x02,
            Command::UdpAssociate => 0x03,
        }
    }

    /// The command for a CMD byte.
    pub fn from_code(code: u8) -> Option<Command> {
        match code {
            0x01 => Some(Command::Connect),
            0x02 => Some(Command::Bind),
            0x03 => Some(Command::UdpAssociate),
            _ => None,
        }
    }
}

/// A request (RFC 1928 §4).
///
/// For `UdpAssociate` (and `Bind`), `target.port` may be 0 and
/// `target.host` may be the unspecified address: RFC 1928 §4 lets a client
/// that does not yet know the address and port it will send UDP from send
/// zeros. For `Connect`, port 0 is rejected by [`parse_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What the client asks for.
    pub command: Command,
    /// DST.ADDR and DST.PORT.
    pub target: Target,
}

/// Parses `VER CMD RSV ATYP DST.ADDR DST.PORT` (RFC 1928 §4), returning the
/// request and the bytes consumed, or `Ok(None)` if more bytes are needed.
///
/// Errors are reported as soon as the offending byte arrives. A domain
/// field holding an IP literal (`"192.0.2.1"`, `"2001:db8::1"`) becomes
/// [`Host::Ip`]; other domain fields must be valid
/// [`crate::target::DomainName`]s. The RSV byte is ignored.
pub fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, Socks5Error> {
    match buf.first() {
        None => return Ok(None),
        Some(&VERSION) => {}
        Some(_) => return Err(Socks5Error::BadVersion),
    }
    let Some(&cmd) = buf.get(1) else {
        return Ok(None);
    };
    let command = Command::from_code(cmd).ok_or(Socks5Error::UnknownCommand)?;
    let Some(rest) = buf.get(3..) else {
        return Ok(None);
    };
    let Some((target, addr_len)) = parse_address(rest)? else {
        return Ok(None);
    };
    if command == Command::Connect && target.port == 0 {
        return Err(Socks5Error::InvalidPort);
    }
    Ok(Some((Request { command, target }, 3 + addr_len)))
}

/// Encodes a request (client side, RFC 1928 §4).
pub fn encode_request(command: Command, target: &Target, out: &mut Vec<u8>) {
    out.extend_from_slice(&[VERSION, command.code(), 0x00]);
    encode_address(target, out);
}

/// A reply code (RFC 1928 §6).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// `X'00'` succeeded.
    Succeeded = 0,
    /// `X'01'` general SOCKS server failure.
    GeneralFailure = 1,
    /// `X'02'` connection not allowed by ruleset.
    NotAllowedByRuleset = 2,
    /// `X'03'` network unreachable.
    NetworkUnreachable = 3,
    /// `X'04'` host unreachable.
    HostUnreachable = 4,
    /// `X'05'` connection refused.
    ConnectionRefused = 5,
    /// `X'06'` TTL expired.
    TtlExpired = 6,
    /// `X'07'` command not supported.
    CommandNotSupported = 7,
    /// `X'08'` address type not supported.
    AddressTypeNotSupported = 8,
}

impl Reply {
    /// The reply for a REP byte.
    pub fn from_code(code: u8) -> Option<Reply> {
        Some(match code {
            0 => Reply::Succeeded,
            1 => Reply::GeneralFailure,
            2 => Reply::NotAllowedByRuleset,
            3 => Reply::NetworkUnreachable,
            4 => Reply::HostUnreachable,
            5 => Reply::ConnectionRefused,
            6 => Reply::TtlExpired,
            7 => Reply::CommandNotSupported,
            8 => Reply::AddressTypeNotSupported,
            _ => return None,
        })
    }
}

/// Appends `VER REP RSV ATYP BND.ADDR BND.PORT` (RFC 1928 §6).
///
/// For a failure, `bound` is conventionally the unspecified address and
/// port 0. The IPv6 flow label and scope ID are not sent.
pub fn encode_reply(reply: Reply, bound: SocketAddr, out: &mut Vec<u8>) {
    out.extend_from_slice(&[VERSION, reply as u8, 0x00]);
    encode_address(&Target::from_socket_addr(bound), out);
}

/// A server reply as seen by a client (RFC 1928 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    /// The REP byte; see [`Reply::from_code`].
    pub code: u8,
    /// BND.ADDR and BND.PORT (port 0 allowed).
    pub bound: Target,
}

/// Parses a reply (client side, RFC 1928 §6), returning it and the bytes
/// consumed, or `Ok(None)` if more bytes are needed.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(ServerReply, usize)>, Socks5Error> {
    match buf.first() {
        None => return Ok(None),
        Some(&VERSION) => {}
        Some(_) => return Err(Socks5Error::BadVersion),
    }
    let Some((&code, rest)) = buf.get(1..).and_then(<[u8]>::split_first) else {
        return Ok(None);
    };
    let Some(rest) = rest.get(1..) else {
        return Ok(None);
    };
    let Some((bound, addr_len)) = parse_address(rest)? else {
        return Ok(None);
    };
    Ok(Some((ServerReply { code, bound }, 3 + addr_len)))
}

/// A UDP datagram between the client and the SOCKS server (RFC 1928 §7).
///
/// `Debug` prints only the payload length: the payload is user traffic.
#[derive(Clone, PartialEq, Eq)]
pub struct UdpPacket<'a> {
    /// The fragment number. We do not reassemble: RFC 1928 §7 says an
    /// implementation that does not support fragmentation MUST drop any
    /// datagram whose FRAG is not `X'00'`, which is the caller's job.
    pub frag: u8,
    /// DST.ADDR and DST.PORT.
    pub target: Target,
    /// DATA.
    pub payload: &'a [u8],
}

impl fmt::Debug for UdpPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpPacket")
            .field("frag", &self.frag)
            .field("target", &self.target)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Parses one UDP relay datagram, `RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA`
/// (RFC 1928 §7). The datagram is complete, so a short one is
/// [`Socks5Error::Truncated`]. Port 0 is rejected; RSV is ignored.
pub fn parse_udp_packet(buf: &[u8]) -> Result<UdpPacket<'_>, Socks5Error> {
    let Some(&frag) = buf.get(2) else {
        return Err(Socks5Error::Truncated);
    };
    let rest = buf.get(3..).unwrap_or_default();
    let (target, addr_len) = parse_address(rest)?.ok_or(Socks5Error::Truncated)?;
    if target.port == 0 {
        return Err(Socks5Error::InvalidPort);
    }
    let payload = rest.get(addr_len..).unwrap_or_default();
    Ok(UdpPacket {
        frag,
        target,
        payload,
    })
}

/// Appends the UDP relay header `RSV(2)=0 FRAG=0 ATYP DST.ADDR DST.PORT`
/// (RFC 1928 §7); the caller appends the payload. Names are sent as
/// `ATYP_DOMAIN`, IPs as `ATYP_IPV4` / `ATYP_IPV6`.
pub fn encode_udp_header(target: &Target, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0x00, 0x00, 0x00]);
    encode_address(target, out);
}

/// Parses `ATYP ADDR PORT` (RFC 1928 §4/§5); `Ok(None)` if incomplete.
fn parse_address(buf: &[u8]) -> Result<Option<(Target, usize)>, Socks5Error> {
    let Some((&atyp, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let (host, addr_len) = match atyp {
        ATYP_IPV4 => {
            let Some(octets) = rest.first_chunk::<4>() else {
                return Ok(None);
            };
            (Host::Ip(IpAddr::V4(Ipv4Addr::from(*octets))), 4)
        }
        ATYP_IPV6 => {
            let Some(octets) = rest.first_chunk::<16>() else {
                return Ok(None);
            };
            (Host::Ip(IpAddr::V6(Ipv6Addr::from(*octets))), 16)
        }
        ATYP_DOMAIN => {
            let Some((&len, rest)) = rest.split_first() else {
                return Ok(None);
            };
            if len == 0 {
                return Err(Socks5Error::InvalidDomainName);
            }
            let Some(name) = rest.get(..usize::from(len)) else {
                return Ok(None);
            };
            let name = std::str::from_utf8(name).map_err(|_| Socks5Error::InvalidDomainName)?;
            let host = Host::parse(name).map_err(|_| Socks5Error::InvalidDomainName)?;
            (host, 1 + usize::from(len))
        }
        _ => return Err(Socks5Error::UnknownAddressType),
    };
    let Some(port) = rest.get(addr_len..).and_then(<[u8]>::first_chunk::<2>) else {
        return Ok(None);
    };
    let target = Target {
        host,
        port: u16::from_be_bytes(*port),
    };
    Ok(Some((target, 1 + addr_len + 2)))
}

/// Appends `ATYP ADDR PORT` (RFC 1928 §5).
fn encode_address(target: &Target, out: &mut Vec<u8>) {
    match &target.host {
        Host::Ip(IpAddr::V4(ip)) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&ip.octets());
        }
        Host::Ip(IpAddr::V6(ip)) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&ip.octets());
        }
        Host::Name(name) => {
            // A DomainName is at most 253 bytes, so it fits the length byte.
            let name = name.as_str().as_bytes();
            out.push(ATYP_DOMAIN);
            out.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(name.get(..255).unwrap_or(name));
        }
    }
    out.extend_from_slice(&target.port.to_be_bytes());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::target::DomainName;

    fn t(authority: &str) -> Target {
        Target::parse_authority(authority).unwrap()
    }

    #[test]
    fn greeting() {
        let (g, n) = parse_greeting(&[5, 2, 0x00, 0x02, 0xaa]).unwrap().unwrap();
        assert_eq!(n, 4);
        assert_eq!(g.methods, [0x00, 0x02]);
        assert!(g.offers(METHOD_NO_AUTH));
        assert_eq!(parse_greeting(&[]), Ok(None));
        assert_eq!(parse_greeting(&[5]), Ok(None));
        assert_eq!(parse_greeting(&[5, 2, 0]), Ok(None));
        assert_eq!(parse_greeting(&[4]), Err(Socks5Error::BadVersion));
        assert_eq!(
            parse_greeting(b"GET / HTTP/1.1"),
            Err(Socks5Error::BadVersion)
        );
        assert_eq!(parse_greeting(&[5, 0]), Err(Socks5Error::NoMethods));
        assert_eq!(Socks5Error::BadVersion.reply(), None);
        assert_eq!(encode_method_selection(METHOD_NO_AUTH), [5, 0]);
        assert_eq!(encode_method_selection(METHOD_NO_ACCEPTABLE), [5, 0xff]);
        let mut out = Vec::new();
        encode_greeting(&[0, 2], &mut out);
        assert_eq!(out, [5, 2, 0, 2]);
    }

    #[test]
    fn connect_ipv4() {
        // RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT
        let buf = [5, 1, 0, 1, 192, 0, 2, 1, 0x01, 0xbb, 0xde, 0xad];
        let (r, n) = parse_request(&buf).unwrap().unwrap();
        assert_eq!(n, 10);
        assert_eq!(r.command, Command::Connect);
        assert_eq!(r.target, t("192.0.2.1:443"));
        let mut out = Vec::new();
        encode_request(Command::Connect, &r.target, &mut out);
        assert_eq!(out, buf[..10]);
    }

    #[test]
    fn connect_ipv6() {
        let mut buf = vec![5, 1, 0, 4];
        buf.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        buf.extend_from_slice(&[0, 80]);
        let (r, n) = parse_request(&buf).unwrap().unwrap();
        assert_eq!(n, 22);
        assert_eq!(r.target, t("[2001:db8::1]:80"));
    }

    #[test]
    fn connect_domain() {
        let mut buf = vec![5, 1, 0, 3, 11];
        buf.extend_from_slice(b"Example.COM");
        buf.extend_from_slice(&[0x1f, 0x90]);
        let (r, n) = parse_request(&buf).unwrap().unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(
            r.target.host,
            Host::Name(DomainName::parse("example.com").unwrap())
        );
        assert_eq!(r.target.port, 8080);
    }

    #[test]
    fn domain_holding_ip_literal_is_ip() {
        for (text, ip) in [("192.0.2.1", "192.0.2.1"), ("2001:db8::1", "2001:db8::1")] {
            let mut buf = vec![5, 1, 0, 3, u8::try_from(text.len()).unwrap()];
            buf.extend_from_slice(text.as_bytes());
            buf.extend_from_slice(&[0, 80]);
            let (r, _) = parse_request(&buf).unwrap().unwrap();
            assert_eq!(r.target.host, Host::Ip(ip.parse().unwrap()));
        }
    }

    #[test]
    fn request_incomplete_at_every_prefix() {
        let mut buf = vec![5, 1, 0, 3, 9];
        buf.extend_from_slice(b"a.example");
        buf.extend_from_slice(&[0, 80]);
        for cut in 0..buf.len() {
            assert_eq!(parse_request(&buf[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_request(&buf).unwrap().is_some());
    }

    #[test]
    fn request_errors_and_replies() {
        use Socks5Error::*;
        for (buf, err, reply) in [
            (&[4u8][..], BadVersion, None),
            (&[5, 9], UnknownCommand, Some(Reply::CommandNotSupported)),
            (
                &[5, 1, 0, 2],
                UnknownAddressType,
                Some(Reply::AddressTypeNotSupported),
            ),
            (
                &[5, 1, 0, 3, 0],
                InvalidDomainName,
                Some(Reply::HostUnreachable),
            ),
            (
                &[5, 1, 0, 3, 3, b'a', b' ', b'b', 0, 80],
                InvalidDomainName,
                Some(Reply::HostUnreachable),
            ),
            (
                &[5, 1, 0, 3, 2, 0xc3, 0x28, 0, 80],
                InvalidDomainName,
                Some(Reply::HostUnreachable),
            ),
            (
                &[5, 1, 0, 1, 192, 0, 2, 1, 0, 0],
                InvalidPort,
                Some(Reply::GeneralFailure),
            ),
        ] {
            assert_eq!(parse_request(buf), Err(err), "{buf:?}");
            assert_eq!(err.reply(), reply);
        }
    }

    #[test]
    fn udp_associate_allows_zeros() {
        let buf = [5, 3, 0, 1, 0, 0, 0, 0, 0, 0];
        let (r, n) = parse_request(&buf).unwrap().unwrap();
        assert_eq!(n, 10);
        assert_eq!(r.command, Command::UdpAssociate);
        assert_eq!(r.target.host, Host::Ip(Ipv4Addr::UNSPECIFIED.into()));
        assert_eq!(r.target.port, 0);
        let (r, _) = parse_request(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!(r.command, Command::Bind);
    }

    #[test]
    fn replies() {
        // RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT
        let mut out = Vec::new();
        encode_reply(
            Reply::Succeeded,
            "127.0.0.1:1080".parse().unwrap(),
            &mut out,
        );
        assert_eq!(out, [5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38]);
        let (r, n) = parse_reply(&out).unwrap().unwrap();
        assert_eq!((r.code, n), (0, 10));
        assert_eq!(r.bound, t("127.0.0.1:1080"));

        let mut out = Vec::new();
        encode_reply(Reply::HostUnreachable, "[::]:0".parse().unwrap(), &mut out);
        assert_eq!(out.len(), 22);
        assert_eq!(out[..4], [5, 4, 0, 4]);
        for cut in 0..out.len() {
            assert_eq!(parse_reply(&out[..cut]), Ok(None));
        }
        for code in 0..=8 {
            assert_eq!(Reply::from_code(code).unwrap() as u8, code);
        }
        assert_eq!(Reply::from_code(9), None);
    }

    #[test]
    fn udp_packets() {
        // RFC 1928 §7: RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA
        let buf = [0, 0, 0, 1, 192, 0, 2, 1, 0, 53, b'q', b'?'];
        let p = parse_udp_packet(&buf).unwrap();
        assert_eq!(p.frag, 0);
        assert_eq!(p.target, t("192.0.2.1:53"));
        assert_eq!(p.payload, b"q?");
        let mut out = Vec::new();
        encode_udp_header(&p.target, &mut out);
        assert_eq!(out, buf[..10]);

        let mut out = Vec::new();
        encode_udp_header(&t("dns.example:53"), &mut out);
        assert_eq!(out[..5], [0, 0, 0, 3, 11]);
        let p = parse_udp_packet(&out).unwrap();
        assert_eq!(p.target, t("dns.example:53"));
        assert!(p.payload.is_empty());

        let frag = parse_udp_packet(&[0, 0, 7, 1, 1, 2, 3, 4, 0, 1]).unwrap();
        assert_eq!(frag.frag, 7);
    }

    #[test]
    fn udp_packet_errors() {
        use Socks5Error::*;
        assert_eq!(parse_udp_packet(&[]), Err(Truncated));
        assert_eq!(parse_udp_packet(&[0, 0, 0]), Err(Truncated));
        assert_eq!(
            parse_udp_packet(&[0, 0, 0, 1, 1, 2, 3, 4, 0]),
            Err(Truncated)
        );
        assert_eq!(parse_udp_packet(&[0, 0, 0, 5]), Err(UnknownAddressType));
        assert_eq!(
            parse_udp_packet(&[0, 0, 0, 1, 1, 2, 3, 4, 0, 0]),
            Err(InvalidPort)
        );
        assert_eq!(Truncated.reply(), None);
    }

    #[test]
    fn udp_packet_debug_hides_payload_and_target() {
        let buf = [0, 0, 0, 1, 198, 51, 100, 7, 0x22, 0xb8, b'z', b'z'];
        let s = format!("{:?}", parse_udp_packet(&buf).unwrap());
        assert!(
            !s.contains("198") && !s.contains("8888") && !s.contains("122"),
            "{s}"
        );
    }
}
