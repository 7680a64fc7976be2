#![doc = include_str!("../README.md")]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// A value that must never appear in logs (an address, a destination).
///
/// It derefs to the inner value so code can use it, but formatting it prints
/// `[scrubbed]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sensitive<T>(pub T);

impl<T> Sensitive<T> {
    /// Unwraps the value; the caller takes over responsibility for not logging it.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Sensitive<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[scrubbed]")
    }
}

impl<T> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[scrubbed]")
    }
}

/// Which kind of process is logging; it decides what may be logged at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Ingress or egress relay: only openrelay's own events, never third-party ones.
    Relay,
    /// The user's client: third-party events allowed (they stay on the user's machine).
    Client,
    /// A tool (devnet supervisor, simulator): like a client.
    Tool,
}

/// Where and how much to log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// The process's role.
    pub role: Role,
    /// An `EnvFilter` directive such as `info` or `openrelay_egress=trace`.
    pub filter: String,
    /// Append to this file instead of writing to stderr.
    pub file: Option<PathBuf>,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The filter directive does not parse.
    #[error("invalid log filter {directive:?}: {reason}")]
    Filter {
        /// The directive as given.
        directive: String,
        /// What the parser said.
        reason: String,
    },
    /// The log file cannot be opened.
    #[error("cannot open log file {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A global subscriber was already installed.
    #[error("logging was already initialised")]
    AlreadySet,
}

/// The targets a process of `role` may log at all. Static (decided once per
/// callsite), so disabled third-party spans cost nothing on hot paths.
pub fn privacy_filter(role: Role) -> Targets {
    match role {
        // Target prefixes: `openrelay` covers `openrelay_egress::...` etc.
        Role::Relay => Targets::new().with_target("openrelay", LevelFilter::TRACE),
        Role::Client | Role::Tool => Targets::new().with_default(LevelFilter::TRACE),
    }
}

fn open_log_file(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LogError::File {
            path: path.to_owned(),
            source,
        })
}

/// Installs the global subscriber for this process.
pub fn init(options: &LogOptions) -> Result<(), LogError> {
    let env_filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse(&options.filter)
        .map_err(|e| LogError::Filter {
            directive: options.filter.clone(),
            reason: e.to_string(),
        })?;
    // Both filters are global: a callsite either filter disables is never
    // enabled, and no span data is recorded for it.
    let registry = tracing_subscriber::registry()
        .with(privacy_filter(options.role))
        .with(env_filter);
    let result = match &options.file {
        Some(path) => {
            let file = open_log_file(path)?;
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(Mutex::new(file));
            registry.with(layer).try_init()
        }
        None => {
            let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
            registry.with(layer).try_init()
        }
    };
    result.map_err(|_| LogError::AlreadySet)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_never_formats_its_value() {
        let addr: std::net::SocketAddr =
            "192.0.2.7:4242".parse().unwrap_or_else(|_| unreachable!());
        let s = Sensitive(addr);
        for text in [format!("{s}"), format!("{s:?}"), format!("{s:#?}")] {
            assert!(!text.contains("192.0.2.7"), "{text}");
            assert!(!text.contains("4242"), "{text}");
        }
        assert_eq!(s.port(), 4242, "the value stays usable");
    }

    #[test]
    fn relays_log_only_openrelay_targets() {
        let relay = privacy_filter(Role::Relay);
        let client = privacy_filter(Role::Client);
        let trace = tracing::Level::TRACE;
        assert!(relay.would_enable("openrelay_egress::connect", &trace));
        assert!(relay.would_enable("openrelay", &trace));
        for foreign in [
            "quinn",
            "quinn_proto::connection",
            "h3::server",
            "rustls::conn",
            "tokio",
        ] {
            assert!(!relay.would_enable(foreign, &trace), "{foreign}");
            assert!(client.would_enable(foreign, &trace), "{foreign}");
        }
    }

    #[test]
    fn a_bad_filter_is_reported_with_the_directive() {
        let err = init(&LogOptions {
            role: Role::Relay,
            filter: "openrelay=notalevel".into(),
            file: None,
        })
        .err();
        match err {
            Some(LogError::Filter { directive, .. }) => {
                assert_eq!(directive, "openrelay=notalevel")
            }
            other => panic!("expected a filter error, got {other:?}"),
        }
    }
}
