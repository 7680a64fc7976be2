//! The relay's TEE as its publisher uses it (issue 15, item 4): evidence
//! for each descriptor, whose report data binds the relay's id, the QUIC key
//! it asks clients to pin and the descriptor's `not_before`
//! (`openrelay_attest::report_data`), so it proves nothing for another
//! relay, key or refresh.

use std::path::{Path, PathBuf};

use openrelay_attest::{Binding, InsecureSimulatedTee, report_data};
use openrelay_config::RelayAttestationConfig;
use openrelay_directory::{AttestationEvidence, FormatError};
use openrelay_types::KeyPin;

/// Why the relay's TEE cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayTeeError {
    /// The simulated TEE's key file cannot be read.
    #[error("publish.attestation.key_file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The key file does not hold 64 hex digits.
    #[error("publish.attestation.key_file {path}: not a 32-byte key in 64 hex digits")]
    KeyFormat {
        /// The file.
        path: PathBuf,
    },
    /// The relay's own executable, which the simulated TEE measures,
    /// cannot be read.
    #[error("cannot read the relay's executable to measure it: {0}")]
    Executable(std::io::Error),
    /// The evidence does not fit a descriptor.
    #[error("attestation evidence does not fit a descriptor: {0}")]
    TooLarge(FormatError),
}

/// Where a relay's evidence comes from.
#[derive(Debug)]
pub enum RelayTee {
    /// A key standing in for a TEE (devnet, CI): proves nothing.
    InsecureSimulated {
        /// The key.
        tee: InsecureSimulatedTee,
        /// What it signs as the relay's software: the SHA-384 of the
        /// relay's executable (`openrelay_release::measurement::insecure_simulated_measurement`,
        /// the figure a release manifest lists for this platform).
        measurement: [u8; 48],
    },
}

impl RelayTee {
    /// The TEE `config` names (`None`: no TEE).
    pub fn from_config(config: &RelayAttestationConfig) -> Result<Option<Self>, RelayTeeError> {
        match config {
            RelayAttestationConfig::None => Ok(None),
            RelayAttestationConfig::InsecureSimulated {
                key_file,
                measure_modified_build_for_tests,
            } => {
                let seed = read_seed(key_file)?;
                let mut executable = std::env::current_exe()
                    .and_then(std::fs::read)
                    .map_err(RelayTeeError::Executable)?;
                if *measure_modified_build_for_tests {
                    executable.push(0);
                }
                Ok(Some(RelayTee::InsecureSimulated {
                    tee: InsecureSimulatedTee::from_seed(seed),
                    measurement: openrelay_release::measurement::insecure_simulated_measurement(
                        &executable,
                    ),
                }))
            }
        }
    }

    /// Evidence for the descriptor of relay `relay_id` pinning `quic_pin`,
    /// valid from `not_before`.
    pub fn evidence(
        &self,
        relay_id: [u8; 32],
        quic_pin: KeyPin,
        not_before: u64,
    ) -> Result<AttestationEvidence, RelayTeeError> {
        let report_data = report_data(&Binding {
            relay_id,
            key_pin: *quic_pin.as_bytes(),
            not_before,
        });
        let evidence = match self {
            RelayTee::InsecureSimulated { tee, measurement } => {
                tee.evidence(&report_data, measurement)
            }
        };
        AttestationEvidence::new(evidence.to_bytes()).map_err(RelayTeeError::TooLarge)
    }
}

/// The public key of the simulated TEE whose key is in `key_file`: what
/// clients name as `[trust.tee] insecure_simulated_root`.
pub fn insecure_simulated_root(key_file: &Path) -> Result<[u8; 32], RelayTeeError> {
    Ok(InsecureSimulatedTee::from_seed(read_seed(key_file)?).root())
}

/// The 32-byte seed in `path`, as 64 hex digits (surrounding whitespace
/// allowed).
fn read_seed(path: &Path) -> Result<[u8; 32], RelayTeeError> {
    let text = std::fs::read_to_string(path).map_err(|source| RelayTeeError::KeyFile {
        path: path.to_owned(),
        source,
    })?;
    let format = || RelayTeeError::KeyFormat {
        path: path.to_owned(),
    };
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return Err(format());
    }
    let mut seed = [0u8; 32];
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| format())?;
    }
    Ok(seed)
}
