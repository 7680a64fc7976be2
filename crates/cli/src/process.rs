//! Process concerns every subcommand shares: the async runtime, the open
//! file limit, shutdown signals, logging set-up and the ready line.

use std::io::Write;

use anyhow::Context;
use openrelay_log::{LogOptions, Role};

/// Raises this process's soft limit on open files (RLIMIT_NOFILE) to its
/// hard limit: every tunnel, flow and connection to a destination is a file
/// descriptor, and the usual soft limit (1024) is far below what a relay
/// carries. When even the hard limit is reached, servers refuse the request
/// that needed one (503) and keep serving others.
pub(crate) fn raise_descriptor_limit() -> nix::Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(())
}

/// Logs the open file limit a server runs with.
pub(crate) fn log_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit};
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        tracing::info!(open_files = soft, "open file limit");
    }
}

/// A runtime with `worker_threads` threads; one means a single-threaded
/// runtime (no cross-thread wake-ups per packet), `None` one per core.
pub(crate) fn runtime(worker_threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Resolves on SIGINT, SIGTERM or (if asked) the end of standard input.
pub(crate) async fn shutdown_signal(exit_with_stdin: bool) {
    use tokio::io::AsyncReadExt;
    use tokio::signal::unix::{SignalKind, signal};
    let stdin_closed = async {
        if !exit_with_stdin {
            return std::future::pending().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return stdin_closed.await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        () = stdin_closed => {}
    }
}

/// Logging as a component's config says, with the privacy rules of `role`.
pub(crate) fn init_logging(role: Role, log: &openrelay_config::LogConfig) -> anyhow::Result<()> {
    openrelay_log::init(&LogOptions {
        role,
        filter: log.level.clone(),
        file: log.file.clone(),
    })?;
    Ok(())
}

pub(crate) fn ready(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

/// A server's ready line: its role, listen address and the key clients pin.
pub(crate) fn ready_service(
    role: &str,
    listen: std::net::SocketAddr,
    key: openrelay_types::KeyPin,
) {
    ready(&format!("ready role={role} listen={listen} key={key}"));
}
