//! QUIC and HTTP/3 plumbing shared by the relays and the client.
//!
//! * [`identity`]: a relay's long-term Ed25519 key, kept in its state directory.
//! * [`tls`]: TLS 1.3 configs; clients pin the relay's key (no web PKI).
//! * [`endpoint`]: quinn client/server configs tuned for relaying.
//! * [`congestion`]: congestion control for nested connections (random loss
//!   is not congestion; a window from the measured delivery rate).
//! * [`datagrams`]: HTTP Datagrams (RFC 9297) on a QUIC connection, routed by
//!   quarter stream ID to per-request sinks.
//! * [`tunnel_socket`]: a quinn socket whose packets travel inside HTTP datagrams
//!   of another connection; the client runs its inner QUIC connection over it.
//! * [`udp_bridge`]: the server side of a connect-udp request: datagrams to
//!   and from a connected UDP socket (the ingress and the egress both use it).
//! * [`h3guard`]: h3's QUIC layer on quinn, guarding every received stream
//!   (frame limits, QPACK streams, resets), for our servers and clients.
//! * [`limits`]: a server's connection, stream and time limits, and the
//!   per-address connection gate.
//! * [`server`]: the HTTP/3 server loop every openrelay server runs.
//! * [`service`]: the service runner on it (bind, background tasks, serve,
//!   final statistics) every openrelay server starts with.
//! * [`error_kind`]: fixed names of library errors, for logs.
//! * [`tcp_pump`]: bytes between a TCP connection and a CONNECT stream.
//! * [`udp`]: UDP sockets and quinn endpoints with large socket buffers.
//! * [`h3util`]: small helpers around the `h3` crate.
//! * [`backoff`]: retry delays (capped, doubling, spread).

pub mod backoff;
pub mod call;
pub mod congestion;
pub mod datagrams;
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
pub mod tls;
pub mod tunnel_socket;
pub mod udp;
pub mod udp_bridge;

/// ALPN of HTTP/3 (RFC 9114 §3.1).
pub const ALPN_H3: &[u8] = b"h3";
