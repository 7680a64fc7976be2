//! Ed25519 signing keys on disk (a validator's, an operator's, a relay's
//! descriptor key): 32 secret bytes as hex, created on first use (directory
//! 0700, file 0600).

use std::path::{Path, PathBuf};

use openrelay_directory::rand_core::{OsRng, RngCore};
use openrelay_directory::{OperatorKey, RelayKey, ValidatorKey};
use openrelay_transport::identity::write_secret_file;

/// A validator's key file inside its state directory.
pub const VALIDATOR_KEY_FILE: &str = "validator.key";
/// A relay's descriptor-signing key file inside its state directory.
pub const RELAY_KEY_FILE: &str = "relay.key";

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
    #[error("{path}: not a signing key (64 hex digits expected)")]
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

/// Loads the secret in `path`, creating it (and its directory) if absent.
pub fn load_or_create_secret(path: &Path) -> Result<[u8; 32], KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => decode_hex(&text).ok_or_else(|| KeyFileError::Malformed {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            OsRng.fill_bytes(&mut secret);
            let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
            write_secret_file(path, hex.as_bytes()).map_err(io)?;
            Ok(secret)
        }
        Err(source) => Err(io(source)),
    }
}

/// Loads `state_dir/validator.key`, creating it if absent.
pub fn load_or_create(state_dir: &Path) -> Result<ValidatorKey, KeyFileError> {
    load_or_create_secret(&state_dir.join(VALIDATOR_KEY_FILE)).map(|s| ValidatorKey::from_bytes(&s))
}

/// Loads a relay's descriptor key from its state directory, creating it.
pub fn relay_key(state_dir: &Path) -> Result<RelayKey, KeyFileError> {
    load_or_create_secret(&state_dir.join(RELAY_KEY_FILE)).map(|s| RelayKey::from_bytes(&s))
}

/// Loads an operator key file, creating it.
pub fn operator_key(path: &Path) -> Result<OperatorKey, KeyFileError> {
    load_or_create_secret(path).map(|s| OperatorKey::from_bytes(&s))
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
