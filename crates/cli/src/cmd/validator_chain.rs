//! `openrelay validator join|withdraw-join|leave|approve-set-change|status`:
//! a validator's place in the validator set on the registry contract
//! (docs/chain.md, "Joining as a validator").

use std::path::PathBuf;

use alloy::primitives::{Address, U256};
use openrelay_chain::operator::{SetChangeApproval, ValidatorEntry, ValidatorStatus, eth};
use openrelay_config::ValidatorConfig;
use openrelay_directory::{ValidatorId, ValidatorKey};
use openrelay_types::KeyPin;

use super::chain_args::{ChainArgs, StatusArgs, parse_eth, print_sent};
use crate::process::runtime;

/// The subcommands of `openrelay validator`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ValidatorCommand {
    /// Ask to join the validator set, staking ETH.
    ///
    /// Joins with the validator's Ed25519 key (the one `openrelay validator
    /// --config FILE --print-key` prints); the account pays the stake. After
    /// the join delay the current members approve the change
    /// (`approve-set-change`).
    Join {
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        key: ValidatorKeyArgs,
        /// The stake, in ETH (at least the contract's validator minimum).
        #[arg(long, value_parser = parse_eth)]
        stake: U256,
    },
    /// Take back a join request no set change has applied yet.
    ///
    /// The stake unbonds: `openrelay operator withdraw` pays it after the
    /// unbonding delay.
    WithdrawJoin {
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Ask to leave the validator set.
    ///
    /// After the leave delay the members approve the change (the leaving
    /// member may too); its stake then unbonds.
    Leave {
        #[command(flatten)]
        chain: ChainArgs,
    },
    /// Approve a validator set change, as a member of the current set.
    ///
    /// The change adds the `--join` accounts and removes the `--leave`
    /// accounts (`status` lists the requests and when each is ready). It
    /// applies when the approving weight reaches the quorum; the output
    /// gives the change id and whether this approval applied it.
    ApproveSetChange {
        #[command(flatten)]
        chain: ChainArgs,
        /// The current set's epoch (`status` prints it): an approval for
        /// another epoch is refused, so it is never counted for a set that
        /// has changed since.
        #[arg(long)]
        epoch: u64,
        /// An account whose join request to include (repeatable).
        #[arg(long = "join", value_name = "ADDRESS")]
        joins: Vec<Address>,
        /// An account whose leave request to apply (repeatable).
        #[arg(long = "leave", value_name = "ADDRESS")]
        leaves: Vec<Address>,
    },
    /// Show the validator set and this account's place in it.
    ///
    /// The account's validator stake and standing, the current epoch and
    /// set with weights, join and leave requests with the time each is
    /// ready, and the approvals of the current epoch.
    Status {
        #[command(flatten)]
        chain: ChainArgs,
        #[command(flatten)]
        status: StatusArgs,
    },
}

/// Where the validator's Ed25519 key is.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct ValidatorKeyArgs {
    /// The validator's config file: its key is `validator.key` in the
    /// config's `state_dir` (created if absent, as `--print-key` does).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The validator's key file itself (`validator.key`; must exist).
    #[arg(long, value_name = "PATH")]
    validator_key_file: Option<PathBuf>,
}

impl ValidatorKeyArgs {
    fn load(&self) -> anyhow::Result<ValidatorKey> {
        use openrelay_registry::keyfile;
        match (&self.config, &self.validator_key_file) {
            (Some(config), _) => {
                let state_dir = ValidatorConfig::load_state_dir(config)?;
                Ok(keyfile::load_or_create(&state_dir)?)
            }
            (None, Some(file)) => {
                // Never create it here: a mistyped path would stake for a key
                // no validator signs with.
                if !file.exists() {
                    anyhow::bail!(
                        "{}: no such validator key file (`openrelay validator --config FILE --print-key` creates one in the state directory)",
                        file.display()
                    );
                }
                Ok(ValidatorKey::from_bytes(&keyfile::load_or_create_secret(
                    file,
                )?))
            }
            (None, None) => anyhow::bail!("--config or --validator-key-file is required"),
        }
    }
}

/// Run the subcommand.
pub(crate) fn run(command: ValidatorCommand) -> anyhow::Result<()> {
    runtime(Some(1))?.block_on(on_chain(command))
}

async fn on_chain(command: ValidatorCommand) -> anyhow::Result<()> {
    let sent = match command {
        ValidatorCommand::Join { chain, key, stake } => {
            let id = key.load()?.id();
            let sent = chain
                .connect()
                .await?
                .validator_join(id.to_bytes(), stake)
                .await?;
            println!("validator key {id}");
            sent
        }
        ValidatorCommand::WithdrawJoin { chain } => {
            chain.connect().await?.validator_withdraw_join().await?
        }
        ValidatorCommand::Leave { chain } => chain.connect().await?.validator_leave().await?,
        ValidatorCommand::ApproveSetChange {
            chain,
            epoch,
            joins,
            leaves,
        } => {
            let approval = chain
                .connect()
                .await?
                .approve_set_change(epoch, joins, leaves)
                .await?;
            print_approval(&approval, epoch);
            return Ok(());
        }
        ValidatorCommand::Status {
            chain,
            status: StatusArgs { json, from_block },
        } => {
            let status = chain.connect().await?.validator_status(from_block).await?;
            if json {
                println!("{}", status_json(&status));
            } else {
                print_status(&status);
            }
            return Ok(());
        }
    };
    print_sent(&sent);
    Ok(())
}

fn print_approval(approval: &SetChangeApproval, epoch: u64) {
    print_sent(&approval.sent);
    let outcome = if approval.applied {
        format!("applied: the validator set is now at epoch {}", epoch + 1)
    } else {
        "not applied yet: more members must approve".to_owned()
    };
    println!(
        "change {} approved by {} of the {} needed: {outcome}",
        approval.change_id,
        eth(approval.approved_weight),
        eth(approval.quorum_weight),
    );
}

fn key_text(key: [u8; 32]) -> String {
    // A zero key never passes the contract's checks; shown raw if it did.
    ValidatorId::from_bytes(key).map_or_else(
        |_| KeyPin::from_ed25519(key).to_string(),
        |id| id.to_string(),
    )
}

fn entry_json(entry: &ValidatorEntry) -> serde_json::Value {
    serde_json::json!({
        "account": entry.account.to_string(),
        "validator_key": key_text(entry.key),
        "stake_wei": entry.stake.to_string(),
        "weight_wei": entry.weight.to_string(),
        "active": entry.active,
        "join_ready_at": entry.join_ready_at,
        "leave_ready_at": entry.leave_ready_at,
    })
}

fn status_json(status: &ValidatorStatus) -> serde_json::Value {
    let list = |entries: &[ValidatorEntry]| -> Vec<serde_json::Value> {
        entries.iter().map(entry_json).collect()
    };
    let approvals: Vec<serde_json::Value> = status
        .approvals
        .iter()
        .map(|approval| {
            serde_json::json!({
                "change_id": approval.change_id.to_string(),
                "approvers": approval.approvers.iter().map(Address::to_string).collect::<Vec<_>>(),
                "weight_wei": approval.weight.to_string(),
            })
        })
        .collect();
    serde_json::json!({
        "account": status.account.to_string(),
        "validator": status.own.as_ref().map(entry_json),
        "in_set": status.own.as_ref().is_some_and(|own| own.active),
        "chain_time": status.now,
        "epoch": status.epoch,
        "set": list(&status.set),
        "active_weight_wei": status.active_weight.to_string(),
        "quorum_weight_wei": status.quorum_weight.to_string(),
        "pending_joins": list(&status.pending_joins),
        "approvals": approvals,
    })
}

/// "ready" or how long until `at`, against the chain's clock.
fn readiness(at: u64, now: u64) -> String {
    if now >= at {
        format!("unix time {at}, ready")
    } else {
        format!("unix time {at}, in {} s", at - now)
    }
}

fn print_status(status: &ValidatorStatus) {
    let now = status.now;
    println!("account    {}", status.account);
    match &status.own {
        None => println!("validator  not a member, no join request"),
        Some(own) => {
            println!("key        {}", key_text(own.key));
            match own.join_ready_at {
                Some(at) => println!(
                    "validator  asking to join with {}: a set change may include it from {}",
                    eth(own.stake),
                    readiness(at, now)
                ),
                None => println!(
                    "validator  in the set at epoch {}, weight {} (stake {})",
                    status.epoch,
                    eth(own.weight),
                    eth(own.stake)
                ),
            }
            if let Some(at) = own.leave_ready_at {
                println!(
                    "leaving    a set change may remove it from {}",
                    readiness(at, now)
                );
            }
        }
    }
    println!(
        "epoch      {}: {} members, weight {}; a change needs {}",
        status.epoch,
        status.set.len(),
        eth(status.active_weight),
        eth(status.quorum_weight)
    );
    for member in &status.set {
        let leaving = member
            .leave_ready_at
            .map(|at| format!(", leaving from {}", readiness(at, now)))
            .unwrap_or_default();
        println!(
            "member     {} {} weight {}{leaving}",
            member.account,
            key_text(member.key),
            eth(member.weight)
        );
    }
    for join in &status.pending_joins {
        if let Some(at) = join.join_ready_at {
            println!(
                "join       {} {} stake {} from {}",
                join.account,
                key_text(join.key),
                eth(join.stake),
                readiness(at, now)
            );
        }
    }
    for approval in &status.approvals {
        println!(
            "approval   {} by {} member(s), {} of the {} needed",
            approval.change_id,
            approval.approvers.len(),
            eth(approval.weight),
            eth(status.quorum_weight)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_counts_against_the_chain_clock() {
        assert_eq!(readiness(100, 90), "unix time 100, in 10 s");
        assert_eq!(readiness(100, 100), "unix time 100, ready");
    }

    #[test]
    fn a_missing_validator_key_file_is_not_created() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("validator.key");
        let args = ValidatorKeyArgs {
            config: None,
            validator_key_file: Some(file.clone()),
        };
        let e = args.load().expect_err("missing");
        assert!(e.to_string().contains("no such validator key file"), "{e}");
        assert!(!file.exists());
    }
}
