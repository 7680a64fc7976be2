//! Applies and undoes [`Change`]s with `ip` (iproute2) and `nft` (nftables),
//! recording each in the [`Journal`] before it is made.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use tracing::{debug, warn};

use crate::journal::{Change, Journal, JournalError};

/// Why a system change failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SystemError {
    /// The journal could not be written or read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A command could not be run or failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The resolver file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A command that could not be run, or that failed.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {reason}")]
pub struct CommandError {
    /// The command line.
    pub command: String,
    /// Its error output, or its exit status when it wrote none.
    pub reason: String,
}

/// Runs `program` with `args` (and `stdin` on its standard input, if
/// given), its output discarded.
pub fn run_command<S: AsRef<str>>(
    program: &str,
    args: &[S],
    stdin: Option<&str>,
) -> Result<(), CommandError> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let command = format!("{program} {}", args.join(" "));
    debug!(%command, "running");
    let fail = |reason: String| CommandError {
        command: command.clone(),
        reason,
    };
    let mut child = Command::new(program)
        .args(&args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let output = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        Err(fail(if stderr.is_empty() {
            output.status.to_string()
        } else {
            stderr
        }))
    }
}

fn run(program: &str, args: &[String], stdin: Option<&str>) -> Result<(), SystemError> {
    Ok(run_command(program, args, stdin)?)
}

fn ip(
    family: crate::journal::Family,
    object: &str,
    verb: &str,
    args: &[String],
) -> Result<(), SystemError> {
    let mut all = vec![family.flag().to_owned(), object.to_owned(), verb.to_owned()];
    all.extend_from_slice(args);
    run("ip", &all, None)
}

fn file_error(path: &Path, source: std::io::Error) -> SystemError {
    SystemError::File {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `text` into the file in place (truncating it), not by renaming a
/// new file over it: the file may be a bind mount (as `ip netns exec` makes
/// for /etc/netns/NAME/resolv.conf) or a symlink, both of which a rename
/// would break or replace.
fn write_in_place(path: &Path, text: &str) -> Result<(), SystemError> {
    std::fs::write(path, text).map_err(|e| file_error(path, e))
}

/// Makes system changes, each journalled before it is made.
#[derive(Debug)]
pub struct System {
    journal: Journal,
}

impl System {
    /// Changes journalled in `state_dir`.
    pub fn new(state_dir: &Path) -> System {
        System {
            journal: Journal::in_dir(state_dir),
        }
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Records `change`, then makes it. `firewall` is the ruleset text for a
    /// [`Change::Firewall`]; `resolv_text` the new text for a
    /// [`Change::ResolvConf`].
    pub fn apply(&self, change: &Change, content: Option<&str>) -> Result<(), SystemError> {
        self.journal.record(change)?;
        match change {
            Change::Firewall { table } => {
                // Declaring the table then flushing it makes a half-made
                // table from an interrupted earlier attempt harmless.
                let text = format!(
                    "table inet {table}\nflush table inet {table}\n{}",
                    content.unwrap_or_default()
                );
                run("nft", &["-f".to_owned(), "-".to_owned()], Some(&text))
            }
            // The device itself is created by the caller (it holds its file
            // descriptor); the record is what matters.
            Change::Device { .. } => Ok(()),
            Change::Route { family, args } => ip(*family, "route", "add", args),
            Change::Rule { family, args } => ip(*family, "rule", "add", args),
            Change::ResolvConf { path, .. } => write_in_place(path, content.unwrap_or_default()),
        }
    }

    /// Undoes one change; a change that is already gone is not an error.
    fn undo(change: &Change) -> Result<(), SystemError> {
        let gone = |result: Result<(), SystemError>| match result {
            Err(SystemError::Command(CommandError { reason, .. }))
                if ["No such", "Cannot find", "does not exist", "not found"]
                    .iter()
                    .any(|m| reason.contains(m)) =>
            {
                Ok(())
            }
            other => other,
        };
        match change {
            Change::Firewall { table } => gone(run(
                "nft",
                &[
                    "delete".into(),
                    "table".into(),
                    "inet".into(),
                    table.clone(),
                ],
                None,
            )),
            Change::Device { name } => gone(run(
                "ip",
                &["link".into(), "delete".into(), "dev".into(), name.clone()],
                None,
            )),
            Change::Route { family, args } => gone(ip(*family, "route", "del", args)),
            Change::Rule { family, args } => gone(ip(*family, "rule", "del", args)),
            Change::ResolvConf { path, original } => match original {
                Some(text) => write_in_place(path, text),
                None => match std::fs::remove_file(path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(file_error(path, e)),
                    _ => Ok(()),
                },
            },
        }
    }

    /// Undoes everything in the journal, newest first, then removes it.
    /// Every change is attempted; the first failure is returned (and the
    /// journal kept) if any failed. Returns how many changes were undone.
    pub fn undo_all(&self) -> Result<usize, SystemError> {
        let changes = self.journal.read()?;
        let mut first_error = None;
        for change in changes.iter().rev() {
            if let Err(e) = Self::undo(change) {
                warn!(error = %e, "cannot undo a system change");
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => {
                self.journal.remove()?;
                Ok(changes.len())
            }
        }
    }
}
