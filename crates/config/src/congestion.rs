//! `congestion`: the QUIC congestion controller of a process's connections
//! (client `[path] congestion`, relay top-level `congestion`). Why each one
//! fits or does not: `openrelay_transport::endpoint` and `docs/BENCHMARKS.md`.

use serde::{Deserialize, Serialize};

/// Which congestion controller a QUIC connection's sender runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CongestionControl {
    /// Model-based (quinn's BBRv1 behind a 2 % loss-rate threshold, as in
    /// BBRv2/v3): paces at the measured bottleneck rate and does not shrink
    /// its window on random loss, so openrelay's nested connections keep
    /// their rate on a lossy link. openrelay's default.
    #[default]
    Bbr,
    /// Loss-based (RFC 9438), quinn's own default: cuts its window on every
    /// loss, so a path with random loss runs far below its capacity (0.02×
    /// direct at 0.1 % loss, docs/BENCHMARKS.md).
    Cubic,
    /// Loss-based (RFC 9002 §7), halves on every loss.
    NewReno,
}
