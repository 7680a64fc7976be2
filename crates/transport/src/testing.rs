//! Test support (feature `testing`): a raw HTTP/3 peer written on quinn
//! directly, for tests that must send what no HTTP/3 library sends: frames
//! that never end, unknown frame types, heads that never complete,
//! malformed field sections, and a server that answers with any of these.
//!
//! Frames are written by hand (RFC 9114 §7.1), field sections as QPACK
//! literals ([`openrelay_wire::h3frame::headers_frame`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openrelay_types::KeyPin;
use openrelay_wire::h3frame::{UniStreamType, frame_type};
pub use openrelay_wire::h3frame::{frame, frame_header, headers_frame};
use openrelay_wire::varint;

use crate::endpoint::{self, Tuning};
use crate::identity::Identity;
use crate::tls::TlsError;
use crate::udp;

/// Why a raw peer could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RawError {
    /// A socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The connection could not be started.
    #[error(transparent)]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed.
    #[error(transparent)]
    Connection(#[from] quinn::ConnectionError),
    /// A stream write failed.
    #[error(transparent)]
    Write(#[from] quinn::WriteError),
}

/// The start of a control stream: its type and a SETTINGS frame
/// (RFC 9114 §6.2.1) allowing extended CONNECT (RFC 9220 §3,
/// SETTINGS_ENABLE_CONNECT_PROTOCOL 0x08) and HTTP datagrams (RFC 9297
/// §2.1.1, SETTINGS_H3_DATAGRAM 0x33), as a relay's does.
fn control_stream_start() -> Vec<u8> {
    let mut out = Vec::new();
    let _ = varint::encode(UniStreamType::Control.value(), &mut out);
    out.extend(frame(frame_type::SETTINGS, &[0x08, 0x01, 0x33, 0x01]));
    out
}

/// What happened to a stream of zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZerosEnd {
    /// Bytes written (accepted by the local QUIC stack).
    pub written: u64,
    /// The peer's STOP_SENDING code, if it stopped the stream.
    pub stopped: Option<u64>,
}

/// Writes zeros on `send` until the peer stops the stream, the connection
/// fails, or `limit` bytes are written.
///
/// The stop is watched apart from the writes: quinn reports a write blocked
/// by connection-level flow control as blocked even once the stream is
/// stopped, so a writer that only wrote could wait for credit forever.
pub async fn write_zeros(send: &mut quinn::SendStream, limit: u64) -> ZerosEnd {
    let zeros = [0u8; 4096];
    let mut written = 0u64;
    let stopped = send.stopped();
    tokio::pin!(stopped);
    while written < limit {
        let n = (limit - written).min(zeros.len() as u64) as usize;
        tokio::select! {
            biased;
            code = &mut stopped => {
                return ZerosEnd {
                    written,
                    stopped: code.ok().flatten().map(|c| c.into_inner()),
                };
            }
            result = send.write(&zeros[..n]) => match result {
                Ok(n) => written += n as u64,
                Err(quinn::WriteError::Stopped(code)) => {
                    return ZerosEnd {
                        written,
                        stopped: Some(code.into_inner()),
                    };
                }
                Err(_) => break,
            },
        }
    }
    ZerosEnd {
        written,
        stopped: None,
    }
}

/// A raw HTTP/3 client connection: QUIC with the relay's key pinned, its
/// control stream open, requests written by hand.
#[derive(Debug)]
pub struct RawClient {
    /// The QUIC connection.
    pub connection: quinn::Connection,
    /// Our control stream (its type and SETTINGS already sent).
    pub control: quinn::SendStream,
    _endpoint: quinn::Endpoint,
}

impl RawClient {
    /// Connects to `addr` (which must hold `pin`) from `bind` (or any
    /// address), with packets of `mtu` bytes.
    pub async fn connect(
        addr: SocketAddr,
        pin: KeyPin,
        mtu: u16,
        bind: Option<IpAddr>,
    ) -> Result<Self, RawError> {
        let endpoint = udp::endpoint(udp::local_for(bind, addr), None)?;
        let tuning = Tuning::client(Duration::from_secs(10), Duration::from_secs(1), mtu);
        let config = endpoint::client_config(pin, &tuning)?;
        let connection = endpoint
            .connect_with(config, addr, &addr.ip().to_string())?
            .await?;
        let mut control = connection.open_uni().await?;
        control.write_all(&control_stream_start()).await?;
        Ok(RawClient {
            connection,
            control,
            _endpoint: endpoint,
        })
    }

    /// Opens a request stream and writes `bytes` on it.
    pub async fn request(
        &self,
        bytes: &[u8],
    ) -> Result<(quinn::SendStream, quinn::RecvStream), RawError> {
        let (mut send, recv) = self.connection.open_bi().await?;
        send.write_all(bytes).await?;
        Ok((send, recv))
    }

    /// Opens a unidirectional stream of `stream_type` and writes `bytes` after
    /// the type.
    pub async fn uni(
        &self,
        stream_type: UniStreamType,
        bytes: &[u8],
    ) -> Result<quinn::SendStream, RawError> {
        let mut send = self.connection.open_uni().await?;
        let mut start = Vec::new();
        let _ = varint::encode(stream_type.value(), &mut start);
        start.extend_from_slice(bytes);
        send.write_all(&start).await?;
        Ok(send)
    }
}

/// The application error code the connection was closed with, waiting at
/// most [`STREAM_FATE_LIMIT`].
pub async fn close_code(connection: &quinn::Connection) -> Option<u64> {
    match tokio::time::timeout(STREAM_FATE_LIMIT, connection.closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(close)) => Some(close.error_code.into_inner()),
        _ => None,
    }
}

/// How long a raw client waits for a stream's fate.
pub const STREAM_FATE_LIMIT: Duration = Duration::from_secs(10);

/// How a request stream ended for the raw client: the peer's STOP_SENDING
/// code, and its RESET_STREAM code (or `None` if it did neither in time).
pub async fn stream_fate(
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> (Option<u64>, Option<u64>) {
    let stopped = tokio::time::timeout(STREAM_FATE_LIMIT, send.stopped())
        .await
        .ok()
        .and_then(|r| r.ok().flatten())
        .map(|c| c.into_inner());
    let reset = tokio::time::timeout(STREAM_FATE_LIMIT, recv.received_reset())
        .await
        .ok()
        .and_then(|r| r.ok().flatten())
        .map(|c| c.into_inner());
    (stopped, reset)
}

/// A malicious HTTP/3 server: it answers every request with a HEADERS frame
/// declaring 4 GiB and streams zeros until the client stops it (or a cap,
/// so a client that never stops does not fill the machine).
#[derive(Debug)]
pub struct EndlessHeadServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Its key.
    pub pin: KeyPin,
    /// Bytes of the endless heads written so far.
    pub written: Arc<AtomicU64>,
    /// STOP_SENDING codes the clients answered with.
    pub stops: Arc<std::sync::Mutex<Vec<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EndlessHeadServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EndlessHeadServer {
    /// Starts on a loopback port; each endless head stops after `cap` bytes.
    pub fn start(cap: u64) -> Result<Self, RawError> {
        let identity = Identity::generate().map_err(|e| std::io::Error::other(e.to_string()))?;
        let tuning = Tuning::relay(Duration::from_secs(30), endpoint::OUTER_MTU);
        let config = endpoint::server_config(&identity, &tuning)?;
        let endpoint = udp::endpoint(SocketAddr::from(([127, 0, 0, 1], 0)), Some(config))?;
        let addr = endpoint.local_addr()?;
        let written = Arc::new(AtomicU64::new(0));
        let stops = Arc::new(std::sync::Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (written, stops) = (Arc::clone(&written), Arc::clone(&stops));
            async move {
                while let Some(incoming) = endpoint.accept().await {
                    let (written, stops) = (Arc::clone(&written), Arc::clone(&stops));
                    tokio::spawn(async move {
                        let Ok(connection) = incoming.await else {
                            return;
                        };
                        let Ok(mut control) = connection.open_uni().await else {
                            return;
                        };
                        let _ = control.write_all(&control_stream_start()).await;
                        while let Ok((mut send, _recv)) = connection.accept_bi().await {
                            let (written, stops) = (Arc::clone(&written), Arc::clone(&stops));
                            tokio::spawn(async move {
                                let header = frame_header(frame_type::HEADERS, 1 << 32);
                                if send.write_all(&header).await.is_err() {
                                    return;
                                }
                                let end = write_zeros(&mut send, cap).await;
                                written.fetch_add(end.written, Ordering::Relaxed);
                                if let Some(code) = end.stopped
                                    && let Ok(mut stops) = stops.lock()
                                {
                                    stops.push(code);
                                }
                            });
                        }
                        drop(control);
                    });
                }
            }
        });
        Ok(EndlessHeadServer {
            addr,
            pin: identity.pin(),
            written,
            stops,
            task,
        })
    }
}

/// The resident memory (VmRSS) of process `pid`, in bytes.
pub fn resident_memory(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
