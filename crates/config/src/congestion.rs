//! `congestion`: the QUIC congestion controller of a process's connections
//! (client `[path] congestion`, relay top-level `congestion`). Why each one
//! fits or does not: `openrelay_transport::endpoint` and `docs/BENCHMARKS.md`.

use serde::{Deserialize, Serialize};

/// Which congestion controller a QUIC connection's sender runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CongestionControl {
    /// Model-based (quinn's BBRv1, marked experimental there): paces at the
    /// measured bottleneck rate and does not shrink its window on random
    /// loss, so openrelay's nested connections keep their rate on a lossy
    /// link (0.60× direct instead of 0.02× at 0.1 % loss). Opt-in for now:
    /// in the failover tests a fresh connection under it stalled about one
    /// run in eight, which Cubic never did (docs/BENCHMARKS.md).
    Bbr,
    /// Loss-based (RFC 9438), quinn's own default and openrelay's: cuts its
    /// window on every loss, so a path with random loss runs far below its
    /// capacity.
    #[default]
    Cubic,
    /// Loss-based (RFC 9002 §7), halves on every loss.
    NewReno,
}
