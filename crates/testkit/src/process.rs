//! `openrelay` processes: where the binary is, starting one and waiting
//! for its `ready` line ([`Proc`]), running one to completion
//! ([`run_openrelay`], [`account`]), signals to a process or its group,
//! and what a failing test prints of a process's standard error.
//!
//! Every process is started in its own process group and owned by a guard
//! whose `Drop` kills the whole group, so a failing test leaves nothing
//! running.

#![cfg(feature = "harness")]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The `openrelay` binary under test; use it where a path or a program
/// name goes (`Command::new(BIN)`, `Path::new(&BIN)`).
///
/// Where it is: `OPENRELAY_BIN` if set (e.g. to test a release build);
/// else `CARGO_BIN_EXE_openrelay`, which cargo sets when it runs the
/// binary crate's (`crates/cli`) tests; else the `openrelay` beside the
/// test executable's `deps/` directory, where cargo puts it when it builds
/// those tests (a test binary run by hand, or again inside a network
/// namespace).
pub const BIN: OpenrelayBin = OpenrelayBin;

/// See [`BIN`].
#[derive(Debug, Clone, Copy)]
pub struct OpenrelayBin;

impl OpenrelayBin {
    /// The binary's path; panics if there is none.
    pub fn path(self) -> &'static Path {
        static PATH: OnceLock<PathBuf> = OnceLock::new();
        PATH.get_or_init(|| {
            let path = ["OPENRELAY_BIN", "CARGO_BIN_EXE_openrelay"]
                .into_iter()
                .find_map(std::env::var_os)
                .map(PathBuf::from)
                .or_else(|| {
                    let exe = std::env::current_exe().ok()?;
                    // target/debug/deps/<test> -> target/debug/openrelay
                    Some(exe.parent()?.parent()?.join("openrelay"))
                })
                .expect("no path to the openrelay binary");
            assert!(
                path.is_file(),
                "no openrelay binary at {} (set OPENRELAY_BIN, or run the tests with cargo)",
                path.display()
            );
            path
        })
    }
}

impl AsRef<OsStr> for OpenrelayBin {
    fn as_ref(&self) -> &OsStr {
        self.path().as_os_str()
    }
}

impl AsRef<Path> for OpenrelayBin {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

/// How long a devnet (or a component) may take to print its `ready` line: a
/// devnet whose client requires attested relays waits for the release vote
/// (about a minute on its chain) before it starts the client.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(150);

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
pub(crate) fn first_line(
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

/// The last `lines` lines of `text` (without TRACE lines if `skip_trace`).
pub(crate) fn tail(text: &str, lines: usize, skip_trace: bool) -> String {
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

/// The value of `key=` in a `key=value ...` line.
pub(crate) fn ready_field(line: &str, key: &str) -> Option<String> {
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
    run_openrelay_with_env(args, &[], limit)
}

/// [`run_openrelay`] with `env` added to (or replacing in) its environment.
pub fn run_openrelay_with_env(args: &[&str], env: &[(&str, &Path)], limit: Duration) -> Finished {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
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
