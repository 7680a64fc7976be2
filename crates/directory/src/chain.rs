//! What a directory says about the chain it reflects (issue 13, items 2 and
//! 5): the block it was built from, and for every listed operator and relay
//! what the `RelayRegistry` contract holds about them at that block.
//!
//! Chain facts are plain bytes and integers here: this crate links no chain
//! code (clients verify signed data, they do not talk to a node). The
//! validators who sign a directory vouch that these numbers are the chain's
//! at `anchor` (`openrelay_registry::validator` checks them against its own
//! node); a client uses them to weight relays by stake ([`crate::weight`])
//! and can cross-check them against a node of its own.

use crate::FormatError;
use crate::codec::{Reader, check_strictly_ascending, put_count_u32, read_list};
use crate::descriptor::read_key;
use crate::keys::{OperatorId, RelayId};

/// Bits per second in one Mbit/s, the chain's bandwidth unit.
pub const BPS_PER_MBPS: u64 = 1_000_000;

/// A block of one deployment of the registry contract: what a directory, or
/// a validator set hand-over, reflects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainAnchor {
    /// The EVM chain id (EIP-155), so a directory of a test network never
    /// passes for one of the real network.
    pub chain_id: u64,
    /// The registry contract's address.
    pub contract: [u8; 20],
    /// The block's number.
    pub block_number: u64,
    /// The block's hash.
    pub block_hash: [u8; 32],
}

/// Encoded size of a [`ChainAnchor`].
pub(crate) const ANCHOR_LEN: usize = 8 + 20 + 8 + 32;

impl ChainAnchor {
    /// Whether `other` is a block of the same deployment (chain and contract).
    pub fn same_deployment(&self, other: &ChainAnchor) -> bool {
        self.chain_id == other.chain_id && self.contract == other.contract
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.chain_id.to_be_bytes());
        out.extend_from_slice(&self.contract);
        out.extend_from_slice(&self.block_number.to_be_bytes());
        out.extend_from_slice(&self.block_hash);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, FormatError> {
        Ok(ChainAnchor {
            chain_id: r.u64()?,
            contract: r.array()?,
            block_number: r.u64()?,
            block_hash: r.array()?,
        })
    }
}

/// One listed operator as the chain has it at the directory's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainOperator {
    /// The operator's key (`operatorKey` on chain).
    pub operator: OperatorId,
    /// The EVM account the operator registered with (relays are stored
    /// under `relayId(account, relayKey)`): what a client cross-checking
    /// the directory against its own node looks up.
    pub account: [u8; 20],
    /// Its stake, in wei.
    pub stake_wei: u128,
    /// The bandwidth its stake covers, in Mbit/s: `stake / stakePerMbps`,
    /// rounded down. Every listed relay of the operator together advertises
    /// at most this on chain (checked by [`crate::Directory::check_contents`]),
    /// and selection weights its relays by at most this
    /// ([`crate::weight::stake_capped_bandwidths`]).
    pub covered_mbps: u64,
}

const CHAIN_OPERATOR_LEN: usize = 32 + 20 + 16 + 8;

/// One listed relay as the chain has it at the directory's block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainRelay {
    /// The relay's key (`relayKey` on chain).
    pub relay: RelayId,
    /// The bandwidth registered on chain (`bandwidthMbps`): the descriptor's
    /// `bandwidth_bps` is at most this times [`BPS_PER_MBPS`].
    pub bandwidth_mbps: u32,
    /// The relay's latest measured bandwidth as the validators' settled
    /// measurement epochs decided it (issue 14), or `None` if it was never
    /// measured (selection then gives it the bootstrap weight,
    /// [`crate::weight`]).
    pub measured: Option<RelayMeasurement>,
}

/// A relay's latest aggregated measurement (`openrelay_measure`'s
/// stake-weighted low-median of an epoch in which it was up), as a
/// directory carries it. Every validator signing the directory checked it
/// against its own record of the settled epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayMeasurement {
    /// The aggregate, bits per second.
    pub measured_bps: u64,
    /// The measurement epoch it was measured in.
    pub measured_epoch: u64,
    /// When that epoch ended (Unix seconds): the measurement's age is the
    /// directory's (or the reader's) time minus this.
    pub measured_at: u64,
}

/// The measurement field's tag: never measured.
const UNMEASURED: u8 = 0;
/// The measurement field's tag: measured, three `u64` follow.
const MEASURED: u8 = 1;

/// Encoded size of a [`ChainRelay`] entry without a measurement (the
/// smallest one).
const CHAIN_RELAY_LEN: usize = 32 + 4 + 1;

/// The most releases a directory lists (approved and revoked together).
pub const MAX_RELEASES: usize = 256;
/// The most launch measurements one release lists (one per platform and
/// image variant).
pub const MAX_RELEASE_MEASUREMENTS: usize = 16;
/// The length of a launch measurement: SHA-384 sized, the largest the
/// platforms report (SEV-SNP launch digest, TDX MRTD); shorter ones (SGX
/// MRENCLAVE) are zero-padded on the right.
pub const MEASUREMENT_LEN: usize = 48;

/// Where a release stands after the validators' vote (`ReleaseRegistry`
/// on chain): only these two are listed, a rejected or undecided release
/// is simply absent (and so refused, like an unknown one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseStatus {
    /// Approved by a 2/3 stake supermajority of validators who rebuilt it.
    Approved,
    /// Approved once, then revoked by a later vote: clients refuse it.
    Revoked,
}

const RELEASE_APPROVED: u8 = 1;
const RELEASE_REVOKED: u8 = 2;

/// One launch measurement of a release: what a TEE running it reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseMeasurement {
    /// The platform's code (`openrelay_attest::Platform::code`).
    pub platform: u8,
    /// The measurement, [`MEASUREMENT_LEN`] bytes.
    pub value: [u8; MEASUREMENT_LEN],
}

/// A voted release as the chain has it at the directory's block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainRelease {
    /// The release's id: SHA-256 of its signed provenance statement
    /// (`openrelay_release`), what validators voted on.
    pub release_id: [u8; 32],
    /// SHA-256 of the release binary.
    pub binary_sha256: [u8; 32],
    /// Approved or revoked.
    pub status: ReleaseStatus,
    /// Its launch measurements, strictly ascending, 1 to
    /// [`MAX_RELEASE_MEASUREMENTS`].
    pub measurements: Vec<ReleaseMeasurement>,
}

/// Encoded size of the smallest [`ChainRelease`] (one measurement).
const CHAIN_RELEASE_MIN_LEN: usize = 32 + 32 + 1 + 1 + 1 + MEASUREMENT_LEN;

/// A directory's chain section (directory format 6, issue 15: with releases): the block it reflects,
/// the validator set epoch whose signatures it needs, the chain's
/// figures for every listed operator and relay, and the releases the
/// validators voted on. Covered by the validators'
/// signatures like the rest of the directory body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSection {
    /// The block the directory reflects.
    pub anchor: ChainAnchor,
    /// The epoch of the validator set that signs this directory (0: the
    /// genesis set).
    pub validator_epoch: u64,
    /// One entry per operator profile of the directory, the same operators
    /// (sorted by operator id by [`crate::Directory::with_chain`]).
    pub operators: Vec<ChainOperator>,
    /// One entry per descriptor of the directory, the same relays (sorted
    /// by relay id by [`crate::Directory::with_chain`]).
    pub relays: Vec<ChainRelay>,
    /// The approved and revoked releases (sorted by release id by
    /// [`crate::Directory::with_chain`]), at most [`MAX_RELEASES`].
    pub releases: Vec<ChainRelease>,
}

impl ChainSection {
    /// Sorts both lists.
    pub(crate) fn sort(&mut self) {
        self.operators.sort_by_key(|o| o.operator);
        self.relays.sort_by_key(|r| r.relay);
        self.releases.sort_by_key(|r| r.release_id);
        for release in &mut self.releases {
            release.measurements.sort();
        }
    }

    /// The release whose launch measurements include `platform`'s
    /// `measurement` (zero-padded to [`MEASUREMENT_LEN`]), approved or
    /// revoked; `None` when no voted release has it.
    pub fn release_measured_as(&self, platform: u8, measurement: &[u8]) -> Option<&ChainRelease> {
        let mut value = [0u8; MEASUREMENT_LEN];
        let len = measurement.len();
        if len > MEASUREMENT_LEN {
            return None;
        }
        value[..len].copy_from_slice(measurement);
        let wanted = ReleaseMeasurement { platform, value };
        // Revoked wins if a measurement were listed twice: refusing is safe.
        self.releases
            .iter()
            .filter(|r| r.measurements.binary_search(&wanted).is_ok())
            .max_by_key(|r| r.status == ReleaseStatus::Revoked)
    }

    /// Checks the releases list: strictly ascending ids, at most
    /// [`MAX_RELEASES`], each with 1 to [`MAX_RELEASE_MEASUREMENTS`]
    /// strictly ascending measurements.
    pub(crate) fn check_releases(&self) -> Result<(), FormatError> {
        if self.releases.len() > MAX_RELEASES {
            return Err(FormatError::TooLarge {
                what: "chain releases",
                limit: MAX_RELEASES,
            });
        }
        check_strictly_ascending(&self.releases, "chain releases", |r| r.release_id)?;
        for release in &self.releases {
            if release.measurements.is_empty() {
                return Err(FormatError::Invalid {
                    field: "chain releases",
                    reason: "a release lists at least one measurement",
                });
            }
            if release.measurements.len() > MAX_RELEASE_MEASUREMENTS {
                return Err(FormatError::TooLarge {
                    what: "release measurements",
                    limit: MAX_RELEASE_MEASUREMENTS,
                });
            }
            check_strictly_ascending(&release.measurements, "release measurements", |m| *m)?;
        }
        Ok(())
    }

    /// The entry of `operator`, if listed.
    pub fn operator(&self, operator: &OperatorId) -> Option<&ChainOperator> {
        self.operators
            .binary_search_by(|o| o.operator.cmp(operator))
            .ok()
            .and_then(|i| self.operators.get(i))
    }

    /// The entry of `relay`, if listed.
    pub fn relay(&self, relay: &RelayId) -> Option<&ChainRelay> {
        self.relays
            .binary_search_by(|r| r.relay.cmp(relay))
            .ok()
            .and_then(|i| self.relays.get(i))
    }

    /// Checks that the lists name exactly `operators` and `relays` (both
    /// sorted, as the directory holds them), in the same order.
    pub(crate) fn check_matches(
        &self,
        operators: impl ExactSizeIterator<Item = (OperatorId, Option<[u8; 20]>)>,
        relays: impl ExactSizeIterator<Item = RelayId>,
    ) -> Result<(), FormatError> {
        check_strictly_ascending(&self.operators, "chain operators", |o| o.operator)?;
        check_strictly_ascending(&self.relays, "chain relays", |r| r.relay)?;
        if operators.len() != self.operators.len() {
            return Err(FormatError::Invalid {
                field: "chain operators",
                reason: "must list exactly the directory's operators",
            });
        }
        for ((operator, account), listed) in operators.zip(&self.operators) {
            if operator != listed.operator {
                return Err(FormatError::Invalid {
                    field: "chain operators",
                    reason: "must list exactly the directory's operators",
                });
            }
            // Any account may register any operator key; only the one the
            // operator's own signed profile names is its account.
            if account != Some(listed.account) {
                return Err(FormatError::Invalid {
                    field: "chain operators",
                    reason: "an operator's account must be the one its signed profile names",
                });
            }
        }
        if relays.len() != self.relays.len() || !relays.zip(&self.relays).all(|(a, b)| a == b.relay)
        {
            return Err(FormatError::Invalid {
                field: "chain relays",
                reason: "must list exactly the directory's relays",
            });
        }
        Ok(())
    }

    /// The fields that come before the profiles: the anchor and the epoch.
    pub(crate) fn encode_head(&self, out: &mut Vec<u8>) {
        self.anchor.encode(out);
        out.extend_from_slice(&self.validator_epoch.to_be_bytes());
    }

    /// The lists, after the issuer key sets.
    pub(crate) fn encode_lists(&self, out: &mut Vec<u8>) {
        put_count_u32(out, self.operators.len());
        for o in &self.operators {
            out.extend_from_slice(o.operator.as_bytes());
            out.extend_from_slice(&o.account);
            out.extend_from_slice(&o.stake_wei.to_be_bytes());
            out.extend_from_slice(&o.covered_mbps.to_be_bytes());
        }
        put_count_u32(out, self.relays.len());
        for r in &self.relays {
            out.extend_from_slice(r.relay.as_bytes());
            out.extend_from_slice(&r.bandwidth_mbps.to_be_bytes());
            match &r.measured {
                None => out.push(UNMEASURED),
                Some(m) => {
                    out.push(MEASURED);
                    out.extend_from_slice(&m.measured_bps.to_be_bytes());
                    out.extend_from_slice(&m.measured_epoch.to_be_bytes());
                    out.extend_from_slice(&m.measured_at.to_be_bytes());
                }
            }
        }
        put_count_u32(out, self.releases.len());
        for release in &self.releases {
            out.extend_from_slice(&release.release_id);
            out.extend_from_slice(&release.binary_sha256);
            out.push(match release.status {
                ReleaseStatus::Approved => RELEASE_APPROVED,
                ReleaseStatus::Revoked => RELEASE_REVOKED,
            });
            // At most MAX_RELEASE_MEASUREMENTS (16), checked on construction.
            out.push(u8::try_from(release.measurements.len()).unwrap_or(u8::MAX));
            for m in &release.measurements {
                out.push(m.platform);
                out.extend_from_slice(&m.value);
            }
        }
    }

    /// Checks that no relay was measured in an epoch that ended after
    /// `issued_at` (beyond the clock skew tolerated between the chain's
    /// block times and the registry's clock): a measurement from the
    /// future is one no validator could have recorded.
    pub(crate) fn check_measured_before(&self, issued_at: u64) -> Result<(), FormatError> {
        let latest = issued_at.saturating_add(crate::MAX_CLOCK_SKEW_SECS);
        if self
            .relays
            .iter()
            .filter_map(|r| r.measured)
            .any(|m| m.measured_at > latest)
        {
            return Err(FormatError::Invalid {
                field: "chain relays",
                reason: "a measurement's epoch must end before the directory is issued",
            });
        }
        Ok(())
    }

    /// Reads the lists (after [`ChainSection::encode_lists`]) into a section
    /// with the head already read.
    pub(crate) fn decode_lists(
        r: &mut Reader<'_>,
        anchor: ChainAnchor,
        validator_epoch: u64,
    ) -> Result<Self, FormatError> {
        let operators = read_list(
            r,
            "chain operators",
            crate::MAX_OPERATORS,
            CHAIN_OPERATOR_LEN,
            |r| {
                Ok(ChainOperator {
                    operator: OperatorId::from_checked(read_key(r, "chain operators")?),
                    account: r.array()?,
                    stake_wei: u128::from_be_bytes(r.array()?),
                    covered_mbps: r.u64()?,
                })
            },
        )?;
        let relays = read_list(r, "chain relays", crate::MAX_RELAYS, CHAIN_RELAY_LEN, |r| {
            Ok(ChainRelay {
                relay: RelayId::from_checked(read_key(r, "chain relays")?),
                bandwidth_mbps: r.u32()?,
                measured: match r.u8()? {
                    UNMEASURED => None,
                    MEASURED => Some(RelayMeasurement {
                        measured_bps: r.u64()?,
                        measured_epoch: r.u64()?,
                        measured_at: r.u64()?,
                    }),
                    _ => {
                        return Err(FormatError::Invalid {
                            field: "chain relays",
                            reason: "measurement tag must be 0 (none) or 1 (measured)",
                        });
                    }
                },
            })
        })?;
        let releases = read_list(
            r,
            "chain releases",
            MAX_RELEASES,
            CHAIN_RELEASE_MIN_LEN,
            decode_release,
        )?;
        let section = ChainSection {
            anchor,
            validator_epoch,
            operators,
            relays,
            releases,
        };
        section.check_releases()?;
        Ok(section)
    }
}

fn decode_release(r: &mut Reader<'_>) -> Result<ChainRelease, FormatError> {
    let release_id = r.array()?;
    let binary_sha256 = r.array()?;
    let status = match r.u8()? {
        RELEASE_APPROVED => ReleaseStatus::Approved,
        RELEASE_REVOKED => ReleaseStatus::Revoked,
        _ => {
            return Err(FormatError::Invalid {
                field: "chain releases",
                reason: "status must be 1 (approved) or 2 (revoked)",
            });
        }
    };
    let count = usize::from(r.u8()?);
    if count > MAX_RELEASE_MEASUREMENTS {
        return Err(FormatError::TooLarge {
            what: "release measurements",
            limit: MAX_RELEASE_MEASUREMENTS,
        });
    }
    let mut measurements = Vec::with_capacity(count);
    for _ in 0..count {
        measurements.push(ReleaseMeasurement {
            platform: r.u8()?,
            value: r.array()?,
        });
    }
    Ok(ChainRelease {
        release_id,
        binary_sha256,
        status,
        measurements,
    })
}
