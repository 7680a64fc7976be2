//! `openrelay operator`: an operator's account on the registry contract
//! (docs/chain.md): a key file, registration, stake, relays, status; and
//! its relays' measurement verdicts explained, from the registry
//! (`GET /v1/measurements`, issue 14).

use std::net::SocketAddr;
use std::path::PathBuf;

use alloy::primitives::{B256, U256};
use openrelay_chain::operator::{OperatorStatus, create_key_file, eth};
use openrelay_types::{KeyPin, RelayRole};

use openrelay_measure::{EpochVerdict, Explanation, Liveness, Measurement};
use openrelay_registry_client::RegistryClient;
use openrelay_registry_client::measurements::{
    MAX_PAGE_BYTES, MeasurementsFilter, MeasurementsPage, MeasurementsQuery,
};

use super::chain_args::{ChainArgs, StatusArgs, parse_eth, print_sent};
use crate::process::runtime;

/// Where the registry is, for its measurement verdicts.
#[derive(Debug, clap::Args)]
struct RegistryArgs {
    /// The registry's address (`[registry] addr` of a validator's config,
    /// or a relay's `[[publish.registry]]`).
    #[arg(long, value_name = "ADDR", requires = "registry_key")]
    registry: Option<SocketAddr>,
    /// The registry's key pin (`ed25519:...`).
    #[arg(long, value_name = "PIN", requires = "registry")]
    registry_key: Option<KeyPin>,
}

impl RegistryArgs {
    fn client(&self) -> Option<RegistryClient> {
        Some(RegistryClient::new(self.registry?, self.registry_key?))
    }
}

/// Flags of `openrelay operator`.
#[derive(Debug, clap::Args)]
pub(crate) struct OperatorArgs {
    #[command(subcommand)]
    command: OperatorCommand,
}

#[derive(Debug, clap::Subcommand)]
enum OperatorCommand {
    /// Create an EVM account key file (hex, mode 0600) and print its
    /// address; fund that address before registering.
    NewKey {
        /// Where to write it (never overwritten).
        #[arg(long)]
        key_file: PathBuf,
    },
    /// Register the account as the operator of an Ed25519 operator key.
    Register {
        #[command(flatten)]
        chain: ChainArgs,
        /// The operator key file (a relay config's `operator_key`; created
        /// if absent).
        #[arg(long)]
        operator_key_file: PathBuf,
        /// The commitment to the operator's profile (64 hex digits):
        /// `openrelay relay --config FILE --operator-args` prints it with
        /// the key file. The relays' `[publish] operator_account` must name
        /// this account, or no registry lists them.
        #[arg(long, default_value_t = B256::ZERO)]
        profile_hash: B256,
        /// Stake sent with the registration, in ETH.
        #[arg(long, default_value = "0", value_parser = parse_eth)]
        stake: U256,
    },
    /// Add stake (ETH).
    Stake {
        #[command(flatten)]
        chain: ChainArgs,
        /// How much, in ETH (e.g. 0.5).
        #[arg(long, value_parser = parse_eth)]
        amount: U256,
    },
    /// Start unbonding stake (ETH); `withdraw` pays it after the delay.
    Unstake {
        #[command(flatten)]
        chain: ChainArgs,
        /// How much, in ETH.
        #[arg(long, value_parser = parse_eth)]
        amount: U256,
    },
    /// Withdraw unbonded stake and rewards.
    Withdraw {
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Register a relay under this operator (its stake must cover the
    /// bandwidth).
    RegisterRelay {
        #[command(flatten)]
        chain: ChainArgs,
        /// The relay's descriptor-signing key (`relay.key` in its state
        /// directory, not its QUIC key): `openrelay relay --config FILE
        /// --register-args` prints it with the other flags.
        #[arg(long)]
        relay_key: KeyPin,
        /// ingress or egress.
        #[arg(long, value_parser = parse_role)]
        role: RelayRole,
        /// Advertised bandwidth in Mbit/s.
        #[arg(long)]
        mbps: u32,
        /// The commitment to its descriptor's content (64 hex digits).
        #[arg(long, default_value_t = B256::ZERO)]
        descriptor_hash: B256,
    },
    /// Change a relay's advertised bandwidth and descriptor commitment.
    ///
    /// Raising the bandwidth needs the stake to cover it; lowering it always
    /// works.
    UpdateRelay {
        #[command(flatten)]
        chain: ChainArgs,
        /// The relay's descriptor-signing key, as registered.
        #[arg(long)]
        relay_key: KeyPin,
        /// The new advertised bandwidth in Mbit/s.
        #[arg(long)]
        mbps: u32,
        /// The commitment to its new descriptor's content (64 hex digits):
        /// `openrelay relay --config FILE --descriptor-hash`.
        #[arg(long)]
        descriptor_hash: B256,
        /// The role it is registered with (optional, so the output of
        /// `openrelay relay --register-args` can be passed as it is); a
        /// relay's role cannot change, so another one is refused.
        #[arg(long, value_parser = parse_role)]
        role: Option<RelayRole>,
    },
    /// Remove a relay.
    ///
    /// The next directory drops it, and its bandwidth no longer needs cover
    /// (`unstake` then frees the stake).
    RemoveRelay {
        #[command(flatten)]
        chain: ChainArgs,
        /// The relay's descriptor-signing key, as registered.
        #[arg(long)]
        relay_key: KeyPin,
    },
    /// Show the account's stake, cover, relays and unbonding stake; with
    /// `--registry`, also each relay's measurement verdict explained (as
    /// `measurements` shows it).
    Status {
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        status: StatusArgs,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Explain the measurement verdicts of an operator's relays (or of one
    /// relay), from the registry: every validator's last report, the
    /// aggregate, the tolerance, the failing epochs and how many more
    /// would slash. No chain needed.
    Measurements {
        #[command(flatten)]
        registry: RegistryArgs,
        /// The operator whose relays to explain (`ed25519:...`).
        #[arg(long, value_name = "PIN", required_unless_present = "relay")]
        operator_key: Option<KeyPin>,
        /// One relay to explain instead (its descriptor key).
        #[arg(long, value_name = "PIN", conflicts_with = "operator_key")]
        relay: Option<KeyPin>,
        /// Print the registry's JSON (every page merged into one).
        #[arg(long)]
        json: bool,
    },
}

fn parse_role(text: &str) -> Result<RelayRole, String> {
    match text {
        "ingress" => Ok(RelayRole::Ingress),
        "egress" => Ok(RelayRole::Egress),
        _ => Err(format!("{text:?}: the role is ingress or egress")),
    }
}

/// Run the subcommand.
pub(crate) fn run(args: OperatorArgs) -> anyhow::Result<()> {
    if let OperatorCommand::NewKey { key_file } = &args.command {
        let signer = create_key_file(key_file)?;
        println!("{}", signer.address());
        return Ok(());
    }
    if let OperatorCommand::Measurements {
        registry,
        operator_key,
        relay,
        json,
    } = &args.command
    {
        let client = registry
            .client()
            .ok_or_else(|| anyhow::anyhow!("--registry and --registry-key are needed"))?;
        let filter = match (relay, operator_key) {
            (Some(relay), _) => MeasurementsFilter::Relay(*relay),
            (None, Some(operator)) => MeasurementsFilter::Operator(*operator),
            (None, None) => MeasurementsFilter::All,
        };
        let page = runtime(Some(1))?.block_on(fetch_measurements(&client, filter))?;
        print_measurements(&page, *json)?;
        return Ok(());
    }
    runtime(Some(1))?.block_on(on_chain(args.command))
}

async fn on_chain(command: OperatorCommand) -> anyhow::Result<()> {
    let sent = match command {
        OperatorCommand::NewKey { .. } | OperatorCommand::Measurements { .. } => return Ok(()),
        OperatorCommand::Register {
            chain,
            operator_key_file,
            profile_hash,
            stake,
        } => {
            let key = super::key::operator_pin(&operator_key_file)?;
            let registry = chain.connect().await?;
            registry
                .register_operator(*key.as_bytes(), profile_hash.0, stake)
                .await?
        }
        OperatorCommand::Stake { chain, amount } => chain.connect().await?.stake(amount).await?,
        OperatorCommand::Unstake { chain, amount } => {
            chain.connect().await?.unstake(amount).await?
        }
        OperatorCommand::Withdraw { chain } => chain.connect().await?.withdraw().await?,
        OperatorCommand::RegisterRelay {
            chain,
            relay_key,
            role,
            mbps,
            descriptor_hash,
        } => {
            chain
                .connect()
                .await?
                .register_relay(*relay_key.as_bytes(), role, mbps, descriptor_hash.0)
                .await?
        }
        OperatorCommand::UpdateRelay {
            chain,
            relay_key,
            mbps,
            descriptor_hash,
            role,
        } => {
            let registry = chain.connect().await?;
            let key = relay_key.as_bytes();
            if let Some(role) = role
                && let Some(registered) = registry.relay_role(*key).await?
            {
                anyhow::ensure!(
                    registered == role,
                    "relay {relay_key} is registered as {registered}, not {role}: a relay's role \
                     cannot change (remove-relay, then register-relay)"
                );
            }
            registry.update_relay(*key, mbps, descriptor_hash.0).await?
        }
        OperatorCommand::RemoveRelay { chain, relay_key } => {
            let registry = chain.connect().await?;
            registry.remove_relay(*relay_key.as_bytes()).await?
        }
        OperatorCommand::Status {
            chain,
            status: StatusArgs { json, from_block },
            registry,
        } => {
            let status = chain.connect().await?.status(from_block).await?;
            let measurements = match (registry.client(), status.operator_key) {
                (Some(client), Some(key)) => {
                    let filter = MeasurementsFilter::Operator(KeyPin::from_ed25519(key));
                    Some(fetch_measurements(&client, filter).await?)
                }
                _ => None,
            };
            print_status(&status, json, measurements.as_ref())?;
            return Ok(());
        }
    };
    print_sent(&sent);
    Ok(())
}

fn print_status(
    status: &OperatorStatus,
    json: bool,
    measurements: Option<&MeasurementsPage>,
) -> anyhow::Result<()> {
    let key = status.operator_key.map(KeyPin::from_ed25519);
    if json {
        let relays: Vec<serde_json::Value> = status
            .relays
            .iter()
            .map(|relay| {
                serde_json::json!({
                    "relay_key": KeyPin::from_ed25519(relay.relay_key).to_string(),
                    "role": relay.role.to_string(),
                    "bandwidth_mbps": relay.bandwidth_mbps,
                    "descriptor_hash": B256::from(relay.descriptor_hash).to_string(),
                })
            })
            .collect();
        let value = serde_json::json!({
            "account": status.account.to_string(),
            "operator_key": key.map(|k| k.to_string()),
            "stake_wei": status.stake.to_string(),
            "advertised_mbps": status.advertised_mbps,
            "cover_required_wei": status.cover_required.to_string(),
            "covered": status.covered,
            "relays": relays,
            "unbonding_wei": status.unbonding.to_string(),
            "unbonding_ready_at": status.unbonding_ready_at,
            "rewards_wei": status.rewards.to_string(),
            "measurements": measurements,
        });
        println!("{value}");
        return Ok(());
    }
    println!("account   {}", status.account);
    match key {
        Some(key) => println!("operator  {key}"),
        None => println!("operator  (not registered)"),
    }
    println!(
        "stake     {} ({} needed for {} Mbit/s: {})",
        eth(status.stake),
        eth(status.cover_required),
        status.advertised_mbps,
        if status.covered {
            "covered"
        } else {
            "NOT covered: no relay of yours is listed"
        }
    );
    for relay in &status.relays {
        println!(
            "relay     {} {} {} Mbit/s",
            KeyPin::from_ed25519(relay.relay_key),
            relay.role,
            relay.bandwidth_mbps
        );
    }
    if let Some(ready_at) = status.unbonding_ready_at {
        println!(
            "unbonding {} withdrawable from unix time {ready_at}",
            eth(status.unbonding)
        );
    }
    if !status.rewards.is_zero() {
        println!("rewards   {}", eth(status.rewards));
    }
    if let Some(page) = measurements {
        print_measurements(page, false)?;
    }
    Ok(())
}

/// The most pages one command reads (20,000 relays at 256 a page is 79).
const MAX_PAGES: usize = 100;

/// Every page of the registry's explanations for `filter`, merged.
async fn fetch_measurements(
    client: &RegistryClient,
    filter: MeasurementsFilter,
) -> anyhow::Result<MeasurementsPage> {
    let mut query = MeasurementsQuery {
        filter,
        after: None,
    };
    let mut merged: Option<MeasurementsPage> = None;
    for _ in 0..MAX_PAGES {
        let (status, body) = client
            .call(http::Method::GET, &query.path(), Vec::new())
            .await?;
        anyhow::ensure!(
            status == 200,
            "the registry answered {status} to {}: {}",
            query.path(),
            String::from_utf8_lossy(&body).trim()
        );
        anyhow::ensure!(
            body.len() <= MAX_PAGE_BYTES,
            "the registry's page is {} bytes, more than {MAX_PAGE_BYTES}",
            body.len()
        );
        let page: MeasurementsPage = serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("the registry's measurements do not parse: {e}"))?;
        let next = page.next_after;
        match &mut merged {
            None => merged = Some(page),
            Some(all) => all.explanations.extend(page.explanations),
        }
        match next {
            Some(after) => query.after = Some(KeyPin::from_ed25519(after.0)),
            None => {
                return merged.ok_or_else(|| anyhow::anyhow!("no page"));
            }
        }
    }
    anyhow::bail!("the registry kept paging past {MAX_PAGES} pages")
}

fn mbit(bps: u64) -> String {
    format!("{:.1} Mbit/s", bps as f64 / 1e6)
}

/// Prints each relay's latest verdict with every validator's report (or
/// the page as JSON).
fn print_measurements(page: &MeasurementsPage, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(page)?);
        return Ok(());
    }
    match (page.epoch, page.epoch_ended_at) {
        (Some(epoch), Some(ended)) => {
            println!("measured  epoch {epoch} (ended at unix time {ended})");
        }
        _ => println!("measured  no measurement epoch settled yet"),
    }
    if page.explanations.is_empty() {
        println!("          no verdict on these relays yet");
    }
    for e in &page.explanations {
        print_explanation(e);
    }
    Ok(())
}

fn print_explanation(e: &Explanation) {
    let liveness = match e.liveness {
        Liveness::Unmeasured => "never measured",
        Liveness::Up => "up",
        Liveness::Down => "DOWN: not listed",
    };
    println!(
        "relay     {} {liveness}, advertises {}, held to {}",
        e.relay,
        mbit(e.advertised_bps),
        mbit(e.expected_bps)
    );
    let tolerance = f64::from(e.tolerance_bps) / 100.0;
    let verdict = match (e.verdict, e.aggregate_bps) {
        (EpochVerdict::Passed, Some(a)) => format!("passed: aggregate {}", mbit(a)),
        (EpochVerdict::Failed, Some(a)) => format!("FAILED: aggregate {}", mbit(a)),
        (EpochVerdict::Down, _) => "down (at least 2/3 of the weight found it unreachable)".into(),
        _ => "not reported".into(),
    };
    println!(
        "  epoch {}: {verdict}; passes at {} ({tolerance:.1} % below what it is held to)",
        e.epoch,
        mbit(e.passing_bps)
    );
    for r in &e.reports {
        let measured = match r.measurement {
            Measurement::Reachable {
                capacity_bps,
                rtt_micros,
            } => format!(
                "{} rtt {:.1} ms",
                mbit(capacity_bps),
                f64::from(rtt_micros) / 1000.0
            ),
            Measurement::Unreachable => "unreachable".into(),
        };
        println!(
            "  validator {} weight {}: {measured}, echo {}/{}{}",
            r.validator,
            r.weight,
            r.probes_answered,
            r.probes_sent,
            if r.marked {
                " (MARKED: far from the aggregate)"
            } else {
                ""
            }
        );
    }
    let slash = if e.slashed {
        "SLASHED this epoch".to_owned()
    } else if e.consecutive_failing_epochs == 0 {
        format!(
            "not failing; {} failing epochs in a row would slash",
            e.failing_epochs_until_slash
        )
    } else {
        format!(
            "{} failing epoch(s) in a row; slashed after {} more",
            e.consecutive_failing_epochs, e.failing_epochs_until_slash
        )
    };
    println!("  slash: {slash}");
    let measured = e.measured.map_or_else(
        || "never measured: bootstrap weight".to_owned(),
        |m| format!("measured {} in epoch {}", mbit(m.bps), m.epoch),
    );
    println!("  weight: {} ({measured})", mbit(e.selection_bps));
}
