//! `openrelay client`: the local SOCKS5 and HTTP proxies through two
//! relays, and with `--tun` the full-device VPN.

use std::path::PathBuf;

use openrelay_config::ClientConfig;
use openrelay_log::Role;
use openrelay_transport::task::AbortOnDrop;
use tracing::{debug, warn};

use crate::cmd::PathArgs;
use crate::process::{init_logging, ready, runtime, shutdown_signal};

/// Flags of `openrelay client`.
#[derive(Debug, clap::Args)]
pub(crate) struct ClientArgs {
    /// The client's config file (see examples/client.toml).
    #[arg(long)]
    config: PathBuf,
    #[command(flatten)]
    path: PathArgs,
    /// Also run the full-device VPN (the config's `[tun]`), as `up` does.
    #[arg(long)]
    tun: bool,
    /// Cross-check every new directory against your own node's JSON-RPC
    /// endpoint (`http://host:port[/path]`), reached through the relays
    /// (the config's `[directory] rpc`). A directory the node contradicts
    /// is refused.
    #[arg(long, value_name = "URL")]
    rpc: Option<String>,
    /// With `--rpc` (or `[directory] rpc`): also refuse a directory the
    /// node cannot confirm (unreachable, no usable answer).
    #[arg(long)]
    rpc_required: bool,
    /// Exit when standard input closes (used by `devnet` for its children).
    #[arg(long, hide = true)]
    exit_with_stdin: bool,
}

/// Load config, init logging, run.
pub(crate) fn run(args: ClientArgs) -> anyhow::Result<()> {
    let mut config = ClientConfig::load(&args.config)?;
    config.tun.enabled |= args.tun;
    if args.rpc.is_some() || args.rpc_required {
        let Some(directory) = config.directory.as_mut() else {
            anyhow::bail!(
                "--rpc and --rpc-required check the registry's directory; the config has no \
                 [directory] section"
            );
        };
        if let Some(url) = args.rpc {
            directory.rpc = Some(url);
        }
        if directory.rpc.is_none() {
            anyhow::bail!("--rpc-required needs --rpc URL (or [directory] rpc)");
        }
        directory.rpc_required |= args.rpc_required;
    }
    args.path.apply(&mut config.path);
    config.path.validate()?;
    // ipstack's TCP streams block in place when dropped, which needs
    // a multi-threaded runtime.
    let threads = match config.tun.enabled {
        true => config.worker_threads.max(2),
        false => config.worker_threads,
    };
    runtime(Some(threads))?.block_on(serve(config, args.exit_with_stdin))
}

async fn serve(config: ClientConfig, exit_with_stdin: bool) -> anyhow::Result<()> {
    init_logging(Role::Client, &config.log)?;
    // The VPN comes up first: the kill switch holds from here on, and the
    // sockets to the ingress must be created marked (after `up`).
    let mut vpn = match config.tun.enabled {
        true => Some(openrelay_tun::Vpn::up(&config)?),
        false => None,
    };
    let client = match openrelay_client::Client::bind(&config).await {
        Ok(client) => client,
        Err(e) => {
            if let Some(vpn) = vpn {
                vpn.down();
            }
            return Err(e.into());
        }
    };
    let (socks, http) = (client.socks_addr()?, client.http_addr()?);
    let manager = std::sync::Arc::clone(client.manager());
    // The kill switch admits the client's own packets to the ingresses the
    // manager may use, and no further.
    if let Some(filter) = vpn.as_ref().and_then(openrelay_tun::Vpn::ingress_filter) {
        manager.filter_ingresses(filter);
    }
    let stack = vpn
        .as_mut()
        .map(|vpn| AbortOnDrop(tokio::spawn(vpn.serve(std::sync::Arc::clone(&manager)))));
    let tun_name = vpn.as_ref().map(|_| format!(" tun={}", config.tun.name));
    // Announce readiness once a path works; until then keep trying, so a
    // client started before its relays comes up by itself.
    tokio::spawn(async move {
        let mut said = false;
        loop {
            match manager.current().await {
                Ok(_) => {
                    let tun = tun_name.unwrap_or_default();
                    ready(&format!("ready socks={socks} http={http}{tun}"));
                    return;
                }
                Err(openrelay_client::PathError::Closed) => return,
                // The manager warns about build failures as their cause
                // changes; saying it again every second is noise.
                Err(e) => {
                    if !said {
                        warn!(error = %e, "no path yet; retrying");
                        said = true;
                    } else {
                        debug!(error = %e, "no path yet; retrying");
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    });
    client.serve(shutdown_signal(exit_with_stdin)).await;
    drop(stack);
    if let Some(vpn) = vpn {
        vpn.down();
    }
    Ok(())
}
