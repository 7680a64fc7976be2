//! HTTP Datagrams (RFC 9297 §2.1) on one QUIC connection: every datagram starts
//! with the quarter stream ID of the request it belongs to, then (for
//! connect-udp, RFC 9298 §4) a context ID; context 0 carries a UDP payload.
//!
//! [`DatagramRouter`] reads a connection's datagrams and hands each payload to
//! the sink registered for its request; [`DatagramSender`] frames payloads for
//! one request. Payloads are sliced out of the received buffer, not copied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::FutureExt;
use openrelay_wire::datagram::{self, UDP_PAYLOAD_CONTEXT};
use tokio::sync::mpsc;

use crate::early_datagrams::{EarlyDatagrams, EarlyLimits};

/// Receives the payloads of one request's datagrams. Must not block: a sink
/// that cannot take a datagram drops it, as a UDP socket would.
pub trait DatagramSink: Send + Sync + 'static {
    /// Takes one payload.
    fn deliver(&self, payload: Bytes);

    /// Takes payloads that arrived together, in order. A sink that can pass
    /// them on in one operation (a UDP socket with GSO) overrides this.
    fn deliver_batch(&self, payloads: &[Bytes]) {
        for payload in payloads {
            self.deliver(payload.clone());
        }
    }
}

impl DatagramSink for mpsc::Sender<Bytes> {
    fn deliver(&self, payload: Bytes) {
        // A full queue means the consumer is behind: drop, like a UDP socket buffer.
        let _ = self.try_send(payload);
    }
}

/// Why a request could not be given a datagram route or sender.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// Only client-initiated bidirectional streams carry requests (RFC 9297 §2.1).
    #[error("stream {0} cannot carry HTTP datagrams")]
    NotARequestStream(u64),
    /// Another request already holds this stream's route.
    #[error("a datagram route for stream {0} exists already")]
    Duplicate(u64),
}

type Routes = RwLock<HashMap<u64, Arc<dyn DatagramSink>>>;

/// Dispatches a connection's incoming HTTP datagrams by quarter stream ID.
#[derive(Default)]
pub struct DatagramRouter {
    routes: Routes,
    /// Datagrams for requests without a route yet, if this router holds
    /// them ([`DatagramRouter::holding_early`]).
    early: Option<Mutex<EarlyDatagrams>>,
}

impl std::fmt::Debug for DatagramRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let routes = self.routes.read().map(|r| r.len()).unwrap_or(0);
        f.debug_struct("DatagramRouter")
            .field("routes", &routes)
            .finish()
    }
}

/// Keeps a route registered; dropping it removes the route.
#[derive(Debug)]
pub struct Route {
    router: Arc<DatagramRouter>,
    quarter_stream_id: u64,
}

impl Drop for Route {
    fn drop(&mut self) {
        if let Ok(mut routes) = self.router.routes.write() {
            routes.remove(&self.quarter_stream_id);
        }
    }
}

impl DatagramRouter {
    /// An empty router; datagrams for requests without a route are dropped.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// An empty router that holds datagrams for requests without a route
    /// yet within `limits`, for the route registered when the request is
    /// admitted ([`crate::early_datagrams`]; RFC 9297 §2.1, RFC 9298 §5).
    pub fn holding_early(limits: EarlyLimits) -> Arc<Self> {
        Arc::new(DatagramRouter {
            routes: Routes::default(),
            early: Some(Mutex::new(EarlyDatagrams::new(limits))),
        })
    }

    fn early(&self) -> Option<std::sync::MutexGuard<'_, EarlyDatagrams>> {
        let early = self.early.as_ref()?;
        Some(
            early
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Drops the datagrams held for request stream `stream_id`: it was
    /// refused (or is over), and nothing it sent early may be forwarded.
    pub fn discard_early(&self, stream_id: u64) {
        if let (Ok(quarter_stream_id), Some(mut early)) =
            (datagram::quarter_stream_id(stream_id), self.early())
        {
            early.discard(quarter_stream_id);
        }
    }

    /// Datagrams held now for requests without a route.
    pub fn early_len(&self) -> usize {
        self.early().map_or(0, |early| early.len())
    }

    /// Sends the datagrams of request stream `stream_id` to `sink` until the
    /// returned [`Route`] is dropped.
    pub fn register(
        self: &Arc<Self>,
        stream_id: u64,
        sink: Arc<dyn DatagramSink>,
    ) -> Result<Route, RouteError> {
        let quarter_stream_id = datagram::quarter_stream_id(stream_id)
            .map_err(|_| RouteError::NotARequestStream(stream_id))?;
        let mut routes = self
            .routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if routes.contains_key(&quarter_stream_id) {
            return Err(RouteError::Duplicate(stream_id));
        }
        // Delivered under the routes' lock, so none of the request's later
        // datagrams overtakes them.
        if let Some(mut early) = self.early() {
            for payload in early.take(quarter_stream_id, Instant::now()) {
                sink.deliver(payload);
            }
        }
        routes.insert(quarter_stream_id, sink);
        Ok(Route {
            router: Arc::clone(self),
            quarter_stream_id,
        })
    }

    /// Number of registered routes.
    pub fn len(&self) -> usize {
        self.routes.read().map(|r| r.len()).unwrap_or(0)
    }

    /// Whether no route is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Delivers one received datagram. Datagrams that do not parse or carry
    /// an unknown context ID (RFC 9298 §4: may be dropped) are dropped;
    /// those that name no registered request (RFC 9297 §2.1: dropped, or
    /// held briefly) are held if this router holds early datagrams.
    pub fn dispatch(&self, datagram: Bytes) {
        self.dispatch_batch(std::iter::once(datagram));
    }

    /// Delivers datagrams that arrived together: each run of consecutive
    /// payloads for one request reaches its sink in one
    /// [`DatagramSink::deliver_batch`]. Payloads are slices of the
    /// datagrams, not copies. Dropped as in [`Self::dispatch`].
    pub fn dispatch_batch(&self, datagrams: impl IntoIterator<Item = Bytes>) {
        let mut run: Vec<Bytes> = Vec::new();
        let mut run_id = None;
        // The sink is looked up per run and called without the lock held.
        let flush = |run: &mut Vec<Bytes>, id: Option<u64>| {
            let Some(id) = id.filter(|_| !run.is_empty()) else {
                return;
            };
            let routes = self
                .routes
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match routes.get(&id).cloned() {
                Some(sink) => {
                    drop(routes);
                    sink.deliver_batch(run);
                }
                // Held under the routes' lock: a route registered meanwhile
                // would otherwise never see them.
                None => {
                    if let Some(mut early) = self.early() {
                        let now = Instant::now();
                        for payload in run.iter() {
                            early.hold(id, payload, now);
                        }
                    }
                }
            }
            run.clear();
        };
        for datagram in datagrams {
            let (quarter_stream_id, offset) = match datagram::decode(&datagram) {
                Ok(d) if d.context_id == UDP_PAYLOAD_CONTEXT => {
                    (d.quarter_stream_id, datagram.len() - d.payload.len())
                }
                Ok(_) | Err(_) => continue,
            };
            if run_id != Some(quarter_stream_id) {
                flush(&mut run, run_id);
                run_id = Some(quarter_stream_id);
            }
            run.push(datagram.slice(offset..));
        }
        flush(&mut run, run_id);
    }

    /// Reads `connection`'s datagrams until it closes; returns why it closed.
    /// What has arrived by the time one datagram is read is dispatched with
    /// it (up to [`DISPATCH_BATCH`]), so sinks can batch their sends.
    pub async fn run(self: Arc<Self>, connection: quinn::Connection) -> quinn::ConnectionError {
        let mut batch = Vec::with_capacity(DISPATCH_BATCH);
        loop {
            match connection.read_datagram().await {
                Ok(datagram) => batch.push(datagram),
                Err(e) => return e,
            }
            // Already received: ready at once, or nothing more is queued.
            while batch.len() < DISPATCH_BATCH {
                match connection.read_datagram().now_or_never() {
                    Some(Ok(datagram)) => batch.push(datagram),
                    // An error is returned by the next read above.
                    Some(Err(_)) | None => break,
                }
            }
            self.dispatch_batch(batch.drain(..));
        }
    }
}

/// Most datagrams [`DatagramRouter::run`] takes from its connection before
/// dispatching them: one GSO send's worth (quinn-udp sends at most 64
/// segments in one system call).
pub const DISPATCH_BATCH: usize = 64;

/// Frames payloads as HTTP datagrams of one request, context 0.
#[derive(Debug, Clone)]
pub struct DatagramSender {
    connection: quinn::Connection,
    header: Bytes,
}

impl DatagramSender {
    /// A sender for request stream `stream_id` of `connection`.
    pub fn new(connection: quinn::Connection, stream_id: u64) -> Result<Self, RouteError> {
        let quarter_stream_id = datagram::quarter_stream_id(stream_id)
            .map_err(|_| RouteError::NotARequestStream(stream_id))?;
        let mut header = BytesMut::with_capacity(16);
        datagram::encode_header(quarter_stream_id, UDP_PAYLOAD_CONTEXT, &mut header)
            .map_err(|_| RouteError::NotARequestStream(stream_id))?;
        Ok(DatagramSender {
            connection,
            header: header.freeze(),
        })
    }

    /// Queues one payload. Payloads too large for the path are refused with
    /// `TooLarge`; the caller decides whether that is an error (for
    /// tunnelled QUIC it is a lost packet).
    pub fn send(&self, payload: &[u8]) -> Result<(), quinn::SendDatagramError> {
        self.send_segments(payload, payload.len())
    }

    /// Queues every `segment`-byte piece of `contents` (the last may be
    /// shorter) as one payload: a GSO burst as received (GRO) or as a QUIC
    /// endpoint hands it over. The framed datagrams share one allocation,
    /// and each payload is copied once, next to its header, which quinn
    /// needs contiguous. A payload too large for the path is dropped
    /// (`TooLarge`, reported once the rest is queued); any other error
    /// stops at once.
    pub fn send_segments(
        &self,
        contents: &[u8],
        segment: usize,
    ) -> Result<(), quinn::SendDatagramError> {
        let segment = segment.max(1);
        let count = contents.len().div_ceil(segment);
        let mut buf = BytesMut::with_capacity(count.max(1) * self.header.len() + contents.len());
        let mut result = Ok(());
        // `chunks` yields nothing for an empty slice, but an empty payload
        // is a datagram too (a zero-length UDP datagram).
        let payloads = contents
            .chunks(segment)
            .chain(contents.is_empty().then_some(contents));
        for payload in payloads {
            buf.put_slice(&self.header);
            buf.put_slice(payload);
            match self.connection.send_datagram(buf.split().freeze()) {
                Ok(()) => {}
                Err(quinn::SendDatagramError::TooLarge) => {
                    result = Err(quinn::SendDatagramError::TooLarge);
                }
                Err(e) => return Err(e),
            }
        }
        result
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn framed(quarter: u64, context: u64, payload: &[u8]) -> Bytes {
        let mut buf = BytesMut::new();
        datagram::encode_header(quarter, context, &mut buf).unwrap();
        buf.put_slice(payload);
        buf.freeze()
    }

    #[test]
    fn datagrams_reach_the_route_of_their_stream() {
        let router = DatagramRouter::new();
        let (tx4, mut rx4) = mpsc::channel(4);
        let (tx8, mut rx8) = mpsc::channel(4);
        let _r4 = router.register(4, Arc::new(tx4)).unwrap();
        let _r8 = router.register(8, Arc::new(tx8)).unwrap();
        router.dispatch(framed(1, 0, b"one"));
        router.dispatch(framed(2, 0, b"two"));
        router.dispatch(framed(2, 5, b"unknown context"));
        router.dispatch(framed(9, 0, b"no such stream"));
        router.dispatch(Bytes::from_static(&[0x40]));
        assert_eq!(rx4.try_recv().unwrap(), Bytes::from_static(b"one"));
        assert_eq!(rx8.try_recv().unwrap(), Bytes::from_static(b"two"));
        assert!(rx4.try_recv().is_err());
        assert!(rx8.try_recv().is_err());
    }

    /// Records each batch it is handed.
    #[derive(Default)]
    struct Batches(std::sync::Mutex<Vec<Vec<Bytes>>>);

    impl DatagramSink for Batches {
        fn deliver(&self, payload: Bytes) {
            self.deliver_batch(&[payload]);
        }

        fn deliver_batch(&self, payloads: &[Bytes]) {
            self.0.lock().unwrap().push(payloads.to_vec());
        }
    }

    #[test]
    fn consecutive_datagrams_of_one_request_reach_its_sink_together() {
        let router = DatagramRouter::new();
        let (four, eight) = (Arc::new(Batches::default()), Arc::new(Batches::default()));
        let _r4 = router.register(4, four.clone()).unwrap();
        let _r8 = router.register(8, eight.clone()).unwrap();
        router.dispatch_batch([
            framed(1, 0, b"a"),
            framed(1, 0, b"b"),
            framed(1, 7, b"unknown context: skipped"),
            framed(1, 0, b"c"),
            framed(2, 0, b"d"),
            framed(9, 0, b"no such stream"),
            framed(1, 0, b"e"),
        ]);
        let b = Bytes::from_static;
        assert_eq!(
            *four.0.lock().unwrap(),
            [vec![b(b"a"), b(b"b"), b(b"c")], vec![b(b"e")]]
        );
        assert_eq!(*eight.0.lock().unwrap(), [vec![b(b"d")]]);
    }

    #[test]
    fn a_dropped_route_stops_delivery() {
        let router = DatagramRouter::new();
        let (tx, mut rx) = mpsc::channel(4);
        let route = router.register(0, Arc::new(tx)).unwrap();
        assert!(router.register(0, Arc::new(mpsc::channel(1).0)).is_err());
        drop(route);
        assert!(router.is_empty());
        router.dispatch(framed(0, 0, b"late"));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn early_datagrams_wait_for_their_route_or_are_discarded() {
        let router = DatagramRouter::holding_early(EarlyLimits::RELAY);
        router.dispatch(framed(1, 0, b"early"));
        router.dispatch(framed(2, 0, b"refused"));
        assert_eq!(router.early_len(), 2);
        router.discard_early(8);
        let (tx, mut rx) = mpsc::channel(4);
        let _route = router.register(4, Arc::new(tx)).unwrap();
        router.dispatch(framed(1, 0, b"later"));
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"early"));
        assert_eq!(rx.try_recv().unwrap(), Bytes::from_static(b"later"));
        assert_eq!(router.early_len(), 0);
        // Without holding, a datagram ahead of its route is gone.
        let plain = DatagramRouter::new();
        plain.dispatch(framed(1, 0, b"early"));
        let (tx, mut rx) = mpsc::channel(4);
        let _route = plain.register(4, Arc::new(tx)).unwrap();
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn only_request_streams_get_routes() {
        let router = DatagramRouter::new();
        for stream in [1, 2, 3, 6] {
            assert!(
                router
                    .register(stream, Arc::new(mpsc::channel(1).0))
                    .is_err()
            );
        }
    }
}
