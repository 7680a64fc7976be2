#![doc = include_str!("../README.md")]

pub mod attack;
pub mod h3raw;
pub mod idle;
pub mod load;
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
