//! The attacks. Each runs until a deadline from a set of attacker
//! addresses, reconnecting when the target closes a connection, and counts
//! what it did and what the target did to it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use openrelay_wire::target::Target as WireTarget;
use openrelay_wire::{capsule, datagram, masque};
use tokio::time::{Instant, timeout_at};

use crate::h3raw::{self, RawConnection, frame_type, stream_type};
use crate::target::Target;

/// One attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    /// Request streams declaring a 4 GiB HEADERS frame, then zeros without
    /// end (RFC 9114 §7.2.2; a server must bound what it buffers).
    EndlessHeaders,
    /// The same with a reserved frame type (RFC 9114 §7.2.8, which a server
    /// must skip), on request streams and on the control stream.
    EndlessUnknownFrames,
    /// Many connections (10,000 by default), completed and held open.
    Connections,
    /// Request heads that never complete: a HEADERS frame of 4 KiB sent one
    /// byte a second (slowloris).
    Slowloris,
    /// Truncated and overflowing variable-length integers in frame types
    /// and lengths, stream types, SETTINGS, QPACK prefix integers and HTTP
    /// datagram headers, each on a fresh connection.
    MalformedVarints,
    /// Malformed capsules (RFC 9297 §3) on connect-udp streams: lengths
    /// beyond any bound, truncated types, capsules that never complete, a
    /// storm of empty unknown capsules.
    MalformedCapsules,
    /// HTTP datagrams (RFC 9297 §2.1) naming no open request, unparseable
    /// ones and the largest quarter stream ID, as fast as QUIC sends.
    DatagramFlood,
    /// Request streams opened and abandoned: a byte of a frame then
    /// nothing, a whole request whose answer is never read, streams reset
    /// at once.
    AbandonedStreams,
}

impl Attack {
    /// Every attack, in the order a run takes them.
    pub const ALL: [Attack; 8] = [
        Attack::EndlessHeaders,
        Attack::EndlessUnknownFrames,
        Attack::Connections,
        Attack::Slowloris,
        Attack::MalformedVarints,
        Attack::MalformedCapsules,
        Attack::DatagramFlood,
        Attack::AbandonedStreams,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Attack::EndlessHeaders => "endless-headers",
            Attack::EndlessUnknownFrames => "endless-unknown-frames",
            Attack::Connections => "connections",
            Attack::Slowloris => "slowloris",
            Attack::MalformedVarints => "malformed-varints",
            Attack::MalformedCapsules => "malformed-capsules",
            Attack::DatagramFlood => "datagram-flood",
            Attack::AbandonedStreams => "abandoned-streams",
        }
    }
}

/// How hard to attack.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The target.
    pub target: Target,
    /// Attacker addresses; connections take them in turn.
    pub sources: Vec<IpAddr>,
    /// Connections the `connections` attack opens.
    pub connections: usize,
    /// Connections every other attack keeps busy at once.
    pub concurrency: usize,
    /// Streams each attacking connection keeps busy.
    pub streams_per_connection: usize,
    /// Bytes all endless streams together may send (a safety bound, so an
    /// unbounded target cannot fill the machine).
    pub max_bytes: u64,
    /// Where connect-udp requests point: an egress relay for an ingress, a
    /// UDP address for an egress.
    pub tunnel_to: Option<SocketAddr>,
}

/// What an attack did and what the target did to it.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections established.
    pub connections: AtomicU64,
    /// Connection attempts that failed (refused, timed out).
    pub refused: AtomicU64,
    /// Established connections the target closed.
    pub closed_by_target: AtomicU64,
    /// Streams opened.
    pub streams: AtomicU64,
    /// Streams the target stopped or reset.
    pub stopped: AtomicU64,
    /// Bytes written on streams, or datagram bytes queued.
    pub bytes: AtomicU64,
    /// HTTP datagrams sent on the wire.
    pub datagrams: AtomicU64,
}

/// A copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Connections established.
    pub connections: u64,
    /// Connection attempts that failed.
    pub refused: u64,
    /// Established connections the target closed.
    pub closed_by_target: u64,
    /// Streams opened.
    pub streams: u64,
    /// Streams the target stopped or reset.
    pub stopped: u64,
    /// Bytes written on streams.
    pub bytes: u64,
    /// HTTP datagrams sent.
    pub datagrams: u64,
}

impl Counters {
    /// The counts now.
    pub fn tally(&self) -> Tally {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Tally {
            connections: get(&self.connections),
            refused: get(&self.refused),
            closed_by_target: get(&self.closed_by_target),
            streams: get(&self.streams),
            stopped: get(&self.stopped),
            bytes: get(&self.bytes),
            datagrams: get(&self.datagrams),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// How long a connection attempt may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// The attack's shared state: the plan, one client endpoint per attacker
/// address, the counters and the deadline.
struct Run {
    plan: Plan,
    endpoints: Vec<quinn::Endpoint>,
    next: AtomicUsize,
    counters: Arc<Counters>,
    deadline: Instant,
}

impl Run {
    fn over(&self) -> bool {
        Instant::now() >= self.deadline
    }

    fn out_of_bytes(&self) -> bool {
        self.counters.bytes.load(Ordering::Relaxed) >= self.plan.max_bytes
    }

    /// A new attacking connection with `control` as its control stream's
    /// start; `None` (counted) if the target would not have it.
    async fn connect_with_control(&self, control: &[u8]) -> Option<RawConnection> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let endpoint = &self.endpoints[i % self.endpoints.len()];
        let target = &self.plan.target;
        let attempt = RawConnection::connect_with_control(
            endpoint,
            target.addr,
            target.key,
            target.role.mtu(),
            CONNECT_LIMIT,
            control,
        );
        match timeout_at(self.deadline, attempt).await {
            Ok(Ok(connection)) => {
                Counters::add(&self.counters.connections, 1);
                Some(connection)
            }
            Ok(Err(_)) => {
                Counters::add(&self.counters.refused, 1);
                // Do not spin against a target that refuses at once.
                tokio::time::sleep(Duration::from_millis(50)).await;
                None
            }
            Err(_) => None,
        }
    }

    async fn connect(&self) -> Option<RawConnection> {
        self.connect_with_control(&h3raw::control_stream_start())
            .await
    }

    /// Opens a request stream (waiting for stream credit until the
    /// deadline) and writes `bytes`.
    async fn open(
        &self,
        connection: &RawConnection,
        bytes: &[u8],
    ) -> Option<(quinn::SendStream, quinn::RecvStream)> {
        match timeout_at(self.deadline, connection.request(bytes)).await {
            Ok(Ok(streams)) => {
                Counters::add(&self.counters.streams, 1);
                Counters::add(&self.counters.bytes, bytes.len() as u64);
                Some(streams)
            }
            _ => None,
        }
    }

    /// Notes how an attacking connection ended: closed by the target, or
    /// by us at the deadline.
    fn ended(&self, connection: &RawConnection) {
        match connection.connection.close_reason() {
            Some(quinn::ConnectionError::LocallyClosed) | None => {}
            Some(_) => Counters::add(&self.counters.closed_by_target, 1),
        }
    }

    /// Runs `work` on `concurrency` connections at once until the deadline,
    /// each replaced when it ends.
    async fn on_connections<F, Fut>(self: &Arc<Self>, work: F)
    where
        F: Fn(Arc<Run>, RawConnection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let work = Arc::new(work);
        let workers: Vec<_> = (0..self.plan.concurrency.max(1))
            .map(|_| {
                let (run, work) = (Arc::clone(self), Arc::clone(&work));
                tokio::spawn(async move {
                    while !run.over() {
                        let Some(connection) = run.connect().await else {
                            continue;
                        };
                        let handle = connection.connection.clone();
                        let _ = timeout_at(run.deadline, work(Arc::clone(&run), connection)).await;
                        if let Some(reason) = handle.close_reason()
                            && !matches!(reason, quinn::ConnectionError::LocallyClosed)
                        {
                            Counters::add(&run.counters.closed_by_target, 1);
                        }
                        handle.close(quinn::VarInt::from_u32(0x100), b"attack over");
                    }
                })
            })
            .collect();
        for worker in workers {
            let _ = worker.await;
        }
    }
}

/// Runs `attack` per `plan` until `deadline`, counting into `counters`.
pub async fn run(attack: Attack, plan: Plan, counters: Arc<Counters>, deadline: Instant) {
    let endpoints: Vec<quinn::Endpoint> = plan
        .sources
        .iter()
        .filter_map(|source| h3raw::client_endpoint(*source).ok())
        .collect();
    if endpoints.is_empty() {
        return;
    }
    let run = Arc::new(Run {
        plan,
        endpoints,
        next: AtomicUsize::new(0),
        counters,
        deadline,
    });
    match attack {
        Attack::EndlessHeaders => endless(&run, frame_type::HEADERS, false).await,
        Attack::EndlessUnknownFrames => endless(&run, frame_type::RESERVED, true).await,
        Attack::Connections => connections(&run).await,
        Attack::Slowloris => slowloris(&run).await,
        Attack::MalformedVarints => malformed_varints(&run).await,
        Attack::MalformedCapsules => malformed_capsules(&run).await,
        Attack::DatagramFlood => datagram_flood(&run).await,
        Attack::AbandonedStreams => abandoned_streams(&run).await,
    }
    for endpoint in &run.endpoints {
        endpoint.close(quinn::VarInt::from_u32(0x100), b"attack over");
    }
}

/// A frame length no server should buffer: 4 GiB.
const ENDLESS: u64 = 1 << 32;

/// Writes zeros on `send` until the deadline, the byte budget, or the
/// target stops the stream (counted).
async fn zeros(run: &Run, send: &mut quinn::SendStream) {
    let zeros = Bytes::from_static(&[0u8; 16 * 1024]);
    while !run.over() && !run.out_of_bytes() {
        match timeout_at(run.deadline, send.write(&zeros)).await {
            Ok(Ok(n)) => Counters::add(&run.counters.bytes, n as u64),
            Ok(Err(quinn::WriteError::Stopped(_))) => {
                Counters::add(&run.counters.stopped, 1);
                return;
            }
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// Endless frames of `kind` on every stream of each connection (and on the
/// control stream, if `control`); a stopped stream is replaced.
async fn endless(run: &Arc<Run>, kind: u64, control: bool) {
    let header = h3raw::frame_header(kind, ENDLESS);
    run.on_connections(move |run, mut connection| {
        let header = header.clone();
        async move {
            if control && connection.control(&header).await.is_ok() {
                // The control stream itself: a peer that buffers an unknown
                // frame whole on it holds 4 GiB.
                let (run, header) = (Arc::clone(&run), header.clone());
                let raw = connection.connection.clone();
                tokio::spawn(async move {
                    if let Ok(mut send) = raw.open_uni().await {
                        let mut start = Vec::new();
                        h3raw::put_varint(stream_type::RESERVED, &mut start);
                        start.extend_from_slice(&header);
                        if send.write_all(&start).await.is_ok() {
                            zeros(&run, &mut send).await;
                        }
                    }
                });
            }
            let streams: Vec<_> = (0..run.plan.streams_per_connection)
                .map(|_| {
                    let (run, header) = (Arc::clone(&run), header.clone());
                    let raw = connection.connection.clone();
                    tokio::spawn(async move {
                        while !run.over() && !run.out_of_bytes() {
                            let Ok(Ok((mut send, _recv))) =
                                timeout_at(run.deadline, raw.open_bi()).await
                            else {
                                return;
                            };
                            Counters::add(&run.counters.streams, 1);
                            if send.write_all(&header).await.is_err() {
                                return;
                            }
                            zeros(&run, &mut send).await;
                        }
                    })
                })
                .collect();
            for stream in streams {
                let _ = stream.await;
            }
            // Out of bytes or stopped everywhere: hold the connection (and
            // whatever the target buffered for it) until the deadline.
            if connection.connection.close_reason().is_none() {
                tokio::time::sleep_until(run.deadline).await;
            }
            run.ended(&connection);
        }
    })
    .await;
}

/// Opens up to `plan.connections` connections, `concurrency` handshakes at
/// a time (at least 64), and holds them until the deadline.
async fn connections(run: &Arc<Run>) {
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let remaining = Arc::new(AtomicUsize::new(run.plan.connections));
    let workers: Vec<_> = (0..run.plan.concurrency.max(64))
        .map(|_| {
            let (run, held, remaining) =
                (Arc::clone(run), Arc::clone(&held), Arc::clone(&remaining));
            tokio::spawn(async move {
                while !run.over()
                    && remaining
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                {
                    if let Some(connection) = run.connect().await
                        && let Ok(mut held) = held.lock()
                    {
                        held.push(connection);
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    tokio::time::sleep_until(run.deadline).await;
    let held = std::mem::take(&mut *held.lock().unwrap_or_else(|e| e.into_inner()));
    for connection in &held {
        run.ended(connection);
        connection.close();
    }
}

/// HEADERS frames of 4 KiB sent a byte a second on every stream a
/// connection may open.
async fn slowloris(run: &Arc<Run>) {
    run.on_connections(|run, connection| async move {
        let streams: Vec<_> = (0..run.plan.streams_per_connection)
            .map(|_| {
                let run = Arc::clone(&run);
                let raw = connection.connection.clone();
                tokio::spawn(async move {
                    let Ok(Ok((mut send, _recv))) = timeout_at(run.deadline, raw.open_bi()).await
                    else {
                        return;
                    };
                    Counters::add(&run.counters.streams, 1);
                    let mut head = h3raw::frame_header(frame_type::HEADERS, 4096);
                    head.push(0x00);
                    if send.write_all(&head).await.is_err() {
                        return;
                    }
                    while !run.over() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        match send.write_all(&[0x00]).await {
                            Ok(()) => Counters::add(&run.counters.bytes, 1),
                            Err(quinn::WriteError::Stopped(_)) => {
                                Counters::add(&run.counters.stopped, 1);
                                return;
                            }
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        for stream in streams {
            let _ = stream.await;
        }
        run.ended(&connection);
    })
    .await;
}

/// What a malformed-varint case sends, and where.
#[derive(Debug, Clone, Copy)]
enum Malformed {
    /// On a request stream, then FIN.
    Request(&'static [u8]),
    /// As the whole control stream start.
    Control(&'static [u8]),
    /// On a unidirectional stream, then FIN.
    Uni(&'static [u8]),
    /// As an HTTP datagram.
    Datagram(&'static [u8]),
}

/// Each case of [`Attack::MalformedVarints`].
const MALFORMED: [Malformed; 9] = [
    // A frame type cut inside its 8-byte encoding.
    Malformed::Request(&[0xc0, 0x00]),
    // HEADERS, then a length cut inside its 8-byte encoding.
    Malformed::Request(&[0x01, 0xff, 0xff]),
    // HEADERS whose QPACK prefix integer runs past 62 bits (RFC 9204
    // §4.1.1): 12 continuation bytes.
    Malformed::Request(&[
        0x01, 0x0d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ]),
    // HEADERS whose literal name length claims far more than the frame.
    Malformed::Request(&[0x01, 0x06, 0x00, 0x00, 0x27, 0xff, 0xff, 0x7f]),
    // A control stream whose SETTINGS payload ends inside an identifier.
    Malformed::Control(&[0x00, 0x04, 0x01, 0x80]),
    // A control stream whose first frame's length is cut.
    Malformed::Control(&[0x00, 0x04, 0xc0]),
    // A unidirectional stream type cut inside its encoding.
    Malformed::Uni(&[0xc0, 0x00, 0x00]),
    // A datagram whose quarter stream ID is cut (2-byte form, 1 byte).
    Malformed::Datagram(&[0x40]),
    // A datagram whose context ID is cut (8-byte form, 2 bytes).
    Malformed::Datagram(&[0x00, 0xc0, 0x01]),
];

/// Each connection sends one malformed case and waits briefly for the
/// target's verdict (most are connection errors).
async fn malformed_varints(run: &Arc<Run>) {
    let case = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..run.plan.concurrency.max(1))
        .map(|_| {
            let (run, case) = (Arc::clone(run), Arc::clone(&case));
            tokio::spawn(async move {
                while !run.over() {
                    let malformed =
                        MALFORMED[case.fetch_add(1, Ordering::Relaxed) % MALFORMED.len()];
                    let connection = match malformed {
                        Malformed::Control(start) => run.connect_with_control(start).await,
                        _ => run.connect().await,
                    };
                    let Some(connection) = connection else {
                        continue;
                    };
                    let sent = match malformed {
                        Malformed::Request(bytes) => match connection.request(bytes).await {
                            Ok((mut send, _recv)) => {
                                Counters::add(&run.counters.streams, 1);
                                send.finish().is_ok()
                            }
                            Err(_) => false,
                        },
                        Malformed::Uni(bytes) => match connection.uni(bytes).await {
                            Ok(mut send) => send.finish().is_ok(),
                            Err(_) => false,
                        },
                        Malformed::Datagram(bytes) => connection
                            .connection
                            .send_datagram(Bytes::from_static(bytes))
                            .is_ok(),
                        Malformed::Control(_) => true,
                    };
                    if sent {
                        Counters::add(&run.counters.bytes, 1);
                    }
                    let verdict = tokio::time::sleep(Duration::from_millis(300));
                    tokio::select! {
                        _ = connection.connection.closed() => {}
                        () = verdict => {}
                    }
                    run.ended(&connection);
                    connection.close();
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
}

/// A DATA frame around `capsules`.
fn data(capsules: &[u8]) -> Vec<u8> {
    h3raw::frame(frame_type::DATA, capsules)
}

/// connect-udp streams carrying malformed capsules, one kind per stream.
async fn malformed_capsules(run: &Arc<Run>) {
    let Some(tunnel_to) = run.plan.tunnel_to else {
        return;
    };
    let authority = run.plan.target.addr.to_string();
    let path = masque::udp_path(&WireTarget::from_socket_addr(tunnel_to));
    let head = h3raw::headers_frame(&h3raw::connect_udp_fields(&authority, &path));
    run.on_connections(move |run, connection| {
        let head = head.clone();
        async move {
            let mut kind = 0usize;
            while !run.over() {
                kind += 1;
                let Some((mut send, mut recv)) = run.open(&connection, &head).await else {
                    break;
                };
                let _ = h3raw::response_head(&mut recv, Duration::from_secs(2)).await;
                let mut body = Vec::new();
                match kind % 4 {
                    // A Capsule Length of 2^62 - 1 (RFC 9297 §3.2 allows it;
                    // no receiver can buffer it).
                    0 => {
                        h3raw::put_varint(capsule::DATAGRAM, &mut body);
                        h3raw::put_varint(u64::MAX, &mut body);
                        body.extend_from_slice(&[0u8; 512]);
                    }
                    // A capsule type cut inside its encoding, then FIN.
                    1 => body.extend_from_slice(&[0xc0, 0x00, 0x00]),
                    // A DATAGRAM capsule whose context ID is cut, then a
                    // capsule of 60 KiB that never completes.
                    2 => {
                        let _ = capsule::encode(capsule::DATAGRAM, &[0x40], &mut body);
                        h3raw::put_varint(0x29, &mut body);
                        h3raw::put_varint(60 * 1024, &mut body);
                        body.extend_from_slice(&[0u8; 1024]);
                    }
                    // A storm of empty reserved capsules (each must be
                    // parsed and skipped, RFC 9297 §3.2).
                    _ => {
                        for _ in 0..8192 {
                            body.extend_from_slice(&[0x29, 0x00]);
                        }
                    }
                }
                let bytes = data(&body);
                match send.write_all(&bytes).await {
                    Ok(()) => Counters::add(&run.counters.bytes, bytes.len() as u64),
                    Err(quinn::WriteError::Stopped(_)) => {
                        Counters::add(&run.counters.stopped, 1);
                        continue;
                    }
                    Err(_) => break,
                }
                if kind % 4 == 1 {
                    let _ = send.finish();
                }
                let stopped =
                    timeout_at(Instant::now() + Duration::from_millis(200), send.stopped()).await;
                if let Ok(Ok(Some(_))) = stopped {
                    Counters::add(&run.counters.stopped, 1);
                }
            }
            run.ended(&connection);
        }
    })
    .await;
}

/// Datagrams whose quarter stream ID names no open request, the largest
/// one, and unparseable ones, as fast as each connection sends.
async fn datagram_flood(run: &Arc<Run>) {
    run.on_connections(|run, connection| async move {
        let Some(room) = connection.connection.max_datagram_size() else {
            return;
        };
        let payload = vec![0u8; room.saturating_sub(16).min(1100)];
        let mut sent = 0u64;
        let mut quarter = 1_000u64;
        while !run.over() {
            let mut datagram = BytesMut::with_capacity(payload.len() + 16);
            match sent % 8 {
                // Unparseable: a quarter stream ID cut short.
                0 => datagram.put_u8(0x7f),
                // The largest quarter stream ID (RFC 9297 §2.1).
                1 => {
                    let _ =
                        datagram::encode_header(datagram::MAX_QUARTER_STREAM_ID, 0, &mut datagram);
                }
                // Requests that were never opened.
                _ => {
                    quarter = quarter.wrapping_add(1) % (1 << 20);
                    let _ = datagram::encode_header(quarter, 0, &mut datagram);
                }
            }
            datagram.put_slice(&payload);
            let len = datagram.len() as u64;
            if connection
                .connection
                .send_datagram(datagram.freeze())
                .is_err()
            {
                break;
            }
            sent += 1;
            Counters::add(&run.counters.bytes, len);
            // quinn drops the oldest queued datagram when its buffer is
            // full; yielding lets its driver send what is queued.
            if sent.is_multiple_of(64) {
                tokio::task::yield_now().await;
            }
        }
        // What went on the wire (congestion control paces it), not what was
        // queued.
        let on_wire = connection.connection.stats().frame_tx.datagram;
        Counters::add(&run.counters.datagrams, on_wire);
        run.ended(&connection);
    })
    .await;
}

/// Streams opened and left: every stream credit a connection gets is
/// spent on a stream the attacker never finishes.
async fn abandoned_streams(run: &Arc<Run>) {
    let get = h3raw::headers_frame(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "abuse.invalid"),
        (":path", "/"),
    ]);
    run.on_connections(move |run, connection| {
        let get = get.clone();
        async move {
            let mut held = Vec::new();
            let mut kind = 0usize;
            while !run.over() {
                kind += 1;
                let first: &[u8] = match kind % 3 {
                    // One byte of a frame header, then nothing.
                    0 => &[0x01],
                    // A whole request whose answer is never read.
                    1 => &get,
                    // Reset as soon as opened.
                    _ => &[0x01, 0x40],
                };
                let Some((mut send, recv)) = run.open(&connection, first).await else {
                    break;
                };
                if kind % 3 == 2 {
                    let _ = send.reset(quinn::VarInt::from_u32(0x10c));
                } else {
                    held.push((send, recv));
                }
            }
            drop(held);
            run.ended(&connection);
        }
    })
    .await;
}
