//! `openrelay release-votes`: releases on the chain (docs/chain.md,
//! "Release votes"). A maintainer proposes a release (or the revocation of
//! an approved one) with a bond; validators vote by themselves
//! (`[release_votes]` of their config); anyone lists the releases and
//! their status.

use std::path::PathBuf;

use alloy::primitives::{B256, FixedBytes};
use openrelay_chain::operator::eth;
use openrelay_chain::release::{MAX_MEASUREMENTS, Measurement, ReleaseRecord};
use sha2::{Digest as _, Sha256};

use super::chain_args::{ChainArgs, NodeArgs, print_sent};
use crate::process::runtime;

/// Flags of `openrelay release-votes`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReleaseVotesArgs {
    #[command(subcommand)]
    command: ReleaseVotesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ReleaseVotesCommand {
    /// Propose a release for the validators' vote, paying the bond (back
    /// unless they reject it).
    Propose {
        #[command(flatten)]
        chain: ChainArgs,
        /// The release id: the SHA-256 of its signed in-toto statement
        /// (`0x` and 64 hex digits).
        #[arg(long, value_name = "HASH")]
        release_id: B256,
        /// The release binary's SHA-256 (`0x` and 64 hex digits) ...
        #[arg(
            long,
            value_name = "HASH",
            required_unless_present = "binary",
            conflicts_with = "binary"
        )]
        binary_sha256: Option<B256>,
        /// ... or the binary itself, hashed here.
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// A launch measurement a TEE reports for this release:
        /// `PLATFORM:0x` and 96 hex digits (48 bytes); 1 to 16 of them.
        #[arg(long = "measurement", value_name = "PLATFORM:HEX", required = true, value_parser = parse_measurement)]
        measurements: Vec<Measurement>,
    },
    /// Propose revoking an approved release, paying the bond.
    Revoke {
        #[command(flatten)]
        chain: ChainArgs,
        /// The release id.
        #[arg(long, value_name = "HASH")]
        release_id: B256,
    },
    /// List every release on the chain with its status (no key needed).
    List {
        #[command(flatten)]
        node: NodeArgs,
        /// Read at this block (default: the latest).
        #[arg(long, value_name = "BLOCK")]
        at_block: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `PLATFORM:0xHEX` (48 bytes).
fn parse_measurement(text: &str) -> Result<Measurement, String> {
    let (platform, value) = text.split_once(':').ok_or_else(|| {
        format!("{text:?}: expected PLATFORM:0xHEX (platform number, 48-byte value)")
    })?;
    let platform: u8 = platform
        .parse()
        .map_err(|_| format!("{platform:?} is not a platform number (0 to 255)"))?;
    let value: FixedBytes<48> = value
        .parse()
        .map_err(|_| format!("{value:?} is not 0x and 96 hex digits (48 bytes)"))?;
    Ok((platform, value.0))
}

pub(crate) fn run(args: ReleaseVotesArgs) -> anyhow::Result<()> {
    runtime(Some(1))?.block_on(on_chain(args.command))
}

async fn on_chain(command: ReleaseVotesCommand) -> anyhow::Result<()> {
    match command {
        ReleaseVotesCommand::Propose {
            chain,
            release_id,
            binary_sha256,
            binary,
            measurements,
        } => {
            if measurements.len() > MAX_MEASUREMENTS {
                anyhow::bail!(
                    "{} measurements: a release lists at most {MAX_MEASUREMENTS}",
                    measurements.len()
                );
            }
            let binary_sha256 = match (binary_sha256, binary) {
                (Some(hash), _) => hash.0,
                (None, Some(path)) => hash_file(&path)?,
                (None, None) => anyhow::bail!("--binary-sha256 or --binary is needed"),
            };
            let votes = chain.connect().await?.release_votes().await?;
            let bond = votes.params().proposal_bond;
            let (sent, ballot) = votes
                .propose(release_id.0, binary_sha256, &measurements)
                .await?;
            print_sent(&sent);
            print_ballot(ballot, &votes).await?;
            println!(
                "bond {} (returned unless the validators reject it)",
                eth(bond)
            );
        }
        ReleaseVotesCommand::Revoke { chain, release_id } => {
            let votes = chain.connect().await?.release_votes().await?;
            let (sent, ballot) = votes.propose_revocation(release_id.0).await?;
            print_sent(&sent);
            print_ballot(ballot, &votes).await?;
        }
        ReleaseVotesCommand::List {
            node,
            at_block,
            json,
        } => {
            let releases = node
                .connect_reading()
                .await?
                .release_votes()
                .await?
                .read_releases(at_block)
                .await?;
            print_releases(&releases, json)?;
        }
    }
    Ok(())
}

async fn print_ballot(
    ballot: u64,
    votes: &openrelay_chain::release::ReleaseVotes,
) -> anyhow::Result<()> {
    let record = votes
        .ballot(ballot)
        .await?
        .ok_or_else(|| anyhow::anyhow!("ballot {ballot} is not on the chain"))?;
    println!(
        "ballot {ballot}: validators commit until unix time {}, reveal until {}; anyone settles after",
        record.commit_ends_at, record.reveal_ends_at
    );
    Ok(())
}

fn hash_file(path: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    let mut file =
        std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(hasher.finalize().into())
}

fn print_releases(releases: &[ReleaseRecord], json: bool) -> anyhow::Result<()> {
    if json {
        let list: Vec<serde_json::Value> = releases
            .iter()
            .map(|r| {
                serde_json::json!({
                    "release_id": B256::from(r.release_id),
                    "binary_sha256": B256::from(r.binary_sha256),
                    "status": r.status,
                    "open_ballot": r.open_ballot,
                    "measurements": r.measurements.iter().map(|(platform, value)| {
                        serde_json::json!({
                            "platform": platform,
                            "value": FixedBytes::<48>::from(*value),
                        })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if releases.is_empty() {
        println!("no releases proposed");
    }
    for r in releases {
        let open = r
            .open_ballot
            .map(|b| format!(" (ballot {b} open)"))
            .unwrap_or_default();
        println!(
            "{} {:?}{open} binary={} measurements={}",
            B256::from(r.release_id),
            r.status,
            B256::from(r.binary_sha256),
            r.measurements.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_parse_with_clear_errors() {
        let hex = format!("0x{}", "ab".repeat(48));
        assert_eq!(
            parse_measurement(&format!("3:{hex}")).expect("parse"),
            (3, [0xab; 48])
        );
        for bad in ["3", "x:0x00", &format!("300:{hex}"), "1:0xabcd"] {
            let e = parse_measurement(bad).expect_err(bad);
            assert!(!e.is_empty(), "{bad}");
        }
    }
}
