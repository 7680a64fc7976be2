//! ICMP echo through the tunnel, answered honestly: the egress carries TCP
//! and UDP only, so an echo request to a destination cannot be forwarded and
//! is refused with "administratively prohibited" (ICMPv4 type 3 code 13,
//! RFC 1812 §5.2.7.1; ICMPv6 type 1 code 1, RFC 4443 §3.1), which `ping`
//! shows at once instead of timing out. Only the tunnel's own DNS address,
//! which the client itself serves, answers echo (RFC 792, RFC 4443 §4.2).

use std::net::IpAddr;

use crate::plan::{DNS_V4, DNS_V6};

const V4_ECHO_REQUEST: u8 = 8;
const V4_ECHO_REPLY: u8 = 0;
const V4_UNREACHABLE: u8 = 3;
const V4_ADMIN_PROHIBITED: u8 = 13;
const V6_ECHO_REQUEST: u8 = 128;
const V6_ECHO_REPLY: u8 = 129;
const V6_UNREACHABLE: u8 = 1;
const V6_ADMIN_PROHIBITED: u8 = 1;
/// IP protocol numbers of ICMP and ICMPv6.
pub const PROTO_ICMP: u8 = 1;
/// See [`PROTO_ICMP`].
pub const PROTO_ICMPV6: u8 = 58;
/// An ICMPv6 error must fit the IPv6 minimum MTU (RFC 4443 §2.4 (c)).
const V6_ERROR_MAX: usize = 1280 - 40;

/// The internet checksum (RFC 1071) over `parts`.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for byte in parts.iter().flat_map(|p| p.iter().copied()) {
        match odd.take() {
            Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
            None => odd = Some(byte),
        }
    }
    if let Some(high) = odd {
        sum += u32::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The answer to an ICMP message from `source` to `destination` (the ICMP
/// message only; the reply travels from `destination` back to `source`), or
/// `None` when nothing is to be sent (not an echo request, malformed).
pub fn answer(source: IpAddr, destination: IpAddr, message: &[u8]) -> Option<Vec<u8>> {
    if message.len() < 8 {
        return None;
    }
    match (source, destination) {
        (IpAddr::V4(src), IpAddr::V4(dst)) if message[0] == V4_ECHO_REQUEST => {
            let mut reply = if dst == DNS_V4 {
                let mut reply = message.to_vec();
                reply[0] = V4_ECHO_REPLY;
                reply
            } else {
                // The invoking packet: its IP header (rebuilt: 20 bytes, no
                // options) and the first 8 bytes of its payload (RFC 792).
                let total = u16::try_from(20 + message.len()).unwrap_or(u16::MAX);
                let mut header = vec![0x45, 0];
                header.extend_from_slice(&total.to_be_bytes());
                header.extend_from_slice(&[0, 0, 0, 0, 64, PROTO_ICMP, 0, 0]);
                header.extend_from_slice(&src.octets());
                header.extend_from_slice(&dst.octets());
                let sum = checksum(&[&header]);
                header[10..12].copy_from_slice(&sum.to_be_bytes());
                let mut reply = vec![V4_UNREACHABLE, V4_ADMIN_PROHIBITED, 0, 0, 0, 0, 0, 0];
                reply.extend_from_slice(&header);
                reply.extend_from_slice(&message[..8]);
                reply
            };
            reply[2..4].copy_from_slice(&[0, 0]);
            let sum = checksum(&[&reply]);
            reply[2..4].copy_from_slice(&sum.to_be_bytes());
            Some(reply)
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) if message[0] == V6_ECHO_REQUEST => {
            let mut reply = if dst == DNS_V6 {
                let mut reply = message.to_vec();
                reply[0] = V6_ECHO_REPLY;
                reply
            } else {
                let mut invoking = vec![0x60, 0, 0, 0];
                let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
                invoking.extend_from_slice(&len.to_be_bytes());
                invoking.extend_from_slice(&[PROTO_ICMPV6, 64]);
                invoking.extend_from_slice(&src.octets());
                invoking.extend_from_slice(&dst.octets());
                invoking.extend_from_slice(message);
                invoking.truncate(V6_ERROR_MAX - 8);
                let mut reply = vec![V6_UNREACHABLE, V6_ADMIN_PROHIBITED, 0, 0, 0, 0, 0, 0];
                reply.extend_from_slice(&invoking);
                reply
            };
            reply[2..4].copy_from_slice(&[0, 0]);
            // The checksum covers a pseudo-header (RFC 8200 §8.1) of the
            // reply, which travels from `dst` to `src`.
            let len = u32::try_from(reply.len()).unwrap_or(u32::MAX).to_be_bytes();
            let sum = checksum(&[
                &dst.octets(),
                &src.octets(),
                &len,
                &[0, 0, 0, PROTO_ICMPV6],
                &reply,
            ]);
            reply[2..4].copy_from_slice(&sum.to_be_bytes());
            Some(reply)
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn echo(kind: u8) -> Vec<u8> {
        let mut m = vec![kind, 0, 0, 0, 0x12, 0x34, 0, 1];
        m.extend_from_slice(b"payload!");
        m
    }

    #[test]
    fn the_dns_address_answers_echo_and_others_are_refused() {
        let me: IpAddr = "10.89.0.2".parse().unwrap();
        let reply = answer(me, DNS_V4.into(), &echo(8)).unwrap();
        assert_eq!(reply[0], V4_ECHO_REPLY);
        assert_eq!(checksum(&[&reply]), 0, "checksum verifies");
        let refused = answer(me, "192.0.2.1".parse().unwrap(), &echo(8)).unwrap();
        assert_eq!((refused[0], refused[1]), (3, 13));
        assert_eq!(checksum(&[&refused]), 0);
        // The invoking header names the original destination, and the echo
        // identifier is quoted so ping can match the error.
        assert_eq!(&refused[8 + 16..8 + 20], &[192, 0, 2, 1]);
        assert_eq!(&refused[8 + 20 + 4..8 + 20 + 6], &[0x12, 0x34]);
        // Replies and other types get no answer.
        assert!(answer(me, DNS_V4.into(), &echo(0)).is_none());
        assert!(answer(me, DNS_V4.into(), &[8, 0, 0]).is_none());
    }

    #[test]
    fn icmpv6_checksums_cover_the_pseudo_header() {
        let me: std::net::Ipv6Addr = "fd6f:7265:6c61:7900::2".parse().unwrap();
        let there: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        for (dst, kind) in [(DNS_V6, V6_ECHO_REPLY), (there, V6_UNREACHABLE)] {
            let reply = answer(me.into(), dst.into(), &echo(128)).unwrap();
            assert_eq!(reply[0], kind);
            let len = (reply.len() as u32).to_be_bytes();
            let sum = checksum(&[&dst.octets(), &me.octets(), &len, &[0, 0, 0, 58], &reply]);
            assert_eq!(sum, 0);
        }
    }

    proptest! {
        #[test]
        fn any_message_is_answered_or_ignored_without_panic(
            message in proptest::collection::vec(any::<u8>(), 0..1500), v6: bool
        ) {
            let (s, d): (IpAddr, IpAddr) = if v6 {
                ("fd00::2".parse().unwrap(), "2001:db8::1".parse().unwrap())
            } else {
                ("10.0.0.2".parse().unwrap(), "192.0.2.1".parse().unwrap())
            };
            if let Some(reply) = answer(s, d, &message) {
                prop_assert!(reply.len() <= 1280);
            }
        }
    }
}
