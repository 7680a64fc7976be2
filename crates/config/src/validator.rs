//! `openrelay validator --config FILE`: a validator checks the registry's
//! proposals against the publications it saw and signs the directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use openrelay_types::KeyPin;
use serde::{Deserialize, Serialize};

use crate::registry::{RENAMED, check_threshold};
use crate::{ConfigError, LimitsConfig, LogConfig, PublicationLimits, ServiceEndpoint, is_default};

/// `openrelay validator --config FILE`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidatorConfig {
    /// UDP address where relays publish to this validator.
    pub listen: SocketAddr,
    /// Its signing key (`validator.key`), TLS key and store
    /// (`validator.redb`: the relays it saw, what it signed).
    pub state_dir: PathBuf,
    /// The registry whose proposals it checks and signs.
    pub registry: ServiceEndpoint,
    /// Every validator's public key, this one's included: whose votes count
    /// when a proposal's relay list is checked.
    pub validators: Vec<KeyPin>,
    /// The fewest votes a proposal must carry (the clients' threshold).
    pub threshold: usize,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// How often it votes and asks for a new proposal.
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// The longest validity it signs a directory for.
    #[serde(default = "default_max_directory_lifetime_secs")]
    pub max_directory_lifetime_secs: u64,
    /// What relays may publish (the same as at the registry).
    #[serde(default)]
    pub publication: PublicationLimits,
    /// Connection, stream and time limits of its publication server
    /// (service defaults).
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: LimitsConfig,
    /// The registry contract, read through this validator's own node: it
    /// signs only directories listing exactly the relays the chain has
    /// registered and covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<crate::chain::ChainConfig>,
    /// Measuring relays (`[measure]`): the probes' source address, never
    /// `listen`'s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<crate::MeasureConfig>,
    /// Voting on releases (`[release_votes]`, docs/chain.md "Release
    /// votes"): needs `[chain]`. Absent: the validator does not vote (and
    /// does not commit, so it is never slashed for a vote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_votes: Option<ReleaseVotesConfig>,
}

/// `[release_votes]`: how a validator decides on proposed releases. It
/// commits, reveals and settles through the chain of `[chain]` with its
/// EVM account (the one in the validator set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseVotesConfig {
    /// How a proposal is judged.
    pub check: ReleaseCheckConfig,
    /// The validator's EVM account key. Relative paths are under
    /// `state_dir`; default: `[measure]`'s `account_key_file`, else
    /// `evm.key` there. With `[measure]` it must be the same file: one
    /// account sends all of a validator's transactions, in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_key_file: Option<PathBuf>,
    /// With `check = "rebuild"`: where the release manifests are
    /// (`openrelay.manifest.json` files as `openrelay release build`
    /// writes them, any file names); the one whose release id is proposed
    /// is rebuilt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests_dir: Option<PathBuf>,
    /// With `check = "rebuild"`: the source checkout of the release
    /// (checked out at the release's commit by the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_dir: Option<PathBuf>,
    /// With `check = "rebuild"`: the release keys whose signatures count.
    #[serde(default)]
    pub trusted_release_keys: Vec<openrelay_types::KeyPin>,
    /// With `check = "rebuild"`: how many of them must have signed.
    #[serde(default = "default_required_release_signatures")]
    pub required_release_signatures: usize,
}

fn default_required_release_signatures() -> usize {
    1
}

/// How a validator judges a proposed release (`ReleaseCheck` in
/// `openrelay_registry::validator::release_votes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseCheckConfig {
    /// **Insecure, devnet only**: approve iff the proposed binary's
    /// SHA-256 is that of the validator's own executable. It proves
    /// nothing about reproducibility (the devnet runs one binary).
    OwnBinaryInsecureDevnet,
    /// Rebuild the release from `source_dir` with the manifest of its id
    /// from `manifests_dir` (`openrelay release verify`): approve a
    /// bit-identical rebuild with enough trusted signatures whose binary
    /// and measurements are the proposal's, reject otherwise, abstain
    /// while no manifest is at hand or the rebuild runs.
    Rebuild,
    /// **Tests only, dishonest**: reject every proposal (a validator
    /// voting against the majority, to show it loses stake).
    RejectAllForTests,
}

fn default_poll_interval_secs() -> u64 {
    5
}
fn default_max_directory_lifetime_secs() -> u64 {
    7200
}

crate::config_file!(ValidatorConfig, RENAMED, "a validator");

impl ValidatorConfig {
    /// The EVM account key file release votes are sent with, if the
    /// validator votes on releases.
    pub fn release_votes_key_file(&self) -> Option<PathBuf> {
        let votes = self.release_votes.as_ref()?;
        Some(match (&votes.account_key_file, &self.measure) {
            (Some(file), _) => self.state_dir.join(file),
            (None, Some(measure)) => measure.account_key_file(&self.state_dir),
            (None, None) => self.state_dir.join(crate::measure::ACCOUNT_KEY_FILE),
        })
    }

    /// Only `state_dir` of a validator config file, which may be unfinished:
    /// a new validator prints its key (`--print-key`) before the file can
    /// list it among `validators`.
    pub fn load_state_dir(path: &Path) -> Result<PathBuf, ConfigError> {
        #[derive(Deserialize)]
        struct StateDirOnly {
            state_dir: PathBuf,
        }
        crate::load(path, |text| crate::parse::<StateDirOnly>(text, &[])).map(|only| only.state_dir)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_threshold(&self.validators, self.threshold)?;
        if let Some(chain) = &self.chain {
            chain.validate("chain")?;
        }
        if let Some(measure) = &self.measure {
            measure.validate(self.listen)?;
        }
        if self.release_votes.is_some() && self.chain.is_none() {
            return Err(ConfigError::invalid(
                "release_votes",
                "needs [chain]: votes are transactions on the registry's chain",
            ));
        }
        if let Some(votes) = &self.release_votes
            && votes.check == ReleaseCheckConfig::Rebuild
        {
            for (field, missing) in [
                ("release_votes.manifests_dir", votes.manifests_dir.is_none()),
                ("release_votes.source_dir", votes.source_dir.is_none()),
                (
                    "release_votes.trusted_release_keys",
                    votes.trusted_release_keys.is_empty(),
                ),
            ] {
                if missing {
                    return Err(ConfigError::invalid(
                        field,
                        "is needed with check = \"rebuild\"",
                    ));
                }
            }
            if !(1..=votes.trusted_release_keys.len()).contains(&votes.required_release_signatures)
            {
                return Err(ConfigError::invalid(
                    "release_votes.required_release_signatures",
                    "must be between 1 and the number of trusted_release_keys",
                ));
            }
        }
        if let (Some(votes), Some(measure)) = (&self.release_votes, &self.measure)
            && votes.account_key_file.is_some()
            && votes.account_key_file != measure.account_key_file
        {
            return Err(ConfigError::invalid(
                "release_votes.account_key_file",
                "must be [measure]'s account_key_file (or left out): a validator has one account",
            ));
        }
        for (field, value) in [
            ("poll_interval_secs", self.poll_interval_secs),
            (
                "max_directory_lifetime_secs",
                self.max_directory_lifetime_secs,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be at least 1"));
            }
        }
        self.limits.validate()?;
        self.publication.validate()
    }
}
