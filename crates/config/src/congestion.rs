//! `congestion`: the QUIC congestion controller of a process's connections
//! (client `[path] congestion`, relay top-level `congestion`). Why each one
//! fits or does not: `openrelay_transport::congestion` and `docs/BENCHMARKS.md`.

use serde::{Deserialize, Serialize};

/// Which congestion controller a QUIC connection's sender runs. Every one
/// treats loss below 2 % of a round as noise, not congestion: one lost
/// outer packet is a loss for both nested connections, and halving both
/// windows on random loss runs a path at a small fraction of its capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CongestionControl {
    /// A window of twice the measured delivery rate times the minimum RTT
    /// (BBR's window rule), cut to 0.7× by loss above 2 % of a round. As
    /// fast as Cubic on the benchmark's lossy path; needs more CPU per byte
    /// and loses to Cubic where the hosts, not the network, are the
    /// bottleneck (docs/BENCHMARKS.md).
    DeliveryRate,
    /// Cubic (RFC 9438) with HyStart++ slow start (RFC 9406), openrelay's
    /// default: fills the bottleneck's queue before it backs off, and
    /// leaves slow start when the round trip starts to grow.
    #[default]
    Cubic,
    /// quinn's NewReno (RFC 9002 §7).
    #[serde(rename = "newreno")]
    NewReno,
}
