#![doc = include_str!("../README.md")]

/// `load`, `from_toml` and `to_toml` of a config whose file has its own
/// shape: `$renamed` are its fields under old names, `validate` its checks.
macro_rules! config_file {
    ($config:ty, $renamed:expr, $what:literal) => {
        impl $config {
            #[doc = concat!("Reads and validates ", $what, " config file.")]
            pub fn load(path: &std::path::Path) -> Result<Self, crate::ConfigError> {
                crate::load(path, Self::from_toml)
            }

            #[doc = concat!("Parses and validates ", $what, " config text.")]
            pub fn from_toml(text: &str) -> Result<Self, crate::ConfigError> {
                crate::from_text(text, $renamed, |config: Self| {
                    config.validate()?;
                    Ok(config)
                })
            }

            /// Serialises the config as TOML.
            pub fn to_toml(&self) -> Result<String, crate::ConfigError> {
                crate::to_toml(self)
            }
        }
    };
}
pub(crate) use config_file;

pub mod chain;
pub mod client;
pub mod congestion;
pub mod directory;
pub mod endpoints;
mod error;
pub mod issuer;
pub mod limits;
pub mod log;
pub mod measure;
pub mod registry;
pub mod relay;
mod renamed;
pub mod validator;

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use client::{
    AccountConfig, AttestationMode, ClientConfig, MIN_TUN_MTU, PathConfig, RelayEntry,
    TrustPolicyConfig, TunConfig, TunDnsConfig,
};
pub use congestion::CongestionControl;
pub use directory::{
    ChainPin, DirectoryConfig, MAX_ISSUERS_LIMIT, MAX_RELAYS_LIMIT, ValidatorWeight,
};
pub use endpoints::ServiceEndpoint;
pub use error::ConfigError;
pub use issuer::{IssuerConfig, KeyPublishConfig, SettlementRelays};
pub use limits::LimitsConfig;
pub use log::LogConfig;
pub use measure::{MeasureConfig, MisreportForTests, ProbeAccountConfig};
pub use registry::{PublicationLimits, RegistryConfig};
pub use relay::{
    AdmissionConfig, DenyEntry, EgressConfig, EgressRelayConfig, IngressConfig, IngressRelayConfig,
    Net, PaymentConfig, PublishConfig, Relay, RelayAttestationConfig, RelayCommon, RelayConfig,
    ThrottleForTestsConfig,
};
pub use validator::{ReleaseCheckConfig, ReleaseVotesConfig, ValidatorConfig};

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A file's text, or why it cannot be read.
fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses `text` strictly as the file shape `F`; when that fails because
/// the text uses one of `renames`, says so instead.
fn parse<F: DeserializeOwned>(text: &str, renames: &[renamed::Renamed]) -> Result<F, ConfigError> {
    toml::from_str(text).map_err(|e| {
        renamed::find(text, renames).unwrap_or(ConfigError::Parse {
            origin: String::new(),
            source: e,
        })
    })
}

/// Parses config text as the file shape `F` and turns it into the checked
/// config (`check`); errors name `<string>` as their origin.
fn from_text<F: DeserializeOwned, T>(
    text: &str,
    renames: &[renamed::Renamed],
    check: impl FnOnce(F) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    parse(text, renames)
        .and_then(check)
        .map_err(|e| e.with_origin("<string>"))
}

/// Reads a config file with `from_toml`; errors name the file.
fn load<T>(
    path: &Path,
    from_toml: impl FnOnce(&str) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    from_toml(&read(path)?).map_err(|e| e.with_origin(&path.display().to_string()))
}

/// Writes a config as TOML.
fn to_toml<T: Serialize>(value: &T) -> Result<String, ConfigError> {
    toml::to_string(value).map_err(ConfigError::Serialize)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
