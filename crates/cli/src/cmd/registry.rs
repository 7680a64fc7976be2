//! `openrelay registry`: the relay registry.

use openrelay_config::RegistryConfig;
use openrelay_log::Role;
use openrelay_registry::service::RegistryService;
use openrelay_transport::identity::Identity;

use crate::cmd::ServiceArgs;
use crate::process::{init_logging, ready_service, runtime, shutdown_signal};

/// Load config, init logging, run.
pub(crate) fn run(args: ServiceArgs) -> anyhow::Result<()> {
    let config = RegistryConfig::load(&args.config)?;
    runtime(None)?.block_on(serve(config, args.exit_with_stdin))
}

async fn serve(config: RegistryConfig, exit_with_stdin: bool) -> anyhow::Result<()> {
    init_logging(Role::Relay, &config.log)?;
    let identity = Identity::load_or_create(&config.state_dir)?;
    let registry = std::sync::Arc::new(RegistryService::new(&config)?);
    let service = RegistryService::bind(&config, &identity)?;
    let listen = service.local_addr()?;
    ready_service("registry", listen, identity.pin());
    registry
        .run(service, shutdown_signal(exit_with_stdin))
        .await;
    Ok(())
}
