//! The legitimate client: does a real request still get through?
//!
//! * ingress: a connect-udp tunnel to an egress relay (RFC 9298), and a QUIC
//!   handshake with that egress, pinned to its key, inside the tunnel's
//!   datagrams (what every client path does);
//! * egress: a CONNECT (RFC 9114 §4.4) to a TCP echo server run here, and
//!   bytes echoed through it;
//! * registry: `GET /v1/directory`; issuer: `GET` its token key directory
//!   (RFC 9578 §4), each with openrelay's own pinned HTTP/3 client.
//!
//! Each probe uses a fresh connection from its own address, as a new user
//! would, so what the attack did to its own connections does not help or
//! hurt it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openrelay_transport::call::PinnedConnection;
use openrelay_transport::datagrams::{DatagramRouter, DatagramSender, Route};
use openrelay_transport::endpoint::{self, INNER_MTU, Tuning};
use openrelay_transport::tunnel_socket::TunnelSocket;
use openrelay_types::KeyPin;
use openrelay_wire::masque;
use openrelay_wire::target::Target as WireTarget;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use crate::h3raw::{self, RawConnection, RawError, frame_type};
use crate::target::{Role, Target};

/// The registry's directory (`openrelay_registry_client::paths::DIRECTORY`).
pub const REGISTRY_DIRECTORY: &str = "/v1/directory";
/// The issuer's key directory (RFC 9578 §4).
pub const ISSUER_DIRECTORY: &str = "/.well-known/private-token-issuer-directory";

/// How long one probe may take before it counts as failed.
pub const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Connecting or a stream failed.
    #[error(transparent)]
    Raw(#[from] RawError),
    /// The request stream ended without a response head.
    #[error("no response")]
    NoResponse,
    /// The tunnel or CONNECT was answered but nothing came back through it.
    #[error("nothing came back through the tunnel")]
    NoEcho,
    /// The handshake with the egress inside the tunnel failed.
    #[error("inner handshake: {0}")]
    Inner(quinn::ConnectionError),
    /// A service answered with an unexpected status.
    #[error("status {0}")]
    Status(u16),
    /// A service request failed.
    #[error("request: {0}")]
    Request(openrelay_transport::call::CallError),
    /// The probe took longer than [`PROBE_LIMIT`].
    #[error("timed out")]
    Timeout,
    /// The probe has nothing to probe with (e.g. no egress for an ingress).
    #[error("cannot probe: {0}")]
    Setup(&'static str),
}

/// An egress relay an ingress probe tunnels to.
#[derive(Debug, Clone, Copy)]
pub struct Via {
    /// Its address (one of the ingress's `egress_relays`).
    pub addr: SocketAddr,
    /// Its key.
    pub key: KeyPin,
}

/// A legitimate client of one target.
#[derive(Debug, Clone)]
pub struct Prober {
    target: Target,
    /// Where probes come from.
    source: IpAddr,
    /// The egress an ingress probe tunnels to.
    via: Option<Via>,
    /// The echo server an egress probe CONNECTs to.
    echo: Option<SocketAddr>,
    /// Statuses that count as served (registry, issuer).
    expected: Vec<u16>,
}

impl Prober {
    /// A prober of `target` from `source`; `via` is needed for an ingress,
    /// `echo` for an egress (see [`tcp_echo`]).
    pub fn new(target: Target, source: IpAddr, via: Option<Via>, echo: Option<SocketAddr>) -> Self {
        // A registry that has no signed directory yet answers 404: the
        // service answered, which is what is probed.
        let expected = match target.role {
            Role::Registry => vec![200, 404],
            _ => vec![200],
        };
        Prober {
            target,
            source,
            via,
            echo,
            expected,
        }
    }

    /// One probe: its duration, or why it failed.
    pub async fn probe(&self) -> Result<Duration, ProbeError> {
        let started = Instant::now();
        let result = tokio::time::timeout(PROBE_LIMIT, async {
            match self.target.role {
                Role::Ingress => self.tunnel().await,
                Role::Egress => self.connect().await,
                Role::Registry => self.get(REGISTRY_DIRECTORY).await,
                Role::Issuer => self.get(ISSUER_DIRECTORY).await,
            }
        })
        .await;
        match result {
            Ok(Ok(())) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ProbeError::Timeout),
        }
    }

    async fn raw(&self) -> Result<(quinn::Endpoint, RawConnection), ProbeError> {
        let endpoint = h3raw::client_endpoint(self.source)?;
        let connection = RawConnection::connect(
            &endpoint,
            self.target.addr,
            self.target.key,
            self.target.role.mtu(),
            PROBE_LIMIT,
        )
        .await?;
        Ok((endpoint, connection))
    }

    /// connect-udp to the egress, then a pinned QUIC handshake with it
    /// through the tunnel.
    async fn tunnel(&self) -> Result<(), ProbeError> {
        let via = self
            .via
            .ok_or(ProbeError::Setup("no egress to tunnel to"))?;
        let endpoint = h3raw::client_endpoint(self.source)?;
        let tunnel =
            Tunnel::open(&endpoint, &self.target, via, &[], Duration::from_secs(1)).await?;
        tunnel.close();
        Ok(())
    }

    /// CONNECT to the echo server and one echoed message.
    async fn connect(&self) -> Result<(), ProbeError> {
        let echo = self.echo.ok_or(ProbeError::Setup("no echo server"))?;
        let (_endpoint, raw) = self.raw().await?;
        let authority = echo.to_string();
        let message = b"openrelay-abuse legitimate client";
        let mut bytes =
            h3raw::headers_frame(&[(":method", "CONNECT"), (":authority", authority.as_str())]);
        bytes.extend(h3raw::frame(frame_type::DATA, message));
        let (mut send, mut recv) = raw.request(&bytes).await?;
        let mut reader = h3raw::FrameReader::default();
        let mut echoed = Vec::new();
        let mut answered = false;
        while echoed.len() < message.len() {
            let chunk = recv
                .read_chunk(16 * 1024, true)
                .await
                .map_err(RawError::Read)?;
            let Some(chunk) = chunk else {
                break;
            };
            reader.push(chunk.bytes);
            while let Some((kind, payload)) = reader.next_frame() {
                answered |= kind == frame_type::HEADERS;
                if kind == frame_type::DATA {
                    echoed.extend(payload);
                }
            }
        }
        let _ = send.finish();
        raw.close();
        match (answered, echoed.starts_with(message)) {
            (_, true) => Ok(()),
            (true, false) => Err(ProbeError::NoEcho),
            (false, false) => Err(ProbeError::NoResponse),
        }
    }

    /// `GET path` with openrelay's pinned client.
    async fn get(&self, path: &str) -> Result<(), ProbeError> {
        let endpoint = h3raw::client_endpoint(self.source)?;
        let connection = PinnedConnection::connect(
            &endpoint,
            self.target.addr,
            self.target.key,
            self.target.role.mtu(),
        )
        .await
        .map_err(ProbeError::Request)?;
        let response = connection
            .request(http::Method::GET, path, &[], Vec::new())
            .await
            .map_err(ProbeError::Request)?;
        if self.expected.contains(&response.status) {
            Ok(())
        } else {
            Err(ProbeError::Status(response.status))
        }
    }
}

/// A client's path through an ingress: a connect-udp tunnel (RFC 9298) on
/// its own outer connection to an egress relay, and a pinned QUIC
/// connection with that egress inside the tunnel's datagrams, which pings
/// the egress every `keep_alive` (each ping and its acknowledgement cross
/// the ingress: a keep-alive echo).
#[derive(Debug)]
pub struct Tunnel {
    outer: RawConnection,
    /// The request stream; dropping it would end the tunnel.
    _request: (quinn::SendStream, quinn::RecvStream),
    reader: AbortOnDrop,
    /// The tunnel's entry in the router's table.
    _route: Route,
    /// The inner connection's endpoint (on the tunnel's socket).
    _inner_endpoint: quinn::Endpoint,
    /// The QUIC connection with the egress inside the tunnel.
    pub inner: quinn::Connection,
}

/// A task aborted when this is dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<quinn::ConnectionError>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Tunnel {
    /// Opens a tunnel from `endpoint` through the ingress `ingress` to
    /// `via`, with `extra` request fields (e.g. a token's `authorization`),
    /// and the inner connection's handshake, within [`PROBE_LIMIT`] each.
    pub async fn open(
        endpoint: &quinn::Endpoint,
        ingress: &Target,
        via: Via,
        extra: &[(&str, &str)],
        keep_alive: Duration,
    ) -> Result<Self, ProbeError> {
        let outer = RawConnection::connect(
            endpoint,
            ingress.addr,
            ingress.key,
            ingress.role.mtu(),
            PROBE_LIMIT,
        )
        .await?;
        let authority = ingress.addr.to_string();
        let path = masque::udp_path(&WireTarget::from_socket_addr(via.addr));
        let mut fields = h3raw::connect_udp_fields(&authority, &path);
        fields.extend_from_slice(extra);
        let (send, mut recv) = outer.request(&h3raw::headers_frame(&fields)).await?;
        let router = DatagramRouter::new();
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        let stream_id = u64::from(send.id());
        let route = router
            .register(stream_id, Arc::new(tx))
            .map_err(|_| ProbeError::Setup("no route"))?;
        let reader = AbortOnDrop(tokio::spawn(
            Arc::clone(&router).run(outer.connection.clone()),
        ));
        let opened = async {
            if !h3raw::response_accepted(&mut recv, PROBE_LIMIT).await? {
                return Err(ProbeError::NoResponse);
            }
            let sender = DatagramSender::new(outer.connection.clone(), stream_id)
                .map_err(|_| ProbeError::Setup("no sender"))?;
            let local = endpoint.local_addr().map_err(RawError::Io)?;
            let socket = TunnelSocket::new(sender, rx, local, via.addr);
            let inner_endpoint = quinn::Endpoint::new_with_abstract_socket(
                quinn::EndpointConfig::default(),
                None,
                Arc::new(socket),
                Arc::new(quinn::TokioRuntime),
            )
            .map_err(RawError::Io)?;
            let tuning = Tuning::client(PROBE_LIMIT.max(keep_alive * 3), keep_alive, INNER_MTU);
            let config = endpoint::client_config(via.key, &tuning).map_err(RawError::Tls)?;
            let connecting = inner_endpoint
                .connect_with(config, via.addr, &via.addr.ip().to_string())
                .map_err(RawError::Connect)?;
            let inner = tokio::time::timeout(PROBE_LIMIT, connecting)
                .await
                .map_err(|_| ProbeError::Timeout)?
                .map_err(ProbeError::Inner)?;
            Ok((inner_endpoint, inner))
        }
        .await;
        match opened {
            Ok((inner_endpoint, inner)) => Ok(Tunnel {
                outer,
                _route: route,
                _request: (send, recv),
                reader,
                _inner_endpoint: inner_endpoint,
                inner,
            }),
            Err(e) => {
                outer.close();
                Err(e)
            }
        }
    }

    /// Whether the inner connection (and so the tunnel) is still up.
    pub fn is_up(&self) -> bool {
        self.inner.close_reason().is_none() && !self.reader.0.is_finished()
    }

    /// Closes the inner connection, then the outer one.
    pub fn close(&self) {
        self.inner
            .close(quinn::VarInt::from_u32(0x100), b"probe done");
        self.outer.close();
    }
}

/// A TCP echo server on `bind` (port 0), for egress probes; runs until the
/// runtime ends.
pub async fn tcp_echo(bind: IpAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((bind, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = tcp.read(&mut buf).await {
                    if n == 0 || tcp.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// A UDP socket on `bind` (port 0) that takes and drops whatever arrives:
/// the destination of UDP flows opened at an egress. Runs until the
/// runtime ends.
pub async fn udp_sink(bind: IpAddr) -> std::io::Result<SocketAddr> {
    let socket = UdpSocket::bind((bind, 0)).await?;
    let addr = socket.local_addr()?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while socket.recv_from(&mut buf).await.is_ok() {}
    });
    Ok(addr)
}
