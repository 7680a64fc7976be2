//! `openrelay operator`: an operator's account on the registry contract
//! (docs/chain.md): a key file, registration, stake, relays, status.

use std::path::PathBuf;

use alloy::primitives::{B256, U256};
use openrelay_chain::operator::{OperatorStatus, create_key_file, eth};
use openrelay_types::{KeyPin, RelayRole};

use super::chain_args::{ChainArgs, StatusArgs, parse_eth, print_sent};
use crate::process::runtime;

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
    /// Show the account's stake, cover, relays and unbonding stake.
    Status {
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        status: StatusArgs,
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
    runtime(Some(1))?.block_on(on_chain(args.command))
}

async fn on_chain(command: OperatorCommand) -> anyhow::Result<()> {
    let sent = match command {
        OperatorCommand::NewKey { .. } => return Ok(()),
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
        } => {
            let status = chain.connect().await?.status(from_block).await?;
            print_status(&status, json);
            return Ok(());
        }
    };
    print_sent(&sent);
    Ok(())
}

fn print_status(status: &OperatorStatus, json: bool) {
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
        });
        println!("{value}");
        return;
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
}
