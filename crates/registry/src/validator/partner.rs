//! The partner hop of a measuring validator's test (issue 14;
//! docs/measurement.md, "Partner hops"). A test measures a path of two
//! relays, so what it finds is the slower hop's capacity: the partner must
//! not be the bottleneck, or an honest relay is found short.
//!
//! * **Which partner**: a relay the validator trusts (`[measure] partners`,
//!   its own relays, listed in the directory like any other so the relay
//!   under test cannot tell the path from a client's) when one is
//!   compatible with the relay under test; else a directory relay known to
//!   carry at least what the relay under test must pass at; else the one
//!   known to carry most. Known means the validator's own evidence of this
//!   or the last epoch (a relay it measured, or one that carried one of its
//!   tests as a partner), else the directory's measurement. Ties are broken
//!   at random, so a relay cannot know which partner its tests will use.
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
    /// Per relay: the epoch of the latest evidence and the capacity it
    /// shows (0: unreachable). A partner's entry is a lower bound: what it
    /// carried.
    own: HashMap<RelayId, (u64, u64)>,
}

impl PartnerKnowledge {
    /// A conclusive result of `relay` in `epoch` replaces what was known.
    pub(crate) fn measured(&mut self, epoch: u64, relay: RelayId, measurement: &Measurement) {
        let bps = match measurement {
            Measurement::Reachable { capacity_bps, .. } => *capacity_bps,
            Measurement::Unreachable => 0,
        };
        self.own.insert(relay, (epoch, bps));
    }

    /// `partner` carried `bps` in a test of `epoch`: it carries at least
    /// that now (an older, lower figure is replaced).
    pub(crate) fn carried(&mut self, epoch: u64, partner: RelayId, bps: u64) {
        let entry = self.own.entry(partner).or_insert((epoch, bps));
        *entry = if entry.0 == epoch {
            (epoch, entry.1.max(bps))
        } else {
            (epoch, bps)
        };
    }

    /// Drops evidence older than the epoch before `epoch`.
    pub(crate) fn forget_before(&mut self, epoch: u64) {
        self.own
            .retain(|_, (seen, _)| seen.saturating_add(1) >= epoch);
    }

    /// What `relay` is known to carry: the validator's own evidence of this
    /// or the last epoch, else the directory's measurement of it.
    fn known_bps(&self, epoch: u64, id: &RelayId, relay: &Relay) -> Option<u64> {
        self.own
            .get(id)
            .filter(|(seen, _)| seen.saturating_add(1) >= epoch)
            .map(|(_, bps)| *bps)
            .or(relay.measured.map(|m| m.measured_bps))
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
    let best = compatible.iter().map(|(_, _, k)| k.unwrap_or(0)).max()?;
    let tied: Vec<_> = compatible
        .iter()
        .filter(|(_, _, k)| k.unwrap_or(0) == best)
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
