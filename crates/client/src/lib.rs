#![doc = include_str!("../README.md")]

pub mod access;
pub mod account;
pub mod attestation;
mod backoff;
pub mod chain_check;
pub mod control;
pub mod controller;
pub mod directory;
pub mod flow;
pub mod http_proxy;
pub mod login;
pub mod manager;
pub mod path;
pub mod refill;
pub mod relay;
pub mod selection;
pub mod socks;
pub mod stocking;
pub mod wallet;

use openrelay_types::error::{ErrorKind, HasKind};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use openrelay_config::ClientConfig;
use tokio::net::TcpListener;
use tracing::info;

pub use flow::FlowError;
pub use manager::{IngressFilter, PathError, PathManager, PathSnapshot};

/// Why the client could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A local listener could not be bound.
    #[error("cannot listen on {addr} ({what})")]
    Listen {
        /// `socks` or `http`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The directory settings are unusable.
    #[error(transparent)]
    Directory(#[from] directory::DirectoryConfigError),
    /// The control socket could not be set up.
    #[error(transparent)]
    Control(#[from] control::ControlError),
    /// The token wallet cannot be opened.
    #[error(transparent)]
    Wallet(#[from] wallet::WalletError),
    /// The config's `[[relay]]` entries do not make a relay list.
    #[error(transparent)]
    Relays(#[from] relay::RelayConfigError),
}

impl HasKind for ClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Listen { .. } => ErrorKind::Local,
            ClientError::Directory(e) => e.kind(),
            ClientError::Control(e) => e.kind(),
            ClientError::Wallet(e) => e.kind(),
            ClientError::Relays(e) => e.kind(),
        }
    }
}

/// A client with its listeners bound.
#[derive(Debug)]
pub struct Client {
    manager: Arc<PathManager>,
    socks: TcpListener,
    http: TcpListener,
    control: tokio::net::UnixListener,
    directory: Option<Arc<directory::DirectoryFeed>>,
    account: Option<Arc<account::Account>>,
}

impl Client {
    /// Binds the SOCKS5 and HTTP listeners.
    pub async fn bind(config: &ClientConfig) -> Result<Self, ClientError> {
        let listen = |what, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ClientError::Listen { what, addr, source })
        };
        let socks = listen("socks", config.socks).await?;
        let http = listen("http", config.http).await?;
        let control = control::bind(&config.state_dir).await?;
        let directory = match &config.directory {
            Some(settings) => Some(Arc::new(
                directory::DirectoryFeed::new(settings, &config.state_dir)?
                    .judging_attestation(&config.trust),
            )),
            None => None,
        };
        let account = match &config.account {
            Some(settings) => Some(Arc::new(
                account::Account::new(
                    settings.clone(),
                    Arc::new(wallet::Wallet::open(&config.state_dir)?),
                )
                .checked_against(
                    directory
                        .clone()
                        .map(|feed| feed as Arc<dyn directory::VerifiedDirectorySource>),
                ),
            )),
            None => None,
        };
        let access = account
            .clone()
            .map(|account| account as Arc<dyn access::AccessTokens>);
        let manager = Arc::new(PathManager::new(config, access)?);
        if let Some(account) = &account {
            manager.listen(Arc::new(stocking::Payments(Arc::clone(account))));
        }
        Ok(Client {
            manager,
            socks,
            http,
            control,
            directory,
            account,
        })
    }

    /// The SOCKS5 listener's address.
    pub fn socks_addr(&self) -> std::io::Result<SocketAddr> {
        self.socks.local_addr()
    }

    /// The HTTP proxy's address.
    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// The path manager (for status and tests).
    pub fn manager(&self) -> &Arc<PathManager> {
        &self.manager
    }

    /// Serves both proxies until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        info!("client serving");
        let socks = socks::serve(self.socks, Arc::clone(&self.manager));
        let http = http_proxy::serve(self.http, Arc::clone(&self.manager));
        let manager = Arc::clone(&self.manager);
        let wallet = self.account.as_ref().map(|a| Arc::clone(a.wallet()));
        let control = control::serve(
            self.control,
            Arc::new(move || status(&manager, wallet.as_deref())),
        );
        let stock = self.account.map(|account| {
            tokio::spawn(stocking::keep_stocked(account, Arc::clone(&self.manager)))
        });
        let feed = self
            .directory
            .map(|feed| tokio::spawn(feed.run(Arc::clone(&self.manager))));
        let maintenance = tokio::spawn(Arc::clone(&self.manager).run_maintenance());
        tokio::select! {
            () = socks => {}
            () = http => {}
            () = control => {}
            () = shutdown => {}
        }
        if let Some(feed) = feed {
            feed.abort();
        }
        maintenance.abort();
        if let Some(stock) = stock {
            stock.abort();
        }
        self.manager.close();
        info!("client stopped");
    }
}

fn relay_status(relay: &relay::Relay, now: u64) -> control::RelayStatus {
    control::RelayStatus {
        name: relay.name.clone(),
        operator: relay.operator.to_string(),
        address: relay.addr,
        country: relay.region.country.as_deref().map(str::to_owned),
        city: relay.region.city.as_deref().map(str::to_owned),
        measured_bps: relay.measured.map(|m| m.measured_bps),
        measured_age_secs: relay.measured.map(|m| now.saturating_sub(m.measured_at)),
        attestation: Some(relay.attestation.summary()),
    }
}

/// The status the control socket reports.
fn status(manager: &PathManager, wallet: Option<&wallet::Wallet>) -> control::Status {
    let snapshot = manager.snapshot();
    let path = snapshot.latest.as_ref();
    let now = openrelay_types::unix_now();
    control::Status {
        state: match snapshot.state {
            manager::Connectivity::Connected => control::PathState::Connected,
            manager::Connectivity::Connecting => control::PathState::Connecting,
            manager::Connectivity::Disconnected => control::PathState::Disconnected,
        },
        ingress: path.map(|p| relay_status(&p.ingress, now)),
        egress: path.map(|p| relay_status(&p.egress, now)),
        path_age_secs: path.map(|p| p.age().as_secs()),
        live_paths: snapshot.live_paths,
        open_flows: snapshot.open_flows,
        token_balance: wallet.map(wallet::Wallet::balance),
        directory_age_secs: manager
            .directory_issued_at()
            .map(|issued| now.saturating_sub(issued)),
        no_path: snapshot.no_path.as_ref().map(ToString::to_string),
        next_attempt_secs: snapshot
            .next_attempt_in
            .map(|wait| wait.as_secs_f64().ceil() as u64),
    }
}
