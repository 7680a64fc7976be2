//! `openrelay down`: stops the VPN's client and undoes every system change
//! it recorded (also after the client died).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use openrelay_config::ClientConfig;

use crate::cmd::up::{running_client, terminate};

/// Time `down` gives the client to undo its changes after SIGTERM.
const DOWN_GRACE: Duration = Duration::from_secs(10);

/// Flags of `openrelay down`.
#[derive(Debug, clap::Args)]
pub(crate) struct DownArgs {
    /// The client's state directory.
    #[arg(long, conflicts_with = "config")]
    state_dir: Option<PathBuf>,
    /// The client's config file (its state directory is used).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Find the target, undo.
pub(crate) fn run(args: DownArgs) -> anyhow::Result<()> {
    undo(&down_target(args.state_dir, args.config)?)
}

/// What `openrelay down` works on.
#[derive(Debug)]
struct DownTarget {
    /// The client's state directory.
    state_dir: PathBuf,
    /// The resolver file its config points at the tunnel, if the config was
    /// given (undoing restores only this one and /etc/resolv.conf).
    resolver_file: Option<PathBuf>,
}

/// `openrelay down`: stops the VPN's client (SIGTERM; it undoes its own
/// changes), then undoes whatever the journal still holds (all of it when
/// the client had died), lifting the kill switch last.
fn undo(target: &DownTarget) -> anyhow::Result<()> {
    let state_dir = target.state_dir.as_path();
    if let Some(pid) = running_client(state_dir) {
        terminate(pid);
        let deadline = Instant::now() + DOWN_GRACE;
        while running_client(state_dir) == Some(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if running_client(state_dir) == Some(pid) {
            bail!("the client (pid {pid}) did not stop within {DOWN_GRACE:?}");
        }
    }
    let undone =
        openrelay_tun::recover(state_dir, target.resolver_file.as_deref()).with_context(|| {
            format!(
                "cannot undo the changes recorded in {}",
                state_dir.display()
            )
        })?;
    let _ = std::fs::remove_file(state_dir.join(openrelay_tun::PID_FILE));
    println!("down: {undone} leftover system changes undone");
    Ok(())
}

/// What `down` works on: the state directory given or the config's, and
/// the config's resolver file if the config is given.
fn down_target(state_dir: Option<PathBuf>, config: Option<PathBuf>) -> anyhow::Result<DownTarget> {
    let config = config.map(|path| ClientConfig::load(&path)).transpose()?;
    let resolver_file = config
        .as_ref()
        .map(|c| PathBuf::from(&c.tun.dns.resolv_conf))
        .filter(|path| !path.as_os_str().is_empty());
    let state_dir = match (state_dir, config) {
        (Some(dir), _) => dir,
        (None, Some(config)) => config.state_dir,
        (None, None) => bail!("give --state-dir DIR or --config FILE"),
    };
    Ok(DownTarget {
        state_dir,
        resolver_file,
    })
}
