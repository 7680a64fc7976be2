#![doc = include_str!("../README.md")]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The class of an address that is not globally routable unicast, and that an
/// egress relay therefore refuses to connect to unless its operator allows it.
///
/// `Display` writes the class as lowercase words (e.g. `loopback`,
/// `shared address space`); [`AddressClass::as_str`] gives the same text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressClass {
    /// `127.0.0.0/8` (RFC 1122), `::1/128` (RFC 4291).
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` (RFC 1918).
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT (RFC 6598).
    SharedAddressSpace,
    /// `169.254.0.0/16` (RFC 3927), `fe80::/10` (RFC 4291).
    LinkLocal,
    /// `224.0.0.0/4` (RFC 5771), `ff00::/8` (RFC 4291).
    Multicast,
    /// `0.0.0.0/8`, "this network" (RFC 791, RFC 1122), `::/128` (RFC 4291).
    Unspecified,
    /// `255.255.255.255/32`, limited broadcast (RFC 919).
    Broadcast,
    /// `240.0.0.0/4` (RFC 1112), and IPv6 outside the global unicast space
    /// `2000::/3` that no other class covers (RFC 4291), including the
    /// deprecated IPv4-compatible addresses `::/96` (RFC 4291 §2.5.5.1).
    Reserved,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24` (RFC 5737),
    /// `2001:db8::/32` (RFC 3849), `3fff::/20` (RFC 9637).
    Documentation,
    /// `198.18.0.0/15` (RFC 2544), `2001:2::/48` (RFC 5180).
    Benchmarking,
    /// `fc00::/7` (RFC 4193).
    UniqueLocal,
    /// IETF protocol assignments: `192.0.0.0/24` and `2001::/23` (RFC 6890),
    /// except Teredo and benchmarking, which have their own classes.
    ProtocolAssignment,
    /// `fec0::/10`, deprecated site-local (RFC 3879).
    SiteLocal,
    /// `100::/64`, discard-only (RFC 6666).
    DiscardOnly,
    /// `2001::/32`, Teredo tunnelling (RFC 4380).
    Teredo,
}

impl AddressClass {
    /// The class as lowercase words, as written by `Display`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared address space",
            Self::LinkLocal => "link-local",
            Self::Multicast => "multicast",
            Self::Unspecified => "unspecified",
            Self::Broadcast => "broadcast",
            Self::Reserved => "reserved",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::UniqueLocal => "unique-local",
            Self::ProtocolAssignment => "protocol assignment",
            Self::SiteLocal => "site-local",
            Self::DiscardOnly => "discard-only",
            Self::Teredo => "teredo",
        }
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a destination was refused.
///
/// Neither `Display` nor `Debug` contains the destination address or port:
/// only its class. It is safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The address is not globally routable and no allow net covers it.
    #[error("destination address is {0} and not allowed by this relay's policy")]
    Address(AddressClass),
    /// The port is in the deny list (or is port 0).
    #[error("destination port is blocked by this relay's policy")]
    Port,
    /// The address is one of the relay host's own.
    #[error("destination is this relay's own host")]
    OwnHost,
    /// The operator's deny list, or the relay's own infrastructure, names
    /// the destination. (One refusal for both: a client learns no more about
    /// the operator's network than that it may not go there.)
    #[error("destination is denied by this relay's policy")]
    Denied,
}

/// Which ports of its net a [`DenyRule`] refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    /// Every port.
    All,
    /// Only these.
    Only(Vec<u16>),
    /// Every port except these: a service of the operator's that clients
    /// do reach, through the relays (the registry's and the issuer's QUIC
    /// port), on a host whose other ports are refused.
    AllExcept(Vec<u16>),
}

/// Destinations to refuse: a net and which of its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyRule {
    /// The addresses (an IPv4 rule also covers the IPv4-mapped IPv6 forms).
    pub net: IpNet,
    /// The ports.
    pub ports: Ports,
}

impl DenyRule {
    /// Every port of `net`.
    #[must_use]
    pub fn all_ports(net: IpNet) -> Self {
        Self {
            net,
            ports: Ports::All,
        }
    }

    /// Every port of the one address `ip` except `port`.
    #[must_use]
    pub fn host_except(ip: IpAddr, port: u16) -> Self {
        Self {
            net: IpNet::from(ip),
            ports: Ports::AllExcept(vec![port]),
        }
    }

    /// Whether the rule refuses `ip` on `port`; with `port` `None`, whether
    /// it refuses `ip` on every port.
    fn refuses(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let ports = match (&self.ports, port) {
            (Ports::All, _) => true,
            (Ports::Only(list), Some(port)) => list.contains(&port),
            (Ports::AllExcept(list), Some(port)) => !list.contains(&port),
            // With no exception it is every port.
            (Ports::AllExcept(list), None) => list.is_empty(),
            (Ports::Only(_), None) => false,
        };
        ports && contains(&self.net, ip)
    }
}

/// The destination policy of an egress relay.
///
/// By default every address for which [`classify`] returns a class is
/// refused; the operator's `allow` nets override that refusal. Ports in
/// `deny_ports` are always refused, whatever the address, and so is port 0
/// (reserved, never a valid destination).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationPolicy {
    allow: Vec<IpNet>,
    /// Sorted and deduplicated.
    deny_ports: Vec<u16>,
    /// The operator's deny list: beats `allow`.
    deny: Vec<DenyRule>,
    /// The relay's own host (the nets of loopback interfaces, the single
    /// addresses of others).
    host: Vec<IpNet>,
    /// The relay's infrastructure, from its config.
    infrastructure: Vec<DenyRule>,
}

impl DestinationPolicy {
    /// Ports refused by [`DestinationPolicy::standard`]: SMTP (25), NetBIOS
    /// (137, 138, 139) and SMB (445).
    pub const DEFAULT_DENY_PORTS: &'static [u16] = &[25, 137, 138, 139, 445];

    /// A policy that additionally allows the `allow` nets (overriding the
    /// address refusal, not the port refusal) and refuses exactly the ports in
    /// `deny_ports` (plus port 0), replacing [`Self::DEFAULT_DENY_PORTS`].
    #[must_use]
    pub fn new(allow: Vec<IpNet>, mut deny_ports: Vec<u16>) -> Self {
        deny_ports.sort_unstable();
        deny_ports.dedup();
        Self {
            allow,
            deny_ports,
            deny: Vec::new(),
            host: Vec::new(),
            infrastructure: Vec::new(),
        }
    }

    /// This policy with the operator's deny list: destinations refused
    /// even where an allow net contains them.
    #[must_use]
    pub fn with_deny(mut self, deny: Vec<DenyRule>) -> Self {
        self.deny = deny;
        self
    }

    /// This policy refusing the relay host's own addresses (replacing those
    /// given before: interfaces change). An allow net still permits the
    /// addresses it contains.
    #[must_use]
    pub fn with_host_addresses(mut self, host: Vec<IpNet>) -> Self {
        self.host = host;
        self
    }

    /// This policy refusing the relay's infrastructure. An allow net still
    /// permits the addresses it contains.
    #[must_use]
    pub fn with_infrastructure(mut self, infrastructure: Vec<DenyRule>) -> Self {
        self.infrastructure = infrastructure;
        self
    }

    /// The operator's deny list.
    #[must_use]
    pub fn deny(&self) -> &[DenyRule] {
        &self.deny
    }

    /// The relay host's addresses, as last given.
    #[must_use]
    pub fn host_addresses(&self) -> &[IpNet] {
        &self.host
    }

    /// The relay's infrastructure.
    #[must_use]
    pub fn infrastructure(&self) -> &[DenyRule] {
        &self.infrastructure
    }

    /// Default policy: no extra allows, default deny ports.
    #[must_use]
    pub fn standard() -> Self {
        Self::new(Vec::new(), Self::DEFAULT_DENY_PORTS.to_vec())
    }

    /// The operator's allow nets, as given to [`Self::new`].
    #[must_use]
    pub fn allow(&self) -> &[IpNet] {
        &self.allow
    }

    /// The denied ports, sorted and without duplicates (port 0 is refused
    /// too, whether or not it is listed).
    #[must_use]
    pub fn deny_ports(&self) -> &[u16] {
        &self.deny_ports
    }

    /// Judge one resolved destination. The port is judged first, so a
    /// destination with both a blocked port and a refused address yields
    /// [`Refusal::Port`].
    ///
    /// # Errors
    ///
    /// [`Refusal::Port`] if the port is refused, else
    /// [`Refusal::Address`] if the address is refused.
    pub fn check(&self, addr: SocketAddr) -> Result<(), Refusal> {
        self.check_port(addr.port())?;
        self.judge(addr.ip(), Some(addr.port()))
    }

    /// Judge a port alone (before resolving a name, so we don't even resolve
    /// for a denied port). Port 0 is always refused.
    ///
    /// # Errors
    ///
    /// [`Refusal::Port`] if the port is 0 or in the deny list.
    pub fn check_port(&self, port: u16) -> Result<(), Refusal> {
        if port == 0 || self.deny_ports.binary_search(&port).is_ok() {
            Err(Refusal::Port)
        } else {
            Ok(())
        }
    }

    /// Judge an address alone: refused only if it is refused on every port
    /// (deny rules for some ports do not refuse the address). This is how
    /// addresses in DNS answers are judged.
    ///
    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the same
    /// destination as `a.b.c.d`, so a net containing either form matches it.
    ///
    /// # Errors
    ///
    /// The refusal, in the order of the [crate documentation](crate).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        self.judge(ip, None)
    }

    /// Steps 2 to 6 of the crate documentation, for `ip` on `port` (or, with
    /// `None`, on every port).
    fn judge(&self, ip: IpAddr, port: Option<u16>) -> Result<(), Refusal> {
        if self.deny.iter().any(|rule| rule.refuses(ip, port)) {
            return Err(Refusal::Denied);
        }
        if self.allow.iter().any(|net| contains(net, ip)) {
            return Ok(());
        }
        if let Some(class) = classify(ip) {
            return Err(Refusal::Address(class));
        }
        if self.host.iter().any(|net| contains(net, ip)) {
            return Err(Refusal::OwnHost);
        }
        if self
            .infrastructure
            .iter()
            .any(|rule| rule.refuses(ip, port))
        {
            return Err(Refusal::Denied);
        }
        Ok(())
    }

    /// Keep only permitted addresses of a name's resolution, preserving
    /// order. If addresses were given but none is permitted, returns the
    /// refusal of the first one.
    ///
    /// An empty input gives `Ok` with an empty vector (nothing was refused):
    /// the caller must treat that as a resolution failure.
    ///
    /// # Errors
    ///
    /// The refusal of the first address, if every address is refused.
    pub fn filter(
        &self,
        addrs: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, Refusal> {
        let mut kept = Vec::new();
        let mut first_refusal = None;
        for addr in addrs {
            match self.check(addr) {
                Ok(()) => kept.push(addr),
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                }
            }
        }
        match first_refusal {
            Some(refusal) if kept.is_empty() => Err(refusal),
            _ => Ok(kept),
        }
    }
}

impl Default for DestinationPolicy {
    /// Same as [`DestinationPolicy::standard`].
    fn default() -> Self {
        Self::standard()
    }
}

/// Whether `net` contains `ip` in either of its spellings.
fn contains(net: &IpNet, ip: IpAddr) -> bool {
    net.contains(&ip) || other_form(ip).is_some_and(|other| net.contains(&other))
}

/// The other spelling of the same destination: the IPv4-mapped IPv6 form of
/// an IPv4 address, or the IPv4 form of an IPv4-mapped IPv6 address.
fn other_form(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
    }
}

/// Classify an address: `None` if it is globally routable unicast, otherwise
/// the class of special-purpose address it belongs to.
///
/// IPv6 addresses that embed an IPv4 address are judged by the embedded
/// address: IPv4-mapped `::ffff:0:0/96` (RFC 4291), NAT64 `64:ff9b::/96`
/// (RFC 6052) and 6to4 `2002::/16` (RFC 3056). The deprecated IPv4-compatible
/// `::/96` takes the class of its embedded address when that is not globally
/// routable, and is [`AddressClass::Reserved`] otherwise.
#[must_use]
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// IPv4 special-purpose ranges, most specific first where they nest.
const V4_RANGES: &[(u32, u8, AddressClass)] = &[
    (0x0000_0000, 8, AddressClass::Unspecified), // 0.0.0.0/8
    (0x0A00_0000, 8, AddressClass::Private),     // 10.0.0.0/8
    (0x6440_0000, 10, AddressClass::SharedAddressSpace), // 100.64.0.0/10
    (0x7F00_0000, 8, AddressClass::Loopback),    // 127.0.0.0/8
    (0xA9FE_0000, 16, AddressClass::LinkLocal),  // 169.254.0.0/16
    (0xAC10_0000, 12, AddressClass::Private),    // 172.16.0.0/12
    (0xC000_0000, 24, AddressClass::ProtocolAssignment), // 192.0.0.0/24
    (0xC000_0200, 24, AddressClass::Documentation), // 192.0.2.0/24
    (0xC0A8_0000, 16, AddressClass::Private),    // 192.168.0.0/16
    (0xC612_0000, 15, AddressClass::Benchmarking), // 198.18.0.0/15
    (0xC633_6400, 24, AddressClass::Documentation), // 198.51.100.0/24
    (0xCB00_7100, 24, AddressClass::Documentation), // 203.0.113.0/24
    (0xE000_0000, 4, AddressClass::Multicast),   // 224.0.0.0/4
    (0xFFFF_FFFF, 32, AddressClass::Broadcast),  // 255.255.255.255/32
    (0xF000_0000, 4, AddressClass::Reserved),    // 240.0.0.0/4
];

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let bits = ip.to_bits();
    V4_RANGES
        .iter()
        .find(|&&(net, len, _)| bits & mask_v4(len) == net)
        .map(|&(_, _, class)| class)
}

fn mask_v4(len: u8) -> u32 {
    u32::MAX
        .checked_shl(32_u32.saturating_sub(u32::from(len)))
        .unwrap_or(0)
}

fn mask_v6(len: u8) -> u128 {
    u128::MAX
        .checked_shl(128_u32.saturating_sub(u32::from(len)))
        .unwrap_or(0)
}

fn in_v6(bits: u128, net: u128, len: u8) -> bool {
    bits & mask_v6(len) == net
}

/// The IPv4 address in the low 32 bits.
fn low_v4(bits: u128) -> Ipv4Addr {
    // Truncation to the low 32 bits is the point.
    #[allow(clippy::cast_possible_truncation)]
    Ipv4Addr::from_bits(bits as u32)
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    let bits = ip.to_bits();

    if bits == 0 {
        return Some(AddressClass::Unspecified);
    }
    if bits == 1 {
        return Some(AddressClass::Loopback);
    }
    // ::ffff:0:0/96, IPv4-mapped (RFC 4291 §2.5.5.2).
    if in_v6(bits, 0xffff_0000_0000, 96) {
        return classify_v4(low_v4(bits));
    }
    // ::/96, IPv4-compatible, deprecated (RFC 4291 §2.5.5.1).
    if in_v6(bits, 0, 96) {
        return Some(classify_v4(low_v4(bits)).unwrap_or(AddressClass::Reserved));
    }
    // 64:ff9b::/96, NAT64 well-known prefix (RFC 6052).
    if in_v6(bits, 0x0064_ff9b << 96, 96) {
        return classify_v4(low_v4(bits));
    }
    // 2002::/16, 6to4 (RFC 3056): the IPv4 address is in bits 16..48.
    if in_v6(bits, 0x2002 << 112, 16) {
        return classify_v4(low_v4(bits >> 80));
    }

    let class = if in_v6(bits, 0xff << 120, 8) {
        AddressClass::Multicast
    } else if in_v6(bits, 0xfe80 << 112, 10) {
        AddressClass::LinkLocal
    } else if in_v6(bits, 0xfec0 << 112, 10) {
        AddressClass::SiteLocal
    } else if in_v6(bits, 0xfc00 << 112, 7) {
        AddressClass::UniqueLocal
    } else if in_v6(bits, 0x0100 << 112, 64) {
        AddressClass::DiscardOnly
    } else if in_v6(bits, 0x2001_0000 << 96, 32) {
        AddressClass::Teredo
    } else if in_v6(bits, 0x2001_0002_0000 << 80, 48) {
        AddressClass::Benchmarking
    } else if in_v6(bits, 0x2001 << 112, 23) {
        AddressClass::ProtocolAssignment
    } else if in_v6(bits, 0x2001_0db8 << 96, 32) || in_v6(bits, 0x3fff << 112, 20) {
        AddressClass::Documentation
    } else if !in_v6(bits, 0x2000 << 112, 3) {
        // Outside the global unicast space: unassigned by IANA, or special
        // (e.g. local-use NAT64 64:ff9b:1::/48, SRv6 SIDs 5f00::/16).
        AddressClass::Reserved
    } else {
        return None;
    };
    Some(class)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
