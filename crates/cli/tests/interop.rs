//! Interoperability with an independent HTTP/3 implementation: aioquic (PyPI)
//! talks to our egress directly (standards-form CONNECT, connect-udp with
//! datagrams it frames itself) and to our ingress (connect-udp to an egress
//! accepted, anything else refused). See tests/interop/aioquic_masque.py.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use openrelay_testkit as kit;

use std::path::Path;
use std::process::Command;

use kit::{Devnet, servers};
use openrelay_config::RelayConfig;

fn aioquic_available() -> bool {
    Command::new("python3")
        .args(["-c", "import aioquic"])
        .status()
        .is_ok_and(|s| s.success())
}

fn run_script(args: &[String], checks: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/aioquic_masque.py");
    let output = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "aioquic client failed:\n{stdout}\n{stderr}"
    );
    for check in checks {
        assert!(stdout.contains(check), "missing {check:?} in:\n{stdout}");
    }
}

#[test]
fn aioquic_speaks_masque_with_our_relays() {
    if !aioquic_available() {
        // CI installs aioquic (.ci/run); elsewhere say clearly what was skipped.
        assert!(
            std::env::var_os("CI").is_none(),
            "aioquic must be installed in CI"
        );
        eprintln!("SKIPPED: python3 module aioquic not installed (pip install aioquic)");
        return;
    }
    // The MASQUE exchange itself: aioquic holds no access token.
    let devnet = Devnet::start_with_args(2, "debug", &["--no-tokens"]);
    let servers = servers();
    let listen = |name: &str| {
        RelayConfig::load(&devnet.state_dir.join(format!("configs/{name}.toml")))
            .unwrap()
            .common()
            .listen
    };
    let (egress, ingress) = (listen("egress-1"), listen("ingress-2"));
    let (tcp, udp) = (servers.http.port(), servers.udp.port());
    let strings = |items: &[&dyn ToString]| items.iter().map(|i| i.to_string()).collect::<Vec<_>>();
    run_script(
        &strings(&[&"egress", &egress.ip(), &egress.port(), &tcp, &udp]),
        &["tcp connect ok", "udp connect ok", "refusal ok"],
    );
    run_script(
        &strings(&[
            &"ingress",
            &ingress.ip(),
            &ingress.port(),
            &egress.ip(),
            &egress.port(),
            &udp,
        ]),
        &[
            "ingress accepts egress ok",
            "ingress refuses other targets ok",
        ],
    );
}
