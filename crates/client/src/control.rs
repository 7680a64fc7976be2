//! The client's local control socket, which `openrelay status` talks to.
//!
//! A Unix socket in the client's state directory (created 0700, so only its
//! owner can connect). The protocol is one request line (`status`) and one
//! JSON line in reply, so scripts and other tools can use it too. It reports
//! relay names, operators and counts, never destinations.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openrelay_types::error::{ErrorKind, HasKind};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tracing::debug;

/// The socket's file name inside the state directory.
pub const SOCKET_FILE: &str = "control.sock";

/// Longest request line accepted.
const MAX_REQUEST: usize = 256;
/// Time a caller has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether traffic can flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathState {
    /// A path is up.
    Connected,
    /// A path is being built.
    Connecting,
    /// No path, and none being built (the next flow will try).
    Disconnected,
}

/// One relay of the current path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayStatus {
    /// The relay's name.
    pub name: String,
    /// Its operator.
    pub operator: String,
    /// Its QUIC address.
    pub address: SocketAddr,
    /// Its country (ISO 3166-1 alpha-2), when the relay list says.
    pub country: Option<String>,
    /// Its city, when the relay list says.
    pub city: Option<String>,
    /// Its latest measured bandwidth, bits per second, when the directory
    /// carries one (issue 14).
    #[serde(default)]
    pub measured_bps: Option<u64>,
    /// Seconds since the measurement epoch of `measured_bps` ended.
    #[serde(default)]
    pub measured_age_secs: Option<u64>,
    /// Its TEE platform, release and the client's verdict (issue 15).
    #[serde(default)]
    pub attestation: Option<crate::attestation::AttestationSummary>,
}

/// What `openrelay status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Whether traffic can flow.
    pub state: PathState,
    /// The ingress of the path new flows last took.
    pub ingress: Option<RelayStatus>,
    /// The egress of that path.
    pub egress: Option<RelayStatus>,
    /// Seconds since that path was built.
    pub path_age_secs: Option<u64>,
    /// Paths up: those new flows use (one, or one per site with per-site
    /// isolation) and rotated-out ones still carrying flows.
    pub live_paths: usize,
    /// Flows open on all paths.
    pub open_flows: u64,
    /// Tokens in the wallet (access and payment), with an `[account]`.
    #[serde(default)]
    pub token_balance: Option<usize>,
    /// Seconds since the relay directory was issued (None: the relay list
    /// comes from the config file).
    pub directory_age_secs: Option<u64>,
    /// While no path is up: why the last attempt to build one failed.
    #[serde(default)]
    pub no_path: Option<String>,
    /// While building is backing off: seconds until the next attempt.
    #[serde(default)]
    pub next_attempt_secs: Option<u64>,
}

/// Why the control socket could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// No client answers on the socket.
    #[error(
        "no running client found at {path} (is `openrelay client` running with this state directory?)"
    )]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// Why connecting failed.
        source: std::io::Error,
    },
    /// Another client already serves this state directory.
    #[error("another client is already running with the control socket {0}")]
    InUse(PathBuf),
    /// Reading or writing the socket failed.
    #[error("control socket I/O")]
    Io(#[from] std::io::Error),
    /// The client sent no reply in time.
    #[error("no reply from the client")]
    NoReply,
    /// The reply was not a status.
    #[error("unexpected reply from the client: {source}: {reply}")]
    BadReply {
        /// The reply line as received.
        reply: String,
        /// Why it is not a status.
        source: serde_json::Error,
    },
    /// A caller sent no request line in time.
    #[error("no request in time")]
    RequestTimedOut,
    /// The status could not be written as JSON.
    #[error("cannot write the status: {0}")]
    Encode(#[source] serde_json::Error),
}

impl HasKind for ControlError {
    fn kind(&self) -> ErrorKind {
        match self {
            ControlError::NotRunning { .. } | ControlError::NoReply => ErrorKind::Unreachable,
            ControlError::InUse(_) => ErrorKind::Config,
            ControlError::Io(_) => ErrorKind::Local,
            ControlError::BadReply { .. } | ControlError::RequestTimedOut => ErrorKind::BadInput,
            ControlError::Encode(_) => ErrorKind::Internal,
        }
    }
}

/// The socket path for a state directory.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_FILE)
}

/// Binds the control socket, replacing a stale one left by a client that
/// died, but refusing to steal one a live client still serves.
pub async fn bind(state_dir: &Path) -> Result<UnixListener, ControlError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)?;
    let path = socket_path(state_dir);
    if path.exists() {
        if UnixStream::connect(&path).await.is_ok() {
            return Err(ControlError::InUse(path));
        }
        std::fs::remove_file(&path)?;
    }
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Answers status requests until the listener fails.
pub async fn serve(listener: UnixListener, status: Arc<dyn Fn() -> Status + Send + Sync>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let status = Arc::clone(&status);
        tokio::spawn(async move {
            if let Err(e) = answer(stream, status.as_ref()).await {
                debug!(error = %e, "control request failed");
            }
        });
    }
}

async fn answer(
    stream: UnixStream,
    status: &(dyn Fn() -> Status + Send + Sync),
) -> Result<(), ControlError> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| ControlError::RequestTimedOut)??;
    let reply = match line.trim() {
        "status" => serde_json::to_string(&status()).map_err(ControlError::Encode)?,
        other => {
            serde_json::json!({ "error": format!("unknown request {other:?}; try \"status\"") })
                .to_string()
        }
    };
    write.write_all(reply.as_bytes()).await?;
    write.write_all(b"\n").await?;
    Ok(())
}

/// Asks the client running with `state_dir` for its status.
pub async fn query(state_dir: &Path) -> Result<Status, ControlError> {
    let path = socket_path(state_dir);
    let stream = UnixStream::connect(&path)
        .await
        .map_err(|source| ControlError::NotRunning { path, source })?;
    let (read, mut write) = stream.into_split();
    write.write_all(b"status\n").await?;
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(1 << 20));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| ControlError::NoReply)??;
    serde_json::from_str(line.trim()).map_err(|source| ControlError::BadReply {
        reply: line.trim().to_owned(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Status {
        Status {
            state: PathState::Connected,
            ingress: Some(RelayStatus {
                name: "ingress-1".into(),
                operator: "operator-1".into(),
                address: "192.0.2.1:4433".parse().unwrap(),
                country: Some("NL".into()),
                city: None,
                measured_bps: Some(80_000_000),
                measured_age_secs: Some(95),
                attestation: Some(crate::attestation::AttestationSummary {
                    platform: Some("sev-snp".into()),
                    release: Some("ab".repeat(32)),
                    verdict: "attested".into(),
                }),
            }),
            egress: None,
            path_age_secs: Some(3),
            live_paths: 1,
            open_flows: 2,
            token_balance: Some(12),
            directory_age_secs: None,
            no_path: None,
            next_attempt_secs: None,
        }
    }

    #[tokio::test]
    async fn a_status_request_gets_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let listener = bind(dir.path()).await.unwrap();
        let mode = std::fs::metadata(socket_path(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        tokio::spawn(serve(listener, Arc::new(sample)));
        assert_eq!(query(dir.path()).await.unwrap(), sample());
        // A second client may not take over a live socket.
        assert!(matches!(
            bind(dir.path()).await,
            Err(ControlError::InUse(_))
        ));
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_no_client_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(bind(dir.path()).await.unwrap());
        assert!(matches!(
            query(dir.path()).await,
            Err(ControlError::NotRunning { .. })
        ));
        assert!(bind(dir.path()).await.is_ok(), "stale socket replaced");
    }

    #[tokio::test]
    async fn unknown_requests_get_an_error_reply() {
        let dir = tempfile::tempdir().unwrap();
        tokio::spawn(serve(bind(dir.path()).await.unwrap(), Arc::new(sample)));
        let mut stream = UnixStream::connect(socket_path(dir.path())).await.unwrap();
        stream.write_all(b"reboot\n").await.unwrap();
        let mut reply = String::new();
        BufReader::new(stream).read_line(&mut reply).await.unwrap();
        assert!(reply.contains("unknown request"), "{reply}");
    }

    /// A reply that is not a status is a typed error carrying the reply,
    /// and a peer's problem, not the caller's.
    #[tokio::test]
    async fn a_reply_that_is_not_a_status_is_a_bad_reply() {
        let dir = tempfile::tempdir().unwrap();
        let listener = bind(dir.path()).await.unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut line = String::new();
            let (read, mut write) = stream.split();
            BufReader::new(read).read_line(&mut line).await.unwrap();
            write.write_all(b"{\"state\": 7}\n").await.unwrap();
        });
        let err = query(dir.path()).await.unwrap_err();
        assert!(
            matches!(&err, ControlError::BadReply { reply, .. } if reply == "{\"state\": 7}"),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::BadInput);
        assert!(err.to_string().contains("{\"state\": 7}"), "{err}");
    }
}
