#![doc = include_str!("../README.md")]

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
