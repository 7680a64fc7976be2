//! Interoperability with an independent HTTP/3 implementation: aioquic (PyPI)
//! talks to our egress directly, with standards-form CONNECT and connect-udp
//! datagrams it frames itself (see tests/interop/aioquic_masque.py).
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Devnet, servers};
use openrelay_config::RelayConfig;

fn aioquic_available() -> bool {
    Command::new("python3")
        .args(["-c", "import aioquic"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn aioquic_speaks_connect_and_connect_udp_with_our_egress() {
    if !aioquic_available() {
        // CI installs aioquic (.ci/run); elsewhere say clearly what was skipped.
        assert!(
            std::env::var_os("CI").is_none(),
            "aioquic must be installed in CI"
        );
        eprintln!("SKIPPED: python3 module aioquic not installed (pip install aioquic)");
        return;
    }
    let devnet = Devnet::start(2);
    let servers = servers();
    let egress = RelayConfig::load(&devnet.state_dir.join("configs/egress-1.toml")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/aioquic_masque.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(egress.listen.ip().to_string())
        .arg(egress.listen.port().to_string())
        .arg(servers.http.port().to_string())
        .arg(servers.udp.port().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "aioquic client failed:\n{stdout}\n{stderr}"
    );
    for check in ["tcp connect ok", "udp connect ok", "refusal ok"] {
        assert!(stdout.contains(check), "missing {check:?} in:\n{stdout}");
    }
}
