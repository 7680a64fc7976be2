//! `openrelay devnet --client-netns NAME`: the client runs with its
//! full-device VPN in a fresh network namespace whose only link is a veth
//! pair to this namespace, where the ingresses listen on the link's host
//! side. Everything else here (egresses, registry, destinations) is
//! unreachable from NAME except through the relays: a firewall table on the
//! host side of the link accepts only UDP to the ingress addresses from it.
//!
//! Addresses (a /24 and a /64 of private space on the link):
//!
//! | what | IPv4 | IPv6 |
//! |---|---|---|
//! | host side (the namespace's gateway and "ISP resolver") | 10.231.0.254 | fd00:6f72:e7::fe |
//! | ingress *i* (host side) | 10.231.0.*i* | — |
//! | the client's uplink in NAME | 10.231.0.100 | fd00:6f72:e7::64 |
//!
//! On the host side the addresses are single-host (/32, /128) and the client
//! is reached by a host route through this link, so no other interface
//! holding the /24 (a leftover nobody owns) can take the client's packets:
//! the most specific route wins.
//!
//! Everything made here is removed by [`ClientNetns`]'s `Drop`; what a devnet
//! killed outright left behind is removed by the next one. Before it makes
//! anything, a devnet records that it owns NAME (`/run/openrelay-devnet/
//! NAME.owner`: its pid, the pid's start time, its network namespace); a
//! record whose process is gone proves the leftovers it names are stale.
//! Leftovers are never guessed from names alone, and a live devnet's are
//! never touched: another live devnet with a client namespace in this
//! network namespace (they would share the link addresses) is a clear error.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use openrelay_command::{CommandError, run_command};

use tracing::{info, warn};

/// The host side's own address (the namespace's default gateway).
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 254);
/// The host side's IPv6 address (the namespace's IPv6 default gateway).
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x6f72, 0xe7, 0, 0, 0, 0, 0xfe);
/// The client's address on its uplink.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 100);
/// The client's IPv6 address on its uplink.
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x6f72, 0xe7, 0, 0, 0, 0, 0x64);
/// The uplink's name inside the namespace.
pub const UPLINK: &str = "uplink0";

/// Ingress *i*'s address on the host side of the link.
pub fn ingress_address(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 231, 0, i)
}

/// Where devnets record the client namespaces they own.
const OWNERS_DIR: &str = "/run/openrelay-devnet";

/// Why the namespace could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// The name is not usable for a namespace.
    #[error(
        "--client-netns: {0:?} is not a usable name (letters, digits, '-', '_', '.'; at most 64)"
    )]
    Name(String),
    /// A namespace of that name exists and no devnet of this version made
    /// it.
    #[error(
        "--client-netns: the namespace {0:?} already exists and no devnet owns it; if it is a leftover, remove it with `ip netns delete {0}`"
    )]
    Exists(String),
    /// A running devnet has a client namespace from this network namespace
    /// (whose link addresses a second one would share), or one of this name.
    #[error(
        "another devnet (pid {pid}) is running with the client namespace {name:?}, from this network namespace or under this name: stop it first"
    )]
    Busy {
        /// That devnet's pid.
        pid: u32,
        /// Its client namespace.
        name: String,
    },
    /// A command failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// A file under /etc/netns could not be written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), NetnsError> {
    Ok(run_command(program, args, stdin)?)
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> NetnsError + '_ {
    move |source| NetnsError::File {
        path: path.to_owned(),
        source,
    }
}

/// When process `pid` started (clock ticks since boot, `/proc/PID/stat`
/// field 22), if it is running: with the pid, it names one process even
/// after pids are reused.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`: the command may hold spaces and ')'.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The network namespace this process runs in (its nsfs inode).
fn current_netns() -> Result<u64, NetnsError> {
    let path = Path::new("/proc/self/ns/net");
    Ok(std::fs::metadata(path).map_err(file_error(path))?.ino())
}

/// Who owns a client namespace: a devnet process in a network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    pid: u32,
    start: u64,
    netns: u64,
}

impl Owner {
    fn me() -> Result<Owner, NetnsError> {
        let pid = std::process::id();
        let start = process_start(pid).ok_or_else(|| NetnsError::File {
            path: PathBuf::from(format!("/proc/{pid}/stat")),
            source: std::io::Error::other("cannot read this process's start time"),
        })?;
        Ok(Owner {
            pid,
            start,
            netns: current_netns()?,
        })
    }

    fn to_text(self) -> String {
        format!(
            "pid={} start={} netns={}\n",
            self.pid, self.start, self.netns
        )
    }

    fn parse(text: &str) -> Option<Owner> {
        let mut pid = None;
        let mut start = None;
        let mut netns = None;
        for word in text.split_whitespace() {
            match word.split_once('=')? {
                ("pid", v) => pid = v.parse().ok(),
                ("start", v) => start = v.parse().ok(),
                ("netns", v) => netns = v.parse().ok(),
                _ => return None,
            }
        }
        Some(Owner {
            pid: pid?,
            start: start?,
            netns: netns?,
        })
    }

    fn is_alive(self) -> bool {
        process_start(self.pid) == Some(self.start)
    }
}

/// What a client namespace consists of, all named after it.
#[derive(Debug, Clone)]
struct Parts {
    name: String,
    host_link: String,
    table: String,
    etc: PathBuf,
    record: PathBuf,
}

impl Parts {
    fn of(name: &str) -> Parts {
        // A short, stable link name (IFNAMSIZ) derived from the namespace's.
        let hash = name.bytes().fold(0xcbf2_9ce4_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        Parts {
            name: name.to_owned(),
            host_link: format!("orh{hash:08x}"),
            table: format!("openrelay_devnet_{hash:08x}"),
            etc: PathBuf::from("/etc/netns").join(name),
            record: Path::new(OWNERS_DIR).join(format!("{name}.owner")),
        }
    }

    /// Removes everything; the host-side link and firewall table only if
    /// they are in this network namespace (`here`). Deleting the namespace
    /// deletes the veth pair, wherever its host end is.
    fn remove(&self, here: bool) {
        let mut commands = vec![("ip", vec!["netns", "delete", self.name.as_str()])];
        if here {
            commands.push(("ip", vec!["link", "delete", self.host_link.as_str()]));
            commands.push(("nft", vec!["delete", "table", "inet", self.table.as_str()]));
        }
        for (program, args) in commands {
            if let Err(e) = run(program, &args, None) {
                let gone = matches!(&e, NetnsError::Command(c) if c.is_already_gone());
                if !gone {
                    warn!(error = %e, "cleaning up a client namespace");
                }
            }
        }
        for (path, result) in [
            (&self.etc, std::fs::remove_dir_all(&self.etc)),
            (&self.record, std::fs::remove_file(&self.record)),
        ] {
            if let Err(e) = result
                && e.kind() != std::io::ErrorKind::NotFound
            {
                warn!(error = %e, path = %path.display(), "cleaning up a client namespace");
            }
        }
    }
}

/// Removes what devnets that are gone left behind (their records name a
/// dead process); refuses if a live devnet runs a client namespace in this
/// network namespace.
fn remove_stale(me: Owner) -> Result<(), NetnsError> {
    let dir = Path::new(OWNERS_DIR);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(file_error(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(file_error(dir))?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".owner")) else {
            continue;
        };
        let text = std::fs::read_to_string(entry.path()).map_err(file_error(&entry.path()))?;
        let parts = Parts::of(name);
        match Owner::parse(&text) {
            Some(owner) if owner.is_alive() && owner.netns == me.netns => {
                return Err(NetnsError::Busy {
                    pid: owner.pid,
                    name: name.to_owned(),
                });
            }
            // A live devnet elsewhere shares nothing with this one.
            Some(owner) if owner.is_alive() => {}
            Some(owner) => {
                info!(
                    namespace = name,
                    pid = owner.pid,
                    "removing what a devnet that did not stop left behind"
                );
                parts.remove(owner.netns == me.netns);
            }
            None => warn!(
                record = %entry.path().display(),
                "not a devnet owner record; left alone"
            ),
        }
    }
    Ok(())
}

/// The client's namespace, its link and the host side's firewall; removed
/// on drop.
#[derive(Debug)]
pub struct ClientNetns {
    parts: Parts,
}

impl ClientNetns {
    /// Creates namespace `name` linked to this namespace, with ingress
    /// addresses for `operators` operators on the host side, after removing
    /// what devnets killed earlier left behind.
    pub fn create(name: &str, operators: u8) -> Result<ClientNetns, NetnsError> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(NetnsError::Name(name.to_owned()));
        }
        let me = Owner::me()?;
        remove_stale(me)?;
        let parts = Parts::of(name);
        // Refuse to adopt (and later delete) a namespace someone else made.
        // A record still here names a live devnet (stale ones are gone).
        if PathBuf::from("/run/netns").join(name).exists() {
            let owner = std::fs::read_to_string(&parts.record)
                .ok()
                .and_then(|text| Owner::parse(&text));
            return Err(match owner {
                Some(owner) => NetnsError::Busy {
                    pid: owner.pid,
                    name: name.to_owned(),
                },
                None => NetnsError::Exists(name.to_owned()),
            });
        }
        // Recorded before anything is made, so a kill at any point leaves
        // a record that proves whose leftovers they are.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(OWNERS_DIR)
            .and_then(|()| std::fs::write(&parts.record, me.to_text()))
            .map_err(file_error(&parts.record))?;
        let netns = ClientNetns { parts };
        run("ip", &["netns", "add", name], None)?;
        if let Err(e) = netns.set_up(operators) {
            drop(netns);
            return Err(e);
        }
        Ok(netns)
    }

    fn set_up(&self, operators: u8) -> Result<(), NetnsError> {
        let parts = &self.parts;
        let (name, host) = (parts.name.as_str(), parts.host_link.as_str());
        // The namespace's own resolver file (`ip netns exec` mounts it over
        // /etc/resolv.conf), naming the link's "ISP resolver": a DNS leak
        // would show as packets to it.
        std::fs::create_dir_all(&parts.etc)
            .and_then(|()| {
                std::fs::write(
                    parts.etc.join("resolv.conf"),
                    format!("nameserver {GATEWAY_V4}\n"),
                )
            })
            .map_err(file_error(&parts.etc))?;
        run(
            "ip",
            &[
                "link", "add", host, "type", "veth", "peer", "name", UPLINK, "netns", name,
            ],
            None,
        )?;
        // Single-host addresses and host routes to the client (see the
        // module's documentation): nothing else can shadow them.
        let gw4 = format!("{GATEWAY_V4}/32");
        let gw6 = format!("{GATEWAY_V6}/128");
        run("ip", &["addr", "add", &gw4, "dev", host], None)?;
        run(
            "ip",
            &["-6", "addr", "add", &gw6, "dev", host, "nodad"],
            None,
        )?;
        let mut ingresses = Vec::new();
        for i in 1..=operators {
            let address = format!("{}/32", ingress_address(i));
            run("ip", &["addr", "add", &address, "dev", host], None)?;
            ingresses.push(ingress_address(i).to_string());
        }
        run("ip", &["link", "set", host, "up"], None)?;
        let client4 = format!("{CLIENT_V4}/32");
        let client6 = format!("{CLIENT_V6}/128");
        run("ip", &["route", "add", &client4, "dev", host], None)?;
        run("ip", &["-6", "route", "add", &client6, "dev", host], None)?;
        let client4 = format!("{CLIENT_V4}/24");
        let client6 = format!("{CLIENT_V6}/64");
        let inside = |args: &[&str]| {
            let mut all = vec!["-n", name];
            all.extend_from_slice(args);
            run("ip", &all, None)
        };
        inside(&["link", "set", "lo", "up"])?;
        inside(&["addr", "add", &client4, "dev", UPLINK])?;
        inside(&["-6", "addr", "add", &client6, "dev", UPLINK, "nodad"])?;
        inside(&["link", "set", UPLINK, "up"])?;
        inside(&["route", "add", "default", "via", &GATEWAY_V4.to_string()])?;
        inside(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &GATEWAY_V6.to_string(),
        ])?;
        let ruleset = format!(
            "table inet {table} {{
    chain input {{
        type filter hook input priority -10; policy accept;
        iifname \"{host}\" meta l4proto udp ip daddr {{ {ingresses} }} accept
        iifname \"{host}\" icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept
        iifname \"{host}\" drop
    }}
    chain forward {{
        type filter hook forward priority -10; policy accept;
        iifname \"{host}\" drop
    }}
}}
",
            table = parts.table,
            ingresses = ingresses.join(", ")
        );
        run("nft", &["-f", "-"], Some(&ruleset))
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.parts.name
    }
}

impl Drop for ClientNetns {
    fn drop(&mut self) {
        self.parts.remove(true);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_record_round_trips_and_names_a_live_process_only_while_it_runs() {
        let me = Owner::me().unwrap();
        assert_eq!(Owner::parse(&me.to_text()), Some(me));
        assert!(me.is_alive());
        // The same pid with another start time is another process.
        let reused = Owner {
            start: me.start + 1,
            ..me
        };
        assert!(!reused.is_alive());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(process_start(pid), None, "a reaped process is gone");
        for bad in [
            "",
            "pid=1",
            "pid=x start=1 netns=2",
            "pid=1 start=2 netns=3 rm=-rf",
        ] {
            assert_eq!(Owner::parse(bad), None, "{bad:?}");
        }
    }
}
