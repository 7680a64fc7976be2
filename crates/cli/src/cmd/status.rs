//! `openrelay status`: asks a running client over its control socket.

use std::path::PathBuf;

use crate::process::runtime;

/// Flags of `openrelay status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The client's state directory, or a devnet's (its client's is used).
    #[arg(long)]
    state_dir: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Ask the client, print.
pub(crate) fn run(args: StatusArgs) -> anyhow::Result<()> {
    runtime(Some(1))?.block_on(show(&args.state_dir, args.json))
}

async fn show(state_dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    use openrelay_client::control;
    // A devnet's state directory holds its client's in `client/`.
    let devnet_client = state_dir.join("client");
    let dir = if !control::socket_path(state_dir).exists()
        && control::socket_path(&devnet_client).exists()
    {
        devnet_client.as_path()
    } else {
        state_dir
    };
    let status = control::query(dir).await?;
    if json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(());
    }
    let state = match (status.state, status.next_attempt_secs) {
        (control::PathState::Connected, _) => "connected".to_owned(),
        (control::PathState::Connecting, _) => "connecting".to_owned(),
        (control::PathState::Disconnected, None) => {
            "disconnected (the next flow builds a path)".to_owned()
        }
        (control::PathState::Disconnected, Some(secs)) => {
            format!("disconnected (next attempt in {secs} s)")
        }
    };
    println!("state:      {state}");
    if let Some(reason) = &status.no_path {
        println!("no path:    {reason}");
    }
    for (hop, relay) in [("ingress", &status.ingress), ("egress", &status.egress)] {
        if let Some(relay) = relay {
            println!("{}", hop_line(hop, relay));
        }
    }
    if let Some(age) = status.path_age_secs {
        println!("path age:   {age} s");
    }
    println!(
        "open flows: {} on {} path(s)",
        status.open_flows, status.live_paths
    );
    if let Some(balance) = status.token_balance {
        println!("tokens:     {balance} in the wallet");
    }
    match status.directory_age_secs {
        Some(age) => println!("directory:  issued {age} s ago"),
        None => println!("directory:  relay list from the config file"),
    }
    Ok(())
}

/// One hop of the path: name, operator, region, address and, where the
/// directory carries it, the measured bandwidth and its age; then its
/// attestation (platform, release, verdict).
fn hop_line(hop: &str, relay: &openrelay_client::control::RelayStatus) -> String {
    let region = match (&relay.country, &relay.city) {
        (Some(country), Some(city)) => format!(", {city} {country}"),
        (Some(country), None) => format!(", {country}"),
        _ => String::new(),
    };
    let measured = match (relay.measured_bps, relay.measured_age_secs) {
        (Some(bps), Some(age)) => {
            format!(", measured {:.1} Mbit/s {age} s ago", bps as f64 / 1e6)
        }
        _ => String::new(),
    };
    let attestation = relay.attestation.as_ref().map_or_else(String::new, |a| {
        let platform = a
            .platform
            .as_ref()
            .map_or_else(String::new, |p| format!(" on {p}"));
        let release = a.release.as_ref().map_or_else(String::new, |r| {
            format!(", release {}", r.get(..16).unwrap_or(r))
        });
        format!("; attestation: {}{platform}{release}", a.verdict)
    });
    let label = format!("{hop}:");
    format!(
        "{label:<11} {} (operator {}{region}{measured}) at {}{attestation}",
        relay.name, relay.operator, relay.address
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use openrelay_client::control::RelayStatus;

    #[test]
    fn a_hop_shows_its_measured_bandwidth_and_age_where_known() {
        let mut relay = RelayStatus {
            name: "egress-abc".into(),
            operator: "op".into(),
            address: "192.0.2.7:4433".parse().unwrap(),
            country: Some("NL".into()),
            city: None,
            measured_bps: Some(87_500_000),
            measured_age_secs: Some(420),
            attestation: None,
        };
        assert_eq!(
            super::hop_line("egress", &relay),
            "egress:     egress-abc (operator op, NL, measured 87.5 Mbit/s 420 s ago) at 192.0.2.7:4433"
        );
        relay.measured_bps = None;
        relay.measured_age_secs = None;
        assert_eq!(
            super::hop_line("egress", &relay),
            "egress:     egress-abc (operator op, NL) at 192.0.2.7:4433"
        );
    }

    #[test]
    fn a_hop_shows_its_platform_release_and_verdict() {
        use openrelay_client::attestation::AttestationSummary;
        let mut relay = RelayStatus {
            name: "ingress-1".into(),
            operator: "op".into(),
            address: "192.0.2.7:4433".parse().unwrap(),
            country: None,
            city: None,
            measured_bps: None,
            measured_age_secs: None,
            attestation: Some(AttestationSummary {
                platform: Some("sev-snp".into()),
                release: Some("ab".repeat(32)),
                verdict: "attested".into(),
            }),
        };
        assert_eq!(
            super::hop_line("ingress", &relay),
            "ingress:    ingress-1 (operator op) at 192.0.2.7:4433; attestation: attested on \
             sev-snp, release abababababababab"
        );
        relay.attestation = Some(AttestationSummary {
            platform: None,
            release: None,
            verdict: "no evidence".into(),
        });
        assert!(super::hop_line("ingress", &relay).ends_with("; attestation: no evidence"));
    }
}
