use std::net::SocketAddr;
use std::sync::Arc;

use openrelay_client::relay::{Operator, Region, RelayId as PathRelayId};
use openrelay_directory::RelayMeasurement;

use super::*;

const MBPS: u64 = 1_000_000;
/// What the relay under test must pass at.
const NEEDED: u64 = 36 * MBPS;
const EPOCH: u64 = 7;

fn relay(n: u8, role: RelayRole, operator: u8, measured_bps: Option<u64>) -> (RelayId, Relay) {
    let relay = Relay {
        id: PathRelayId::from_pin(KeyPin::from_ed25519([n; 32])),
        name: format!("{role}-{n}"),
        role,
        operator: Operator::Unlisted(format!("operator-{operator}")),
        network: None,
        region: Region::default(),
        bandwidth_bps: 4 * MBPS,
        measured: measured_bps.map(|measured_bps| RelayMeasurement {
            measured_bps,
            measured_epoch: EPOCH - 1,
            measured_at: 1_700_000_000,
        }),
        addr: SocketAddr::from(([192, 0, 2, n], 4433)),
        attestation: openrelay_client::attestation::AttestationVerdict::NotChecked.into(),
        listing: None,
    };
    (RelayId([n; 32]), relay)
}

/// Draws the first of a set, and counts the draws.
fn first() -> impl FnMut(usize) -> usize {
    |_| 0
}

/// [`choose`] for `target` needing [`NEEDED`], with no trusted relays.
fn choose_untrusted(
    target: &Relay,
    candidates: &[(RelayId, Relay)],
    knowledge: &PartnerKnowledge,
    epoch: u64,
    pick: &mut dyn FnMut(usize) -> usize,
) -> Option<Partner> {
    choose(target, NEEDED, candidates, &[], knowledge, epoch, pick)
}

fn names(partner: Option<Partner>) -> Option<(String, PartnerBasis)> {
    partner.map(|p| (p.relay.name, p.basis))
}

#[test]
fn never_the_relay_s_own_operator_nor_its_role() {
    let (_, target) = relay(1, RelayRole::Egress, 0, None);
    let candidates = [
        relay(2, RelayRole::Ingress, 0, Some(100 * MBPS)),
        relay(3, RelayRole::Egress, 1, Some(100 * MBPS)),
    ];
    let knowledge = PartnerKnowledge::default();
    let chosen = choose_untrusted(&target, &candidates, &knowledge, EPOCH, &mut first());
    assert!(chosen.is_none(), "{chosen:?}");
}

#[test]
fn a_partner_known_too_slow_is_passed_over_for_one_known_fast_enough() {
    let (_, target) = relay(1, RelayRole::Ingress, 0, None);
    let candidates = [
        relay(2, RelayRole::Egress, 1, Some(4 * MBPS)),
        relay(3, RelayRole::Egress, 2, Some(40 * MBPS)),
        relay(4, RelayRole::Egress, 3, None),
    ];
    let knowledge = PartnerKnowledge::default();
    for at in 0..3 {
        let chosen = choose_untrusted(&target, &candidates, &knowledge, EPOCH, &mut |n| at % n);
        assert_eq!(
            names(chosen),
            Some(("egress-3".into(), PartnerBasis::KnownSufficient))
        );
    }
}

/// The first epoch: nothing is measured, so the partner is unproven until
/// the validator's own tests show what relays carry.
#[test]
fn own_evidence_proves_a_partner_before_the_directory_measures_it() {
    let (_, target) = relay(1, RelayRole::Egress, 0, None);
    let candidates = [
        relay(2, RelayRole::Ingress, 1, None),
        relay(3, RelayRole::Ingress, 2, None),
    ];
    let mut knowledge = PartnerKnowledge::default();
    let unproven = choose_untrusted(&target, &candidates, &knowledge, EPOCH, &mut first());
    assert_eq!(unproven.unwrap().basis, PartnerBasis::Unproven);

    // Relay 3 carried another test at 120 Mbit/s; relay 2 was measured
    // short by this validator.
    knowledge.carried(EPOCH, candidates[1].0, 120 * MBPS);
    knowledge.measured(
        EPOCH,
        candidates[0].0,
        &Measurement::Reachable {
            capacity_bps: 4 * MBPS,
            rtt_micros: 1,
        },
    );
    let chosen = choose_untrusted(&target, &candidates, &knowledge, EPOCH, &mut first());
    assert_eq!(
        names(chosen),
        Some(("ingress-3".into(), PartnerBasis::KnownSufficient))
    );

    // Evidence older than the last epoch is forgotten.
    knowledge.forget_before(EPOCH + 2);
    let later = choose_untrusted(&target, &candidates, &knowledge, EPOCH + 2, &mut first());
    assert_eq!(later.unwrap().basis, PartnerBasis::Unproven);
}

/// A relay's own evidence outranks the directory's older figure both ways.
#[test]
fn fresh_own_evidence_outranks_the_directory() {
    let (_, target) = relay(1, RelayRole::Ingress, 0, None);
    let candidates = [relay(2, RelayRole::Egress, 1, Some(100 * MBPS))];
    let mut knowledge = PartnerKnowledge::default();
    knowledge.measured(EPOCH, candidates[0].0, &Measurement::Unreachable);
    let chosen = choose_untrusted(&target, &candidates, &knowledge, EPOCH, &mut first());
    assert_eq!(chosen.unwrap().basis, PartnerBasis::Unproven);
}

#[test]
fn the_validator_s_own_relays_come_first_unless_known_short() {
    let (_, target) = relay(1, RelayRole::Egress, 0, None);
    let candidates = [
        relay(2, RelayRole::Ingress, 1, Some(900 * MBPS)),
        relay(3, RelayRole::Ingress, 2, None),
        relay(4, RelayRole::Ingress, 3, Some(4 * MBPS)),
    ];
    let trusted = [
        KeyPin::from_ed25519(candidates[1].0.0),
        KeyPin::from_ed25519(candidates[2].0.0),
    ];
    let knowledge = PartnerKnowledge::default();
    let chosen = choose(
        &target,
        NEEDED,
        &candidates,
        &trusted,
        &knowledge,
        EPOCH,
        &mut |n| n - 1,
    );
    assert_eq!(
        names(chosen),
        Some(("ingress-3".into(), PartnerBasis::Trusted))
    );
    // The trusted relays of the relay's own operator are not partners.
    let (_, own_operator) = relay(5, RelayRole::Egress, 2, None);
    let chosen = choose(
        &own_operator,
        NEEDED,
        &candidates,
        &trusted,
        &knowledge,
        EPOCH,
        &mut first(),
    );
    assert_eq!(
        names(chosen),
        Some(("ingress-2".into(), PartnerBasis::KnownSufficient))
    );
}

#[test]
fn every_tied_partner_can_be_drawn() {
    let (_, target) = relay(1, RelayRole::Egress, 0, None);
    let candidates: Vec<_> = (2..6)
        .map(|n| relay(n, RelayRole::Ingress, n, Some(50 * MBPS)))
        .collect();
    let knowledge = PartnerKnowledge::default();
    let drawn: std::collections::BTreeSet<String> = (0..4)
        .filter_map(|at| choose_untrusted(&target, &candidates, &knowledge, EPOCH, &mut |n| at % n))
        .map(|p| p.relay.name)
        .collect();
    assert_eq!(drawn.len(), 4, "{drawn:?}");
}

fn reachable(bps: u64) -> Measurement {
    Measurement::Reachable {
        capacity_bps: bps,
        rtt_micros: 1_000,
    }
}

fn handshake(hop: Hop) -> ProbeFailure {
    ProbeFailure::Path(BuildError::Handshake {
        hop,
        relay: "r".into(),
        reason: Arc::new(openrelay_client::path::HandshakeFailure::TimedOut),
    })
}

/// A short result through an unproven partner cannot tell which hop was
/// short; a passing one can, whatever the partner.
#[test]
fn a_low_result_counts_only_through_a_proven_partner() {
    use PartnerBasis::{KnownSufficient, Trusted, Unproven};
    for role in [RelayRole::Ingress, RelayRole::Egress] {
        let low = reachable(4 * MBPS);
        let high = reachable(NEEDED);
        assert!(!conclusive(role, Unproven, &low, None, NEEDED));
        assert!(conclusive(role, KnownSufficient, &low, None, NEEDED));
        assert!(conclusive(role, Trusted, &low, None, NEEDED));
        assert!(conclusive(role, Unproven, &high, None, NEEDED));
    }
}

#[test]
fn failures_are_blamed_on_the_hop_that_failed() {
    use PartnerBasis::{KnownSufficient, Unproven};
    let down = Measurement::Unreachable;
    let egress = RelayRole::Egress;
    let ingress = RelayRole::Ingress;
    let refused = ProbeFailure::Path(BuildError::TunnelRefused {
        relay: "r".into(),
        status: 403,
    });
    let no_token = ProbeFailure::Path(BuildError::AccessRefused {
        relay: "r".into(),
        details: "token required".into(),
        hint: "",
    });
    // The ingress hop is the partner of an egress test: never the egress's
    // fault, even through a proven partner.
    let first_hop = handshake(Hop::Ingress);
    assert!(!conclusive(
        egress,
        KnownSufficient,
        &down,
        Some(&first_hop),
        NEEDED
    ));
    assert!(!conclusive(
        egress,
        KnownSufficient,
        &down,
        Some(&refused),
        NEEDED
    ));
    // ... and the relay under test of an ingress test, whatever the partner.
    assert!(conclusive(
        ingress,
        Unproven,
        &down,
        Some(&first_hop),
        NEEDED
    ));
    assert!(conclusive(ingress, Unproven, &down, Some(&refused), NEEDED));
    // A refused token is the validator's own problem.
    for role in [ingress, egress] {
        assert!(!conclusive(
            role,
            KnownSufficient,
            &down,
            Some(&no_token),
            NEEDED
        ));
    }
    // The second hop crosses both: blamed only through a proven partner.
    let second_hop = handshake(Hop::Egress);
    for role in [ingress, egress] {
        assert!(!conclusive(
            role,
            Unproven,
            &down,
            Some(&second_hop),
            NEEDED
        ));
        assert!(conclusive(
            role,
            KnownSufficient,
            &down,
            Some(&second_hop),
            NEEDED
        ));
    }
}

/// What a relay carried as the partner of a short relay (the short one's
/// rate) is a lower bound: it neither lowers this validator's measurement
/// of it nor the directory's, so the short relay's next test still has a
/// proven partner and counts.
#[test]
fn carrying_a_short_relay_s_test_does_not_make_a_partner_unproven() {
    let (_, target) = relay(1, RelayRole::Ingress, 0, None);
    let measured_here = relay(2, RelayRole::Egress, 1, None);
    let measured_by_all = relay(3, RelayRole::Egress, 2, Some(100 * MBPS));
    let mut knowledge = PartnerKnowledge::default();
    knowledge.measured(
        EPOCH - 1,
        measured_here.0,
        &Measurement::Reachable {
            capacity_bps: 100 * MBPS,
            rtt_micros: 1,
        },
    );
    for partner in [&measured_here, &measured_by_all] {
        knowledge.carried(EPOCH, partner.0, 4 * MBPS);
        let chosen = choose_untrusted(
            &target,
            std::slice::from_ref(partner),
            &knowledge,
            EPOCH,
            &mut first(),
        );
        assert_eq!(chosen.unwrap().basis, PartnerBasis::KnownSufficient);
    }
    // A higher figure carried does raise it; evidence two epochs old is gone.
    knowledge.carried(EPOCH, measured_here.0, 120 * MBPS);
    assert_eq!(
        knowledge.known_bps(EPOCH + 1, &measured_here.0, &measured_here.1),
        Some(120 * MBPS)
    );
    assert_eq!(
        knowledge.known_bps(EPOCH + 2, &measured_here.0, &measured_here.1),
        None
    );
}

/// With nothing known to carry enough, a relay nothing is known of comes
/// before one known to carry too little (which would bottleneck the test).
#[test]
fn an_unknown_partner_comes_before_one_known_too_slow() {
    let (_, target) = relay(1, RelayRole::Egress, 0, None);
    let short = relay(2, RelayRole::Ingress, 1, None);
    let unknown = relay(3, RelayRole::Ingress, 2, None);
    let mut knowledge = PartnerKnowledge::default();
    knowledge.carried(EPOCH, short.0, 4 * MBPS);
    let candidates = [short, unknown];
    for at in 0..2 {
        let chosen = choose_untrusted(&target, &candidates, &knowledge, EPOCH, &mut |n| at % n);
        assert_eq!(
            names(chosen),
            Some(("ingress-3".into(), PartnerBasis::Unproven))
        );
    }
}
