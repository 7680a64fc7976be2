//! `openrelay registry`: the relay registry.

use std::path::PathBuf;

use openrelay_config::RegistryConfig;
use openrelay_log::Role;
use openrelay_registry::service::RegistryService;
use openrelay_transport::identity::Identity;

use crate::process::{init_logging, ready, runtime, shutdown_signal};

/// Flags of `openrelay registry`.
#[derive(Debug, clap::Args)]
pub(crate) struct RegistryArgs {
    /// The registry's config file (see examples/registry.toml).
    #[arg(long)]
    config: PathBuf,
    /// Exit when standard input closes (used by `devnet` for its children).
    #[arg(long, hide = true)]
    exit_with_stdin: bool,
}

/// Load config, init logging, run.
pub(crate) fn run(args: RegistryArgs) -> anyhow::Result<()> {
    let config = RegistryConfig::load(&args.config)?;
    runtime(None)?.block_on(serve(config, args.exit_with_stdin))
}

async fn serve(config: RegistryConfig, exit_with_stdin: bool) -> anyhow::Result<()> {
    init_logging(Role::Relay, &config.log)?;
    let identity = Identity::load_or_create(&config.state_dir)?;
    let registry = std::sync::Arc::new(RegistryService::new(&config)?);
    let service = RegistryService::bind(&config, &identity)?;
    let listen = service.local_addr()?;
    ready(&format!(
        "ready role=registry listen={listen} key={}",
        identity.pin()
    ));
    registry
        .run(service, shutdown_signal(exit_with_stdin))
        .await;
    Ok(())
}
