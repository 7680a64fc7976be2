//! What is attacked: a relay (ingress or egress), the registry or the token
//! issuer, by address and pinned key, from its config file, and optionally
//! started here (so its pid is known and its descriptor limit raised).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use openrelay_config::{IssuerConfig, RegistryConfig, RelayConfig};
use openrelay_transport::endpoint::{INNER_MTU, OUTER_MTU, TUNNELLED_MTU};
use openrelay_transport::identity::{Identity, KEY_FILE};
use openrelay_types::KeyPin;

/// Which kind of server the target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ingress relay (connect-udp to egress relays).
    Ingress,
    /// An egress relay (CONNECT and connect-udp to destinations).
    Egress,
    /// The relay registry.
    Registry,
    /// The token issuer.
    Issuer,
}

impl Role {
    /// The `openrelay` subcommand that runs it.
    pub fn subcommand(self) -> &'static str {
        match self {
            Role::Ingress | Role::Egress => "relay",
            Role::Registry => "registry",
            Role::Issuer => "issuer",
        }
    }

    /// The packet size its own clients use: the ingress takes outer
    /// connections, the egress inner ones, the registry and issuer
    /// connections nested in a flow.
    pub fn mtu(self) -> u16 {
        match self {
            Role::Ingress => OUTER_MTU,
            Role::Egress => INNER_MTU,
            Role::Registry | Role::Issuer => TUNNELLED_MTU,
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingress => "ingress",
            Role::Egress => "egress",
            Role::Registry => "registry",
            Role::Issuer => "issuer",
        }
    }
}

/// A server to attack.
#[derive(Debug, Clone)]
pub struct Target {
    /// What it is.
    pub role: Role,
    /// Its QUIC address.
    pub addr: SocketAddr,
    /// Its key, which its handshake must prove.
    pub key: KeyPin,
    /// For an ingress: the egress relays it forwards to (from its config).
    pub egress_relays: Vec<SocketAddr>,
}

/// Why a target could not be described or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not TOML, or not a config of a known kind.
    #[error("{path}: not a relay, registry or issuer config")]
    UnknownConfig {
        /// The file.
        path: PathBuf,
    },
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] openrelay_config::ConfigError),
    /// The key file is missing: the component never ran or was not exported.
    #[error("no key file in {0} (start the component once, or export the devnet)")]
    NoKey(PathBuf),
    /// The key file is unusable.
    #[error("key: {0}")]
    Key(#[from] openrelay_transport::identity::IdentityError),
    /// The process could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The process did not print its ready line in time.
    #[error("the target did not become ready: {0}")]
    NotReady(String),
}

/// The key of the component whose state directory is `state_dir`, never
/// creating one.
pub fn key_in(state_dir: &Path) -> Result<KeyPin, TargetError> {
    if !state_dir.join(KEY_FILE).exists() {
        return Err(TargetError::NoKey(state_dir.to_owned()));
    }
    Ok(Identity::load_or_create(state_dir)?.pin())
}

impl Target {
    /// The target a config file describes (a relay, registry or issuer
    /// config as `openrelay devnet --export` writes them); its key is read
    /// from its state directory.
    pub fn from_config(path: &Path) -> Result<Self, TargetError> {
        let text = std::fs::read_to_string(path).map_err(|source| TargetError::Read {
            path: path.to_owned(),
            source,
        })?;
        let table: toml::Table = text.parse().map_err(|_| TargetError::UnknownConfig {
            path: path.to_owned(),
        })?;
        if table.contains_key("role") {
            let config = RelayConfig::load(path)?;
            let (role, egress_relays) = match &config {
                RelayConfig::Ingress(ingress) => {
                    (Role::Ingress, ingress.role.egress_relays.clone())
                }
                RelayConfig::Egress(_) => (Role::Egress, Vec::new()),
            };
            let common = config.common();
            return Ok(Target {
                role,
                addr: common.listen,
                key: key_in(&common.state_dir)?,
                egress_relays,
            });
        }
        let (role, addr, state_dir) = if table.contains_key("validators") {
            let config = RegistryConfig::load(path)?;
            (Role::Registry, config.listen, config.state_dir)
        } else if table.contains_key("issuer_name") {
            let config = IssuerConfig::load(path)?;
            (Role::Issuer, config.listen, config.state_dir)
        } else {
            return Err(TargetError::UnknownConfig {
                path: path.to_owned(),
            });
        };
        Ok(Target {
            role,
            addr,
            key: key_in(&state_dir)?,
            egress_relays: Vec::new(),
        })
    }
}

/// How long a started target may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A target process started by the harness, killed when dropped.
#[derive(Debug)]
pub struct Started {
    child: Child,
}

impl Started {
    /// Runs `openrelay <subcommand> --config <config> --exit-with-stdin`
    /// with its open-file limit raised to `nofile` (through `prlimit`, when
    /// installed), its log to `stderr`, and waits for its ready line.
    pub fn start(
        openrelay: &Path,
        role: Role,
        config: &Path,
        nofile: Option<u64>,
        stderr: Stdio,
    ) -> Result<Self, TargetError> {
        let prlimit = Path::new("/usr/bin/prlimit");
        let mut command = match nofile {
            Some(n) if prlimit.exists() => {
                let mut command = Command::new(prlimit);
                command
                    .arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(openrelay);
                command
            }
            _ => Command::new(openrelay),
        };
        let mut child = command
            .arg(role.subcommand())
            .arg("--config")
            .arg(config)
            .arg("--exit-with-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|source| TargetError::Spawn {
                program: openrelay.to_owned(),
                source,
            })?;
        let Some(stdout) = child.stdout.take() else {
            return Err(TargetError::NotReady("no standard output".into()));
        };
        let started = Started { child };
        // The first line says ready; later ones are drained so the child
        // never blocks on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line);
                }
            }
        });
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) if line.starts_with("ready") => Ok(started),
            Ok(line) => Err(TargetError::NotReady(line)),
            Err(_) => Err(TargetError::NotReady("no ready line".into())),
        }
    }

    /// Its pid (prlimit execs the target, so this is the target's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hard limit on open files of this process (`/proc/self/limits`), to
/// give the targets it starts.
pub fn own_nofile_hard_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(4)?.parse().ok()
}
