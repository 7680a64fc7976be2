//! The validator's prober (openrelay-probe) against real relay processes
//! on loopback: unthrottled relays measure reachable with a plausible
//! capacity, a relay throttled to X (`[throttle_for_tests]`) measures
//! within ±10 % of X, a stopped relay is Unreachable with the hop to
//! blame, and a relay that exempts the validator's published address but
//! throttles everyone else is still measured at its throttled rate
//! (probes leave from `probe_bind`, not from that address).
//!
//! Rates are set well under what debug relays carry on this machine, so
//! the bound checked is the throttle's, not the build's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use openrelay_client::path::{BuildError, Hop};
use openrelay_measure::{Measurement, RelayId};
use openrelay_probe::{Probe, ProbeFailure, ProbeSettings, ProbedRelay, Prober};
use openrelay_testkit::standalone::{Standalone, ingress_to, loopback_egress, throttle_for_tests};
use openrelay_types::RelayRole;

const PROBER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
/// The validator's published service address in these tests: the one a
/// cheating relay exempts.
const VALIDATOR_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
/// The throttled rate: far below what a debug build carries here.
const LIMIT_BPS: u64 = 20_000_000;

fn settings(probe_bind: IpAddr) -> ProbeSettings {
    ProbeSettings {
        probe_bind: Some(probe_bind),
        ..ProbeSettings::new(Duration::from_secs(3), PROBER_IP)
    }
}

fn probed(relay: &Standalone, role: RelayRole, name: &str, operator: &str) -> ProbedRelay {
    ProbedRelay::from_entry(
        &relay.entry(name, role, operator),
        RelayId(*relay.pin.as_bytes()),
    )
    .unwrap()
}

fn capacity(probe: &Probe) -> u64 {
    match probe.report.as_ref().unwrap().measurement {
        Measurement::Reachable { capacity_bps, .. } => capacity_bps,
        Measurement::Unreachable => panic!("unreachable: {:?}", probe.failure),
    }
}

fn assert_within_tenth(probe: &Probe, limit: u64) {
    let measured = capacity(probe);
    let error = (measured as f64 - limit as f64) / limit as f64;
    assert!(
        error.abs() <= 0.10,
        "measured {measured} bit/s for a limit of {limit} ({:+.1} %), {:?}",
        error * 100.0,
        probe.rate
    );
}

/// A relay pair: an ingress (operator a) to an egress (operator b), each
/// with `extra` sections.
fn pair(
    ingress_extra: &str,
    egress_extra: &str,
) -> (Standalone, Standalone, ProbedRelay, ProbedRelay) {
    let egress = loopback_egress(egress_extra);
    let ingress = ingress_to(egress.addr, ingress_extra);
    let (i, e) = (
        probed(&ingress, RelayRole::Ingress, "ingress-a", "a"),
        probed(&egress, RelayRole::Egress, "egress-b", "b"),
    );
    (ingress, egress, i, e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unthrottled_relays_measure_reachable_with_echoes_answered() {
    let (_ingress, _egress, i, e) = pair("", "");
    let prober = Prober::start(settings(PROBER_IP), None).await.unwrap();
    for probe in [
        prober.measure_egress(&e, &i.relay).await,
        prober.measure_ingress(&i, &e.relay).await,
    ] {
        // Loopback through two debug relays carries tens of Mbit/s at least.
        assert!(capacity(&probe) > 2 * LIMIT_BPS, "{:?}", probe.rate);
        assert_eq!(probe.report.as_ref().unwrap().probes_sent, 5);
        assert_eq!(
            probe.report.as_ref().unwrap().probes_answered,
            5,
            "{:?}",
            probe.rtts
        );
        let Measurement::Reachable { rtt_micros, .. } = probe.report.as_ref().unwrap().measurement
        else {
            unreachable!()
        };
        assert!(rtt_micros > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_egress_and_ingress_measure_within_a_tenth_of_the_limit() {
    let throttle = throttle_for_tests(LIMIT_BPS, &[]);
    let prober = Prober::start(settings(PROBER_IP), None).await.unwrap();
    {
        let (_ingress, _egress, i, e) = pair("", &throttle);
        assert_within_tenth(&prober.measure_egress(&e, &i.relay).await, LIMIT_BPS);
    }
    let (_ingress, _egress, i, e) = pair(&throttle, "");
    assert_within_tenth(&prober.measure_ingress(&i, &e.relay).await, LIMIT_BPS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_relay_is_unreachable_with_the_hop_to_blame() {
    let prober = Prober::start(settings(PROBER_IP), None).await.unwrap();
    for (stopped, hop) in [
        (RelayRole::Egress, Hop::Egress),
        (RelayRole::Ingress, Hop::Ingress),
    ] {
        let (ingress, egress, i, e) = pair("", "");
        match stopped {
            RelayRole::Egress => drop(egress),
            RelayRole::Ingress => drop(ingress),
        }
        let probe = match stopped {
            RelayRole::Egress => prober.measure_egress(&e, &i.relay).await,
            RelayRole::Ingress => prober.measure_ingress(&i, &e.relay).await,
        };
        assert_eq!(
            probe.report.as_ref().unwrap().measurement,
            Measurement::Unreachable
        );
        assert_eq!(probe.report.as_ref().unwrap().probes_answered, 0);
        match &probe.failure {
            Some(ProbeFailure::Path(BuildError::Handshake { hop: blamed, .. })) => {
                assert_eq!(blamed, &hop)
            }
            other => panic!("{stopped:?} stopped: {other:?}"),
        }
    }
}

/// The attack: an ingress that serves the validator's known address at
/// full speed and throttles everyone else. Probes leave from
/// `probe_bind`, so they get what users get. The control (a prober bound
/// to the exempt address) shows the exemption works, so the first
/// measurement is not the throttle's by accident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_exempting_the_validator_address_is_measured_at_its_throttled_rate() {
    let throttle = throttle_for_tests(LIMIT_BPS, &[VALIDATOR_IP]);
    let (_ingress, _egress, i, e) = pair(&throttle, "");
    let prober = Prober::start(settings(PROBER_IP), None).await.unwrap();
    assert_within_tenth(&prober.measure_ingress(&i, &e.relay).await, LIMIT_BPS);
    let from_validator = Prober::start(settings(VALIDATOR_IP), None).await.unwrap();
    let served = capacity(&from_validator.measure_ingress(&i, &e.relay).await);
    assert!(
        served > LIMIT_BPS * 3 / 2,
        "the exempt address was throttled too ({served} bit/s)"
    );
}
