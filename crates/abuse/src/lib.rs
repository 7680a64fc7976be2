//! openrelay's torture harness: attacks a relay (ingress, egress), the
//! registry or the token issuer over real sockets, watches the target's
//! memory and CPU, and checks that a legitimate client still gets through
//! during and after each attack (issue 11). A tool beside the product, like
//! `bench/`: operators point it at their own servers, the benchmarks in
//! `docs/BENCHMARKS.md` come from it, and an integration test runs every
//! attack briefly so it cannot rot.
//!
//! * [`h3raw`]: HTTP/3 frames and QPACK literal field sections written by
//!   hand on quinn (RFC 9114 §7, RFC 9204 §4.5), valid or not.
//! * [`attack`]: the attacks ([`attack::Attack`]).
//! * [`probe`]: the legitimate client of each kind of target.
//! * [`monitor`]: the target's VmRSS, VmHWM, CPU time and descriptors from
//!   `/proc`.
//! * [`run`]: one attack as a measured phase, and the report table.
//! * [`idle`]: memory per idle tunnel (ingress) and per idle UDP flow
//!   (egress).
//! * [`target`]: what is attacked, from a config file, optionally started here.

pub mod attack;
pub mod h3raw;
pub mod idle;
pub mod monitor;
pub mod probe;
pub mod run;
pub mod target;

use std::net::{IpAddr, Ipv4Addr};

/// `count` consecutive addresses from `first`: many clients on one host
/// (any address of 127.0.0.0/8 can be bound on Linux without set-up). An
/// address outside IPv4 loopback gives only itself.
pub fn addresses(first: IpAddr, count: usize) -> Vec<IpAddr> {
    match first {
        IpAddr::V4(v4) if v4.is_loopback() => (0..count.max(1) as u32)
            .map(|i| IpAddr::V4(Ipv4Addr::from(u32::from(v4).wrapping_add(i))))
            .filter(|ip| matches!(ip, IpAddr::V4(v4) if v4.is_loopback()))
            .collect(),
        other => vec![other],
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn loopback_sources_count_up_and_others_stay_single() {
        let first: IpAddr = "127.66.0.254".parse().unwrap();
        let list = addresses(first, 3);
        assert_eq!(
            list,
            ["127.66.0.254", "127.66.0.255", "127.66.1.0"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        assert_eq!(addresses("192.0.2.1".parse().unwrap(), 5).len(), 1);
        assert_eq!(addresses("::1".parse().unwrap(), 5).len(), 1);
    }
}
