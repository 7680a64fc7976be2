//! Copies bytes both ways between a TCP connection and the DATA frames of an
//! HTTP/3 CONNECT stream (RFC 9114 §4.4), with half-close: a FIN on either
//! side becomes a FIN on the other. A TCP error resets the stream with
//! H3_CONNECT_ERROR, as §4.4 asks; a stream error drops the TCP connection.
//! The egress and the client both run one pump per TCP flow.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use h3::quic::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::h3guard;
use crate::throttle_for_tests::ThrottleForTests;

/// Read size per TCP read; a DATA frame carries at most this much.
const CHUNK: usize = 64 * 1024;

/// Reads at least this large go to quinn in the buffer they were read into
/// ([`h3guard::lending_payload`]); smaller ones are copied out and the
/// buffer reused. quinn holds what it sends until it is acknowledged, and a
/// read's slice keeps its whole `CHUNK` allocation alive: lending only large
/// reads keeps that at most 4× the unacknowledged bytes.
const LEND_AT_LEAST: usize = CHUNK / 4;

/// Received chunks gathered into one vectored TCP write at most.
const MAX_GATHERED_CHUNKS: usize = 64;

/// The receiving half of a CONNECT stream (client or server side).
pub trait StreamRecv: Send {
    /// The next chunk of DATA, or `None` at the end of the stream.
    fn recv_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, ()>> + Send;
}

/// The sending half of a CONNECT stream (client or server side).
pub trait StreamSend: Send {
    /// Sends one DATA frame.
    fn send_chunk(&mut self, data: Bytes) -> impl Future<Output = Result<(), ()>> + Send;
    /// Ends the stream cleanly (FIN).
    fn finish_stream(&mut self) -> impl Future<Output = ()> + Send;
    /// Resets the stream with H3_CONNECT_ERROR.
    fn reset_connect_error(&mut self);
}

macro_rules! impl_stream_halves {
    ($stream:ident) => {
        impl<S: RecvStream + Send> StreamRecv for h3::$stream::RequestStream<S, Bytes> {
            async fn recv_chunk(&mut self) -> Result<Option<Bytes>, ()> {
                match self.recv_data().await {
                    Ok(Some(mut data)) => Ok(Some(data.copy_to_bytes(data.remaining()))),
                    Ok(None) => Ok(None),
                    Err(_) => Err(()),
                }
            }
        }

        impl<S: SendStream<Bytes> + Send> StreamSend for h3::$stream::RequestStream<S, Bytes> {
            async fn send_chunk(&mut self, data: Bytes) -> Result<(), ()> {
                let send = self.send_data(data.clone());
                h3guard::lending_payload(data, send).await.map_err(|_| ())
            }
            async fn finish_stream(&mut self) {
                let _ = self.finish().await;
            }
            fn reset_connect_error(&mut self) {
                self.stop_stream(h3::error::Code::H3_CONNECT_ERROR);
            }
        }
    };
}

impl_stream_halves!(client);
impl_stream_halves!(server);

/// Payload bytes a pump moved.
#[derive(Debug, Default)]
pub struct PumpCounters {
    /// From the TCP side into the stream.
    pub from_tcp: AtomicU64,
    /// From the stream to the TCP side.
    pub to_tcp: AtomicU64,
}

/// Runs until both directions finished or either failed. `initial` is sent
/// into the stream before anything read from TCP (bytes the caller already
/// read while parsing a proxy request). With `throttle` (a relay's
/// `[throttle_for_tests]`), every byte in either direction waits for it.
pub async fn pump(
    tcp: TcpStream,
    send: impl StreamSend,
    recv: impl StreamRecv,
    initial: Bytes,
    counters: &PumpCounters,
    throttle: Option<&ThrottleForTests>,
) {
    let (tcp_read, tcp_write) = tcp.into_split();
    pump_halves(tcp_read, tcp_write, send, recv, initial, counters, throttle).await;
}

/// [`pump`] over any byte stream given as its two halves (e.g. a TCP
/// connection of the full-device VPN's userspace stack, split with
/// `tokio::io::split`).
pub async fn pump_halves(
    mut tcp_read: impl AsyncRead + Unpin,
    mut tcp_write: impl AsyncWrite + Unpin,
    mut send: impl StreamSend,
    mut recv: impl StreamRecv,
    initial: Bytes,
    counters: &PumpCounters,
    throttle: Option<&ThrottleForTests>,
) {
    let stream_to_tcp = async {
        // Received chunks are slices of quinn's packets; they go to TCP as
        // they are, in one vectored write, not copied into one buffer.
        let mut gathered = Vec::with_capacity(MAX_GATHERED_CHUNKS);
        loop {
            let mut finished = match recv.recv_chunk().await {
                Ok(Some(data)) => {
                    gathered.push(data);
                    false
                }
                Ok(None) => true,
                Err(()) => return Err(()),
            };
            // Chunks arrive about one QUIC packet at a time; writing each one
            // costs a syscall. Gather what has already arrived into one write
            // (recv_data keeps its state in the stream, so polling it once
            // without waiting loses nothing).
            while !finished && gathered.len() < MAX_GATHERED_CHUNKS {
                match recv.recv_chunk().now_or_never() {
                    Some(Ok(Some(data))) => gathered.push(data),
                    Some(Ok(None)) => finished = true,
                    Some(Err(())) => return Err(()),
                    None => break,
                }
            }
            let len: usize = gathered.iter().map(Bytes::len).sum();
            if len > 0 {
                if let Some(throttle) = throttle {
                    throttle.take(len).await;
                }
                write_all_chunks(&mut tcp_write, &mut gathered)
                    .await
                    .map_err(|_| ())?;
                counters.to_tcp.fetch_add(len as u64, Ordering::Relaxed);
            }
            gathered.clear();
            if finished {
                let _ = tcp_write.shutdown().await;
                return Ok::<(), ()>(());
            }
        }
    };
    let tcp_to_stream = async {
        if !initial.is_empty() {
            send.send_chunk(initial).await?;
        }
        let mut buf = BytesMut::with_capacity(CHUNK);
        loop {
            buf.reserve(CHUNK);
            match tcp_read.read_buf(&mut buf).await {
                Ok(0) => {
                    send.finish_stream().await;
                    return Ok::<(), ()>(());
                }
                Ok(n) => {
                    if let Some(throttle) = throttle {
                        throttle.take(n).await;
                    }
                    counters.from_tcp.fetch_add(n as u64, Ordering::Relaxed);
                    let chunk = if n >= LEND_AT_LEAST {
                        buf.split().freeze()
                    } else {
                        let chunk = Bytes::copy_from_slice(&buf);
                        buf.clear();
                        chunk
                    };
                    send.send_chunk(chunk).await?;
                }
                Err(_) => {
                    send.reset_connect_error();
                    return Err(());
                }
            }
        }
    };
    let _ = tokio::try_join!(stream_to_tcp, tcp_to_stream);
}

/// Writes all of `chunks` with vectored writes (one system call for all of
/// them where the writer supports it), consuming them.
async fn write_all_chunks(
    writer: &mut (impl AsyncWrite + Unpin),
    chunks: &mut [Bytes],
) -> std::io::Result<()> {
    let mut next = 0;
    while next < chunks.len() {
        let slices: Vec<IoSlice<'_>> = chunks[next..].iter().map(|c| IoSlice::new(c)).collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while next < chunks.len() && written >= chunks[next].len() {
            written -= chunks[next].len();
            next += 1;
        }
        if written > 0 {
            chunks[next].advance(written);
        }
    }
    Ok(())
}
