//! Test support (feature `testing`): a real issuer service on a loopback
//! port in the caller's runtime, stopped when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openrelay_config::IssuerConfig;
use openrelay_transport::identity::Identity;
use openrelay_transport::task::AbortOnDrop;
use openrelay_types::KeyPin;

use crate::IssuerService;

/// A running issuer.
#[derive(Debug)]
pub struct LocalIssuer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its key (what clients and relays pin).
    pub pin: KeyPin,
    /// The key directory it publishes for relays (`issuer_keys`).
    pub keys: PathBuf,
    _task: AbortOnDrop<()>,
}

impl LocalIssuer {
    /// Starts an issuer named `issuer_name` keeping its state in `state_dir`,
    /// with an easy registration puzzle (8 bits) and no settlements.
    pub fn start(state_dir: &Path, issuer_name: &str) -> Self {
        Self::start_with(state_dir, issuer_name, "")
    }

    /// As [`LocalIssuer::start`], with `extra` config text (e.g. a
    /// `[settlement.relays]` table).
    #[allow(clippy::unwrap_used)]
    pub fn start_with(state_dir: &Path, issuer_name: &str, extra: &str) -> Self {
        let config = IssuerConfig::from_toml(&format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = {state_dir:?}\nissuer_name = \"{issuer_name}\"\nregistration_puzzle_bits = 8\n{extra}"
        ))
        .unwrap();
        let identity = Identity::generate().unwrap();
        let service = Arc::new(IssuerService::new(&config).unwrap());
        let endpoint = IssuerService::bind(&config, &identity).unwrap();
        LocalIssuer {
            addr: endpoint.local_addr().unwrap(),
            pin: identity.pin(),
            keys: state_dir.join(crate::keys::DIRECTORY_FILE),
            _task: AbortOnDrop(tokio::spawn(service.run(endpoint, std::future::pending()))),
        }
    }
}
