//! Helper programs a test runs where it cannot run Rust code of its own:
//! inside network namespaces it made (python3, standard library only).

#![cfg(feature = "harness")]

/// The "internet" of the full-device VPN tests: an HTTP and a UDP echo
/// server on 198.18.0.1 and a DNS server on 127.0.0.1:53 answering for
/// `dest.test`; prints `ready` once everything listens.
pub const TUN_INTERNET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tun_internet.py");

/// The client host's probes in the full-device VPN tests: a DNS query over
/// UDP or TCP, a UDP datagram, a datagram carrying the client's firewall
/// mark.
pub const TUN_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/tun_client.py");
