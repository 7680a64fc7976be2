//! The server side of an established connect-udp request (RFC 9298 §5): the
//! request's HTTP datagrams become UDP payloads on a connected socket, and the
//! socket's datagrams come back as HTTP datagrams. DATAGRAM capsules on the
//! request stream (RFC 9297 §3.5) are accepted too. The ingress bridges to an
//! egress relay, the egress to a destination; neither looks inside payloads.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use h3::server::RequestStream;
use openrelay_wire::{capsule, datagram::UDP_PAYLOAD_CONTEXT, varint};
use quinn::udp::RecvMeta;
use std::io::IoSliceMut;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::datagrams::{DatagramRouter, DatagramSender, DatagramSink, RouteError};
use crate::throttle_for_tests::ThrottleForTests;

/// Room for one received message: a GRO burst is at most 64 KiB.
const RECEIVE_BUFFER: usize = 65_536;
/// Messages taken per receive call (recvmmsg).
const RECEIVE_BATCH: usize = 4;

thread_local! {
    /// The receive buffer of every bridge that runs on this thread
    /// (`RECEIVE_BATCH` GRO bursts, 256 KiB), allocated on first use.
    ///
    /// A bridge needs it only between a receive and the last send of what
    /// was received, which is synchronous (no await in between), so one
    /// buffer per worker thread serves every flow: an idle flow holds none
    /// (a buffer per flow cost 256 KiB each, 256 MiB for a connection's
    /// 1,024 flows).
    static RECEIVE_STORAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };

    /// Where a bridge lays out a GSO send of the client's datagrams, shared
    /// by the bridges of a thread as `RECEIVE_STORAGE` is (a send is
    /// synchronous too).
    static SEND_STORAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Most payload bytes in one GSO send: the UDP length field bounds the
/// whole burst (64 KiB less the IP and UDP headers).
const GSO_BYTES: usize = 65_000;

/// How a bridged flow ended; reported as an aggregate, never with addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeEnd {
    /// The client closed or reset the request stream.
    ClientClosed,
    /// Nothing crossed the bridge for the idle timeout.
    Idle,
    /// The request stream carried a malformed capsule (RFC 9297 §3.3).
    MalformedCapsule,
    /// The socket failed (e.g. ICMP unreachable from the far side).
    SocketError,
    /// The bridge's owner is shutting down.
    Shutdown,
}

/// Bytes carried by a bridge, for aggregate accounting.
#[derive(Debug, Default)]
pub struct BridgeCounters {
    /// Payload bytes from the client side to the socket.
    pub bytes_out: AtomicU64,
    /// Payload bytes from the socket to the client side.
    pub bytes_in: AtomicU64,
}

struct SocketSink {
    socket: Arc<UdpSocket>,
    state: Arc<quinn::udp::UdpSocketState>,
    /// The socket's peer (it is connected): GSO sends name it.
    peer: std::net::SocketAddr,
    clock: Arc<ActivityClock>,
    counters: Arc<BridgeCounters>,
    throttle: Option<Arc<ThrottleForTests>>,
}

impl SocketSink {
    /// Whether the test throttle lets `len` bytes pass. A datagram cannot
    /// wait here (the connection's router hands it over): over the rate it
    /// is dropped, as a policer does.
    fn admits(&self, len: usize) -> bool {
        self.throttle.as_ref().is_none_or(|t| t.try_take(len))
    }

    fn sent(&self, bytes: usize) {
        self.clock.touch();
        self.counters
            .bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Sends `payloads` (each admitted already) in as few system calls as
    /// GSO allows: each run of equal-sized payloads, the last of a run
    /// possibly shorter (UDP_SEGMENT's rule), goes out in one send.
    fn send_gso(&self, payloads: &[&Bytes], storage: &mut Vec<u8>) {
        let max_segments = self.state.max_gso_segments().max(1);
        let mut rest = payloads;
        while let Some(first) = rest.first() {
            let size = first.len().max(1);
            let mut count = 1;
            while count < rest.len()
                && count < max_segments
                && (count + 1) * size <= GSO_BYTES
                && rest[count - 1].len() == size
                && rest[count].len() <= size
                // An empty datagram would vanish as a burst's last segment.
                && !rest[count].is_empty()
            {
                count += 1;
            }
            let (burst, tail) = rest.split_at(count);
            rest = tail;
            if let [one] = burst {
                // try_send: a full socket buffer drops the datagram, as UDP does.
                if self.socket.try_send(one).is_ok() {
                    self.sent(one.len());
                }
                continue;
            }
            storage.clear();
            for payload in burst {
                storage.extend_from_slice(payload);
            }
            let transmit = quinn::udp::Transmit {
                destination: self.peer,
                ecn: None,
                contents: storage,
                segment_size: Some(size),
                src_ip: None,
            };
            let sent = self.socket.try_io(Interest::WRITABLE, || {
                self.state.send((&*self.socket).into(), &transmit)
            });
            if sent.is_ok() {
                self.sent(storage.len());
            }
        }
    }
}

impl DatagramSink for SocketSink {
    fn deliver(&self, payload: Bytes) {
        self.deliver_batch(std::slice::from_ref(&payload));
    }

    fn deliver_batch(&self, payloads: &[Bytes]) {
        let admitted: Vec<&Bytes> = payloads.iter().filter(|p| self.admits(p.len())).collect();
        SEND_STORAGE.with(|storage| match storage.try_borrow_mut() {
            Ok(mut storage) => self.send_gso(&admitted, &mut storage),
            // Not reachable (a send does not call back into a bridge), but
            // a fresh buffer is correct where a panic is not.
            Err(_) => self.send_gso(&admitted, &mut Vec::new()),
        });
    }
}

/// Last activity, as milliseconds since the bridge started.
struct ActivityClock {
    start: Instant,
    last_ms: AtomicU64,
}

impl ActivityClock {
    fn new() -> Self {
        ActivityClock {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Bridges request `stream` (already answered with 2xx) to `socket` until one
/// side ends, the flow idles out, or `shutdown` resolves. The stream is
/// borrowed: the caller keeps it (one copy per flow, not one per nested
/// future). With `throttle` (a relay's `[throttle_for_tests]`), the socket
/// is read only while the bucket is out of debt (shaping) and datagrams
/// towards it beyond the rate are dropped (policing).
#[allow(clippy::too_many_arguments)]
pub async fn run<S>(
    router: &Arc<DatagramRouter>,
    connection: quinn::Connection,
    stream: &mut RequestStream<S, Bytes>,
    socket: Arc<UdpSocket>,
    idle_timeout: Duration,
    counters: Arc<BridgeCounters>,
    throttle: Option<Arc<ThrottleForTests>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<BridgeEnd, RouteError>
where
    S: h3::quic::RecvStream + h3::quic::SendStream<Bytes>,
{
    let stream_id = stream.id().into_inner();
    let sender = DatagramSender::new(connection, stream_id)?;
    let clock = Arc::new(ActivityClock::new());
    // GRO on receives and GSO on sends (quinn-udp enables and detects both).
    let (Ok(state), Ok(peer)) = (
        quinn::udp::UdpSocketState::new((&*socket).into()),
        socket.peer_addr(),
    ) else {
        return Ok(BridgeEnd::SocketError);
    };
    let state = Arc::new(state);
    let sink = Arc::new(SocketSink {
        socket: Arc::clone(&socket),
        state: Arc::clone(&state),
        peer,
        clock: Arc::clone(&clock),
        counters: Arc::clone(&counters),
        throttle: throttle.clone(),
    });
    let _route = router.register(stream_id, sink.clone())?;

    let socket_to_client = async {
        let throttle = throttle.as_deref();
        loop {
            if let Some(throttle) = throttle {
                throttle.ready().await;
            }
            if socket.readable().await.is_err() {
                return BridgeEnd::SocketError;
            }
            let forwarded = RECEIVE_STORAGE.with(|storage| match storage.try_borrow_mut() {
                Ok(mut storage) => {
                    receive_and_forward(&socket, &state, &mut storage, &sender, &counters, throttle)
                }
                // Not reachable (nothing below awaits or calls back into a
                // bridge), but a fresh buffer is correct where a panic is not.
                Err(_) => receive_and_forward(
                    &socket,
                    &state,
                    &mut Vec::new(),
                    &sender,
                    &counters,
                    throttle,
                ),
            });
            match forwarded {
                Ok(true) => clock.touch(),
                Ok(false) => {}
                // A connected UDP socket reports ICMP errors from earlier sends
                // (e.g. nobody listens there any more): the flow is over.
                Err(_) => return BridgeEnd::SocketError,
            }
        }
    };

    let client_stream = async {
        let mut pending = BytesMut::new();
        loop {
            match stream.recv_data().await {
                Ok(Some(mut data)) => {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        pending.extend_from_slice(chunk);
                        let n = chunk.len();
                        data.advance(n);
                    }
                    if drain_capsules(&mut pending, &sink).is_err() {
                        // A malformed capsule makes the request malformed
                        // (RFC 9297 §3.3): the stream is reset here, and
                        // dropping it stops the peer's side. Resetting
                        // and dropping asks nothing of the stream type
                        // (h3-quinn's, used before `h3guard`, panicked on
                        // `stop_sending` while a read was in flight: found
                        // by openrelay-abuse's malformed-capsules attack).
                        stream.stop_stream(h3::error::Code::H3_DATAGRAM_ERROR);
                        return BridgeEnd::MalformedCapsule;
                    }
                }
                Ok(None) | Err(_) => return BridgeEnd::ClientClosed,
            }
        }
    };

    let idle = async {
        let tick = (idle_timeout / 4).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(tick).await;
            if clock.idle_for() >= idle_timeout {
                return BridgeEnd::Idle;
            }
        }
    };

    let end = tokio::select! {
        end = socket_to_client => end,
        end = client_stream => end,
        end = idle => end,
        () = shutdown => BridgeEnd::Shutdown,
    };
    Ok(end)
}

/// Receives what `socket` holds (up to `RECEIVE_BATCH` messages, each a GRO
/// burst of same-size datagrams `stride` apart: one syscall per burst, not
/// per packet) into `storage` and sends every datagram to the client,
/// charging `throttle` for them. `Ok(false)`: nothing was there after all.
fn receive_and_forward(
    socket: &UdpSocket,
    state: &quinn::udp::UdpSocketState,
    storage: &mut Vec<u8>,
    sender: &DatagramSender,
    counters: &BridgeCounters,
    throttle: Option<&ThrottleForTests>,
) -> std::io::Result<bool> {
    if storage.len() < RECEIVE_BUFFER * RECEIVE_BATCH {
        storage.resize(RECEIVE_BUFFER * RECEIVE_BATCH, 0);
    }
    let mut chunks = storage.chunks_mut(RECEIVE_BUFFER);
    let mut bufs: [IoSliceMut<'_>; RECEIVE_BATCH] =
        std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
    let mut meta = [RecvMeta::default(); RECEIVE_BATCH];
    let received = socket.try_io(Interest::READABLE, || {
        state.recv(socket.into(), &mut bufs, &mut meta)
    });
    let count = match received {
        Ok(count) => count,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
        Err(e) => return Err(e),
    };
    for (buf, meta) in bufs.iter().zip(&meta).take(count) {
        if let Some(throttle) = throttle {
            throttle.charge(meta.len);
        }
        counters
            .bytes_in
            .fetch_add(meta.len as u64, Ordering::Relaxed);
        // Too large for the client's path or connection gone: drop it, as
        // a router would; the far side's transport recovers.
        let _ = sender.send_segments(&buf[..meta.len], meta.stride);
    }
    Ok(true)
}

/// Consumes complete capsules from `pending`. DATAGRAM capsules (RFC 9297
/// §3.5) carry what an HTTP datagram would: a context ID then the payload;
/// unknown capsule types are skipped (RFC 9297 §3.2).
fn drain_capsules(pending: &mut BytesMut, sink: &SocketSink) -> Result<(), capsule::CapsuleError> {
    loop {
        let (payload, used) = match capsule::decode(pending)? {
            None => return Ok(()),
            Some((c, used)) if c.capsule_type == capsule::DATAGRAM => {
                let payload = match varint::decode(c.value) {
                    Ok((UDP_PAYLOAD_CONTEXT, n)) => Some(Bytes::copy_from_slice(&c.value[n..])),
                    _ => None,
                };
                (payload, used)
            }
            Some((_, used)) => (None, used),
        };
        pending.advance(used);
        if let Some(payload) = payload {
            sink.deliver(payload);
        }
    }
}
