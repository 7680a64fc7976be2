use super::*;

use AddressClass::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Asserts the class of each address, with the address in the failure message.
fn assert_classes(cases: &[(&str, Option<AddressClass>)]) {
    for &(addr, expected) in cases {
        assert_eq!(classify(ip(addr)), expected, "classify({addr})");
    }
}

#[test]
fn v4_unspecified_this_network() {
    assert_classes(&[
        ("0.0.0.0", Some(Unspecified)),
        ("0.255.255.255", Some(Unspecified)),
        ("1.0.0.0", None),
    ]);
}

#[test]
fn v4_private() {
    assert_classes(&[
        ("9.255.255.255", None),
        ("10.0.0.0", Some(Private)),
        ("10.255.255.255", Some(Private)),
        ("11.0.0.0", None),
        ("172.15.255.255", None),
        ("172.16.0.0", Some(Private)),
        ("172.31.255.255", Some(Private)),
        ("172.32.0.0", None),
        ("192.167.255.255", None),
        ("192.168.0.0", Some(Private)),
        ("192.168.255.255", Some(Private)),
        ("192.169.0.0", None),
    ]);
}

#[test]
fn v4_shared_address_space() {
    assert_classes(&[
        ("100.63.255.255", None),
        ("100.64.0.0", Some(SharedAddressSpace)),
        ("100.127.255.255", Some(SharedAddressSpace)),
        ("100.128.0.0", None),
    ]);
}

#[test]
fn v4_loopback() {
    assert_classes(&[
        ("126.255.255.255", None),
        ("127.0.0.0", Some(Loopback)),
        ("127.0.0.1", Some(Loopback)),
        ("127.255.255.255", Some(Loopback)),
        ("128.0.0.0", None),
    ]);
}

#[test]
fn v4_link_local() {
    assert_classes(&[
        ("169.253.255.255", None),
        ("169.254.0.0", Some(LinkLocal)),
        ("169.254.169.254", Some(LinkLocal)),
        ("169.254.255.255", Some(LinkLocal)),
        ("169.255.0.0", None),
    ]);
}

#[test]
fn v4_protocol_assignment() {
    assert_classes(&[
        ("191.255.255.255", None),
        ("192.0.0.0", Some(ProtocolAssignment)),
        ("192.0.0.255", Some(ProtocolAssignment)),
        ("192.0.1.0", None),
    ]);
}

#[test]
fn v4_documentation() {
    assert_classes(&[
        ("192.0.1.255", None),
        ("192.0.2.0", Some(Documentation)),
        ("192.0.2.255", Some(Documentation)),
        ("192.0.3.0", None),
        ("198.51.99.255", None),
        ("198.51.100.0", Some(Documentation)),
        ("198.51.100.255", Some(Documentation)),
        ("198.51.101.0", None),
        ("203.0.112.255", None),
        ("203.0.113.0", Some(Documentation)),
        ("203.0.113.255", Some(Documentation)),
        ("203.0.114.0", None),
    ]);
}

#[test]
fn v4_benchmarking() {
    assert_classes(&[
        ("198.17.255.255", None),
        ("198.18.0.0", Some(Benchmarking)),
        ("198.19.255.255", Some(Benchmarking)),
        ("198.20.0.0", None),
    ]);
}

#[test]
fn v4_multicast() {
    assert_classes(&[
        ("223.255.255.255", None),
        ("224.0.0.0", Some(Multicast)),
        ("239.255.255.255", Some(Multicast)),
    ]);
}

#[test]
fn v4_reserved_and_broadcast() {
    assert_classes(&[
        ("240.0.0.0", Some(Reserved)),
        ("255.255.255.254", Some(Reserved)),
        ("255.255.255.255", Some(Broadcast)),
    ]);
}

#[test]
fn v4_global_examples() {
    assert_classes(&[
        ("1.1.1.1", None),
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("192.88.99.1", None),
        ("223.0.0.1", None),
    ]);
}

#[test]
fn v6_unspecified_and_loopback() {
    assert_classes(&[("::", Some(Unspecified)), ("::1", Some(Loopback))]);
}

#[test]
fn v6_link_local() {
    assert_classes(&[
        ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
        ("fe80::", Some(LinkLocal)),
        ("fe80::1", Some(LinkLocal)),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(LinkLocal)),
    ]);
}

#[test]
fn v6_site_local() {
    assert_classes(&[
        ("fec0::", Some(SiteLocal)),
        ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(SiteLocal)),
    ]);
}

#[test]
fn v6_unique_local() {
    assert_classes(&[
        ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
        ("fc00::", Some(UniqueLocal)),
        ("fd12:3456:789a::1", Some(UniqueLocal)),
        ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(UniqueLocal)),
        ("fe00::", Some(Reserved)),
    ]);
}

#[test]
fn v6_multicast() {
    assert_classes(&[
        ("ff00::", Some(Multicast)),
        ("ff02::1", Some(Multicast)),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Multicast)),
    ]);
}

#[test]
fn v6_discard_only() {
    assert_classes(&[
        ("100::", Some(DiscardOnly)),
        ("100::ffff:ffff:ffff:ffff", Some(DiscardOnly)),
        // Next to it, but outside 2000::/3 all the same.
        ("100:0:0:1::", Some(Reserved)),
    ]);
}

#[test]
fn v6_teredo_and_protocol_assignments() {
    assert_classes(&[
        ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2001::", Some(Teredo)),
        ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", Some(Teredo)),
        ("2001:1::", Some(ProtocolAssignment)),
        (
            "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
            Some(ProtocolAssignment),
        ),
        ("2001:200::", None),
    ]);
}

#[test]
fn v6_benchmarking() {
    assert_classes(&[
        (
            "2001:1:ffff:ffff:ffff:ffff:ffff:ffff",
            Some(ProtocolAssignment),
        ),
        ("2001:2::", Some(Benchmarking)),
        ("2001:2:0:ffff:ffff:ffff:ffff:ffff", Some(Benchmarking)),
        ("2001:2:1::", Some(ProtocolAssignment)),
    ]);
}

#[test]
fn v6_documentation() {
    assert_classes(&[
        ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2001:db8::", Some(Documentation)),
        (
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            Some(Documentation),
        ),
        ("2001:db9::", None),
        ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("3fff::", Some(Documentation)),
        (
            "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
            Some(Documentation),
        ),
        ("3fff:1000::", None),
    ]);
}

#[test]
fn v6_outside_global_unicast_is_reserved() {
    assert_classes(&[
        ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Reserved)),
        ("2000::", None),
        ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("4000::", Some(Reserved)),
        ("5f00::1", Some(Reserved)),
        ("64:ff9b:1::1", Some(Reserved)),
        ("::ffff:0:808:808", Some(Reserved)),
    ]);
}

#[test]
fn v6_global_examples() {
    assert_classes(&[
        ("2606:4700:4700::1111", None),
        ("2001:4860:4860::8888", None),
        ("2a00:1450:4001::1", None),
    ]);
}

#[test]
fn v4_mapped_judges_embedded() {
    assert_classes(&[
        ("::ffff:0.0.0.0", Some(Unspecified)),
        ("::ffff:127.0.0.1", Some(Loopback)),
        ("::ffff:10.0.0.1", Some(Private)),
        ("::ffff:169.254.169.254", Some(LinkLocal)),
        ("::ffff:255.255.255.255", Some(Broadcast)),
        ("::ffff:8.8.8.8", None),
        ("::ffff:1.0.0.0", None),
    ]);
}

#[test]
fn v4_compatible_judges_embedded_else_reserved() {
    assert_classes(&[
        ("::2", Some(Unspecified)),
        ("::127.0.0.1", Some(Loopback)),
        ("::10.0.0.1", Some(Private)),
        ("::8.8.8.8", Some(Reserved)),
        ("::255.255.255.255", Some(Broadcast)),
    ]);
}

#[test]
fn nat64_judges_embedded() {
    assert_classes(&[
        ("64:ff9b::", Some(Unspecified)),
        ("64:ff9b::127.0.0.1", Some(Loopback)),
        ("64:ff9b::192.168.1.1", Some(Private)),
        ("64:ff9b::100.64.0.1", Some(SharedAddressSpace)),
        ("64:ff9b::8.8.8.8", None),
        ("64:ff9b::ffff:ffff", Some(Broadcast)),
        // Just outside the /96.
        ("64:ff9b:0:0:0:1::", Some(Reserved)),
    ]);
}

#[test]
fn sixtofour_judges_embedded() {
    assert_classes(&[
        ("2002::", Some(Unspecified)),
        ("2002:7f00:1::", Some(Loopback)),
        ("2002:a00:1::1", Some(Private)),
        ("2002:a9fe:a9fe::", Some(LinkLocal)),
        ("2002:c000:201::", Some(Documentation)),
        ("2002:808:808::1", None),
        ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Some(Broadcast)),
        ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
        ("2003::", None),
    ]);
}

#[test]
fn display_is_lowercase_words() {
    let all = [
        Loopback,
        Private,
        SharedAddressSpace,
        LinkLocal,
        Multicast,
        Unspecified,
        Broadcast,
        Reserved,
        Documentation,
        Benchmarking,
        UniqueLocal,
        ProtocolAssignment,
        SiteLocal,
        DiscardOnly,
        Teredo,
    ];
    for class in all {
        let text = class.to_string();
        assert_eq!(text, class.as_str());
        assert!(!text.is_empty());
        assert!(
            text.chars()
                .all(|c| c.is_ascii_lowercase() || c == ' ' || c == '-'),
            "{text:?}"
        );
    }
    assert_eq!(Loopback.to_string(), "loopback");
    assert_eq!(SharedAddressSpace.to_string(), "shared address space");
}

#[test]
fn refusal_messages_never_contain_the_destination() {
    let policy = DestinationPolicy::standard();
    let cases = [
        sa("127.0.0.1:8080"),
        sa("10.1.2.3:443"),
        sa("[fd00::1234]:443"),
        sa("[::ffff:192.168.7.9]:443"),
        sa("8.8.8.8:25"),
        sa("[2606:4700::1]:445"),
    ];
    for addr in cases {
        let refusal = policy.check(addr).unwrap_err();
        let ip_text = addr.ip().to_string();
        let port_text = addr.port().to_string();
        for text in [refusal.to_string(), format!("{refusal:?}")] {
            assert!(!text.contains(&ip_text), "{text}");
            assert!(!text.contains(&port_text), "{text}");
            assert!(!text.contains(&addr.to_string()), "{text}");
        }
    }
    assert_eq!(
        Refusal::Address(Loopback).to_string(),
        "destination address is loopback and not allowed by this relay's policy"
    );
    assert_eq!(
        Refusal::Port.to_string(),
        "destination port is blocked by this relay's policy"
    );
}

#[test]
fn standard_and_default_agree() {
    let standard = DestinationPolicy::standard();
    assert_eq!(standard, DestinationPolicy::default());
    assert!(standard.allow().is_empty());
    assert_eq!(standard.deny_ports(), &[25, 137, 138, 139, 445]);
    assert_eq!(
        DestinationPolicy::DEFAULT_DENY_PORTS,
        &[25, 137, 138, 139, 445]
    );
}

#[test]
fn default_ports() {
    let policy = DestinationPolicy::standard();
    for port in [25, 137, 138, 139, 445] {
        assert_eq!(policy.check_port(port), Err(Refusal::Port), "{port}");
        assert_eq!(
            policy.check(SocketAddr::new(ip("1.1.1.1"), port)),
            Err(Refusal::Port)
        );
    }
    for port in [
        1, 22, 24, 26, 53, 80, 136, 140, 443, 444, 446, 587, 8080, 65535,
    ] {
        assert_eq!(policy.check_port(port), Ok(()), "{port}");
        assert_eq!(policy.check(SocketAddr::new(ip("1.1.1.1"), port)), Ok(()));
    }
}

#[test]
fn port_zero_is_always_refused() {
    assert_eq!(
        DestinationPolicy::standard().check_port(0),
        Err(Refusal::Port)
    );
    let open = DestinationPolicy::new(Vec::new(), Vec::new());
    assert_eq!(open.check_port(0), Err(Refusal::Port));
    assert_eq!(open.check(sa("1.1.1.1:0")), Err(Refusal::Port));
}

#[test]
fn deny_ports_replace_the_default() {
    let policy = DestinationPolicy::new(Vec::new(), vec![8080, 22, 8080]);
    assert_eq!(policy.deny_ports(), &[22, 8080]);
    assert_eq!(policy.check_port(25), Ok(()));
    assert_eq!(policy.check_port(445), Ok(()));
    assert_eq!(policy.check_port(22), Err(Refusal::Port));
    assert_eq!(policy.check(sa("[2606:4700::1]:8080")), Err(Refusal::Port));
    assert_eq!(policy.check(sa("[2606:4700::1]:25")), Ok(()));
}

#[test]
fn port_is_judged_before_address() {
    let policy = DestinationPolicy::standard();
    assert_eq!(policy.check(sa("127.0.0.1:25")), Err(Refusal::Port));
    assert_eq!(
        policy.check(sa("127.0.0.1:443")),
        Err(Refusal::Address(Loopback))
    );
}

#[test]
fn standard_refuses_each_class() {
    let policy = DestinationPolicy::standard();
    let cases = [
        ("127.0.0.1:80", Loopback),
        ("10.0.0.1:80", Private),
        ("100.64.0.1:80", SharedAddressSpace),
        ("169.254.169.254:80", LinkLocal),
        ("224.0.0.1:80", Multicast),
        ("0.0.0.0:80", Unspecified),
        ("255.255.255.255:80", Broadcast),
        ("240.0.0.1:80", Reserved),
        ("192.0.2.1:80", Documentation),
        ("198.18.0.1:80", Benchmarking),
        ("192.0.0.8:80", ProtocolAssignment),
        ("[fd00::1]:80", UniqueLocal),
        ("[fec0::1]:80", SiteLocal),
        ("[100::1]:80", DiscardOnly),
        ("[2001::1]:80", Teredo),
        ("[::1]:80", Loopback),
        ("[::]:80", Unspecified),
        ("[fe80::1]:80", LinkLocal),
        ("[ff02::1]:80", Multicast),
        ("[2001:db8::1]:80", Documentation),
    ];
    for (addr, class) in cases {
        assert_eq!(
            policy.check(sa(addr)),
            Err(Refusal::Address(class)),
            "{addr}"
        );
    }
    assert_eq!(policy.check(sa("1.1.1.1:443")), Ok(()));
    assert_eq!(policy.check(sa("[2606:4700:4700::1111]:443")), Ok(()));
}

#[test]
fn allow_list_overrides_address_refusal_only_inside_its_nets() {
    let policy = DestinationPolicy::new(
        vec![net("127.0.0.0/8"), net("::1/128")],
        DestinationPolicy::DEFAULT_DENY_PORTS.to_vec(),
    );
    assert_eq!(policy.check(sa("127.0.0.1:8443")), Ok(()));
    assert_eq!(policy.check(sa("127.255.255.255:8443")), Ok(()));
    assert_eq!(policy.check(sa("[::1]:8443")), Ok(()));
    assert_eq!(
        policy.check(sa("10.0.0.1:8443")),
        Err(Refusal::Address(Private))
    );
    assert_eq!(
        policy.check(sa("[fe80::1]:8443")),
        Err(Refusal::Address(LinkLocal))
    );
    // The allow list does not override the port refusal.
    assert_eq!(policy.check(sa("127.0.0.1:25")), Err(Refusal::Port));
    // Globally routable addresses stay allowed.
    assert_eq!(policy.check(sa("1.1.1.1:443")), Ok(()));
}

#[test]
fn allow_list_covers_ipv4_mapped_form_both_ways() {
    let v4_allow = DestinationPolicy::new(vec![net("127.0.0.0/8")], Vec::new());
    assert_eq!(v4_allow.check(sa("[::ffff:127.0.0.1]:80")), Ok(()));
    assert_eq!(
        v4_allow.check(sa("[::ffff:10.0.0.1]:80")),
        Err(Refusal::Address(Private))
    );
    // NAT64 and 6to4 go through a translator, not to the embedded address:
    // only an allow net containing the IPv6 address itself permits them.
    assert_eq!(
        v4_allow.check(sa("[64:ff9b::127.0.0.1]:80")),
        Err(Refusal::Address(Loopback))
    );
    assert_eq!(
        v4_allow.check(sa("[2002:7f00:1::]:80")),
        Err(Refusal::Address(Loopback))
    );

    let mapped_allow = DestinationPolicy::new(vec![net("::ffff:10.0.0.0/104")], Vec::new());
    assert_eq!(mapped_allow.check(sa("10.1.2.3:80")), Ok(()));
    assert_eq!(mapped_allow.check(sa("[::ffff:10.1.2.3]:80")), Ok(()));
    assert_eq!(
        mapped_allow.check(sa("11.0.0.0:80")),
        Ok(()),
        "global stays allowed"
    );
    assert_eq!(
        mapped_allow.check(sa("192.168.0.1:80")),
        Err(Refusal::Address(Private))
    );

    let nat64_allow = DestinationPolicy::new(vec![net("64:ff9b::/96")], Vec::new());
    assert_eq!(nat64_allow.check(sa("[64:ff9b::127.0.0.1]:80")), Ok(()));
}

#[test]
fn allow_net_with_host_bits_set_still_matches_its_network() {
    let policy = DestinationPolicy::new(vec![net("10.1.2.3/16")], Vec::new());
    assert_eq!(policy.check(sa("10.1.0.0:80")), Ok(()));
    assert_eq!(policy.check(sa("10.1.255.255:80")), Ok(()));
    assert_eq!(
        policy.check(sa("10.2.0.0:80")),
        Err(Refusal::Address(Private))
    );
}

#[test]
fn filter_keeps_permitted_in_order() {
    let policy = DestinationPolicy::standard();
    let input = vec![
        sa("127.0.0.1:443"),
        sa("[2606:4700::2]:443"),
        sa("10.0.0.1:443"),
        sa("1.1.1.1:443"),
        sa("[fd00::1]:443"),
        sa("1.0.0.1:443"),
    ];
    assert_eq!(
        policy.filter(input),
        Ok(vec![
            sa("[2606:4700::2]:443"),
            sa("1.1.1.1:443"),
            sa("1.0.0.1:443")
        ])
    );
}

#[test]
fn filter_keeps_duplicates() {
    let policy = DestinationPolicy::standard();
    let input = [sa("1.1.1.1:443"), sa("1.1.1.1:443")];
    assert_eq!(policy.filter(input), Ok(input.to_vec()));
}

#[test]
fn filter_all_refused_gives_first_refusal() {
    let policy = DestinationPolicy::standard();
    assert_eq!(
        policy.filter([sa("[fe80::1]:443"), sa("127.0.0.1:443"), sa("10.0.0.1:443")]),
        Err(Refusal::Address(LinkLocal))
    );
    assert_eq!(
        policy.filter([sa("10.0.0.1:443"), sa("[fe80::1]:443")]),
        Err(Refusal::Address(Private))
    );
    assert_eq!(
        policy.filter([sa("1.1.1.1:25"), sa("[2606:4700::2]:25")]),
        Err(Refusal::Port)
    );
}

#[test]
fn filter_of_nothing_is_empty() {
    let policy = DestinationPolicy::standard();
    assert_eq!(policy.filter(std::iter::empty()), Ok(Vec::new()));
}

#[test]
fn filter_respects_allow_list() {
    let policy = DestinationPolicy::new(vec![net("::1/128")], Vec::new());
    assert_eq!(
        policy.filter([sa("127.0.0.1:80"), sa("[::1]:80")]),
        Ok(vec![sa("[::1]:80")])
    );
}

#[test]
fn policy_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<DestinationPolicy>();
    assert_send_sync::<Refusal>();
    assert_send_sync::<AddressClass>();
}

#[test]
fn masks_handle_edges() {
    assert_eq!(mask_v4(0), 0);
    assert_eq!(mask_v4(32), u32::MAX);
    assert_eq!(mask_v4(40), u32::MAX);
    assert_eq!(mask_v6(0), 0);
    assert_eq!(mask_v6(128), u128::MAX);
    assert_eq!(mask_v6(200), u128::MAX);
}

#[test]
fn the_operators_deny_list_beats_the_allow_list() {
    let policy = DestinationPolicy::new(vec![net("10.0.0.0/8")], Vec::new()).with_deny(vec![
        DenyRule::all_ports(net("10.1.0.0/16")),
        DenyRule::all_ports(net("203.0.114.0/24")),
        DenyRule {
            net: net("198.51.99.7/32"),
            ports: Ports::Only(vec![22, 6379]),
        },
    ]);
    assert_eq!(policy.check(sa("10.2.0.1:80")), Ok(()), "allowed");
    assert_eq!(policy.check(sa("10.1.0.1:80")), Err(Refusal::Denied));
    assert_eq!(
        policy.check(sa("[::ffff:10.1.0.1]:80")),
        Err(Refusal::Denied)
    );
    assert_eq!(policy.check(sa("203.0.114.9:443")), Err(Refusal::Denied));
    assert_eq!(policy.check_ip(ip("203.0.114.9")), Err(Refusal::Denied));
    // A rule for some ports refuses those ports, not the address.
    assert_eq!(policy.check(sa("198.51.99.7:22")), Err(Refusal::Denied));
    assert_eq!(policy.check(sa("198.51.99.7:6379")), Err(Refusal::Denied));
    assert_eq!(policy.check(sa("198.51.99.7:443")), Ok(()));
    assert_eq!(policy.check_ip(ip("198.51.99.7")), Ok(()));
    // Ports refused outright stay a port refusal.
    assert_eq!(policy.check(sa("10.1.0.1:0")), Err(Refusal::Port));
}

#[test]
fn the_hosts_own_addresses_are_refused_unless_allowed() {
    let host = vec![
        net("127.0.0.0/8"),
        net("11.79.0.2/32"),
        net("2a01:4f8::2/128"),
    ];
    let policy = DestinationPolicy::standard().with_host_addresses(host.clone());
    assert_eq!(policy.check(sa("11.79.0.2:22")), Err(Refusal::OwnHost));
    assert_eq!(
        policy.check(sa("[::ffff:11.79.0.2]:22")),
        Err(Refusal::OwnHost)
    );
    assert_eq!(policy.check(sa("[2a01:4f8::2]:443")), Err(Refusal::OwnHost));
    assert_eq!(policy.check_ip(ip("11.79.0.2")), Err(Refusal::OwnHost));
    assert_eq!(policy.check(sa("11.79.0.3:22")), Ok(()), "a neighbour");
    // Special-purpose addresses keep their class.
    assert_eq!(
        policy.check(sa("127.0.0.1:22")),
        Err(Refusal::Address(Loopback))
    );
    assert_eq!(policy.host_addresses(), host.as_slice());
    // The operator's allow list wins for what it names.
    let allowing = DestinationPolicy::new(vec![net("11.79.0.2/32")], Vec::new())
        .with_host_addresses(host.clone());
    assert_eq!(allowing.check(sa("11.79.0.2:22")), Ok(()));
    assert_eq!(
        allowing.check(sa("[2a01:4f8::2]:443")),
        Err(Refusal::OwnHost)
    );
    // Replaced, not added to, when interfaces change.
    let moved = policy.with_host_addresses(vec![net("11.79.0.5/32")]);
    assert_eq!(moved.check(sa("11.79.0.2:22")), Ok(()));
    assert_eq!(moved.check(sa("11.79.0.5:22")), Err(Refusal::OwnHost));
}

#[test]
fn infrastructure_is_refused_except_its_public_service() {
    let policy = DestinationPolicy::standard().with_infrastructure(vec![
        DenyRule::host_except(ip("11.79.0.9"), 4450),
        DenyRule::all_ports(net("11.79.0.10/32")),
    ]);
    assert_eq!(
        policy.check(sa("11.79.0.9:4450")),
        Ok(()),
        "the issuer's QUIC port"
    );
    assert_eq!(policy.check(sa("11.79.0.9:22")), Err(Refusal::Denied));
    assert_eq!(
        policy.check_ip(ip("11.79.0.9")),
        Ok(()),
        "reachable on a port"
    );
    assert_eq!(policy.check(sa("11.79.0.10:6379")), Err(Refusal::Denied));
    assert_eq!(policy.check_ip(ip("11.79.0.10")), Err(Refusal::Denied));
    assert_eq!(policy.infrastructure().len(), 2);
    // An allow net names what the operator wants reachable.
    let allowing = DestinationPolicy::new(vec![net("11.79.0.10/32")], Vec::new())
        .with_infrastructure(policy.infrastructure().to_vec());
    assert_eq!(allowing.check(sa("11.79.0.10:6379")), Ok(()));
}
