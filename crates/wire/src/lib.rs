//! Wire formats of openrelay, as pure, I/O-free codecs.
//!
//! Every parser here takes untrusted bytes from the network or from a local
//! application and must never panic, never allocate without bound and never
//! block: the relays and the client do the I/O, this crate only turns bytes
//! into values and back.
//!
//! | module | format | specification |
//! |---|---|---|
//! | [`varint`] | QUIC variable-length integers | RFC 9000 §16 |
//! | [`datagram`] | HTTP Datagrams in QUIC DATAGRAM frames, with the connect-udp Context ID | RFC 9297 §2.1, RFC 9298 §5 |
//! | [`capsule`] | the Capsule Protocol | RFC 9297 §3.2 |
//! | [`target`] | a destination (`host:port`) | RFC 9110 §9.3.6, RFC 9114 §4.4 |
//! | [`masque`] | the connect-udp URI template path | RFC 9298 §2, §3.4 |
//! | [`socks5`] | SOCKS version 5 | RFC 1928 |
//! | [`http1`] | the local HTTP proxy's request head | RFC 9112 §3.2 |
//! | [`proxy_status`] | the `Proxy-Status` response field | RFC 9209 |
//! | [`dns`] | DNS messages relayed for the full-device VPN | RFC 1035 §4.1, RFC 8484 §4.1 |
//! | [`h3frame`] | HTTP/3 frame boundaries and stream types on received streams (limits before buffering) | RFC 9114 §6.2, §7.1, §8.1 |
//! | [`qpack`] | QPACK prefixed integers, zero-capacity encoder/decoder stream checks, literal field sections | RFC 9204 §4.1.1, §4.3, §4.4, §4.5 |
//!
//! # Privacy
//!
//! Relays must never log destinations. [`target::Target`], [`target::Host`]
//! and [`target::DomainName`] therefore implement no `Display`, and their
//! `Debug` output is redacted; payload-carrying values print only their
//! length. Error messages never contain the offending input.

pub mod capsule;
pub mod datagram;
pub mod dns;
pub mod h3frame;
pub mod http1;
pub mod masque;
pub mod proxy_status;
pub mod qpack;
pub mod socks5;
pub mod target;
pub mod varint;
