#![doc = include_str!("../README.md")]

use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};

use openrelay_types::{ErrorKind, HasKind};

use tracing::debug;

/// A command that could not be run, or that failed.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {failure}")]
pub struct CommandError {
    /// The command line.
    pub command: String,
    /// What went wrong.
    #[source]
    pub failure: CommandFailure,
}

/// How a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandFailure {
    /// It could not be started (not installed, not executable, ...).
    #[error("cannot start it")]
    Spawn(#[source] std::io::Error),
    /// Its standard input could not be written.
    #[error("cannot write its input")]
    Input(#[source] std::io::Error),
    /// Waiting for it failed.
    #[error("cannot wait for it")]
    Wait(#[source] std::io::Error),
    /// It ran and exited unsuccessfully.
    #[error("{}", exited_message(.status, .error_output))]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote to standard error, trimmed (may be empty).
        error_output: String,
    },
}

fn exited_message(status: &ExitStatus, error_output: &str) -> String {
    if error_output.is_empty() {
        status.to_string()
    } else {
        error_output.to_owned()
    }
}

impl CommandError {
    /// What the command wrote to standard error ("" if it did not run or
    /// wrote nothing).
    pub fn error_output(&self) -> &str {
        match &self.failure {
            CommandFailure::Exited { error_output, .. } => error_output,
            _ => "",
        }
    }

    /// Whether `ip` or `nft` refused because what it should remove or
    /// change does not exist (undoing something already undone). Their
    /// only signal is their message, so this reads it, in this one place.
    pub fn is_already_gone(&self) -> bool {
        ["No such", "Cannot find", "does not exist", "not found"]
            .iter()
            .any(|m| self.error_output().contains(m))
    }
}

impl HasKind for CommandError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Local
    }
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
    let fail = |failure: CommandFailure| CommandError {
        command: command.clone(),
        failure,
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
        .map_err(|e| fail(CommandFailure::Spawn(e)))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| fail(CommandFailure::Input(e)))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| fail(CommandFailure::Wait(e)))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(fail(CommandFailure::Exited {
            status: output.status,
            error_output: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_succeeds_reads_its_input() {
        run_command(
            "sh",
            &["-c", "read line && test \"$line\" = hello"],
            Some("hello\n"),
        )
        .unwrap();
    }

    #[test]
    fn a_failure_names_the_command_and_carries_its_error_output() {
        let error = run_command("sh", &["-c", "echo broken >&2; exit 3"], None).unwrap_err();
        assert_eq!(error.command, "sh -c echo broken >&2; exit 3");
        assert_eq!(error.error_output(), "broken");
        assert!(error.to_string().contains("broken"), "{error}");
        assert!(!error.is_already_gone());
        let silent = run_command("sh", &["-c", "exit 3"], None).unwrap_err();
        assert!(
            matches!(&silent.failure, CommandFailure::Exited { status, .. } if status.code() == Some(3)),
            "{silent}"
        );
        assert!(silent.to_string().contains('3'), "{silent}");
        let gone =
            run_command("sh", &["-c", "echo 'Cannot find device' >&2; exit 1"], None).unwrap_err();
        assert!(gone.is_already_gone(), "{gone}");
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let error =
            run_command::<&str>("/nonexistent/openrelay-no-such-program", &[], None).unwrap_err();
        assert!(error.to_string().contains("no-such-program"), "{error}");
        assert!(matches!(error.failure, CommandFailure::Spawn(_)), "{error}");
        assert_eq!(error.kind(), ErrorKind::Local);
    }
}
