//! The prober's own ends of its tests: a TCP [`Sink`] that sends as fast as
//! it can to whoever shows a ticket the prober issued, and a UDP [`Echo`]
//! that answers datagrams carrying the prober's secret.
//!
//! Both listen on an address the egress must reach (the validator's
//! measurement address, never its published service address), so anyone
//! may connect to them. Without a ticket the sink sends nothing (an open
//! "send as fast as you can" server would be a flooding tool for
//! everyone), a ticket works once and for a bounded time, and a bounded
//! number of connections may wait for their ticket at once. The echo
//! answers only datagrams that start with its secret, with the same size
//! (no amplification), at a bounded rate.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

/// A ticket's length: 256 bits, unguessable.
pub const TICKET_LEN: usize = 32;
/// The echo secret's length.
pub const ECHO_SECRET_LEN: usize = 16;
/// Connections the sink serves (or waits on for a ticket) at once.
const MAX_SINK_CONNECTIONS: usize = 64;
/// How long a connection may take to show its ticket.
const TICKET_WAIT: Duration = Duration::from_secs(10);
/// Bytes per write: large writes keep the sink cheap at high rates.
const SINK_WRITE: usize = 256 * 1024;
/// The most echo answers per second (a probe sends a few per test).
const MAX_ECHOES_PER_SECOND: u32 = 1_000;
/// The largest echo datagram answered.
const MAX_ECHO_LEN: usize = 1_500;

/// A one-time permission to draw from the sink for a bounded time.
pub type Ticket = [u8; TICKET_LEN];

/// Tickets issued and not yet used, with the longest each may send for.
type Tickets = Arc<Mutex<HashMap<Ticket, Duration>>>;

/// A TCP server that sends as fast as it can, for a ticket's time, to the
/// connection that first sends the ticket.
#[derive(Debug)]
pub struct Sink {
    addr: SocketAddr,
    tickets: Tickets,
    task: JoinHandle<()>,
}

impl Sink {
    /// Listens on `ip` (a port of the system's choosing).
    pub async fn bind(ip: IpAddr) -> std::io::Result<Sink> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let addr = listener.local_addr()?;
        let tickets = Tickets::default();
        let task = tokio::spawn(serve_sink(listener, Arc::clone(&tickets)));
        Ok(Sink {
            addr,
            tickets,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A new ticket, valid once, for sending up to `send_for`.
    pub fn issue(&self, send_for: Duration) -> Ticket {
        let mut ticket = [0; TICKET_LEN];
        OsRng.fill_bytes(&mut ticket);
        lock(&self.tickets).insert(ticket, send_for);
        ticket
    }

    /// Withdraws `ticket` if unused (a test that never connected).
    pub fn withdraw(&self, ticket: &Ticket) {
        lock(&self.tickets).remove(ticket);
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain data: a panic elsewhere leaves it usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn serve_sink(listener: TcpListener, tickets: Tickets) {
    let slots = Arc::new(Semaphore::new(MAX_SINK_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors or similar: try again shortly.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        // Over the bound the connection is dropped at once.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let tickets = Arc::clone(&tickets);
        tokio::spawn(async move {
            let _slot = slot;
            let _ = send_for_ticket(stream, &tickets).await;
        });
    }
}

async fn send_for_ticket(mut stream: TcpStream, tickets: &Tickets) -> std::io::Result<()> {
    let mut ticket = [0; TICKET_LEN];
    tokio::time::timeout(TICKET_WAIT, stream.read_exact(&mut ticket))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
    let Some(send_for) = lock(tickets).remove(&ticket) else {
        return Ok(());
    };
    let _ = stream.set_nodelay(true);
    let data = vec![0u8; SINK_WRITE];
    let until = tokio::time::Instant::now() + send_for;
    // Until the prober closes (it stops reading when its test is over) or
    // the ticket's time is up.
    let sending = async { while stream.write_all(&data).await.is_ok() {} };
    let _ = tokio::time::timeout_at(until, sending).await;
    Ok(())
}

/// A UDP echo answering datagrams that start with its secret.
#[derive(Debug)]
pub struct Echo {
    addr: SocketAddr,
    secret: [u8; ECHO_SECRET_LEN],
    task: JoinHandle<()>,
}

impl Echo {
    /// Listens on `ip` (a port of the system's choosing).
    pub async fn bind(ip: IpAddr) -> std::io::Result<Echo> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        let addr = socket.local_addr()?;
        let mut secret = [0; ECHO_SECRET_LEN];
        OsRng.fill_bytes(&mut secret);
        let task = tokio::spawn(serve_echo(socket, secret));
        Ok(Echo { addr, secret, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The secret a probe must start with.
    pub fn secret(&self) -> [u8; ECHO_SECRET_LEN] {
        self.secret
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_echo(socket: UdpSocket, secret: [u8; ECHO_SECRET_LEN]) {
    let mut buf = vec![0u8; MAX_ECHO_LEN];
    let mut window = Instant::now();
    let mut answered = 0u32;
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            continue; // e.g. an ICMP error from an earlier answer
        };
        if len < ECHO_SECRET_LEN || buf[..ECHO_SECRET_LEN] != secret {
            continue;
        }
        if window.elapsed() >= Duration::from_secs(1) {
            window = Instant::now();
            answered = 0;
        }
        if answered >= MAX_ECHOES_PER_SECOND {
            continue;
        }
        answered += 1;
        let _ = socket.send_to(&buf[..len], from).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    async fn drain(mut stream: TcpStream) -> usize {
        let mut buf = vec![0; 65_536];
        let mut total = 0;
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    }

    #[tokio::test]
    async fn the_sink_sends_only_for_a_ticket_and_only_once() {
        let sink = Sink::bind(LOOPBACK).await.unwrap();
        let ticket = sink.issue(Duration::from_millis(200));
        // A stranger's guess gets nothing.
        let mut stranger = TcpStream::connect(sink.addr()).await.unwrap();
        stranger.write_all(&[7; TICKET_LEN]).await.unwrap();
        assert_eq!(drain(stranger).await, 0);
        // The ticket gets data for its time, then the sink closes.
        let mut holder = TcpStream::connect(sink.addr()).await.unwrap();
        holder.write_all(&ticket).await.unwrap();
        assert!(drain(holder).await > 1_000_000);
        // Used: a replay gets nothing.
        let mut replay = TcpStream::connect(sink.addr()).await.unwrap();
        replay.write_all(&ticket).await.unwrap();
        assert_eq!(drain(replay).await, 0);
    }

    #[tokio::test]
    async fn the_echo_answers_only_its_secret() {
        let echo = Echo::bind(LOOPBACK).await.unwrap();
        let client = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
        client.connect(echo.addr()).await.unwrap();
        let mut probe = echo.secret().to_vec();
        probe.extend_from_slice(b"seq 1");
        client.send(b"not the secret, long enough").await.unwrap();
        client.send(&probe).await.unwrap();
        let mut buf = [0; 100];
        let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        // The first answer is the probe's: the stranger got none.
        assert_eq!(&buf[..n], &probe[..]);
    }
}
