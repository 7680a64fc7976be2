//! Harness shared by the integration tests: a real `openrelay devnet` (or
//! single components) as child processes, a local HTTP/1.1 file server, a UDP
//! echo server, `curl` with a time limit, and a small SOCKS5 client built on
//! `openrelay_wire::socks5`.
//!
//! Every process is started in its own process group and owned by a guard
//! whose `Drop` kills the whole group, so a failing test leaves nothing
//! running. When a test panics, the guard prints the devnet's stderr and the
//! tail of every component log before its temporary directory goes away.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use openrelay_wire::socks5::{self, ServerReply};
use openrelay_wire::target::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_openrelay");
/// How long a devnet (or a component) may take to print its `ready` line.
const READY_TIMEOUT: Duration = Duration::from_secs(40);
/// Where curl lives (CI installs it).
pub const CURL: &str = "/usr/bin/curl";

// ---------------------------------------------------------------------------
// Processes and signals
// ---------------------------------------------------------------------------

/// Sends `signal` (`TERM`, `KILL`, ...) to one process. Uses kill(1): the
/// workspace forbids `unsafe`, and this needs no extra crate.
pub fn send_signal(pid: u32, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, "--", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Sends `signal` to every process of the process group `pgid`.
pub fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether `pid` is a live process (a zombie has exited: it is not live).
pub fn is_running(pid: u32) -> bool {
    openrelay_abuse::monitor::alive(pid)
}

/// Reads the first line of `stdout` (within `limit`), then keeps draining it on
/// a thread so the child never blocks on a full pipe; later lines are kept in
/// the returned list.
fn first_line(
    stdout: std::process::ChildStdout,
    limit: Duration,
) -> (Option<String>, Arc<Mutex<Vec<String>>>) {
    let (tx, rx) = mpsc::channel();
    let rest = Arc::new(Mutex::new(Vec::new()));
    let later = Arc::clone(&rest);
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match tx.take() {
                Some(tx) => {
                    let _ = tx.send(line);
                }
                None => later.lock().unwrap().push(line),
            }
        }
    });
    (rx.recv_timeout(limit).ok(), rest)
}

fn tail(text: &str, lines: usize, skip_trace: bool) -> String {
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !(skip_trace && l.contains(" TRACE ")))
        .collect();
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

/// One `openrelay` process (a relay or a client run alone), killed with its
/// process group on drop.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    /// Its `ready ...` line.
    pub ready: String,
    stderr: PathBuf,
}

impl Proc {
    /// Runs `openrelay <args>` and waits for its `ready` line; stderr goes to
    /// `stderr` (a file), shown if the test fails.
    pub fn start(args: &[&str], stderr: &Path) -> Proc {
        Proc::start_under(&[], args, stderr)
    }

    /// As [`Proc::start`], run under `wrapper` (a command and its
    /// arguments that runs the rest, e.g. `prlimit --nofile=64:64 --`).
    pub fn start_under(wrapper: &[&str], args: &[&str], stderr: &Path) -> Proc {
        let mut command = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(stderr).unwrap())
            .process_group(0)
            .spawn()
            .expect("cannot start openrelay");
        let stdout = child.stdout.take().unwrap();
        let mut proc = Proc {
            child,
            ready: String::new(),
            stderr: stderr.to_owned(),
        };
        match first_line(stdout, READY_TIMEOUT).0 {
            Some(line) if line.starts_with("ready") => proc.ready = line,
            other => panic!("openrelay {args:?} did not become ready: {other:?}"),
        }
        proc
    }

    /// The process id (of the wrapper's `exec`ed openrelay, if wrapped).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The value of `key=` in the ready line.
    pub fn ready_field(&self, key: &str) -> String {
        ready_field(&self.ready, key).unwrap_or_else(|| panic!("no {key} in {:?}", self.ready))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        stop_and_report(&mut self.child, &self.stderr, &format!("{:?}", self.ready));
    }
}

/// Kills `child`'s process group and, if the test is failing, prints the
/// tail of its stderr file under `label`.
pub fn stop_and_report(child: &mut Child, stderr: &Path, label: &str) {
    signal_group(child.id(), "KILL");
    let _ = child.kill();
    let _ = child.wait();
    if std::thread::panicking() {
        let text = std::fs::read_to_string(stderr).unwrap_or_default();
        eprintln!("--- stderr of {label} ---\n{}", tail(&text, 40, false));
    }
}

fn ready_field(line: &str, key: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
}

/// The result of `openrelay <args>` run to completion.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs `openrelay <args>` to completion (at most `limit`, else panics).
pub fn run_openrelay(args: &[&str], limit: Duration) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .process_group(0)
        .spawn()
        .expect("cannot start openrelay");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            signal_group(child.id(), "KILL");
            let _ = child.kill();
            let _ = child.wait();
            panic!("openrelay {args:?} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Finished {
        status,
        stdout: std::fs::read_to_string(out).unwrap_or_default(),
        stderr: std::fs::read_to_string(err).unwrap_or_default(),
    }
}

/// `openrelay account <args>` with `password` on standard input (at most
/// 60 s, else panics; registering solves the issuer's puzzle): whether it succeeded, and what it printed (standard
/// output, then standard error).
pub fn account(args: &[&str], password: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("account")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(password.as_bytes()).unwrap();
    stdin.write_all(b"\n").unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            signal_group(child.id(), "KILL");
            panic!("openrelay account {args:?} did not exit within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `openrelay devnet --export <dir>/configs` of a two-operator network
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

// ---------------------------------------------------------------------------
// The devnet
// ---------------------------------------------------------------------------

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
        // Relays and the client, plus a registry and 3 validators unless
        // --no-registry, and the token issuer unless --no-tokens.
        let registry = if extra.contains(&"--no-registry") {
            0
        } else {
            4
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

/// Waits until `tcpdump` (whose standard error goes to `status`) says
/// "listening on", i.e. captures: a capture that attaches late misses the
/// packets a test looks for.
pub fn wait_until_capturing(tcpdump: &mut std::process::Child, status: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(status)
        .unwrap_or_default()
        .contains("listening on")
    {
        assert!(Instant::now() < deadline, "tcpdump did not start");
        assert!(matches!(tcpdump.try_wait(), Ok(None)), "tcpdump exited");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tcpdump capture on loopback of the packets matching a filter, while
/// alive.
#[derive(Debug)]
pub struct LoopbackCapture {
    child: Child,
    file: tempfile::NamedTempFile,
}

impl LoopbackCapture {
    /// Starts capturing packets matching `filter` (tcpdump syntax) and waits
    /// until tcpdump captures; `None` if tcpdump is not installed.
    pub fn start(filter: &str) -> Option<LoopbackCapture> {
        let file = tempfile::NamedTempFile::new().unwrap();
        let status = tempfile::NamedTempFile::new().unwrap();
        // Immediate mode: by default libpcap hands packets over in batches
        // up to a second late, and a test reading right after the traffic
        // it waited for would miss them.
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-l", "-q", "--immediate-mode", filter])
            .stdout(file.reopen().unwrap())
            .stderr(status.reopen().unwrap())
            .spawn()
            .ok()?;
        wait_until_capturing(&mut child, status.path());
        Some(LoopbackCapture { child, file })
    }

    /// The source (`address.port`) of every packet captured so far.
    pub fn sources(&self) -> Vec<String> {
        std::fs::read_to_string(self.file.path())
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
            .collect()
    }

    /// The source of every packet captured so far to `destination` (lines
    /// read `IP 127.0.2.3.40000 > 127.0.4.1.4443: UDP, length 1200`).
    pub fn sources_to(&self, destination: SocketAddr) -> Vec<String> {
        let destination = format!("{}.{}:", destination.ip(), destination.port());
        std::fs::read_to_string(self.file.path())
            .unwrap()
            .lines()
            .filter(|l| l.split_whitespace().nth(4) == Some(destination.as_str()))
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
            .collect()
    }
}

impl Drop for LoopbackCapture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

// ---------------------------------------------------------------------------
// Local servers: HTTP/1.1 files and UDP echo
// ---------------------------------------------------------------------------

/// Deterministic pseudo-random bytes (SplitMix64 over a counter), distinct
/// for each `seed`. The file server serves exactly these.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut state = seed.wrapping_mul(0xA24B_AED4_963E_E407) ^ 0x5851_F42D_4C95_7F2D;
    while out.len() < len {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `/slow/<n>` sends `content(0, n)` in chunks of this size ...
const SLOW_CHUNK: usize = 16 * 1024;
/// ... with this pause after each (about 160 KB/s).
const SLOW_PAUSE: Duration = Duration::from_millis(100);

/// The body of `/hello`.
pub const HELLO: &[u8] = b"hello from the openrelay test server\n";

/// The local servers, started once per test binary on their own runtime.
#[derive(Debug, Clone, Copy)]
pub struct Servers {
    /// The HTTP file server (127.0.0.1).
    pub http: SocketAddr,
    /// The UDP echo server (127.0.0.1, and ::1 on the same port if possible,
    /// so `localhost` reaches it whichever address it resolves to).
    pub udp: SocketAddr,
}

/// The local HTTP and UDP echo servers of this test binary.
///
/// HTTP paths: `/hello`; `/bytes/<n>` is `content(0, n)`; `/bytes/<n>/<seed>`
/// is `content(seed, n)`; `/slow/<n>` is `content(0, n)` sent at about
/// 160 KB/s. Responses carry Content-Length and close the
/// connection.
pub fn servers() -> Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    *SERVERS.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let (udp4, udp6) = bind_echo().await;
                let _ = tx.send(Servers {
                    http: http.local_addr().unwrap(),
                    udp: udp4.local_addr().unwrap(),
                });
                let mut echoes = vec![tokio::spawn(echo(udp4))];
                if let Some(udp6) = udp6 {
                    echoes.push(tokio::spawn(echo(udp6)));
                }
                serve_http_on(http).await;
            });
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("test servers did not start")
    })
}

async fn serve_http_on(listener: TcpListener) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve_http(tcp, peer));
    }
}

/// Starts another instance of the test HTTP server, on `ip` (any address of
/// 127.0.0.0/8 works on Linux without set-up), in the caller's runtime: a
/// destination that is its own site for per-site isolation.
pub async fn http_server_at(ip: Ipv4Addr) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_http_on(listener));
    addr
}

async fn bind_echo() -> (UdpSocket, Option<UdpSocket>) {
    for _ in 0..20 {
        let v4 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let port = v4.local_addr().unwrap().port();
        match UdpSocket::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)).await {
            Ok(v6) => return (v4, Some(v6)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(_) => return (v4, None), // no IPv6 loopback here
        }
    }
    (UdpSocket::bind("127.0.0.1:0").await.unwrap(), None)
}

async fn echo(socket: UdpSocket) {
    let mut buf = vec![0u8; 65_535];
    loop {
        if let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    }
}

fn route(target: &str, peer: SocketAddr) -> Option<Vec<u8>> {
    // A proxy may pass the absolute form on; accept it.
    let path = match target.strip_prefix("http://") {
        Some(rest) => &rest[rest.find('/')?..],
        None => target,
    };
    if path == "/hello" {
        return Some(HELLO.to_vec());
    }
    // Who connected: through the devnet, the egress relay's address.
    if path == "/ip" {
        return Some(peer.ip().to_string().into_bytes());
    }
    if let Some(len) = path.strip_prefix("/slow/") {
        let len: usize = len.parse().ok()?;
        return (len <= 1 << 30).then(|| content(0, len));
    }
    let mut parts = path.strip_prefix("/bytes/")?.split('/');
    let len: usize = parts.next()?.parse().ok()?;
    let seed: u64 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    (len <= 1 << 30).then(|| content(seed, len))
}

async fn serve_http(mut tcp: TcpStream, peer: SocketAddr) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let text = String::from_utf8_lossy(&head);
    let target = text.split_whitespace().nth(1).unwrap_or_default();
    let Some(body) = route(target, peer) else {
        let _ = tcp
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if tcp.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    if target.contains("/slow/") {
        // Paced by the server, so the bytes are still crossing the relays
        // seconds later (no proxy buffer can hold them all in advance).
        for chunk in body.chunks(SLOW_CHUNK) {
            if tcp.write_all(chunk).await.is_err() {
                return;
            }
            tokio::time::sleep(SLOW_PAUSE).await;
        }
    } else if tcp.write_all(&body).await.is_err() {
        return;
    }
    let _ = tcp.shutdown().await;
}

/// A TCP port on 127.0.0.1 that refuses connections: bound (so no other
/// socket can take it while the test runs) but not listening.
#[derive(Debug)]
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    /// The port.
    pub port: u16,
}

/// Reserves a [`ClosedPort`].
pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    ClosedPort {
        _socket: socket,
        port,
    }
}

/// Asserts two byte strings are equal without printing megabytes.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: body differs: got {} bytes, want {}; first difference at offset {first}",
            got.len(),
            want.len()
        );
    }
}

// ---------------------------------------------------------------------------
// curl
// ---------------------------------------------------------------------------

/// What a curl run produced.
#[derive(Debug)]
pub struct CurlRun {
    /// Its exit code; `None` if it had to be killed at the time limit.
    pub exit: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `curl <args>` with a time limit, killing it if it runs over.
pub fn run_curl(
    args: &[&str],
    limit: Duration,
) -> impl std::future::Future<Output = CurlRun> + Send + 'static {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    async move {
        let started = Instant::now();
        let child = tokio::process::Command::new(CURL)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot run curl");
        match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(output) => {
                let output = output.unwrap();
                CurlRun {
                    exit: output.status.code(),
                    stdout: output.stdout,
                    stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                    elapsed: started.elapsed(),
                }
            }
            Err(_) => CurlRun {
                exit: None,
                stdout: Vec::new(),
                stderr: format!("curl {args:?} killed after {limit:?}"),
                elapsed: started.elapsed(),
            },
        }
    }
}

/// One fetched URL.
pub struct Fetch {
    /// curl's exit code (`None`: killed at the time limit).
    pub exit: Option<i32>,
    /// The HTTP status (0 if none).
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// curl's error output.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl std::fmt::Debug for Fetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetch")
            .field("exit", &self.exit)
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .field("stderr", &self.stderr)
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

impl Fetch {
    /// Panics unless curl succeeded with HTTP 200.
    #[track_caller]
    pub fn assert_ok(&self, what: &str) {
        assert!(
            self.exit == Some(0) && self.status == 200,
            "{what}: curl exit {:?}, status {}, after {:?}, stderr: {}",
            self.exit,
            self.status,
            self.elapsed,
            self.stderr
        );
    }
}

/// Fetches `url` with curl and `proxy_args` (e.g. `["--socks5-hostname",
/// addr]`), within `limit`. `-i`/`-D` are the caller's business; the body is
/// what curl writes with `-o`.
pub fn fetch(
    proxy_args: &[&str],
    url: &str,
    limit: Duration,
) -> impl std::future::Future<Output = Fetch> + Send + 'static {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let mut args: Vec<String> = vec!["-sS".into(), "-o".into(), body.display().to_string()];
    args.extend(["-w".into(), "%{http_code}".into()]);
    args.extend(proxy_args.iter().map(|s| (*s).to_owned()));
    args.push(url.to_owned());
    async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_curl(&refs, limit).await;
        let status = String::from_utf8_lossy(&run.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let body = std::fs::read(&body).unwrap_or_default();
        drop(dir);
        Fetch {
            exit: run.exit,
            status,
            body,
            stderr: run.stderr,
            elapsed: run.elapsed,
        }
    }
}

// ---------------------------------------------------------------------------
// A SOCKS5 client (RFC 1928), for what curl cannot show: reply codes, UDP
// ---------------------------------------------------------------------------

/// Time allowed for any one SOCKS exchange.
pub const SOCKS_TIMEOUT: Duration = Duration::from_secs(20);

/// Reads until `parse` yields a message; panics on timeout or EOF.
async fn read_socks<T>(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    parse: impl Fn(&[u8]) -> Result<Option<(T, usize)>, socks5::Socks5Error>,
) -> T {
    let read = async {
        loop {
            if let Some((message, used)) = parse(buf).expect("malformed SOCKS reply") {
                buf.drain(..used);
                return message;
            }
            let mut chunk = [0u8; 512];
            let n = tcp.read(&mut chunk).await.expect("SOCKS read failed");
            assert!(n > 0, "the SOCKS server closed the connection mid-message");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(SOCKS_TIMEOUT, read)
        .await
        .expect("no SOCKS reply in time")
}

fn parse_method(buf: &[u8]) -> Result<Option<(u8, usize)>, socks5::Socks5Error> {
    match buf {
        [socks5::VERSION, method, ..] => Ok(Some((*method, 2))),
        [_, _, ..] => Err(socks5::Socks5Error::BadVersion),
        _ => Ok(None),
    }
}

/// Connects and negotiates "no authentication".
pub async fn socks_greet(socks: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(socks).await.unwrap();
    let mut out = Vec::new();
    socks5::encode_greeting(&[socks5::METHOD_NO_AUTH], &mut out);
    tcp.write_all(&out).await.unwrap();
    let method = read_socks(&mut tcp, &mut Vec::new(), parse_method).await;
    assert_eq!(method, socks5::METHOD_NO_AUTH);
    tcp
}

/// Sends one request on a greeted connection and reads the reply.
pub async fn socks_request(
    tcp: &mut TcpStream,
    command: socks5::Command,
    target: &Target,
) -> ServerReply {
    let mut out = Vec::new();
    socks5::encode_request(command, target, &mut out);
    tcp.write_all(&out).await.unwrap();
    read_socks(tcp, &mut Vec::new(), socks5::parse_reply).await
}

/// SOCKS5 CONNECT to `target`: the connection and the reply code.
pub async fn socks_connect(socks: SocketAddr, target: &Target) -> (TcpStream, u8) {
    let mut tcp = socks_greet(socks).await;
    let reply = socks_request(&mut tcp, socks5::Command::Connect, target).await;
    (tcp, reply.code)
}

/// Writes `bytes` raw and returns everything the server sends until it
/// closes the connection; panics if it does not close within `limit`.
pub async fn socks_raw(socks: SocketAddr, bytes: &[u8], limit: Duration) -> Vec<u8> {
    let mut tcp = TcpStream::connect(socks).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 512];
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the SOCKS server neither answered nor closed: got {got:?}"));
    got
}

/// A SOCKS5 UDP association: the control connection (kept open) and the
/// app's UDP socket.
#[derive(Debug)]
pub struct SocksUdp {
    _control: TcpStream,
    socket: UdpSocket,
    relay: SocketAddr,
}

impl SocksUdp {
    /// UDP ASSOCIATE through `socks`.
    pub async fn associate(socks: SocketAddr) -> SocksUdp {
        let mut control = socks_greet(socks).await;
        let any = Target::from_socket_addr(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
        let reply = socks_request(&mut control, socks5::Command::UdpAssociate, &any).await;
        assert_eq!(reply.code, 0, "UDP ASSOCIATE refused");
        let mut relay = reply.bound.socket_addr().expect("BND.ADDR is an IP");
        if relay.ip().is_unspecified() {
            relay.set_ip(socks.ip());
        }
        assert_ne!(relay.port(), 0, "BND.PORT of the association");
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        SocksUdp {
            _control: control,
            socket,
            relay,
        }
    }

    /// Sends `payload` to `target` through the association.
    pub async fn send(&self, target: &Target, payload: &[u8]) {
        let mut packet = Vec::with_capacity(payload.len() + 32);
        socks5::encode_udp_header(target, &mut packet);
        packet.extend_from_slice(payload);
        self.socket.send_to(&packet, self.relay).await.unwrap();
    }

    /// The next datagram from the association, as (source, payload), or
    /// `None` after `limit`.
    pub async fn recv(&self, limit: Duration) -> Option<(Target, Vec<u8>)> {
        let mut buf = vec![0u8; 65_535];
        let (n, from) = tokio::time::timeout(limit, self.socket.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        assert_eq!(from, self.relay, "datagram from the association's address");
        let packet = socks5::parse_udp_packet(&buf[..n]).expect("a SOCKS UDP header");
        assert_eq!(packet.frag, 0, "FRAG");
        Some((packet.target, packet.payload.to_vec()))
    }
}

// ---------------------------------------------------------------------------
// Log inspection
// ---------------------------------------------------------------------------

/// Where `number` occurs in `text` as a whole number (a run of digits not
/// part of a longer run) in a position where it would be a port: after `:`
/// (as in `host:port` or `port: 443`), after a field whose name contains
/// `port` (`port=443`, `dst_port=443`), or as a bare token (between
/// whitespace, quotes, brackets or commas). `counter=443`-style values of
/// other fields (byte counts) are not reported: they are numbers, not ports.
/// Returns the offending lines.
pub fn port_mentions(text: &str, number: u16) -> Vec<String> {
    let needle = number.to_string();
    let mut hits = Vec::new();
    for line in text.lines() {
        let bytes = line.as_bytes();
        let mut from = 0;
        while let Some(i) = line[from..].find(&needle).map(|i| i + from) {
            let end = i + needle.len();
            from = end;
            let digit_before = i > 0 && bytes[i - 1].is_ascii_digit();
            let digit_after = bytes.get(end).is_some_and(u8::is_ascii_digit);
            if digit_before || digit_after {
                continue;
            }
            let raw_prev = line[..i].chars().last();
            let before = line[..i].trim_end_matches(' ');
            let delimiter_after = bytes.get(end).is_none_or(|b| b" \t\"')]},;/.".contains(b));
            let is_port = if before.ends_with(':') {
                true
            } else if raw_prev == Some('=') {
                let key = before[..before.len() - 1]
                    .rsplit(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                    .next()
                    .unwrap_or_default();
                key.to_ascii_lowercase().contains("port")
            } else {
                raw_prev.is_none_or(|c| " \t\"'([{,".contains(c)) && delimiter_after
            };
            if is_port {
                hits.push(line.to_owned());
                break;
            }
        }
    }
    hits
}

/// The lines of `text` containing `needle`.
pub fn lines_with(text: &str, needle: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// The level of a `tracing_subscriber::fmt` line (`2026-..Z  INFO target: ..`).
pub fn level_of(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let stamp = words.next()?;
    if !stamp.ends_with('Z') || !stamp.contains('T') {
        return None;
    }
    words
        .next()
        .filter(|l| ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(l))
}

/// Splits a log into events with their level; a line without a timestamp
/// continues the previous event.
pub fn events(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        match level_of(line) {
            Some(level) => out.push((level.to_owned(), line.to_owned())),
            None => match out.last_mut() {
                Some((_, event)) => {
                    event.push('\n');
                    event.push_str(line);
                }
                None => out.push(("UNKNOWN".to_owned(), line.to_owned())),
            },
        }
    }
    out
}
