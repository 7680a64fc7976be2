//! Keeps the kill switch's ingress sets (`plan::INGRESS_SET_V4`/`_V6`) at
//! the ingresses the client may use: the path manager calls
//! [`KillSwitchIngresses::admit_only`] when its relay list changes and as
//! paths close. Each change is one nftables transaction, so no packet ever
//! sees an empty or half-updated set.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Mutex;

use openrelay_client::IngressFilter;
use openrelay_command::{CommandError, run_command};
use tracing::{info, warn};

use crate::plan;

/// The kill switch's admitted ingresses.
#[derive(Debug)]
pub struct KillSwitchIngresses {
    /// What the sets hold now.
    admitted: Mutex<BTreeSet<SocketAddr>>,
}

impl KillSwitchIngresses {
    /// The sets as the kill switch was installed with them.
    pub fn new(installed: BTreeSet<SocketAddr>) -> Self {
        KillSwitchIngresses {
            admitted: Mutex::new(installed),
        }
    }

    /// Replaces the sets' contents with `ingresses` (in one transaction).
    pub fn replace(&self, ingresses: &BTreeSet<SocketAddr>) -> Result<(), CommandError> {
        let mut admitted = self
            .admitted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *admitted == *ingresses {
            return Ok(());
        }
        run_command(
            "nft",
            &["-f", "-"],
            Some(&plan::ingress_sets_update(ingresses)),
        )?;
        info!(
            ingresses = ingresses.len(),
            "kill switch: the client's packets may reach these ingresses only"
        );
        admitted.clone_from(ingresses);
        Ok(())
    }
}

impl IngressFilter for KillSwitchIngresses {
    fn admit_only(&self, ingresses: &BTreeSet<SocketAddr>) {
        // On failure the old sets stay: new ingresses stay unreachable (the
        // kill switch fails closed) and the next change tries again.
        if let Err(e) = self.replace(ingresses) {
            warn!(error = %e, "cannot update the kill switch's ingresses");
        }
    }
}
