//! Why a configuration file was refused.

use std::path::PathBuf;

use openrelay_types::error::{ErrorKind, HasKind};

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema; the message
    /// names the field and the line.
    #[error("{origin}: {}", source.to_string().trim_end())]
    Parse {
        /// The file, or `<string>`.
        origin: String,
        /// The parser's error (names the field and its position).
        source: toml::de::Error,
    },
    /// A field parsed but its value is not acceptable.
    #[error("{origin}: field `{field}`: {reason}")]
    Invalid {
        /// The file, or `<string>`.
        origin: String,
        /// Dotted path of the field, e.g. `ingress.egress_relays`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file uses a field under its old name (`crate::renamed`).
    #[error("{origin}: field `{old}` was renamed to `{new}` ({why}): rename it in the file")]
    Renamed {
        /// The file, or `<string>`.
        origin: String,
        /// Dotted path of the old field, e.g. `egress.allow`.
        old: String,
        /// Dotted path of its new name.
        new: String,
        /// Why it was renamed (what it weakens, when it does).
        why: &'static str,
    },
    /// A config could not be written as TOML (a value TOML cannot hold).
    #[error("cannot write the config as TOML")]
    Serialize(#[source] toml::ser::Error),
}

impl HasKind for ConfigError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConfigError::Read { .. } => ErrorKind::Local,
            ConfigError::Parse { .. }
            | ConfigError::Invalid { .. }
            | ConfigError::Renamed { .. } => ErrorKind::Config,
            ConfigError::Serialize(_) => ErrorKind::Internal,
        }
    }
}

impl ConfigError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            origin: String::new(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn with_origin(self, origin: &str) -> Self {
        match self {
            ConfigError::Parse { source, .. } => ConfigError::Parse {
                origin: origin.to_owned(),
                source,
            },
            ConfigError::Invalid { field, reason, .. } => ConfigError::Invalid {
                origin: origin.to_owned(),
                field,
                reason,
            },
            ConfigError::Renamed { old, new, why, .. } => ConfigError::Renamed {
                origin: origin.to_owned(),
                old,
                new,
                why,
            },
            other => other,
        }
    }
}
