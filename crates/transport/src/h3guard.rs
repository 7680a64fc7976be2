//! The QUIC layer under every HTTP/3 connection we run, server or client: an
//! implementation of h3's `quic` traits on quinn that guards h3 against what
//! it would buffer without bound.
//!
//! h3 0.0.8 buffers each incomplete frame but DATA whole before decoding it
//! and has no limit of its own on the declared length, and it never reads
//! the peer's QPACK streams (quinn then holds up to a stream window of their
//! bytes). This layer therefore:
//!
//! * follows the frames of every stream h3 reads with
//!   [`openrelay_wire::h3frame::FrameTracker`]: DATA streams through, HEADERS
//!   and control frames pass only within their limits, unknown and reserved
//!   frame types are consumed here and never reach h3 (RFC 9114 §7.2.8);
//! * reads the type of each unidirectional stream itself (RFC 9114 §6.2):
//!   the control stream goes to h3 (guarded), the QPACK encoder and decoder
//!   streams are read and checked here ([`openrelay_wire::qpack`], no dynamic
//!   table), push streams are a connection error (we never allow push),
//!   and any other type is stopped with H3_STREAM_CREATION_ERROR;
//! * answers each violation as RFC 9114 §8 says: a stream error resets and
//!   stops the stream, a connection error closes the connection, with the
//!   code [`openrelay_wire::h3frame`] gives;
//! * resets request streams that are dropped unanswered (H3_REQUEST_REJECTED
//!   at a server, H3_REQUEST_CANCELLED at a client; RFC 9114 §4.1.1), where
//!   quinn would end them cleanly, so a timed-out request is visibly refused;
//! * at a server, ends a request body that does not arrive within its time
//!   ([`RequestDeadlines`]), unless the request is a CONNECT.
//!
//! h3-quinn's streams hide their quinn stream, so a wrapper around them could
//! neither reset on drop nor stop a stream while a read is in flight (its
//! `stop_sending` then panics); this module implements the traits on quinn
//! directly, in h3-quinn's shape.
//!
//! It also sends DATA payloads without copying them ([`lending_payload`]):
//! h3 hands a backend each frame as a `WriteBuf` whose payload is readable
//! only as `&[u8]`, which quinn's `poll_write` would copy into a new
//! `Bytes` before copying it again into a packet.

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::stream::{self, Stream, StreamExt};
use h3::quic::{self, ConnectionErrorIncoming, StreamErrorIncoming, StreamId, WriteBuf};
use openrelay_wire::h3frame::{
    self, ErrorScope, FrameError, FrameLimits, FrameTracker, Sender, Step, StreamKind,
    StreamTypeReader, UniStreamType, code,
};
use openrelay_wire::qpack::{DecoderStreamCheck, EncoderStreamCheck, QpackError};

/// The `SETTINGS_MAX_FIELD_SECTION_SIZE` every h3 builder is given, equal to
/// the largest HEADERS frame the guard passes.
pub const MAX_FIELD_SECTION: u64 = h3frame::MAX_FIELD_SECTION;

/// Which end of the connection we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// We accept requests.
    Server,
    /// We send requests.
    Client,
}

impl Side {
    fn peer(self) -> Sender {
        match self {
            Side::Server => Sender::Client,
            Side::Client => Sender::Server,
        }
    }
}

/// Why the guard ended a stream or the connection. h3 hands it back inside
/// its errors (see [`GuardError::in_stream_error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// A frame broke a limit or a rule ([`FrameError`]).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A QPACK encoder or decoder stream carried what a table-less decoder
    /// or encoder cannot accept.
    #[error("QPACK stream: {error}")]
    Qpack {
        /// What was wrong.
        error: QpackError,
        /// QPACK_ENCODER_STREAM_ERROR or QPACK_DECODER_STREAM_ERROR.
        code: u64,
    },
    /// A unidirectional stream of a type that may not be opened (a push
    /// stream, or a second QPACK stream of one kind).
    #[error("unidirectional stream not allowed")]
    StreamCreation {
        /// H3_STREAM_CREATION_ERROR or H3_ID_ERROR.
        code: u64,
    },
    /// The peer closed a QPACK stream (RFC 9204 §4.2).
    #[error("QPACK stream closed")]
    CriticalStreamClosed,
    /// A request body did not arrive within its time.
    #[error("request body not received in time")]
    BodyTimeout,
}

impl GuardError {
    /// The HTTP/3 error code sent to the peer.
    pub fn code(&self) -> u64 {
        match self {
            GuardError::Frame(e) => e.code,
            GuardError::Qpack { code, .. } | GuardError::StreamCreation { code } => *code,
            GuardError::CriticalStreamClosed => code::H3_CLOSED_CRITICAL_STREAM,
            GuardError::BodyTimeout => code::H3_REQUEST_CANCELLED,
        }
    }

    /// A fixed name for logs.
    pub fn kind_name(&self) -> &'static str {
        match self {
            GuardError::Frame(e) => e.violation.kind_name(),
            GuardError::Qpack { .. } => "qpack_stream_error",
            GuardError::StreamCreation { .. } => "stream_creation_error",
            GuardError::CriticalStreamClosed => "critical_stream_closed",
            GuardError::BodyTimeout => "body_timeout",
        }
    }

    /// Whether the stream's other direction is reset too: a frame error
    /// makes the request unusable; after a body timeout the server may still
    /// answer (it stopped reading, nothing more).
    fn resets_response(&self) -> bool {
        matches!(self, GuardError::Frame(_))
    }

    fn scope(&self) -> ErrorScope {
        match self {
            GuardError::Frame(e) => e.scope,
            GuardError::BodyTimeout => ErrorScope::Stream,
            _ => ErrorScope::Connection,
        }
    }

    /// The guard's error inside a stream error h3 returned, if there is one.
    pub fn in_stream_error(error: &h3::error::StreamError) -> Option<GuardError> {
        use h3::error::StreamError;
        match error {
            StreamError::Undefined(inner) => inner.downcast_ref::<GuardError>().copied(),
            StreamError::ConnectionError(error) => GuardError::in_connection_error(error),
            _ => None,
        }
    }

    /// The guard's error inside a connection error h3 returned, if there is
    /// one.
    pub fn in_connection_error(error: &h3::error::ConnectionError) -> Option<GuardError> {
        match error {
            h3::error::ConnectionError::Remote(ConnectionErrorIncoming::Undefined(inner)) => {
                inner.downcast_ref::<GuardError>().copied()
            }
            _ => None,
        }
    }
}

fn convert_connection_error(error: quinn::ConnectionError) -> ConnectionErrorIncoming {
    match error {
        quinn::ConnectionError::ApplicationClosed(close) => {
            ConnectionErrorIncoming::ApplicationClose {
                error_code: close.error_code.into_inner(),
            }
        }
        quinn::ConnectionError::TimedOut => ConnectionErrorIncoming::Timeout,
        other => ConnectionErrorIncoming::Undefined(Arc::new(other)),
    }
}

fn convert_read_error(error: quinn::ReadError) -> StreamErrorIncoming {
    match error {
        quinn::ReadError::Reset(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::ReadError::ConnectionLost(error) => StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: convert_connection_error(error),
        },
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

fn convert_write_error(error: quinn::WriteError) -> StreamErrorIncoming {
    match error {
        quinn::WriteError::Stopped(code) => StreamErrorIncoming::StreamTerminated {
            error_code: code.into_inner(),
        },
        quinn::WriteError::ConnectionLost(error) => StreamErrorIncoming::ConnectionErrorIncoming {
            connection_error: convert_connection_error(error),
        },
        other => StreamErrorIncoming::Unknown(Box::new(other)),
    }
}

fn varint(value: u64) -> quinn::VarInt {
    quinn::VarInt::from_u64(value).unwrap_or(quinn::VarInt::MAX)
}

fn h3_stream_id(id: quinn::StreamId) -> StreamId {
    let id: u64 = id.into();
    StreamId::try_from(id).expect("quinn stream IDs are variable-length integers")
}

/// Closes `connection` for `error` (whose code says why; the reason phrase
/// is the fixed kind name, never peer data).
fn close_for(connection: &quinn::Connection, error: GuardError) {
    connection.close(varint(error.code()), error.kind_name().as_bytes());
}

/// The next chunk of `stream`, polled in place (quinn's `read_chunk` is
/// cancel-safe, so a fresh future per poll loses nothing).
fn poll_chunk(
    stream: &mut quinn::RecvStream,
    cx: &mut Context<'_>,
) -> Poll<Result<Option<Bytes>, quinn::ReadError>> {
    let read = stream.read_chunk(usize::MAX, true);
    let mut read = std::pin::pin!(read);
    read.as_mut()
        .poll(cx)
        .map(|chunk| chunk.map(|c| c.map(|c| c.bytes)))
}

// ---------------------------------------------------------------------------
// Receive deadlines of request bodies (server side)
// ---------------------------------------------------------------------------

/// The receive deadlines of one server connection's request streams: once a
/// request's head is complete, the rest of it (its body) must arrive within
/// `body_timeout`, unless the server loop exempts it (a CONNECT request,
/// whose stream is a tunnel). The deadline acts when the handler reads: a
/// body that trickles makes the read fail and the stream is stopped with
/// H3_REQUEST_CANCELLED.
#[derive(Debug, Clone)]
pub struct RequestDeadlines {
    body_timeout: Duration,
    streams: Arc<Mutex<HashMap<u64, Weak<AtomicBool>>>>,
}

impl RequestDeadlines {
    /// Deadlines of `body_timeout` for every request of a connection.
    pub fn new(body_timeout: Duration) -> Self {
        RequestDeadlines {
            body_timeout,
            streams: Arc::default(),
        }
    }

    /// Lifts the body deadline of the request on `stream_id` (a tunnel).
    pub fn exempt(&self, stream_id: u64) {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(exempt) = streams.get(&stream_id).and_then(Weak::upgrade) {
            exempt.store(true, Ordering::Relaxed);
        }
    }

    fn register(&self, stream_id: u64) -> BodyDeadline {
        let exempt = Arc::new(AtomicBool::new(false));
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.retain(|_, slot| slot.strong_count() > 0);
        streams.insert(stream_id, Arc::downgrade(&exempt));
        BodyDeadline {
            timeout: self.body_timeout,
            exempt,
            timer: None,
        }
    }
}

struct BodyDeadline {
    timeout: Duration,
    exempt: Arc<AtomicBool>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl BodyDeadline {
    /// Ready when the deadline passed (the head is complete and the stream
    /// is not exempt).
    fn poll_expired(&mut self, head_complete: bool, cx: &mut Context<'_>) -> Poll<()> {
        if !head_complete || self.exempt.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        let timeout = self.timeout;
        self.timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)))
            .as_mut()
            .poll(cx)
    }
}

// ---------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------

/// A received stream h3 reads, with its frames guarded.
pub struct GuardedRecvStream {
    stream: quinn::RecvStream,
    connection: quinn::Connection,
    side: Side,
    kind: StreamKind,
    tracker: FrameTracker,
    /// Bytes to hand over first, unchecked: the control stream's type,
    /// which h3 reads itself.
    prefix: Option<Bytes>,
    /// The unread rest of the last chunk.
    leftover: Bytes,
    /// The peer finished the stream (after `leftover`).
    finished: bool,
    /// Reading ended here: stopped, failed or done.
    closed: bool,
    failure: Option<GuardError>,
    deadline: Option<BodyDeadline>,
}

impl std::fmt::Debug for GuardedRecvStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedRecvStream")
            .field("id", &self.stream.id())
            .finish_non_exhaustive()
    }
}

impl GuardedRecvStream {
    fn new(
        stream: quinn::RecvStream,
        connection: quinn::Connection,
        side: Side,
        kind: StreamKind,
        limits: FrameLimits,
    ) -> Self {
        GuardedRecvStream {
            stream,
            connection,
            side,
            kind,
            tracker: FrameTracker::new(kind, side.peer(), limits),
            prefix: None,
            leftover: Bytes::new(),
            finished: false,
            closed: false,
            failure: None,
            deadline: None,
        }
    }

    /// Ends this stream, or the connection, for `error`; the error h3 gets.
    fn fail(&mut self, error: GuardError) -> StreamErrorIncoming {
        self.failure = Some(error);
        self.leftover = Bytes::new();
        if !self.closed {
            self.closed = true;
            let _ = self.stream.stop(varint(error.code()));
        }
        match error.scope() {
            ErrorScope::Stream => StreamErrorIncoming::Unknown(Box::new(error)),
            ErrorScope::Connection => {
                close_for(&self.connection, error);
                StreamErrorIncoming::ConnectionErrorIncoming {
                    connection_error: ConnectionErrorIncoming::Undefined(Arc::new(error)),
                }
            }
        }
    }

    /// The error code of a stream-level failure that ends the paired send
    /// half too.
    fn stream_failure_code(&self) -> Option<u64> {
        self.failure
            .filter(|e| e.scope() == ErrorScope::Stream && e.resets_response())
            .map(|e| e.code())
    }
}

impl quic::RecvStream for GuardedRecvStream {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Ok(Some(prefix)));
        }
        loop {
            if let Some(error) = self.failure {
                return Poll::Ready(Err(self.fail(error)));
            }
            if let Some(deadline) = &mut self.deadline
                && deadline
                    .poll_expired(self.tracker.head_complete(), cx)
                    .is_ready()
                && !self.finished
            {
                return Poll::Ready(Err(self.fail(GuardError::BodyTimeout)));
            }
            if self.leftover.is_empty() {
                if self.finished {
                    self.closed = true;
                    return Poll::Ready(match self.tracker.finish() {
                        Ok(()) => Ok(None),
                        Err(error) => Err(self.fail(error.into())),
                    });
                }
                match ready!(poll_chunk(&mut self.stream, cx)) {
                    Ok(Some(chunk)) => self.leftover = chunk,
                    Ok(None) => self.finished = true,
                    Err(error) => {
                        self.closed = true;
                        return Poll::Ready(Err(convert_read_error(error)));
                    }
                }
                continue;
            }
            match self.tracker.feed(&self.leftover) {
                Ok(Step::Pass(n)) => return Poll::Ready(Ok(Some(self.leftover.split_to(n)))),
                Ok(Step::Skip(n)) => self.leftover.advance(n),
                Ok(Step::PassHeld { consumed, header }) => {
                    self.leftover.advance(consumed);
                    return Poll::Ready(Ok(Some(Bytes::copy_from_slice(header.as_ref()))));
                }
                Err(error) => return Poll::Ready(Err(self.fail(error.into()))),
            }
        }
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.closed = true;
        let _ = self.stream.stop(varint(error_code));
    }

    fn recv_id(&self) -> StreamId {
        h3_stream_id(self.stream.id())
    }
}

impl Drop for GuardedRecvStream {
    fn drop(&mut self) {
        if self.closed || self.finished {
            return;
        }
        // RFC 9114 §4.1.1: a server that needs no more of a request it has
        // read stops it with H3_NO_ERROR; one it never read is rejected; a
        // client that gives up on a response cancels it.
        let code = match (self.kind, self.side, self.tracker.head_complete()) {
            (StreamKind::Control, ..) | (_, Side::Server, true) => code::H3_NO_ERROR,
            (_, Side::Server, false) => code::H3_REQUEST_REJECTED,
            (_, Side::Client, _) => code::H3_REQUEST_CANCELLED,
        };
        let _ = self.stream.stop(varint(code));
    }
}

// ---------------------------------------------------------------------------
// DATA payloads without a copy
// ---------------------------------------------------------------------------

thread_local! {
    /// The payload [`lending_payload`] lends to the `send_data` it polls.
    static LENT_PAYLOAD: Cell<Option<Bytes>> = const { Cell::new(None) };
}

/// Runs `send`, an h3 `send_data(payload.clone())` on a guarded stream, so
/// that quinn gets `payload` itself instead of a copy of it.
///
/// h3 0.0.8 gives a backend no way to take a frame's payload out of its
/// `WriteBuf`, so the payload is lent beside it: for the one synchronous
/// first poll in which h3 hands the frame to [`GuardedSendStream`], a
/// thread-local holds a clone of `payload`; the stream uses it only if the
/// frame's payload is that same memory (same address and length: the same
/// bytes, as `Bytes` are immutable), and copies otherwise.
pub async fn lending_payload<F: Future>(payload: Bytes, send: F) -> F::Output {
    let mut send = std::pin::pin!(send);
    let mut lent = Some(payload);
    std::future::poll_fn(|cx| {
        let Some(payload) = lent.take() else {
            return send.as_mut().poll(cx);
        };
        LENT_PAYLOAD.set(Some(payload));
        let poll = send.as_mut().poll(cx);
        // Not taken if h3 did not reach the transport in this poll.
        LENT_PAYLOAD.take();
        poll
    })
    .await
}

/// `data` as a copy of its header and its payload: `lent` itself if the
/// payload is `lent`'s memory, else a copy.
fn write_chunks(mut data: WriteBuf<Bytes>, lent: Option<Bytes>) -> [Bytes; 2] {
    // `WriteBuf::chunk` is the encoded header first, then the payload.
    let head = Bytes::copy_from_slice(data.chunk());
    data.advance(head.len());
    let rest = data.remaining();
    let payload = match lent {
        Some(lent) if lent.len() == rest && data.chunk().as_ptr() == lent.as_ptr() => lent,
        _ => data.copy_to_bytes(rest),
    };
    [head, payload]
}

/// What h3 handed a send stream, as quinn takes it: the frame header (or
/// stream type, copied: a few bytes) and the payload, lent or copied.
struct PendingWrite {
    chunks: [Bytes; 2],
    /// The first chunk not yet fully written.
    next: usize,
}

impl PendingWrite {
    /// `data`, with the payload lent to this poll if it is that payload.
    fn new(data: WriteBuf<Bytes>) -> Self {
        PendingWrite {
            chunks: write_chunks(data, LENT_PAYLOAD.take()),
            next: 0,
        }
    }

    /// Hands quinn what is left; ready when all of it is in its send
    /// buffer.
    fn poll_write(
        &mut self,
        stream: &mut quinn::SendStream,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), quinn::WriteError>> {
        while self.chunks[self.next..].iter().any(|c| !c.is_empty()) {
            // A fresh future per poll loses nothing: quinn's write is one
            // `poll_fn` over the stream's state.
            let write = stream.write_chunks(&mut self.chunks[self.next..]);
            let written = ready!(std::pin::pin!(write).poll(cx))?;
            self.next += written.chunks;
        }
        Poll::Ready(Ok(()))
    }
}

/// A send stream.
pub struct GuardedSendStream {
    stream: quinn::SendStream,
    writing: Option<PendingWrite>,
    /// Something was handed to the stream.
    wrote: bool,
    /// Finished or reset.
    closed: bool,
    /// The reset code if the stream is dropped before anything was written.
    unanswered_code: u64,
}

impl std::fmt::Debug for GuardedSendStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedSendStream")
            .field("id", &self.stream.id())
            .finish_non_exhaustive()
    }
}

impl GuardedSendStream {
    fn new(stream: quinn::SendStream, side: Side) -> Self {
        GuardedSendStream {
            stream,
            writing: None,
            wrote: false,
            closed: false,
            unanswered_code: match side {
                Side::Server => code::H3_REQUEST_REJECTED,
                Side::Client => code::H3_REQUEST_CANCELLED,
            },
        }
    }
}

impl quic::SendStream<Bytes> for GuardedSendStream {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        if let Some(pending) = &mut self.writing {
            ready!(pending.poll_write(&mut self.stream, cx)).map_err(convert_write_error)?;
        }
        self.writing = None;
        Poll::Ready(Ok(()))
    }

    fn send_data<T: Into<WriteBuf<Bytes>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        if self.writing.is_some() {
            // h3 misused the traits; as h3-quinn does, end the connection.
            return Err(StreamErrorIncoming::ConnectionErrorIncoming {
                connection_error: ConnectionErrorIncoming::InternalError(
                    "send_data while a write is pending".to_owned(),
                ),
            });
        }
        self.wrote = true;
        self.writing = Some(PendingWrite::new(data.into()));
        Ok(())
    }

    fn poll_finish(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.closed = true;
        Poll::Ready(
            self.stream
                .finish()
                .map_err(|e| StreamErrorIncoming::Unknown(Box::new(e))),
        )
    }

    fn reset(&mut self, reset_code: u64) {
        self.closed = true;
        let _ = self.stream.reset(varint(reset_code));
    }

    fn send_id(&self) -> StreamId {
        h3_stream_id(self.stream.id())
    }
}

impl Drop for GuardedSendStream {
    fn drop(&mut self) {
        // quinn finishes a dropped stream cleanly; a request or response
        // never written is refused instead (RFC 9114 §4.1.1).
        if !self.closed && !self.wrote {
            let _ = self.stream.reset(varint(self.unanswered_code));
        }
    }
}

/// A request stream (both directions).
#[derive(Debug)]
pub struct GuardedBidiStream {
    send: GuardedSendStream,
    recv: GuardedRecvStream,
}

impl quic::BidiStream<Bytes> for GuardedBidiStream {
    type SendStream = GuardedSendStream;
    type RecvStream = GuardedRecvStream;

    fn split(self) -> (GuardedSendStream, GuardedRecvStream) {
        (self.send, self.recv)
    }
}

impl quic::RecvStream for GuardedBidiStream {
    type Buf = Bytes;

    fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, StreamErrorIncoming>> {
        let result = ready!(self.recv.poll_data(cx));
        // A stream error ends both directions (RFC 9114 §8).
        if result.is_err()
            && let Some(code) = self.recv.stream_failure_code()
            && !self.send.closed
        {
            quic::SendStream::reset(&mut self.send, code);
        }
        Poll::Ready(result)
    }

    fn stop_sending(&mut self, error_code: u64) {
        self.recv.stop_sending(error_code);
    }

    fn recv_id(&self) -> StreamId {
        self.recv.recv_id()
    }
}

impl quic::SendStream<Bytes> for GuardedBidiStream {
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_ready(cx)
    }

    fn send_data<T: Into<WriteBuf<Bytes>>>(&mut self, data: T) -> Result<(), StreamErrorIncoming> {
        self.send.send_data(data)
    }

    fn poll_finish(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), StreamErrorIncoming>> {
        self.send.poll_finish(cx)
    }

    fn reset(&mut self, reset_code: u64) {
        self.send.reset(reset_code);
    }

    fn send_id(&self) -> StreamId {
        self.send.send_id()
    }
}

// ---------------------------------------------------------------------------
// Connection
// ---------------------------------------------------------------------------

// Sync too: h3's request sender is shared across tasks (as h3-quinn's is).
type Opened<T> = Pin<Box<dyn Stream<Item = Result<T, quinn::ConnectionError>> + Send + Sync>>;

/// The next stream `streams` opens or accepts, as h3 wants the error.
fn poll_opened<T>(
    streams: &mut Opened<T>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, ConnectionErrorIncoming>> {
    // The streams below never end; an end would mean the connection did.
    let next = ready!(streams.poll_next_unpin(cx));
    Poll::Ready(
        next.unwrap_or(Err(quinn::ConnectionError::LocallyClosed))
            .map_err(convert_connection_error),
    )
}

fn as_stream_error(connection_error: ConnectionErrorIncoming) -> StreamErrorIncoming {
    StreamErrorIncoming::ConnectionErrorIncoming { connection_error }
}

/// Opens streams on a guarded connection (h3's request sender holds one).
pub struct GuardedOpenStreams {
    connection: quinn::Connection,
    side: Side,
    limits: FrameLimits,
    opening_bi: Option<Opened<(quinn::SendStream, quinn::RecvStream)>>,
    opening_uni: Option<Opened<quinn::SendStream>>,
}

impl std::fmt::Debug for GuardedOpenStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedOpenStreams")
            .field("side", &self.side)
            .finish_non_exhaustive()
    }
}

impl Clone for GuardedOpenStreams {
    fn clone(&self) -> Self {
        GuardedOpenStreams {
            connection: self.connection.clone(),
            side: self.side,
            limits: self.limits,
            opening_bi: None,
            opening_uni: None,
        }
    }
}

impl quic::OpenStreams<Bytes> for GuardedOpenStreams {
    type BidiStream = GuardedBidiStream;
    type SendStream = GuardedSendStream;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<GuardedBidiStream, StreamErrorIncoming>> {
        let opening = self.opening_bi.get_or_insert_with(|| {
            Box::pin(stream::unfold(self.connection.clone(), |c| async {
                Some((c.open_bi().await, c))
            }))
        });
        let (send, recv) = ready!(poll_opened(opening, cx)).map_err(as_stream_error)?;
        Poll::Ready(Ok(GuardedBidiStream {
            send: GuardedSendStream::new(send, self.side),
            recv: GuardedRecvStream::new(
                recv,
                self.connection.clone(),
                self.side,
                StreamKind::Request,
                self.limits,
            ),
        }))
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<GuardedSendStream, StreamErrorIncoming>> {
        let opening = self.opening_uni.get_or_insert_with(|| {
            Box::pin(stream::unfold(self.connection.clone(), |c| async {
                Some((c.open_uni().await, c))
            }))
        });
        let send = ready!(poll_opened(opening, cx)).map_err(as_stream_error)?;
        let mut send = GuardedSendStream::new(send, self.side);
        // Control and QPACK streams live as long as the connection.
        send.wrote = true;
        Poll::Ready(Ok(send))
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        self.connection.close(varint(code.value()), reason);
    }
}

/// A unidirectional stream whose type has not arrived yet.
struct PendingUni {
    stream: quinn::RecvStream,
    reader: StreamTypeReader,
}

enum QpackCheck {
    Encoder(EncoderStreamCheck),
    Decoder(DecoderStreamCheck),
}

/// A peer's QPACK stream, read and checked here.
struct QpackStream {
    stream: quinn::RecvStream,
    check: QpackCheck,
}

impl QpackStream {
    fn check(&mut self, bytes: &[u8]) -> Result<(), GuardError> {
        let (result, code) = match &mut self.check {
            QpackCheck::Encoder(check) => (check.feed(bytes), code::QPACK_ENCODER_STREAM_ERROR),
            QpackCheck::Decoder(check) => (check.feed(bytes), code::QPACK_DECODER_STREAM_ERROR),
        };
        result.map_err(|error| GuardError::Qpack { error, code })
    }

    /// Reads and checks what has arrived. It never ends well: `Ready` is
    /// the stream's end (it is critical) or a refused instruction.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<DrainEnd> {
        loop {
            let error = match ready!(poll_chunk(&mut self.stream, cx)) {
                Ok(Some(chunk)) => match self.check(&chunk) {
                    Ok(()) => continue,
                    Err(error) => error,
                },
                Err(quinn::ReadError::ConnectionLost(error)) => {
                    return Poll::Ready(DrainEnd::ConnectionLost(convert_connection_error(error)));
                }
                // RFC 9204 §4.2: closing either QPACK stream is a connection
                // error of type H3_CLOSED_CRITICAL_STREAM.
                Ok(None) | Err(_) => GuardError::CriticalStreamClosed,
            };
            return Poll::Ready(DrainEnd::Refused(error));
        }
    }
}

enum DrainEnd {
    ConnectionLost(ConnectionErrorIncoming),
    Refused(GuardError),
}

/// A QUIC connection for h3, guarded; see the [module documentation](self).
pub struct GuardedConnection {
    connection: quinn::Connection,
    side: Side,
    limits: FrameLimits,
    opener: GuardedOpenStreams,
    incoming_bi: Opened<(quinn::SendStream, quinn::RecvStream)>,
    incoming_uni: Opened<quinn::RecvStream>,
    pending_uni: Vec<PendingUni>,
    qpack: Vec<QpackStream>,
    seen_encoder: bool,
    seen_decoder: bool,
    deadlines: Option<RequestDeadlines>,
}

impl std::fmt::Debug for GuardedConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedConnection")
            .field("side", &self.side)
            .finish_non_exhaustive()
    }
}

impl GuardedConnection {
    /// Guards `connection`, on which we are `side`. A server passes the
    /// deadlines its request bodies get.
    pub fn new(
        connection: quinn::Connection,
        side: Side,
        deadlines: Option<RequestDeadlines>,
    ) -> Self {
        let limits = FrameLimits::default();
        GuardedConnection {
            opener: GuardedOpenStreams {
                connection: connection.clone(),
                side,
                limits,
                opening_bi: None,
                opening_uni: None,
            },
            incoming_bi: Box::pin(stream::unfold(connection.clone(), |c| async {
                Some((c.accept_bi().await, c))
            })),
            incoming_uni: Box::pin(stream::unfold(connection.clone(), |c| async {
                Some((c.accept_uni().await, c))
            })),
            connection,
            side,
            limits,
            pending_uni: Vec::new(),
            qpack: Vec::new(),
            seen_encoder: false,
            seen_decoder: false,
            deadlines,
        }
    }

    /// What to do with a unidirectional stream of a known type: hand it to
    /// h3, keep it here, or end it.
    fn route_uni(
        &mut self,
        stream: quinn::RecvStream,
        prefix: Bytes,
        rest: Bytes,
        stream_type: UniStreamType,
    ) -> Result<Option<GuardedRecvStream>, GuardError> {
        match stream_type {
            UniStreamType::Control => {
                let mut control = GuardedRecvStream::new(
                    stream,
                    self.connection.clone(),
                    self.side,
                    StreamKind::Control,
                    self.limits,
                );
                control.prefix = Some(prefix);
                control.leftover = rest;
                Ok(Some(control))
            }
            UniStreamType::QpackEncoder | UniStreamType::QpackDecoder => {
                let encoder = stream_type == UniStreamType::QpackEncoder;
                let seen = if encoder {
                    &mut self.seen_encoder
                } else {
                    &mut self.seen_decoder
                };
                // RFC 9204 §4.2: one of each; a second is a connection error.
                if std::mem::replace(seen, true) {
                    return Err(GuardError::StreamCreation {
                        code: code::H3_STREAM_CREATION_ERROR,
                    });
                }
                let mut qpack = QpackStream {
                    stream,
                    check: if encoder {
                        QpackCheck::Encoder(EncoderStreamCheck)
                    } else {
                        QpackCheck::Decoder(DecoderStreamCheck::default())
                    },
                };
                qpack.check(&rest)?;
                self.qpack.push(qpack);
                Ok(None)
            }
            // RFC 9114 §6.2.2: only servers push, and a client push stream
            // is H3_STREAM_CREATION_ERROR; we never send MAX_PUSH_ID, so at
            // a client every push ID is too large (§4.6: H3_ID_ERROR).
            UniStreamType::Push => Err(GuardError::StreamCreation {
                code: match self.side {
                    Side::Server => code::H3_STREAM_CREATION_ERROR,
                    Side::Client => code::H3_ID_ERROR,
                },
            }),
            // RFC 9114 §6.2: abort reading unknown types with
            // H3_STREAM_CREATION_ERROR; never a connection error.
            UniStreamType::Other(_) => {
                let mut stream = stream;
                let _ = stream.stop(varint(code::H3_STREAM_CREATION_ERROR));
                Ok(None)
            }
        }
    }

    fn connection_error(&self, error: GuardError) -> ConnectionErrorIncoming {
        close_for(&self.connection, error);
        ConnectionErrorIncoming::Undefined(Arc::new(error))
    }
}

impl quic::Connection<Bytes> for GuardedConnection {
    type RecvStream = GuardedRecvStream;
    type OpenStreams = GuardedOpenStreams;

    fn poll_accept_recv(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<GuardedRecvStream, ConnectionErrorIncoming>> {
        // New streams; quinn's stream limit bounds how many wait here.
        while let Poll::Ready(accepted) = poll_opened(&mut self.incoming_uni, cx) {
            self.pending_uni.push(PendingUni {
                stream: accepted?,
                reader: StreamTypeReader::default(),
            });
        }
        for i in 0..self.qpack.len() {
            match self.qpack[i].poll_drain(cx) {
                Poll::Pending => {}
                Poll::Ready(DrainEnd::ConnectionLost(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(DrainEnd::Refused(error)) => {
                    return Poll::Ready(Err(self.connection_error(error)));
                }
            }
        }
        let mut i = 0;
        while i < self.pending_uni.len() {
            let pending = &mut self.pending_uni[i];
            let chunk = match poll_chunk(&mut pending.stream, cx) {
                Poll::Pending => {
                    i += 1;
                    continue;
                }
                Poll::Ready(Ok(Some(chunk))) => chunk,
                Poll::Ready(Err(quinn::ReadError::ConnectionLost(error))) => {
                    return Poll::Ready(Err(convert_connection_error(error)));
                }
                // RFC 9114 §6.2: a stream closed or reset before its type
                // arrived is tolerated.
                Poll::Ready(Ok(None) | Err(_)) => {
                    self.pending_uni.swap_remove(i);
                    continue;
                }
            };
            let (used, prefix) = pending.reader.feed(&chunk);
            let Some(prefix) = prefix else {
                continue;
            };
            let PendingUni { stream, .. } = self.pending_uni.swap_remove(i);
            let bytes = Bytes::copy_from_slice(prefix.bytes());
            match self.route_uni(stream, bytes, chunk.slice(used..), prefix.stream_type) {
                Ok(Some(control)) => return Poll::Ready(Ok(control)),
                Ok(None) => {}
                Err(error) => return Poll::Ready(Err(self.connection_error(error))),
            }
        }
        Poll::Pending
    }

    fn poll_accept_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<GuardedBidiStream, ConnectionErrorIncoming>> {
        let (send, recv) = ready!(poll_opened(&mut self.incoming_bi, cx))?;
        let mut recv = GuardedRecvStream::new(
            recv,
            self.connection.clone(),
            self.side,
            StreamKind::Request,
            self.limits,
        );
        recv.deadline = self
            .deadlines
            .as_ref()
            .map(|d| d.register(u64::from(recv.stream.id())));
        Poll::Ready(Ok(GuardedBidiStream {
            send: GuardedSendStream::new(send, self.side),
            recv,
        }))
    }

    fn opener(&self) -> GuardedOpenStreams {
        self.opener.clone()
    }
}

impl quic::OpenStreams<Bytes> for GuardedConnection {
    type BidiStream = GuardedBidiStream;
    type SendStream = GuardedSendStream;

    fn poll_open_bidi(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<GuardedBidiStream, StreamErrorIncoming>> {
        self.opener.poll_open_bidi(cx)
    }

    fn poll_open_send(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<GuardedSendStream, StreamErrorIncoming>> {
        self.opener.poll_open_send(cx)
    }

    fn close(&mut self, code: h3::error::Code, reason: &[u8]) {
        self.opener.close(code, reason);
    }
}

// ---------------------------------------------------------------------------
// h3 on top
// ---------------------------------------------------------------------------

/// h3's request sender on a guarded client connection.
pub type ClientRequests = h3::client::SendRequest<GuardedOpenStreams, Bytes>;
/// A request stream of a guarded client connection.
pub type ClientStream = h3::client::RequestStream<GuardedBidiStream, Bytes>;
/// h3's connection driver of a guarded client connection.
pub type ClientDriver = h3::client::Connection<GuardedConnection, Bytes>;
/// h3's server side of a guarded connection.
pub type ServerConnection = h3::server::Connection<GuardedConnection, Bytes>;
/// A request stream of a guarded server connection.
pub type ServerStream = h3::server::RequestStream<GuardedBidiStream, Bytes>;

/// Starts HTTP/3 as a client on `connection`: extended CONNECT and HTTP
/// datagrams enabled (RFC 9220, RFC 9297 §2.1.1), header sections limited
/// to [`MAX_FIELD_SECTION`], every stream guarded. The driver must be
/// polled (`poll_close`) for the connection to work.
pub async fn client(
    connection: &quinn::Connection,
) -> Result<(ClientDriver, ClientRequests), h3::error::ConnectionError> {
    h3::client::builder()
        .max_field_section_size(MAX_FIELD_SECTION)
        .enable_extended_connect(true)
        .enable_datagram(true)
        .build(GuardedConnection::new(
            connection.clone(),
            Side::Client,
            None,
        ))
        .await
}

/// Starts HTTP/3 as a server on `connection`, as [`client`] does, with
/// request bodies bounded in time by `deadlines`.
pub async fn server(
    connection: &quinn::Connection,
    deadlines: RequestDeadlines,
) -> Result<ServerConnection, h3::error::ConnectionError> {
    h3::server::builder()
        .max_field_section_size(MAX_FIELD_SECTION)
        .enable_extended_connect(true)
        .enable_datagram(true)
        .build(GuardedConnection::new(
            connection.clone(),
            Side::Server,
            Some(deadlines),
        ))
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use h3::proto::frame::Frame;

    fn data_frame(payload: &Bytes) -> WriteBuf<Bytes> {
        WriteBuf::from(Frame::Data(payload.clone()))
    }

    /// RFC 9114 §7.2.1: type 0x00, then the payload length.
    fn data_header(len: usize) -> Vec<u8> {
        let mut header = vec![0x00];
        openrelay_wire::varint::encode(len as u64, &mut header).unwrap();
        header
    }

    #[test]
    fn a_lent_payload_goes_to_quinn_itself_beside_its_frame_header() {
        let payload = Bytes::from(vec![7u8; 20_000]);
        let [head, body] = write_chunks(data_frame(&payload), Some(payload.clone()));
        assert_eq!(head.as_ref(), data_header(payload.len()).as_slice());
        assert_eq!(body.as_ptr(), payload.as_ptr(), "the payload was copied");
        assert_eq!(body, payload);
    }

    #[test]
    fn equal_bytes_elsewhere_are_not_taken_for_the_payload() {
        let payload = Bytes::from(vec![1u8, 2, 3]);
        let twin = Bytes::from(payload.to_vec());
        let [head, body] = write_chunks(data_frame(&payload), Some(twin.clone()));
        assert_eq!(head.as_ref(), data_header(3).as_slice());
        assert_eq!(body, payload);
        assert_ne!(body.as_ptr(), twin.as_ptr());
        // Nor a prefix of the payload (same address, shorter).
        let prefix = payload.slice(..2);
        let [_, body] = write_chunks(data_frame(&payload), Some(prefix));
        assert_eq!(body, payload);
        assert_ne!(body.as_ptr(), payload.as_ptr());
    }

    #[test]
    fn frames_without_a_lent_payload_are_copied_whole() {
        for len in [0, 1, 63, 64, 16_383, 16_384, 70_000] {
            let payload = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>());
            let [head, body] = write_chunks(data_frame(&payload), None);
            let mut expected = data_header(len);
            expected.extend_from_slice(&payload);
            assert_eq!([head, body].concat(), expected, "length {len}");
        }
    }

    #[tokio::test]
    async fn lending_lends_only_to_the_first_poll_and_leaves_nothing_behind() {
        let payload = Bytes::from(vec![9u8; 4096]);
        let written = lending_payload(payload.clone(), async {
            PendingWrite::new(data_frame(&payload)).chunks
        })
        .await;
        assert_eq!(written[1].as_ptr(), payload.as_ptr());
        // A write after a wait gets no loan (the thread may be another).
        let written = lending_payload(payload.clone(), async {
            tokio::task::yield_now().await;
            PendingWrite::new(data_frame(&payload)).chunks
        })
        .await;
        assert_ne!(written[1].as_ptr(), payload.as_ptr());
        assert_eq!(written[1], payload);
        assert!(LENT_PAYLOAD.take().is_none());
    }
}
