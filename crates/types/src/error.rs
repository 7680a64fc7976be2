//! What kind of failure an error is, as callers and logs need it (after
//! arti's `tor_error::HasKind`): every library error of openrelay says its
//! [`ErrorKind`], so a caller decides on a kind (retry, report, give up)
//! and a relay logs a kind, never an error's text, which may quote what a
//! peer sent.

/// The kinds of failure openrelay's errors fall into. Small on purpose: a
/// caller matches on it, an operator reads it in a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A config file, key file or command-line value is wrong; fixing it
    /// is the operator's job.
    Config,
    /// A local resource failed: a socket, file descriptors, a file, the
    /// system's randomness, a command.
    Local,
    /// The process's own storage (a database) failed.
    Storage,
    /// The peer could not be reached, or not in time, or the connection
    /// was lost; trying later may work.
    Unreachable,
    /// The peer broke the protocol or proved another key than the pinned
    /// one.
    PeerMisbehaved,
    /// The peer answered and refused (an HTTP status other than success).
    Refused,
    /// Input from a peer or a user is malformed or breaks a rule.
    BadInput,
    /// A signature, proof or credential did not verify.
    NotAuthenticated,
    /// A limit was reached (a quota, a size, a rate).
    LimitReached,
    /// A bug in openrelay: a state that should not happen.
    Internal,
}

impl ErrorKind {
    /// A fixed name for logs (`snake_case`).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Local => "local",
            ErrorKind::Storage => "storage",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::PeerMisbehaved => "peer_misbehaved",
            ErrorKind::Refused => "refused",
            ErrorKind::BadInput => "bad_input",
            ErrorKind::NotAuthenticated => "not_authenticated",
            ErrorKind::LimitReached => "limit_reached",
            ErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error that says its [`ErrorKind`].
pub trait HasKind {
    /// What kind of failure this is.
    fn kind(&self) -> ErrorKind;
}
