//! `openrelay devnet --chain`: a local EVM chain (anvil) for the devnet's
//! registry. The registry contract is deployed with the devnet's validators
//! as its genesis set, every operator gets an EVM account (a key file in its
//! state directory) that registers its operator key, stakes exactly what its
//! relays' bandwidth needs and registers each relay with the hash of the
//! descriptor the relay will publish; the registry's and validators'
//! configs get the chain's `[chain]` section.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use openrelay_chain::anvil::Anvil;
use openrelay_chain::deploy::{ChainParams, GenesisValidator, deploy};
use openrelay_chain::operator::{
    DEFAULT_RPC_TIMEOUT, Registry, create_key_file, load_key_file, signing_provider,
};
use openrelay_chain::release::ReleaseError;
use openrelay_config::ProbeAccountConfig;
use openrelay_config::chain::{ChainConfig, EvmAddress};
use openrelay_config::issuer::SettlementRelays;
use openrelay_config::{
    ChainPin, DirectoryConfig, MeasureConfig, MisreportForTests, RelayConfig, ReleaseCheckConfig,
    ReleaseVotesConfig, ThrottleForTestsConfig,
};
use openrelay_registry::publisher::Publisher;
use openrelay_transport::identity::Identity;
use openrelay_types::{KeyPin, RelayRole};

use crate::{DevnetError, DevnetPlan};

/// The devnet chain's id (anvil's usual one).
pub const DEVNET_CHAIN_ID: u64 = 31_337;
/// A block a second: transactions are mined about as fast as on a busy
/// chain, and the follower sees several blocks per directory.
const BLOCK_TIME: Duration = Duration::from_secs(1);
/// How long the devnet waits for one of its transactions to be mined.
const CONFIRM_WITHIN: Duration = Duration::from_secs(60);
/// One ether in wei.
const ETHER: u128 = 1_000_000_000_000_000_000;
/// What every account gets beyond its stake: gas, and (for operators)
/// room to stake more or register a relay by hand during the run.
const SPARE_WEI: u128 = 100 * ETHER;
/// An EVM account key file's name in an operator's or validator's state
/// directory (where a measuring validator's `[measure]` looks by default).
pub const ACCOUNT_KEY_FILE: &str = openrelay_config::measure::ACCOUNT_KEY_FILE;

/// `--measure`: validators measure the relays in epochs of `epoch` (the
/// reveal window is a quarter of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureOptions {
    /// The measurement epoch.
    pub epoch: Duration,
    /// Relays (by name) that carry less than they advertise: throttled to
    /// these bits per second, below [`MEASURED_RELAY_BPS`], except for the
    /// validators' published addresses (a relay that serves the
    /// validators it knows fast and everyone else slow).
    pub short_relays_for_tests: Vec<(String, u64)>,
    /// Relays (by name) the devnet's last validator reports at these bits
    /// per second whatever it measures (a validator inflating a friend).
    pub misreports_for_tests: Vec<(String, u64)>,
}

/// What every relay of a measuring devnet advertises. They share one
/// machine, which carries several times this for each relay at once even in
/// a debug build, so an honest relay passes; a relay throttled below it
/// (`short_relays_for_tests`) lies.
pub const MEASURED_RELAY_BPS: u64 = 40_000_000;

/// Has every relay of a measuring devnet advertise [`MEASURED_RELAY_BPS`]
/// and throttles the short ones to what they carry.
fn advertise_measurable_bandwidth(
    plan: &mut DevnetPlan,
    measure: &MeasureOptions,
) -> Result<(), DevnetError> {
    let named = measure
        .short_relays_for_tests
        .iter()
        .chain(&measure.misreports_for_tests);
    for (name, _) in named {
        if !plan.relays.iter().any(|(n, _)| n == name) {
            return Err(DevnetError::UnknownRelay(name.clone()));
        }
    }
    // What a relay can know of the validators: their published addresses.
    let validators: Vec<IpAddr> = (1..=plan.validators.len())
        .map(|i| IpAddr::V4(crate::validator_address(i)))
        .collect();
    for (name, relay) in &mut plan.relays {
        let common = relay.common_mut();
        common.throttle_for_tests = measure
            .short_relays_for_tests
            .iter()
            .find(|(short, _)| short == name)
            .map(|(_, bps)| ThrottleForTestsConfig {
                bps: *bps,
                exempt_sources: validators.clone(),
            });
        if let Some(publish) = common.publish.as_mut() {
            publish.bandwidth_bps = MEASURED_RELAY_BPS;
        }
    }
    for entry in plan.client.relays.iter_mut() {
        entry.bandwidth_bps = Some(MEASURED_RELAY_BPS);
    }
    Ok(())
}

/// A devnet operator's account on the chain.
#[derive(Debug, Clone)]
pub struct OperatorAccount {
    /// `operator-<i>`.
    pub name: String,
    /// Its EVM account.
    pub account: Address,
    /// The account's key file (for `openrelay operator ... --key-file`).
    pub key_file: PathBuf,
    /// Its Ed25519 operator key.
    pub operator_key: KeyPin,
    /// What it staked (wei): the cover of its relays' bandwidth.
    pub stake: U256,
}

/// The devnet's running chain; dropping it kills anvil.
#[derive(Debug)]
pub struct DevnetChain {
    anvil: Anvil,
    config: ChainConfig,
    contract: Address,
    operators: Vec<OperatorAccount>,
    release: DevnetRelease,
}

/// The devnet's release vote (issue 15): the devnet proposes the binary it
/// runs, and its validators vote on it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReleaseOptions {
    /// The last validator rejects every release (`[release_votes] check =
    /// "reject_all_for_tests"`): a validator voting against the majority.
    pub dissenting_validator_for_tests: bool,
}

/// What the devnet proposed.
#[derive(Debug, Clone, Copy)]
pub struct DevnetRelease {
    /// The release id (SHA-256 of its statement).
    pub release_id: [u8; 32],
    /// The ballot deciding it.
    pub ballot: u64,
}

impl DevnetChain {
    /// The `[chain]` section the registry and validators follow.
    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    /// The registry contract.
    pub fn contract(&self) -> Address {
        self.contract
    }

    /// The operators' accounts.
    pub fn operators(&self) -> &[OperatorAccount] {
        &self.operators
    }

    /// The node (to fund more accounts).
    pub fn anvil(&self) -> &Anvil {
        &self.anvil
    }

    /// The lines the devnet prints after its ready line: the chain, then
    /// one per operator with the account's key file.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "chain rpc={} chain_id={} contract={}",
            self.config.rpc, self.config.chain_id, self.contract
        )];
        lines.extend(self.operators.iter().map(|o| {
            format!(
                "operator name={} account={} key_file={} operator_key={}",
                o.name,
                o.account,
                o.key_file.display(),
                o.operator_key
            )
        }));
        let id: String = self
            .release
            .release_id
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        lines.push(format!("release id={id} ballot={}", self.release.ballot));
        lines
    }

    /// The devnet's release proposal.
    pub fn release(&self) -> DevnetRelease {
        self.release
    }
}

/// The EVM account key at `path`, created on first use (a devnet state
/// directory run again keeps its accounts; the chain is new each run).
fn account_key(path: &Path) -> Result<PrivateKeySigner, DevnetError> {
    if path.exists() {
        return Ok(load_key_file(path)?);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| DevnetError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
    }
    Ok(create_key_file(path)?)
}

/// Mbit/s that cover `bps` (rounded up: a descriptor may advertise at most
/// what the chain registers).
fn mbps_of(bps: u64) -> Result<u32, DevnetError> {
    u32::try_from(bps.div_ceil(1_000_000)).map_err(|_| DevnetError::Bandwidth(bps))
}

/// One relay as the chain registers it.
struct ChainRelay {
    key: [u8; 32],
    role: RelayRole,
    mbps: u32,
    descriptor_hash: [u8; 32],
}

/// The relay `config` as its publisher will describe it: its relay key,
/// role, bandwidth and descriptor hash, and its operator's profile hash.
fn chain_relay(config: &RelayConfig) -> Result<(ChainRelay, [u8; 32]), DevnetError> {
    let (common, role) = match config {
        RelayConfig::Ingress(relay) => (&relay.common, RelayRole::Ingress),
        RelayConfig::Egress(relay) => (&relay.common, RelayRole::Egress),
    };
    let publish = common
        .publish
        .as_ref()
        .ok_or(DevnetError::ChainNeedsRegistry)?;
    let identity = Identity::load_or_create(&common.state_dir)?;
    let publisher = Publisher::new(publish, role, common.listen, &identity, &common.state_dir)?;
    let key = openrelay_registry::keyfile::relay_key(&common.state_dir)?;
    let relay = ChainRelay {
        key: key.id().to_bytes(),
        role,
        mbps: mbps_of(publish.bandwidth_bps)?,
        descriptor_hash: publisher.content_hash()?,
    };
    Ok((relay, publisher.profile_hash()?))
}

/// Starts anvil, deploys the registry contract and registers the plan's
/// operators and relays; writes `[chain]` into the plan's registry and
/// validators.
pub async fn start(
    plan: &mut DevnetPlan,
    measure: Option<MeasureOptions>,
    releases: ReleaseOptions,
) -> Result<DevnetChain, DevnetError> {
    if plan.registry.is_none() {
        return Err(DevnetError::ChainNeedsRegistry);
    }
    let anvil = Anvil::start(DEVNET_CHAIN_ID, Some(BLOCK_TIME)).await?;
    let params = match &measure {
        Some(m) => {
            advertise_measurable_bandwidth(plan, m)?;
            ChainParams::devnet()
                .with_measure_epochs(m.epoch, Duration::from_secs(m.epoch.as_secs() / 4))
        }
        None => ChainParams::devnet(),
    };
    let spare = U256::from(SPARE_WEI);

    let mut genesis = Vec::new();
    for (_, validator) in &plan.validators {
        let key = openrelay_registry::keyfile::load_or_create(&validator.state_dir)?;
        let account = account_key(&validator.state_dir.join(ACCOUNT_KEY_FILE))?.address();
        anvil.fund(account, spare).await?;
        genesis.push(GenesisValidator {
            account,
            key: key.id().to_bytes(),
            stake: params.min_validator_stake,
        });
    }
    let url = anvil
        .endpoint()
        .parse()
        .map_err(|_| DevnetError::Rpc(anvil.endpoint().to_owned()))?;
    let deployer = PrivateKeySigner::random();
    let stakes = genesis
        .iter()
        .fold(U256::ZERO, |sum, v| sum.saturating_add(v.stake));
    anvil
        .fund(deployer.address(), stakes.saturating_add(spare))
        .await?;
    let contract = deploy(signing_provider(url, deployer), &params, &genesis).await?;
    let release = propose_devnet_release(&anvil, contract, &params).await?;

    // Each operator's EVM account (its key file next to the Ed25519
    // operator key), which its relays' profiles name: registries list an
    // operator's relays only from the account its signed profile names.
    for (_, relay) in &mut plan.relays {
        let publish = relay
            .common_mut()
            .publish
            .as_mut()
            .ok_or(DevnetError::ChainNeedsRegistry)?;
        let key_file = publish.operator_key_file.with_file_name(ACCOUNT_KEY_FILE);
        publish.operator_account = Some(EvmAddress(account_key(&key_file)?.address().into_array()));
    }
    // Each operator's profile hash and relays, in the plan's order.
    let mut operators: BTreeMap<String, (PathBuf, [u8; 32], Vec<ChainRelay>)> = BTreeMap::new();
    for (_, relay) in &plan.relays {
        let common = relay.common();
        let publish = common
            .publish
            .as_ref()
            .ok_or(DevnetError::ChainNeedsRegistry)?;
        let (chain_relay, profile_hash) = chain_relay(relay)?;
        operators
            .entry(common.operator.clone())
            .or_insert_with(|| (publish.operator_key_file.clone(), profile_hash, Vec::new()))
            .2
            .push(chain_relay);
    }
    let mut registrations = tokio::task::JoinSet::new();
    for (name, (operator_key_file, profile_hash, relays)) in operators {
        let operator_key =
            KeyPin::from(openrelay_registry::keyfile::operator_key(&operator_key_file)?.id());
        let key_file = operator_key_file.with_file_name(ACCOUNT_KEY_FILE);
        let signer = account_key(&key_file)?;
        let mbps: u64 = relays.iter().map(|r| u64::from(r.mbps)).sum();
        let stake = params.cover_for(mbps);
        let account = OperatorAccount {
            name,
            account: signer.address(),
            key_file,
            operator_key,
            stake,
        };
        anvil
            .fund(account.account, stake.saturating_add(spare))
            .await?;
        let rpc = anvil.endpoint().to_owned();
        registrations.spawn(async move {
            register(&rpc, contract, signer, &account, profile_hash, &relays)
                .await
                .map_err(|source| DevnetError::Register {
                    operator: account.name.clone(),
                    source: Box::new(source),
                })?;
            Ok::<_, DevnetError>(account)
        });
    }
    let mut accounts = Vec::new();
    while let Some(done) = registrations.join_next().await {
        let account = done.map_err(|e| DevnetError::Io {
            what: "registering the devnet's operators".into(),
            source: std::io::Error::other(e),
        })??;
        accounts.push(account);
    }
    accounts.sort_by(|a, b| a.name.cmp(&b.name));

    let config = ChainConfig {
        rpc: anvil.endpoint().to_owned(),
        chain_id: DEVNET_CHAIN_ID,
        contract: EvmAddress(contract.into_array()),
        // A fresh chain: nothing before its first block.
        deployed_at_block: 0,
        confirmations: 1,
        poll_interval_secs: 1,
        verdicts: openrelay_config::chain::VerdictProfile::Devnet,
    };
    if let Some(registry) = &mut plan.registry {
        registry.chain = Some(config.clone());
    }
    // Everyone following the directory pins this deployment.
    let pin = ChainPin {
        chain_id: DEVNET_CHAIN_ID,
        contract: config.contract,
    };
    let mut followers: Vec<&mut DirectoryConfig> = plan
        .relays
        .iter_mut()
        .filter_map(|(_, relay)| relay.common_mut().directory.as_mut())
        .chain(plan.client.directory.as_mut())
        .collect();
    if let Some(issuer) = &mut plan.issuer {
        followers.extend(issuer.directory.as_mut());
        if let Some(SettlementRelays::Directory(directory)) = &mut issuer.settlement {
            followers.push(directory);
        }
    }
    for directory in followers {
        directory.chain = Some(pin);
    }
    let misreports = match &measure {
        Some(m) => misreports_for_tests(plan, &m.misreports_for_tests)?,
        None => Vec::new(),
    };
    let last = plan.validators.len();
    for (i, (_, validator)) in plan.validators.iter_mut().enumerate() {
        validator.chain = Some(config.clone());
        validator.release_votes = Some(ReleaseVotesConfig {
            check: if releases.dissenting_validator_for_tests && i + 1 == last {
                ReleaseCheckConfig::RejectAllForTests
            } else {
                ReleaseCheckConfig::OwnBinaryInsecureDevnet
            },
            // The devnet's `evm.key`, as for measurements.
            account_key_file: None,
            manifests_dir: None,
            source_dir: None,
            trusted_release_keys: Vec::new(),
            required_release_signatures: 1,
        });
        if measure.is_some() {
            validator.measure = Some(MeasureConfig {
                probe_bind: IpAddr::V4(crate::probe_address(i + 1)),
                sink_bind: None,
                // The devnet's `evm.key` in the validator's state directory.
                account_key_file: None,
                directory: plan
                    .client
                    .directory
                    .clone()
                    .ok_or(DevnetError::ChainNeedsRegistry)?,
                partners: Vec::new(),
                misreport_for_tests: if i + 1 == last {
                    misreports.clone()
                } else {
                    Vec::new()
                },
                // With the issuer, the probes take tokens from an account
                // of their own there, as the client does (the validator
                // registers it at its first start; the devnet issuer's
                // quota covers it).
                account: plan.client.account.as_ref().map(|a| ProbeAccountConfig {
                    issuer: a.issuer.clone(),
                    issuer_name: a.issuer_name.clone(),
                    username: format!("validator-{}-probes", i + 1),
                    password_file: None,
                }),
            });
        }
    }
    Ok(DevnetChain {
        anvil,
        config,
        contract,
        operators: accounts,
        release,
    })
}

/// Proposes the binary the devnet runs as a release: an unreproduced
/// manifest of it (nothing is rebuilt on a devnet), whose one measurement
/// is what every devnet relay's simulated TEE reports for it. The
/// validators' `own_binary_insecure_devnet` check approves it.
async fn propose_devnet_release(
    anvil: &Anvil,
    contract: Address,
    params: &ChainParams,
) -> Result<DevnetRelease, DevnetError> {
    let exe = std::env::current_exe().map_err(|source| DevnetError::Io {
        what: "finding the openrelay executable".into(),
        source,
    })?;
    let manifest = openrelay_release::Manifest::for_unreproduced_binary_insecure_devnet(&exe)?;
    // The manifest already measured the executable it read.
    let measurement = manifest
        .insecure_simulated_measurement()
        .ok_or_else(|| DevnetError::Io {
            what: "the devnet manifest lists no insecure-simulated measurement".into(),
            source: std::io::Error::other("missing byproduct"),
        })?;
    let proposer = PrivateKeySigner::random();
    anvil
        .fund(
            proposer.address(),
            params
                .release
                .proposal_bond
                .saturating_add(U256::from(SPARE_WEI)),
        )
        .await?;
    let votes = Registry::connect(
        anvil.endpoint(),
        DEVNET_CHAIN_ID,
        contract,
        proposer,
        DEFAULT_RPC_TIMEOUT,
    )
    .await
    .map_err(ReleaseError::Chain)?
    .release_votes()
    .await
    .map_err(ReleaseError::Chain)?;
    let release_id = manifest.release_id().0;
    let (_, ballot) = votes
        .propose(
            release_id,
            manifest.subject().1,
            &[(
                openrelay_attest::Platform::InsecureSimulated.code(),
                measurement,
            )],
        )
        .await?;
    Ok(DevnetRelease { release_id, ballot })
}

/// The relays of `named` by their relay ids, misreported at the given
/// bits per second.
fn misreports_for_tests(
    plan: &DevnetPlan,
    named: &[(String, u64)],
) -> Result<Vec<MisreportForTests>, DevnetError> {
    named
        .iter()
        .map(|(name, bps)| {
            let (_, relay) = plan
                .relays
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| DevnetError::UnknownRelay(name.clone()))?;
            let key = openrelay_registry::keyfile::relay_key(&relay.common().state_dir)?;
            Ok(MisreportForTests {
                relay: KeyPin::from(key.id()),
                capacity_bps: *bps,
            })
        })
        .collect()
}

/// Registers `account` as an operator staking its cover, then each of its
/// relays.
async fn register(
    rpc: &str,
    contract: Address,
    signer: PrivateKeySigner,
    account: &OperatorAccount,
    profile_hash: [u8; 32],
    relays: &[ChainRelay],
) -> Result<(), openrelay_chain::operator::OperatorError> {
    let registry = Registry::connect(rpc, DEVNET_CHAIN_ID, contract, signer, DEFAULT_RPC_TIMEOUT)
        .await?
        .confirm_within(CONFIRM_WITHIN);
    registry
        .register_operator(
            *account.operator_key.as_bytes(),
            profile_hash,
            account.stake,
        )
        .await?;
    for relay in relays {
        registry
            .register_relay(relay.key, relay.role, relay.mbps, relay.descriptor_hash)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A descriptor may advertise at most what the chain registers: the
    /// registered Mbit/s round up, and a bandwidth beyond the chain's field
    /// is an error, not a wrapped number.
    #[test]
    fn registered_bandwidth_rounds_up_and_never_wraps() {
        assert_eq!(mbps_of(1_000_000_000).unwrap(), 1000);
        assert_eq!(mbps_of(1_000_001).unwrap(), 2);
        assert_eq!(mbps_of(1).unwrap(), 1);
        assert!(matches!(
            mbps_of(u64::MAX),
            Err(DevnetError::Bandwidth(u64::MAX))
        ));
    }

    /// Without anvil, `devnet --chain` says how to install it, as a
    /// configuration problem (not a crash or a network error).
    #[test]
    fn missing_anvil_names_the_install_command() {
        use openrelay_types::{ErrorKind, HasKind};
        let error = DevnetError::from(openrelay_chain::anvil::AnvilError::NotInstalled);
        assert!(
            error.to_string().contains("npm ci --prefix contracts"),
            "{error}"
        );
        assert_eq!(error.kind(), ErrorKind::Config);
    }

    /// Without a registry there is nothing to put on a chain: refused
    /// before anvil starts.
    #[tokio::test]
    async fn a_chain_needs_the_registry() {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::DevnetOptions {
            operators: 2,
            socks: "127.0.0.1:0".parse().unwrap(),
            http: "127.0.0.1:1".parse().unwrap(),
            state_dir: dir.path().to_owned(),
            log_dir: None,
            log_level: "info".into(),
            registry: false,
            validators: crate::DEFAULT_VALIDATORS,
            path: Default::default(),
            tokens: false,
            client_netns: false,
            dns_resolver: None,
            key_rotation_secs: crate::DEVNET_KEY_ROTATION_SECS,
            attestation: Default::default(),
            unapproved_build_relays_for_tests: Vec::new(),
        };
        let mut plan = crate::plan(&options).unwrap();
        assert!(matches!(
            start(&mut plan, None, ReleaseOptions::default()).await,
            Err(DevnetError::ChainNeedsRegistry)
        ));
    }
}
