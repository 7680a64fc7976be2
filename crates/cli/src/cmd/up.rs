//! `openrelay up`: the full-device VPN, as `openrelay client --tun` in the
//! background.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use openrelay_config::ClientConfig;

/// Time `up` waits for the client's ready line.
const UP_TIMEOUT: Duration = Duration::from_secs(45);
/// Where the background client's standard error goes, in its state directory.
const STDERR_FILE: &str = "tun-client.stderr";

/// Flags of `openrelay up`.
#[derive(Debug, clap::Args)]
pub(crate) struct UpArgs {
    /// The client's config file.
    #[arg(long)]
    config: PathBuf,
}

/// `openrelay up`: starts `openrelay client --tun` in the background (its
/// own process group, so the terminal's Ctrl-C does not reach it), waits
/// until the VPN is up and a path works, prints its ready line and returns.
pub(crate) fn run(args: UpArgs) -> anyhow::Result<()> {
    let config_path = args.config.as_path();
    let config = ClientConfig::load(config_path)?;
    if let Some(pid) = running_client(&config.state_dir) {
        bail!("the VPN is already up (client pid {pid}); `openrelay down` first");
    }
    let exe = std::env::current_exe().context("cannot find the openrelay executable")?;
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("cannot create {}", config.state_dir.display()))?;
    // The background client must not hold our caller's terminal or pipes.
    let stderr_file = config.state_dir.join(STDERR_FILE);
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&stderr_file)
        .with_context(|| format!("cannot open {}", stderr_file.display()))?;
    let mut child = {
        use std::os::unix::process::CommandExt;
        Command::new(exe)
            .args(["client", "--tun", "--config"])
            .arg(config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .context("cannot start the client")?
    };
    let stdout = child.stdout.take().context("no client output")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(UP_TIMEOUT) {
        Ok(line) if line.starts_with("ready") => {
            println!("{} pid={}", line.trim_end(), child.id());
            Ok(())
        }
        Ok(_) | Err(_) => {
            // Not up: stop it; it undoes what it changed on SIGTERM.
            terminate(child.id());
            let _ = child.wait();
            bail!(
                "the client did not come up within {UP_TIMEOUT:?}; see {}",
                stderr_file.display()
            )
        }
    }
}

/// The pid of a live client whose VPN uses `state_dir`, if any.
pub(crate) fn running_client(state_dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(state_dir.join(openrelay_tun::PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // The pid must still be an openrelay process (pids are reused).
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "openrelay").then_some(pid)
}

/// Asks process `pid` to stop (SIGTERM).
pub(crate) fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}
