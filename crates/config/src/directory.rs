//! Directory trust: where a process takes the validator-signed directory
//! from and whose signatures it needs (`[directory]` of a client, a relay and
//! the issuer; `[settlement.directory]` of the issuer).

use openrelay_types::KeyPin;
use serde::{Deserialize, Serialize};

use crate::chain::EvmAddress;
use crate::{ConfigError, ServiceEndpoint};

/// The most relays a directory can list (`openrelay_directory::MAX_RELAYS`,
/// which depends on this crate, not the other way round; a test there checks
/// that the two agree).
pub const MAX_RELAYS_LIMIT: usize = 100_000;
/// The most issuers a directory lists key sets of
/// (`openrelay_directory::MAX_ISSUERS`; a test there checks they agree).
pub const MAX_ISSUERS_LIMIT: usize = 64;

/// Where a client gets its relay list: a registry's directory, trusted only
/// with the signatures of its genesis validator set (`validators`, with
/// `threshold` of them, k of n; or with `validator_weights`, more than two
/// thirds of their weight) and of the sets it hands over to on the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The registry serving the directory.
    pub registry: ServiceEndpoint,
    /// The genesis validator set (epoch 0): validators whose signatures
    /// count until the directory carries a hand-over to another set.
    pub validators: Vec<KeyPin>,
    /// Signatures of `validators` required (k of n) while the genesis set
    /// signs; every validator weighs the same. Left out (0) with
    /// `validator_weights`. A hand-over to another set needs more than two
    /// thirds of the genesis set in any case.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub threshold: usize,
    /// The genesis validators' weights (issue 13; on chain, each one's stake
    /// in wei), one per `validators` entry, in order: an integer, or above
    /// 2⁶³ a decimal string. Given, directories and hand-overs need more
    /// than two thirds of the weight, and `threshold` must be left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator_weights: Option<Vec<ValidatorWeight>>,
    /// A directory older than this is refused, cached or not; once the one
    /// in use is this old (or past its own validity), no path is built until
    /// a fresh one arrives.
    #[serde(default = "default_directory_max_age_secs")]
    pub max_age_secs: u64,
    /// Fetch a newer directory this often.
    #[serde(default = "default_directory_refresh_secs")]
    pub refresh_secs: u64,
    /// Use relays whose endpoints are loopback, private, link-local or other
    /// special-purpose addresses. Weakens the client's guard against its
    /// directory: a directory could then make it send packets to hosts
    /// inside its own network. Only for a network of your own (the devnet).
    /// Formerly `allow_special_purpose_endpoints`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dangerously_allow_special_purpose_endpoints: bool,
    /// A client only: the JSON-RPC endpoint (`http://host:port[/path]`) of
    /// a node of the user's own, reached through the relays, against which
    /// every new directory with a chain section is cross-checked (issue 13;
    /// `openrelay client --rpc URL`). A directory the node contradicts is
    /// refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc: Option<String>,
    /// With `rpc`: a directory the node cannot confirm (unreachable, no
    /// usable answer) is refused too, not only one it contradicts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rpc_required: bool,
    /// The registry contract the network lives on (issue 13),
    /// `[directory.chain] chain_id = N` and `contract = "0x..."`: a
    /// directory anchored at another deployment, or at none, is refused,
    /// so validators cannot move users to a contract of their choosing
    /// unnoticed. Left out, the validators' signatures decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainPin>,
}

/// A pinned registry deployment (`[directory.chain]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainPin {
    /// The chain's id.
    pub chain_id: u64,
    /// The registry contract's address.
    pub contract: EvmAddress,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A genesis validator's weight (its stake in wei): a TOML integer, or a
/// decimal string for weights beyond TOML's 2⁶³ − 1. Written back as an
/// integer when it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ValidatorWeight(pub u128);

impl Serialize for ValidatorWeight {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match i64::try_from(self.0) {
            Ok(n) => serializer.serialize_i64(n),
            Err(_) => serializer.collect_str(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for ValidatorWeight {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Integer(i64),
            Decimal(String),
        }
        let weight = match Written::deserialize(deserializer)? {
            Written::Integer(n) => u128::try_from(n).ok(),
            Written::Decimal(text) => text
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| text.parse::<u128>().ok())
                .flatten(),
        };
        weight.map(ValidatorWeight).ok_or_else(|| {
            serde::de::Error::custom("a weight is a non-negative integer below 2^128")
        })
    }
}

fn default_directory_max_age_secs() -> u64 {
    7200
}
fn default_directory_refresh_secs() -> u64 {
    30
}

impl DirectoryConfig {
    /// The genesis weights as integers, if given.
    pub fn weights(&self) -> Option<Vec<u128>> {
        self.validator_weights
            .as_ref()
            .map(|weights| weights.iter().map(|w| w.0).collect())
    }

    /// Checks the settings; errors name the field under `section`.
    pub(crate) fn validate_at(&self, section: &str) -> Result<(), ConfigError> {
        if self.validators.is_empty() {
            return Err(ConfigError::invalid(
                format!("{section}.validators"),
                "must list at least one validator key",
            ));
        }
        match &self.validator_weights {
            None if self.threshold == 0 || self.threshold > self.validators.len() => {
                return Err(ConfigError::invalid(
                    format!("{section}.threshold"),
                    "must be between 1 and the number of validators",
                ));
            }
            None => {}
            Some(_) if self.threshold != 0 => {
                return Err(ConfigError::invalid(
                    format!("{section}.threshold"),
                    "does not apply with validator_weights (more than two thirds of the \
                     weight signs); leave it out",
                ));
            }
            Some(weights) if weights.len() != self.validators.len() => {
                return Err(ConfigError::invalid(
                    format!("{section}.validator_weights"),
                    "needs one weight per validator, in the same order",
                ));
            }
            Some(weights) => {
                if weights.iter().any(|w| w.0 == 0) {
                    return Err(ConfigError::invalid(
                        format!("{section}.validator_weights"),
                        "a weight of 0 gives a validator no say; leave the validator out",
                    ));
                }
                if weights
                    .iter()
                    .try_fold(0u128, |sum, w| sum.checked_add(w.0))
                    .is_none()
                {
                    return Err(ConfigError::invalid(
                        format!("{section}.validator_weights"),
                        "the weights add up to more than 2^128 - 1",
                    ));
                }
            }
        }
        if self.max_age_secs == 0 || self.refresh_secs == 0 {
            return Err(ConfigError::invalid(
                section,
                "max_age_secs and refresh_secs must be at least 1",
            ));
        }
        Ok(())
    }
}
