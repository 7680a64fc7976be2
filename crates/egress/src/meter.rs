//! Pay-as-you-go metering of one egress session (one inner QUIC connection
//! from a client), as a pure state machine: the caller passes the bytes
//! carried so far and the time since the session began.
//!
//! One token buys one *quantum*: up to `quantum_bytes` carried and up to
//! `quantum_time` of session, whichever runs out first (by default 256 MiB or
//! 10 minutes). A session starts with nothing paid, so its first token is due
//! at once; each later one is due when the paid quanta are used up. A token
//! that is due must arrive within the `grace` window, else the session is
//! closed. A client that pays a little ahead (as ours does) is therefore
//! never held up, and one that stops paying gets at most one quantum plus a
//! grace window for free.

use std::time::Duration;

/// What a token buys, and how long a due token may take to arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaymentTerms {
    /// Bytes one token pays for.
    pub quantum_bytes: u64,
    /// Session time one token pays for.
    pub quantum_time: Duration,
    /// How long a due token may take to arrive.
    pub grace: Duration,
}

impl PaymentTerms {
    /// Terms from the relay's config values.
    pub fn new(quantum_bytes: u64, quantum_time: Duration, grace: Duration) -> Self {
        PaymentTerms {
            quantum_bytes: quantum_bytes.max(1),
            quantum_time: quantum_time.max(Duration::from_secs(1)),
            grace,
        }
    }

    /// How many quanta a session has used after carrying `bytes` for
    /// `elapsed`: the quantum in progress counts as used.
    pub fn quanta_used(&self, bytes: u64, elapsed: Duration) -> u64 {
        let by_bytes = bytes / self.quantum_bytes;
        let by_time = elapsed.as_nanos() / self.quantum_time.as_nanos().max(1);
        by_bytes
            .max(u64::try_from(by_time).unwrap_or(u64::MAX))
            .saturating_add(1)
    }
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Paid ahead: this much is left before the next token is due.
    Paid {
        /// Bytes left in the paid quanta.
        bytes_left: u64,
        /// Session time left in the paid quanta.
        time_left: Duration,
    },
    /// A token is due and must arrive by `deadline` (session time).
    Due {
        /// When the grace window ends.
        deadline: Duration,
    },
    /// A token was due for longer than the grace window: close the session.
    Overdue {
        /// How many quanta were paid.
        paid: u64,
    },
}

impl Standing {
    /// Whether the client should pay now: a token is due, or less than a
    /// quarter of a quantum (bytes or time) is left under `terms`.
    pub fn wants_token(&self, terms: &PaymentTerms) -> bool {
        match *self {
            Standing::Paid {
                bytes_left,
                time_left,
            } => bytes_left < terms.quantum_bytes / 4 || time_left < terms.quantum_time / 4,
            Standing::Due { .. } | Standing::Overdue { .. } => true,
        }
    }
}

/// The meter of one session.
#[derive(Debug, Clone)]
pub struct Meter {
    terms: PaymentTerms,
    paid: u64,
    /// When (session time) the unpaid quantum began to be used.
    due_since: Option<Duration>,
}

impl Meter {
    /// A meter for a session that has just begun, with nothing paid.
    pub fn new(terms: PaymentTerms) -> Self {
        Meter {
            terms,
            paid: 0,
            due_since: None,
        }
    }

    /// The terms.
    pub fn terms(&self) -> &PaymentTerms {
        &self.terms
    }

    /// Quanta paid so far.
    pub fn paid(&self) -> u64 {
        self.paid
    }

    /// Records one token (already verified and spent by the caller).
    pub fn pay(&mut self) {
        self.paid = self.paid.saturating_add(1);
    }

    /// The standing after `bytes` carried over `elapsed` of session. Call
    /// it regularly (and after every payment): the grace window of a due
    /// token starts at the first call that sees it due.
    pub fn observe(&mut self, bytes: u64, elapsed: Duration) -> Standing {
        let used = self.terms.quanta_used(bytes, elapsed);
        if used <= self.paid {
            self.due_since = None;
            let paid_bytes = self.paid.saturating_mul(self.terms.quantum_bytes);
            let paid_time = self
                .terms
                .quantum_time
                .saturating_mul(u32::try_from(self.paid).unwrap_or(u32::MAX));
            return Standing::Paid {
                bytes_left: paid_bytes.saturating_sub(bytes),
                time_left: paid_time.saturating_sub(elapsed),
            };
        }
        let since = *self.due_since.get_or_insert(elapsed);
        let deadline = since.saturating_add(self.terms.grace);
        if elapsed >= deadline {
            Standing::Overdue { paid: self.paid }
        } else {
            Standing::Due { deadline }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    fn terms() -> PaymentTerms {
        PaymentTerms::new(256 * MIB, Duration::from_secs(600), Duration::from_secs(10))
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn the_first_token_is_due_at_once_and_closes_the_session_after_grace() {
        let mut meter = Meter::new(terms());
        assert_eq!(
            meter.observe(0, secs(0)),
            Standing::Due { deadline: secs(10) }
        );
        assert_eq!(
            meter.observe(1000, secs(9)),
            Standing::Due { deadline: secs(10) }
        );
        assert_eq!(meter.observe(1000, secs(10)), Standing::Overdue { paid: 0 });
    }

    #[test]
    fn a_token_buys_bytes_or_time_whichever_runs_out_first() {
        let mut meter = Meter::new(terms());
        meter.pay();
        assert_eq!(
            meter.observe(MIB, secs(60)),
            Standing::Paid {
                bytes_left: 255 * MIB,
                time_left: secs(540)
            }
        );
        // Bytes run out first.
        let mut by_bytes = meter.clone();
        assert_eq!(
            by_bytes.observe(256 * MIB, secs(61)),
            Standing::Due { deadline: secs(71) }
        );
        // Time runs out first.
        assert_eq!(
            meter.observe(2 * MIB, secs(600)),
            Standing::Due {
                deadline: secs(610)
            }
        );
        meter.pay();
        assert!(matches!(
            meter.observe(2 * MIB, secs(605)),
            Standing::Paid { .. }
        ));
    }

    #[test]
    fn a_late_token_within_grace_clears_the_debt() {
        let mut meter = Meter::new(terms());
        assert!(matches!(meter.observe(0, secs(0)), Standing::Due { .. }));
        meter.pay();
        assert!(matches!(meter.observe(0, secs(9)), Standing::Paid { .. }));
        // The next due token gets its own full grace window.
        assert_eq!(
            meter.observe(0, secs(600)),
            Standing::Due {
                deadline: secs(610)
            }
        );
    }

    proptest! {
        /// A client that pays whenever a token is due, within the grace
        /// window, is never closed, whatever its traffic.
        #[test]
        fn a_client_paying_within_grace_is_never_closed(
            steps in proptest::collection::vec((0u64..64 * MIB, 0u64..120, 0u64..10), 1..200)
        ) {
            let mut meter = Meter::new(terms());
            let (mut bytes, mut now) = (0u64, 0u64);
            for (more, wait, delay) in steps {
                bytes += more;
                now += wait;
                let standing = meter.observe(bytes, secs(now));
                let overdue = matches!(standing, Standing::Overdue { .. });
                prop_assert!(!overdue, "closed at {}", now);
                if let Standing::Due { deadline } = standing {
                    // Pay `delay` seconds later, within the window: traffic
                    // in between is covered by the grace.
                    let pay_at = (now + delay).min(deadline.as_secs() - 1).max(now);
                    let overdue = matches!(meter.observe(bytes, secs(pay_at)), Standing::Overdue { .. });
                    prop_assert!(!overdue, "closed before paying at {}", pay_at);
                    while matches!(meter.observe(bytes, secs(pay_at)), Standing::Due { .. }) {
                        meter.pay();
                    }
                    now = pay_at;
                }
            }
        }

        /// A client that stops paying is closed within one quantum plus the
        /// grace window of its last payment's cover.
        #[test]
        fn a_client_that_stops_paying_is_closed(paid in 0u64..5, rate in 1u64..(64 * MIB)) {
            let terms = terms();
            let mut meter = Meter::new(terms);
            for _ in 0..paid {
                meter.pay();
            }
            let mut closed_at = None;
            for t in 0..(paid + 2) * 600 + 20 {
                if let Standing::Overdue { .. } = meter.observe(rate.saturating_mul(t), secs(t)) {
                    closed_at = Some(t);
                    break;
                }
            }
            let closed_at = closed_at.unwrap();
            prop_assert!(closed_at <= paid * 600 + 10);
        }
    }
}
