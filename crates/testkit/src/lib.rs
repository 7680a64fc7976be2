#![doc = include_str!("../README.md")]
// Test code: a fixture that cannot be made, a server that cannot bind or a
// process that does not start fails the test at once, loudly, with what
// it saw on standard error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

pub mod fixtures;

#[cfg(feature = "harness")]
pub mod capture;
#[cfg(feature = "harness")]
pub mod curl;
#[cfg(feature = "harness")]
pub mod devnet;
#[cfg(feature = "harness")]
pub mod dns;
#[cfg(feature = "harness")]
pub mod egress;
#[cfg(feature = "harness")]
pub mod ingress;
#[cfg(feature = "harness")]
pub mod logs;
#[cfg(feature = "harness")]
pub mod netns;
#[cfg(feature = "harness")]
pub mod process;
#[cfg(feature = "harness")]
pub mod registry;
#[cfg(feature = "harness")]
pub mod scripts;
#[cfg(feature = "harness")]
pub mod servers;
#[cfg(feature = "harness")]
pub mod socks;
#[cfg(feature = "harness")]
pub mod standalone;

// What the binary's end-to-end tests use everywhere, at the root.
#[cfg(feature = "harness")]
pub use capture::{LoopbackCapture, wait_until_capturing};
#[cfg(feature = "harness")]
pub use curl::{CURL, CurlRun, Fetch, fetch, run_curl};
#[cfg(feature = "harness")]
pub use devnet::{Devnet, export_devnet};
#[cfg(feature = "harness")]
pub use logs::{events, level_of, lines_with, panics, port_mentions, warnings};
#[cfg(feature = "harness")]
pub use process::{
    BIN, Finished, Proc, account, is_running, run_openrelay, send_signal, signal_group,
    stop_and_report,
};
#[cfg(feature = "harness")]
pub use servers::{
    ClosedPort, HELLO, Servers, assert_bytes_eq, closed_port, content, http_server_at, servers,
};
#[cfg(feature = "harness")]
pub use socks::{SOCKS_TIMEOUT, SocksUdp, socks_connect, socks_greet, socks_raw, socks_request};
