//! The egress host's own addresses, kept current for the destination policy
//! (`CONNECT <this host's public IP>:22` must not reach the host's services
//! past its inbound firewall).
//!
//! Every interface counts, IPv4 and IPv6: an interface's address, its IPv4
//! broadcast address, and the whole net of a loopback interface (Linux
//! answers any address of `127.0.0.0/8`, and of nets an operator puts on
//! `lo`). Addresses come and go (DHCP, SLAAC and its temporary addresses, a
//! floating IP), so the set is re-read whenever the kernel announces an
//! address change on a netlink socket (`RTMGRP_IPV4_IFADDR`,
//! `RTMGRP_IPV6_IFADDR`), joined before the first read so no change falls
//! between the two. Notifications were chosen over a periodic re-read: a
//! new address is refused as soon as the kernel has it instead of up to a
//! period later, and nothing is read while nothing changes. Notifications
//! lost to a full socket buffer (ENOBUFS) also trigger a re-read, so
//! losses cost nothing. Where no netlink socket can be had, the set is
//! re-read every [`FALLBACK_PERIOD`].

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ipnet::IpNet;
use nix::errno::Errno;
use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, SockaddrStorage,
    sockopt,
};
use nix::sys::time::TimeVal;
use openrelay_policy::DestinationPolicy;
use tracing::{debug, warn};

/// How often the addresses are re-read without netlink notifications.
pub(crate) const FALLBACK_PERIOD: Duration = Duration::from_secs(1);

/// The host's addresses now, as the policy takes them.
pub(crate) fn read_addresses() -> io::Result<Vec<IpNet>> {
    let mut nets = Vec::new();
    for interface in getifaddrs().map_err(io::Error::from)? {
        let loopback = interface.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let Some(ip) = interface.address.as_ref().and_then(ip_of) else {
            continue;
        };
        let prefix = interface
            .netmask
            .as_ref()
            .and_then(ip_of)
            .and_then(|mask| ipnet::ip_mask_to_prefix(mask).ok());
        nets.push(match (loopback, prefix) {
            (true, Some(prefix)) => IpNet::new(ip, prefix)
                .map(|net| net.trunc())
                .unwrap_or_else(|_| IpNet::from(ip)),
            _ => IpNet::from(ip),
        });
        if let Some(broadcast) = interface.broadcast.as_ref().and_then(ip_of) {
            nets.push(IpNet::from(broadcast));
        }
    }
    nets.sort_unstable();
    nets.dedup();
    Ok(nets)
}

fn ip_of(address: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

/// The policy in force: replaced whole when the host's addresses change,
/// read by every request.
#[derive(Debug)]
pub(crate) struct PolicyCell {
    current: RwLock<Arc<DestinationPolicy>>,
}

impl PolicyCell {
    pub(crate) fn new(policy: DestinationPolicy) -> Self {
        PolicyCell {
            current: RwLock::new(Arc::new(policy)),
        }
    }

    /// The policy now.
    pub(crate) fn get(&self) -> Arc<DestinationPolicy> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts `host` in as the host's addresses, if they changed.
    fn set_host_addresses(&self, host: Vec<IpNet>) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.host_addresses() != host.as_slice() {
            debug!(addresses = host.len(), "host addresses changed");
            *current = Arc::new((**current).clone().with_host_addresses(host));
        }
    }

    /// Transforms the policy (e.g. adds infrastructure found later).
    pub(crate) fn update(&self, change: impl FnOnce(DestinationPolicy) -> DestinationPolicy) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(change((**current).clone()));
    }
}

/// Reads the host's addresses into `cell`, and keeps them current from a
/// thread of its own until `cell` is dropped; see the [module
/// documentation](self). Fails if the addresses cannot be read: an egress
/// that does not know its own addresses cannot refuse them.
///
/// A thread, not a task: it waits in a blocking `recv` (tokio's `AsyncFd`
/// over a raw socket needs `unsafe`), and it must not take a thread of
/// tokio's blocking pool for good. It wakes every [`FALLBACK_PERIOD`] to see
/// whether the egress is still there.
pub(crate) fn watch(cell: &Arc<PolicyCell>) -> io::Result<()> {
    let notifications = address_notifications()
        .inspect_err(|e| {
            warn!(error = %e, period_ms = FALLBACK_PERIOD.as_millis() as u64,
                "no netlink address notifications; re-reading host addresses periodically");
        })
        .ok();
    cell.set_host_addresses(read_addresses()?);
    let cell = Arc::downgrade(cell);
    std::thread::Builder::new()
        .name("host-addresses".into())
        .spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let changed = match &notifications {
                    Some(socket) => wait_for_change(socket, &mut buf),
                    None => {
                        std::thread::sleep(FALLBACK_PERIOD);
                        true
                    }
                };
                let Some(cell) = cell.upgrade() else {
                    return;
                };
                if !changed {
                    continue;
                }
                match read_addresses() {
                    Ok(host) => cell.set_host_addresses(host),
                    // Keep the last known addresses: refusing too much is
                    // safer than refusing nothing.
                    Err(e) => {
                        warn!(error = %e, "cannot re-read host addresses; keeping the last ones")
                    }
                }
            }
        })?;
    Ok(())
}

/// A netlink route socket joined to the address-change groups, whose
/// `recv` gives up after [`FALLBACK_PERIOD`].
fn address_notifications() -> io::Result<OwnedFd> {
    let fd = nix::sys::socket::socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(io::Error::from)?;
    // The group constants are small positive bit masks.
    #[allow(clippy::cast_sign_loss)]
    let groups = (nix::libc::RTMGRP_IPV4_IFADDR | nix::libc::RTMGRP_IPV6_IFADDR) as u32;
    nix::sys::socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, groups))
        .map_err(io::Error::from)?;
    let period = TimeVal::new(i64::try_from(FALLBACK_PERIOD.as_secs()).unwrap_or(1), 0);
    nix::sys::socket::setsockopt(&fd, sockopt::ReceiveTimeout, &period).map_err(io::Error::from)?;
    Ok(fd)
}

/// Waits up to [`FALLBACK_PERIOD`] for a notification; true if there was
/// one (then every one queued is taken: a burst of changes is one re-read).
/// The messages themselves are not parsed: any of them means "read again".
/// An error (ENOBUFS: notifications were lost) means the same.
fn wait_for_change(socket: &OwnedFd, buf: &mut [u8]) -> bool {
    let fd = socket.as_raw_fd();
    if let Err(Errno::EAGAIN | Errno::EINTR) = nix::sys::socket::recv(fd, buf, MsgFlags::empty()) {
        return false;
    }
    while let Ok(_) | Err(Errno::EINTR | Errno::ENOBUFS) =
        nix::sys::socket::recv(fd, buf, MsgFlags::MSG_DONTWAIT)
    {}
    true
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_a_whole_net_and_is_read() {
        let nets = read_addresses().unwrap();
        assert!(
            nets.iter()
                .any(|n| n.contains(&IpAddr::from([127, 1, 2, 3]))),
            "{nets:?}"
        );
    }

    #[test]
    fn the_cell_replaces_host_addresses_only_when_they_change() {
        let cell = PolicyCell::new(DestinationPolicy::standard());
        let before = cell.get();
        cell.set_host_addresses(Vec::new());
        assert!(Arc::ptr_eq(&before, &cell.get()), "unchanged: same policy");
        let host: Vec<IpNet> = vec!["11.79.0.2/32".parse().unwrap()];
        cell.set_host_addresses(host.clone());
        assert_eq!(cell.get().host_addresses(), host.as_slice());
        assert_eq!(
            cell.get().check("11.79.0.2:22".parse().unwrap()),
            Err(openrelay_policy::Refusal::OwnHost)
        );
    }
}
