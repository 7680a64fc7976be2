//! The I/O driver: one test of one relay through an ordinary path, as a
//! client uses it, into an [`openrelay_measure::ValidatorReport`].
//!
//! A test builds a path with the client's own builder
//! ([`Path::build`], showing the ingress an access token from the
//! validator's wallet and paying the egress as every browsing path does,
//! when the validator has an account), sends a few echo probes through a
//! connect-udp flow (RFC 9298) to the prober's [`Echo`], then opens a
//! CONNECT stream (RFC 9114 §4.4) to the prober's [`Sink`] and counts what
//! arrives for the warm-up and the measurement. To the relays it is a
//! client's path with a UDP flow and a large download.
//!
//! * **Egress test**: a path through an ingress the validator trusts to the
//!   egress under test; the capacity is the CONNECT payload received
//!   (what the egress delivers from a destination).
//! * **Ingress test**: a path through the ingress under test to an egress
//!   the validator controls; the capacity is the inner QUIC connection's
//!   bytes received, the very packets the ingress forwarded (the payload
//!   alone would under-count its forwarding by the inner packets' headers
//!   and the DATA frames, a few percent).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use openrelay_client::access::AccessTokens as _;
use openrelay_client::account::Account;
use openrelay_client::flow::{FlowError, open_tcp_on, open_udp_on};
use openrelay_client::manager::PathListener as _;
use openrelay_client::path::{BuildError, Path};
use openrelay_client::relay::{Relay, RelayConfigError};
use openrelay_client::stocking::Payments;
use openrelay_config::{PathConfig, RelayEntry};
use openrelay_measure::{Measurement, RelayId, ValidatorReport};
use openrelay_wire::target::Target;
use rand_core::{OsRng, RngCore as _};
use tokio::time::Instant;
use tracing::debug;

use crate::rate::{RateEstimate, SampleLog, capacity, median_rtt_micros};
use crate::servers::{Echo, Sink};

/// How often a transfer is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// How long the inner connection's close has to cross the tunnel before
/// the outer connection closes.
const CLOSE_GRACE: Duration = Duration::from_millis(100);
/// Bytes of an echo probe: the secret, a sequence number, a nonce.
const ECHO_PROBE_LEN: usize = 64;

/// How the prober tests.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// The start of a transfer not counted (see [`crate::rate`]).
    pub warmup: Duration,
    /// The time counted after the warm-up (`MeasureParams::measurement_seconds`).
    pub measurement: Duration,
    /// Echo probes per test.
    pub echo_probes: u32,
    /// How long an echo probe waits for its answer, and a transfer for its
    /// first byte or its next one.
    pub answer_timeout: Duration,
    /// The echo probes' time together: no probe is sent or waited for
    /// beyond it, so a test's length is bounded however many are lost.
    pub echo_time: Duration,
    /// The source address of the prober's paths (`[measure] probe_bind`):
    /// never the validator's published service address, so a relay cannot
    /// tell probes by a known validator address. `None`: the system's
    /// choice.
    pub probe_bind: Option<IpAddr>,
    /// Where the sink and the echo listen (the egress must reach it).
    pub sink_ip: IpAddr,
    /// Path timeouts, congestion control: a client's.
    pub path: PathConfig,
}

impl ProbeSettings {
    /// Defaults for `measurement` (a second of warm-up, five echoes of
    /// up to two seconds each, ten seconds for all of them), the prober's
    /// own servers on `sink_ip`.
    pub fn new(measurement: Duration, sink_ip: IpAddr) -> Self {
        ProbeSettings {
            warmup: Duration::from_secs(1),
            measurement,
            echo_probes: 5,
            answer_timeout: Duration::from_secs(2),
            echo_time: Duration::from_secs(10),
            probe_bind: None,
            sink_ip,
            path: PathConfig::default(),
        }
    }

    /// The longest one test takes once its path is built (for schedules:
    /// add the path's handshakes).
    pub fn test_time(&self) -> Duration {
        self.echo_time + self.answer_timeout + self.warmup + self.measurement
    }
}

/// A relay to test: its id in the measurement reports (the directory's
/// relay id) and its record as the client uses it.
#[derive(Debug, Clone)]
pub struct ProbedRelay {
    /// Its id in reports.
    pub id: RelayId,
    /// Address, key, operator: what a path needs.
    pub relay: Relay,
}

impl ProbedRelay {
    /// A relay given as a client's `[[relay]]` entry (address, key, role,
    /// operator), reported as `id`.
    pub fn from_entry(entry: &RelayEntry, id: RelayId) -> Result<Self, RelayConfigError> {
        Ok(ProbedRelay {
            id,
            relay: Relay::from_entry(entry)?,
        })
    }
}

/// Which token a test could not show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingToken {
    /// An access token for the ingress's operator.
    Access,
    /// A payment token for the egress.
    Payment,
}

/// Why a test measured no capacity (the report says `Unreachable`, except
/// for [`ProbeFailure::NoToken`]; this stays for logs and explanations).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeFailure {
    /// The prober had no token to show (its wallet held none for this
    /// ingress's operator or this egress, or it has no account and the
    /// ingress asks for one). Says nothing about the relay: such a test is
    /// **not a report** ([`Probe::report`] is `None`), or an issuer outage
    /// would have every relay found down and excluded network-wide.
    #[error("no {0:?} token to show: the relay was not tested")]
    NoToken(MissingToken),
    /// No path could be built through the relays.
    #[error("no path: {0}")]
    Path(#[from] BuildError),
    /// The CONNECT to the sink failed or was refused.
    #[error("the capacity test's CONNECT failed: {0}")]
    Connect(#[from] FlowError),
    /// The CONNECT was answered but no byte arrived in time.
    #[error("nothing came through within {0:?}")]
    NothingCarried(Duration),
    /// The transfer stalled or ended before the warm-up was over.
    #[error("the transfer ended after {0:?}, within the warm-up")]
    EndedEarly(Duration),
}

/// Which bytes a transfer counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counted {
    /// The CONNECT stream's payload (egress tests).
    Payload,
    /// The inner QUIC connection's received bytes (ingress tests).
    InnerPackets,
}

/// One test's result: the report, and what it rests on.
#[derive(Debug)]
pub struct Probe {
    /// What goes into the validator's reveal; `None` when the test could
    /// not show a token ([`ProbeFailure::NoToken`]): no report at all.
    pub report: Option<ValidatorReport>,
    /// Why the capacity is `Unreachable`, if it is.
    pub failure: Option<ProbeFailure>,
    /// The transfer's numbers, when it ran.
    pub rate: Option<RateEstimate>,
    /// Round-trip times of the echo probes answered.
    pub rtts: Vec<Duration>,
}

/// A validator's prober: its sink and echo, and the client machinery its
/// paths use.
#[derive(Debug)]
pub struct Prober {
    settings: ProbeSettings,
    account: Option<Arc<Account>>,
    sink: Sink,
    echo: Echo,
}

impl Prober {
    /// Starts the sink and the echo. With `account`, each test path shows
    /// the ingress an access token from its wallet and pays the egress
    /// (`stocking::Payments`), as any client's browsing path; `None` where
    /// the relays ask for neither.
    pub async fn start(
        settings: ProbeSettings,
        account: Option<Arc<Account>>,
    ) -> std::io::Result<Prober> {
        let sink = Sink::bind(settings.sink_ip).await?;
        let echo = Echo::bind(settings.sink_ip).await?;
        Ok(Prober {
            settings,
            account,
            sink,
            echo,
        })
    }

    /// The account the tests take their tokens from, if any.
    pub fn account(&self) -> Option<&Arc<Account>> {
        self.account.as_ref()
    }

    /// Which token a test through `ingress` and `egress` lacks, if any:
    /// asked before the path is built, so a test the wallet cannot pay
    /// for never reaches the relays.
    fn missing_token(&self, ingress: &Relay, egress: &Relay) -> Option<MissingToken> {
        let account = self.account.as_ref()?;
        if account.held_for(ingress) == 0 {
            return Some(MissingToken::Access);
        }
        let payment = account.payment_challenge(egress);
        (account.wallet().count(&payment) == 0).then_some(MissingToken::Payment)
    }

    /// The settings.
    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    /// Tests `egress` through `via` (an ingress the validator trusts).
    pub async fn measure_egress(&self, egress: &ProbedRelay, via: &Relay) -> Probe {
        self.measure(egress.id, via, &egress.relay, Counted::Payload)
            .await
    }

    /// Tests `ingress` towards `via` (an egress the validator controls).
    pub async fn measure_ingress(&self, ingress: &ProbedRelay, via: &Relay) -> Probe {
        self.measure(ingress.id, &ingress.relay, via, Counted::InnerPackets)
            .await
    }

    async fn measure(
        &self,
        id: RelayId,
        ingress: &Relay,
        egress: &Relay,
        counted: Counted,
    ) -> Probe {
        let mut rtts = Vec::new();
        let mut sent = 0;
        let tested = self
            .test(ingress, egress, counted, &mut sent, &mut rtts)
            .await;
        let (measurement, rate, failure) = match tested {
            Ok(rate) => (
                Some(Measurement::Reachable {
                    capacity_bps: rate.bps,
                    rtt_micros: median_rtt_micros(&rtts).unwrap_or(0),
                }),
                Some(rate),
                None,
            ),
            Err(failure @ ProbeFailure::NoToken(_)) => {
                debug!(relay = %id, error = %failure, "relay not tested");
                (None, None, Some(failure))
            }
            Err(failure) => {
                debug!(relay = %id, error = %failure, "relay measured unreachable");
                (Some(Measurement::Unreachable), None, Some(failure))
            }
        };
        Probe {
            report: measurement.map(|measurement| ValidatorReport {
                relay: id,
                probes_sent: sent,
                probes_answered: u32::try_from(rtts.len()).unwrap_or(u32::MAX),
                measurement,
            }),
            failure,
            rate,
            rtts,
        }
    }

    async fn test(
        &self,
        ingress: &Relay,
        egress: &Relay,
        counted: Counted,
        sent: &mut u32,
        rtts: &mut Vec<Duration>,
    ) -> Result<RateEstimate, ProbeFailure> {
        let settings = &self.settings;
        if let Some(missing) = self.missing_token(ingress, egress) {
            return Err(ProbeFailure::NoToken(missing));
        }
        let access = self
            .account
            .as_ref()
            .map(|a| a.as_ref() as &dyn openrelay_client::access::AccessTokens);
        let built = Path::build(ingress, egress, settings.probe_bind, &settings.path, access).await;
        let mut path = match built {
            Ok(path) => path,
            // The ingress wants a token and the prober has no account:
            // not the relay's failure. With an account the token shown was
            // checked against the directory's keys, as clients' are: a relay
            // refusing it refuses clients too, and is reported.
            Err(BuildError::AccessRefused { .. }) if self.account.is_none() => {
                return Err(ProbeFailure::NoToken(MissingToken::Access));
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(account) = &self.account
            && let Some(task) = Payments(Arc::clone(account)).path_built(&path)
        {
            path.attach(task);
        }
        let path = Arc::new(path);
        *sent = self.echoes(&path, rtts).await;
        let transferred = self.transfer(&path, counted).await;
        // The inner connection's close travels in the tunnel: closing the
        // outer connection at once could drop it, and the relay would go
        // on forwarding the sink's data into the dead path until its idle
        // timeout, taking capacity from whatever it carries next (the next
        // test, in back-to-back benchmarks).
        path.inner()
            .close(quinn::VarInt::from_u32(0x100), b"measurement done");
        tokio::time::sleep(CLOSE_GRACE).await;
        path.close("measurement done");
        transferred
    }

    /// Sends the echo probes one after another within `echo_time`, each
    /// waiting for its answer; records the round trips of those answered
    /// and says how many were sent.
    async fn echoes(&self, path: &Arc<Path>, rtts: &mut Vec<Duration>) -> u32 {
        let deadline = Instant::now() + self.settings.echo_time;
        let target = Target::from_socket_addr(self.echo.addr());
        let mut flow = match open_udp_on(path, &target).await {
            Ok(flow) => flow,
            Err(e) => {
                debug!(error = %e, "no echo flow");
                return 0;
            }
        };
        let mut sent_probes = 0;
        for sequence in 0..self.settings.echo_probes {
            if Instant::now() >= deadline {
                break;
            }
            let mut probe = [0u8; ECHO_PROBE_LEN];
            let secret = self.echo.secret();
            probe[..secret.len()].copy_from_slice(&secret);
            probe[secret.len()..secret.len() + 4].copy_from_slice(&sequence.to_be_bytes());
            OsRng.fill_bytes(&mut probe[secret.len() + 4..]);
            let sent = Instant::now();
            if flow.sender.send(&probe).is_err() {
                continue;
            }
            sent_probes += 1;
            let wait_until = deadline.min(sent + self.settings.answer_timeout);
            let answer = tokio::time::timeout_at(wait_until, async {
                // Late answers of earlier probes are skipped.
                while let Some(answer) = flow.incoming.recv().await {
                    if answer[..] == probe[..] {
                        return true;
                    }
                }
                false
            })
            .await;
            if answer == Ok(true) {
                rtts.push(sent.elapsed());
            }
        }
        sent_probes
    }

    /// The capacity test: a CONNECT to the sink with a fresh ticket as its
    /// first bytes, read for the warm-up and the measurement.
    async fn transfer(
        &self,
        path: &Arc<Path>,
        counted: Counted,
    ) -> Result<RateEstimate, ProbeFailure> {
        let settings = &self.settings;
        let length = settings.warmup + settings.measurement;
        // The sink sends a little longer than the prober reads, so the
        // transfer never ends for lack of data.
        let ticket = self.sink.issue(length + settings.answer_timeout);
        let target = Target::from_socket_addr(self.sink.addr());
        let opened = open_tcp_on(path, &target, &Bytes::copy_from_slice(&ticket)).await;
        let mut flow = match opened {
            Ok(flow) => flow,
            Err(e) => {
                self.sink.withdraw(&ticket);
                return Err(e.into());
            }
        };
        let inner_bytes = || path.inner().stats().udp_rx.bytes;
        let count = |payload: u64, inner_start: u64| match counted {
            Counted::Payload => payload,
            Counted::InnerPackets => inner_bytes().saturating_sub(inner_start),
        };
        let first = tokio::time::timeout(settings.answer_timeout, flow.stream.recv_data()).await;
        let mut payload = match first {
            Ok(Ok(Some(chunk))) => chunk.remaining() as u64,
            _ => return Err(ProbeFailure::NothingCarried(settings.answer_timeout)),
        };
        let start = Instant::now();
        // The first packet's bytes are in the inner count already; the
        // payload's first chunk is in `payload`: both start near zero.
        let inner_start = inner_bytes();
        let mut log = SampleLog::new(SAMPLE_EVERY);
        log.record(Duration::ZERO, count(payload, inner_start));
        let end = start + length;
        loop {
            let next = tokio::time::timeout_at(
                end.min(Instant::now() + settings.answer_timeout),
                flow.stream.recv_data(),
            )
            .await;
            let at = start.elapsed();
            match next {
                Ok(Ok(Some(chunk))) => {
                    payload += chunk.remaining() as u64;
                    if log.wants(at) {
                        log.record(at, count(payload, inner_start));
                    }
                }
                // Ended, failed, stalled or the time is up.
                _ => {
                    log.record(at, count(payload, inner_start));
                    break;
                }
            }
            if Instant::now() >= end {
                log.record(start.elapsed(), count(payload, inner_start));
                break;
            }
        }
        // The sink's data stops here, not when the connection closes.
        flow.stream
            .stop_sending(h3::error::Code::H3_REQUEST_CANCELLED);
        let samples = log.finish();
        capacity(&samples, settings.warmup).ok_or_else(|| {
            ProbeFailure::EndedEarly(samples.last().map_or(Duration::ZERO, |s| s.at))
        })
    }
}
