//! Errors. Every message names what to fix: a population file's field, or
//! the parameter (spelled as the `openrelay sim` flag that sets it).

use std::path::PathBuf;

use crate::policy::Policy;

/// Why a relay population was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PopulationError {
    /// The file cannot be read.
    #[error("cannot read population file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not TOML; the parser's message gives the line.
    #[error("{}not valid TOML: {message}", origin_prefix(origin))]
    Syntax {
        /// The file, or empty for text given directly.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A field is missing, has the wrong type, or an unacceptable value.
    #[error("{}field `{field}`: {reason}", origin_prefix(origin))]
    Field {
        /// The file, or empty for text given directly.
        origin: String,
        /// Path of the field, e.g. `operator[2].bandwidth` (operators are
        /// numbered from 1, in file order).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl PopulationError {
    pub(crate) fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        PopulationError::Field {
            origin: String::new(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn with_origin(self, origin: &str) -> Self {
        match self {
            PopulationError::Syntax { message, .. } => PopulationError::Syntax {
                origin: origin.to_owned(),
                message,
            },
            PopulationError::Field { field, reason, .. } => PopulationError::Field {
                origin: origin.to_owned(),
                field,
                reason,
            },
            other @ PopulationError::Read { .. } => other,
        }
    }
}

fn origin_prefix(origin: &str) -> String {
    if origin.is_empty() {
        String::new()
    } else {
        format!("{origin}: ")
    }
}

/// Why a simulation cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The relay population is invalid.
    #[error(transparent)]
    Population(#[from] PopulationError),
    /// A parameter is out of range. `name` is the `openrelay sim` flag.
    #[error("{name}: {reason}")]
    Parameter {
        /// The flag, e.g. `--adversary-share`.
        name: &'static str,
        /// What is wrong with the value.
        reason: String,
    },
    /// The policy allows no (ingress, egress) pair in this population.
    #[error(transparent)]
    NoValidPath(#[from] NoValidPath),
}

/// A policy allows no (ingress, egress) pair in a population: every
/// ingress relay belongs to the operator of every egress relay. A real
/// client must fail the same way rather than fall back to a same-operator
/// path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the {policy} policy allows no path in this population: every ingress relay belongs to the operator of every egress relay"
)]
pub struct NoValidPath {
    /// The policy.
    pub policy: Policy,
}

impl SimError {
    pub(crate) fn parameter(name: &'static str, reason: impl Into<String>) -> Self {
        SimError::Parameter {
            name,
            reason: reason.into(),
        }
    }
}
