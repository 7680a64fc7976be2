//! SOCKS5 (RFC 1928) greeting, request, reply and UDP relay header parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_wire::socks5;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((g, n))) = socks5::parse_greeting(data) {
        assert!(n <= data.len());
        let mut re = Vec::new();
        socks5::encode_greeting(&g.methods, &mut re);
        assert_eq!(socks5::parse_greeting(&re), Ok(Some((g, re.len()))));
    }

    match socks5::parse_request(data) {
        Ok(Some((r, n))) => {
            assert!(n <= data.len());
            let mut re = Vec::new();
            socks5::encode_request(r.command, &r.target, &mut re);
            assert_eq!(socks5::parse_request(&re), Ok(Some((r, re.len()))));
        }
        Ok(None) => assert!(data.len() < 262),
        Err(e) => {
            let _ = e.reply();
        }
    }

    if let Ok(Some((reply, n))) = socks5::parse_reply(data) {
        assert!(n <= data.len());
        let _ = reply.bound.authority();
    }

    if let Ok(p) = socks5::parse_udp_packet(data) {
        assert_ne!(p.target.port, 0);
        let mut re = Vec::new();
        socks5::encode_udp_header(&p.target, &mut re);
        re.extend_from_slice(p.payload);
        let again = socks5::parse_udp_packet(&re).expect("re-encoded datagram parses");
        assert_eq!(
            (again.frag, &again.target, again.payload),
            (0, &p.target, p.payload)
        );
    }
});
