//! `openrelay operator`: an operator's account on the registry contract
//! (docs/chain.md): a key file, registration, stake, relays, status.

use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::utils::parse_ether;
use alloy::primitives::{Address, B256, U256};
use openrelay_chain::operator::{
    DEFAULT_CONFIRMATION_TIMEOUT, DEFAULT_RPC_TIMEOUT, OperatorStatus, Registry, Sent,
    create_key_file, eth, load_key_file,
};
use openrelay_types::{KeyPin, RelayRole};

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
        /// Hash of the operator's signed profile (64 hex digits).
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
    /// Show the account's stake, cover, relays and unbonding stake.
    Status {
        #[command(flatten)]
        chain: ChainArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Read the relays' events from this block on: the contract's
        /// deployment block (`deployed_at_block` in the registry's
        /// `[chain]` config). Default: found on the chain (needs a node
        /// that keeps old state).
        #[arg(long, value_name = "BLOCK")]
        from_block: Option<u64>,
    },
}

/// Where the registry is and who signs.
#[derive(Debug, clap::Args)]
struct ChainArgs {
    /// The node's JSON-RPC URL (plain http://: your own node, or a local
    /// proxy to one).
    #[arg(long, value_name = "URL")]
    rpc: String,
    /// The chain id the node must serve.
    #[arg(long)]
    chain_id: u64,
    /// The registry contract's address.
    #[arg(long, value_name = "ADDRESS")]
    contract: Address,
    /// The EVM account key file (`openrelay operator new-key`).
    #[arg(long, value_name = "PATH")]
    key_file: PathBuf,
    /// How long one RPC call may take.
    #[arg(long, default_value_t = DEFAULT_RPC_TIMEOUT.as_secs())]
    timeout_secs: u64,
    /// How long to wait for a transaction to be mined.
    #[arg(long, default_value_t = DEFAULT_CONFIRMATION_TIMEOUT.as_secs())]
    confirm_secs: u64,
}

impl ChainArgs {
    async fn connect(&self) -> anyhow::Result<Registry> {
        let signer = load_key_file(&self.key_file)?;
        Ok(Registry::connect(
            &self.rpc,
            self.chain_id,
            self.contract,
            signer,
            Duration::from_secs(self.timeout_secs),
        )
        .await?
        .confirm_within(Duration::from_secs(self.confirm_secs)))
    }
}

fn parse_eth(text: &str) -> Result<U256, String> {
    parse_ether(text).map_err(|e| format!("{text:?} is not an amount of ETH: {e}"))
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
        OperatorCommand::Status {
            chain,
            json,
            from_block,
        } => {
            let status = chain.connect().await?.status(from_block).await?;
            print_status(&status, json);
            return Ok(());
        }
    };
    print_sent(&sent);
    Ok(())
}

fn print_sent(sent: &Sent) {
    println!(
        "ok tx={} block={} gas={}",
        sent.tx, sent.block, sent.gas_used
    );
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
