//! Issue 15, item 5: the client judges each directory relay's TEE evidence
//! (platform signature, binding to the relay's id, pinned key and
//! `not_before`, an approved and unrevoked release) and `[trust]
//! attestation` decides which relays paths may use; `require` fails closed
//! and names why each relay was refused.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use openrelay_attest::{Binding, InsecureSimulatedTee, Platform, Policy, report_data};
use std::sync::Arc;

use openrelay_client::attestation::{
    AttestationRefusal, AttestationVerdict, DirectoryJudge, VerdictCache, admit, judge,
};
use openrelay_client::relay::Relay;
use openrelay_client::selection::{
    EgressRegion, MAX_NAMED_REFUSALS, PathPlan, PlanConfig, SelectionError, choose,
};
use openrelay_config::AttestationMode;
use openrelay_directory::{
    AttestationEvidence, ChainRelease, MEASUREMENT_LEN, ReleaseMeasurement, ReleaseStatus,
    VerifiedDirectory, verify_directory,
};
use openrelay_testkit::fixtures::*;
use openrelay_types::RelayRole;

const APPROVED: [u8; MEASUREMENT_LEN] = [0xa5; MEASUREMENT_LEN];
const REVOKED: [u8; MEASUREMENT_LEN] = [0x7e; MEASUREMENT_LEN];
const UNKNOWN: [u8; MEASUREMENT_LEN] = [0x33; MEASUREMENT_LEN];

fn tee() -> InsecureSimulatedTee {
    InsecureSimulatedTee::from_seed([9; 32])
}

fn policy() -> Policy {
    Policy {
        insecure_simulated_root: Some(tee().root()),
        ..Policy::default()
    }
}

/// What relay `n`'s descriptor carries.
#[derive(Clone, Copy)]
enum Carries {
    Nothing,
    Measuring([u8; MEASUREMENT_LEN]),
    /// Evidence made for relay `n + 1`'s key (copied from another relay).
    OtherRelays,
    /// Evidence for an earlier `not_before` (an old report kept).
    Stale,
    Garbage,
}

fn evidence_for(
    n: u8,
    fields: &openrelay_directory::DescriptorFields,
    carries: Carries,
) -> Option<AttestationEvidence> {
    let binding = |relay: u8, not_before| Binding {
        relay_id: relay_key(relay).id().to_bytes(),
        key_pin: *quic_pin(relay).as_bytes(),
        not_before,
    };
    let bytes = match carries {
        Carries::Nothing => return None,
        Carries::Measuring(m) => tee()
            .evidence(&report_data(&binding(n, fields.not_before)), &m)
            .to_bytes(),
        Carries::OtherRelays => tee()
            .evidence(&report_data(&binding(n + 1, fields.not_before)), &APPROVED)
            .to_bytes(),
        Carries::Stale => tee()
            .evidence(&report_data(&binding(n, fields.not_before - 1)), &APPROVED)
            .to_bytes(),
        Carries::Garbage => vec![0xff; 40],
    };
    Some(AttestationEvidence::new(bytes).unwrap())
}

/// A chain-backed directory of `relays` (id, role, what it carries), one
/// operator each, listing an approved and a revoked release.
fn directory(relays: &[(u8, RelayRole, Carries)]) -> VerifiedDirectory {
    let with_operators: Vec<_> = relays.iter().map(|&(n, role, c)| (n, n, role, c)).collect();
    directory_of_operators(&with_operators)
}

/// As [`directory`], with relay `n` run by operator `o` for each
/// `(n, o, role, carries)`.
fn directory_of_operators(relays: &[(u8, u8, RelayRole, Carries)]) -> VerifiedDirectory {
    let mut profiles = Vec::new();
    let mut descriptors = Vec::new();
    for &(n, operator, role, carries) in relays {
        if !profiles
            .iter()
            .any(|p: &openrelay_directory::SignedOperatorProfile| {
                p.profile().operator() == profile(operator).profile().operator()
            })
        {
            profiles.push(profile(operator));
        }
        let mut fields = descriptor_fields(n, operator, role);
        fields.attestation = evidence_for(n, &fields, carries);
        descriptors.push(sign(fields, n, operator));
    }
    profiles.sort_by_key(|p| p.profile().operator());
    descriptors.sort_by_key(|d| d.descriptor().relay());
    let plain = directory_with(1, profiles, descriptors);
    let mut section = chain_section(&plain, 100, 0);
    let code = Platform::InsecureSimulated.code();
    section.releases = vec![
        ChainRelease {
            release_id: [1; 32],
            binary_sha256: [2; 32],
            status: ReleaseStatus::Approved,
            measurements: vec![ReleaseMeasurement {
                platform: code,
                value: APPROVED,
            }],
        },
        ChainRelease {
            release_id: [3; 32],
            binary_sha256: [4; 32],
            status: ReleaseStatus::Revoked,
            measurements: vec![ReleaseMeasurement {
                platform: code,
                value: REVOKED,
            }],
        },
    ];
    let d = plain.with_chain(section).unwrap();
    verify_directory(signed(&d, &[0, 1]), &trust(2, 3), T0, None).unwrap()
}

fn relays(directory: &VerifiedDirectory, policy: &Policy) -> Vec<Relay> {
    directory
        .relays()
        .map(|r| {
            let verdict = judge(&r, directory.chain(), policy, T0);
            Relay::from_directory(&r, r.endpoints()[0], verdict)
        })
        .collect()
}

fn verdict_of(relays: &[Relay], n: u8) -> AttestationVerdict {
    relays
        .iter()
        .find(|r| r.pin() == quic_pin(n))
        .unwrap()
        .attestation
        .verdict()
}

#[test]
fn each_kind_of_evidence_gets_its_verdict() {
    use Carries::*;
    let d = directory(&[
        (1, RelayRole::Ingress, Measuring(APPROVED)),
        (3, RelayRole::Ingress, Nothing),
        (5, RelayRole::Ingress, Measuring(UNKNOWN)),
        (7, RelayRole::Egress, Measuring(REVOKED)),
        (9, RelayRole::Egress, OtherRelays),
        (11, RelayRole::Egress, Stale),
        (13, RelayRole::Egress, Garbage),
    ]);
    let r = relays(&d, &policy());
    assert!(matches!(
        verdict_of(&r, 1),
        AttestationVerdict::Attested { platform: Platform::InsecureSimulated, release_id, .. } if release_id == [1; 32]
    ));
    assert_eq!(verdict_of(&r, 3), AttestationVerdict::NoEvidence);
    assert!(matches!(
        verdict_of(&r, 5),
        AttestationVerdict::Refused(AttestationRefusal::Unapproved { .. })
    ));
    assert!(matches!(
        verdict_of(&r, 7),
        AttestationVerdict::Refused(AttestationRefusal::Revoked { .. })
    ));
    // Evidence bound to another relay's key, or to an earlier descriptor,
    // does not verify for this one.
    for n in [9, 11] {
        assert!(
            matches!(
                verdict_of(&r, n),
                AttestationVerdict::Refused(AttestationRefusal::Invalid { .. })
            ),
            "relay {n}: {}",
            verdict_of(&r, n)
        );
    }
    assert!(matches!(
        verdict_of(&r, 13),
        AttestationVerdict::Refused(AttestationRefusal::Malformed(_))
    ));
    // The default policy refuses the simulated platform: it proves nothing.
    let strict = relays(&d, &Policy::default());
    assert!(matches!(
        verdict_of(&strict, 1),
        AttestationVerdict::Refused(AttestationRefusal::Invalid { .. })
    ));
}

#[test]
fn a_directory_without_releases_approves_nothing() {
    let mut profiles = vec![profile(1)];
    let mut fields = descriptor_fields(1, 1, RelayRole::Ingress);
    fields.attestation = evidence_for(1, &fields, Carries::Measuring(APPROVED));
    let descriptors = vec![sign(fields, 1, 1)];
    profiles.sort_by_key(|p| p.profile().operator());
    let d = directory_with(1, profiles, descriptors);
    let verified = verify_directory(signed(&d, &[0, 1]), &trust(2, 3), T0, None).unwrap();
    let relay = verified.relays().next().unwrap();
    assert_eq!(
        judge(&relay, verified.chain(), &policy(), T0),
        AttestationVerdict::Refused(AttestationRefusal::NoReleaseList)
    );
}

fn plan(relays: Vec<Relay>, mode: AttestationMode) -> PathPlan<Duration> {
    let config = PlanConfig {
        attestation: mode,
        ..PlanConfig::default()
    };
    PathPlan::new(relays, config, fastrand::Rng::with_seed(7))
}

fn pins(relays: &[Relay]) -> Vec<openrelay_types::KeyPin> {
    relays.iter().map(Relay::pin).collect()
}

#[test]
fn require_uses_attested_relays_only_and_fails_closed_naming_each_refusal() {
    use Carries::*;
    let d = directory(&[
        (1, RelayRole::Ingress, Measuring(APPROVED)),
        (3, RelayRole::Ingress, Nothing),
        (5, RelayRole::Egress, Measuring(APPROVED)),
        (7, RelayRole::Egress, Measuring(REVOKED)),
    ]);
    let all = relays(&d, &policy());
    let mut require = plan(all.clone(), AttestationMode::Require);
    for i in 0..50 {
        let path = require.current(Duration::from_secs(i * 3600)).unwrap();
        assert_eq!(path.choice.ingress.pin(), quic_pin(1));
        assert_eq!(path.choice.egress.pin(), quic_pin(5));
    }
    // The attested egress goes: no path, and the error names every refusal.
    let without: Vec<Relay> = all
        .iter()
        .filter(|r| r.pin() != quic_pin(5))
        .cloned()
        .collect();
    require.set_candidates(without.clone());
    let error = require.current(Duration::from_secs(999_999)).unwrap_err();
    let SelectionError::NoAttestedPath { refused, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(refused.len(), 2);
    let text = error.to_string();
    assert!(text.contains("no attestation evidence"), "{text}");
    assert!(text.contains("revoked"), "{text}");
    assert!(text.contains("require"), "{text}");

    // `prefer` uses the attested pair while there is one, else everyone.
    assert_eq!(
        pins(&admit(&all, AttestationMode::Prefer).admitted),
        pins(&admit(&all, AttestationMode::Require).admitted)
    );
    let mut prefer = plan(without.clone(), AttestationMode::Prefer);
    assert!(prefer.current(Duration::ZERO).is_ok());
    assert_eq!(
        pins(&admit(&without, AttestationMode::Prefer).admitted),
        pins(&without)
    );
    // `off` ignores verdicts.
    assert_eq!(
        pins(&admit(&without, AttestationMode::Off).admitted),
        pins(&without)
    );
}

/// The relay records a directory feed makes: each judged lazily through
/// `cache`.
fn lazy_relays(directory: &VerifiedDirectory, cache: &Arc<VerdictCache>) -> Vec<Relay> {
    let judge = DirectoryJudge::new(directory.clone(), Arc::new(policy()), T0, Arc::clone(cache));
    directory
        .relays()
        .map(|r| Relay::from_directory(&r, r.endpoints()[0], judge.attestation(&r)))
        .collect()
}

/// Issue 16: accepting a directory judges none of its relays; a path judges
/// the relays it drew (here each draw lands on an attested relay, so two);
/// a refresh with the same evidence judges nothing again.
#[test]
fn accepting_judges_nothing_and_a_path_judges_only_its_draws() {
    let listed: Vec<_> = (1..=40u8)
        .map(|n| {
            let role = if n % 2 == 0 {
                RelayRole::Egress
            } else {
                RelayRole::Ingress
            };
            (n, role, Carries::Measuring(APPROVED))
        })
        .collect();
    let d = directory(&listed);
    let cache = Arc::new(VerdictCache::new());
    let relays = lazy_relays(&d, &cache);
    let mut require = plan(relays, AttestationMode::Require);
    assert_eq!(cache.judgements(), 0, "accepting judged relays");
    let path = require.current(Duration::ZERO).unwrap();
    assert!(path.choice.ingress.attestation.is_attested());
    assert!(path.choice.egress.attestation.is_attested());
    assert_eq!(
        cache.judgements(),
        2,
        "a path judged more than its two draws"
    );
    // The status output shows each hop's verdict.
    assert_eq!(path.choice.egress.attestation.summary().verdict, "attested");

    // The same directory again (a refresh with unchanged evidence): the
    // hops' verdicts come from the cache.
    let again = lazy_relays(&d, &cache);
    let mut refreshed = PathPlan::new(
        again,
        PlanConfig {
            attestation: AttestationMode::Require,
            ..PlanConfig::default()
        },
        fastrand::Rng::with_seed(7),
    );
    let same = refreshed.current(Duration::ZERO).unwrap();
    assert_eq!(same.choice.egress.pin(), path.choice.egress.pin());
    assert_eq!(cache.judgements(), 2, "unchanged evidence judged again");
}

/// Refused relays drawn are judged and dropped, and `require` names them
/// when no attested path is left; lazily judged, a draw judges at most one
/// relay per draw it makes.
#[test]
fn lazy_require_skips_refused_relays_and_names_them() {
    use Carries::*;
    let d = directory(&[
        (1, RelayRole::Ingress, Measuring(REVOKED)),
        (3, RelayRole::Ingress, Nothing),
        (5, RelayRole::Ingress, Measuring(APPROVED)),
        (7, RelayRole::Egress, Measuring(UNKNOWN)),
        (9, RelayRole::Egress, Measuring(APPROVED)),
        (11, RelayRole::Egress, Garbage),
    ]);
    let cache = Arc::new(VerdictCache::new());
    let mut require = plan(lazy_relays(&d, &cache), AttestationMode::Require);
    for i in 0..20 {
        let path = require.current(Duration::from_secs(i * 3600)).unwrap();
        assert_eq!(path.choice.ingress.pin(), quic_pin(5));
        assert_eq!(path.choice.egress.pin(), quic_pin(9));
    }
    // Each relay is judged at most once however many paths are drawn.
    assert!(cache.judgements() <= 6, "{}", cache.judgements());
    let only_refused = directory(&[
        (1, RelayRole::Ingress, Measuring(REVOKED)),
        (3, RelayRole::Ingress, Nothing),
        (7, RelayRole::Egress, Measuring(UNKNOWN)),
    ]);
    let mut closed = plan(lazy_relays(&only_refused, &cache), AttestationMode::Require);
    let error = closed.current(Duration::ZERO).unwrap_err();
    let SelectionError::NoAttestedPath { refused, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(refused.len(), 3, "{error}");
    // `prefer` falls back to every relay when the attested make no path.
    let mut prefer = plan(lazy_relays(&only_refused, &cache), AttestationMode::Prefer);
    assert!(prefer.current(Duration::ZERO).is_ok());
}

mod lazy_matches_eager {
    use super::*;
    use proptest::prelude::*;

    fn carries(kind: u8) -> Carries {
        match kind % 4 {
            0 => Carries::Nothing,
            1 => Carries::Measuring(REVOKED),
            _ => Carries::Measuring(APPROVED),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Issue 16: for random lists (roles, operators, evidence) and
        /// seeds, a lazily judged plan's path uses only relays the eager
        /// rule (`admit` over relays judged up front) admits, and finds a
        /// path exactly when the eager rule's relays make one.
        #[test]
        fn lazy_and_eager_selection_use_the_same_relays(
            spec in proptest::collection::vec((any::<bool>(), 0u8..4, any::<u8>()), 2..10),
            seed in any::<u64>(),
            require in any::<bool>(),
        ) {
            let listed: Vec<_> = spec
                .iter()
                .enumerate()
                .map(|(i, &(egress, operator, kind))| {
                    let role = if egress { RelayRole::Egress } else { RelayRole::Ingress };
                    (i as u8 * 2 + 1, 100 + operator, role, carries(kind))
                })
                .collect();
            let d = directory_of_operators(&listed);
            let mode = if require { AttestationMode::Require } else { AttestationMode::Prefer };
            let eager = admit(&relays(&d, &policy()), mode).admitted;
            let eager_ok = choose(&eager, &EgressRegion::Any, |_| false, &mut fastrand::Rng::with_seed(0)).is_ok();
            let cache = Arc::new(VerdictCache::new());
            let mut lazy = PathPlan::new(
                lazy_relays(&d, &cache),
                PlanConfig { attestation: mode, ..PlanConfig::default() },
                fastrand::Rng::with_seed(seed),
            );
            match lazy.current(Duration::ZERO) {
                Ok(path) => {
                    prop_assert!(eager_ok);
                    for hop in [&path.choice.ingress, &path.choice.egress] {
                        prop_assert!(eager.iter().any(|r| r.pin() == hop.pin()), "{} not admitted", hop.name);
                    }
                }
                Err(error) => prop_assert!(!eager_ok, "lazy failed where eager finds a path: {}", error),
            }
        }
    }
}

/// With many relays refused, `require`'s error names the first
/// `MAX_NAMED_REFUSALS` and counts the rest: at 100,000 relays without
/// evidence it would otherwise name them all, megabytes logged at every
/// attempt.
#[test]
fn a_require_error_names_a_bounded_number_of_refusals() {
    let count = u8::try_from(MAX_NAMED_REFUSALS).unwrap() + 4;
    let listed: Vec<(u8, RelayRole, Carries)> = (1..=count)
        .map(|n| {
            let role = if n % 2 == 0 {
                RelayRole::Ingress
            } else {
                RelayRole::Egress
            };
            (n, role, Carries::Nothing)
        })
        .collect();
    let d = directory(&listed);
    let mut require = plan(relays(&d, &policy()), AttestationMode::Require);
    let error = require.current(Duration::ZERO).unwrap_err();
    let SelectionError::NoAttestedPath {
        refused, unnamed, ..
    } = &error
    else {
        panic!("{error}");
    };
    assert_eq!(refused.len(), MAX_NAMED_REFUSALS);
    assert_eq!(*unnamed, 4);
    assert!(error.to_string().ends_with("; and 4 more"), "{error}");
}
