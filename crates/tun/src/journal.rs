//! The system state journal: every change the VPN makes to the system
//! (firewall, device, routes, policy rules, resolver file) is appended here
//! and flushed to disk *before* it is made, so whoever finds the file (`down`,
//! the client on SIGTERM, the next start after a crash) can undo exactly
//! what was done, newest first. One JSON object per line.
//!
//! Undoing runs as root, so the journal is trusted only when nobody else
//! could have written it: it must be a regular file (not a symlink) owned
//! by the user undoing it and writable by nobody else, in a directory only
//! that user (or root) can change ([`Journal::read`]). What it names is
//! checked against what openrelay makes before anything is undone
//! (`system::UndoScope`).

use openrelay_types::error::{ErrorKind, HasKind};
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

/// The longest journal read (a real one is a few KiB: a line per change and
/// the resolver file's text).
pub const MAX_JOURNAL_BYTES: u64 = 1 << 20;

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Firewall { table } => write!(f, "the nftables table inet {table:?}"),
            Change::Device { name } => write!(f, "the device {name:?}"),
            Change::Route { family, args } => {
                write!(
                    f,
                    "the route `ip {} route {}`",
                    family.flag(),
                    args.join(" ")
                )
            }
            Change::Rule { family, args } => {
                write!(f, "the rule `ip {} rule {}`", family.flag(), args.join(" "))
            }
            Change::ResolvConf { path, .. } => write!(f, "the file {}", path.display()),
        }
    }
}

/// Why a journal is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Distrust {
    /// It is a symlink (it could point anywhere).
    #[error("it is a symbolic link")]
    Symlink,
    /// It is not a regular file.
    #[error("it is not a regular file")]
    NotAFile,
    /// Another user owns it.
    #[error("it belongs to uid {owner}, not to uid {me} who undoes it")]
    Owner {
        /// Its owner.
        owner: u32,
        /// The effective uid undoing it.
        me: u32,
    },
    /// Group or others may write it.
    #[error("group or others may write it (mode {mode:o})")]
    Writable {
        /// Its permission bits.
        mode: u32,
    },
    /// Its directory belongs to another user, who could replace it.
    #[error("its directory belongs to uid {owner}, who could replace it")]
    DirectoryOwner {
        /// The directory's owner.
        owner: u32,
    },
    /// Group or others may replace it (its directory is writable by them
    /// and not sticky).
    #[error("its directory is writable by group or others (mode {mode:o})")]
    DirectoryWritable {
        /// The directory's permission bits.
        mode: u32,
    },
    /// Longer than any journal openrelay writes.
    #[error("it is longer than {MAX_JOURNAL_BYTES} bytes")]
    TooLarge,
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
    /// The file could have been written by someone other than the user
    /// undoing it; nothing in it is undone.
    #[error(
        "journal {path} is not trusted: {reason}; nothing was undone (check who wrote it, then remove it or fix its ownership and mode)"
    )]
    Untrusted {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: Distrust,
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

impl HasKind for JournalError {
    fn kind(&self) -> ErrorKind {
        match self {
            JournalError::Io { .. } => ErrorKind::Storage,
            JournalError::Untrusted { .. } | JournalError::Corrupt { .. } => ErrorKind::BadInput,
        }
    }
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

/// Whether a journal with metadata `file`, in a directory with metadata
/// `dir`, can only have been written by `me` (or root, for the directory).
fn trusted(file: &std::fs::Metadata, dir: &std::fs::Metadata, me: u32) -> Result<(), Distrust> {
    use std::os::unix::fs::MetadataExt;
    const GROUP_OR_OTHER_WRITE: u32 = 0o022;
    const STICKY: u32 = 0o1000;
    if !file.is_file() {
        return Err(Distrust::NotAFile);
    }
    if file.uid() != me {
        return Err(Distrust::Owner {
            owner: file.uid(),
            me,
        });
    }
    if file.mode() & GROUP_OR_OTHER_WRITE != 0 {
        return Err(Distrust::Writable {
            mode: file.mode() & 0o7777,
        });
    }
    if dir.uid() != me && dir.uid() != 0 {
        return Err(Distrust::DirectoryOwner { owner: dir.uid() });
    }
    // In a sticky directory (like /tmp) only the file's owner may rename or
    // delete it.
    if dir.mode() & GROUP_OR_OTHER_WRITE != 0 && dir.mode() & STICKY == 0 {
        return Err(Distrust::DirectoryWritable {
            mode: dir.mode() & 0o7777,
        });
    }
    Ok(())
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
        // Never through a symlink: appending as root wherever one points
        // would write into any file.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        file.write_all(line(change).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| self.io(e))
    }

    /// The recorded changes, oldest first; empty if there is no journal.
    /// Refused unless only the user reading it could have written it (see
    /// the module's documentation).
    pub fn read(&self) -> Result<Vec<Change>, JournalError> {
        use std::io::Read;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let untrusted = |reason| JournalError::Untrusted {
            path: self.path.clone(),
            reason,
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&self.path);
        let file = match file {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                return Err(untrusted(Distrust::Symlink));
            }
            Err(e) => return Err(self.io(e)),
        };
        // The checks look at the file opened, not at whatever the name
        // points to by now.
        let meta = file.metadata().map_err(|e| self.io(e))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let dir_meta = std::fs::metadata(dir).map_err(|e| self.io(e))?;
        trusted(&meta, &dir_meta, nix::unistd::geteuid().as_raw()).map_err(untrusted)?;
        let mut text = String::new();
        file.take(MAX_JOURNAL_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| self.io(e))?;
        if text.len() as u64 > MAX_JOURNAL_BYTES || meta.size() > MAX_JOURNAL_BYTES {
            return Err(untrusted(Distrust::TooLarge));
        }
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

    #[test]
    fn a_journal_others_could_have_written_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        journal.record(&samples()[0]).unwrap();
        let set_mode = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let refusal = || match journal.read() {
            Err(JournalError::Untrusted { reason, .. }) => Some(reason),
            Ok(_) => None,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(refusal(), None);
        set_mode(journal.path(), 0o666);
        assert_eq!(refusal(), Some(Distrust::Writable { mode: 0o666 }));
        set_mode(journal.path(), 0o600);
        set_mode(dir.path(), 0o777);
        assert_eq!(refusal(), Some(Distrust::DirectoryWritable { mode: 0o777 }));
        // Sticky, like /tmp: others cannot replace a file they do not own.
        set_mode(dir.path(), 0o1777);
        assert_eq!(refusal(), None);
        set_mode(dir.path(), 0o700);
        // A symlink to a journal is refused, whatever it points to.
        let elsewhere = tempfile::tempdir().unwrap();
        let real = Journal::in_dir(elsewhere.path());
        real.record(&samples()[0]).unwrap();
        std::fs::remove_file(journal.path()).unwrap();
        std::os::unix::fs::symlink(real.path(), journal.path()).unwrap();
        assert_eq!(refusal(), Some(Distrust::Symlink));
        std::fs::remove_file(journal.path()).unwrap();
        // Another user's journal (only root can make one to test with).
        journal.record(&samples()[0]).unwrap();
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(journal.path(), Some(65534), None).unwrap();
            assert_eq!(
                refusal(),
                Some(Distrust::Owner {
                    owner: 65534,
                    me: 0
                })
            );
        }
    }

    #[test]
    fn an_endless_journal_is_refused_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::in_dir(dir.path());
        let line = line(&samples()[1]);
        let copies = MAX_JOURNAL_BYTES as usize / line.len() + 1;
        std::fs::write(journal.path(), line.repeat(copies)).unwrap();
        assert!(matches!(
            journal.read(),
            Err(JournalError::Untrusted {
                reason: Distrust::TooLarge,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn any_text_parses_or_fails_without_panic(text in "\\PC{0,200}") {
            let scope = crate::system::UndoScope::new(None);
            for change in parse(&text).unwrap_or_default() {
                let _ = (scope.allows(&change), change.to_string());
            }
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
