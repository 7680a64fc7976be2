#![doc = include_str!("../README.md")]

pub mod backoff;
pub mod call;
pub mod congestion;
pub mod datagrams;
pub mod early_datagrams;
pub mod endpoint;
pub mod error_kind;
pub mod h3guard;
pub mod h3util;
pub mod identity;
pub mod limits;
pub mod server;
pub mod service;
pub mod task;
pub mod tcp_pump;
#[cfg(feature = "testing")]
pub mod testing;
pub mod throttle_for_tests;
pub mod tls;
pub mod tunnel_socket;
pub mod udp;
pub mod udp_bridge;

/// ALPN of HTTP/3 (RFC 9114 §3.1).
pub const ALPN_H3: &[u8] = b"h3";
