//! curl as the app: [`fetch`] a URL through a proxy, [`run_curl`] with any
//! arguments, both with a time limit.

#![cfg(feature = "harness")]

use std::process::Stdio;
use std::time::{Duration, Instant};

/// Where curl lives (CI installs it).
pub const CURL: &str = "/usr/bin/curl";

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
