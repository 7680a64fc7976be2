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
    #[error("{path}: not an Ed25519 private key")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// Generating a key or certificate, or signing, failed.
    #[error("cannot create key material")]
    Generate(#[source] rcgen::Error),
    /// A key made or copied here is unusable (a bug in the key library).
    #[error("the key made is unusable")]
    Unusable(#[source] KeyError),
    /// A signature is not the 64 bytes of an Ed25519 signature.
    #[error("the signature made is not 64 bytes")]
    SignatureLength,
}

/// What is wrong with a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM text does not parse as a private key.
    #[error(transparent)]
    Parse(#[from] rcgen::Error),
    /// It is another kind of key than Ed25519.
    #[error("the key is not Ed25519")]
    NotEd25519,
    /// Its public half is not 32 bytes.
    #[error("its public key is not 32 bytes")]
    PublicKeyLength,
}

impl openrelay_types::HasKind for IdentityError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        use openrelay_types::ErrorKind;
        match self {
            IdentityError::Io { .. } => ErrorKind::Local,
            IdentityError::BadKey { .. } => ErrorKind::Config,
            IdentityError::Generate(_) => ErrorKind::Local,
            IdentityError::Unusable(_) | IdentityError::SignatureLength => ErrorKind::Internal,
        }
    }
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
        let key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(IdentityError::Generate)?;
        Self::from_key(key).map_err(IdentityError::Unusable)
    }

    fn from_key(key: rcgen::KeyPair) -> Result<Self, KeyError> {
        if !key.is_compatible(&rcgen::PKCS_ED25519) {
            return Err(KeyError::NotEd25519);
        }
        let raw: [u8; 32] = key
            .public_key_raw()
            .try_into()
            .map_err(|_| KeyError::PublicKeyLength)?;
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
            Ok(pem) => rcgen::KeyPair::from_pem(&pem)
                .map_err(KeyError::Parse)
                .and_then(Self::from_key)
                .map_err(|source| IdentityError::BadKey { path, source }),
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
            .map_err(|e| IdentityError::Unusable(KeyError::Parse(e)))?;
        Self::from_key(key).map_err(IdentityError::Unusable)
    }

    /// An Ed25519 signature (RFC 8032) of `message` by this relay, e.g. on
    /// its settlement requests to the issuer; verifiable with the pin alone.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; 64], IdentityError> {
        use rcgen::SigningKey;
        self.key
            .sign(message)
            .map_err(IdentityError::Generate)?
            .try_into()
            .map_err(|_| IdentityError::SignatureLength)
    }

    /// A self-signed certificate carrying this key, and the private key, for
    /// the TLS server. The certificate is only a container for the key: clients
    /// check the key, not names or dates.
    pub fn certificate(
        &self,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), IdentityError> {
        let params = rcgen::CertificateParams::new(vec!["openrelay.invalid".to_owned()])
            .map_err(IdentityError::Generate)?;
        let cert = params
            .self_signed(&self.key)
            .map_err(IdentityError::Generate)?;
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
        assert!(
            matches!(
                err,
                IdentityError::BadKey {
                    source: KeyError::Parse(_),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(KEY_FILE));
        assert_eq!(
            openrelay_types::HasKind::kind(&err),
            openrelay_types::ErrorKind::Config
        );
        // A key of another kind is named as such, not as unparsable.
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        std::fs::write(dir.path().join(KEY_FILE), other.serialize_pem()).unwrap();
        let err = Identity::load_or_create(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                IdentityError::BadKey {
                    source: KeyError::NotEd25519,
                    ..
                }
            ),
            "{err}"
        );
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
