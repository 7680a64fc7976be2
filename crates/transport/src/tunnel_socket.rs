//! A [`quinn::AsyncUdpSocket`] whose packets travel as HTTP datagrams of a
//! connect-udp request on another QUIC connection (RFC 9298 §5). The client
//! runs its inner QUIC connection to the egress over one of these, so the
//! ingress relays the inner packets without being able to read them.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, SendDatagramError, UdpPoller};
use tokio::sync::mpsc;

use crate::datagrams::DatagramSender;

/// Packets the inner endpoint may pass in one send: quinn's own cap (a
/// connection hands at most 10 segments to one transmit).
const TRANSMIT_SEGMENTS: usize = 10;

/// A virtual UDP socket inside a connect-udp tunnel.
pub struct TunnelSocket {
    sender: DatagramSender,
    incoming: Mutex<mpsc::Receiver<Bytes>>,
    local: SocketAddr,
    peer: SocketAddr,
}

impl fmt::Debug for TunnelSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelSocket").finish_non_exhaustive()
    }
}

impl TunnelSocket {
    /// A socket that sends through `sender` and receives what the tunnel's
    /// route delivers to `incoming`. Received packets appear to come from
    /// `peer` (the tunnel's target); `local` is reported as our address.
    pub fn new(
        sender: DatagramSender,
        incoming: mpsc::Receiver<Bytes>,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Self {
        TunnelSocket {
            sender,
            incoming: Mutex::new(incoming),
            local,
            peer,
        }
    }

    fn send(&self, contents: &[u8], segment: usize) -> io::Result<()> {
        match self.sender.send_segments(contents, segment) {
            // Too large: cannot happen at INNER_MTU, but a peer's smaller
            // datagram limit would make it plain packet loss.
            // Lost: the outer connection is gone; the path manager notices and
            // closes the inner connection, so treat it as packet loss meanwhile.
            Ok(())
            | Err(SendDatagramError::TooLarge)
            | Err(SendDatagramError::ConnectionLost(_)) => Ok(()),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for TunnelSocket {
    fn create_io_poller(self: std::sync::Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        // Sends never block: the outer connection queues datagrams and drops
        // the oldest when its buffer is full, like a router queue.
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let segment = transmit.segment_size.unwrap_or(transmit.contents.len());
        self.send(transmit.contents, segment)
    }

    fn max_transmit_segments(&self) -> usize {
        // The endpoint may hand over a GSO-style batch of packets; each
        // becomes a datagram, framed in one allocation (`send_segments`).
        TRANSMIT_SEGMENTS
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut incoming = self
            .incoming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut filled = 0;
        while filled < bufs.len().min(meta.len()) {
            let packet = if filled == 0 {
                match incoming.poll_recv(cx) {
                    Poll::Ready(Some(packet)) => packet,
                    // Closed: the tunnel is gone; stay silent and let the
                    // inner connection time out or be closed by its owner.
                    Poll::Ready(None) | Poll::Pending => return Poll::Pending,
                }
            } else {
                match incoming.try_recv() {
                    Ok(packet) => packet,
                    Err(_) => break,
                }
            };
            let buf = &mut bufs[filled];
            if packet.len() > buf.len() {
                continue;
            }
            buf[..packet.len()].copy_from_slice(&packet);
            meta[filled] = RecvMeta {
                addr: self.peer,
                len: packet.len(),
                stride: packet.len(),
                ecn: None,
                dst_ip: None,
            };
            filled += 1;
        }
        Poll::Ready(Ok(filled))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn may_fragment(&self) -> bool {
        // Datagrams are never fragmented: too-large ones are dropped.
        false
    }
}
