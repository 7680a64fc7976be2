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
//! Everything made here is removed by [`ClientNetns`]'s `Drop`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use openrelay_tun::system::{CommandError, run_command};

use tracing::warn;

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

/// Why the namespace could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// The name is not usable for a namespace.
    #[error(
        "--client-netns: {0:?} is not a usable name (letters, digits, '-', '_', '.'; at most 64)"
    )]
    Name(String),
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

/// The client's namespace, its link and the host side's firewall; removed
/// on drop.
#[derive(Debug)]
pub struct ClientNetns {
    name: String,
    host_link: String,
    table: String,
    etc: PathBuf,
}

impl ClientNetns {
    /// Creates namespace `name` linked to this namespace, with ingress
    /// addresses for `operators` operators on the host side.
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
        // A short, stable link name (IFNAMSIZ) derived from the namespace's.
        let hash = name.bytes().fold(0xcbf2_9ce4_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let host_link = format!("orh{:08x}", hash);
        let netns = ClientNetns {
            name: name.to_owned(),
            table: format!("openrelay_devnet_{:08x}", hash),
            etc: PathBuf::from("/etc/netns").join(name),
            host_link,
        };
        // Refuse to adopt (and later delete) a namespace someone else made.
        if PathBuf::from("/run/netns").join(name).exists() {
            return Err(NetnsError::Command(CommandError {
                command: format!("ip netns add {name}"),
                reason: "the namespace already exists".into(),
            }));
        }
        run("ip", &["netns", "add", name], None)?;
        if let Err(e) = netns.set_up(operators) {
            drop(netns);
            return Err(e);
        }
        Ok(netns)
    }

    fn set_up(&self, operators: u8) -> Result<(), NetnsError> {
        let (name, host) = (self.name.as_str(), self.host_link.as_str());
        // The namespace's own resolver file (`ip netns exec` mounts it over
        // /etc/resolv.conf), naming the link's "ISP resolver": a DNS leak
        // would show as packets to it.
        std::fs::create_dir_all(&self.etc)
            .and_then(|()| {
                std::fs::write(
                    self.etc.join("resolv.conf"),
                    format!("nameserver {GATEWAY_V4}\n"),
                )
            })
            .map_err(|source| NetnsError::File {
                path: self.etc.clone(),
                source,
            })?;
        run(
            "ip",
            &[
                "link", "add", host, "type", "veth", "peer", "name", UPLINK, "netns", name,
            ],
            None,
        )?;
        let gw4 = format!("{GATEWAY_V4}/24");
        let gw6 = format!("{GATEWAY_V6}/64");
        run("ip", &["addr", "add", &gw4, "dev", host], None)?;
        run(
            "ip",
            &["-6", "addr", "add", &gw6, "dev", host, "nodad"],
            None,
        )?;
        let mut ingresses = Vec::new();
        for i in 1..=operators {
            let address = format!("{}/24", ingress_address(i));
            run("ip", &["addr", "add", &address, "dev", host], None)?;
            ingresses.push(ingress_address(i).to_string());
        }
        run("ip", &["link", "set", host, "up"], None)?;
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
            table = self.table,
            ingresses = ingresses.join(", ")
        );
        run("nft", &["-f", "-"], Some(&ruleset))
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ClientNetns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair (both ends).
        for (program, args) in [
            ("ip", vec!["netns", "delete", self.name.as_str()]),
            ("nft", vec!["delete", "table", "inet", self.table.as_str()]),
        ] {
            if let Err(e) = run(program, &args, None) {
                warn!(error = %e, "cleaning up the client namespace");
            }
        }
        if self.etc.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.etc)
        {
            warn!(error = %e, "removing the namespace's /etc/netns entry");
        }
    }
}
