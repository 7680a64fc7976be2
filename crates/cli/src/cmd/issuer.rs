//! `openrelay issuer`: the token issuer.

use openrelay_config::IssuerConfig;
use openrelay_issuer::IssuerService;
use openrelay_log::Role;
use openrelay_transport::identity::Identity;

use crate::cmd::ServiceArgs;
use crate::process::{init_logging, ready_service, runtime, shutdown_signal};

/// Load config, init logging, run.
pub(crate) fn run(args: ServiceArgs) -> anyhow::Result<()> {
    let config = IssuerConfig::load(&args.config)?;
    runtime(None)?.block_on(serve(config, args.exit_with_stdin))
}

async fn serve(config: IssuerConfig, exit_with_stdin: bool) -> anyhow::Result<()> {
    init_logging(Role::Relay, &config.log)?;
    let identity = Identity::load_or_create(&config.state_dir)?;
    let issuer = std::sync::Arc::new(IssuerService::new(&config)?);
    let service = IssuerService::bind(&config, &identity)?;
    let listen = service.local_addr()?;
    ready_service("issuer", listen, identity.pin());
    issuer.run(service, shutdown_signal(exit_with_stdin)).await;
    Ok(())
}
