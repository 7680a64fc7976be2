//! Network namespaces made for one test.
//!
//! [`isolated`] runs a test again inside a namespace made for it: `ip netns
//! exec NS <this test binary> --exact <test>`. The inner run finds itself
//! in the namespace (its own loopback, a veth link with the addresses
//! asked for, `/etc/resolv.conf` naming 127.0.0.1) and does the work; the
//! outer run waits for it and fails with its output if it failed.
//! [`Netns`] is such a namespace for a test to use as it likes.
//!
//! Names carry a prefix ([`prefix`]: `ore`, or `OPENRELAY_TEST_NETNS_PREFIX`
//! so engineers sharing a machine keep apart), a tag per test and the
//! outer run's pid (`ore<tag><pid>`; links `ore<tag>h<pid>`,
//! `ore<tag>n<pid>`), so runs never collide, and what a killed earlier run
//! left (its pid no longer running) is removed before anything is made.
//! Everything made is removed on drop, also when the test fails. Needs
//! root; [`isolated`] skips with a message otherwise.

#![cfg(feature = "harness")]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Set in the inner run to the namespace's name.
const INSIDE: &str = "OPENRELAY_TEST_NETNS";

/// The start of every name this module makes: `OPENRELAY_TEST_NETNS_PREFIX`
/// if set (at most 4 characters, as link names are at most 15), else
/// `ore`.
pub fn prefix() -> String {
    let prefix = std::env::var("OPENRELAY_TEST_NETNS_PREFIX").unwrap_or_else(|_| "ore".to_owned());
    assert!(
        (1..=4).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_lowercase()),
        "OPENRELAY_TEST_NETNS_PREFIX is 1 to 4 lowercase letters: {prefix:?}"
    );
    prefix
}

/// Runs `program args` (at most a minute); (success, stdout + stderr).
pub fn sh(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["60", program])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text += &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// As [`sh`], panicking on failure.
pub fn must(program: &str, args: &[&str]) -> String {
    let (ok, text) = sh(program, args);
    assert!(ok, "{program} {args:?} failed: {text}");
    text
}

/// Whether this process runs as root (namespaces, links and nftables need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn pid_running(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in `name` if it is `<prefix><pid>`.
fn pid_after(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.parse().ok()
}

/// Removes the namespaces, links and resolver files of tag `tag` whose
/// run (pid) has ended.
pub fn remove_leftovers(tag: &str) {
    let prefix = format!("{}{tag}", prefix());
    for entry in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if pid_after(&name, &prefix).is_some_and(|pid| !pid_running(pid)) {
            let _ = sh("ip", &["netns", "del", &name]);
            let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&name));
        }
    }
    let (_, links) = sh("ip", &["-o", "link", "show"]);
    for line in links.lines() {
        // `7: name@peer: <...>`
        let Some(name) = line
            .split(": ")
            .nth(1)
            .map(|n| n.split('@').next().unwrap_or(n))
        else {
            continue;
        };
        let host = pid_after(name, &format!("{prefix}h"));
        if host.is_some_and(|pid| !pid_running(pid)) {
            let _ = sh("ip", &["link", "del", name]);
        }
    }
}

/// `ip netns exec ns args...` (at most a minute); (success, stdout + stderr).
pub fn in_ns(ns: &str, args: &[&str]) -> (bool, String) {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    sh("ip", &all)
}

/// A namespace of this run, removed on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name.
    pub name: String,
    /// The host side of its veth link (in the caller's namespace).
    pub host_link: String,
    /// The namespace side of the link.
    pub inner_link: String,
}

impl Netns {
    /// Makes namespace `<prefix><tag><pid>` with loopback up, a veth link whose
    /// namespace side has `addresses` (CIDR; IPv6 without duplicate address
    /// detection) and whose host side has `host_addresses`, both up, and
    /// `/etc/netns/<name>/resolv.conf` naming 127.0.0.1 (what `ip netns
    /// exec` shows as /etc/resolv.conf).
    pub fn create(tag: &str, addresses: &[&str], host_addresses: &[&str]) -> Netns {
        remove_leftovers(tag);
        let (prefix, pid) = (prefix(), std::process::id());
        let netns = Netns {
            name: format!("{prefix}{tag}{pid}"),
            host_link: format!("{prefix}{tag}h{pid}"),
            inner_link: format!("{prefix}{tag}n{pid}"),
        };
        must("ip", &["netns", "add", &netns.name]);
        // From here on, drop cleans up.
        let etc = PathBuf::from("/etc/netns").join(&netns.name);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
        let ns = netns.name.as_str();
        must("ip", &["-n", ns, "link", "set", "lo", "up"]);
        must(
            "ip",
            &[
                "link",
                "add",
                &netns.host_link,
                "type",
                "veth",
                "peer",
                "name",
                &netns.inner_link,
                "netns",
                ns,
            ],
        );
        for (side, addresses, link) in [
            (Some(ns), addresses, &netns.inner_link),
            (None, host_addresses, &netns.host_link),
        ] {
            for address in addresses {
                let mut args: Vec<&str> = side.map(|ns| vec!["-n", ns]).unwrap_or_default();
                args.extend(["addr", "add", address, "dev", link]);
                if address.contains(':') {
                    // Usable at once, not after duplicate address detection.
                    args.push("nodad");
                }
                must("ip", &args);
            }
        }
        must("ip", &["-n", ns, "link", "set", &netns.inner_link, "up"]);
        must("ip", &["link", "set", &netns.host_link, "up"]);
        netns
    }

    /// Starts `program args` inside, as a child in its own process group
    /// (killed with it on drop).
    pub fn spawn(&self, program: &str, args: &[&str]) -> Child {
        use std::os::unix::process::CommandExt;
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
    }

    /// Runs `test` of this binary inside, to completion (at most `limit`);
    /// panics with its output unless it passed.
    pub fn run_test(&self, test: &str, limit: Duration) {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("timeout")
            .arg(limit.as_secs().to_string())
            .args(["ip", "netns", "exec", &self.name])
            .arg(exe)
            .args(["--exact", test, "--nocapture", "--test-threads", "1"])
            .env(INSIDE, &self.name)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("1 passed"),
            "{test} inside {} failed ({}):\n{text}",
            self.name,
            out.status
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the link, and so both.
        let _ = sh("ip", &["netns", "del", &self.name]);
        let _ = sh("ip", &["link", "del", &self.host_link]);
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}

/// Where a test runs.
#[derive(Debug)]
pub enum Place {
    /// In the caller's namespace: the test made a namespace, ran itself in
    /// it, and it passed (or it was skipped): nothing more to do.
    Done,
    /// Inside the namespace made for it: do the work.
    Inside {
        /// The namespace side's link.
        link: String,
    },
}

/// Runs `test` (the caller) inside a fresh namespace of tag `tag` with
/// `addresses` on its link (see [`Netns::create`]), or, when this is that
/// run, says so.
pub fn isolated(tag: &str, test: &str, addresses: &[&str], limit: Duration) -> Place {
    if let Ok(name) = std::env::var(INSIDE) {
        let prefix = format!("{}{tag}", prefix());
        let pid = name.trim_start_matches(&prefix);
        return Place::Inside {
            link: format!("{prefix}n{pid}"),
        };
    }
    if !is_root() {
        eprintln!("SKIPPED: {test} needs root (network namespaces)");
        return Place::Done;
    }
    let netns = Netns::create(tag, addresses, &[]);
    netns.run_test(test, limit);
    Place::Done
}
