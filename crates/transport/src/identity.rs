//! A relay's long-term key: created on first start in the state directory,
//! loaded afterwards. Its public half is the [`KeyPin`] clients verify.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use openrelay_types::KeyPin;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// File name of the key inside the state directory.
pub const KEY_FILE: &str = "identity.key";

/// Why the identity could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Reading or writing the state directory failed.
    #[error("{path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file exists but is not an Ed25519 PKCS#8 PEM key.
    #[error("{path}: not an Ed25519 private key ({reason})")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// Generating a key or certificate failed.
    #[error("cannot create key material: {0}")]
    Generate(String),
}

/// Writes a new secret file readable only by its owner (0600), creating its
/// directory (0700) if needed; never overwrites an existing file.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// A relay's key pair.
pub struct Identity {
    key: rcgen::KeyPair,
    pin: KeyPin,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Generates a fresh key (not stored).
    pub fn generate() -> Result<Self, IdentityError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        Self::from_key(key).map_err(IdentityError::Generate)
    }

    fn from_key(key: rcgen::KeyPair) -> Result<Self, String> {
        if !key.is_compatible(&rcgen::PKCS_ED25519) {
            return Err("key is not Ed25519".into());
        }
        let raw: [u8; 32] = key
            .public_key_raw()
            .try_into()
            .map_err(|_| "Ed25519 public key is not 32 bytes".to_owned())?;
        Ok(Identity {
            key,
            pin: KeyPin::from_ed25519(raw),
        })
    }

    /// Loads `state_dir/identity.key`, creating the directory (mode 0700) and
    /// the key (mode 0600) if they do not exist.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, IdentityError> {
        let path = state_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(pem) => {
                let key = rcgen::KeyPair::from_pem(&pem).map_err(|e| IdentityError::BadKey {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                Self::from_key(key).map_err(|reason| IdentityError::BadKey { path, reason })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::generate()?;
                identity.store(state_dir)?;
                Ok(identity)
            }
            Err(source) => Err(IdentityError::Io { path, source }),
        }
    }

    /// Writes the key to `state_dir/identity.key`; refuses to overwrite one.
    pub fn store(&self, state_dir: &Path) -> Result<(), IdentityError> {
        let path = state_dir.join(KEY_FILE);
        write_secret_file(&path, self.key.serialize_pem().as_bytes())
            .map_err(|source| IdentityError::Io { path, source })
    }

    /// The public key clients pin.
    pub fn pin(&self) -> KeyPin {
        self.pin
    }

    /// A second handle on the same key (for a task that signs on its own,
    /// such as settlement), without reading the key file again.
    pub fn duplicate(&self) -> Result<Self, IdentityError> {
        let key = rcgen::KeyPair::try_from(self.key.serialize_der())
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        Self::from_key(key).map_err(IdentityError::Generate)
    }

    /// An Ed25519 signature (RFC 8032) of `message` by this relay, e.g. on
    /// its settlement requests to the issuer; verifiable with the pin alone.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], IdentityError> {
        use rcgen::SigningKey;
        self.key
            .sign(message)
            .map_err(|e| IdentityError::Generate(e.to_string()))?
            .try_into()
            .map_err(|_| IdentityError::Generate("Ed25519 signature is not 64 bytes".into()))
    }

    /// A self-signed certificate carrying this key, and the private key, for
    /// the TLS server. The certificate is only a container for the key: clients
    /// check the key, not names or dates.
    pub fn certificate(
        &self,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), IdentityError> {
        let params = rcgen::CertificateParams::new(vec!["openrelay.invalid".to_owned()])
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let cert = params
            .self_signed(&self.key)
            .map_err(|e| IdentityError::Generate(e.to_string()))?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        Ok((cert.der().clone(), key))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_with_the_pin_alone() {
        let identity = Identity::generate().unwrap();
        let signature = identity.sign(b"settle 3 tokens").unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(identity.pin().as_bytes()).unwrap();
        let signature = ed25519_dalek::Signature::from_bytes(&signature);
        assert!(key.verify_strict(b"settle 3 tokens", &signature).is_ok());
        assert!(key.verify_strict(b"settle 4 tokens", &signature).is_err());
        let twin = identity.duplicate().unwrap();
        assert_eq!(twin.pin(), identity.pin());
        let again = ed25519_dalek::Signature::from_bytes(&twin.sign(b"settle 3 tokens").unwrap());
        assert!(key.verify_strict(b"settle 3 tokens", &again).is_ok());
    }

    #[test]
    fn a_key_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("relay");
        let first = Identity::load_or_create(&state).unwrap();
        let second = Identity::load_or_create(&state).unwrap();
        assert_eq!(first.pin(), second.pin());
        let mode = std::fs::metadata(state.join(KEY_FILE)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_corrupt_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), "not a key").unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(matches!(err, IdentityError::BadKey { .. }), "{err}");
        assert!(err.to_string().contains(KEY_FILE));
    }

    #[test]
    fn the_certificate_carries_the_pinned_key() {
        let identity = Identity::generate().unwrap();
        let (cert, _) = identity.certificate().unwrap();
        let parsed = webpki::EndEntityCert::try_from(&cert).unwrap();
        assert_eq!(
            parsed.subject_public_key_info().as_ref(),
            identity.pin().spki_der().as_slice()
        );
    }
}
