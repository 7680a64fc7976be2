//! quinn configurations for the two QUIC connections of a path:
//! client→ingress (outer), client→egress (inner, inside the outer's datagrams).
//!
//! Congestion control of nested connections: [`crate::congestion`]; each
//! process chooses its controller in its config (`congestion`), measured
//! by `bench/run --congestion`. The outer connection keeps a controller of
//! its own (RFC 9298 §9 and RFC 9297 §5: a tunnel endpoint cannot know for
//! certain that the inner traffic is congestion-controlled).

use std::sync::Arc;
use std::time::Duration;

use openrelay_config::CongestionControl;
use openrelay_types::KeyPin;
use quinn::congestion::{ControllerFactory, NewRenoConfig};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};

use crate::congestion::{CubicConfig, DeliveryRateConfig, LossTolerantConfig};
use crate::identity::Identity;
use crate::tls::{self, TlsError};

/// The outer connections' packet size (UDP payload), fixed: large enough to
/// carry a whole [`INNER_MTU`] packet in a DATAGRAM frame from the very first
/// packet, small enough for the paths the internet carries (RFC 9000 §14:
/// 1200 is guaranteed, 1350 nearly everywhere).
pub const OUTER_MTU: u16 = 1350;

/// The inner connections' packet size (client↔egress), fixed so that every
/// inner packet fits in an outer datagram at [`OUTER_MTU`]: 1350 less the
/// outer packet's overhead with the longest connection ID (41 bytes), the
/// DATAGRAM frame's bound (17) and the HTTP datagram header (up to 5).
///
/// Neither size changes during a connection (no path MTU discovery, and the
/// floor is the size itself). Discovery raised the outer connection to 1452
/// and the inner one to 1389 on Ethernet, but loss bursts at a full
/// drop-tail queue look like an MTU black hole to quinn: it dropped the outer
/// connection back to 1350, where no 1389-byte inner packet fits, and the
/// inner connection lost every full-size packet until its own detector gave
/// up on 1389 (measured: 15 000 packets lost and 0.6× direct's goodput, in a
/// quarter of the benchmark's runs). 8 % more packets per byte buys a path
/// whose packets always fit.
pub const INNER_MTU: u16 = 1280;

/// Connections carried in a connect-udp flow of an inner connection: the
/// client's directory fetches and token purchases, and the servers they
/// reach (registry, issuer). QUIC's minimum (RFC 9000 §14.1), which fits an
/// inner datagram at [`INNER_MTU`] (at least 1217 bytes).
pub const TUNNELLED_MTU: u16 = 1200;

/// Bytes a peer may send on one stream ahead of what we have read.
pub const STREAM_RECEIVE_WINDOW: u32 = 16 << 20;

/// Bytes a peer may send on all streams of a connection ahead of what we
/// have read.
pub const CONNECTION_RECEIVE_WINDOW: u32 = 32 << 20;

/// Ack-eliciting packets a peer may receive before it must acknowledge.
pub const ACK_ELICITING_THRESHOLD: u32 = 9;

/// Timing and sizing knobs of one connection.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Close the connection after this long without hearing from the peer.
    pub idle_timeout: Duration,
    /// Send a keep-alive this often (None: never).
    pub keepalive: Option<Duration>,
    /// Packet size (UDP payload) for the whole connection.
    pub mtu: u16,
    /// Most concurrent request streams the peer may open.
    pub max_concurrent_bidi_streams: u32,
    /// Most concurrent unidirectional streams the peer may open.
    pub max_concurrent_uni_streams: u32,
    /// Bytes the peer may send on one stream ahead of what we read.
    pub stream_receive_window: u32,
    /// Bytes the peer may send on all streams ahead of what we read: what
    /// one connection can make us hold.
    pub connection_receive_window: u32,
    /// Bytes of datagrams queued for sending before the oldest are dropped.
    pub datagram_send_buffer: usize,
    /// The sender's congestion controller (see the module documentation).
    pub congestion: CongestionControl,
}

impl Tuning {
    /// A server's side (relays, registry, issuer): the ingress serves outer
    /// connections ([`OUTER_MTU`]), the egress inner ones ([`INNER_MTU`]).
    /// The stream limits are the server's
    /// ([`crate::limits::ServerLimits`], applied by [`crate::server::bind`]).
    pub fn relay(idle_timeout: Duration, mtu: u16) -> Self {
        let limits = crate::limits::ServerLimits::service();
        Tuning {
            idle_timeout,
            keepalive: None,
            mtu,
            max_concurrent_bidi_streams: limits.max_concurrent_bidi_streams,
            max_concurrent_uni_streams: limits.max_concurrent_uni_streams,
            stream_receive_window: limits.stream_receive_window,
            connection_receive_window: limits.connection_receive_window,
            datagram_send_buffer: 4 << 20,
            congestion: CongestionControl::default(),
        }
    }

    /// The client's side of a path (outer or inner connection).
    pub fn client(idle_timeout: Duration, keepalive: Duration, mtu: u16) -> Self {
        Tuning {
            idle_timeout,
            keepalive: Some(keepalive),
            mtu,
            // The client opens requests; the relays open none towards it.
            max_concurrent_bidi_streams: 0,
            // The server's control and QPACK streams, and a few to grease
            // with (RFC 9114 §6.2.3).
            max_concurrent_uni_streams: 8,
            stream_receive_window: STREAM_RECEIVE_WINDOW,
            connection_receive_window: CONNECTION_RECEIVE_WINDOW,
            datagram_send_buffer: 4 << 20,
            congestion: CongestionControl::default(),
        }
    }

    /// The same tuning with another congestion controller.
    pub fn with_congestion(mut self, congestion: CongestionControl) -> Self {
        self.congestion = congestion;
        self
    }

    fn transport(&self) -> TransportConfig {
        let mut transport = TransportConfig::default();
        // Every inner ACK is a packet that crosses both hops again (encrypted
        // twice, forwarded by the ingress), and outer datagrams draw ACKs of
        // their own; acknowledging every 2nd packet costs about a third of
        // the relays' CPU. Ask peers (draft-ietf-quic-ack-frequency) to ACK
        // every 10th ack-eliciting packet; the max ACK delay still bounds
        // how stale an ACK can be, and reordering still triggers one at once.
        let mut ack_frequency = quinn::AckFrequencyConfig::default();
        ack_frequency.ack_eliciting_threshold(VarInt::from_u32(ACK_ELICITING_THRESHOLD));
        transport.ack_frequency_config(Some(ack_frequency));
        // Durations that do not fit a varint of milliseconds fall back to quinn's default.
        if let Ok(timeout) = IdleTimeout::try_from(self.idle_timeout) {
            transport.max_idle_timeout(Some(timeout));
        }
        transport
            .keep_alive_interval(self.keepalive)
            // A fixed size (see `INNER_MTU`): no discovery, and a floor
            // equal to it so black-hole detection has nowhere to go.
            .initial_mtu(self.mtu)
            .min_mtu(self.mtu)
            .mtu_discovery_config(None)
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_concurrent_bidi_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(self.max_concurrent_uni_streams))
            .datagram_receive_buffer_size(Some(4 << 20))
            .datagram_send_buffer_size(self.datagram_send_buffer)
            // Flow control must not be what limits a download: a stream
            // needs a window of at least the bandwidth-delay product, and
            // the delay includes the queue the sender fills (1 Gbit/s over a 45 ms
            // path whose queue adds up to one more round trip: ~11 MB).
            // The connection window bounds what one peer can make us buffer
            // across all its streams.
            .stream_receive_window(VarInt::from_u32(self.stream_receive_window))
            .receive_window(VarInt::from_u32(self.connection_receive_window))
            .send_window(CONNECTION_RECEIVE_WINDOW.into());
        transport.congestion_controller_factory(match self.congestion {
            CongestionControl::DeliveryRate => {
                Arc::new(DeliveryRateConfig::default()) as Arc<dyn ControllerFactory + Send + Sync>
            }
            CongestionControl::Cubic => {
                Arc::new(LossTolerantConfig(Arc::new(CubicConfig::default())))
            }
            CongestionControl::NewReno => {
                Arc::new(LossTolerantConfig(Arc::new(NewRenoConfig::default())))
            }
        });
        transport
    }
}

/// A relay's QUIC server configuration.
pub fn server_config(
    identity: &Identity,
    tuning: &Tuning,
) -> Result<quinn::ServerConfig, TlsError> {
    let tls = tls::server_config(identity)?;
    let crypto = QuicServerConfig::try_from(tls)
        .map_err(|_| TlsError::Rustls(rustls::Error::General("no TLS 1.3 suite".into())))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(tuning.transport()));
    Ok(config)
}

/// A client configuration that only accepts the relay holding `pin`.
pub fn client_config(pin: KeyPin, tuning: &Tuning) -> Result<quinn::ClientConfig, TlsError> {
    let tls = tls::client_config(pin)?;
    let crypto = QuicClientConfig::try_from(tls)
        .map_err(|_| TlsError::Rustls(rustls::Error::General("no TLS 1.3 suite".into())))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(tuning.transport()));
    Ok(config)
}

/// Logs a connection's transport statistics at debug level: aggregates only,
/// no addresses. `which` names the connection (`outer`, `inner`, `client`).
pub fn log_connection_stats(connection: &quinn::Connection, which: &'static str) {
    let stats = connection.stats();
    tracing::debug!(
        which,
        lost_packets = stats.path.lost_packets,
        congestion_events = stats.path.congestion_events,
        mtu = stats.path.current_mtu,
        cwnd = stats.path.cwnd,
        rtt_us = stats.path.rtt.as_micros() as u64,
        sent_packets = stats.path.sent_packets,
        datagrams_sent = stats.frame_tx.datagram,
        "connection statistics"
    );
}
