//! The target's resources, read from `/proc/PID` (Linux): resident memory
//! (VmRSS) and its peak (VmHWM) from `status`, CPU time (utime + stime) from
//! `stat`, open descriptors from `fd/`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/PID/stat` times: USER_HZ, which Linux
/// fixes at 100 for what it shows userspace.
pub const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sample {
    /// Resident memory, bytes.
    pub rss: u64,
    /// Peak resident memory since the process started, bytes.
    pub hwm: u64,
    /// CPU time used since start (user + system), in clock ticks.
    pub cpu_ticks: u64,
    /// Open file descriptors.
    pub fds: u64,
}

/// The value in KiB of `field` in a `/proc/PID/status` text, in bytes.
fn status_bytes(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// utime + stime from a `/proc/PID/stat` text (fields 14 and 15, counted
/// after the command name, which may itself contain spaces or parentheses).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Reads process `pid` now; `None` if it is gone.
pub fn sample(pid: u32) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    Some(Sample {
        rss: status_bytes(&status, "VmRSS:")?,
        hwm: status_bytes(&status, "VmHWM:")?,
        cpu_ticks: cpu_ticks(&stat)?,
        fds,
    })
}

/// Whether process `pid` is alive (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x") | None)
}

/// CPU use between two samples `elapsed` apart, in percent of one core.
pub fn cpu_percent(before: &Sample, after: &Sample, elapsed: Duration) -> f64 {
    let ticks = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64;
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 {
        return 0.0;
    }
    100.0 * ticks / TICKS_PER_SECOND / seconds
}

/// A timed reading.
#[derive(Debug, Clone, Copy)]
pub struct Timed {
    /// When, since the sampler started.
    pub at: Duration,
    /// The reading.
    pub sample: Sample,
}

/// Samples a process on a timer into a shared list, until dropped.
#[derive(Debug)]
pub struct Sampler {
    samples: Arc<Mutex<Vec<Timed>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sampler {
    /// Samples `pid` every `every`; `report` sees each reading as it comes
    /// (the binary prints a line).
    pub fn start(pid: u32, every: Duration, report: impl Fn(&Timed) + Send + 'static) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let samples = Arc::clone(&samples);
            async move {
                let started = Instant::now();
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    let Some(sample) = sample(pid) else { return };
                    let timed = Timed {
                        at: started.elapsed(),
                        sample,
                    };
                    report(&timed);
                    if let Ok(mut samples) = samples.lock() {
                        samples.push(timed);
                    }
                }
            }
        });
        Sampler { samples, task }
    }

    /// The readings so far.
    pub fn samples(&self) -> Vec<Timed> {
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_parse() {
        let status = "Name:\topenrelay\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_bytes(status, "VmRSS:"), Some(10 << 20));
        assert_eq!(status_bytes(status, "VmHWM:"), Some(20 << 20));
        let stat = "4242 (open (relay)) S 1 4242 4242 0 -1 4194560 500 0 0 0 173 27 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), Some(200));
    }

    #[test]
    fn this_process_can_be_read() {
        let me = sample(std::process::id()).unwrap();
        assert!(me.rss > 0 && me.hwm >= me.rss && me.fds > 0);
        assert!(alive(std::process::id()));
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        let a = Sample {
            rss: 0,
            hwm: 0,
            cpu_ticks: 100,
            fds: 0,
        };
        let b = Sample {
            cpu_ticks: 150,
            ..a
        };
        assert!((cpu_percent(&a, &b, Duration::from_secs(1)) - 50.0).abs() < 1e-9);
    }
}
