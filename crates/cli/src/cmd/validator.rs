//! `openrelay validator`: checks and signs the registry's directories;
//! its subcommands (`join`, `leave`, ..., in `validator_chain`) act on the
//! validator set on the chain.

use std::path::PathBuf;

use openrelay_config::ValidatorConfig;
use openrelay_log::Role;
use openrelay_registry::validator::Validator;
use openrelay_registry_client::RegistryClient;
use openrelay_transport::identity::Identity;

use crate::process::{init_logging, ready, runtime, shutdown_signal};

/// Flags of `openrelay validator`: `--config FILE` runs the service; a
/// subcommand acts on the chain instead.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct ValidatorArgs {
    #[command(subcommand)]
    command: Option<super::validator_chain::ValidatorCommand>,
    /// The validator's config file (see examples/validator.toml).
    #[arg(long, required = true)]
    config: Option<PathBuf>,
    /// Print the validator's public key (creating it if needed) and exit.
    #[arg(long)]
    print_key: bool,
    /// Exit when standard input closes (used by `devnet` for its children).
    #[arg(long, hide = true)]
    exit_with_stdin: bool,
}

/// Load config, init logging, run (or only print the key).
pub(crate) fn run(args: ValidatorArgs) -> anyhow::Result<()> {
    if let Some(command) = args.command {
        return super::validator_chain::run(command);
    }
    let Some(config) = args.config else {
        anyhow::bail!("--config FILE (or a subcommand) is required");
    };
    if args.print_key {
        // Before the config is complete: it must list this key.
        let state_dir = ValidatorConfig::load_state_dir(&config)?;
        let key = openrelay_registry::keyfile::load_or_create(&state_dir)?;
        println!("{}", key.id());
        return Ok(());
    }
    let config = ValidatorConfig::load(&config)?;
    runtime(Some(1))?.block_on(serve(config, args.exit_with_stdin))
}

async fn serve(config: ValidatorConfig, exit_with_stdin: bool) -> anyhow::Result<()> {
    init_logging(Role::Tool, &config.log)?;
    let key = openrelay_registry::keyfile::load_or_create(&config.state_dir)?;
    // Its TLS key (relays pin it to publish here), next to its signing key.
    let identity = Identity::load_or_create(&config.state_dir)?;
    let validator = Validator::new(&config, key)?;
    let service = Validator::bind(&config, &identity)?;
    let listen = service.local_addr()?;
    let registry = RegistryClient::new(config.registry.addr, config.registry.key);
    ready(&format!(
        "ready role=validator listen={listen} key={} tls_key={}",
        validator.id(),
        identity.pin()
    ));
    validator
        .run(service, registry, shutdown_signal(exit_with_stdin))
        .await;
    Ok(())
}
