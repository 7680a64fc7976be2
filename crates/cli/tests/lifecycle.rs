//! Process lifecycle and configuration: the devnet stops everything on
//! SIGTERM, exported configs run each component as its own process, and bad
//! configs fail with a message naming the field (never a panic).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use openrelay_testkit as kit;

use std::path::Path;
use std::time::{Duration, Instant};

use kit::{Devnet, Proc, assert_bytes_eq, content, fetch, is_running, run_openrelay, servers};

/// SIGTERM to the devnet: it exits (successfully) within 5 s and takes
/// every component it started with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_devnet_and_every_component_within_5s() {
    let mut devnet = Devnet::start(2);
    let port = servers().http.port();
    fetch(
        &["--socks5-hostname", &devnet.socks.to_string()],
        &format!("http://localhost:{port}/hello"),
        Duration::from_secs(20),
    )
    .await
    .assert_ok("before SIGTERM");
    for (name, pid) in &devnet.pids {
        assert!(is_running(*pid), "{name} runs before SIGTERM");
    }

    let sent = Instant::now();
    assert!(kit::send_signal(devnet.pid(), "TERM"));
    let status = devnet.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "the devnet exits successfully within 5 s of SIGTERM: {status:?}"
    );
    // Its children were reaped by it, or are orphans on their way out.
    while devnet.pids.values().any(|pid| is_running(*pid))
        && sent.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: Vec<&String> = devnet
        .pids
        .iter()
        .filter(|(_, pid)| is_running(**pid))
        .map(|(name, _)| name)
        .collect();
    assert!(left.is_empty(), "still running 5 s after SIGTERM: {left:?}");
    assert_eq!(
        devnet.later_stdout(),
        Vec::<String>::new(),
        "the ready line is the devnet's only output"
    );
    for (name, log) in devnet.logs() {
        assert!(log.contains("stopped"), "{name} stopped cleanly:\n{log}");
    }
}

/// `devnet --export DIR` writes one config per component and exits; each
/// then runs as its own process (`openrelay issuer --config`, `openrelay
/// relay --config`, `openrelay client --config`), the client's account is
/// created with `openrelay account register`, and together they carry
/// token-gated, paid downloads. Without a registry (`--no-registry`): with
/// one, its validators must run too, since clients and relays then take
/// only the issuer keys its directory lists (issue 11 item 11;
/// `tests/devnet_export.rs` runs every component of that network).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_configs_run_as_separate_processes() {
    let dir = tempfile::tempdir().unwrap();
    let (configs, state, logs) = (
        dir.path().join("configs"),
        dir.path().join("state"),
        dir.path().join("logs"),
    );
    let path = |p: &Path| p.display().to_string();
    let export = run_openrelay(
        &[
            "devnet",
            "--export",
            &path(&configs),
            "--socks",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--state-dir",
            &path(&state),
            "--log-dir",
            &path(&logs),
            "--no-registry",
        ],
        Duration::from_secs(20),
    );
    assert!(export.status.success(), "export failed: {}", export.stderr);
    let names = [
        "issuer",
        "egress-1",
        "egress-2",
        "ingress-1",
        "ingress-2",
        "client",
    ];
    for name in names {
        let file = configs.join(format!("{name}.toml"));
        assert!(file.is_file(), "{name}.toml written");
        assert!(
            export.stdout.contains(&path(&file)),
            "export names {name}.toml: {}",
            export.stdout
        );
    }

    // The issuer, then relays (egresses before the ingresses that list
    // them), then the client's account, then the client, each its own
    // process.
    let mut relays = Vec::new();
    for name in &names[..5] {
        let config = path(&configs.join(format!("{name}.toml")));
        let subcommand = if *name == "issuer" { "issuer" } else { "relay" };
        let relay = Proc::start(
            &[subcommand, "--config", &config],
            &dir.path().join(format!("{name}.stderr")),
        );
        let role = relay.ready_field("role");
        assert!(name.starts_with(&role), "{name} says role={role}");
        assert!(relay.ready_field("key").starts_with("ed25519:"));
        relays.push(relay);
    }
    let client_config = path(&configs.join("client.toml"));
    let register = account(&[
        "register",
        "--config",
        &client_config,
        "--username",
        "alice",
        "--password-stdin",
    ]);
    assert!(register.0, "account register failed: {}", register.1);
    assert!(register.1.contains("logged in as alice"), "{}", register.1);
    let client = Proc::start(
        &["client", "--config", &path(&configs.join("client.toml"))],
        &dir.path().join("client.stderr"),
    );
    let socks = client.ready_field("socks");
    let http = client.ready_field("http");

    let port = servers().http.port();
    let size = 1 << 20;
    for (what, proxy) in [
        ("socks5", vec!["--socks5-hostname", socks.as_str()]),
        ("http proxy", vec!["-x", &format!("http://{http}")]),
    ] {
        let got = fetch(
            &proxy,
            &format!("http://localhost:{port}/bytes/{size}/3"),
            Duration::from_secs(30),
        )
        .await;
        got.assert_ok(what);
        assert_bytes_eq(&got.body, &content(3, size), what);
    }
    for name in names {
        let log = std::fs::read_to_string(logs.join(format!("{name}.log"))).unwrap_or_default();
        assert!(!log.is_empty(), "{name}.log written");
    }
    drop(client);
    drop(relays);
}

/// `openrelay account <args>` with this test's password.
fn account(args: &[&str]) -> (bool, String) {
    kit::account(args, "correct horse battery staple")
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    file.display().to_string()
}

/// Bad configuration is refused before anything starts, with a message that
/// names the field (or the file), and never with a panic.
#[test]
fn config_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").display().to_string();
    let egress = |extra: &str| {
        format!(
            "role = \"egress\"\noperator = \"op\"\nstate_dir = \"{state}\"\n{extra}\n[log]\nlevel = \"info\"\n"
        )
    };
    let key = "ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let relay_entry = |name: &str, role: &str, operator: &str| {
        format!(
            "[[relay]]\nname = \"{name}\"\nrole = \"{role}\"\noperator = \"{operator}\"\naddr = \"192.0.2.1:4433\"\nkey = \"{key}\"\n"
        )
    };
    let client_head = format!("state_dir = \"{state}\"\nsocks = \"127.0.0.1:0\"\n");
    let missing = dir.path().join("does-not-exist.toml").display().to_string();

    let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "relay without `listen`",
            vec![
                "relay".into(),
                "--config".into(),
                write(dir.path(), "no-listen.toml", &egress("")),
            ],
            vec!["missing field `listen`".into()],
        ),
        (
            "relay with a bad `listen`",
            vec![
                "relay".into(),
                "--config".into(),
                write(
                    dir.path(),
                    "bad-listen.toml",
                    &egress("listen = \"not an address\""),
                ),
            ],
            // The message quotes the offending line.
            vec![
                "listen = \"not an address\"".into(),
                "invalid socket address".into(),
            ],
        ),
        (
            "relay with an unknown field",
            vec![
                "relay".into(),
                "--config".into(),
                write(
                    dir.path(),
                    "unknown.toml",
                    &egress("listen = \"127.0.0.1:0\"\ncolour = \"blue\""),
                ),
            ],
            vec!["unknown field `colour`".into()],
        ),
        (
            "relay config file missing",
            vec!["relay".into(), "--config".into(), missing.clone()],
            vec![missing.clone()],
        ),
        (
            "client config file missing",
            vec!["client".into(), "--config".into(), missing.clone()],
            vec![missing],
        ),
        (
            "client whose relays are all one operator's",
            vec![
                "client".into(),
                "--config".into(),
                write(
                    dir.path(),
                    "one-operator.toml",
                    &format!(
                        "{client_head}{}{}",
                        relay_entry("in", "ingress", "same"),
                        relay_entry("eg", "egress", "same")
                    ),
                ),
            ],
            vec!["field `relay`".into(), "different operators".into()],
        ),
        (
            "client without relays",
            vec![
                "client".into(),
                "--config".into(),
                write(dir.path(), "no-relays.toml", &client_head),
            ],
            vec!["field `relay`".into()],
        ),
        (
            "devnet of one operator",
            vec!["devnet".into(), "--operators".into(), "1".into()],
            vec!["--operators".into()],
        ),
    ];
    for (what, args, needles) in cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_openrelay(&refs, Duration::from_secs(20));
        assert!(!run.status.success(), "{what}: must fail");
        assert_eq!(run.status.code(), Some(1), "{what}: exit code");
        assert!(
            kit::logs::panics(&run.stderr).is_empty(),
            "{what}: panicked: {}",
            run.stderr
        );
        for needle in needles {
            assert!(
                run.stderr.contains(&needle),
                "{what}: the message names {needle:?}: {}",
                run.stderr
            );
        }
        assert!(
            run.stdout.is_empty(),
            "{what}: no ready line: {}",
            run.stdout
        );
    }
}
