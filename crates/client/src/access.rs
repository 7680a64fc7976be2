//! What building a path needs of the wallet: an access token for the
//! ingress's operator on the tunnel request (RFC 9577 §2.2), and how many
//! the wallet holds (new tokens end a back-off caused by an access
//! refusal). [`crate::account::Account`] implements it; a path and the path
//! manager see only this trait, never the account.

use crate::relay::Relay;

/// Why a tunnel request goes without an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingAccess {
    /// The client has no account.
    NoAccount,
    /// The ingress's operator key is not known, so no token can be scoped
    /// to it.
    UnknownOperator,
    /// The wallet holds none for the ingress's operator.
    NoneLeft,
}

impl MissingAccess {
    /// What the user can do about it.
    pub fn hint(self) -> &'static str {
        match self {
            MissingAccess::NoAccount => "run `openrelay account login` to get tokens",
            MissingAccess::UnknownOperator => {
                "its operator's key is not known (`operator_key` in its [[relay]] entry), so no token can be scoped to it"
            }
            MissingAccess::NoneLeft => {
                "the wallet holds none for its operator; a refill is scheduled (`openrelay account login` if the issuer session expired)"
            }
        }
    }
}

/// Access tokens for tunnel requests.
pub trait AccessTokens: Send + Sync + std::fmt::Debug {
    /// The `Authorization` value for a new tunnel through `ingress`, taken
    /// from its operator's pool (spent: call only once the tunnel request
    /// is about to be sent); why there is none otherwise.
    fn authorization(&self, ingress: &Relay) -> Result<String, MissingAccess>;

    /// Access tokens held for `ingress`'s operator (0 if its operator key
    /// is not known).
    fn held_for(&self, ingress: &Relay) -> usize;
}
