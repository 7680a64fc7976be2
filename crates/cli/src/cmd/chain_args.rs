//! The flags every command acting on the registry contract takes
//! (`openrelay operator ...`, `openrelay validator join|leave|...`): where
//! the node and the contract are, and which account signs.

use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::utils::parse_ether;
use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use openrelay_chain::operator::{
    DEFAULT_CONFIRMATION_TIMEOUT, DEFAULT_RPC_TIMEOUT, Registry, Sent, load_key_file,
};

/// Where the registry is.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
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
    /// How long one RPC call may take.
    #[arg(long, default_value_t = DEFAULT_RPC_TIMEOUT.as_secs())]
    timeout_secs: u64,
}

impl NodeArgs {
    /// Opens the contract on the checked chain, signing with `signer`.
    async fn connect_as(&self, signer: PrivateKeySigner) -> anyhow::Result<Registry> {
        Ok(Registry::connect(
            &self.rpc,
            self.chain_id,
            self.contract,
            signer,
            Duration::from_secs(self.timeout_secs),
        )
        .await?)
    }

    /// Opens the contract to read it: no key (a throwaway one, never
    /// used to send).
    pub(crate) async fn connect_reading(&self) -> anyhow::Result<Registry> {
        self.connect_as(PrivateKeySigner::random()).await
    }
}

/// Where the registry is and who signs.
#[derive(Debug, clap::Args)]
pub(crate) struct ChainArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// The EVM account key file (`openrelay operator new-key`).
    #[arg(long, value_name = "PATH")]
    key_file: PathBuf,
    /// How long to wait for a transaction to be mined.
    #[arg(long, default_value_t = DEFAULT_CONFIRMATION_TIMEOUT.as_secs())]
    confirm_secs: u64,
}

impl ChainArgs {
    /// Opens the contract on the checked chain with the account's key.
    pub(crate) async fn connect(&self) -> anyhow::Result<Registry> {
        let signer = load_key_file(&self.key_file)?;
        Ok(self
            .node
            .connect_as(signer)
            .await?
            .confirm_within(Duration::from_secs(self.confirm_secs)))
    }
}

/// Parses an amount of ETH (`0.5`) into wei.
/// How `status` reads and prints.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Read the contract's events from this block on: its deployment block
    /// (`deployed_at_block` in a `[chain]` config). Default: found on the
    /// chain (needs a node that keeps old state).
    #[arg(long, value_name = "BLOCK")]
    pub(crate) from_block: Option<u64>,
}

pub(crate) fn parse_eth(text: &str) -> Result<U256, String> {
    parse_ether(text).map_err(|e| format!("{text:?} is not an amount of ETH: {e}"))
}

/// The line a mined transaction prints.
pub(crate) fn print_sent(sent: &Sent) {
    println!(
        "ok tx={} block={} gas={}",
        sent.tx, sent.block, sent.gas_used
    );
}
