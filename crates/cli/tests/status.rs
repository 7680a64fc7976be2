//! `openrelay status`: a running client reports its path (ingress and egress,
//! each with its operator) and open flows over its control socket.
#![allow(clippy::unwrap_used)]

use openrelay_testkit as kit;

use std::time::Duration;

use kit::{Devnet, fetch, run_openrelay, servers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_path_and_open_flows() {
    let devnet = Devnet::start(2);
    let servers = servers();
    let socks = devnet.socks.to_string();
    // A slow download keeps one flow open while we ask.
    let slow = fetch(
        &["--socks5", &socks],
        &format!("http://127.0.0.1:{}/slow/2000000", servers.http.port()),
        Duration::from_secs(30),
    );
    let download = tokio::spawn(slow);
    // Its flow is open (the client's own directory fetches come and go).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !devnet.log("client").contains("tcp flow opened") {
        assert!(
            std::time::Instant::now() < deadline,
            "the download never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state_dir = devnet.state_dir.display().to_string();
    let mut status = serde_json::Value::Null;
    for _ in 0..50 {
        let out = run_openrelay(
            &["status", "--state-dir", &state_dir, "--json"],
            Duration::from_secs(5),
        );
        assert!(out.status.success(), "status failed: {}", out.stderr);
        status = serde_json::from_str(out.stdout.trim()).unwrap();
        // The download, and at times the client's own directory fetch.
        if status["open_flows"].as_u64() >= Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["state"], "connected", "{status}");
    assert!(status["open_flows"].as_u64() >= Some(1), "{status}");
    assert!(status["live_paths"].as_u64() >= Some(1), "{status}");
    let (ingress, egress) = (&status["ingress"], &status["egress"]);
    let (ingress_operator, egress_operator) = (
        ingress["operator"].as_str().unwrap(),
        egress["operator"].as_str().unwrap(),
    );
    assert_ne!(ingress_operator, egress_operator, "{status}");
    let (name_in, name_out) = devnet.current_path();
    assert_eq!(ingress["name"], name_in.as_str());
    assert_eq!(egress["name"], name_out.as_str());

    // The text form says the same for people.
    let text = run_openrelay(
        &["status", "--state-dir", &state_dir],
        Duration::from_secs(5),
    );
    assert!(
        text.stdout
            .contains(&format!("(operator {ingress_operator}")),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("open flows: "), "{}", text.stdout);
    assert!(!text.stdout.contains("open flows: 0 "), "{}", text.stdout);
    download.abort();
}

#[test]
fn status_without_a_client_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().display().to_string();
    let out = run_openrelay(
        &["status", "--state-dir", &state_dir],
        Duration::from_secs(5),
    );
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("no running client found"),
        "{}",
        out.stderr
    );
    assert!(kit::logs::panics(&out.stderr).is_empty(), "{}", out.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requested_egress_country_is_used_and_shown() {
    // Devnet operators 1, 2, 3 are in NL, CH, SE; only operator 3 is in SE.
    for extra in [
        &["--egress-country", "SE"][..],
        &["--egress-country", "SE", "--no-registry"][..],
        // "Near my region": a valid path with its egress at home exists.
        &["--home-country", "SE"][..],
    ] {
        let devnet = Devnet::start_with_args(3, "debug", extra);
        let state_dir = devnet.state_dir.display().to_string();
        let out = run_openrelay(
            &["status", "--state-dir", &state_dir, "--json"],
            Duration::from_secs(5),
        );
        let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(status["egress"]["country"], "SE", "{extra:?}: {status}");
        assert_ne!(
            status["ingress"]["country"], "SE",
            "{extra:?}: ingress of another operator: {status}"
        );
        let (_, egress) = devnet.current_path();
        assert_eq!(egress, "egress-3", "{extra:?}");
        let text = run_openrelay(
            &["status", "--state-dir", &state_dir],
            Duration::from_secs(5),
        );
        assert!(text.stdout.contains("Localhost SE"), "{}", text.stdout);
    }
}

/// A client whose relays are its config's builds its path as it starts
/// (`openrelay client` announces readiness once a path works), before any
/// flow asks: the cold start's first request waits only for what is left
/// of the build.
#[test]
fn a_started_client_builds_its_path_before_the_first_flow() {
    use kit::standalone::{ingress_to, loopback_egress};
    use openrelay_types::RelayRole;

    let egress = loopback_egress("");
    let ingress = ingress_to(egress.addr, "");
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let entry = |relay: &kit::standalone::Standalone,
                 name: &str,
                 role: RelayRole,
                 operator: &str| {
        let e = relay.entry(name, role, operator);
        format!(
            "[[relay]]\nname = \"{}\"\nrole = \"{}\"\noperator = \"{}\"\naddr = \"{}\"\nkey = \"{}\"\n",
            e.name, role, e.operator, e.addr, e.key
        )
    };
    let config = dir.path().join("client.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\nsocks = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\n{}{}",
            state_dir.display(),
            entry(&ingress, "ingress-a", RelayRole::Ingress, "a"),
            entry(&egress, "egress-b", RelayRole::Egress, "b"),
        ),
    )
    .unwrap();
    let _client = kit::Proc::start(
        &["client", "--config", config.to_str().unwrap()],
        &dir.path().join("client.stderr"),
    );
    let state = state_dir.display().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let out = run_openrelay(
            &["status", "--state-dir", &state, "--json"],
            Duration::from_secs(5),
        );
        assert!(out.status.success(), "status failed: {}", out.stderr);
        let status: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
        if status["state"] == "connected" || std::time::Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status["state"], "connected", "{status}");
    assert_eq!(status["live_paths"].as_u64(), Some(1), "{status}");
    assert_eq!(status["open_flows"].as_u64(), Some(0), "{status}");
    assert_eq!(status["ingress"]["name"], "ingress-a", "{status}");
    assert_eq!(status["egress"]["name"], "egress-b", "{status}");
}
