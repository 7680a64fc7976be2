//! `openrelay relay`: an ingress or egress relay.

use openrelay_config::{RelayCommon, RelayConfig};
use openrelay_log::Role;
use openrelay_transport::identity::Identity;
use openrelay_types::RelayRole;

use crate::cmd::ServiceArgs;
use crate::cmd::key::operator_pin;
use crate::cmd::ledger;
use crate::process::{init_logging, log_descriptor_limit, ready_service, runtime, shutdown_signal};

/// Load config, init logging, run.
pub(crate) fn run(args: ServiceArgs) -> anyhow::Result<()> {
    let config = RelayConfig::load(&args.config)?;
    runtime(config.common().worker_threads)?.block_on(serve(config, args.exit_with_stdin))
}

/// Fills in the relay's `operator_key` from its publishing key file, and
/// refuses a config whose two disagree (tokens would be scoped to another
/// operator than the directory lists).
fn resolve_operator_key(config: &mut RelayCommon) -> anyhow::Result<()> {
    let Some(publish) = &config.publish else {
        return Ok(());
    };
    let published = operator_pin(&publish.operator_key_file)?;
    match config.operator_key {
        None => config.operator_key = Some(published),
        Some(given) => anyhow::ensure!(
            given == published,
            "operator_key {given} is not the key of {} ({published}), which signs this relay's descriptors",
            publish.operator_key_file.display()
        ),
    }
    Ok(())
}

async fn serve(mut config: RelayConfig, exit_with_stdin: bool) -> anyhow::Result<()> {
    init_logging(Role::Relay, &config.common().log)?;
    resolve_operator_key(config.common_mut())?;
    log_descriptor_limit();
    let identity = Identity::load_or_create(&config.common().state_dir)?;
    let shutdown = shutdown_signal(exit_with_stdin);
    match config {
        RelayConfig::Ingress(config) => {
            let settings = openrelay_ingress::IngressSettings::from_config(&config)?;
            let mut ingress = openrelay_ingress::Ingress::bind(settings, &identity)?;
            let listen = ingress.local_addr()?;
            if let Some(publisher) =
                publisher(&config.common, RelayRole::Ingress, listen, &identity)?
            {
                ingress.spawn(publisher.run(std::future::pending()));
            }
            ready_service("ingress", listen, identity.pin());
            ingress.serve(shutdown).await;
        }
        RelayConfig::Egress(config) => {
            let mut settings = openrelay_egress::EgressSettings::from_config(&config)?;
            settings.operator = ledger::settlement_operator(&config.common)?;
            let mut egress = openrelay_egress::Egress::bind(settings, &identity)?;
            let listen = egress.local_addr()?;
            if let Some(publisher) =
                publisher(&config.common, RelayRole::Egress, listen, &identity)?
            {
                egress.spawn(publisher.run(std::future::pending()));
            }
            ready_service("egress", listen, identity.pin());
            egress.serve(shutdown).await;
        }
    }
    Ok(())
}

/// The relay's descriptor publisher, if its config says where to publish.
fn publisher(
    config: &RelayCommon,
    role: RelayRole,
    listen: std::net::SocketAddr,
    identity: &Identity,
) -> anyhow::Result<Option<openrelay_registry::publisher::Publisher>> {
    let Some(publish) = &config.publish else {
        return Ok(None);
    };
    Ok(Some(openrelay_registry::publisher::Publisher::new(
        publish,
        role,
        listen,
        identity,
        &config.state_dir,
    )?))
}
