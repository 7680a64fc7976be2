//! `openrelay key`: a relay's public key, or an operator's.

use std::path::PathBuf;

use openrelay_transport::identity::Identity;

/// Flags of `openrelay key`.
#[derive(Debug, clap::Args)]
pub(crate) struct KeyArgs {
    /// The relay's state directory.
    #[arg(long, required_unless_present = "operator_key_file")]
    state_dir: Option<PathBuf>,
    /// Print the public key of this operator key file instead (a relay
    /// config's `operator_key`, the operator's id in the registry).
    #[arg(long, conflicts_with = "state_dir")]
    operator_key_file: Option<PathBuf>,
}

/// Print the key.
pub(crate) fn run(args: KeyArgs) -> anyhow::Result<()> {
    let pin = match (args.state_dir, args.operator_key_file) {
        (_, Some(file)) => operator_pin(&file)?,
        (Some(dir), None) => Identity::load_or_create(&dir)?.pin(),
        (None, None) => anyhow::bail!("--state-dir or --operator-key-file is required"),
    };
    println!("{pin}");
    Ok(())
}

/// The public key of the operator key file `file` (created if absent).
pub(crate) fn operator_pin(file: &std::path::Path) -> anyhow::Result<openrelay_types::KeyPin> {
    Ok(openrelay_types::KeyPin::from(
        openrelay_registry::keyfile::operator_key(file)?.id(),
    ))
}
