//! Runs devnet components as child processes and stops them together.
//!
//! Each child gets a pipe as standard input and exits when it closes
//! (`--exit-with-stdin`), so children never outlive the devnet, even when the
//! devnet itself is killed. A child reports readiness with one `ready ...`
//! line on standard output.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use openrelay_types::{ErrorKind, HasKind};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tracing::{info, warn};

/// Time a relay has to report readiness.
const RELAY_READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Time the client has to build its first path.
const CLIENT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Time children get to exit after their stdin closes.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// One process of the devnet.
#[derive(Debug, Clone)]
pub struct Component {
    /// `ingress-1`, `client`, ...
    pub name: String,
    /// `relay` or `client`.
    pub subcommand: &'static str,
    /// Its config file.
    pub config: PathBuf,
    /// Run it in this network namespace (`ip netns exec`).
    pub netns: Option<String>,
}

/// Why the devnet could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuperviseError {
    /// A component could not be started.
    #[error("cannot start {name}")]
    Spawn {
        /// The component.
        name: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A component exited or stayed silent before it was ready.
    #[error("{name} did not become ready: {reason}")]
    NotReady {
        /// The component.
        name: String,
        /// What happened.
        reason: NotReady,
    },
    /// Preparing the client (e.g. its account) failed.
    #[error("{name} could not be prepared: {source}")]
    Preparation {
        /// The component.
        name: String,
        /// What failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The client exited while the devnet was running.
    #[error("the client exited unexpectedly ({})", status_text(.0))]
    ClientExited(Option<std::process::ExitStatus>),
}

impl HasKind for SuperviseError {
    fn kind(&self) -> ErrorKind {
        match self {
            SuperviseError::Spawn { .. } => ErrorKind::Local,
            SuperviseError::NotReady { .. }
            | SuperviseError::Preparation { .. }
            | SuperviseError::ClientExited(_) => ErrorKind::Internal,
        }
    }
}

/// Why a component did not become ready.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotReady {
    /// Its standard output could not be read.
    #[error("no stdout")]
    NoStdout,
    /// Its first line was not the ready line.
    #[error("unexpected output {0:?}")]
    UnexpectedOutput(String),
    /// It exited first.
    #[error("exited ({}); see its log", status_text(.0))]
    Exited(Option<std::process::ExitStatus>),
    /// It said nothing in time.
    #[error("no ready line within {0:?}")]
    Silent(Duration),
}

/// An exit status as the shell says it (empty if unknown).
fn status_text(status: &Option<std::process::ExitStatus>) -> String {
    status.map(|s| s.to_string()).unwrap_or_default()
}

struct Running {
    name: String,
    child: Child,
    // Held apart from `child`: `Child::wait` closes a stdin it still owns,
    // which would tell the child to exit.
    stdin: Option<tokio::process::ChildStdin>,
}

async fn start(
    exe: &Path,
    component: &Component,
    limit: Duration,
) -> Result<(Running, String), SuperviseError> {
    let mut command = match &component.netns {
        Some(name) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", name]).arg(exe);
            command
        }
        None => Command::new(exe),
    };
    let mut child = command
        .arg(component.subcommand)
        .arg("--config")
        .arg(&component.config)
        .arg("--exit-with-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SuperviseError::Spawn {
            name: component.name.clone(),
            source,
        })?;
    let not_ready = |reason: NotReady| SuperviseError::NotReady {
        name: component.name.clone(),
        reason,
    };
    let stdin = child.stdin.take();
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| not_ready(NotReady::NoStdout))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = match tokio::time::timeout(limit, lines.next_line()).await {
        Ok(Ok(Some(line))) if line.starts_with("ready") => line,
        Ok(Ok(Some(line))) => return Err(not_ready(NotReady::UnexpectedOutput(line))),
        Ok(Ok(None)) | Ok(Err(_)) => {
            return Err(not_ready(NotReady::Exited(child.wait().await.ok())));
        }
        Err(_) => return Err(not_ready(NotReady::Silent(limit))),
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((
        Running {
            name: component.name.clone(),
            child,
            stdin,
        },
        line,
    ))
}

async fn stop_all(running: &mut Vec<Running>) {
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    // Closing stdin asks a child to shut down cleanly. The last one started
    // (the client) goes first, so it does not watch its relays vanish and
    // log failovers on the way out.
    if let Some(last) = running.last_mut() {
        drop(last.stdin.take());
        let _ = tokio::time::timeout_at(deadline, last.child.wait()).await;
    }
    for r in running.iter_mut() {
        drop(r.stdin.take());
    }
    for r in running.iter_mut() {
        if tokio::time::timeout_at(deadline, r.child.wait())
            .await
            .is_err()
        {
            warn!(component = %r.name, "did not stop in time; killing it");
            let _ = r.child.kill().await;
        }
    }
    running.clear();
}

/// Starts `relays`, then runs `prepare_client` (e.g. creating the client's
/// account at the issuer started among them), then starts `client`; calls
/// `on_ready` with the client's ready
/// line and with each component's pid; runs until `shutdown` resolves or the
/// client exits (with `outlive_client`, only `shutdown` ends it: a client in
/// its own namespace is killed by leak tests, which then check that its kill
/// switch holds). Relays that die are left dead (the client routes around
/// them); that is what failover tests exercise.
pub(crate) async fn run(
    exe: &Path,
    relays: &[Component],
    client: &Component,
    outlive_client: bool,
    prepare_client: impl Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
    on_ready: impl FnOnce(&str, &[(String, u32)]),
    shutdown: impl Future<Output = ()>,
) -> Result<(), SuperviseError> {
    let mut running = Vec::new();
    let started = async {
        for relay in relays {
            let (child, _) = start(exe, relay, RELAY_READY_TIMEOUT).await?;
            running.push(child);
        }
        prepare_client
            .await
            .map_err(|source| SuperviseError::Preparation {
                name: client.name.clone(),
                source,
            })?;
        let (child, line) = start(exe, client, CLIENT_READY_TIMEOUT).await?;
        running.push(child);
        Ok::<String, SuperviseError>(line)
    };
    tokio::pin!(shutdown);
    let line = tokio::select! {
        line = started => line,
        () = &mut shutdown => {
            stop_all(&mut running).await;
            return Ok(());
        }
    };
    let line = match line {
        Ok(line) => line,
        Err(e) => {
            stop_all(&mut running).await;
            return Err(e);
        }
    };
    let pids: Vec<(String, u32)> = running
        .iter()
        .filter_map(|r| r.child.id().map(|pid| (r.name.clone(), pid)))
        .collect();
    on_ready(&line, &pids);
    info!("devnet running");
    let client_exit = async {
        let status = match running.last_mut() {
            Some(client) => client.child.wait().await.ok(),
            None => std::future::pending().await,
        };
        if outlive_client {
            warn!(status = %status_text(&status), "the client exited; the devnet keeps running");
            return std::future::pending().await;
        }
        status
    };
    let result = tokio::select! {
        status = client_exit => Err(SuperviseError::ClientExited(status)),
        () = &mut shutdown => Ok(()),
    };
    stop_all(&mut running).await;
    result
}
