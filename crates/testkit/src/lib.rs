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

// The rest is feature `harness` (each module says so at its top).
pub mod capture;
pub mod curl;
pub mod devnet;
pub mod dns;
pub mod egress;
pub mod ingress;
pub mod logs;
pub mod measure;
pub mod netns;
pub mod process;
pub mod registry;
pub mod scripts;
pub mod servers;
pub mod socks;
pub mod standalone;

// What the binary's end-to-end tests use everywhere, at the root.
#[cfg(feature = "harness")]
pub use crate::{
    capture::{LoopbackCapture, wait_until_capturing},
    curl::{CURL, CurlRun, Fetch, fetch, run_curl},
    devnet::{Devnet, export_devnet},
    logs::{events, level_of, lines_with, panics, port_mentions, warnings},
    process::{
        BIN, Finished, Proc, account, is_running, run_openrelay, send_signal, signal_group,
        stop_and_report,
    },
    servers::{
        ClosedPort, HELLO, Servers, assert_bytes_eq, closed_port, content, http_server_at, servers,
    },
    socks::{SOCKS_TIMEOUT, SocksUdp, socks_connect, socks_greet, socks_raw, socks_request},
};
