//! Field types shared by descriptors and profiles, each with the rules that
//! make its encoding unique and safe to show (`docs/directory-format.md`,
//! "Field rules").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::FormatError;
use crate::codec::{Reader, put_short_str};

/// An ISO 3166-1 alpha-2 code: two ASCII capital letters.
///
/// Only the form is checked, not the list of assigned codes: that list changes,
/// and since one bad descriptor refuses a whole directory, a client with an
/// older list would refuse every directory that used a new code.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses `"DE"`; lower case is refused (one value, one spelling).
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let bytes: [u8; 2] = text
            .as_bytes()
            .try_into()
            .map_err(|_| FormatError::Invalid {
                field: "country",
                reason: "must be two letters",
            })?;
        Self::from_bytes(bytes)
    }

    /// The code from its two bytes.
    pub fn from_bytes(bytes: [u8; 2]) -> Result<Self, FormatError> {
        if bytes.iter().all(u8::is_ascii_uppercase) {
            Ok(CountryCode(bytes))
        } else {
            Err(FormatError::Invalid {
                field: "country",
                reason: "must be two ASCII capital letters (ISO 3166-1 alpha-2)",
            })
        }
    }

    /// The code, e.g. `"DE"`.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII capitals, checked on construction.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        Self::from_bytes(r.array()?)
    }
}

impl std::fmt::Display for CountryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

impl std::str::FromStr for CountryCode {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Where a relay is: the country (what `--egress-country` selects) and a
/// city (`--egress-city`; empty when the operator does not say).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Region {
    /// ISO 3166-1 alpha-2 country code.
    pub country: CountryCode,
    /// City name, free text (at most [`MAX_CITY_LEN`](crate::MAX_CITY_LEN)
    /// bytes), or empty.
    pub city: String,
}

impl Region {
    pub(crate) fn check(&self) -> Result<(), FormatError> {
        check_text("city", &self.city, 0, crate::MAX_CITY_LEN)
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        self.country.encode(out);
        put_short_str(out, &self.city);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        let country = CountryCode::decode(r)?;
        let city = r.short_str("city", crate::MAX_CITY_LEN)?.to_owned();
        let region = Region { country, city };
        region.check()?;
        Ok(region)
    }
}

/// The network a relay's addresses are in. Path selection never puts an
/// ingress and an egress of one network in a path (issue 3, item 4).
///
/// Self-declared: validators can check it later, the format only keeps it
/// unambiguous (a label may not look like an AS number, so `AS64500` has one
/// spelling, [`Network::Asn`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Network {
    /// An autonomous system number (not 0).
    Asn(u32),
    /// A free label for networks without their own AS (e.g. a hosting
    /// provider's name), 1 to [`MAX_NETWORK_LABEL_LEN`](crate::MAX_NETWORK_LABEL_LEN)
    /// bytes.
    Label(String),
}

const NETWORK_ASN: u8 = 1;
const NETWORK_LABEL: u8 = 2;

impl Network {
    pub(crate) fn check(&self) -> Result<(), FormatError> {
        match self {
            Network::Asn(0) => Err(FormatError::Invalid {
                field: "network",
                reason: "AS number 0 is reserved",
            }),
            Network::Asn(_) => Ok(()),
            Network::Label(label) => {
                check_text("network", label, 1, crate::MAX_NETWORK_LABEL_LEN)?;
                let digits = label.get(2..).unwrap_or_default();
                let looks_like_asn = label.len() > 2
                    && label.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("as"))
                    && digits.bytes().all(|b| b.is_ascii_digit());
                if looks_like_asn {
                    return Err(FormatError::Invalid {
                        field: "network",
                        reason: "a label may not look like an AS number; use the AS form",
                    });
                }
                Ok(())
            }
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Network::Asn(asn) => {
                out.push(NETWORK_ASN);
                out.extend_from_slice(&asn.to_be_bytes());
            }
            Network::Label(label) => {
                out.push(NETWORK_LABEL);
                put_short_str(out, label);
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        let network = match r.u8()? {
            NETWORK_ASN => Network::Asn(r.u32()?),
            NETWORK_LABEL => Network::Label(
                r.short_str("network", crate::MAX_NETWORK_LABEL_LEN)?
                    .to_owned(),
            ),
            _ => {
                return Err(FormatError::Invalid {
                    field: "network",
                    reason: "unknown kind",
                });
            }
        };
        network.check()?;
        Ok(network)
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Network::Asn(asn) => write!(f, "AS{asn}"),
            Network::Label(label) => f.write_str(label),
        }
    }
}

/// Characters that change how the text around them is displayed without being
/// visible themselves (bidirectional overrides, zero-width characters): an
/// operator name could use them to pass for another in `openrelay status`.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// The rule for every free-text field: `min..=max` bytes of UTF-8, no control
/// characters (they would reach terminals and logs), no invisible formatting
/// characters, no leading or trailing white space (so `" x"` and `"x"` are not
/// two spellings of one name).
pub(crate) fn check_text(
    field: &'static str,
    text: &str,
    min: usize,
    max: usize,
) -> Result<(), FormatError> {
    if text.len() > max {
        return Err(FormatError::TooLarge {
            what: field,
            limit: max,
        });
    }
    if text.len() < min {
        return Err(FormatError::Invalid {
            field,
            reason: "must not be empty",
        });
    }
    if text
        .chars()
        .any(|c| c.is_control() || is_invisible_format(c))
    {
        return Err(FormatError::Invalid {
            field,
            reason: "control or invisible formatting character",
        });
    }
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return Err(FormatError::Invalid {
            field,
            reason: "leading or trailing white space",
        });
    }
    Ok(())
}

/// The software version rule: printable ASCII (it is shown and compared with
/// release names), no leading or trailing space.
pub(crate) fn check_software_version(text: &str) -> Result<(), FormatError> {
    const FIELD: &str = "software_version";
    check_text(FIELD, text, 1, crate::MAX_SOFTWARE_VERSION_LEN)?;
    if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(FormatError::Invalid {
            field: FIELD,
            reason: "must be printable ASCII",
        });
    }
    Ok(())
}

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

/// Checks one endpoint: a unicast address a client can send to, with a port.
/// IPv6 flow labels and scope ids are not part of the format (a scope id only
/// means something on the host that chose it), so they must be zero; an
/// IPv4-mapped IPv6 address must be written as IPv4 (one address, one
/// spelling).
pub(crate) fn check_endpoint(addr: &SocketAddr) -> Result<(), FormatError> {
    let bad = |reason| {
        Err(FormatError::Invalid {
            field: "endpoints",
            reason,
        })
    };
    if addr.port() == 0 {
        return bad("port 0");
    }
    let ip = addr.ip();
    if ip.is_unspecified() || ip.is_multicast() {
        return bad("unspecified or multicast address");
    }
    match addr {
        SocketAddr::V4(v4) if *v4.ip() == Ipv4Addr::BROADCAST => bad("broadcast address"),
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => {
            bad("IPv4-mapped IPv6 address; write it as IPv4")
        }
        SocketAddr::V6(v6) if v6.flowinfo() != 0 || v6.scope_id() != 0 => {
            bad("IPv6 flow info or scope id")
        }
        _ => Ok(()),
    }
}

pub(crate) fn encode_endpoint(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(FAMILY_V4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(FAMILY_V6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// The order endpoints are listed in: that of their encodings (IPv4 before
/// IPv6, then address bytes, then port).
pub(crate) fn endpoint_key(addr: &SocketAddr) -> (u8, [u8; 16], u16) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            let mut a = [0u8; 16];
            a[..4].copy_from_slice(&ip.octets());
            (FAMILY_V4, a, addr.port())
        }
        IpAddr::V6(ip) => (FAMILY_V6, ip.octets(), addr.port()),
    }
}

pub(crate) fn decode_endpoint(r: &mut Reader<'_>) -> Result<SocketAddr, FormatError> {
    let addr = match r.u8()? {
        FAMILY_V4 => {
            let ip = Ipv4Addr::from(r.array::<4>()?);
            SocketAddr::V4(SocketAddrV4::new(ip, r.u16()?))
        }
        FAMILY_V6 => {
            let ip = Ipv6Addr::from(r.array::<16>()?);
            SocketAddr::V6(SocketAddrV6::new(ip, r.u16()?, 0, 0))
        }
        _ => {
            return Err(FormatError::Invalid {
                field: "endpoints",
                reason: "unknown address family",
            });
        }
    };
    check_endpoint(&addr)?;
    Ok(addr)
}
