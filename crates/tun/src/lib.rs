#![doc = include_str!("../README.md")]

pub mod device;
pub mod dns;
pub mod icmp;
pub mod ingresses;
pub mod journal;
pub mod plan;
pub mod stack;
pub mod system;

use openrelay_types::error::{ErrorKind, HasKind};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openrelay_client::{IngressFilter, PathManager};
use openrelay_config::ClientConfig;
use openrelay_types::RelayRole;
use tracing::{info, warn};

use crate::journal::Change;
use crate::plan::Settings;
use crate::system::{System, SystemError, UndoScope};

/// The pid file `openrelay down` reads, in the client's state directory.
pub const PID_FILE: &str = "tun.pid";

/// Why the VPN could not come up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunError {
    /// A system change failed (everything made so far was undone).
    #[error(transparent)]
    System(#[from] SystemError),
    /// The TUN device could not be created.
    #[error("cannot create the TUN device {name}: {source}")]
    Device {
        /// Its name.
        name: String,
        /// The error.
        source: std::io::Error,
    },
    /// The resolver file or pid file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl HasKind for TunError {
    fn kind(&self) -> ErrorKind {
        match self {
            TunError::System(e) => e.kind(),
            TunError::Device { .. } | TunError::File { .. } => ErrorKind::Local,
        }
    }
}

/// Undoes what a previous run left in `state_dir`'s journal (after a crash,
/// or for `openrelay down`); returns how many changes were undone. The
/// resolver file restored may only be /etc/resolv.conf or `resolver_file`
/// (the config's `tun.dns.resolv_conf`, if known).
pub fn recover(state_dir: &Path, resolver_file: Option<&Path>) -> Result<usize, SystemError> {
    System::new(state_dir).undo_all(&UndoScope::new(resolver_file))
}

/// A VPN that is up: kill switch, device, routes, rules and resolver in place.
pub struct Vpn {
    system: System,
    device: Option<tun_rs::AsyncDevice>,
    stack: stack::StackSettings,
    dns_timeout: Duration,
    state_dir: PathBuf,
    undo_scope: UndoScope,
    /// The kill switch's admitted ingresses (None: no kill switch).
    ingresses: Option<Arc<ingresses::KillSwitchIngresses>>,
}

impl std::fmt::Debug for Vpn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vpn")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl Vpn {
    /// Brings the system changes up, kill switch first, after undoing what a
    /// crashed earlier run left behind. The client's sockets to the ingress
    /// are marked from here on (they must be created after this). On error
    /// everything made so far is undone.
    pub fn up(config: &ClientConfig) -> Result<Vpn, TunError> {
        use std::os::unix::fs::DirBuilderExt;
        let tun = &config.tun;
        let state_dir = config.state_dir.clone();
        // Only its owner may write where the journal lives (`journal`).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&state_dir)
            .map_err(|source| TunError::File {
                path: state_dir.clone(),
                source,
            })?;
        let resolv = (!tun.dns.resolv_conf.is_empty()).then(|| PathBuf::from(&tun.dns.resolv_conf));
        let undo_scope = UndoScope::new(resolv.as_deref());
        let undone = System::new(&state_dir).undo_all(&undo_scope)?;
        if undone > 0 {
            warn!(
                changes = undone,
                "undid the system changes of an earlier run that did not stop cleanly"
            );
        }
        openrelay_transport::udp::set_socket_mark(plan::MARK);
        let system = System::new(&state_dir);
        let settings = Settings {
            device: tun.name.clone(),
            exclude: tun.exclude.clone(),
            lan_access: tun.lan_access,
            kill_switch: tun.kill_switch,
        };
        let mut vpn = Vpn {
            system,
            device: None,
            stack: stack::StackSettings {
                mtu: tun.mtu,
                udp_idle_timeout: Duration::from_secs(tun.udp_idle_timeout_secs),
            },
            dns_timeout: Duration::from_millis(tun.dns.timeout_ms),
            state_dir,
            undo_scope,
            ingresses: None,
        };
        // The config's ingresses (the first path's, or the bootstrap of a
        // directory, whose ingresses the path manager admits as it arrives).
        let ingresses: BTreeSet<SocketAddr> = config
            .relays
            .iter()
            .filter(|r| r.role == RelayRole::Ingress)
            .map(|r| r.addr)
            .collect();
        if let Err(e) = vpn.make(&settings, &ingresses, resolv.as_deref(), tun.mtu) {
            vpn.down();
            return Err(e);
        }
        let pid_file = vpn.state_dir.join(PID_FILE);
        std::fs::write(&pid_file, format!("{}\n", std::process::id())).map_err(|source| {
            TunError::File {
                path: pid_file,
                source,
            }
        })?;
        info!(device = %settings.device, kill_switch = settings.kill_switch, "full-device VPN up");
        Ok(vpn)
    }

    fn make(
        &mut self,
        settings: &Settings,
        ingresses: &BTreeSet<SocketAddr>,
        resolv: Option<&Path>,
        mtu: u16,
    ) -> Result<(), TunError> {
        if settings.kill_switch {
            self.system.apply(
                &Change::Firewall {
                    table: plan::FIREWALL_TABLE.into(),
                },
                Some(&plan::kill_switch(settings, ingresses)),
            )?;
            self.ingresses = Some(Arc::new(ingresses::KillSwitchIngresses::new(
                ingresses.clone(),
            )));
        }
        self.system.apply(
            &Change::Device {
                name: settings.device.clone(),
            },
            None,
        )?;
        let device = device::create(&settings.device, mtu).map_err(|source| TunError::Device {
            name: settings.device.clone(),
            source,
        })?;
        self.device = Some(device);
        for change in plan::routes(settings).iter().chain(&plan::rules(settings)) {
            self.system.apply(change, None)?;
        }
        if let Some(path) = resolv {
            let original = match std::fs::read_to_string(path) {
                Ok(text) => Some(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(source) => {
                    return Err(TunError::File {
                        path: path.to_owned(),
                        source,
                    });
                }
            };
            let text = plan::resolv_conf(original.as_deref().unwrap_or_default());
            self.system.apply(
                &Change::ResolvConf {
                    path: path.to_owned(),
                    original,
                },
                Some(&text),
            )?;
        }
        Ok(())
    }

    /// The kill switch's ingress sets, for the path manager to keep at the
    /// ingresses it may use (None without a kill switch).
    pub fn ingress_filter(&self) -> Option<Arc<dyn IngressFilter>> {
        self.ingresses
            .as_ref()
            .map(|i| Arc::clone(i) as Arc<dyn IngressFilter>)
    }

    /// Runs the userspace stack until the device closes; run it as a task
    /// next to the client and abort it to stop.
    pub fn serve(
        &mut self,
        manager: Arc<PathManager>,
    ) -> impl std::future::Future<Output = ()> + use<> {
        let device = self.device.take();
        let settings = self.stack.clone();
        let resolver = dns::Resolver::new(Arc::clone(&manager), self.dns_timeout);
        async move {
            if let Some(device) = device {
                let packets = device::PacketStream::new(device, settings.mtu);
                stack::run(packets, &settings, manager, resolver).await;
            }
        }
    }

    /// Undoes every change (the kill switch last goes first in the journal,
    /// so it is lifted last).
    pub fn down(self) {
        drop(self.device);
        match self.system.undo_all(&self.undo_scope) {
            Ok(n) => info!(changes = n, "full-device VPN down; system restored"),
            Err(e) => warn!(error = %e, "could not restore everything; `openrelay down` retries"),
        }
        let _ = std::fs::remove_file(self.state_dir.join(PID_FILE));
    }
}
