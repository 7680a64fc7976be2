//! Property tests: every encoder round-trips through its decoder, and no
//! parser panics on arbitrary input.

#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, SocketAddr};

use openrelay_wire::target::{DomainName, Host, Target};
use openrelay_wire::{capsule, datagram, http1, masque, proxy_status, socks5, varint};
use proptest::prelude::*;

fn arb_label() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,20}[a-zA-Z0-9_])?"
}

/// Valid names, with a last label that is never numeric.
fn arb_domain() -> impl Strategy<Value = DomainName> {
    (
        prop::collection::vec(arb_label(), 0..4),
        "[a-z][a-z0-9]{0,10}",
    )
        .prop_map(|(mut labels, tld)| {
            labels.push(tld);
            DomainName::parse(&labels.join(".")).unwrap()
        })
}

fn arb_host() -> impl Strategy<Value = Host> {
    prop_oneof![
        any::<IpAddr>().prop_map(Host::Ip),
        arb_domain().prop_map(Host::Name),
    ]
}

fn arb_target() -> impl Strategy<Value = Target> {
    (arb_host(), 1..=u16::MAX).prop_map(|(host, port)| Target { host, port })
}

/// Bytes that look somewhat like the input of `prefix`-based parsers, to
/// get past the first checks more often than uniform noise does.
fn bytes_with_prefix(prefix: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), prop::collection::vec(any::<u8>(), 0..300)).prop_map(move |(pre, rest)| {
        if pre {
            let mut v = prefix.to_vec();
            v.extend(rest);
            v
        } else {
            rest
        }
    })
}

proptest! {
    // ---- varint, RFC 9000 §16

    #[test]
    fn varint_round_trip(v in 0..=varint::MAX, trailing in prop::collection::vec(any::<u8>(), 0..4)) {
        let mut buf = Vec::new();
        varint::encode(v, &mut buf).unwrap();
        prop_assert_eq!(buf.len(), varint::encoded_len(v));
        buf.extend(&trailing);
        prop_assert_eq!(varint::decode(&buf), Ok((v, varint::encoded_len(v))));
    }

    #[test]
    fn varint_rejects_too_large(v in (varint::MAX + 1)..=u64::MAX) {
        prop_assert_eq!(varint::encode(v, &mut Vec::new()), Err(varint::VarIntError::TooLarge));
    }

    #[test]
    fn varint_decode_never_panics(buf in prop::collection::vec(any::<u8>(), 0..10)) {
        if let Ok((v, n)) = varint::decode(&buf) {
            prop_assert!(v <= varint::MAX);
            prop_assert!(n <= buf.len());
        }
    }

    // ---- HTTP Datagrams, RFC 9297 §2.1 / RFC 9298 §5

    #[test]
    fn datagram_round_trip(
        q in 0..=datagram::MAX_QUARTER_STREAM_ID,
        c in 0..=varint::MAX,
        payload in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut buf = Vec::new();
        datagram::encode_header(q, c, &mut buf).unwrap();
        prop_assert_eq!(buf.len(), datagram::header_len(q, c));
        buf.extend(&payload);
        let d = datagram::decode(&buf).unwrap();
        prop_assert_eq!((d.quarter_stream_id, d.context_id, d.payload), (q, c, &payload[..]));
    }

    #[test]
    fn stream_id_round_trip(q in 0..=datagram::MAX_QUARTER_STREAM_ID) {
        let s = datagram::stream_id(q).unwrap();
        prop_assert_eq!(datagram::quarter_stream_id(s), Ok(q));
    }

    #[test]
    fn quarter_stream_id_never_panics(s in any::<u64>()) {
        if let Ok(q) = datagram::quarter_stream_id(s) {
            prop_assert_eq!(datagram::stream_id(q), Ok(s));
        }
        let _ = datagram::stream_id(s);
    }

    #[test]
    fn datagram_decode_never_panics(buf in prop::collection::vec(any::<u8>(), 0..40)) {
        if let Ok(d) = datagram::decode(&buf) {
            prop_assert!(d.quarter_stream_id <= datagram::MAX_QUARTER_STREAM_ID);
            let mut re = Vec::new();
            datagram::encode_header(d.quarter_stream_id, d.context_id, &mut re).unwrap();
            re.extend(d.payload);
            // Same values; the encoding may be shorter (minimal varints).
            let again = datagram::decode(&re).unwrap();
            prop_assert_eq!(again, d);
        }
    }

    // ---- Capsules, RFC 9297 §3.2

    #[test]
    fn capsule_round_trip(
        t in 0..=varint::MAX,
        value in prop::collection::vec(any::<u8>(), 0..600),
        trailing in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut buf = Vec::new();
        capsule::encode(t, &value, &mut buf).unwrap();
        let len = buf.len();
        for cut in [0, 1, len / 2, len.saturating_sub(1)] {
            if cut < len {
                prop_assert_eq!(capsule::decode(&buf[..cut]), Ok(None));
            }
        }
        buf.extend(&trailing);
        let (c, n) = capsule::decode(&buf).unwrap().unwrap();
        prop_assert_eq!((c.capsule_type, c.value, n), (t, &value[..], len));
    }

    #[test]
    fn capsule_decode_never_panics(buf in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(Some((c, n))) = capsule::decode(&buf) {
            prop_assert!(n <= buf.len());
            prop_assert!(c.value.len() <= capsule::MAX_CAPSULE_LEN);
        }
    }

    // ---- Targets

    #[test]
    fn authority_round_trip(t in arb_target()) {
        prop_assert_eq!(Target::parse_authority(&t.authority()), Ok(t));
    }

    #[test]
    fn authority_parse_never_panics(s in "\\PC{0,40}") {
        if let Ok(t) = Target::parse_authority(&s) {
            prop_assert!(t.port != 0);
            prop_assert_eq!(Target::parse_authority(&t.authority()), Ok(t));
        }
    }

    #[test]
    fn authority_parse_never_panics_on_likely_input(s in "[\\[\\]a-fA-F0-9:.%_x-]{0,45}") {
        if let Ok(t) = Target::parse_authority(&s) {
            prop_assert_eq!(Target::parse_authority(&t.authority()), Ok(t));
        }
    }

    #[test]
    fn domain_name_is_normalised(s in "[a-zA-Z0-9_.-]{0,70}") {
        if let Ok(n) = DomainName::parse(&s) {
            prop_assert_eq!(DomainName::parse(n.as_str()), Ok(n.clone()));
            prop_assert!(!n.as_str().bytes().any(|b| b.is_ascii_uppercase()));
        }
    }

    #[test]
    fn socket_addr_round_trip(addr in any::<SocketAddr>()) {
        let t = Target::from_socket_addr(addr);
        prop_assert_eq!(t.socket_addr(), Some(SocketAddr::new(addr.ip(), addr.port())));
    }

    #[test]
    fn debug_never_shows_target(t in arb_target()) {
        let text = format!("{t:?}{:?}", t.host);
        prop_assert!(!text.contains(&t.port.to_string()));
        prop_assert_eq!(text, "Target(<redacted>)Host(<redacted>)");
    }

    // ---- connect-udp paths, RFC 9298 §2

    #[test]
    fn udp_path_round_trip(t in arb_target()) {
        let path = masque::udp_path(&t);
        prop_assert!(path.starts_with(masque::UDP_PATH_PREFIX));
        prop_assert_eq!(masque::parse_udp_path(&path), Ok(t));
    }

    #[test]
    fn udp_path_parse_never_panics(s in "\\PC{0,40}") {
        let _ = masque::parse_udp_path(&s);
        let path = format!("{}{s}", masque::UDP_PATH_PREFIX);
        if let Ok(t) = masque::parse_udp_path(&path) {
            prop_assert_eq!(masque::parse_udp_path(&masque::udp_path(&t)), Ok(t));
        }
    }

    #[test]
    fn udp_path_parse_never_panics_on_likely_input(s in "[a-fA-F0-9%:./]{0,40}") {
        let path = format!("{}{s}", masque::UDP_PATH_PREFIX);
        if let Ok(t) = masque::parse_udp_path(&path) {
            prop_assert_eq!(masque::parse_udp_path(&masque::udp_path(&t)), Ok(t));
        }
    }

    // ---- SOCKS5, RFC 1928

    #[test]
    fn socks5_greeting_round_trip(methods in prop::collection::vec(any::<u8>(), 1..=255)) {
        let mut buf = Vec::new();
        socks5::encode_greeting(&methods, &mut buf);
        let (g, n) = socks5::parse_greeting(&buf).unwrap().unwrap();
        prop_assert_eq!(n, buf.len());
        prop_assert_eq!(g.methods, methods);
        prop_assert_eq!(socks5::parse_greeting(&buf[..n - 1]), Ok(None));
    }

    #[test]
    fn socks5_request_round_trip(t in arb_target(), cmd in 1u8..=3) {
        let command = socks5::Command::from_code(cmd).unwrap();
        let mut buf = Vec::new();
        socks5::encode_request(command, &t, &mut buf);
        for cut in 0..buf.len() {
            prop_assert_eq!(socks5::parse_request(&buf[..cut]), Ok(None));
        }
        let (r, n) = socks5::parse_request(&buf).unwrap().unwrap();
        prop_assert_eq!(n, buf.len());
        prop_assert_eq!(r.command, command);
        prop_assert_eq!(r.target, t);
    }

    #[test]
    fn socks5_reply_round_trip(code in 0u8..=8, bound in any::<SocketAddr>()) {
        let reply = socks5::Reply::from_code(code).unwrap();
        let mut buf = Vec::new();
        socks5::encode_reply(reply, bound, &mut buf);
        let (r, n) = socks5::parse_reply(&buf).unwrap().unwrap();
        prop_assert_eq!(n, buf.len());
        prop_assert_eq!(r.code, code);
        prop_assert_eq!(r.bound, Target::from_socket_addr(bound));
    }

    #[test]
    fn socks5_udp_round_trip(t in arb_target(), payload in prop::collection::vec(any::<u8>(), 0..64)) {
        let mut buf = Vec::new();
        socks5::encode_udp_header(&t, &mut buf);
        buf.extend(&payload);
        let p = socks5::parse_udp_packet(&buf).unwrap();
        prop_assert_eq!(p.frag, 0);
        prop_assert_eq!(p.target, t);
        prop_assert_eq!(p.payload, &payload[..]);
    }

    #[test]
    fn socks5_parsers_never_panic(buf in bytes_with_prefix(&[5, 1, 0, 3])) {
        if let Ok(Some((g, n))) = socks5::parse_greeting(&buf) {
            prop_assert!(n <= buf.len() && !g.methods.is_empty());
        }
        if let Ok(Some((r, n))) = socks5::parse_request(&buf) {
            prop_assert!(n <= buf.len());
            let mut re = Vec::new();
            socks5::encode_request(r.command, &r.target, &mut re);
            prop_assert_eq!(socks5::parse_request(&re), Ok(Some((r, re.len()))));
        }
        if let Err(e) = socks5::parse_request(&buf) {
            let _ = e.reply();
        }
        let _ = socks5::parse_reply(&buf);
        let _ = socks5::parse_udp_packet(&buf);
    }

    #[test]
    fn socks5_udp_never_panics(buf in bytes_with_prefix(&[0, 0, 0])) {
        if let Ok(p) = socks5::parse_udp_packet(&buf) {
            prop_assert!(p.target.port != 0);
            prop_assert!(p.payload.len() < buf.len());
        }
    }

    // ---- HTTP/1 proxy heads, RFC 9112 §3.2

    #[test]
    fn http1_connect_round_trip(t in arb_target(), tail in prop::collection::vec(any::<u8>(), 0..16)) {
        let head = format!("CONNECT {} HTTP/1.1\r\nHost: {}\r\n\r\n", t.authority(), t.authority());
        let mut buf = head.clone().into_bytes();
        buf.extend(&tail);
        let got = http1::parse_proxy_request(&buf).unwrap().unwrap();
        prop_assert_eq!(got, http1::ProxyRequest::Tunnel { target: t, consumed: head.len() });
    }

    #[test]
    fn http1_forward_rewrites(
        t in arb_target(),
        path in "(/[a-zA-Z0-9._~!$&'()*+,;=:@-]{0,12}){0,3}(\\?[a-z=&]{0,10})?",
        hop in prop::sample::subsequence(
            vec!["Connection: x-foo", "X-Foo: 1", "Proxy-Connection: keep-alive", "Keep-Alive: 5",
                 "TE: trailers", "Upgrade: h2c", "Proxy-Authorization: Basic eA==", "Host: other"], 0..8),
    ) {
        let mut head = format!("GET http://{}{path} HTTP/1.1\r\nAccept: */*\r\n", t.authority());
        for h in &hop {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let Some(http1::ProxyRequest::Forward { target, head: out, consumed }) =
            http1::parse_proxy_request(head.as_bytes()).unwrap() else {
            panic!("expected Forward");
        };
        prop_assert_eq!(target, t.clone());
        prop_assert_eq!(consumed, head.len());
        let out = String::from_utf8(out).unwrap();
        let origin = if path.is_empty() || path.starts_with('?') { format!("/{path}") } else { path.clone() };
        let host_line = format!("Host: {}", t.authority());
        // X-Foo is end-to-end unless `Connection` names it.
        let x_foo = if hop.contains(&"X-Foo: 1") && !hop.contains(&"Connection: x-foo") {
            "X-Foo: 1\r\n"
        } else {
            ""
        };
        let expected = format!(
            "GET {origin} HTTP/1.1\r\n{host_line}\r\nAccept: */*\r\n{x_foo}Connection: close\r\n\r\n"
        );
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn http1_never_panics(buf in bytes_with_prefix(b"GET http://a")) {
        match http1::parse_proxy_request(&buf) {
            Ok(Some(http1::ProxyRequest::Tunnel { consumed, .. })) => prop_assert!(consumed <= buf.len()),
            Ok(Some(http1::ProxyRequest::Forward { consumed, head, .. })) => {
                prop_assert!(consumed <= buf.len());
                prop_assert!(head.ends_with(b"Connection: close\r\n\r\n"));
            }
            Ok(None) => prop_assert!(buf.len() < http1::MAX_HEAD_LEN),
            Err(e) => prop_assert!(matches!(e.status(), 400 | 431 | 501)),
        }
    }

    #[test]
    fn http1_never_panics_on_text(s in "[A-Z]{1,7} \\PC{0,60}( HTTP/1\\.[01])?\r\n([A-Za-z-]{1,10}: \\PC{0,20}\r\n){0,4}\r\n") {
        let _ = http1::parse_proxy_request(s.as_bytes());
    }

    // ---- Proxy-Status, RFC 9209

    #[test]
    fn proxy_status_round_trip(name in "\\PC{0,30}", idx in 0usize..32, prefix in "[a-z]{1,8}") {
        let error = proxy_status::ProxyErrorType::all().nth(idx).unwrap();
        let member = proxy_status::format(&name, error);
        prop_assert!(member.bytes().all(|b| (0x20..0x7f).contains(&b)));
        prop_assert_eq!(proxy_status::parse_error(&member), Some(error));
        // Appended behind the member of an intermediary nearer the origin
        // that reported no error, ours is found.
        prop_assert_eq!(proxy_status::parse_error(&format!("{prefix}, {member}")), Some(error));
        let _ = proxy_status::http_status(error);
    }

    #[test]
    fn proxy_status_parse_never_panics(s in "\\PC{0,80}") {
        let _ = proxy_status::parse_error(&s);
    }

    #[test]
    fn proxy_status_parse_never_panics_on_likely_input(s in "[a-z_\";=, \\\\]{0,60}") {
        let _ = proxy_status::parse_error(&s);
    }
}
