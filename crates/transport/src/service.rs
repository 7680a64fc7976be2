//! The one service runner every openrelay server uses (both relays, the
//! registry, its validators, the issuer): bind with the server's tuning and
//! limits, start its background tasks, serve until shutdown, report the
//! final connection statistics.
//!
//! Background tasks (key refreshers, settlement, proposers, publishers) are
//! owned by the [`Service`] in a [`JoinSet`]: they end when serving ends,
//! and also when the future serving them is cancelled or the service is
//! dropped before it served, so no task outlives its server. No caller
//! aborts a task by hand.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openrelay_config::LimitsConfig;

use tokio::task::JoinSet;

use crate::endpoint::Tuning;
use crate::identity::Identity;
use crate::limits::ServerLimits;
use crate::server::{self, Listener, RequestHandler, ServerCounters, StartError};

/// A bound server and the background tasks that live as long as it serves.
#[derive(Debug)]
pub struct Service {
    listener: Listener,
    tasks: JoinSet<()>,
}

/// What a server saw, once it stopped (for its final log line).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Connections whose handshake completed.
    pub connections: u64,
    /// Connection attempts refused by a connection limit.
    pub refused: u64,
    /// Connection attempts asked to prove their address (QUIC Retry).
    pub retries: u64,
}

impl ServiceStats {
    /// Logs these counts with `message` (e.g. "registry stopped").
    pub fn log(&self, message: &str) {
        tracing::info!(
            connections = self.connections,
            connections_refused = self.refused,
            retries = self.retries,
            "{message}"
        );
    }
}

impl Service {
    /// Binds `listen` with `identity`, `tuning` and `limits` (see
    /// [`server::bind`]); nothing is served and no task runs yet.
    pub fn bind(
        listen: SocketAddr,
        identity: &Identity,
        tuning: &Tuning,
        limits: ServerLimits,
    ) -> Result<Self, StartError> {
        Ok(Service {
            listener: server::bind(listen, identity, tuning, limits)?,
            tasks: JoinSet::new(),
        })
    }

    /// An openrelay service's endpoint (the registry, a validator, the
    /// issuer): [`ServerLimits::service`] with the config's `[limits]`,
    /// relay tuning with packets of at most `mtu` (clients that reach it
    /// through their relays need [`crate::endpoint::TUNNELLED_MTU`]).
    pub fn bind_service(
        listen: SocketAddr,
        identity: &Identity,
        mtu: u16,
        limits: &LimitsConfig,
    ) -> Result<Self, StartError> {
        let tuning = Tuning::relay(Duration::from_secs(30), mtu);
        Self::bind(
            listen,
            identity,
            &tuning,
            ServerLimits::service().with_config(limits),
        )
    }

    /// The bound address (useful when listening on port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs `task` in the background for as long as this service lives: it
    /// is aborted when serving ends, when the serving future is cancelled,
    /// or when the service is dropped unserved.
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Serves requests with `handler` until `shutdown` resolves (see
    /// [`server::serve`]), then stops the background tasks and returns what
    /// the server saw.
    pub async fn serve<H: RequestHandler>(
        self,
        handler: Arc<H>,
        shutdown: impl Future<Output = ()>,
    ) -> ServiceStats {
        let Service { listener, tasks } = self;
        let counters = Arc::new(ServerCounters::default());
        server::serve(listener, handler, Arc::clone(&counters), shutdown).await;
        // Dropping the set aborts every task still running.
        drop(tasks);
        ServiceStats {
            connections: counters.connections.load(Ordering::Relaxed),
            refused: counters.refused.load(Ordering::Relaxed),
            retries: counters.retries.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::endpoint::OUTER_MTU;
    use crate::server::{RequestContext, ServerStream};

    struct Nothing;

    impl RequestHandler for Nothing {
        async fn handle(
            self: Arc<Self>,
            _request: http::Request<()>,
            _stream: ServerStream,
            _context: RequestContext,
        ) {
        }
    }

    /// A background task that reports (through a channel it holds) when it
    /// is dropped: aborted, not leaked.
    fn watched(service: &mut Service) -> tokio::sync::oneshot::Receiver<()> {
        let (sender, dropped) = tokio::sync::oneshot::channel::<()>();
        service.spawn(async move {
            let _sender = sender;
            std::future::pending::<()>().await;
        });
        dropped
    }

    fn bound() -> Service {
        let identity = Identity::generate().unwrap();
        let tuning = Tuning::relay(Duration::from_secs(30), OUTER_MTU);
        Service::bind(
            "127.0.0.1:0".parse().unwrap(),
            &identity,
            &tuning,
            ServerLimits::service(),
        )
        .unwrap()
    }

    async fn ended(dropped: tokio::sync::oneshot::Receiver<()>) -> bool {
        // The sender is dropped (an error for the receiver) once the task is.
        tokio::time::timeout(Duration::from_secs(5), dropped)
            .await
            .is_ok_and(|received| received.is_err())
    }

    #[tokio::test]
    async fn background_tasks_end_when_serving_ends() {
        let mut service = bound();
        let dropped = watched(&mut service);
        let stats = service.serve(Arc::new(Nothing), async {}).await;
        assert_eq!(stats, ServiceStats::default());
        assert!(ended(dropped).await);
    }

    #[tokio::test]
    async fn background_tasks_end_when_the_serving_future_is_cancelled() {
        let mut service = bound();
        let dropped = watched(&mut service);
        let serving = tokio::spawn(service.serve(Arc::new(Nothing), std::future::pending()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        serving.abort();
        assert!(ended(dropped).await);
    }

    #[tokio::test]
    async fn background_tasks_end_when_the_service_is_dropped_unserved() {
        let mut service = bound();
        let dropped = watched(&mut service);
        drop(service);
        assert!(ended(dropped).await);
    }
}
