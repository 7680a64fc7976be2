//! Packet captures with tcpdump: [`LoopbackCapture`] on loopback, and
//! [`wait_until_capturing`] for captures a test runs elsewhere (in a
//! network namespace).

#![cfg(feature = "harness")]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Waits until `tcpdump` (whose standard error goes to `status`) says
/// "listening on", i.e. captures: a capture that attaches late misses the
/// packets a test looks for.
pub fn wait_until_capturing(tcpdump: &mut std::process::Child, status: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(status)
        .unwrap_or_default()
        .contains("listening on")
    {
        assert!(Instant::now() < deadline, "tcpdump did not start");
        assert!(matches!(tcpdump.try_wait(), Ok(None)), "tcpdump exited");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tcpdump capture on loopback of the packets matching a filter, while
/// alive.
#[derive(Debug)]
pub struct LoopbackCapture {
    child: Child,
    file: tempfile::NamedTempFile,
}

impl LoopbackCapture {
    /// Starts capturing packets matching `filter` (tcpdump syntax) and waits
    /// until tcpdump captures; `None` if tcpdump is not installed.
    pub fn start(filter: &str) -> Option<LoopbackCapture> {
        let file = tempfile::NamedTempFile::new().unwrap();
        let status = tempfile::NamedTempFile::new().unwrap();
        // Immediate mode: by default libpcap hands packets over in batches
        // up to a second late, and a test reading right after the traffic
        // it waited for would miss them.
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-l", "-q", "--immediate-mode", filter])
            .stdout(file.reopen().unwrap())
            .stderr(status.reopen().unwrap())
            .spawn()
            .ok()?;
        wait_until_capturing(&mut child, status.path());
        Some(LoopbackCapture { child, file })
    }

    /// The source (`address.port`) of every packet captured so far.
    pub fn sources(&self) -> Vec<String> {
        std::fs::read_to_string(self.file.path())
            .unwrap()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
            .collect()
    }

    /// The source of every packet captured so far to `destination` (lines
    /// read `IP 127.0.2.3.40000 > 127.0.4.1.4443: UDP, length 1200`).
    pub fn sources_to(&self, destination: SocketAddr) -> Vec<String> {
        let destination = format!("{}.{}:", destination.ip(), destination.port());
        std::fs::read_to_string(self.file.path())
            .unwrap()
            .lines()
            .filter(|l| l.split_whitespace().nth(4) == Some(destination.as_str()))
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
            .collect()
    }
}

impl Drop for LoopbackCapture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
