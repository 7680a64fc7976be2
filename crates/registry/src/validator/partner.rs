//! The partner hop of a measuring validator's test (issue 14;
//! docs/measurement.md, "Partner hops"). A test measures a path of two
//! relays, so what it finds is the slower hop's capacity: the partner must
//! not be the bottleneck, or an honest relay is found short.
//!
//! * **Which partner**: a relay the validator trusts (`[measure] partners`,
//!   its own relays, listed in the directory like any other so the relay
//!   under test cannot tell the path from a client's) when one is
//!   compatible with the relay under test; else a directory relay known to
//!   carry at least what the relay under test must pass at; else one
//!   nothing is known of; else the one known to carry most. Known means
//!   the validator's own measurement of this or the last epoch, else the
//!   higher of the directory's measurement and what it carried as a
//!   partner of the validator's tests ([`PartnerKnowledge`]). Ties are
//!   broken at random, so a relay cannot know which partner its tests
//!   will use.
//! * **Which results count** ([`conclusive`]): a result below what the
//!   relay must pass at, or a failure, says nothing about the relay under
//!   test when the partner is not proven to carry that much (or the
//!   failure was the partner's, or ours): the validator then reports
//!   nothing for the relay this epoch rather than blame it. A result at or
//!   above the passing line always counts: no partner makes a relay faster
//!   than it is.

use std::collections::HashMap;

use openrelay_client::path::{BuildError, Hop};
use openrelay_client::relay::Relay;
use openrelay_measure::{Measurement, RelayId};
use openrelay_probe::ProbeFailure;
use openrelay_types::{KeyPin, RelayRole};

/// What one validator knows of relays' capacities from its own tests.
#[derive(Debug, Default)]
pub(crate) struct PartnerKnowledge {
    /// Per relay: the validator's latest evidence.
    own: HashMap<RelayId, Evidence>,
}

/// One validator's evidence of a relay's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Evidence {
    /// The epoch it is from.
    epoch: u64,
    /// The capacity it shows, bits per second (0: unreachable).
    bps: u64,
    /// Whether it is a conclusive test of the relay itself (what it
    /// carries), or only what it carried as a partner (at least that:
    /// the test's other hop may have been the slower).
    measured: bool,
}

impl Evidence {
    /// Whether it still counts in `epoch`: from this or the last epoch.
    fn recent(&self, epoch: u64) -> bool {
        self.epoch.saturating_add(1) >= epoch
    }
}

impl PartnerKnowledge {
    /// A conclusive result of `relay` in `epoch` replaces what was known.
    pub(crate) fn measured(&mut self, epoch: u64, relay: RelayId, measurement: &Measurement) {
        let bps = match measurement {
            Measurement::Reachable { capacity_bps, .. } => *capacity_bps,
            Measurement::Unreachable => 0,
        };
        self.own.insert(
            relay,
            Evidence {
                epoch,
                bps,
                measured: true,
            },
        );
    }

    /// `partner` carried `bps` in a test of `epoch`: it carries at least
    /// that. A lower bound never lowers what recent evidence showed (the
    /// partner of a short relay carries only what the short relay lets
    /// through; taking that as its capacity would leave the next test
    /// of that short relay without a proven partner, and unreported).
    pub(crate) fn carried(&mut self, epoch: u64, partner: RelayId, bps: u64) {
        let new = Evidence {
            epoch,
            bps,
            measured: false,
        };
        let entry = self.own.entry(partner).or_insert(new);
        if !entry.recent(epoch) {
            *entry = new;
        } else if bps > entry.bps {
            *entry = Evidence {
                bps,
                epoch: entry.epoch.max(epoch),
                ..*entry
            };
        }
    }

    /// Drops evidence older than the epoch before `epoch`.
    pub(crate) fn forget_before(&mut self, epoch: u64) {
        self.own.retain(|_, evidence| evidence.recent(epoch));
    }

    /// What `relay` is known to carry: the validator's own measurement of
    /// this or the last epoch; else the directory's measurement of it, or
    /// what the validator saw it carry as a partner, whichever is higher
    /// (the partner's figure is only a lower bound).
    fn known_bps(&self, epoch: u64, id: &RelayId, relay: &Relay) -> Option<u64> {
        let directory = relay.measured.map(|m| m.measured_bps);
        match self.own.get(id).filter(|e| e.recent(epoch)) {
            Some(e) if e.measured => Some(e.bps),
            Some(e) => Some(directory.map_or(e.bps, |d| d.max(e.bps))),
            None => directory,
        }
    }
}

/// Why a partner was picked: whether it is proven not to be the
/// bottleneck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartnerBasis {
    /// One of the validator's own relays (`[measure] partners`), not known
    /// to carry less than needed.
    Trusted,
    /// Known to carry at least what the relay under test must pass at.
    KnownSufficient,
    /// The best there was, not proven sufficient: a low result through it
    /// is not reported.
    Unproven,
}

/// A test's partner hop.
#[derive(Debug, Clone)]
pub(crate) struct Partner {
    /// Its id in reports.
    pub(crate) id: RelayId,
    /// Its record.
    pub(crate) relay: Relay,
    /// Why it was picked.
    pub(crate) basis: PartnerBasis,
}

/// Picks the partner of a test of `target` (see the module documentation)
/// among `candidates` (the directory's relays with their report ids);
/// `needed_bps` is what `target` must pass at, `trusted` the relay ids of
/// `[measure] partners`, `pick` draws an index below its argument. `None`: no compatible relay.
pub(crate) fn choose(
    target: &Relay,
    needed_bps: u64,
    candidates: &[(RelayId, Relay)],
    trusted: &[KeyPin],
    knowledge: &PartnerKnowledge,
    epoch: u64,
    pick: &mut dyn FnMut(usize) -> usize,
) -> Option<Partner> {
    let role = match target.role {
        RelayRole::Ingress => RelayRole::Egress,
        RelayRole::Egress => RelayRole::Ingress,
    };
    let compatible: Vec<(&RelayId, &Relay, Option<u64>)> = candidates
        .iter()
        .filter(|(_, r)| r.role == role && r.compatible_with(target))
        .map(|(id, r)| (id, r, knowledge.known_bps(epoch, id, r)))
        .collect();
    let enough = |known: Option<u64>| known.is_some_and(|bps| bps >= needed_bps);
    let mut draw = |set: Vec<&(&RelayId, &Relay, Option<u64>)>, basis| {
        let at = pick(set.len());
        set.get(at).map(|(id, relay, _)| Partner {
            id: **id,
            relay: (*relay).clone(),
            basis,
        })
    };
    let own: Vec<_> = compatible
        .iter()
        .filter(|(id, _, known)| {
            trusted.iter().any(|pin| pin.as_bytes() == &id.0)
                && known.is_none_or(|bps| bps >= needed_bps)
        })
        .collect();
    if !own.is_empty() {
        return draw(own, PartnerBasis::Trusted);
    }
    let sufficient: Vec<_> = compatible.iter().filter(|(_, _, k)| enough(*k)).collect();
    if !sufficient.is_empty() {
        return draw(sufficient, PartnerBasis::KnownSufficient);
    }
    // Nothing is known to carry enough: a relay nothing is known of may
    // (most do), one known to carry less will not. Taking the "best
    // known" short relay first made a short relay the partner of every
    // test in a validator's first measured epoch on the devnet, and none
    // of them counted.
    let rank = |known: Option<u64>| known.unwrap_or(u64::MAX);
    let best = compatible.iter().map(|(_, _, k)| rank(*k)).max()?;
    let tied: Vec<_> = compatible
        .iter()
        .filter(|(_, _, k)| rank(*k) == best)
        .collect();
    draw(tied, PartnerBasis::Unproven)
}

/// Whether a test of a relay of `role` through `partner` says something
/// about the relay under test (see the module documentation):
/// `measurement` is what it found, `failure` why it found nothing, and
/// `passing_bps` what the relay must pass at.
pub(crate) fn conclusive(
    role: RelayRole,
    partner: PartnerBasis,
    measurement: &Measurement,
    failure: Option<&ProbeFailure>,
    passing_bps: u64,
) -> bool {
    let proven = partner != PartnerBasis::Unproven;
    match (measurement, failure) {
        (Measurement::Reachable { capacity_bps, .. }, _) => *capacity_bps >= passing_bps || proven,
        (Measurement::Unreachable, Some(ProbeFailure::Path(e))) => match (e, role) {
            // Ours: no token, or this host.
            (BuildError::AccessRefused { .. } | BuildError::Local(_), _) => false,
            // The partner ingress of an egress test failed or refused.
            (
                BuildError::Handshake {
                    hop: Hop::Ingress, ..
                },
                RelayRole::Egress,
            )
            | (BuildError::TunnelRefused { .. }, RelayRole::Egress) => false,
            // The ingress under test failed or refused the tunnel.
            (
                BuildError::Handshake {
                    hop: Hop::Ingress, ..
                },
                RelayRole::Ingress,
            )
            | (BuildError::TunnelRefused { .. }, RelayRole::Ingress) => true,
            // The egress hop's handshake crosses both relays: either may
            // have failed it.
            _ => proven,
        },
        (Measurement::Unreachable, _) => proven,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
