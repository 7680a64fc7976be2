//! A validator's signing key on disk: 32 secret bytes as hex in
//! `validator.key`, created on first start (directory 0700, file 0600).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use openrelay_directory::ValidatorKey;
use openrelay_directory::rand_core::OsRng;

/// File name of the key inside the state directory.
pub const VALIDATOR_KEY_FILE: &str = "validator.key";

/// Why the key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Reading or writing failed.
    #[error("{path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error("{path}: not a validator key (64 hex digits expected)")]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Loads `state_dir/validator.key`, creating it if absent.
pub fn load_or_create(state_dir: &Path) -> Result<ValidatorKey, KeyFileError> {
    let path = state_dir.join(VALIDATOR_KEY_FILE);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyFileError::Io { path, source }
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => decode_hex(&text)
            .map(|secret| ValidatorKey::from_bytes(&secret))
            .ok_or(KeyFileError::Malformed { path }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state_dir)
                .map_err(io(state_dir))?;
            let key = ValidatorKey::generate(&mut OsRng);
            let hex: String = key.to_bytes().iter().map(|b| format!("{b:02x}")).collect();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io(&path))?;
            file.write_all(hex.as_bytes()).map_err(io(&path))?;
            Ok(key)
        }
        Err(source) => Err(KeyFileError::Io { path, source }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        let second = load_or_create(dir.path()).unwrap();
        assert_eq!(first.id(), second.id());
        std::fs::write(dir.path().join(VALIDATOR_KEY_FILE), "zz").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(KeyFileError::Malformed { .. })
        ));
    }
}
