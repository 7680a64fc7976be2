//! The system state journal: every change the VPN makes to the system
//! (firewall, device, routes, policy rules, resolver file) is appended here
//! and flushed to disk *before* it is made, so whoever finds the file (`down`,
//! the client on SIGTERM, the next start after a crash) can undo exactly
//! what was done, newest first. One JSON object per line.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The journal's file name in the client's state directory.
pub const FILE_NAME: &str = "tun-journal.jsonl";

/// An IP family, as `ip -4` / `ip -6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The `ip` flag selecting this family.
    pub fn flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }
}

/// One change to the system, with what undoing it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case", deny_unknown_fields)]
pub enum Change {
    /// An nftables table of family `inet` (the kill switch); undone by
    /// deleting the table.
    Firewall {
        /// The table's name.
        table: String,
    },
    /// The TUN device; undone by deleting the link (the kernel already does
    /// when the client exits).
    Device {
        /// The device's name.
        name: String,
    },
    /// `ip route add ARGS`; undone by `ip route del ARGS`.
    Route {
        /// The family.
        family: Family,
        /// The route's arguments.
        args: Vec<String>,
    },
    /// `ip rule add ARGS`; undone by `ip rule del ARGS`.
    Rule {
        /// The family.
        family: Family,
        /// The rule's arguments.
        args: Vec<String>,
    },
    /// The resolver configuration file was rewritten; undone by writing the
    /// original text back (or removing the file if there was none).
    ResolvConf {
        /// The file.
        path: PathBuf,
        /// Its text before (None: it did not exist).
        original: Option<String>,
    },
}

/// Why the journal could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The file could not be read or written.
    #[error("journal {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line other than the last does not parse: the file is not ours or
    /// was edited; nothing is undone blindly.
    #[error("journal {path}, line {line}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        reason: String,
    },
}

/// Parses a journal's text. The last line may be torn (the process died
/// while appending it, so that change was never started) and is then
/// ignored; any other bad line is an error.
pub fn parse(text: &str) -> Result<Vec<Change>, (usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut changes = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Change>(line) {
            Ok(change) => changes.push(change),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err((i + 1, e.to_string())),
        }
    }
    Ok(changes)
}

/// One line of the journal for `change`.
pub fn line(change: &Change) -> String {
    // Serialising these plain enums cannot fail; fall back to an empty
    // object, which `parse` refuses, rather than panic.
    let mut line = serde_json::to_string(change).unwrap_or_else(|_| "{}".into());
    line.push('\n');
    line
}

/// The journal file of a state directory.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal in `state_dir`.
    pub fn in_dir(state_dir: &Path) -> Journal {
        Journal {
            path: state_dir.join(FILE_NAME),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends `change` and flushes it to disk; call before making it.
    pub fn record(&self, change: &Change) -> Result<(), JournalError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        file.write_all(line(change).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io(e))
    }

    /// The recorded changes, oldest first; empty if there is no journal.
    pub fn read(&self) -> Result<Vec<Change>, JournalError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        parse(&text).map_err(|(line, reason)| JournalError::Corrupt {
            path: self.path.clone(),
            line,
            reason,
        })
    }

    /// Removes the journal once everything in it was undone.
    pub fn remove(&self) -> Result<(), JournalError> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<Change> {
        vec![
            Change::Firewall {
                table: "openrelay".into(),
            },
            Change::Device {
                name: "openrelay0".into(),
            },
            Change::Route {
                family: Family::V6,
                args: vec!["default".into(), "dev".into(), "openrelay0".into()],
            },
            Change::Rule {
                family: Family::V4,
                args: vec!["priority".into(), "6100".into()],
            },
            Change::ResolvConf {
                path: "/etc/resolv.conf".into(),
                original: Some("nameserver 192.0.2.53\n".into()),
            },
        ]
    }

    #[test]
    fn records_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        assert!(journal.read().unwrap().is_empty());
        for change in samples() {
            journal.record(&change).unwrap();
        }
        assert_eq!(journal.read().unwrap(), samples());
        journal.remove().unwrap();
        journal.remove().unwrap();
        assert!(journal.read().unwrap().is_empty());
    }

    #[test]
    fn a_torn_last_line_is_ignored_but_a_bad_middle_line_is_not() {
        let text: String = samples().iter().map(line).collect();
        let torn = &text[..text.len() - 7];
        assert_eq!(parse(torn).unwrap(), samples()[..4].to_vec());
        let bad = format!("{}not json\n{}", line(&samples()[0]), line(&samples()[1]));
        assert_eq!(parse(&bad).unwrap_err().0, 2);
        // A complete last line that is not a change was written whole: refuse it.
        assert!(parse("{\"change\":\"mystery\"}\n").is_err());
    }

    proptest! {
        #[test]
        fn any_text_parses_or_fails_without_panic(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn routes_and_rules_round_trip(args in proptest::collection::vec("[ -~]{0,12}", 0..6), v6: bool) {
            let family = if v6 { Family::V6 } else { Family::V4 };
            let changes = vec![Change::Route { family, args: args.clone() }, Change::Rule { family, args }];
            let text: String = changes.iter().map(line).collect();
            prop_assert_eq!(parse(&text).unwrap(), changes);
        }
    }
}
