//! What the VPN changes on the system, as pure data: the kill switch's
//! nftables ruleset, the routes and policy rules that send traffic into the
//! TUN device (and let excluded traffic bypass it), the resolver file's new
//! text. `system` applies and undoes these; everything here is tested
//! without touching the system.
//!
//! Routing (policy routing as in wg-quick): the client's own sockets to the
//! ingress carry the firewall mark [`MARK`] and use the main table; DNS (port
//! 53, UDP and TCP) always goes into the tunnel; excluded networks (and, with
//! LAN access, every non-default route of the main table) use the main
//! table; everything else uses table [`TABLE`], whose only route is the TUN
//! device. When the device is gone (the client died) table [`TABLE`] is
//! empty, lookups fall through to the main table, and the kill switch drops
//! the packets there: the system fails closed.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

use crate::journal::{Change, Family};

/// The firewall mark of the client's sockets to the ingress (`SO_MARK`).
pub const MARK: u32 = 0x6f72;
/// The routing table holding the TUN device's default routes.
pub const TABLE: u32 = 0x6f72;
/// The first policy rule priority used (the rules take the next few).
pub const RULE_PRIORITY: u32 = 6100;
/// The nftables table of the kill switch (family `inet`).
pub const FIREWALL_TABLE: &str = "openrelay";
/// The kill switch's set of IPv4 ingress addresses and UDP ports: the only
/// places the client's marked packets may go.
pub const INGRESS_SET_V4: &str = "ingresses_v4";
/// The IPv6 twin of [`INGRESS_SET_V4`].
pub const INGRESS_SET_V6: &str = "ingresses_v6";
/// The TUN device's IPv4 address.
pub const TUN_V4: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 2);
/// The TUN device's IPv6 address (unique local, RFC 4193).
pub const TUN_V6: Ipv6Addr = Ipv6Addr::new(0xfd6f, 0x7265, 0x6c61, 0x7900, 0, 0, 0, 2);
/// The resolver address written to resolv.conf. Any address works (every
/// query to port 53 is answered through the egress); this one is inside the
/// tunnel and answers ping.
pub const DNS_V4: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 1);
/// The IPv6 twin of [`DNS_V4`].
pub const DNS_V6: Ipv6Addr = Ipv6Addr::new(0xfd6f, 0x7265, 0x6c61, 0x7900, 0, 0, 0, 1);

/// Local-network ranges reachable directly with `lan_access`: private
/// (RFC 1918, RFC 4193), link-local (RFC 3927, RFC 4291 §2.5.6) and multicast.
pub const LAN_V4: [&str; 6] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
];
/// IPv6 local-network ranges (see [`LAN_V4`]).
pub const LAN_V6: [&str; 3] = ["fc00::/7", "fe80::/10", "ff00::/8"];

/// What the user configured, as far as the plan depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The TUN device's name.
    pub device: String,
    /// Networks that bypass the tunnel.
    pub exclude: Vec<IpNet>,
    /// Whether the local network bypasses the tunnel.
    pub lan_access: bool,
    /// Whether the kill switch is installed.
    pub kill_switch: bool,
}

/// Where a packet to `destination` goes while the VPN is up (what the rules
/// of [`rules`] decide, as a function to test them against).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Into the tunnel.
    Tunnel,
    /// The normal route (excluded network, or local network with LAN access).
    Bypass,
}

/// Whether `ip` is in the local-network ranges.
pub fn is_lan(ip: IpAddr) -> bool {
    let ranges: &[&str] = match ip {
        IpAddr::V4(_) => &LAN_V4,
        IpAddr::V6(_) => &LAN_V6,
    };
    ranges
        .iter()
        .filter_map(|r| r.parse::<IpNet>().ok())
        .any(|net| net.contains(&ip))
}

/// Where an app's packet to `destination:port` goes.
pub fn decide(settings: &Settings, destination: IpAddr, port: u16) -> Decision {
    if port == 53 {
        return Decision::Tunnel;
    }
    if settings
        .exclude
        .iter()
        .any(|net| net.contains(&destination))
        || (settings.lan_access && is_lan(destination))
    {
        return Decision::Bypass;
    }
    Decision::Tunnel
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

/// The routes of table [`TABLE`]: the default route of each family into the device.
pub fn routes(settings: &Settings) -> Vec<Change> {
    let table = TABLE.to_string();
    [Family::V4, Family::V6]
        .into_iter()
        .map(|family| Change::Route {
            family,
            args: args(&["default", "dev", &settings.device, "table", &table]),
        })
        .collect()
}

/// The policy rules, both families, in priority order.
pub fn rules(settings: &Settings) -> Vec<Change> {
    let table = TABLE.to_string();
    let mark = format!("{MARK:#x}");
    let mut rules = Vec::new();
    for family in [Family::V4, Family::V6] {
        let mut priority = RULE_PRIORITY;
        let mut add = |words: &[&str]| {
            let mut a = vec!["priority".to_owned(), priority.to_string()];
            a.extend(args(words));
            rules.push(Change::Rule { family, args: a });
            priority += 1;
        };
        // The client's own packets to the ingress: the normal route.
        add(&["fwmark", &mark, "lookup", "main"]);
        // DNS always into the tunnel, even to a resolver on the LAN.
        add(&["ipproto", "udp", "dport", "53", "lookup", &table]);
        add(&["ipproto", "tcp", "dport", "53", "lookup", &table]);
        for net in &settings.exclude {
            let matches = matches!(
                (family, net),
                (Family::V4, IpNet::V4(_)) | (Family::V6, IpNet::V6(_))
            );
            if matches {
                add(&["to", &net.to_string(), "lookup", "main"]);
            }
        }
        if settings.lan_access {
            // Every main-table route but the default one: the LAN's subnets.
            add(&["lookup", "main", "suppress_prefixlength", "0"]);
        }
        add(&["lookup", &table]);
    }
    rules
}

/// Whether `name` can be a network device's name (1 to 15 bytes, IFNAMSIZ;
/// the characters `tun.name` allows).
pub fn is_device_name(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `args` is a route [`routes`] makes (for some device): undoing a
/// journal deletes nothing else.
pub fn is_planned_route(args: &[String]) -> bool {
    let table = TABLE.to_string();
    matches!(
        args,
        [default, dev, device, t, n]
            if default == "default" && dev == "dev" && is_device_name(device)
                && t == "table" && *n == table
    )
}

/// How many rules [`rules`] makes per family at most: the mark, DNS over
/// UDP and TCP, LAN access and the tunnel, and the exclusions.
fn max_rules(exclusions: usize) -> u32 {
    u32::try_from(exclusions)
        .unwrap_or(u32::MAX)
        .saturating_add(5)
}

/// Whether `args` is a policy rule [`rules`] makes (for some settings):
/// undoing a journal deletes nothing else. Its priority is in openrelay's
/// range, and its selector and action are one of the plan's shapes.
pub fn is_planned_rule(args: &[String]) -> bool {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let table = TABLE.to_string();
    let mark = format!("{MARK:#x}");
    let ["priority", priority, rest @ ..] = words.as_slice() else {
        return false;
    };
    // The exclusions are bounded only by the config; a journal line cannot
    // name a priority past what a plausible config makes.
    let in_range = priority.parse::<u32>().is_ok_and(|p| {
        (RULE_PRIORITY..RULE_PRIORITY.saturating_add(max_rules(MAX_EXCLUSIONS))).contains(&p)
    });
    in_range
        && match rest {
            ["fwmark", m, "lookup", "main"] => *m == mark,
            ["ipproto", "udp" | "tcp", "dport", "53", "lookup", t] => *t == table,
            ["to", net, "lookup", "main"] => net.parse::<IpNet>().is_ok(),
            ["lookup", "main", "suppress_prefixlength", "0"] => true,
            ["lookup", t] => *t == table,
            _ => false,
        }
}

/// The most exclusions a journal's rules are accepted for (far more than a
/// config would list).
pub const MAX_EXCLUSIONS: usize = 4096;

fn set(nets: &[String]) -> String {
    format!("{{ {} }}", nets.join(", "))
}

/// The elements of the ingress sets: (IPv4, IPv6) `address . port` lists.
fn ingress_elements(ingresses: &BTreeSet<SocketAddr>) -> (Vec<String>, Vec<String>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for ingress in ingresses {
        // A v4-mapped IPv6 address is sent as IPv4.
        match ingress.ip().to_canonical() {
            IpAddr::V4(ip) => v4.push(format!("{ip} . {}", ingress.port())),
            IpAddr::V6(ip) => v6.push(format!("{ip} . {}", ingress.port())),
        }
    }
    (v4, v6)
}

/// The declaration of one ingress set with its elements.
fn ingress_set(name: &str, kind: &str, elements: &[String]) -> String {
    let elements = match elements.is_empty() {
        true => String::new(),
        false => format!(" elements = {};", set(elements)),
    };
    format!(
        "    set {name} {{ type {kind} . inet_service;{elements} }}
"
    )
}

/// The nftables script that makes `ingresses` the kill switch's ingress
/// sets. `nft -f` runs a script as one transaction: packets see the old
/// sets or the new ones, never an empty or partial set in between.
pub fn ingress_sets_update(ingresses: &BTreeSet<SocketAddr>) -> String {
    let (v4, v6) = ingress_elements(ingresses);
    let mut script = String::new();
    for (name, elements) in [(INGRESS_SET_V4, v4), (INGRESS_SET_V6, v6)] {
        script += &format!(
            "flush set inet {FIREWALL_TABLE} {name}
"
        );
        if !elements.is_empty() {
            script += &format!(
                "add element inet {FIREWALL_TABLE} {name} {}
",
                set(&elements)
            );
        }
    }
    script
}

/// The kill switch: a table of family `inet` that drops everything entering
/// or leaving by an interface other than loopback and the TUN device, except
/// the client's marked UDP to the ingresses (`ingresses` at first; the sets
/// are then kept current with [`ingress_sets_update`]), excluded networks,
/// the local network with LAN access, DHCPv4 and IPv6 neighbour discovery
/// (link mechanics that carry no user data). A marked packet to anything but
/// a listed ingress address and port is refused before any other rule could
/// let it out: the client's own sockets (a direct connection to an issuer,
/// say) cannot bypass the tunnel. Forwarded traffic (containers, VMs) is
/// held to the same rules.
pub fn kill_switch(settings: &Settings, ingresses: &BTreeSet<SocketAddr>) -> String {
    let device = &settings.device;
    let (mut v4, mut v6): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for net in &settings.exclude {
        match net {
            IpNet::V4(n) => v4.push(n.to_string()),
            IpNet::V6(n) => v6.push(n.to_string()),
        }
    }
    if settings.lan_access {
        v4.extend(LAN_V4.iter().map(|s| (*s).to_owned()));
        v6.extend(LAN_V6.iter().map(|s| (*s).to_owned()));
    }
    let mut out_allow = String::new();
    let mut in_allow = String::new();
    if !v4.is_empty() {
        out_allow += &format!("        ip daddr {} accept\n", set(&v4));
        in_allow += &format!("        ip saddr {} accept\n", set(&v4));
    }
    if !v6.is_empty() {
        out_allow += &format!("        ip6 daddr {} accept\n", set(&v6));
        in_allow += &format!("        ip6 saddr {} accept\n", set(&v6));
    }
    let (ingress_v4, ingress_v6) = ingress_elements(ingresses);
    let sets = ingress_set(INGRESS_SET_V4, "ipv4_addr", &ingress_v4)
        + &ingress_set(INGRESS_SET_V6, "ipv6_addr", &ingress_v6);
    format!(
        "table inet {FIREWALL_TABLE} {{
{sets}    chain output {{
        type filter hook output priority 0; policy drop;
        oifname \"lo\" accept
        oifname \"{device}\" accept
        meta mark {MARK:#x} ip daddr . udp dport @{INGRESS_SET_V4} accept
        meta mark {MARK:#x} ip6 daddr . udp dport @{INGRESS_SET_V6} accept
        meta mark {MARK:#x} reject with icmpx type admin-prohibited
        th dport 53 reject with icmpx type admin-prohibited
{out_allow}        udp sport 68 udp dport 67 accept
        icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} ip6 hoplimit 255 accept
        reject with icmpx type admin-prohibited
    }}
    chain input {{
        type filter hook input priority 0; policy drop;
        iifname \"lo\" accept
        iifname \"{device}\" accept
        ct state established,related accept
{in_allow}        udp sport 67 udp dport 68 accept
        icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert }} ip6 hoplimit 255 accept
    }}
    chain forward {{
        type filter hook forward priority 0; policy drop;
        oifname \"{device}\" accept
        iifname \"{device}\" accept
{out_allow}    }}
}}
"
    )
}

/// The resolver file while the VPN is up: `nameserver` lines replaced by the
/// tunnel's address; `search`, `domain` and `options` kept (they leak
/// nothing: every query still goes through the tunnel).
pub fn resolv_conf(original: &str) -> String {
    let mut text = String::from(
        "# Written by openrelay while the VPN is up; `openrelay down` restores the original.\n",
    );
    text += &format!("nameserver {DNS_V4}\n");
    for line in original.lines() {
        let keyword = line.split_whitespace().next().unwrap_or_default();
        if matches!(keyword, "search" | "domain" | "options") {
            text += line;
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings(exclude: &[&str], lan_access: bool) -> Settings {
        Settings {
            device: "openrelay0".into(),
            exclude: exclude.iter().map(|s| s.parse().unwrap()).collect(),
            lan_access,
            kill_switch: true,
        }
    }

    #[test]
    fn everything_goes_through_the_tunnel_by_default() {
        let s = settings(&[], false);
        for ip in ["192.168.1.1", "8.8.8.8", "fe80::1", "2001:db8::1"] {
            assert_eq!(
                decide(&s, ip.parse().unwrap(), 443),
                Decision::Tunnel,
                "{ip}"
            );
        }
        let text = kill_switch(&s, &BTreeSet::new());
        assert!(
            !text.contains("ip daddr {") && !text.contains("ip6 daddr {"),
            "no bypass without exclusions:\n{text}"
        );
        assert!(text.contains("policy drop"));
    }

    #[test]
    fn exclusions_and_lan_access_bypass_but_never_dns() {
        let s = settings(&["203.0.113.0/24", "2001:db8::/32"], true);
        assert_eq!(
            decide(&s, "203.0.113.9".parse().unwrap(), 443),
            Decision::Bypass
        );
        assert_eq!(
            decide(&s, "2001:db8::9".parse().unwrap(), 443),
            Decision::Bypass
        );
        assert_eq!(
            decide(&s, "192.168.1.1".parse().unwrap(), 22),
            Decision::Bypass
        );
        assert_eq!(
            decide(&s, "192.168.1.1".parse().unwrap(), 53),
            Decision::Tunnel
        );
        assert_eq!(
            decide(&s, "8.8.8.8".parse().unwrap(), 443),
            Decision::Tunnel
        );
        let text = kill_switch(&s, &BTreeSet::new());
        assert!(text.contains("203.0.113.0/24") && text.contains("192.168.0.0/16"));
        // DNS is rejected before any bypass rule can accept it.
        assert!(text.find("th dport 53").unwrap() < text.find("ip daddr {").unwrap());
    }

    #[test]
    fn marked_packets_go_only_to_the_listed_ingresses() {
        let s = settings(&["203.0.113.0/24"], true);
        let ingresses: BTreeSet<SocketAddr> = [
            "192.0.2.1:4433",
            "192.0.2.2:443",
            "[2001:db8::1]:4433",
            "[::ffff:192.0.2.3]:4433",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let text = kill_switch(&s, &ingresses);
        assert!(text.contains(
            "set ingresses_v4 { type ipv4_addr . inet_service; elements = { 192.0.2.1 . 4433, 192.0.2.2 . 443, 192.0.2.3 . 4433 }; }"
        ), "{text}");
        assert!(text.contains(
            "set ingresses_v6 { type ipv6_addr . inet_service; elements = { 2001:db8::1 . 4433 }; }"
        ), "{text}");
        // No rule accepts marked packets by their mark alone, and the
        // refusal of other marked packets comes before every bypass.
        let output = &text[text.find("chain output").unwrap()..text.find("chain input").unwrap()];
        let mark = format!("meta mark {MARK:#x}");
        for line in output.lines().filter(|l| l.contains(&mark)) {
            assert!(
                line.contains("@ingresses_v") || line.contains("reject"),
                "{line}"
            );
        }
        let refusal = output.find(&format!("{mark} reject")).unwrap();
        assert!(refusal < output.find("ip daddr {").unwrap());
        assert!(refusal < output.find("udp sport 68").unwrap());
        // Without ingresses the sets are declared empty.
        let empty = kill_switch(&s, &BTreeSet::new());
        assert!(empty.contains("set ingresses_v4 { type ipv4_addr . inet_service; }"));
    }

    #[test]
    fn an_ingress_update_replaces_both_sets_in_one_script() {
        let one: BTreeSet<SocketAddr> = ["192.0.2.9:4433".parse().unwrap()].into();
        assert_eq!(
            ingress_sets_update(&one),
            "flush set inet openrelay ingresses_v4\n\
             add element inet openrelay ingresses_v4 { 192.0.2.9 . 4433 }\n\
             flush set inet openrelay ingresses_v6\n"
        );
    }

    #[test]
    fn rules_put_the_mark_first_and_the_tunnel_last() {
        let s = settings(&["203.0.113.0/24"], true);
        let rules = rules(&s);
        let v4: Vec<&Vec<String>> = rules
            .iter()
            .filter_map(|c| match c {
                Change::Rule {
                    family: Family::V4,
                    args,
                } => Some(args),
                _ => None,
            })
            .collect();
        assert_eq!(v4.len(), 6);
        assert_eq!(v4[0][2..], args(&["fwmark", "0x6f72", "lookup", "main"]));
        assert_eq!(
            v4[3][2..],
            args(&["to", "203.0.113.0/24", "lookup", "main"])
        );
        assert_eq!(v4[5][2..], args(&["lookup", "28530"]));
        let priorities: Vec<&String> = v4.iter().map(|a| &a[1]).collect();
        assert!(priorities.windows(2).all(|w| w[0] < w[1]));
        // The IPv6 rules do not carry the IPv4 exclusion.
        assert_eq!(rules.len(), 6 + 5);
    }

    #[test]
    fn resolv_conf_keeps_search_and_options_only() {
        let original = "# comment\nnameserver 192.0.2.53\nsearch example.org\noptions edns0\nnameserver 2001:db8::53\n";
        let text = resolv_conf(original);
        assert!(text.contains("nameserver 10.89.0.1\n"));
        assert!(!text.contains("192.0.2.53") && !text.contains("2001:db8::53"));
        assert!(text.contains("search example.org\n") && text.contains("options edns0\n"));
        assert_eq!(text.matches("nameserver").count(), 1);
    }

    #[test]
    fn only_the_plans_own_routes_and_rules_count_as_planned() {
        let words = |text: &str| -> Vec<String> { text.split(' ').map(str::to_owned).collect() };
        for refused in [
            "default via 192.0.2.1",
            "default dev eth0 table main",
            "default dev eth0 table 254",
            "192.0.2.0/24 dev openrelay0 table 28530",
            "default dev ../x table 28530",
        ] {
            assert!(!is_planned_route(&words(refused)), "{refused}");
        }
        for refused in [
            "priority 0 lookup main",
            "priority 32766 lookup main",
            "priority 6100 lookup local",
            "priority 6100 fwmark 0x1 lookup main",
            "priority 6100 from all lookup 28530 -batch x",
            "priority 6100 to not-a-net lookup main",
            "lookup 28530",
        ] {
            assert!(!is_planned_rule(&words(refused)), "{refused}");
        }
    }

    proptest! {
        #[test]
        fn everything_the_plan_makes_counts_as_planned(
            nets in proptest::collection::vec((any::<u32>(), 0u8..=32, any::<u128>(), 0u8..=128, any::<bool>()), 0..12),
            lan: bool,
            device in "[a-z0-9_-]{1,15}",
        ) {
            let exclude = nets
                .iter()
                .map(|(a, l4, b, l6, v6)| match v6 {
                    false => IpNet::V4(ipnet::Ipv4Net::new(Ipv4Addr::from(*a), *l4).unwrap()),
                    true => IpNet::V6(ipnet::Ipv6Net::new(Ipv6Addr::from(*b), *l6).unwrap()),
                })
                .collect();
            let s = Settings { device, exclude, lan_access: lan, kill_switch: true };
            for change in routes(&s).iter().chain(&rules(&s)) {
                match change {
                    Change::Route { args, .. } => prop_assert!(is_planned_route(args), "{args:?}"),
                    Change::Rule { args, .. } => prop_assert!(is_planned_rule(args), "{args:?}"),
                    other => prop_assert!(false, "{other:?}"),
                }
            }
        }

        #[test]
        fn dns_is_always_tunnelled_and_unlisted_public_addresses_too(
            a: u32, exclude_len in 0u8..=32, lan: bool
        ) {
            let ip = IpAddr::V4(Ipv4Addr::from(a));
            let net = ipnet::Ipv4Net::new(Ipv4Addr::from(a.wrapping_add(1 << 20)), exclude_len.max(8)).unwrap().trunc();
            let s = Settings { device: "t".into(), exclude: vec![IpNet::V4(net)], lan_access: lan, kill_switch: true };
            prop_assert_eq!(decide(&s, ip, 53), Decision::Tunnel);
            let expected = if IpNet::V4(net).contains(&ip) || (lan && is_lan(ip)) { Decision::Bypass } else { Decision::Tunnel };
            prop_assert_eq!(decide(&s, ip, 443), expected);
        }
    }
}
