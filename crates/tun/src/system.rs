//! Applies and undoes [`Change`]s with `ip` (iproute2) and `nft` (nftables),
//! recording each in the [`Journal`] before it is made.

use openrelay_types::error::{ErrorKind, HasKind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use openrelay_command::{CommandError, CommandFailure, run_command};
use tracing::warn;

use crate::journal::{Change, Journal, JournalError};
use crate::plan;

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
    /// The journal names something openrelay never changes (it was edited
    /// or is corrupt); nothing in it was undone.
    #[error(
        "the journal {journal} asks to undo {change}, which openrelay never changes; nothing was undone (was it edited?)"
    )]
    NotOurs {
        /// The journal.
        journal: PathBuf,
        /// The change it names.
        change: Box<Change>,
    },
    /// The resolver file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl HasKind for SystemError {
    fn kind(&self) -> ErrorKind {
        match self {
            SystemError::Journal(e) => e.kind(),
            SystemError::Command(_) | SystemError::File { .. } => ErrorKind::Local,
            SystemError::NotOurs { .. } => ErrorKind::BadInput,
        }
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

/// What undoing a journal may touch: only what openrelay itself changes.
/// Undoing runs as root, so a journal naming anything else (another file,
/// firewall table, device, route or rule) is refused whole: see
/// [`UndoScope::allows`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoScope {
    resolver_files: Vec<PathBuf>,
}

impl UndoScope {
    /// Undoing may restore the default resolver file (/etc/resolv.conf) and
    /// `configured`, the one the client's config names (`tun.dns.resolv_conf`),
    /// if known.
    pub fn new(configured: Option<&Path>) -> UndoScope {
        let mut resolver_files = vec![PathBuf::from(
            openrelay_config::TunDnsConfig::default().resolv_conf,
        )];
        resolver_files.extend(configured.map(Path::to_owned));
        resolver_files.dedup();
        UndoScope { resolver_files }
    }

    /// Whether `change` is one openrelay makes: its own firewall table, a
    /// TUN device, a route or rule of the plan's shapes (table, priorities),
    /// a resolver file of this scope. (Whether a named device is a TUN device
    /// is checked when it is deleted.)
    pub fn allows(&self, change: &Change) -> bool {
        match change {
            Change::Firewall { table } => table == plan::FIREWALL_TABLE,
            Change::Device { name } => plan::is_device_name(name),
            Change::Route { args, .. } => plan::is_planned_route(args),
            Change::Rule { args, .. } => plan::is_planned_rule(args),
            Change::ResolvConf { path, .. } => self.resolver_files.contains(path),
        }
    }
}

/// Whether the network device `name` exists and is something other than a
/// TUN device (which undoing must then leave alone).
fn is_other_than_tun(name: &str) -> Result<bool, SystemError> {
    let output = Command::new("ip")
        .args(["-details", "-json", "link", "show", "dev", name])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| CommandError {
            command: format!("ip -details -json link show dev {name}"),
            failure: CommandFailure::Spawn(e),
        })?;
    if !output.status.success() {
        return Ok(false); // no such device
    }
    let links: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let kind = links
        .get(0)
        .and_then(|link| link.get("linkinfo"))
        .and_then(|info| info.get("info_kind"))
        .and_then(serde_json::Value::as_str);
    Ok(kind != Some("tun"))
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
            Err(SystemError::Command(e)) if e.is_already_gone() => Ok(()),
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
            Change::Device { name } if is_other_than_tun(name)? => {
                warn!(device = %name, "the journal names a device that is not a TUN device; left alone");
                Ok(())
            }
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
    /// A journal that is not trusted, or that names anything outside
    /// `scope`, is refused before anything is undone. Otherwise every change
    /// is attempted; the first failure is returned (and the journal kept) if
    /// any failed. Returns how many changes were undone.
    pub fn undo_all(&self, scope: &UndoScope) -> Result<usize, SystemError> {
        let changes = self.journal.read()?;
        if let Some(foreign) = changes.iter().find(|c| !scope.allows(c)) {
            return Err(SystemError::NotOurs {
                journal: self.journal.path().to_owned(),
                change: Box::new(foreign.clone()),
            });
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn undo_refuses_a_journal_naming_a_file_openrelay_never_changes() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let system = System::new(dir.path());
        let record_resolver_file = |path: &Path, original: &str| {
            system
                .journal()
                .record(&Change::ResolvConf {
                    path: path.to_owned(),
                    original: Some(original.into()),
                })
                .unwrap();
        };
        record_resolver_file(&victim, "overwritten by root\n");
        let resolver = dir.path().join("resolv.conf");
        let result = system.undo_all(&UndoScope::new(Some(&resolver)));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert!(
            matches!(&result, Err(SystemError::NotOurs { change, .. })
                if matches!(&**change, Change::ResolvConf { path, .. } if *path == victim)),
            "{result:?}"
        );
        assert!(system.journal().path().exists(), "the journal is kept");
        let message = result.unwrap_err().to_string();
        assert!(
            message.contains("victim") && message.contains("nothing was undone"),
            "{message}"
        );

        // The file the config names is restored.
        std::fs::remove_file(system.journal().path()).unwrap();
        std::fs::write(&resolver, "nameserver 10.89.0.1\n").unwrap();
        record_resolver_file(&resolver, "nameserver 192.0.2.53\n");
        assert_eq!(
            system.undo_all(&UndoScope::new(Some(&resolver))).unwrap(),
            1
        );
        assert_eq!(
            std::fs::read_to_string(&resolver).unwrap(),
            "nameserver 192.0.2.53\n"
        );
    }

    #[test]
    fn undo_refuses_tables_devices_routes_and_rules_it_never_makes() {
        let scope = UndoScope::new(None);
        let words = |text: &str| text.split(' ').map(str::to_owned).collect::<Vec<_>>();
        use crate::journal::Family::V4;
        for foreign in [
            Change::Firewall {
                table: "filter".into(),
            },
            Change::Device {
                name: "eth0 type veth".into(),
            },
            Change::Route {
                family: V4,
                args: words("default via 192.0.2.1"),
            },
            Change::Rule {
                family: V4,
                args: words("priority 32766 lookup main"),
            },
            Change::ResolvConf {
                path: "/etc/shadow".into(),
                original: None,
            },
        ] {
            assert!(!scope.allows(&foreign), "{foreign:?}");
        }
        assert!(scope.allows(&Change::ResolvConf {
            path: "/etc/resolv.conf".into(),
            original: None,
        }));
    }
}
