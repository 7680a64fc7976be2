//! A local EVM node (anvil, from npm `@foundry-rs/anvil`) for the devnet and
//! tests: started on a free loopback port, funded accounts on demand,
//! killed when dropped.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How to install anvil, for messages.
pub const INSTALL_HINT: &str =
    "install it with `npm ci --prefix contracts` (or put `anvil` on PATH, or set OPENRELAY_ANVIL)";

/// Why anvil could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnvilError {
    /// No anvil binary was found.
    #[error("anvil is not installed: {INSTALL_HINT}")]
    NotInstalled,
    /// The binary could not be run.
    #[error("cannot run {path}: {source}")]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its state directory could not be created.
    #[error("cannot create a state directory for anvil: {0}")]
    StateCache(std::io::Error),
    /// It did not say where it listens within the time allowed.
    #[error("anvil did not start listening within {0:?}")]
    NotReady(Duration),
    /// A JSON-RPC call to it failed.
    #[error("anvil RPC: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
}

impl openrelay_types::HasKind for AnvilError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        use openrelay_types::ErrorKind;
        match self {
            AnvilError::NotInstalled => ErrorKind::Config,
            AnvilError::Spawn { .. } | AnvilError::StateCache(_) => ErrorKind::Local,
            AnvilError::NotReady(_) | AnvilError::Rpc(_) => ErrorKind::Unreachable,
        }
    }
}

/// Where the anvil binary is: `OPENRELAY_ANVIL`, else `anvil` on PATH,
/// else the one `npm ci --prefix contracts` installs in the checkout our
/// executable was built in (found by walking up from the executable, which
/// lives in the checkout's `target/`; not from a compile-time path, which
/// would put the build directory into release binaries and make them differ
/// between checkouts: docs/releases.md): the platform package's binary
/// itself, not npm's `.bin/anvil` node wrapper, which forwards SIGTERM but
/// not the SIGKILL of `kill_on_drop`, so the real anvil would outlive us.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("OPENRELAY_ANVIL") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("anvil"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let exe = std::env::current_exe().ok()?;
        let packages = exe
            .ancestors()
            .map(|dir| dir.join("contracts/node_modules/@foundry-rs"))
            .find(|candidate| candidate.is_dir())?;
        std::fs::read_dir(packages)
            .ok()?
            .filter_map(Result::ok)
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("anvil-"))
            .map(|entry| entry.path().join("bin/anvil"))
            .find(|candidate| candidate.is_file())
    })
}

/// A running anvil, killed on drop.
#[derive(Debug)]
pub struct Anvil {
    // Dropped first: killed before its state directory is removed.
    child: Child,
    endpoint: String,
    /// Where anvil persists historical states (`--cache-path`), removed on
    /// drop. Its default, `~/.foundry/anvil/tmp`, is cleaned only on a
    /// graceful exit, never after `kill_on_drop`'s SIGKILL: every devnet
    /// and chain test left up to gigabytes there.
    _state_cache: tempfile::TempDir,
}

impl Anvil {
    /// Starts anvil on a free port of 127.0.0.1 with chain id `chain_id`,
    /// mining a block every `block_time` (or on every transaction if
    /// `None`).
    pub async fn start(chain_id: u64, block_time: Option<Duration>) -> Result<Anvil, AnvilError> {
        let path = binary().ok_or(AnvilError::NotInstalled)?;
        let state_cache = tempfile::Builder::new()
            .prefix("openrelay-anvil-")
            .tempdir()
            .map_err(AnvilError::StateCache)?;
        let mut command = Command::new(&path);
        command
            .args(["--host", "127.0.0.1", "--port", "0", "--accounts", "0"])
            .arg("--cache-path")
            .arg(state_cache.path())
            .args(["--chain-id", &chain_id.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        if let Some(every) = block_time {
            command.args(["--block-time", &format!("{}", every.as_secs_f64())]);
        }
        let mut child = command
            .spawn()
            .map_err(|source| AnvilError::Spawn { path, source })?;
        let stdout = child
            .stdout
            .take()
            .ok_or(AnvilError::NotReady(Duration::ZERO))?;
        const READY_WITHIN: Duration = Duration::from_secs(30);
        let listening = tokio::time::timeout(READY_WITHIN, async {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(addr) = line.trim().strip_prefix("Listening on ") {
                    let addr = addr.to_owned();
                    // Keep draining its output so it never blocks on a full pipe.
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    return Some(addr);
                }
            }
            None
        })
        .await;
        match listening {
            Ok(Some(addr)) => Ok(Anvil {
                child,
                endpoint: format!("http://{addr}"),
                _state_cache: state_cache,
            }),
            _ => Err(AnvilError::NotReady(READY_WITHIN)),
        }
    }

    /// Its JSON-RPC URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sets `account`'s balance to `wei` (anvil's `anvil_setBalance`).
    pub async fn fund(&self, account: Address, wei: U256) -> Result<(), AnvilError> {
        let provider = ProviderBuilder::new().connect_http(self.url());
        let _: () = provider
            .raw_request("anvil_setBalance".into(), (account, wei))
            .await?;
        Ok(())
    }

    /// Moves the chain's clock `seconds` forward and mines a block there
    /// (anvil's `evm_increaseTime`, then `evm_mine`).
    pub async fn advance(&self, seconds: u64) -> Result<(), AnvilError> {
        let provider = ProviderBuilder::new().connect_http(self.url());
        let _: serde_json::Value = provider
            .raw_request("evm_increaseTime".into(), (seconds,))
            .await?;
        let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await?;
        Ok(())
    }

    fn url(&self) -> alloy::transports::http::reqwest::Url {
        // Made from a socket address printed by anvil: always a valid URL.
        self.endpoint
            .parse()
            .unwrap_or_else(|_| unreachable!("anvil endpoint {}", self.endpoint))
    }
}
