//! `[chain]`: the registry contract on an EVM chain that the registry and
//! every validator follow (issue 13). Each reads the chain through its own
//! node: a validator that trusted the registry's node would check nothing.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The most confirmations asked for: a follower keeps this many recent
/// blocks to undo, so the bound keeps its memory bounded.
pub const MAX_CONFIRMATIONS: u64 = 256;

/// Where the registry contract is and how to follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC URL of an EVM node: `http://` only (openrelay speaks
    /// JSON-RPC without TLS).
    pub rpc: String,
    /// The chain's id (EIP-155): a node of another chain is refused.
    pub chain_id: u64,
    /// The registry contract's address, `0x` and 40 hex digits.
    pub contract: EvmAddress,
    /// The block the contract was deployed in: events are read from here.
    #[serde(default)]
    pub deployed_at_block: u64,
    /// Blocks a change must be under before it counts: reorganisations up
    /// to this depth are undone, deeper ones stop the follower with an
    /// error. At most [`MAX_CONFIRMATIONS`].
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    /// How often the node is asked for new blocks.
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// Which verdict parameters measurement epochs are judged with
    /// (`openrelay_measure::MeasureParams`, docs/measurement.md). The
    /// registry and every validator of a network must use the same, or
    /// their outcomes, and so their directories and slashes, differ.
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub verdicts: VerdictProfile,
}

/// A named set of verdict parameters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictProfile {
    /// `MeasureParams::default()`: a public network.
    #[default]
    Production,
    /// `MeasureParams::devnet()`: fewer failing epochs to a slash, for the
    /// devnet and tests.
    Devnet,
}

fn default_confirmations() -> u64 {
    12
}
fn default_poll_interval_secs() -> u64 {
    4
}

impl ChainConfig {
    /// Checks the values (field names prefixed with `section`).
    pub(crate) fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if !self.rpc.starts_with("http://") {
            return Err(ConfigError::invalid(
                format!("{section}.rpc"),
                "must be an http:// URL: openrelay speaks JSON-RPC without TLS, so reach your \
                 node on loopback or a private network, or through a local TLS proxy",
            ));
        }
        if self.chain_id == 0 {
            return Err(ConfigError::invalid(
                format!("{section}.chain_id"),
                "must be the chain's EIP-155 id (not 0)",
            ));
        }
        if self.confirmations > MAX_CONFIRMATIONS {
            return Err(ConfigError::invalid(
                format!("{section}.confirmations"),
                format!("must be at most {MAX_CONFIRMATIONS}"),
            ));
        }
        if self.poll_interval_secs == 0 {
            return Err(ConfigError::invalid(
                format!("{section}.poll_interval_secs"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// An EVM address (a contract or an account): 20 bytes, written `0x` and
/// 40 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EvmAddress(pub [u8; 20]);

/// Why an EVM address does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an EVM address is 0x and 40 hex digits, not {0:?}")]
pub struct EvmAddressError(String);

impl std::str::FromStr for EvmAddress {
    type Err = EvmAddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || EvmAddressError(text.chars().take(64).collect());
        let digits = text.strip_prefix("0x").ok_or_else(bad)?;
        if digits.len() != 40 {
            return Err(bad());
        }
        let mut bytes = [0u8; 20];
        for (byte, pair) in bytes.iter_mut().zip(digits.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(EvmAddress(bytes))
    }
}

impl TryFrom<String> for EvmAddress {
    type Error = EvmAddressError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<EvmAddress> for String {
    fn from(address: EvmAddress) -> String {
        address.to_string()
    }
}

impl std::fmt::Display for EvmAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("0x")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn config(extra: &str) -> Result<ChainConfig, String> {
        let text = format!(
            "rpc = \"http://127.0.0.1:8545\"\nchain_id = 31337\n\
             contract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n{extra}"
        );
        let config: ChainConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.validate("chain").map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn a_chain_section_parses_with_defaults() {
        let config = config("").unwrap();
        assert_eq!(config.confirmations, 12);
        assert_eq!(
            config.contract.to_string(),
            "0x5fbdb2315678afecb367f032d93f642f64180aa3"
        );
        let round: ChainConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(round, config);
    }

    #[test]
    fn bad_chain_values_name_the_field() {
        let https = "rpc = \"https://node.example\"\nchain_id = 1\n\
                     contract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n";
        let over_tls: ChainConfig = toml::from_str(https).unwrap();
        let err = over_tls.validate("chain").unwrap_err().to_string();
        assert!(
            err.contains("chain.rpc") && err.contains("without TLS"),
            "{err}"
        );
        for (extra, field) in [
            ("confirmations = 1000", "chain.confirmations"),
            ("poll_interval_secs = 0", "chain.poll_interval_secs"),
        ] {
            let err = config(extra).unwrap_err();
            assert!(err.contains(field), "{extra}: {err}");
        }
        for bad in ["5FbDB2315678afecb367f032d93F642f64180aa3", "0x12", "0xzz"] {
            assert!(bad.parse::<EvmAddress>().is_err(), "{bad}");
        }
    }
}
