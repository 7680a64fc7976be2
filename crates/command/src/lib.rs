#![doc = include_str!("../README.md")]

use std::io::Write;
use std::process::{Command, Stdio};

use tracing::debug;

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
        assert_eq!(error.reason, "broken");
        let silent = run_command("sh", &["-c", "exit 3"], None).unwrap_err();
        assert!(silent.reason.contains('3'), "{silent}");
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let error =
            run_command::<&str>("/nonexistent/openrelay-no-such-program", &[], None).unwrap_err();
        assert!(error.to_string().contains("no-such-program"), "{error}");
    }
}
