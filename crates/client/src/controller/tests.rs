//! The controller on a fake clock (`Duration` since an arbitrary origin)
//! with scripted failures: failover, repair, rotation, exclusion, back-off
//! and the refill rules, plus thousands of seeded random scripts checked
//! against invariants. A failing seed replays the run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;

use openrelay_types::KeyPin;

use crate::relay::{Operator, Region, UNKNOWN_BANDWIDTH, parse_network};

use super::*;

const QUARANTINE: Duration = Duration::from_secs(30);
const ROTATION: Duration = Duration::from_secs(600);
const UNIX: u64 = 1_700_000_000;

fn relay(n: u8, role: RelayRole, operator: u8, network: Option<&str>) -> Relay {
    Relay {
        id: RelayId::from_pin(KeyPin::from_ed25519([n; 32])),
        name: format!("{role}-{n}"),
        role,
        operator: Operator::Unlisted(format!("operator-{operator}")),
        network: network.map(parse_network),
        region: Region::default(),
        bandwidth_bps: UNKNOWN_BANDWIDTH,
        measured: None,
        addr: SocketAddr::from(([192, 0, 2, n], 4433)),
        attestation: crate::attestation::AttestationVerdict::NotChecked.into(),
        listing: None,
    }
}

/// `operators` operators, each with an ingress and an egress.
fn relays(operators: u8) -> Vec<Relay> {
    (0..operators)
        .flat_map(|o| {
            [
                relay(2 * o + 1, RelayRole::Ingress, o, None),
                relay(2 * o + 2, RelayRole::Egress, o, None),
            ]
        })
        .collect()
}

fn controller(relays: Vec<Relay>, per_site: bool, seed: u64) -> PathController<Duration> {
    PathController::new(
        relays,
        PlanConfig {
            rotation: ROTATION,
            per_site,
            ..PlanConfig::default()
        },
        QUARANTINE,
        fastrand::Rng::with_seed(seed),
    )
}

fn commands(c: &mut PathController<Duration>) -> Vec<Command> {
    std::iter::from_fn(|| c.poll_command()).collect()
}

/// The one build queued, as (key, ingress, egress).
fn the_build(c: &mut PathController<Duration>) -> (PathKey, Relay, Relay) {
    match &commands(c)[..] {
        [
            Command::Build {
                key,
                ingress,
                egress,
            },
        ] => (*key, ingress.clone(), egress.clone()),
        other => panic!("expected one build, got {other:?}"),
    }
}

fn handshake(hop: Hop) -> BuildError {
    BuildError::Handshake {
        hop,
        relay: "r".into(),
        reason: std::sync::Arc::new(crate::path::HandshakeFailure::TimedOut),
    }
}

fn access_refused() -> BuildError {
    BuildError::AccessRefused {
        relay: "r".into(),
        details: "token required".into(),
        hint: "h",
    }
}

/// A built path for flows not isolated by site, at `now`.
fn up(c: &mut PathController<Duration>, now: Duration) -> (PathKey, Relay, Relay) {
    assert!(matches!(
        c.flow_wanted(None, Purpose::Traffic, now, UNIX),
        Ok(Wanted::Building(_))
    ));
    let (key, ingress, egress) = the_build(c);
    c.built(key, now);
    assert!(commands(c).is_empty());
    (key, ingress, egress)
}

#[test]
fn flows_wait_for_one_build_then_share_the_path() {
    let mut c = controller(relays(3), false, 1);
    let now = Duration::ZERO;
    let first = c.flow_wanted(None, Purpose::Traffic, now, UNIX).unwrap();
    let second = c.flow_wanted(None, Purpose::Traffic, now, UNIX).unwrap();
    assert_eq!(first, second);
    let (key, ingress, egress) = the_build(&mut c);
    assert_eq!(first, Wanted::Building(key));
    assert_ne!(ingress.operator, egress.operator);
    assert!(c.admitted_ingresses().contains(&ingress.addr));
    c.built(key, now);
    assert_eq!(
        c.flow_wanted(None, Purpose::Traffic, now, UNIX).unwrap(),
        Wanted::Ready(key)
    );
    assert_eq!(c.last_established(), Some(now));
    assert!(commands(&mut c).is_empty());
}

/// Failover and repair over many seeds: a dead ingress is excluded and the
/// path repaired on the same egress; a dead egress gives a new egress;
/// never a relay of the failed one's role that failed, never one operator.
#[test]
fn a_dead_relay_is_excluded_and_its_path_repaired_or_replaced() {
    for seed in 0..2000 {
        let mut c = controller(relays(4), false, seed);
        let now = Duration::from_secs(1);
        let (key, ingress, egress) = up(&mut c, now);
        let hop = if seed % 2 == 0 {
            Hop::Ingress
        } else {
            Hop::Egress
        };
        let blamed = c.died(key, hop, now).unwrap();
        assert_eq!(
            commands(&mut c),
            vec![Command::Close {
                key,
                reason: CloseReason::Failed
            }]
        );
        // A second report of the same death changes nothing.
        assert_eq!(c.died(key, hop, now), None);
        let later = now + Duration::from_secs(1);
        let (next, new_ingress, new_egress) = up(&mut c, later);
        assert_ne!(next, key, "seed {seed}");
        assert_ne!(new_ingress.operator, new_egress.operator, "seed {seed}");
        match hop {
            Hop::Ingress => {
                assert_eq!(blamed, ingress);
                assert_ne!(new_ingress, ingress, "seed {seed}");
                assert_eq!(new_egress, egress, "seed {seed}: the site keeps its egress");
            }
            Hop::Egress => {
                assert_eq!(blamed, egress);
                assert_ne!(new_egress, egress, "seed {seed}");
            }
        }
    }
}

/// An excluded relay comes back after the quarantine; while every pair has
/// an excluded relay, the one that failed longest ago is tried first.
#[test]
fn exclusions_end_after_the_quarantine_and_the_oldest_is_released_first() {
    // Two ingresses (operators 0, 1), one egress (operator 2).
    let list = vec![
        relay(1, RelayRole::Ingress, 0, None),
        relay(2, RelayRole::Ingress, 1, None),
        relay(3, RelayRole::Egress, 2, None),
    ];
    let mut c = controller(list, false, 7);
    let t0 = Duration::from_secs(10);
    let (key, first, _) = up(&mut c, t0);
    c.died(key, Hop::Ingress, t0);
    commands(&mut c);
    let t1 = t0 + Duration::from_secs(5);
    let (key, second, _) = up(&mut c, t1);
    assert_ne!(first, second);
    c.died(key, Hop::Ingress, t1);
    commands(&mut c);
    // Both ingresses excluded: the one that failed first comes back first.
    let (key, third, _) = up(&mut c, t1);
    assert_eq!(third, first);
    c.died(key, Hop::Ingress, t1);
    commands(&mut c);
    // After the quarantine both are usable again without releases.
    let (_, fourth, _) = up(&mut c, t1 + QUARANTINE + Duration::from_secs(1));
    assert!(fourth == first || fourth == second);
}

#[test]
fn rotation_retires_the_path_and_closes_it_only_once_its_flows_ended() {
    let mut c = controller(relays(3), false, 3);
    let (old, ..) = up(&mut c, Duration::ZERO);
    assert_eq!(c.poll_timeout(), Some(ROTATION));
    // Not due yet: nothing happens.
    c.tick(ROTATION - Duration::from_secs(1), UNIX, |_| 0)
        .unwrap();
    assert!(commands(&mut c).is_empty());
    // Due: the next path is built at once and the old one retired.
    c.tick(ROTATION, UNIX, |_| 1).unwrap();
    let cmds = commands(&mut c);
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert_eq!(cmds[0], Command::Retire { key: old });
    let Command::Build { key: new, .. } = cmds[1] else {
        panic!("{cmds:?}")
    };
    c.built(new, ROTATION);
    // A flow still open on the old path: never closed under it.
    for s in 1..100 {
        c.tick(ROTATION + Duration::from_secs(s), UNIX, |k| {
            u64::from(k == old)
        })
        .unwrap();
        assert!(commands(&mut c).is_empty());
    }
    // Its flows ended: closed (its grace long over).
    c.tick(ROTATION + Duration::from_secs(100), UNIX, |_| 0)
        .unwrap();
    assert_eq!(
        commands(&mut c),
        vec![Command::Close {
            key: old,
            reason: CloseReason::Rotated
        }]
    );
    assert_eq!(
        c.flow_wanted(None, Purpose::Traffic, ROTATION, UNIX)
            .unwrap(),
        Wanted::Ready(new)
    );
}

#[test]
fn a_retired_path_without_flows_waits_out_its_grace() {
    let mut c = controller(relays(3), false, 4);
    let (old, ..) = up(&mut c, Duration::ZERO);
    c.tick(ROTATION, UNIX, |_| 0).unwrap();
    commands(&mut c);
    assert_eq!(c.poll_timeout(), Some(ROTATION + RETIRE_GRACE));
    c.tick(ROTATION + RETIRE_GRACE / 2, UNIX, |_| 0).unwrap();
    assert!(commands(&mut c).is_empty());
    c.tick(ROTATION + RETIRE_GRACE, UNIX, |_| 0).unwrap();
    assert_eq!(
        commands(&mut c),
        vec![Command::Close {
            key: old,
            reason: CloseReason::Rotated
        }]
    );
}

#[test]
fn per_site_paths_rotate_when_their_site_comes_back() {
    let mut c = controller(relays(4), true, 5);
    let site = SiteKey::parse("example.org").unwrap();
    let Wanted::Building(key) = c
        .flow_wanted(Some(&site), Purpose::Traffic, Duration::ZERO, UNIX)
        .unwrap()
    else {
        panic!()
    };
    commands(&mut c);
    c.built(key, Duration::ZERO);
    c.tick(ROTATION, UNIX, |_| 0).unwrap();
    // Expired per-site paths are retired, not rebuilt ahead of the site.
    assert_eq!(commands(&mut c), vec![Command::Retire { key }]);
    assert!(matches!(
        c.flow_wanted(Some(&site), Purpose::Traffic, ROTATION, UNIX),
        Ok(Wanted::Building(k)) if k != key
    ));
}

#[test]
fn a_path_built_after_the_plan_moved_on_is_retired_at_once() {
    let mut c = controller(relays(3), false, 6);
    c.flow_wanted(None, Purpose::Traffic, Duration::ZERO, UNIX)
        .unwrap();
    let (key, ..) = the_build(&mut c);
    // Rotation passes while it is built: the flows that waited still get
    // it, new flows do not.
    c.flow_wanted(None, Purpose::Traffic, ROTATION, UNIX)
        .unwrap();
    let (next, ..) = the_build(&mut c);
    c.built(key, ROTATION);
    assert_eq!(commands(&mut c), vec![Command::Retire { key }]);
    assert_eq!(
        c.flow_wanted(None, Purpose::Traffic, ROTATION, UNIX)
            .unwrap(),
        Wanted::Building(next)
    );
}

#[test]
fn a_failed_request_backs_off_until_success_or_news() {
    let mut c = controller(relays(3), false, 8);
    let now = Duration::ZERO;
    c.flow_wanted(None, Purpose::Traffic, now, UNIX).unwrap();
    let (key, ..) = the_build(&mut c);
    let failure = c.build_failed(key, &handshake(Hop::Egress), 0, now);
    assert!(failure.new_cause && !failure.final_for_request);
    let wait = c.request_failed(now);
    assert!(wait <= crate::backoff::INITIAL);
    assert!(matches!(
        c.flow_wanted(None, Purpose::Traffic, now, UNIX),
        Err(PathError::BackingOff { .. })
    ));
    assert_eq!(c.next_attempt_in(now), Some(wait));
    // The same cause again is not news for the log.
    c.flow_wanted(None, Purpose::Traffic, now + wait, UNIX)
        .unwrap();
    let (key, ..) = the_build(&mut c);
    assert!(
        !c.build_failed(key, &handshake(Hop::Egress), 0, now + wait)
            .new_cause
    );
    c.request_failed(now + wait);
    // A new relay list ends the wait.
    let mut list = relays(3);
    list.push(relay(50, RelayRole::Egress, 9, None));
    assert!(c.relays(list.clone(), None));
    assert!(
        c.flow_wanted(None, Purpose::Traffic, now + wait, UNIX)
            .is_ok()
    );
    // The same list again is no news.
    assert!(!c.relays(list, None));
}

#[test]
fn an_access_refusal_ends_the_request_and_tokens_end_the_wait() {
    let mut c = controller(relays(3), false, 9);
    let now = Duration::ZERO;
    c.flow_wanted(None, Purpose::Traffic, now, UNIX).unwrap();
    let (key, ingress, egress) = the_build(&mut c);
    let failure = c.build_failed(key, &access_refused(), 5, now);
    assert!(failure.final_for_request);
    c.request_failed(now);
    assert_eq!(c.awaiting_access_tokens(now), Some(5));
    // Not the relay's fault: nobody excluded, the same relays may be drawn.
    let mut fresh = controller(relays(3), false, 9);
    fresh
        .flow_wanted(None, Purpose::Traffic, now, UNIX)
        .unwrap();
    assert_eq!(the_build(&mut fresh).1, ingress);
    let _ = egress;
    c.access_tokens_arrived();
    assert_eq!(c.awaiting_access_tokens(now), None);
    assert!(matches!(
        c.flow_wanted(None, Purpose::Traffic, now, UNIX),
        Ok(Wanted::Building(_))
    ));
}

#[test]
fn an_expired_directory_serves_only_directory_fetches() {
    let mut c = controller(relays(3), false, 10);
    let times = DirectoryTimes {
        issued_at: UNIX - 100,
        usable_until: UNIX,
    };
    c.relays(relays(3), Some(times));
    assert!(matches!(
        c.flow_wanted(None, Purpose::Traffic, Duration::ZERO, UNIX + 5),
        Err(PathError::DirectoryExpired {
            age_secs: 105,
            expired_secs_ago: 5
        })
    ));
    assert!(
        c.flow_wanted(None, Purpose::DirectoryFetch, Duration::ZERO, UNIX + 5)
            .is_ok()
    );
    assert_eq!(c.directory_issued_at(), Some(UNIX - 100));
}

#[test]
fn closing_closes_every_path_and_refuses_new_ones() {
    let mut c = controller(relays(3), false, 11);
    let (key, ..) = up(&mut c, Duration::ZERO);
    let site = SiteKey::parse("example.com").unwrap();
    // Not per-site: the same path, so a second build comes from rotation.
    c.flow_wanted(Some(&site), Purpose::Traffic, ROTATION, UNIX)
        .unwrap();
    let cmds = commands(&mut c);
    let Some(Command::Build { key: building, .. }) = cmds.last().cloned() else {
        panic!("{cmds:?}")
    };
    c.close();
    assert_eq!(
        commands(&mut c),
        vec![Command::Close {
            key,
            reason: CloseReason::ShuttingDown
        }]
    );
    assert!(matches!(
        c.flow_wanted(None, Purpose::Traffic, ROTATION, UNIX),
        Err(PathError::Closed)
    ));
    // The build under way is closed once it is built.
    c.built(building, ROTATION);
    assert_eq!(
        commands(&mut c),
        vec![Command::Close {
            key: building,
            reason: CloseReason::ShuttingDown
        }]
    );
}

/// Refill paths over many seeds: never a browsing path's egress, always an
/// ingress with access, never one operator's pair, nothing kept.
#[test]
fn refill_paths_keep_off_browsing_egresses() {
    for seed in 0..2000 {
        let mut c = controller(relays(4), false, seed);
        let now = Duration::ZERO;
        let (_, ingress, egress) = up(&mut c, now);
        let allowed = relays(4)[2 * (seed as usize % 4)].clone();
        let browsing = c.live_relays();
        assert_eq!(browsing, vec![(ingress, egress.clone())]);
        match c.refill_choice(&browsing, |r| *r == allowed, now) {
            Ok((refill_ingress, refill_egress)) => {
                assert_ne!(refill_egress, egress, "seed {seed}");
                assert_eq!(refill_ingress, allowed, "seed {seed}");
                assert_ne!(refill_ingress.operator, refill_egress.operator);
            }
            Err(e) => panic!("seed {seed}: {e}"),
        }
        assert!(commands(&mut c).is_empty());
        assert_eq!(c.live_relays().len(), 1);
    }
}

/// Whether `list` has a compatible ingress/egress pair avoiding `excluded`.
fn has_pair(list: &[Relay], excluded: &HashMap<RelayId, Duration>, now: Duration) -> bool {
    let usable = |r: &&Relay| excluded.get(&r.id).is_none_or(|until| now >= *until);
    let candidates: Vec<Relay> = list.iter().filter(usable).cloned().collect();
    candidates.iter().any(|i| {
        i.role == RelayRole::Ingress
            && candidates
                .iter()
                .any(|e| e.role == RelayRole::Egress && i.compatible_with(e))
    })
}

/// What the script knows of one path.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Building(Relay, Relay),
    Up(Relay, Relay),
    Retired(Duration),
    Closed,
}

/// 2,000 seeded random scripts (flows for random sites, builds that
/// succeed or fail at either hop, deaths, relay list changes, time passing,
/// flows opening and ending), each step checked: every build pairs listed
/// relays of different operators and networks and no relay excluded
/// unless no pair avoids the exclusions (then the oldest is released, as
/// the model mirrors); a ready path is up; no path is closed twice, or
/// closed as rotated while it carries flows or within its grace; the
/// admitted ingresses cover the list and every open path.
#[test]
fn random_scripts_keep_every_rule() {
    for seed in 0..2000u64 {
        run_script(seed);
    }
}

fn run_script(seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let networks = [None, Some("as1"), Some("as2")];
    let mut pool: Vec<Relay> = (0..rng.u8(2..10))
        .map(|n| {
            let role = if n % 2 == 0 {
                RelayRole::Ingress
            } else {
                RelayRole::Egress
            };
            relay(n + 1, role, rng.u8(0..4), networks[rng.usize(..3)])
        })
        .collect();
    pool.sort_by_key(|r| r.addr);
    let mut list = pool.clone();
    let per_site = rng.bool();
    let mut c = controller(list.clone(), per_site, seed);
    let sites: Vec<SiteKey> = ["a.example", "b.example", "c.example"]
        .iter()
        .map(|s| SiteKey::parse(s).unwrap())
        .collect();
    let mut now = Duration::ZERO;
    let mut seen: BTreeMap<PathKey, Seen> = BTreeMap::new();
    let mut flows: BTreeMap<PathKey, u64> = BTreeMap::new();
    let mut excluded: HashMap<RelayId, Duration> = HashMap::new();
    let exclude = |excluded: &mut HashMap<RelayId, Duration>, relay: &Relay, now| {
        let until = now + QUARANTINE;
        let entry = excluded.entry(relay.id).or_insert(until);
        *entry = (*entry).max(until);
    };
    for step in 0..150 {
        let context = format!("seed {seed}, step {step}");
        match rng.u8(..10) {
            0..=3 => {
                let site = rng.bool().then(|| &sites[rng.usize(..sites.len())]);
                match c.flow_wanted(site, Purpose::Traffic, now, UNIX) {
                    Ok(Wanted::Ready(key)) => {
                        assert!(matches!(seen[&key], Seen::Up(..)), "{context}");
                        *flows.entry(key).or_default() += 1;
                    }
                    Ok(Wanted::Building(key)) => {
                        assert!(
                            matches!(
                                seen.get(&key),
                                None | Some(Seen::Building(..) | Seen::Closed)
                            ),
                            "{context}"
                        );
                    }
                    // No path only once every exclusion was given back.
                    Err(PathError::NoPath(_)) => {
                        assert!(!has_pair(&list, &HashMap::new(), now), "{context}");
                    }
                    Err(PathError::BackingOff { .. }) => {}
                    Err(e) => panic!("{context}: {e}"),
                }
            }
            4 => {
                // A build ends.
                let building: Vec<PathKey> = seen
                    .iter()
                    .filter(|(_, s)| matches!(s, Seen::Building(..)))
                    .map(|(k, _)| *k)
                    .collect();
                if let Some(&key) = building.get(rng.usize(..building.len().max(1))) {
                    let Seen::Building(ingress, egress) = seen[&key].clone() else {
                        unreachable!()
                    };
                    match rng.u8(..4) {
                        0 => {
                            exclude(&mut excluded, &ingress, now);
                            c.build_failed(key, &handshake(Hop::Ingress), 0, now);
                            seen.insert(key, Seen::Closed);
                        }
                        1 => {
                            exclude(&mut excluded, &egress, now);
                            c.build_failed(key, &handshake(Hop::Egress), 0, now);
                            c.request_failed(now);
                            seen.insert(key, Seen::Closed);
                        }
                        _ => {
                            c.built(key, now);
                            seen.insert(key, Seen::Up(ingress, egress));
                        }
                    }
                }
            }
            5 => {
                // A live path dies.
                let up: Vec<PathKey> = seen
                    .iter()
                    .filter(|(_, s)| matches!(s, Seen::Up(..)))
                    .map(|(k, _)| *k)
                    .collect();
                if let Some(&key) = up.get(rng.usize(..up.len().max(1))) {
                    let Seen::Up(ingress, egress) = seen[&key].clone() else {
                        unreachable!()
                    };
                    let hop = if rng.bool() {
                        Hop::Ingress
                    } else {
                        Hop::Egress
                    };
                    let blamed = c.died(key, hop, now).unwrap();
                    let expected = if hop == Hop::Ingress { ingress } else { egress };
                    assert_eq!(blamed, expected, "{context}");
                    exclude(&mut excluded, &blamed, now);
                }
            }
            6 => {
                // A flow ends.
                if let Some((&key, count)) = flows.iter_mut().find(|(_, n)| **n > 0) {
                    let _ = key;
                    *count -= 1;
                }
            }
            7 => {
                // A new relay list: a random subset of the pool.
                list = pool.iter().filter(|_| rng.u8(..4) != 0).cloned().collect();
                c.relays(list.clone(), None);
            }
            _ => {
                now += Duration::from_millis(rng.u64(..120_000));
                excluded.retain(|_, until| now < *until);
                let counts = flows.clone();
                let _ = c.tick(now, UNIX, |k| counts.get(&k).copied().unwrap_or(0));
            }
        }
        // Exclusions the plan gave back (a draw found no pair): always the
        // one that ends first, and only those.
        excluded.retain(|_, until| now < *until);
        let released: Vec<(RelayId, Duration)> = excluded
            .iter()
            .filter(|(key, _)| !c.plan.is_excluded(key, now))
            .map(|(key, until)| (*key, *until))
            .collect();
        for (key, until) in &released {
            for (other, other_until) in &excluded {
                if (*other_until, *other) < (*until, *key) {
                    assert!(
                        !c.plan.is_excluded(other, now),
                        "{context}: an exclusion released before an older one"
                    );
                }
            }
            excluded.remove(key);
        }
        // The commands, checked.
        while let Some(command) = c.poll_command() {
            match command {
                Command::Build {
                    key,
                    ingress,
                    egress,
                } => {
                    // A generation whose build failed or whose path died
                    // may be built again (its exclusion given back); an
                    // open path's never.
                    assert!(
                        matches!(seen.get(&key), None | Some(Seen::Closed)),
                        "{context}: key of an open path reused"
                    );
                    assert!(
                        list.contains(&ingress) && list.contains(&egress),
                        "{context}"
                    );
                    assert_eq!(ingress.role, RelayRole::Ingress);
                    assert_eq!(egress.role, RelayRole::Egress);
                    assert!(
                        ingress.compatible_with(&egress),
                        "{context}: {ingress:?} with {egress:?}"
                    );
                    for relay in [&ingress, &egress] {
                        assert!(
                            excluded.get(&relay.id).is_none_or(|until| now >= *until),
                            "{context}: excluded relay {} built on",
                            relay.name
                        );
                    }
                    seen.insert(key, Seen::Building(ingress, egress));
                }
                Command::Retire { key } => {
                    assert!(matches!(seen[&key], Seen::Up(..)), "{context}");
                    seen.insert(key, Seen::Retired(now));
                }
                Command::Close { key, reason } => {
                    let before = seen.insert(key, Seen::Closed);
                    assert!(
                        matches!(before, Some(Seen::Up(..) | Seen::Retired(_))),
                        "{context}: closed {before:?}"
                    );
                    if reason == CloseReason::Rotated {
                        let Some(Seen::Retired(since)) = before else {
                            panic!("{context}: rotated out without being retired")
                        };
                        assert_eq!(flows.get(&key).copied().unwrap_or(0), 0, "{context}");
                        assert!(now >= since + RETIRE_GRACE, "{context}");
                    }
                    flows.remove(&key);
                }
            }
        }
        let admitted = c.admitted_ingresses();
        let open = seen.values().filter_map(|s| match s {
            Seen::Building(ingress, _) | Seen::Up(ingress, _) => Some(ingress.addr),
            _ => None,
        });
        let listed = list
            .iter()
            .filter(|r| r.role == RelayRole::Ingress)
            .map(|r| r.addr);
        let needed: BTreeSet<SocketAddr> = open.chain(listed).collect();
        assert!(admitted.is_superset(&needed), "{context}");
    }
}

/// The retry policy with the back-off: a client whose every build fails,
/// asked for paths 10 times a second, builds at most
/// [`PATHS_PER_REQUEST`] paths per request and few in all.
#[test]
fn a_failing_client_builds_few_paths() {
    for seed in 0..500 {
        let mut c = controller(relays(4), false, seed);
        let mut now = Duration::ZERO;
        let mut builds = 0;
        while now < Duration::from_secs(10) {
            let mut tries = PathTries::new();
            while tries.take() {
                match c.flow_wanted(None, Purpose::Traffic, now, UNIX) {
                    Ok(Wanted::Building(key)) => {
                        commands(&mut c);
                        builds += 1;
                        c.build_failed(key, &handshake(Hop::Egress), 0, now);
                    }
                    Ok(Wanted::Ready(_)) => panic!("nothing was built"),
                    Err(_) => break,
                }
            }
            if tries.spent() > 0 {
                c.request_failed(now);
            }
            now += Duration::from_millis(100);
        }
        // At most 5 failed requests in 10 s (the back-off's bound), each
        // with at most PATHS_PER_REQUEST builds.
        assert!(
            builds <= 5 * PATHS_PER_REQUEST,
            "seed {seed}: {builds} builds"
        );
    }
}
