//! A real `openrelay devnet` as a child process ([`Devnet`]), or exported
//! as configs ([`export_devnet`]). When a test panics, the devnet's guard
//! prints the devnet's stderr and the tail of every component log before
//! its temporary directory goes away (`OPENRELAY_TEST_LOGS=DIR` keeps the
//! logs).

#![cfg(feature = "harness")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::process::{
    BIN, READY_TIMEOUT, first_line, is_running, ready_field, run_openrelay, signal_group, tail,
};

/// (ephemeral proxy ports), keys and state in `<dir>/state`, logs in
/// `<dir>/logs`, with `extra` flags; the configs' directory.
pub fn export_devnet(dir: &Path, extra: &[&str]) -> PathBuf {
    let (configs, state, logs) = (dir.join("configs"), dir.join("state"), dir.join("logs"));
    std::fs::create_dir_all(&logs).unwrap();
    let mut args = vec![
        "devnet",
        "--export",
        configs.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--log-dir",
        logs.to_str().unwrap(),
        "--operators",
        "2",
        "--socks",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let exported = run_openrelay(&args, Duration::from_secs(30));
    assert!(exported.status.success(), "{}", exported.stderr);
    configs
}

/// A running `openrelay devnet` with ephemeral proxy ports and its own state
/// and log directories. Dropping it kills the devnet's process group (the
/// devnet and every component it started).
#[derive(Debug)]
pub struct Devnet {
    child: Option<Child>,
    // Held so the devnet's stdin stays open while it runs.
    stdin: Option<ChildStdin>,
    /// The client's SOCKS5 address.
    pub socks: SocketAddr,
    /// The client's HTTP proxy address.
    pub http: SocketAddr,
    /// `devnet.pids`: component name to pid.
    pub pids: BTreeMap<String, u32>,
    /// `--state-dir`.
    pub state_dir: PathBuf,
    /// `--log-dir`.
    pub log_dir: PathBuf,
    stderr: PathBuf,
    stdout_rest: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl Devnet {
    /// Starts a devnet of `operators` operators logging at `debug`.
    pub fn start(operators: usize) -> Devnet {
        Devnet::start_with(operators, "debug")
    }

    /// Starts a devnet of `operators` operators logging at `log_level`, and
    /// waits for its `ready` line.
    pub fn start_with(operators: usize, log_level: &str) -> Devnet {
        Devnet::start_with_args(operators, log_level, &[])
    }

    /// As [`Devnet::start_with`], with extra `devnet` flags (e.g. `--no-registry`).
    pub fn start_with_args(operators: usize, log_level: &str, extra: &[&str]) -> Devnet {
        let dir = tempfile::Builder::new()
            .prefix("openrelay-it-")
            .tempdir()
            .unwrap();
        let state_dir = dir.path().join("state");
        let log_dir = dir.path().join("logs");
        let stderr = dir.path().join("devnet.stderr");
        let mut child = Command::new(BIN)
            .arg("devnet")
            .args(["--operators", &operators.to_string()])
            .args(["--socks", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("--log-dir")
            .arg(&log_dir)
            .args(["--log-level", log_level])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .process_group(0)
            .spawn()
            .expect("cannot start the devnet");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let unbound = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut devnet = Devnet {
            child: Some(child),
            stdin,
            socks: unbound,
            http: unbound,
            pids: BTreeMap::new(),
            state_dir,
            log_dir,
            stderr,
            stdout_rest: Arc::default(),
            _dir: dir,
        };
        // From here on a panic drops `devnet`, which kills and reports.
        let (line, rest) = first_line(stdout, READY_TIMEOUT);
        devnet.stdout_rest = rest;
        let line = match line {
            Some(line) if line.starts_with("ready ") => line,
            other => panic!("the devnet did not become ready: {other:?}"),
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            matches!(words[..], ["ready", socks, http] if socks.starts_with("socks=") && http.starts_with("http=")),
            "the ready line is `ready socks=<addr> http=<addr>`: {line:?}"
        );
        devnet.socks = ready_field(&line, "socks").unwrap().parse().unwrap();
        devnet.http = ready_field(&line, "http").unwrap().parse().unwrap();
        let pids = std::fs::read_to_string(devnet.state_dir.join("devnet.pids")).unwrap();
        for row in pids.lines() {
            let (name, pid) = row.split_once(' ').unwrap();
            devnet
                .pids
                .insert(name.to_owned(), pid.trim().parse().unwrap());
        }
        // Relays and the client, plus a registry and its validators (3
        // unless --validators says otherwise) unless --no-registry, and the
        // token issuer unless --no-tokens.
        let validators = extra
            .iter()
            .position(|a| *a == "--validators")
            .and_then(|at| extra.get(at + 1))
            .map_or(3, |n| n.parse::<usize>().unwrap());
        let registry = if extra.contains(&"--no-registry") {
            0
        } else {
            1 + validators
        };
        let extra_components = registry + usize::from(!extra.contains(&"--no-tokens"));
        assert_eq!(
            devnet.pids.len(),
            2 * operators + 1 + extra_components,
            "devnet.pids lists every component: {pids}"
        );
        devnet
    }

    /// The devnet's own pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// What the devnet printed on stdout after its ready line.
    pub fn later_stdout(&self) -> Vec<String> {
        self.stdout_rest.lock().unwrap().clone()
    }

    /// The first line after the ready line that starts with `prefix`,
    /// waiting up to `limit` for it: a thread of its own reads those lines,
    /// and under load it lags behind the ready line.
    pub fn later_line(&self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let lines = self.later_stdout();
            if let Some(line) = lines.iter().find(|l| l.starts_with(prefix)) {
                return line.clone();
            }
            assert!(Instant::now() < deadline, "no {prefix:?} line in {lines:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A component's pid, from `devnet.pids`.
    pub fn component_pid(&self, name: &str) -> u32 {
        *self
            .pids
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.pids))
    }

    /// Waits up to `limit` for the devnet process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The text of `<log-dir>/<name>.log` (empty if absent).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits up to 30 s until the client refreshed its directory through
    /// its path at least once (taking a newer one, or finding the one it
    /// holds is the newest).
    pub async fn client_refreshed_directory(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let log = self.log("client");
            if log.contains("directory updated") || log.contains("directory unchanged") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the client never refreshed its directory"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// Every log file: (component name, text).
    pub fn logs(&self) -> Vec<(String, String)> {
        let mut logs: Vec<(String, String)> = std::fs::read_dir(&self.log_dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e
                    .file_name()
                    .to_string_lossy()
                    .strip_suffix(".log")?
                    .to_owned();
                Some((name, std::fs::read_to_string(e.path()).unwrap_or_default()))
            })
            .collect();
        logs.sort();
        logs
    }

    /// `openrelay status --json` for this devnet's client.
    pub fn status(&self) -> serde_json::Value {
        let state_dir = self.state_dir.display().to_string();
        let out = run_openrelay(
            &["status", "--state-dir", &state_dir, "--json"],
            Duration::from_secs(5),
        );
        assert!(out.status.success(), "{}", out.stderr);
        serde_json::from_str(out.stdout.trim()).unwrap()
    }

    /// The (ingress, egress) of the client's most recent path, from its
    /// `path established` log line.
    pub fn current_path(&self) -> (String, String) {
        let log = self.log("client");
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains("path established"))
            .unwrap_or_else(|| panic!("no path in client.log:\n{}", tail(&log, 20, true)));
        (
            ready_field(line, "ingress").unwrap(),
            ready_field(line, "egress").unwrap(),
        )
    }

    fn diagnostics(&self) -> String {
        let mut out = String::new();
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        out.push_str(&format!(
            "--- devnet stderr ---\n{}\n",
            tail(&stderr, 30, false)
        ));
        for (name, text) in self.logs() {
            out.push_str(&format!(
                "--- {name}.log (last lines, TRACE omitted) ---\n{}\n",
                tail(&text, 30, true)
            ));
        }
        out
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let mut state = String::new();
        if let Some(mut child) = self.child.take() {
            if std::thread::panicking() {
                let alive: Vec<String> = self
                    .pids
                    .iter()
                    .map(|(name, pid)| format!("{name}={}", is_running(*pid)))
                    .collect();
                state = format!(
                    "devnet status before cleanup: {:?}; components running: {}",
                    child.try_wait(),
                    alive.join(" ")
                );
            }
            // The components run in the devnet's process group.
            signal_group(child.id(), "KILL");
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(self.stdin.take());
        if std::thread::panicking() {
            eprintln!("{state}\n{}", self.diagnostics());
            keep_logs(&self.log_dir);
        }
    }
}

/// With `OPENRELAY_TEST_LOGS=DIR`, a failed test's component logs are copied
/// to a fresh directory under DIR (the test's own directory is removed).
fn keep_logs(log_dir: &Path) {
    let Some(root) = std::env::var_os("OPENRELAY_TEST_LOGS") else {
        return;
    };
    let Ok(kept) = tempfile::Builder::new()
        .prefix("failed-")
        .tempdir_in(&root)
        .map(tempfile::TempDir::keep)
    else {
        return;
    };
    for entry in std::fs::read_dir(log_dir).into_iter().flatten().flatten() {
        let _ = std::fs::copy(entry.path(), kept.join(entry.file_name()));
    }
    eprintln!("logs kept in {}", kept.display());
}

/// Starts `openrelay <subcommand> --config <config>` of an exported devnet,
/// its stderr beside the config.
pub fn start_exported(subcommand: &str, config: &Path) -> crate::Proc {
    let stderr = config.with_extension("stderr");
    crate::Proc::start(&[subcommand, "--config", config.to_str().unwrap()], &stderr)
}

/// A free UDP port on `ip`.
pub fn free_udp_port(ip: std::net::Ipv4Addr) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A second issuer beside an exported devnet's (`<configs>/issuer.toml`):
/// the issuer's identity, so every pin matches, but token keys of its own,
/// publishing nothing and following no directory: an issuer showing some
/// users keys nobody else sees (RFC 9576 §6). Its state is `<dir>/rogue`,
/// its log `<dir>/logs/rogue.log`, its config `<configs>/rogue.toml`, and
/// it listens on `ip`. The config's path and the address.
pub fn issuer_with_own_keys(
    configs: &Path,
    dir: &Path,
    ip: std::net::Ipv4Addr,
) -> (PathBuf, SocketAddr) {
    let issuer = openrelay_config::IssuerConfig::load(&configs.join("issuer.toml")).unwrap();
    let state = dir.join("rogue");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::copy(
        issuer.state_dir.join("identity.key"),
        state.join("identity.key"),
    )
    .unwrap();
    let addr = SocketAddr::from((ip, free_udp_port(ip)));
    let rogue = openrelay_config::IssuerConfig {
        listen: addr,
        state_dir: state,
        publish: None,
        directory: None,
        settlement: None,
        log: openrelay_config::LogConfig {
            level: "debug".into(),
            file: Some(dir.join("logs/rogue.log")),
        },
        ..issuer
    };
    let path = configs.join("rogue.toml");
    std::fs::write(&path, rogue.to_toml().unwrap()).unwrap();
    (path, addr)
}
