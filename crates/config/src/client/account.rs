//! `[account]` in the client config: the token issuer the client's account
//! is with. With it, the client keeps a wallet of Privacy Pass tokens (in its
//! state directory), shows one to the ingress for each tunnel and pays its
//! egress relays with them; `openrelay account register|login` use it.

use serde::{Deserialize, Serialize};

use crate::{ConfigError, ServiceEndpoint};

/// The client's issuer and how many tokens it keeps at hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The issuer's address and the key its TLS handshake must prove.
    pub issuer: ServiceEndpoint,
    /// The issuer's name in token challenges (RFC 9577 §2.1.1): the relays'
    /// `issuer_name`.
    pub issuer_name: String,
    /// Tokens fetched at once for a kind of token (access, or payment to one
    /// egress relay) that runs low.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// A kind of token runs low below this many.
    #[serde(default = "default_low_water")]
    pub low_water: usize,
    /// A refill starts at a random moment at least this many seconds after
    /// a pool ran low, and never within this many seconds of a browsing
    /// path's start, so the issuer cannot tie it to a session by its time.
    #[serde(default = "default_refill_delay_min_secs")]
    pub refill_delay_min_secs: u64,
    /// ... and at most this many seconds after the pool ran low.
    #[serde(default = "default_refill_delay_max_secs")]
    pub refill_delay_max_secs: u64,
}

fn default_batch() -> usize {
    8
}
fn default_low_water() -> usize {
    3
}
fn default_refill_delay_min_secs() -> u64 {
    5
}
fn default_refill_delay_max_secs() -> u64 {
    60
}

impl AccountConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if !crate::issuer::is_server_name(&self.issuer_name) {
            return Err(ConfigError::invalid(
                "account.issuer_name",
                "must be a server name (host or host:port)",
            ));
        }
        if self.batch == 0 || self.batch > 1000 {
            return Err(ConfigError::invalid(
                "account.batch",
                "must be between 1 and 1000",
            ));
        }
        if self.low_water > self.batch {
            return Err(ConfigError::invalid(
                "account.low_water",
                "must not exceed account.batch",
            ));
        }
        if self.refill_delay_min_secs == 0 {
            return Err(ConfigError::invalid(
                "account.refill_delay_min_secs",
                "must be at least 1 (a refill at once is timed by the session that used the tokens)",
            ));
        }
        if self.refill_delay_max_secs < self.refill_delay_min_secs {
            return Err(ConfigError::invalid(
                "account.refill_delay_max_secs",
                "must not be less than account.refill_delay_min_secs",
            ));
        }
        Ok(())
    }
}
