//! `openrelay relay`: an ingress or egress relay.

use openrelay_config::{RelayCommon, RelayConfig};
use openrelay_log::Role;
use openrelay_transport::identity::Identity;
use openrelay_types::{KeyPin, RelayRole};

use crate::cmd::ServiceArgs;
use crate::cmd::key::operator_pin;
use crate::cmd::ledger;
use crate::process::{init_logging, log_descriptor_limit, ready_service, runtime, shutdown_signal};

/// Flags of `openrelay relay`.
#[derive(Debug, clap::Args)]
pub(crate) struct RelayArgs {
    #[command(flatten)]
    service: ServiceArgs,
    /// Print the hash of the descriptor this relay publishes (64 hex
    /// digits, what the chain commits to) and exit: the value of
    /// `openrelay operator register-relay --descriptor-hash`.
    #[arg(long, group = "chain_registration")]
    descriptor_hash: bool,
    /// Print the flags `openrelay operator register-relay` needs for this
    /// relay (`--relay-key`, `--role`, `--mbps`, `--descriptor-hash`) and
    /// exit.
    #[arg(long, group = "chain_registration")]
    register_args: bool,
    /// Print the flags `openrelay operator register` needs for this
    /// relay's operator (`--operator-key-file`, `--profile-hash`) and exit.
    #[arg(long, group = "chain_registration")]
    operator_args: bool,
}

/// Load config, init logging, run (or print what the chain needs).
pub(crate) fn run(args: RelayArgs) -> anyhow::Result<()> {
    let mut config = RelayConfig::load(&args.service.config)?;
    if args.descriptor_hash || args.register_args || args.operator_args {
        let r = registration(&mut config)?;
        if args.descriptor_hash {
            println!("{}", r.descriptor_hash);
        } else if args.register_args {
            println!(
                "--relay-key {} --role {} --mbps {} --descriptor-hash {}",
                r.relay_key, r.role, r.mbps, r.descriptor_hash
            );
        } else {
            println!(
                "--operator-key-file {} --profile-hash {}",
                r.operator_key_file.display(),
                r.profile_hash
            );
        }
        return Ok(());
    }
    runtime(config.common().worker_threads)?.block_on(serve(config, args.service.exit_with_stdin))
}

/// What the chain registers for this relay and its operator.
struct Registration {
    /// The key that signs its descriptors (not its QUIC key).
    relay_key: KeyPin,
    role: RelayRole,
    /// Rounded up: the descriptor may advertise at most what is registered.
    mbps: u64,
    /// The content hash of the descriptor its publisher builds.
    descriptor_hash: alloy::primitives::B256,
    /// The content hash of its operator's profile.
    profile_hash: alloy::primitives::B256,
    operator_key_file: std::path::PathBuf,
}

fn registration(config: &mut RelayConfig) -> anyhow::Result<Registration> {
    resolve_operator_key(config.common_mut())?;
    let role = match config {
        RelayConfig::Ingress(_) => RelayRole::Ingress,
        RelayConfig::Egress(_) => RelayRole::Egress,
    };
    let common = config.common();
    let Some(publish) = &common.publish else {
        anyhow::bail!("the config has no [publish] section: this relay publishes no descriptor");
    };
    // Registries on a chain list only relays whose operator's signed
    // profile names the registering account.
    anyhow::ensure!(
        publish.operator_account.is_some(),
        "[publish] has no operator_account: set it to the EVM account that registers and stakes \
         for this operator (`openrelay operator new-key` prints it), or the registry never lists \
         this relay"
    );
    // The descriptor names the address clients reach: a port the kernel
    // picks at start-up is not known here.
    anyhow::ensure!(
        publish.endpoint.is_some() || common.listen.port() != 0,
        "listen has port 0: the descriptor's endpoint is known only once the relay runs; set publish.endpoint (or a fixed listen port)"
    );
    let identity = Identity::load_or_create(&common.state_dir)?;
    let publisher = openrelay_registry::publisher::Publisher::new(
        publish,
        role,
        common.listen,
        &identity,
        &common.state_dir,
    )?;
    let relay_key = openrelay_registry::keyfile::relay_key(&common.state_dir)?;
    Ok(Registration {
        relay_key: KeyPin::from(relay_key.id()),
        role,
        mbps: publish.bandwidth_bps.div_ceil(1_000_000),
        descriptor_hash: publisher.content_hash()?.into(),
        profile_hash: publisher.profile_hash()?.into(),
        operator_key_file: publish.operator_key_file.clone(),
    })
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
