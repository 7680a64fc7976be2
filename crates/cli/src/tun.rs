//! `openrelay up`, `openrelay down`, and the full-device VPN around
//! `openrelay client --tun`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use openrelay_config::ClientConfig;

/// Time `up` waits for the client's ready line.
const UP_TIMEOUT: Duration = Duration::from_secs(45);
/// Where the background client's standard error goes, in its state directory.
const STDERR_FILE: &str = "tun-client.stderr";
/// Time `down` gives the client to undo its changes after SIGTERM.
const DOWN_GRACE: Duration = Duration::from_secs(10);

/// `openrelay up`: starts `openrelay client --tun` in the background (its
/// own process group, so the terminal's Ctrl-C does not reach it), waits
/// until the VPN is up and a path works, prints its ready line and returns.
pub(crate) fn run_up(config_path: &Path) -> anyhow::Result<()> {
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
fn running_client(state_dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(state_dir.join(openrelay_tun::PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // The pid must still be an openrelay process (pids are reused).
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "openrelay").then_some(pid)
}

fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// What `openrelay down` works on.
#[derive(Debug)]
pub(crate) struct DownTarget {
    /// The client's state directory.
    state_dir: PathBuf,
    /// The resolver file its config points at the tunnel, if the config was
    /// given (undoing restores only this one and /etc/resolv.conf).
    resolver_file: Option<PathBuf>,
}

/// `openrelay down`: stops the VPN's client (SIGTERM; it undoes its own
/// changes), then undoes whatever the journal still holds (all of it when
/// the client had died), lifting the kill switch last.
pub(crate) fn run_down(target: &DownTarget) -> anyhow::Result<()> {
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
pub(crate) fn down_target(
    state_dir: Option<PathBuf>,
    config: Option<PathBuf>,
) -> anyhow::Result<DownTarget> {
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
