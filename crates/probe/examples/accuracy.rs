//! The prober's accuracy benchmark (issue 14): relay processes throttled
//! to 10, 100 and 500 Mbit/s (`[throttle_for_tests]`) and unthrottled, on
//! loopback, each measured by 3 validator probers one after another over
//! several rounds, as an egress (through an unthrottled ingress) and as an
//! ingress (towards an unthrottled egress). Prints, per role and limit,
//! the error distribution (median error, p95 of |error|, share within
//! ±10 %), the same without the warm-up discount (its effect), and what
//! unthrottled relays measure against a plain loopback TCP baseline taken
//! in the same run.
//!
//! Run with release binaries (`bench/measure-accuracy` does both):
//!
//! ```text
//! cargo build --release -p openrelay --bin openrelay
//! cargo run --release -p openrelay-probe --example accuracy -- [ROUNDS] [SECONDS]
//! ```
//!
//! ROUNDS (default 4) rounds of 3 probers per relay; SECONDS (default 2,
//! `MeasureParams::devnet().measurement_seconds`) counted per test after
//! a one-second warm-up; a third argument `egress` or `ingress` measures
//! relays of that role only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use openrelay_measure::{Measurement, RelayId};
use openrelay_probe::rate::{SampleLog, capacity};
use openrelay_probe::servers::Sink;
use openrelay_probe::{ProbeSettings, ProbedRelay, Prober};
use openrelay_testkit::standalone::{Standalone, ingress_to, loopback_egress, throttle_for_tests};
use openrelay_types::RelayRole;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const MBIT: u64 = 1_000_000;
const LIMITS: [Option<u64>; 4] = [Some(10 * MBIT), Some(100 * MBIT), Some(500 * MBIT), None];
const PROBERS: u8 = 3;

fn probed(relay: &Standalone, role: RelayRole, name: &str, operator: &str) -> ProbedRelay {
    ProbedRelay::from_entry(
        &relay.entry(name, role, operator),
        RelayId(*relay.pin.as_bytes()),
    )
    .unwrap()
}

/// One measurement: (capacity after warm-up, raw capacity), bit/s; `None`
/// when unreachable.
type Measured = Option<(u64, u64)>;

#[derive(Default)]
struct Distribution {
    errors: Vec<f64>,
    raw_errors: Vec<f64>,
    unreachable: usize,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index]
}

fn summary(errors: &[f64]) -> String {
    let mut signed = errors.to_vec();
    signed.sort_by(f64::total_cmp);
    let mut absolute: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    absolute.sort_by(f64::total_cmp);
    let within = errors.iter().filter(|e| e.abs() <= 0.10).count();
    format!(
        "median {:+6.1} %  p95|err| {:5.1} %  within ±10 %: {:3}/{:3} ({:5.1} %)",
        quantile(&signed, 0.5) * 100.0,
        quantile(&absolute, 0.95) * 100.0,
        within,
        errors.len(),
        within as f64 / errors.len().max(1) as f64 * 100.0
    )
}

/// Plain loopback TCP from a sink, read for `length`, with the probes'
/// rate computation: what this machine carries without relays.
async fn loopback_baseline(warmup: Duration, measurement: Duration) -> u64 {
    let sink = Sink::bind(IpAddr::V4(Ipv4Addr::LOCALHOST)).await.unwrap();
    let ticket = sink.issue(warmup + measurement + Duration::from_secs(2));
    let mut stream = tokio::net::TcpStream::connect(sink.addr()).await.unwrap();
    stream.write_all(&ticket).await.unwrap();
    let mut buf = vec![0; 256 * 1024];
    let mut log = SampleLog::new(Duration::from_millis(10));
    let mut total = 0u64;
    let mut start = None;
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        let started = *start.get_or_insert_with(Instant::now);
        total += n as u64;
        let at = started.elapsed();
        log.record(at, total);
        if n == 0 || at >= warmup + measurement {
            break;
        }
    }
    capacity(&log.finish(), warmup).unwrap().bps
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(4, |a| a.parse().expect("ROUNDS"));
    let seconds: u64 = args.next().map_or(2, |a| a.parse().expect("SECONDS"));
    let measurement = Duration::from_secs(seconds);
    // Optional: only `egress` or `ingress` relays.
    let only: Option<String> = args.next();
    let started = Instant::now();

    // Three validators, each probing from its own loopback address with
    // its own sink and echo.
    let mut probers = Vec::new();
    for v in 0..PROBERS {
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11 + v));
        let settings = ProbeSettings {
            probe_bind: Some(ip),
            ..ProbeSettings::new(measurement, ip)
        };
        probers.push(Prober::start(settings, None).await.unwrap());
    }
    let warmup = probers[0].settings().warmup;
    let baseline = loopback_baseline(warmup, measurement).await;
    println!(
        "accuracy: {rounds} rounds x {PROBERS} probers per relay, {seconds} s counted after a {} s warm-up",
        warmup.as_secs_f64()
    );
    println!(
        "plain loopback TCP baseline (no relays): {:.0} Mbit/s\n",
        baseline as f64 / 1e6
    );

    let mut throttled_all = Vec::new();
    for role in [RelayRole::Egress, RelayRole::Ingress] {
        if only
            .as_deref()
            .is_some_and(|only| only != format!("{role:?}").to_lowercase())
        {
            continue;
        }
        for limit in LIMITS {
            let throttle = limit.map_or(String::new(), |bps| throttle_for_tests(bps, &[]));
            let (ingress_extra, egress_extra) = match role {
                RelayRole::Egress => ("", throttle.as_str()),
                RelayRole::Ingress => (throttle.as_str(), ""),
            };
            let egress = loopback_egress(egress_extra);
            let ingress = ingress_to(egress.addr, ingress_extra);
            let i = probed(&ingress, RelayRole::Ingress, "ingress-a", "a");
            let e = probed(&egress, RelayRole::Egress, "egress-b", "b");
            let mut measured: Vec<Measured> = Vec::new();
            for _ in 0..rounds {
                for prober in &probers {
                    let probe = match role {
                        RelayRole::Egress => prober.measure_egress(&e, &i.relay).await,
                        RelayRole::Ingress => prober.measure_ingress(&i, &e.relay).await,
                    };
                    let measurement = probe.report.map(|r| r.measurement);
                    measured.push(match (measurement, probe.rate) {
                        (Some(Measurement::Reachable { .. }), Some(rate)) => {
                            Some((rate.bps, rate.raw_bps))
                        }
                        _ => {
                            eprintln!("unreachable: {:?}", probe.failure);
                            None
                        }
                    });
                }
            }
            let label = format!(
                "{:7} {:>11}",
                format!("{role:?}").to_lowercase(),
                limit.map_or("unthrottled".to_owned(), |l| format!("{} Mbit/s", l / MBIT))
            );
            let reached: Vec<(u64, u64)> = measured.iter().flatten().copied().collect();
            match limit {
                Some(limit) => {
                    let mut d = Distribution {
                        unreachable: measured.len() - reached.len(),
                        ..Distribution::default()
                    };
                    for (bps, raw) in &reached {
                        let error = |x: u64| (x as f64 - limit as f64) / limit as f64;
                        d.errors.push(error(*bps));
                        d.raw_errors.push(error(*raw));
                    }
                    println!(
                        "{label}  {}  unreachable {}",
                        summary(&d.errors),
                        d.unreachable
                    );
                    println!(
                        "{:19}  without warm-up discount: {}",
                        "",
                        summary(&d.raw_errors)
                    );
                    throttled_all.extend(d.errors);
                }
                None => {
                    let mut mbit: Vec<f64> = reached.iter().map(|(b, _)| *b as f64 / 1e6).collect();
                    mbit.sort_by(f64::total_cmp);
                    let mut raw: Vec<f64> = reached.iter().map(|(_, r)| *r as f64 / 1e6).collect();
                    raw.sort_by(f64::total_cmp);
                    println!(
                        "{label}  median {:.0} Mbit/s (min {:.0}, max {:.0}; raw median {:.0}) = {:.2} % of the loopback baseline; unreachable {}",
                        quantile(&mbit, 0.5),
                        quantile(&mbit, 0.0),
                        quantile(&mbit, 1.0),
                        quantile(&raw, 0.5),
                        quantile(&mbit, 0.5) * 1e6 / baseline as f64 * 100.0,
                        measured.len() - reached.len()
                    );
                }
            }
            drop((ingress, egress));
        }
    }
    println!("\nall throttled measurements: {}", summary(&throttled_all));
    println!("run time: {:.0} s", started.elapsed().as_secs_f64());
}
