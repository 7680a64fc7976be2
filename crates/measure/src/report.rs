//! What one validator reports in one epoch, its canonical encoding and the
//! commit–reveal around it (docs/measurement.md, "Reports").
//!
//! A validator first publishes a [`Commitment`] (SHA-256 over a domain tag
//! and the canonical [`Reveal`] bytes, which end in a 32-byte secret salt),
//! and only after the commit deadline the reveal itself, so no validator can
//! copy another's numbers. Reveals are untrusted bytes: [`Reveal::from_bytes`]
//! accepts exactly the canonical encoding and nothing else.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// A measurement epoch: a counter agreed on with the chain (the later parts
/// derive it from block numbers). Verdicts advance one epoch at a time.
pub type Epoch = u64;

/// The most relays one reveal may report on: a directory's
/// 100,000 relays (issue 16), every validator measuring every relay; the
/// bound keeps a reveal under about 5.1 MiB (53 bytes per report), which
/// only the off-chain path carries beyond 10,000 reports (docs/chain.md).
pub const MAX_RELAYS_PER_REVEAL: usize = 100_000;

/// The most validators whose reports one epoch aggregates: the directory's
/// bound on a validator set (64).
pub const MAX_VALIDATORS: usize = 64;

/// Version byte leading every reveal.
pub const REVEAL_VERSION: u8 = 1;

/// Domain separation of commitments: nothing else the project hashes
/// starts with these bytes.
pub const COMMITMENT_DOMAIN: &[u8] = b"openrelay measure commitment v1\0";

macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The 32 bytes (the Ed25519 public key of openrelay-directory's id).
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // The form openrelay-directory's ids print in (`KeyPin`).
                write!(
                    f,
                    "ed25519:{}",
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
                )
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        // Read back from the form it prints in, so explanations can be
        // stored and shown again (the registry's record, `operator status`).
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                parse_id(&text).map($name).ok_or_else(|| {
                    serde::de::Error::custom("expected `ed25519:` and 32 bytes in base64url")
                })
            }
        }
    };
}

/// The 32 bytes of an id printed as `ed25519:<base64url>`.
fn parse_id(text: &str) -> Option<[u8; 32]> {
    let b64 = text.strip_prefix("ed25519:")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .ok()?;
    bytes.try_into().ok()
}

id32!(
    /// A relay, by the 32 bytes of its openrelay-directory `RelayId` (this
    /// crate takes raw bytes so that it needs no key handling).
    RelayId
);
id32!(
    /// A validator, by the 32 bytes of its openrelay-directory `ValidatorId`.
    ValidatorId
);

/// What a validator measured of one relay's capacity in one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Measurement {
    /// The capacity test ran: the rate carried through the relay, and the
    /// median round-trip time of the echo probes that came back.
    Reachable {
        /// Bits per second carried through the relay.
        capacity_bps: u64,
        /// Median echo round-trip time, microseconds.
        rtt_micros: u32,
    },
    /// No capacity test was possible: the relay did not carry traffic.
    Unreachable,
}

/// One validator's report on one relay for one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ValidatorReport {
    /// The relay measured.
    pub relay: RelayId,
    /// Echo probes sent during the epoch (liveness).
    pub probes_sent: u32,
    /// Echo probes answered; never more than sent.
    pub probes_answered: u32,
    /// The capacity test's result.
    pub measurement: Measurement,
}

/// A validator's reports of one epoch with the salt that hides them until
/// revealed. The reports are sorted by relay, at most one per relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reveal {
    epoch: Epoch,
    validator: ValidatorId,
    reports: Vec<ValidatorReport>,
    salt: [u8; 32],
}

/// A validator's commitment to its reveal: SHA-256 of [`COMMITMENT_DOMAIN`]
/// followed by the canonical reveal bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Commitment(pub [u8; 32]);

/// Why a reveal was refused: building one, decoding one, or checking it
/// against a commitment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevealError {
    /// The bytes end before the encoding does.
    #[error("reveal truncated: {needed} more bytes needed at offset {offset}")]
    Truncated {
        /// Where the missing field starts.
        offset: usize,
        /// How many bytes it needs.
        needed: usize,
    },
    /// Bytes follow the salt.
    #[error("reveal has {0} trailing bytes after the salt")]
    TrailingBytes(usize),
    /// The version byte is not [`REVEAL_VERSION`].
    #[error("unknown reveal version {0}")]
    UnknownVersion(u8),
    /// More reports than [`MAX_RELAYS_PER_REVEAL`].
    #[error("reveal reports on {count} relays, at most {max} allowed")]
    TooManyReports {
        /// Reports in the reveal.
        count: usize,
        /// [`MAX_RELAYS_PER_REVEAL`].
        max: usize,
    },
    /// Relays are not in strictly increasing order (unsorted or repeated).
    #[error("report {index} is not after the previous one (relays must be sorted and distinct)")]
    UnsortedOrDuplicateRelay {
        /// Index of the offending report.
        index: usize,
    },
    /// An unknown measurement tag.
    #[error("report {index} has unknown measurement tag {tag}")]
    UnknownMeasurementTag {
        /// Index of the offending report.
        index: usize,
        /// The tag byte.
        tag: u8,
    },
    /// More probes answered than sent.
    #[error("report {index} says {answered} probes answered of {sent} sent")]
    MoreAnsweredThanSent {
        /// Index of the offending report.
        index: usize,
        /// Probes answered.
        answered: u32,
        /// Probes sent.
        sent: u32,
    },
    /// The reveal does not hash to the commitment.
    #[error("reveal does not match the commitment")]
    CommitmentMismatch,
}

const TAG_UNREACHABLE: u8 = 0;
const TAG_REACHABLE: u8 = 1;
/// relay ‖ probes sent ‖ probes answered ‖ tag.
const MIN_ENTRY_LEN: usize = 32 + 4 + 4 + 1;

impl Reveal {
    /// A reveal of `reports` (sorted here), or an error if a relay appears
    /// twice, there are too many, or a report says more probes were answered
    /// than sent.
    pub fn new(
        epoch: Epoch,
        validator: ValidatorId,
        mut reports: Vec<ValidatorReport>,
        salt: [u8; 32],
    ) -> Result<Self, RevealError> {
        reports.sort_by_key(|a| a.relay);
        Self::checked(epoch, validator, reports, salt)
    }

    /// The reveal, if its reports are sorted, distinct, few enough and
    /// possible.
    fn checked(
        epoch: Epoch,
        validator: ValidatorId,
        reports: Vec<ValidatorReport>,
        salt: [u8; 32],
    ) -> Result<Self, RevealError> {
        check_reports(&reports)?;
        Ok(Self {
            epoch,
            validator,
            reports,
            salt,
        })
    }

    /// The epoch reported on.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The validator reporting.
    pub fn validator(&self) -> ValidatorId {
        self.validator
    }

    /// The reports, sorted by relay.
    pub fn reports(&self) -> &[ValidatorReport] {
        &self.reports
    }

    /// The canonical encoding (all integers big-endian):
    /// `version u8 ‖ epoch u64 ‖ validator [32] ‖ count u32 ‖ entries ‖ salt [32]`,
    /// each entry `relay [32] ‖ probes_sent u32 ‖ probes_answered u32 ‖ tag u8`
    /// followed, for tag 1 (reachable), by `capacity_bps u64 ‖ rtt_micros u32`
    /// (tag 0 is unreachable and has nothing more).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + 32 + 4 + self.reports.len() * 53 + 32);
        out.push(REVEAL_VERSION);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.extend_from_slice(&self.validator.0);
        // At most MAX_RELAYS_PER_REVEAL reports (checked in `new`).
        out.extend_from_slice(&(self.reports.len() as u32).to_be_bytes());
        for r in &self.reports {
            out.extend_from_slice(&r.relay.0);
            out.extend_from_slice(&r.probes_sent.to_be_bytes());
            out.extend_from_slice(&r.probes_answered.to_be_bytes());
            match r.measurement {
                Measurement::Unreachable => out.push(TAG_UNREACHABLE),
                Measurement::Reachable {
                    capacity_bps,
                    rtt_micros,
                } => {
                    out.push(TAG_REACHABLE);
                    out.extend_from_slice(&capacity_bps.to_be_bytes());
                    out.extend_from_slice(&rtt_micros.to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&self.salt);
        out
    }

    /// Decodes the canonical encoding ([`Reveal::to_bytes`]); anything else
    /// (trailing bytes, unsorted or repeated relays, unknown tags, too many
    /// reports) is a [`RevealError`]. Never allocates more than the input
    /// can describe.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RevealError> {
        let mut r = Reader { bytes, offset: 0 };
        let version = r.u8()?;
        if version != REVEAL_VERSION {
            return Err(RevealError::UnknownVersion(version));
        }
        let epoch = r.u64()?;
        let validator = ValidatorId(r.array()?);
        let count = r.u32()? as usize;
        if count > MAX_RELAYS_PER_REVEAL {
            return Err(RevealError::TooManyReports {
                count,
                max: MAX_RELAYS_PER_REVEAL,
            });
        }
        // Every entry takes at least MIN_ENTRY_LEN bytes, so a count the
        // input cannot hold fails before anything is allocated for it.
        let needed = count * MIN_ENTRY_LEN + 32;
        if r.remaining() < needed {
            return Err(RevealError::Truncated {
                offset: r.offset,
                needed,
            });
        }
        let mut reports = Vec::with_capacity(count);
        for index in 0..count {
            let relay = RelayId(r.array()?);
            let probes_sent = r.u32()?;
            let probes_answered = r.u32()?;
            let measurement = match r.u8()? {
                TAG_UNREACHABLE => Measurement::Unreachable,
                TAG_REACHABLE => Measurement::Reachable {
                    capacity_bps: r.u64()?,
                    rtt_micros: r.u32()?,
                },
                tag => return Err(RevealError::UnknownMeasurementTag { index, tag }),
            };
            reports.push(ValidatorReport {
                relay,
                probes_sent,
                probes_answered,
                measurement,
            });
        }
        let salt = r.array()?;
        if r.remaining() > 0 {
            return Err(RevealError::TrailingBytes(r.remaining()));
        }
        Self::checked(epoch, validator, reports, salt)
    }

    /// The commitment to publish before revealing.
    pub fn commitment(&self) -> Commitment {
        commitment_of(&self.to_bytes())
    }
}

fn commitment_of(reveal_bytes: &[u8]) -> Commitment {
    let mut h = Sha256::new();
    h.update(COMMITMENT_DOMAIN);
    h.update(reveal_bytes);
    Commitment(h.finalize().into())
}

/// Checks revealed bytes against the commitment published earlier and
/// decodes them. The hash is checked first, so bytes nobody committed to
/// are refused before they are parsed.
pub fn verify_reveal(commitment: &Commitment, reveal_bytes: &[u8]) -> Result<Reveal, RevealError> {
    if commitment_of(reveal_bytes) != *commitment {
        return Err(RevealError::CommitmentMismatch);
    }
    Reveal::from_bytes(reveal_bytes)
}

fn check_reports(reports: &[ValidatorReport]) -> Result<(), RevealError> {
    if reports.len() > MAX_RELAYS_PER_REVEAL {
        return Err(RevealError::TooManyReports {
            count: reports.len(),
            max: MAX_RELAYS_PER_REVEAL,
        });
    }
    for (index, r) in reports.iter().enumerate() {
        if index > 0 && reports[index - 1].relay >= r.relay {
            return Err(RevealError::UnsortedOrDuplicateRelay { index });
        }
        if r.probes_answered > r.probes_sent {
            return Err(RevealError::MoreAnsweredThanSent {
                index,
                answered: r.probes_answered,
                sent: r.probes_sent,
            });
        }
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RevealError> {
        let slice = self
            .bytes
            .get(self.offset..self.offset + N)
            .ok_or(RevealError::Truncated {
                offset: self.offset,
                needed: N,
            })?;
        self.offset += N;
        let mut out = [0; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, RevealError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, RevealError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, RevealError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn report(relay: u8, m: Measurement) -> ValidatorReport {
        ValidatorReport {
            relay: RelayId([relay; 32]),
            probes_sent: 10,
            probes_answered: 9,
            measurement: m,
        }
    }

    fn sample() -> Reveal {
        Reveal::new(
            7,
            ValidatorId([1; 32]),
            vec![
                report(
                    9,
                    Measurement::Reachable {
                        capacity_bps: 100_000_000,
                        rtt_micros: 2_000,
                    },
                ),
                report(3, Measurement::Unreachable),
            ],
            [5; 32],
        )
        .expect("valid reveal")
    }

    #[test]
    fn reveal_round_trips_and_verifies_against_its_commitment() {
        let r = sample();
        assert_eq!(r.reports()[0].relay, RelayId([3; 32]), "sorted by relay");
        let bytes = r.to_bytes();
        assert_eq!(verify_reveal(&r.commitment(), &bytes), Ok(r.clone()));
    }

    #[test]
    fn the_fuzz_seed_is_the_documented_encoding_of_the_sample() {
        // Written by hand from the format in `Reveal::to_bytes`'s docs.
        let seed = include_bytes!("../../../fuzz/seeds/measure_reveal/two_reports.bin");
        assert_eq!(sample().to_bytes(), seed);
    }

    #[test]
    fn a_changed_reveal_or_another_salt_does_not_match_the_commitment() {
        let r = sample();
        let c = r.commitment();
        let mut bytes = r.to_bytes();
        // Flip one bit of the first report's capacity region.
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        assert_eq!(
            verify_reveal(&c, &bytes),
            Err(RevealError::CommitmentMismatch)
        );
        let other_salt =
            Reveal::new(7, r.validator(), r.reports().to_vec(), [6; 32]).expect("valid reveal");
        assert_ne!(other_salt.commitment(), c);
    }

    #[test]
    fn strict_decoder_refuses_non_canonical_input() {
        let bytes = sample().to_bytes();
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            Reveal::from_bytes(&trailing),
            Err(RevealError::TrailingBytes(1))
        );
        let mut version = bytes.clone();
        version[0] = 2;
        assert_eq!(
            Reveal::from_bytes(&version),
            Err(RevealError::UnknownVersion(2))
        );
        // Swap the two entries' relay ids: unsorted.
        let mut unsorted = bytes.clone();
        let first = 1 + 8 + 32 + 4;
        let second = first + MIN_ENTRY_LEN; // the first entry is unreachable
        unsorted[first..first + 32].copy_from_slice(&[9; 32]);
        unsorted[second..second + 32].copy_from_slice(&[3; 32]);
        assert_eq!(
            Reveal::from_bytes(&unsorted),
            Err(RevealError::UnsortedOrDuplicateRelay { index: 1 })
        );
        let mut tag = bytes.clone();
        tag[first + 40] = 7;
        assert_eq!(
            Reveal::from_bytes(&tag),
            Err(RevealError::UnknownMeasurementTag { index: 0, tag: 7 })
        );
        let mut huge = bytes[..first].to_vec();
        huge[first - 4..first].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Reveal::from_bytes(&huge),
            Err(RevealError::TooManyReports { .. })
        ));
        let mut lying = bytes[..first].to_vec();
        lying[first - 4..first].copy_from_slice(&1000u32.to_be_bytes());
        assert!(matches!(
            Reveal::from_bytes(&lying),
            Err(RevealError::Truncated { .. })
        ));
    }

    #[test]
    fn building_refuses_duplicates_and_impossible_probe_counts() {
        let dup = Reveal::new(
            1,
            ValidatorId([0; 32]),
            vec![
                report(1, Measurement::Unreachable),
                report(1, Measurement::Unreachable),
            ],
            [0; 32],
        );
        assert_eq!(dup, Err(RevealError::UnsortedOrDuplicateRelay { index: 1 }));
        let mut r = report(1, Measurement::Unreachable);
        r.probes_answered = 11;
        assert!(matches!(
            Reveal::new(1, ValidatorId([0; 32]), vec![r], [0; 32]),
            Err(RevealError::MoreAnsweredThanSent { .. })
        ));
    }

    fn arb_report() -> impl Strategy<Value = ValidatorReport> {
        (
            any::<[u8; 32]>(),
            any::<u32>(),
            any::<u32>(),
            proptest::option::of((any::<u64>(), any::<u32>())),
        )
            .prop_map(|(relay, a, b, m)| ValidatorReport {
                relay: RelayId(relay),
                probes_sent: a.max(b),
                probes_answered: a.min(b),
                measurement: m.map_or(Measurement::Unreachable, |(c, r)| Measurement::Reachable {
                    capacity_bps: c,
                    rtt_micros: r,
                }),
            })
    }

    proptest! {
        #[test]
        fn any_valid_reveal_round_trips(
            epoch in any::<u64>(),
            validator in any::<[u8; 32]>(),
            reports in proptest::collection::btree_map(any::<[u8; 32]>(), arb_report(), 0..20),
            salt in any::<[u8; 32]>(),
        ) {
            let reports = reports
                .into_iter()
                .map(|(relay, r)| ValidatorReport { relay: RelayId(relay), ..r })
                .collect();
            let r = Reveal::new(epoch, ValidatorId(validator), reports, salt).expect("valid");
            let bytes = r.to_bytes();
            prop_assert_eq!(Reveal::from_bytes(&bytes), Ok(r.clone()));
            prop_assert_eq!(verify_reveal(&r.commitment(), &bytes), Ok(r));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics_and_is_canonical(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            if let Ok(r) = Reveal::from_bytes(&bytes) {
                prop_assert_eq!(r.to_bytes(), bytes);
            }
        }

        #[test]
        fn every_prefix_of_a_reveal_is_refused(cut in 0usize..150) {
            let bytes = sample().to_bytes();
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(Reveal::from_bytes(&bytes[..cut]).is_err());
        }
    }
}
