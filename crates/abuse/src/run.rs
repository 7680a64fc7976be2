//! One attack as a measured phase: the target's resources before, during
//! and after, the attack's counts, and the legitimate client's success
//! during and after.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::attack::{self, Attack, Counters, Plan, Tally};
use crate::monitor::{self, Sample, Sampler, Timed};
use crate::probe::{ProbeError, Prober};

/// Legitimate requests and how many got through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Success {
    /// Requests that got through.
    pub ok: u32,
    /// Requests made.
    pub total: u32,
}

impl Success {
    fn record(&mut self, result: &Result<Duration, ProbeError>) {
        self.total += 1;
        if result.is_ok() {
            self.ok += 1;
        }
    }

    /// Whether every request got through (and there was one).
    pub fn all(&self) -> bool {
        self.total > 0 && self.ok == self.total
    }
}

impl std::fmt::Display for Success {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ok, self.total)
    }
}

/// The target's resources over a phase (when its pid is known).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Resources {
    /// Before the attack.
    pub before: Sample,
    /// The largest resident size seen during the attack.
    pub peak_rss: u64,
    /// After the attack and the after-probes.
    pub after: Sample,
    /// CPU during the attack, percent of one core.
    pub cpu_percent: f64,
}

/// The outcome of one attack.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Phase {
    /// The attack.
    pub attack: Attack,
    /// How long it ran.
    pub duration: Duration,
    /// What it did and what the target did to it.
    pub tally: Tally,
    /// Legitimate requests during the attack.
    pub during: Success,
    /// Legitimate requests after it.
    pub after: Success,
    /// The first failure of a legitimate request, if any.
    pub first_failure: Option<String>,
    /// The target's resources, if its pid is known.
    pub resources: Option<Resources>,
    /// Whether the target process is still running (None: pid unknown).
    pub survived: Option<bool>,
}

/// How a phase is run.
#[derive(Debug, Clone)]
pub struct PhaseOptions {
    /// How long the attack runs.
    pub duration: Duration,
    /// Pause between legitimate requests during the attack.
    pub probe_every: Duration,
    /// Legitimate requests after the attack.
    pub probes_after: u32,
    /// The target's pid, for its resources.
    pub pid: Option<u32>,
    /// How often its resources are sampled.
    pub sample_every: Duration,
}

/// Runs `attack` per `plan` and measures it; `on_sample` sees every
/// resource reading as it is taken.
pub async fn phase(
    attack: Attack,
    plan: Plan,
    prober: &Prober,
    options: &PhaseOptions,
    on_sample: impl Fn(&Timed) + Send + 'static,
) -> Phase {
    let before = options.pid.and_then(monitor::sample);
    let sampler = options
        .pid
        .map(|pid| Sampler::start(pid, options.sample_every, on_sample));
    let counters = Arc::new(Counters::default());
    let started = Instant::now();
    let deadline = started + options.duration;
    let attacking = tokio::spawn(attack::run(attack, plan, Arc::clone(&counters), deadline));
    let mut during = Success::default();
    let mut first_failure = None;
    let note = |result: &Result<Duration, ProbeError>, first: &mut Option<String>| {
        if let Err(e) = result
            && first.is_none()
        {
            *first = Some(e.to_string());
        }
    };
    // Let the attack take hold before the first legitimate request.
    tokio::time::sleep(options.probe_every.min(options.duration / 4)).await;
    while Instant::now() < deadline {
        let result = prober.probe().await;
        during.record(&result);
        note(&result, &mut first_failure);
        tokio::time::sleep(options.probe_every).await;
    }
    let cpu_end = options.pid.and_then(monitor::sample);
    let elapsed = started.elapsed();
    // The attack stops at its deadline; give its tasks a moment to close.
    let _ = tokio::time::timeout(Duration::from_secs(5), attacking).await;
    let tally = counters.tally();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut after = Success::default();
    for _ in 0..options.probes_after {
        let result = prober.probe().await;
        after.record(&result);
        note(&result, &mut first_failure);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let samples = sampler.map(|s| s.samples()).unwrap_or_default();
    let after_sample = options.pid.and_then(monitor::sample);
    let resources = match (before, cpu_end, after_sample) {
        (Some(before), Some(end), Some(after)) => Some(Resources {
            before,
            peak_rss: samples
                .iter()
                .map(|t| t.sample.rss)
                .chain([before.rss, end.rss])
                .max()
                .unwrap_or(before.rss),
            after,
            cpu_percent: monitor::cpu_percent(&before, &end, elapsed),
        }),
        _ => None,
    };
    Phase {
        attack,
        duration: options.duration,
        tally,
        during,
        after,
        first_failure,
        resources,
        survived: options.pid.map(monitor::alive),
    }
}

/// Mebibytes, one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1 << 20))
}

/// A Markdown table of `phases` against `target`.
pub fn table(target: &str, phases: &[Phase]) -> String {
    let mut out = String::from(
        "| target | attack | RSS before → peak → after (MiB) | VmHWM (MiB) | CPU (% of a core) | legit during | legit after | attack did |\n|---|---|---|---|---|---|---|---|\n",
    );
    for phase in phases {
        let (memory, hwm, cpu) = match &phase.resources {
            Some(r) => (
                format!(
                    "{} → {} → {}",
                    mib(r.before.rss),
                    mib(r.peak_rss),
                    mib(r.after.rss)
                ),
                mib(r.after.hwm),
                format!("{:.0}", r.cpu_percent),
            ),
            None => ("?".into(), "?".into(), "?".into()),
        };
        let t = &phase.tally;
        let did = format!(
            "{} conns ({} refused, {} closed by target), {} streams ({} stopped), {} MiB written, {} datagrams sent",
            t.connections,
            t.refused,
            t.closed_by_target,
            t.streams,
            t.stopped,
            mib(t.bytes),
            t.datagrams
        );
        let survived = match phase.survived {
            Some(false) => " **target died**",
            _ => "",
        };
        out.push_str(&format!(
            "| {target} | {}{survived} | {memory} | {hwm} | {cpu} | {} | {} | {did} |\n",
            phase.attack.name(),
            phase.during,
            phase.after,
        ));
    }
    out
}
