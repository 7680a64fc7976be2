//! One file per subcommand: each parses its flags, loads its config,
//! sets up logging and runs what its crate provides.

use std::path::PathBuf;

use openrelay_config::PathConfig;

pub(crate) mod account;
pub(crate) mod chain_args;
pub(crate) mod client;
pub(crate) mod devnet;
pub(crate) mod down;
pub(crate) mod issuer;
pub(crate) mod key;
pub(crate) mod ledger;
pub(crate) mod operator;
pub(crate) mod registry;
pub(crate) mod relay;
pub(crate) mod release;
pub(crate) mod release_votes;
pub(crate) mod sim;
pub(crate) mod status;
pub(crate) mod up;
pub(crate) mod validator;
pub(crate) mod validator_chain;

/// Path selection settings on the command line; each overrides the
/// client config's `[path]` entry of the same name.
#[derive(Debug, clap::Args)]
pub(crate) struct PathArgs {
    /// Use only egress relays in this country (ISO 3166-1 alpha-2).
    #[arg(long, value_name = "CC")]
    egress_country: Option<String>,
    /// ... and in this city.
    #[arg(long, requires = "egress_country")]
    egress_city: Option<String>,
    /// Your own country: egress relays there are preferred when no egress
    /// country is asked for ("near my region").
    #[arg(long, value_name = "CC")]
    home_country: Option<String>,
    /// New flows move to a fresh path this often (open flows finish on
    /// theirs).
    #[arg(long, value_name = "SECS")]
    rotation_secs: Option<u64>,
    /// Per-site isolation: flows to different sites use different egress
    /// relays.
    #[arg(long)]
    per_site: bool,
}

impl PathArgs {
    pub(crate) fn apply(&self, path: &mut PathConfig) {
        if self.egress_country.is_some() {
            path.egress_country.clone_from(&self.egress_country);
            path.egress_city.clone_from(&self.egress_city);
        }
        if self.home_country.is_some() {
            path.home_country.clone_from(&self.home_country);
        }
        if let Some(secs) = self.rotation_secs {
            path.rotation_secs = secs;
        }
        path.per_site |= self.per_site;
    }
}

/// The flags every server subcommand (`relay`, `registry`, `issuer`)
/// takes.
#[derive(Debug, clap::Args)]
pub(crate) struct ServiceArgs {
    /// The config file (see examples/<role>.toml: ingress, egress, registry,
    /// issuer).
    #[arg(long)]
    pub(crate) config: PathBuf,
    /// Exit when standard input closes (used by `devnet` for its children).
    #[arg(long, hide = true)]
    pub(crate) exit_with_stdin: bool,
}
