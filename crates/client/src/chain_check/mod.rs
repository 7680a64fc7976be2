//! `--rpc URL` (issue 13, item 4): a paranoid user cross-checks every newly
//! verified directory with a chain section against a node of their own.
//!
//! The validators' signatures already vouch for the chain section; this
//! check removes the need to trust them for it. At the section's anchor
//! block it asks the node: the chain id, the block's hash (so the anchor is
//! on the node's canonical chain), `stakePerMbps` (`coverFor(1)`), and for
//! every listed operator `operators(account)` (key and stake) and
//! `isCovered(account)`, for every listed relay
//! `relays(relayId(account, relayKey))` (role, bandwidth, descriptor hash).
//! A difference refuses the directory and names what differed; a node that
//! cannot be asked is a warning (the check is optional) unless
//! `rpc_required` is set.
//!
//! The node is reached through the relays, as a CONNECT flow like any app's
//! TCP connection (never directly: the node would learn the user's
//! address), so the relays cannot tell it from other traffic. The client
//! links no chain code: the few ABI calls are encoded here by hand
//! ([`abi`]), JSON-RPC over HTTP/1.1 too ([`jsonrpc`]).

pub mod abi;
pub mod jsonrpc;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use openrelay_directory::{ChainSection, OperatorId, RelayId, VerifiedDirectory};
use openrelay_transport::tcp_pump::{PumpCounters, pump_halves};
use openrelay_types::RelayRole;
use openrelay_types::error::{ErrorKind, HasKind};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::flow::FlowError;
use crate::manager::PathManager;
use abi::AbiError;
use jsonrpc::{Call, RpcError, RpcUrl};

/// Calls per JSON-RPC batch: below geth's default batch limit (1000).
pub const MAX_CALLS_PER_BATCH: usize = 500;
/// Calls one check makes at most: the three block-wide calls, two per
/// operator and one per relay of the largest directory
/// (`openrelay_directory::MAX_OPERATORS`, `MAX_RELAYS`).
pub const MAX_CALLS_PER_CHECK: usize =
    3 + 2 * openrelay_directory::MAX_OPERATORS + openrelay_directory::MAX_RELAYS;
/// How long one check may take, all batches together.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// What the node says differs from the directory: the directory is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// Another chain.
    #[error("the directory is for chain {directory}, the node serves chain {node}")]
    ChainId {
        /// The anchor's chain id.
        directory: u64,
        /// The node's.
        node: u64,
    },
    /// The anchor block is not on the node's chain.
    #[error(
        "block {number}: the directory names hash {directory}, the node's chain has {}",
        node.as_deref().unwrap_or("no such block")
    )]
    BlockHash {
        /// The block number.
        number: u64,
        /// The anchor's hash (hex).
        directory: String,
        /// The node's (hex), if it has the block.
        node: Option<String>,
    },
    /// The account holds another operator key (or none).
    #[error("operator {operator}: account {account} holds operator key {node} on chain")]
    OperatorKey {
        /// The listed operator.
        operator: OperatorId,
        /// Its account (hex).
        account: String,
        /// The chain's key (hex).
        node: String,
    },
    /// Another stake.
    #[error("operator {operator}: the directory states a stake of {directory} wei, the chain {}", node.map_or_else(|| "more than 2^128".to_owned(), |n| n.to_string()))]
    Stake {
        /// The listed operator.
        operator: OperatorId,
        /// The directory's stake.
        directory: u128,
        /// The chain's (`None`: beyond `u128`).
        node: Option<u128>,
    },
    /// Another covered bandwidth.
    #[error(
        "operator {operator}: the directory states {directory} Mbit/s covered, the chain's stake covers {node}"
    )]
    CoveredMbps {
        /// The listed operator.
        operator: OperatorId,
        /// The directory's.
        directory: u64,
        /// `stake / stakePerMbps` on chain.
        node: u128,
    },
    /// The operator's stake does not cover its relays: none may be listed.
    #[error(
        "operator {operator}: its stake does not cover its relays on chain (isCovered is false)"
    )]
    NotCovered {
        /// The listed operator.
        operator: OperatorId,
    },
    /// A relay whose operator the chain section does not list.
    #[error("relay {relay}: its operator is not in the chain section")]
    UnlistedOperator {
        /// The relay.
        relay: RelayId,
    },
    /// The relay is not registered under its operator's account.
    #[error("relay {relay}: not registered on chain under its operator's account")]
    NotRegistered {
        /// The relay.
        relay: RelayId,
    },
    /// Another role.
    #[error("relay {relay}: the descriptor says {directory}, the chain has role {node}")]
    Role {
        /// The relay.
        relay: RelayId,
        /// The descriptor's role.
        directory: RelayRole,
        /// The chain's role number (1 ingress, 2 egress).
        node: u8,
    },
    /// Another bandwidth.
    #[error("relay {relay}: the directory states {directory} Mbit/s, the chain {node}")]
    Bandwidth {
        /// The relay.
        relay: RelayId,
        /// The chain section's.
        directory: u32,
        /// The chain's.
        node: u32,
    },
    /// The descriptor is not the one the operator committed to.
    #[error("relay {relay}: descriptor hash {directory}, the chain has {node}")]
    DescriptorHash {
        /// The relay.
        relay: RelayId,
        /// The listed descriptor's `content_hash()` (hex).
        directory: String,
        /// The chain's `descriptorHash` (hex).
        node: String,
    },
}

/// Why a cross-check did not pass.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// The node says the directory is wrong.
    #[error("the directory differs from the chain on the RPC node: {0}")]
    Mismatch(#[from] Mismatch),
    /// The node could not be reached through the relays.
    #[error("RPC node unreachable through the relays: {0}")]
    Flow(#[from] FlowError),
    /// The exchange with the node failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The node's answer does not decode.
    #[error("RPC node's answer: {0}")]
    Abi(#[from] AbiError),
    /// An answer that is not the JSON value the call returns.
    #[error("RPC node's answer to {0} is malformed")]
    Malformed(&'static str),
    /// More calls than [`MAX_CALLS_PER_CHECK`].
    #[error("a directory needing {0} RPC calls is beyond the check's bound")]
    TooManyCalls(usize),
    /// The check took longer than [`CHECK_TIMEOUT`].
    #[error("RPC check took longer than {}s", CHECK_TIMEOUT.as_secs())]
    Timeout,
}

impl CheckError {
    /// Whether the node contradicted the directory (rather than not
    /// answering usably).
    pub fn is_mismatch(&self) -> bool {
        matches!(self, CheckError::Mismatch(_))
    }
}

impl HasKind for CheckError {
    fn kind(&self) -> ErrorKind {
        match self {
            CheckError::Mismatch(_) => ErrorKind::NotAuthenticated,
            CheckError::Flow(e) => HasKind::kind(e),
            CheckError::Rpc(e) => e.kind(),
            CheckError::Abi(_) | CheckError::Malformed(_) | CheckError::TooManyCalls(_) => {
                ErrorKind::Refused
            }
            CheckError::Timeout => ErrorKind::Unreachable,
        }
    }
}

/// Hex with `0x`, as JSON-RPC writes data.
fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("0x");
    for b in bytes {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// `0x`-prefixed hex data.
fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.strip_prefix("0x")?.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    digits
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// A JSON-RPC quantity (`0x`-prefixed hex, no leading zeros required).
fn quantity(value: &Value) -> Option<u64> {
    u64::from_str_radix(value.as_str()?.strip_prefix("0x")?, 16).ok()
}

/// The role number of the contract (`ROLE_INGRESS`, `ROLE_EGRESS`).
fn chain_role(role: RelayRole) -> u8 {
    match role {
        RelayRole::Ingress => 1,
        RelayRole::Egress => 2,
    }
}

/// One relay to look up: what the chain must hold for it.
struct RelayLookup {
    relay: RelayId,
    role: RelayRole,
    content_hash: [u8; 32],
    bandwidth_mbps: u32,
}

/// The calls checking `section` (with the directory's descriptors), in the
/// order [`judge`] reads their results: `eth_chainId`,
/// `eth_getBlockByNumber`, `coverFor(1)`, then `operators` and `isCovered`
/// per operator, then `relays` per relay.
fn plan(
    directory: &VerifiedDirectory,
    section: &ChainSection,
) -> Result<(Vec<Call>, Vec<RelayLookup>), Mismatch> {
    let block = format!("0x{:x}", section.anchor.block_number);
    let to = hex(&section.anchor.contract);
    let eth_call = |data: Vec<u8>| Call {
        method: "eth_call",
        params: json!([{ "to": to, "data": hex(&data) }, block]),
    };
    let mut calls = vec![
        Call {
            method: "eth_chainId",
            params: json!([]),
        },
        Call {
            method: "eth_getBlockByNumber",
            params: json!([block, false]),
        },
        eth_call(abi::call_data(abi::COVER_FOR, abi::uint_word(1))),
    ];
    for operator in &section.operators {
        calls.push(eth_call(abi::address_call(
            abi::OPERATORS,
            &operator.account,
        )));
        calls.push(eth_call(abi::address_call(
            abi::IS_COVERED,
            &operator.account,
        )));
    }
    let mut lookups = Vec::with_capacity(section.relays.len());
    for relay in directory.relays() {
        let id = relay.id();
        let account = section
            .operator(&relay.operator_id())
            .ok_or(Mismatch::UnlistedOperator { relay: id })?
            .account;
        let bandwidth_mbps = section
            .relay(&id)
            .ok_or(Mismatch::NotRegistered { relay: id })?
            .bandwidth_mbps;
        let chain_id = abi::relay_id(&account, &id.to_bytes());
        calls.push(eth_call(abi::call_data(abi::RELAYS, chain_id)));
        lookups.push(RelayLookup {
            relay: id,
            role: relay.role(),
            content_hash: relay.descriptor().content_hash(),
            bandwidth_mbps,
        });
    }
    Ok((calls, lookups))
}

/// The bytes an `eth_call` returned.
fn returned(value: &Value, function: &'static str) -> Result<Vec<u8>, CheckError> {
    value
        .as_str()
        .and_then(unhex)
        .ok_or(CheckError::Malformed(function))
}

/// Compares the node's `results` (in [`plan`]'s order) with `section`.
fn judge(
    section: &ChainSection,
    lookups: &[RelayLookup],
    results: &[Value],
) -> Result<(), CheckError> {
    let mut results = results.iter();
    let mut next = |what| results.next().ok_or(CheckError::Malformed(what));
    let anchor = &section.anchor;
    let chain_id = quantity(next("eth_chainId")?).ok_or(CheckError::Malformed("eth_chainId"))?;
    if chain_id != anchor.chain_id {
        return Err(Mismatch::ChainId {
            directory: anchor.chain_id,
            node: chain_id,
        }
        .into());
    }
    let block = next("eth_getBlockByNumber")?;
    let node_hash = match block {
        Value::Null => None,
        block => Some(
            block
                .get("hash")
                .and_then(Value::as_str)
                .and_then(unhex)
                .ok_or(CheckError::Malformed("eth_getBlockByNumber"))?,
        ),
    };
    if node_hash.as_deref() != Some(&anchor.block_hash[..]) {
        return Err(Mismatch::BlockHash {
            number: anchor.block_number,
            directory: hex(&anchor.block_hash),
            node: node_hash.map(|h| hex(&h)),
        }
        .into());
    }
    let stake_per_mbps = abi::decode_u128(
        abi::COVER_FOR,
        &returned(next("coverFor")?, abi::COVER_FOR)?,
    )?
    .filter(|n| *n > 0)
    .ok_or(CheckError::Malformed(abi::COVER_FOR))?;
    for listed in &section.operators {
        let record = abi::decode_operator(&returned(next("operators")?, abi::OPERATORS)?)?;
        let covered = abi::decode_bool(
            abi::IS_COVERED,
            &returned(next("isCovered")?, abi::IS_COVERED)?,
        )?;
        if record.operator_key != listed.operator.to_bytes() {
            return Err(Mismatch::OperatorKey {
                operator: listed.operator,
                account: hex(&listed.account),
                node: hex(&record.operator_key),
            }
            .into());
        }
        if record.stake_wei != Some(listed.stake_wei) {
            return Err(Mismatch::Stake {
                operator: listed.operator,
                directory: listed.stake_wei,
                node: record.stake_wei,
            }
            .into());
        }
        let node_covered = listed.stake_wei / stake_per_mbps;
        if u128::from(listed.covered_mbps) != node_covered {
            return Err(Mismatch::CoveredMbps {
                operator: listed.operator,
                directory: listed.covered_mbps,
                node: node_covered,
            }
            .into());
        }
        if !covered {
            return Err(Mismatch::NotCovered {
                operator: listed.operator,
            }
            .into());
        }
    }
    for lookup in lookups {
        let record = abi::decode_relay(&returned(next("relays")?, abi::RELAYS)?)?;
        let relay = lookup.relay;
        if record.role == 0 {
            return Err(Mismatch::NotRegistered { relay }.into());
        }
        if record.role != chain_role(lookup.role) {
            return Err(Mismatch::Role {
                relay,
                directory: lookup.role,
                node: record.role,
            }
            .into());
        }
        if record.bandwidth_mbps != lookup.bandwidth_mbps {
            return Err(Mismatch::Bandwidth {
                relay,
                directory: lookup.bandwidth_mbps,
                node: record.bandwidth_mbps,
            }
            .into());
        }
        if record.descriptor_hash != lookup.content_hash {
            return Err(Mismatch::DescriptorHash {
                relay,
                directory: hex(&lookup.content_hash),
                node: hex(&record.descriptor_hash),
            }
            .into());
        }
    }
    Ok(())
}

/// The user's node and whether the check must succeed.
#[derive(Debug, Clone)]
pub struct RpcCheck {
    url: RpcUrl,
    required: bool,
}

impl RpcCheck {
    /// A check against the node at `url`; with `required`, a directory the
    /// node cannot confirm is refused too.
    pub fn new(url: RpcUrl, required: bool) -> Self {
        RpcCheck { url, required }
    }

    /// Whether a node that cannot be asked refuses the directory.
    pub fn required(&self) -> bool {
        self.required
    }

    /// Checks `directory` against the node on `stream` (already connected
    /// to it). A directory without a chain section passes.
    pub async fn check_on<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        directory: &VerifiedDirectory,
    ) -> Result<(), CheckError> {
        let Some(section) = directory.chain() else {
            return Ok(());
        };
        let (calls, lookups) = plan(directory, section)?;
        if calls.len() > MAX_CALLS_PER_CHECK {
            return Err(CheckError::TooManyCalls(calls.len()));
        }
        let mut results = Vec::with_capacity(calls.len());
        for batch in calls.chunks(MAX_CALLS_PER_BATCH) {
            results.extend(jsonrpc::batch(stream, &self.url, batch).await?);
        }
        judge(section, &lookups, &results)
    }

    /// Checks `directory` against the node, reached through a CONNECT flow
    /// on `manager`'s path (bounded by [`CHECK_TIMEOUT`]).
    pub async fn check_through(
        &self,
        manager: &Arc<PathManager>,
        directory: &VerifiedDirectory,
    ) -> Result<(), CheckError> {
        if directory.chain().is_none() {
            return Ok(());
        }
        let check = async {
            let flow = crate::flow::open_tcp(manager, &self.url.target, &Bytes::new()).await?;
            let (send, recv) = flow.stream.split();
            // The HTTP client writes to one end of a pipe, the flow carries
            // the other end's bytes, as for an app's TCP connection.
            let (mut ours, theirs) = tokio::io::duplex(64 << 10);
            let _pump = openrelay_transport::task::AbortOnDrop(tokio::spawn(async move {
                let (read, write) = tokio::io::split(theirs);
                pump_halves(
                    read,
                    write,
                    send,
                    recv,
                    Bytes::new(),
                    &PumpCounters::default(),
                    None,
                )
                .await;
            }));
            self.check_on(&mut ours, directory).await
        };
        tokio::time::timeout(CHECK_TIMEOUT, check)
            .await
            .unwrap_or(Err(CheckError::Timeout))
    }
}

#[cfg(test)]
mod tests;
