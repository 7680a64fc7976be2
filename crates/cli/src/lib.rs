#![doc = include_str!("../README.md")]
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod process;

/// openrelay: your traffic crosses two relays of different operators, so no
/// single server can link you to what you do.
#[derive(Debug, Parser)]
#[command(name = "openrelay", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an ingress or egress relay.
    Relay(cmd::relay::RelayArgs),
    /// Run the client: local SOCKS5 and HTTP proxies through two relays.
    Client(cmd::client::ClientArgs),
    /// Bring the full-device VPN up: start the client with `--tun` in the
    /// background and return once traffic flows (docs/tun.md).
    Up(cmd::up::UpArgs),
    /// Bring the full-device VPN down: stop its client and undo every system
    /// change it recorded (also after the client died).
    Down(cmd::down::DownArgs),
    /// The client's account at its token issuer: register, log in (OPAQUE),
    /// wallet balance.
    Account(cmd::account::AccountArgs),
    /// Run a complete local network: relays of several operators and a client.
    Devnet(Box<cmd::devnet::DevnetArgs>),
    /// Print a relay's public key (what clients pin), or an operator's,
    /// creating it if needed.
    Key(cmd::key::KeyArgs),
    /// Run the relay registry: relays publish descriptors, validators sign
    /// directories, clients fetch them.
    Registry(cmd::ServiceArgs),
    /// Run the token issuer: OPAQUE accounts, Privacy Pass tokens (RFC 9578).
    Issuer(cmd::ServiceArgs),
    /// Run a validator that checks and signs the registry's directories
    /// (`--config`), or join, leave and approve changes of the validator set
    /// on the chain (subcommands).
    Validator(cmd::validator::ValidatorArgs),
    /// Show a running client's path, relays and open flows.
    Status(cmd::status::StatusArgs),
    /// An egress operator's contribution ledger at the issuer (tokens
    /// redeemed, bytes reported), and the relay's own ledger when it is not
    /// running.
    Ledger(cmd::ledger::LedgerArgs),
    /// An operator's account on the registry contract: key file, stake,
    /// relays, status (docs/chain.md).
    Operator(cmd::operator::OperatorArgs),
    /// Releases on the chain: propose one (or its revocation) for the
    /// validators' vote, list them with their status (docs/chain.md).
    ReleaseVotes(cmd::release_votes::ReleaseVotesArgs),
    /// Simulate collusion: the probability that some path has its ingress
    /// and egress held by one adversary, exactly and by Monte Carlo.
    Sim(cmd::sim::SimArgs),
    /// Reproducible releases: build one with its signed manifest, verify a
    /// manifest by rebuilding from source, sign one (docs/releases.md).
    Release(cmd::release::ReleaseArgs),
}

/// Runs the command line; the binary's `main` calls only this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = process::raise_descriptor_limit() {
        eprintln!("openrelay: cannot raise the open file limit: {e}");
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openrelay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Each subcommand: load its config, init logging, run (`cmd`).
fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Relay(args) => cmd::relay::run(args),
        Command::Client(args) => cmd::client::run(args),
        Command::Up(args) => cmd::up::run(args),
        Command::Down(args) => cmd::down::run(args),
        Command::Account(args) => cmd::account::run(args),
        Command::Devnet(args) => cmd::devnet::run(*args),
        Command::Key(args) => cmd::key::run(args),
        Command::Registry(args) => cmd::registry::run(args),
        Command::Issuer(args) => cmd::issuer::run(args),
        Command::Validator(args) => cmd::validator::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Ledger(args) => cmd::ledger::run(args),
        Command::Operator(args) => cmd::operator::run(args),
        Command::ReleaseVotes(args) => cmd::release_votes::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Release(args) => cmd::release::run(args),
    }
}
