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
            let region = match (&relay.country, &relay.city) {
                (Some(country), Some(city)) => format!(", {city} {country}"),
                (Some(country), None) => format!(", {country}"),
                _ => String::new(),
            };
            let label = format!("{hop}:");
            println!(
                "{label:<11} {} (operator {}{region}) at {}",
                relay.name, relay.operator, relay.address
            );
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
