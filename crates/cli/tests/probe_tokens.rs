//! A measuring validator's probes carry ordinary tokens (issue 14, "use
//! ordinary tokens and paths"; docs/measurement.md, "Tokens on probes").
//! Real processes from `devnet --export`: a registry, three validators, the
//! issuer, two operators' ingresses that admit only with an access token
//! and egresses that charge payment tokens, one of each throttled.
//!
//! - the prober's account registers itself (password file 0600), fetches
//!   the plan's tokens directly from the issuer with its keys checked
//!   against the followed directory, and measures the throttled egress and
//!   ingress within ±10 %; the egress's operator is credited the payments;
//! - without tokens (no account, or an empty wallet) the result is the
//!   typed `NoToken` failure and no report, never `Unreachable`;
//! - an issuer signing under a key the directory does not list (one of its
//!   own, which would let relays recognise probes) is refused by the
//!   prober's account and no token is fetched.
#![allow(clippy::unwrap_used, clippy::panic)]

use openrelay_client::attestation::AttestationVerdict;
use openrelay_testkit as kit;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kit::devnet::{issuer_with_own_keys, start_exported as start};
use kit::{Proc, run_openrelay};
use openrelay_client::access::AccessTokens as _;
use openrelay_client::account::AccountError;
use openrelay_client::directory::VerifiedDirectorySource;
use openrelay_client::relay::Relay;
use openrelay_config::{ClientConfig, ProbeAccountConfig, RelayConfig, ThrottleForTestsConfig};
use openrelay_measure::{Measurement, RelayId};
use openrelay_probe::tokens::{
    PlannedTest, ProbeAccount, ProbeAccountError, partner_candidates, tokens_for_plan,
};
use openrelay_probe::{MissingToken, Probe, ProbeFailure, ProbeSettings, ProbedRelay, Prober};
use openrelay_registry_client::follow::DirectoryFollower;

/// The throttled relays' rate: far below what debug relays carry here.
const LIMIT_BPS: u64 = 20_000_000;
const PROBER_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Rewrites relay `name`'s exported config to be throttled to LIMIT_BPS.
fn throttle(configs: &Path, name: &str) {
    let path = configs.join(format!("{name}.toml"));
    let mut relay = RelayConfig::load(&path).unwrap();
    relay.common_mut().throttle_for_tests = Some(ThrottleForTestsConfig {
        bps: LIMIT_BPS,
        exempt_sources: Vec::new(),
    });
    std::fs::write(&path, relay.to_toml().unwrap()).unwrap();
}

fn settings() -> ProbeSettings {
    ProbeSettings {
        probe_bind: Some(PROBER_IP),
        ..ProbeSettings::new(Duration::from_secs(3), PROBER_IP)
    }
}

fn capacity(probe: &Probe) -> u64 {
    match probe.report.as_ref().map(|r| r.measurement) {
        Some(Measurement::Reachable { capacity_bps, .. }) => capacity_bps,
        other => panic!("not measured: {other:?} {:?}", probe.failure),
    }
}

fn assert_within_tenth(probe: &Probe) {
    let measured = capacity(probe);
    let error = (measured as f64 - LIMIT_BPS as f64) / LIMIT_BPS as f64;
    assert!(
        error.abs() <= 0.10,
        "measured {measured} bit/s for a limit of {LIMIT_BPS} ({:+.1} %), {:?}",
        error * 100.0,
        probe.rate
    );
}

fn assert_no_token(probe: &Probe, missing: MissingToken) {
    assert!(
        matches!(probe.failure, Some(ProbeFailure::NoToken(m)) if m == missing),
        "{:?}",
        probe.failure
    );
    assert!(
        probe.report.is_none(),
        "a test without a token is no report: {:?}",
        probe.report
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_show_tokens_checked_against_the_directory_and_a_test_without_one_is_no_report() {
    let dir = tempfile::Builder::new()
        .prefix("openrelay-tok-")
        .tempdir()
        .unwrap();
    let configs = kit::export_devnet(dir.path(), &["--log-level", "debug"]);
    throttle(&configs, "egress-1");
    throttle(&configs, "ingress-1");
    let client = ClientConfig::load(&configs.join("client.toml")).unwrap();
    let issuer = client.account.clone().unwrap();

    // An issuer holding the issuer's identity (its pin matches) but token
    // keys of its own, listed nowhere.
    let (rogue_path, rogue_addr) =
        issuer_with_own_keys(&configs, dir.path(), Ipv4Addr::new(127, 0, 5, 3));

    let _registry = start("registry", &configs.join("registry.toml"));
    let _validators: Vec<Proc> = (1..=3)
        .map(|i| start("validator", &configs.join(format!("validator-{i}.toml"))))
        .collect();
    let _issuer = start("issuer", &configs.join("issuer.toml"));
    let _rogue = start("issuer", &rogue_path);
    let _relays: Vec<Proc> = ["ingress-1", "ingress-2", "egress-1", "egress-2"]
        .iter()
        .map(|name| start("relay", &configs.join(format!("{name}.toml"))))
        .collect();

    // The directory the validator follows: all four relays and the
    // issuer's key set.
    let follower = Arc::new(DirectoryFollower::new(client.directory.as_ref().unwrap()).unwrap());
    let deadline = Instant::now() + Duration::from_secs(90);
    let directory = loop {
        if let Ok((directory, _)) = follower.refresh().await
            && directory.relays().count() == 4
            && directory.key_sets().len() == 1
        {
            break directory;
        }
        assert!(Instant::now() < deadline, "no full directory");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let relays: Vec<(RelayId, Relay)> = directory
        .relays()
        .map(|r| {
            (
                RelayId(r.id().to_bytes()),
                Relay::from_directory(&r, r.endpoints()[0], AttestationVerdict::NotChecked),
            )
        })
        .collect();
    let by_addr = |addr: SocketAddr| -> ProbedRelay {
        let (id, relay) = relays.iter().find(|(_, r)| r.addr == addr).unwrap();
        ProbedRelay {
            id: *id,
            relay: relay.clone(),
        }
    };
    let listen = |name: &str| {
        RelayConfig::load(&configs.join(format!("{name}.toml")))
            .unwrap()
            .common()
            .listen
    };
    let (ingress_1, ingress_2, egress_1, egress_2) = (
        by_addr(listen("ingress-1")),
        by_addr(listen("ingress-2")),
        by_addr(listen("egress-1")),
        by_addr(listen("egress-2")),
    );

    let state = dir.path().join("validator-state");
    std::fs::create_dir_all(&state).unwrap();
    let config = ProbeAccountConfig {
        issuer: issuer.issuer.clone(),
        issuer_name: issuer.issuer_name.clone(),
        username: "tok-validator-probes".into(),
        password_file: None,
    };
    let source: Arc<dyn VerifiedDirectorySource> = Arc::clone(&follower) as _;
    let account = ProbeAccount::open(&config, &state, Arc::clone(&source)).unwrap();

    // The plan: test egress-1 and ingress-1 (each against any compatible
    // partner); tokens for all of it, fetched now, before any test.
    let all: Vec<Relay> = relays.iter().map(|(_, r)| r.clone()).collect();
    let tests: Vec<PlannedTest> = [&egress_1, &ingress_1]
        .iter()
        .map(|t| PlannedTest {
            partners: partner_candidates(&t.relay, &all),
            target: t.relay.clone(),
            carried_bps: 40_000_000,
        })
        .collect();
    assert_eq!(
        tests[0].partners.len(),
        1,
        "egress-1's partner is ingress-2 only"
    );
    let need = tokens_for_plan(account.account(), &tests, settings().test_time());
    // Access for operator 2 (egress-1's partner) and operator 1 (ingress-1),
    // payment for egress-1 and egress-2 (ingress-1's partner), two each.
    assert_eq!(need.len(), 4, "{need:?}");
    assert_eq!(need.iter().map(|(_, n)| n).sum::<usize>(), 6, "{need:?}");
    // The relays may still wait for the issuer's keys, the issuer for the
    // directory to list them: the validator retries, and so does this.
    let deadline = Instant::now() + Duration::from_secs(60);
    let added = loop {
        match account.stock(&need).await {
            Ok(added) => break added,
            Err(e) => {
                assert!(Instant::now() < deadline, "not stocked: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    assert_eq!(added, 6);
    assert!(account.missing(&need).is_empty());
    // What the wallet holds is not fetched again.
    assert_eq!(account.stock(&need).await.unwrap(), 0);
    let secret = state.join("probe-account.secret");
    assert!(secret.exists() && !state.join("probe-account.secret.pending").exists());
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A restart logs in with the kept password (a fresh session).
    let again = ProbeAccount::open(&config, &state, Arc::clone(&source)).unwrap();
    again.account().wallet().clear_session().unwrap();
    let more = vec![(need[1].0.clone(), need[1].1 + 1)];
    assert_eq!(again.stock(&more).await.unwrap(), 1);

    // Measured through token-gated, paid paths within a tenth. The relays
    // may take a moment more to hold the listed key (503): retried.
    let prober = Prober::start(settings(), Some(Arc::clone(account.account())))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let egress_probe = loop {
        let probe = prober.measure_egress(&egress_1, &ingress_2.relay).await;
        if probe.failure.is_none() || Instant::now() > deadline {
            break probe;
        }
        // A relay still waiting for the issuer's keys answers 503 to a
        // token it took: the wallet is topped up again, as the next
        // epoch's plan would.
        account.stock(&need).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_within_tenth(&egress_probe);
    let ingress_probe = prober.measure_ingress(&ingress_1, &egress_2.relay).await;
    assert_within_tenth(&ingress_probe);
    // Each test spent its access token (the plan's two are gone).
    assert_eq!(account.account().held_for(&ingress_2.relay), 0);

    // The wallet holds no access token for operator 2's ingress any more:
    // a typed refusal before any packet, no report.
    let dry = prober.measure_egress(&egress_1, &ingress_2.relay).await;
    assert_no_token(&dry, MissingToken::Access);
    // No account at all against relays that require tokens: the ingress's
    // 401 is the same typed failure, not `Unreachable`.
    let tokenless = Prober::start(settings(), None).await.unwrap();
    assert_no_token(
        &tokenless.measure_egress(&egress_2, &ingress_1.relay).await,
        MissingToken::Access,
    );
    assert_no_token(
        &tokenless.measure_ingress(&ingress_2, &egress_1.relay).await,
        MissingToken::Access,
    );

    // The egress collected the prober's payments and settled them for its
    // operator (every 5 s on a devnet).
    let egress_config = configs.join("egress-1.toml");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = run_openrelay(
            &[
                "ledger",
                "--config",
                egress_config.to_str().unwrap(),
                "--json",
            ],
            Duration::from_secs(10),
        );
        let redeemed = serde_json::from_str::<serde_json::Value>(out.stdout.trim())
            .ok()
            .and_then(|l| l["issuer"]["tokens_redeemed"].as_u64())
            .unwrap_or(0);
        if redeemed >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "egress-1's operator was not credited the probes' payments: {} {}",
            out.stdout,
            out.stderr
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // An issuer with keys of its own (it would tell probes apart where
    // they are spent): the prober's account refuses it, fetches nothing.
    let rogue = ProbeAccountConfig {
        issuer: openrelay_config::ServiceEndpoint {
            addr: rogue_addr,
            key: issuer.issuer.key,
        },
        ..config.clone()
    };
    let rogue_state = dir.path().join("validator-rogue");
    std::fs::create_dir_all(&rogue_state).unwrap();
    let refused = ProbeAccount::open(&rogue, &rogue_state, source).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let error = loop {
        match refused.stock(&need).await {
            // The rogue issuer process may not be up yet.
            Err(ProbeAccountError::Account(AccountError::Issuer(_)))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => break other,
        }
    };
    assert!(
        matches!(
            error,
            Err(ProbeAccountError::Account(AccountError::UnlistedKey { .. }))
        ),
        "{error:?}"
    );
    assert_eq!(refused.account().wallet().balance(), 0);
}
