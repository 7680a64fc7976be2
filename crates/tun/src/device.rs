//! The TUN device, and the small adapter that gives ipstack the
//! `AsyncRead`/`AsyncWrite` it wants: one read is one IP packet, one write
//! one packet. Two tasks move packets between the device and bounded queues;
//! a full queue towards the device drops the packet, as a full interface
//! queue would.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tun_rs::{AsyncDevice, DeviceBuilder};

use crate::plan::{TUN_V4, TUN_V6};

/// Packets queued each way.
const QUEUE: usize = 1024;

/// Creates the TUN device `name` with the tunnel's addresses and `mtu`, up.
pub fn create(name: &str, mtu: u16) -> std::io::Result<AsyncDevice> {
    DeviceBuilder::new()
        .name(name)
        .mtu(mtu)
        .ipv4(TUN_V4, 32, None)
        .ipv6(TUN_V6, 128)
        .build_async()
}

/// The device as a byte stream of whole packets.
#[derive(Debug)]
pub struct PacketStream {
    incoming: mpsc::Receiver<Vec<u8>>,
    outgoing: mpsc::Sender<Vec<u8>>,
    tasks: [tokio::task::JoinHandle<()>; 2],
}

impl PacketStream {
    /// Starts moving packets between `device` and the stream.
    pub fn new(device: AsyncDevice, mtu: u16) -> PacketStream {
        let device = Arc::new(device);
        let (to_stack, incoming) = mpsc::channel::<Vec<u8>>(QUEUE);
        let (outgoing, mut to_device) = mpsc::channel::<Vec<u8>>(QUEUE);
        let reader = Arc::clone(&device);
        let read = tokio::spawn(async move {
            let mut buf = vec![0u8; usize::from(mtu) + 64];
            while let Ok(n) = reader.recv(&mut buf).await {
                if to_stack.send(buf[..n].to_vec()).await.is_err() {
                    return;
                }
            }
        });
        let write = tokio::spawn(async move {
            while let Some(packet) = to_device.recv().await {
                if device.send(&packet).await.is_err() {
                    tracing::debug!("tun write failed");
                }
            }
        });
        PacketStream {
            incoming,
            outgoing,
            tasks: [read, write],
        }
    }
}

impl Drop for PacketStream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl AsyncRead for PacketStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.incoming.poll_recv(cx) {
            Poll::Ready(Some(packet)) => {
                let n = packet.len().min(buf.remaining());
                buf.put_slice(&packet[..n]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(None) => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for PacketStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.outgoing.try_send(buf.to_vec()) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Poll::Ready(Ok(buf.len())),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
