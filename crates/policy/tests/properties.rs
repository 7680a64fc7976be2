//! Property tests of the destination policy.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use openrelay_policy::{DenyRule, DestinationPolicy, Ports, Refusal, classify};
use proptest::prelude::*;

/// Every range the standard policy must refuse, written independently of the
/// crate's own tables.
const FORBIDDEN: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "::/96",
    "100::/64",
    "2001::/23",
    "2001::/32",
    "2001:2::/48",
    "2001:db8::/32",
    "3fff::/20",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
    "4000::/2",
    "8000::/1",
    "::ffff:0.0.0.0/104",
    "::ffff:10.0.0.0/104",
    "::ffff:127.0.0.0/104",
    "::ffff:169.254.0.0/112",
    "::ffff:192.168.0.0/112",
    "::ffff:224.0.0.0/100",
    "64:ff9b::a00:0/104",
    "64:ff9b::7f00:0/104",
    "64:ff9b::a9fe:0/112",
    "64:ff9b::6440:0/106",
    "2002::/24",
    "2002:a00::/24",
    "2002:7f00::/24",
    "2002:a9fe::/32",
    "2002:ac10::/28",
    "2002:e000::/20",
];

const PORT: u16 = 443;

fn forbidden_nets() -> Vec<IpNet> {
    FORBIDDEN.iter().map(|s| s.parse().unwrap()).collect()
}

/// The address of `net` whose host bits are `host`'s.
fn address_in(net: IpNet, host: u128) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            // Truncation is intended: only the low bits are used.
            #[allow(clippy::cast_possible_truncation)]
            let host = host as u32;
            let bits = n.network().to_bits() | (host & n.hostmask().to_bits());
            IpAddr::V4(Ipv4Addr::from_bits(bits))
        }
        IpNet::V6(n) => {
            let bits = n.network().to_bits() | (host & n.hostmask().to_bits());
            IpAddr::V6(Ipv6Addr::from_bits(bits))
        }
    }
}

/// A net of length `len` (clamped) around `ip`, or around its IPv4-mapped
/// form, or its IPv4 form if it is IPv4-mapped.
fn net_around(ip: IpAddr, len: u8, flip_family: bool) -> IpNet {
    let ip = if flip_family {
        match ip {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        }
    } else {
        ip
    };
    match ip {
        IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new(v4, len % 33).unwrap()),
        IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new(v6, len % 129).unwrap()),
    }
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|b| IpAddr::V4(Ipv4Addr::from_bits(b))),
        any::<u128>().prop_map(|b| IpAddr::V6(Ipv6Addr::from_bits(b))),
        any::<u32>().prop_map(|b| IpAddr::V6(Ipv4Addr::from_bits(b).to_ipv6_mapped())),
        any::<u32>().prop_map(|b| IpAddr::V6(Ipv6Addr::from_bits(u128::from(b)))),
        any::<u32>()
            .prop_map(|b| { IpAddr::V6(Ipv6Addr::from_bits((0x64_ff9b << 96) | u128::from(b))) }),
        (any::<u32>(), any::<u128>()).prop_map(|(b, low)| {
            let bits = (0x2002 << 112) | (u128::from(b) << 80) | (low & ((1 << 80) - 1));
            IpAddr::V6(Ipv6Addr::from_bits(bits))
        }),
    ]
}

fn arb_net() -> impl Strategy<Value = IpNet> {
    (arb_ip(), any::<u8>()).prop_map(|(ip, len)| net_around(ip, len, false))
}

/// Global unicast IPv4 in 1.0.0.0..=9.255.255.255.
fn global_v4() -> impl Strategy<Value = Ipv4Addr> {
    (0x0100_0000_u32..=0x09FF_FFFF).prop_map(Ipv4Addr::from_bits)
}

fn permitted_port() -> impl Strategy<Value = u16> {
    (1_u16..=u16::MAX).prop_filter("default deny port", |p| {
        !DestinationPolicy::DEFAULT_DENY_PORTS.contains(p)
    })
}

fn std_says_special_v4(v4: Ipv4Addr) -> bool {
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_multicast()
        || v4.is_broadcast()
        || v4.is_documentation()
        || v4.is_unspecified()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// (a) Any address inside a forbidden range is refused unless inside an
    /// allow net (or its IPv4-mapped equivalent is).
    #[test]
    fn forbidden_is_refused_unless_allowed(
        which in any::<prop::sample::Index>(),
        host in any::<u128>(),
        random_allows in prop::collection::vec(arb_net(), 0..3),
        near_allows in prop::collection::vec((any::<u8>(), any::<bool>()), 0..2),
    ) {
        let nets = forbidden_nets();
        let ip = address_in(*which.get(&nets), host);
        let mut allow = random_allows;
        allow.extend(near_allows.into_iter().map(|(len, flip)| net_around(ip, len, flip)));

        let other = match ip {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        };
        let expect_allowed = allow
            .iter()
            .any(|n| n.contains(&ip) || n.contains(&other));

        let policy = DestinationPolicy::new(allow, DestinationPolicy::DEFAULT_DENY_PORTS.to_vec());
        let verdict = policy.check(SocketAddr::new(ip, PORT));
        let class = classify(ip);
        prop_assert!(class.is_some(), "{ip} not classified");
        if expect_allowed {
            prop_assert_eq!(verdict, Ok(()));
        } else {
            prop_assert_eq!(verdict, Err(Refusal::Address(class.unwrap())));
        }
        prop_assert_eq!(
            DestinationPolicy::standard().check(SocketAddr::new(ip, PORT)),
            Err(Refusal::Address(class.unwrap()))
        );
    }

    /// (b) classify, check and filter never panic, and agree with each other.
    #[test]
    fn classify_never_panics_and_check_agrees(
        ip in arb_ip(),
        port in prop_oneof![Just(0_u16), 20_u16..30, any::<u16>()],
        allow in prop::collection::vec(arb_net(), 0..3),
        deny in prop::collection::vec(prop_oneof![20_u16..30, any::<u16>()], 0..6),
    ) {
        let class = classify(ip);
        let policy = DestinationPolicy::new(allow, deny.clone());
        let addr = SocketAddr::new(ip, port);
        let verdict = policy.check(addr);
        if port == 0 || deny.contains(&port) {
            prop_assert_eq!(verdict, Err(Refusal::Port));
        } else if class.is_none() {
            prop_assert_eq!(verdict, Ok(()));
        } else if let Err(refusal) = verdict {
            prop_assert_eq!(refusal, Refusal::Address(class.unwrap()));
        }
        prop_assert_eq!(policy.check_port(port).is_err(), port == 0 || deny.contains(&port));
        let filtered = policy.filter([addr]);
        match verdict {
            Ok(()) => prop_assert_eq!(filtered, Ok(vec![addr])),
            Err(r) => prop_assert_eq!(filtered, Err(r)),
        }
    }

    /// (c) A global unicast address with a non-denied port is allowed, in
    /// IPv4 and in every IPv6 form that embeds it.
    #[test]
    fn global_unicast_is_allowed(v4 in global_v4(), port in permitted_port(), low in any::<u128>()) {
        let policy = DestinationPolicy::standard();
        prop_assert_eq!(classify(IpAddr::V4(v4)), None);
        prop_assert_eq!(policy.check(SocketAddr::new(IpAddr::V4(v4), port)), Ok(()));

        let b = u128::from(v4.to_bits());
        let forms = [
            v4.to_ipv6_mapped(),
            Ipv6Addr::from_bits((0x64_ff9b << 96) | b),
            Ipv6Addr::from_bits((0x2002 << 112) | (b << 80) | (low & ((1 << 80) - 1))),
        ];
        for v6 in forms {
            prop_assert_eq!(policy.check(SocketAddr::new(IpAddr::V6(v6), port)), Ok(()), "{}", v6);
        }
    }

    /// Global unicast IPv6 (2400::/6 holds no special range) is allowed.
    #[test]
    fn global_unicast_v6_is_allowed(bits in any::<u128>(), port in permitted_port()) {
        let v6 = Ipv6Addr::from_bits((0x2400 << 112) | (bits >> 6));
        let policy = DestinationPolicy::standard();
        prop_assert_eq!(policy.check(SocketAddr::new(IpAddr::V6(v6), port)), Ok(()), "{}", v6);
    }

    /// IPv4-mapped, NAT64 and 6to4 forms take the class of the embedded IPv4.
    #[test]
    fn embedded_forms_take_the_ipv4_class(bits in any::<u32>(), low in any::<u128>()) {
        let v4 = Ipv4Addr::from_bits(bits);
        let class = classify(IpAddr::V4(v4));
        let b = u128::from(bits);
        let forms = [
            v4.to_ipv6_mapped(),
            Ipv6Addr::from_bits((0x64_ff9b << 96) | b),
            Ipv6Addr::from_bits((0x2002 << 112) | (b << 80) | (low & ((1 << 80) - 1))),
        ];
        for v6 in forms {
            prop_assert_eq!(classify(IpAddr::V6(v6)), class, "{}", v6);
        }
    }

    /// Whatever the standard library calls special is refused.
    #[test]
    fn agrees_with_std_special_addresses(ip in arb_ip()) {
        let special = match ip {
            IpAddr::V4(v4) => std_says_special_v4(v4),
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unique_local()
                    || v6.is_unicast_link_local()
                    || v6.to_ipv4_mapped().is_some_and(std_says_special_v4)
            }
        };
        if special {
            prop_assert!(classify(ip).is_some(), "{}", ip);
        }
    }

    /// filter keeps exactly the permitted addresses, in order; when none is
    /// permitted it returns the first refusal.
    #[test]
    fn filter_matches_check(addrs in prop::collection::vec((arb_ip(), any::<u16>()), 0..8)) {
        let policy = DestinationPolicy::standard();
        let addrs: Vec<SocketAddr> = addrs.into_iter().map(|(ip, p)| SocketAddr::new(ip, p)).collect();
        let expected: Vec<SocketAddr> =
            addrs.iter().copied().filter(|a| policy.check(*a).is_ok()).collect();
        let result = policy.filter(addrs.clone());
        if expected.is_empty() && !addrs.is_empty() {
            prop_assert_eq!(result, Err(policy.check(addrs[0]).unwrap_err()));
        } else {
            prop_assert_eq!(result, Ok(expected));
        }
    }
}

fn arb_ports() -> impl Strategy<Value = Ports> {
    prop_oneof![
        Just(Ports::All),
        prop::collection::vec(any::<u16>(), 0..3).prop_map(Ports::Only),
        prop::collection::vec(any::<u16>(), 0..3).prop_map(Ports::AllExcept),
    ]
}

fn arb_rule() -> impl Strategy<Value = DenyRule> {
    (arb_net(), arb_ports()).prop_map(|(net, ports)| DenyRule { net, ports })
}

fn in_either_form(net: &IpNet, ip: IpAddr) -> bool {
    let other = match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
    };
    net.contains(&ip) || net.contains(&other)
}

fn rule_refuses(rule: &DenyRule, ip: IpAddr, port: Option<u16>) -> bool {
    in_either_form(&rule.net, ip)
        && match (&rule.ports, port) {
            (Ports::All, _) => true,
            (Ports::Only(list), Some(p)) => list.contains(&p),
            (Ports::AllExcept(list), Some(p)) => !list.contains(&p),
            (Ports::AllExcept(list), None) => list.is_empty(),
            (Ports::Only(_), None) => false,
        }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The order of the crate documentation, against a model written here:
    /// deny list, then allow nets, then class, own host, infrastructure.
    #[test]
    fn verdicts_follow_the_documented_order(
        ip in arb_ip(),
        port in 1_u16..,
        near in (any::<u8>(), any::<bool>()),
        allow in prop::collection::vec(arb_net(), 0..3),
        deny in prop::collection::vec(arb_rule(), 0..3),
        host in prop::collection::vec(arb_net(), 0..3),
        infrastructure in prop::collection::vec(arb_rule(), 0..3),
        which in 0_usize..4,
    ) {
        // Make one list name the address often enough to matter.
        let (mut allow, mut deny, mut host, mut infrastructure) = (allow, deny, host, infrastructure);
        let around = net_around(ip, near.0, near.1);
        match which {
            0 => allow.push(around),
            1 => deny.push(DenyRule::all_ports(around)),
            2 => host.push(around),
            _ => infrastructure.push(DenyRule::all_ports(around)),
        }
        let policy = DestinationPolicy::new(allow.clone(), Vec::new())
            .with_deny(deny.clone())
            .with_host_addresses(host.clone())
            .with_infrastructure(infrastructure.clone());
        for at in [Some(port), None] {
            let expected = if deny.iter().any(|r| rule_refuses(r, ip, at)) {
                Err(Refusal::Denied)
            } else if allow.iter().any(|n| in_either_form(n, ip)) {
                Ok(())
            } else if let Some(class) = classify(ip) {
                Err(Refusal::Address(class))
            } else if host.iter().any(|n| in_either_form(n, ip)) {
                Err(Refusal::OwnHost)
            } else if infrastructure.iter().any(|r| rule_refuses(r, ip, at)) {
                Err(Refusal::Denied)
            } else {
                Ok(())
            };
            let verdict = match at {
                Some(port) => policy.check(SocketAddr::new(ip, port)),
                None => policy.check_ip(ip),
            };
            prop_assert_eq!(verdict, expected, "{} at {:?}", ip, at);
        }
        // An address refused on every port is refused on each one (a
        // rule for some ports may be the reason given there).
        if policy.check_ip(ip).is_err() {
            prop_assert!(policy.check(SocketAddr::new(ip, port)).is_err());
        }
    }
}
