//! The build inputs of a checkout: every source file with its SHA-256
//! (`Cargo.lock` among them) and the pinned toolchain, sorted, so two
//! checkouts of the same commit give equal [`Inputs`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The file that pins the toolchain (rustup reads it).
pub const TOOLCHAIN_FILE: &str = "rust-toolchain.toml";
/// The lock file `--locked` builds from.
pub const LOCK_FILE: &str = "Cargo.lock";

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// What a build reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// Relative path (`/`-separated, UTF-8) to the SHA-256 of the file's
    /// bytes (of the link text for a symbolic link).
    pub files: BTreeMap<String, Sha256Digest>,
    /// The pinned toolchain.
    pub toolchain: Toolchain,
}

/// The toolchain a build uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// `toolchain.channel` of rust-toolchain.toml.
    pub channel: String,
    /// `rustc -vV` as run in the checkout (so through the pin): version,
    /// commit, host triple, LLVM version.
    pub rustc_version_verbose: String,
}

impl Toolchain {
    /// The host triple from `rustc -vV` (what a release build targets).
    pub fn host(&self) -> Option<&str> {
        self.rustc_version_verbose
            .lines()
            .find_map(|line| line.strip_prefix("host: "))
            .map(str::trim)
    }
}

/// Why the inputs could not be collected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputsError {
    /// Reading a file or directory failed.
    #[error("{path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A tool (`git`, `rustc`) could not run or failed.
    #[error("`{command}` failed: {detail}")]
    Tool {
        /// The command line.
        command: String,
        /// Its standard error or the reason it did not start.
        detail: String,
    },
    /// A path is not UTF-8, so it has no stable name in the manifest.
    #[error("{0}: file name is not UTF-8")]
    NonUtf8Path(PathBuf),
    /// No rust-toolchain.toml: a release must pin its compiler.
    #[error(
        "{0}: no rust-toolchain.toml with a toolchain.channel; a reproducible build needs a pinned toolchain"
    )]
    UnpinnedToolchain(PathBuf),
}

/// Collects the inputs of the checkout at `root`. With git, the files are
/// what `git ls-files --cached --others --exclude-standard` lists (tracked
/// and untracked-but-not-ignored files, since cargo builds whatever is on
/// disk); without git, a walk that skips `.git/` and the top-level
/// `target/`. `env` is the environment `rustc -vV` runs in (the build's).
pub fn collect(root: &Path, env: &[(String, String)]) -> Result<Inputs, InputsError> {
    let names = match git_files(root)? {
        Some(names) => names,
        None => walk_files(root)?,
    };
    let mut files = BTreeMap::new();
    for name in names {
        let path = root.join(&name);
        let io = |source| InputsError::Io {
            path: path.clone(),
            source,
        };
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Tracked but deleted in the working tree: not an input.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        let digest: Sha256Digest = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(io)?;
            Sha256::digest(target.as_os_str().as_encoded_bytes()).into()
        } else if meta.is_file() {
            Sha256::digest(std::fs::read(&path).map_err(io)?).into()
        } else {
            // A submodule's directory: its files are not ours.
            continue;
        };
        files.insert(name, digest);
    }
    Ok(Inputs {
        files,
        toolchain: toolchain(root, env)?,
    })
}

/// `None` when `root` is not the top of a git work tree.
fn git_files(root: &Path) -> Result<Option<Vec<String>>, InputsError> {
    if !root.join(".git").exists() {
        return Ok(None);
    }
    let out = run(
        Command::new("git").arg("-C").arg(root).args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ]),
        "git ls-files -z --cached --others --exclude-standard",
    )?;
    let mut names = Vec::new();
    for raw in out.split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let name = std::str::from_utf8(raw).map_err(|_| {
            InputsError::NonUtf8Path(root.join(String::from_utf8_lossy(raw).as_ref()))
        })?;
        names.push(name.to_owned());
    }
    // `--cached` lists a file twice while it has merge conflicts.
    names.sort();
    names.dedup();
    Ok(Some(names))
}

fn walk_files(root: &Path) -> Result<Vec<String>, InputsError> {
    let mut names = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        let full = root.join(&dir);
        let io = |source| InputsError::Io {
            path: full.clone(),
            source,
        };
        for entry in std::fs::read_dir(&full).map_err(io)? {
            let entry = entry.map_err(io)?;
            let relative = dir.join(entry.file_name());
            let name = relative
                .to_str()
                .ok_or_else(|| InputsError::NonUtf8Path(root.join(&relative)))?
                .to_owned();
            if name == "target" || entry.file_name() == ".git" {
                continue;
            }
            if entry.file_type().map_err(io)?.is_dir() {
                pending.push(relative);
            } else {
                names.push(name);
            }
        }
    }
    names.sort();
    Ok(names)
}

fn toolchain(root: &Path, env: &[(String, String)]) -> Result<Toolchain, InputsError> {
    let path = root.join(TOOLCHAIN_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(InputsError::UnpinnedToolchain(path));
        }
        Err(source) => return Err(InputsError::Io { path, source }),
    };
    let channel = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|table| {
            table
                .get("toolchain")?
                .get("channel")?
                .as_str()
                .map(str::to_owned)
        })
        .ok_or_else(|| InputsError::UnpinnedToolchain(path.clone()))?;
    let mut rustc = Command::new("rustc");
    rustc
        .arg("-vV")
        .current_dir(root)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    let out = run(&mut rustc, "rustc -vV")?;
    Ok(Toolchain {
        channel,
        rustc_version_verbose: String::from_utf8_lossy(&out).into_owned(),
    })
}

/// Runs `command`, returning its standard output when it succeeds.
pub(crate) fn run(command: &mut Command, shown: &str) -> Result<Vec<u8>, InputsError> {
    let out = command.output().map_err(|e| InputsError::Tool {
        command: shown.to_owned(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(InputsError::Tool {
            command: shown.to_owned(),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(out.stdout)
}

/// The resource URI of an input file in the manifest: `file:` and the
/// relative path, percent-encoding every byte outside RFC 3986's unreserved
/// characters and `/` (RFC 3986 §2.1), so any file name makes a valid URI.
pub fn file_uri(name: &str) -> String {
    let mut uri = String::from("file:");
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_escape_what_a_uri_cannot_hold() {
        assert_eq!(file_uri("crates/x/src/y.rs"), "file:crates/x/src/y.rs");
        assert_eq!(file_uri("a b%c"), "file:a%20b%25c");
        assert_eq!(file_uri("é"), "file:%C3%A9");
    }

    #[test]
    fn the_walk_skips_target_and_git_and_sorts() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.rs", "a/c.rs", "target/x", ".git/config", "a/target/kept"] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, name).unwrap();
        }
        assert_eq!(
            walk_files(dir.path()).unwrap(),
            ["a/c.rs", "a/target/kept", "b.rs"]
        );
    }
}
