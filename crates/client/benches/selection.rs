//! Path selection on directories of realistic sizes: one draw (`choose`),
//! draws under a region constraint and with failed relays excluded, the
//! per-site plan (`PathPlan::assign`) and the site key (public suffix list
//! lookup) that per-site isolation computes for every new flow.
//!
//! Run with `cargo bench -p openrelay-client --bench selection`.

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use openrelay_client::relay::{Operator, Region, parse_network};
use openrelay_client::selection::{
    EgressRegion, PathPlan, PlanConfig, Relay, RelayId, SiteKey, choose,
};
use openrelay_types::{KeyPin, RelayRole};

const COUNTRIES: [&str; 6] = ["DE", "NL", "CH", "SE", "FR", "IS"];

/// `n` relays, half ingress and half egress, four relays per operator, two
/// operators per network, spread over six countries, bandwidths from
/// 10 Mbit/s to 10 Gbit/s.
fn directory(n: usize) -> Vec<Relay> {
    (0..n)
        .map(|i| Relay {
            id: RelayId::from_pin(KeyPin::from_ed25519(std::array::from_fn(|b| {
                (i >> (8 * (b % 8))) as u8
            }))),
            name: format!("relay-{i}"),
            role: if i % 2 == 0 {
                RelayRole::Ingress
            } else {
                RelayRole::Egress
            },
            operator: Operator::Unlisted(format!("operator-{}", i / 4)),
            network: Some(parse_network(&format!("AS{}", 64_500 + i / 8))),
            region: Region {
                country: Some(COUNTRIES[i % COUNTRIES.len()].into()),
                city: None,
            },
            bandwidth_bps: 10_000_000 * (1 + (i as u64 * 7919) % 1000),
            measured: None,
            addr: std::net::SocketAddr::from(([192, 0, 2, 1], 4433)),
            attestation: openrelay_client::attestation::AttestationVerdict::NotChecked.into(),
            listing: None,
        })
        .collect()
}

const SIZES: [usize; 3] = [16, 256, 4096];

fn draws(c: &mut Criterion) {
    let mut group = c.benchmark_group("choose");
    for n in SIZES {
        let relays = directory(n);
        let mut rng = fastrand::Rng::with_seed(7);
        group.bench_with_input(BenchmarkId::new("any", n), &relays, |b, relays| {
            b.iter(|| choose(black_box(relays), &EgressRegion::Any, |_| false, &mut rng))
        });
        let country = EgressRegion::Country("CH".into());
        group.bench_with_input(BenchmarkId::new("country", n), &relays, |b, relays| {
            b.iter(|| choose(black_box(relays), &country, |_| false, &mut rng))
        });
        let near = EgressRegion::Near {
            home_country: "SE".into(),
        };
        group.bench_with_input(BenchmarkId::new("near", n), &relays, |b, relays| {
            b.iter(|| choose(black_box(relays), &near, |_| false, &mut rng))
        });
        // One relay in ten failed and is quarantined.
        group.bench_with_input(
            BenchmarkId::new("any_10pct_excluded", n),
            &relays,
            |b, relays| {
                b.iter(|| {
                    choose(
                        black_box(relays),
                        &EgressRegion::Any,
                        |c| c.name.ends_with('0'),
                        &mut rng,
                    )
                })
            },
        );
    }
    group.finish();
}

/// Per-site isolation: 64 sites already hold paths; each iteration assigns a
/// path to one of them (a kept path) or to a new site (a fresh draw).
fn plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    let sites: Vec<SiteKey> = (0..64)
        .map(|i| SiteKey::parse(&format!("www.site-{i}.example.co.uk")).expect("valid"))
        .collect();
    for n in SIZES {
        let config = PlanConfig {
            per_site: true,
            ..PlanConfig::default()
        };
        let mut plan = PathPlan::new(directory(n), config, fastrand::Rng::with_seed(7));
        let now = Duration::from_secs(1);
        for site in &sites {
            plan.assign(site, now).expect("a path exists");
        }
        let mut i = 0;
        group.bench_function(BenchmarkId::new("assign_known_site", n), |b| {
            b.iter(|| {
                i = (i + 1) % sites.len();
                plan.assign(black_box(&sites[i]), now).map(|p| p.generation)
            })
        });
        group.bench_function(BenchmarkId::new("current", n), |b| {
            b.iter(|| plan.current(black_box(now)).map(|p| p.generation))
        });
    }
    group.finish();

    c.bench_function("site_key/parse", |b| {
        b.iter(|| SiteKey::parse(black_box("images.news.example.co.uk")))
    });
}

criterion_group!(benches, draws, plan);
criterion_main!(benches);
