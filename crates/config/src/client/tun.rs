//! `[tun]`: the client's full-device VPN (`openrelay client --tun`,
//! `openrelay up`). Design and guarantees: `docs/tun.md`.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// The smallest TUN MTU: IPv6 needs 1280 on every link (RFC 8200 §5).
pub const MIN_TUN_MTU: u16 = 1280;

/// Full-device VPN settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunConfig {
    /// Run the full-device VPN (also `openrelay client --tun`, `openrelay up`).
    #[serde(default)]
    pub enabled: bool,
    /// The TUN device's name.
    #[serde(default = "default_name")]
    pub name: String,
    /// The TUN device's MTU (at least 1280, RFC 8200 §5).
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Networks that bypass the tunnel (split tunnelling): their traffic takes
    /// the normal route and the kill switch lets it pass.
    #[serde(default)]
    pub exclude: Vec<ipnet::IpNet>,
    /// Let traffic to the local network (private, link-local and multicast
    /// ranges) bypass the tunnel. Off by default: everything goes through it.
    #[serde(default)]
    pub lan_access: bool,
    /// Block everything that does not go through the tunnel while the VPN is
    /// up, and after the client dies, until `openrelay down` (nftables).
    #[serde(default = "default_true")]
    pub kill_switch: bool,
    /// A UDP flow (one local address and port to one destination) that carries
    /// nothing for this long is closed.
    #[serde(default = "default_udp_idle_timeout_secs")]
    pub udp_idle_timeout_secs: u64,
    /// DNS.
    #[serde(default)]
    pub dns: TunDnsConfig,
}

/// DNS while the VPN is up. Queries to any resolver on port 53 are always
/// answered through the egress; these settings only concern the resolver
/// configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunDnsConfig {
    /// Point this resolver configuration file at the tunnel's DNS address
    /// while up (restored on down); empty: leave it alone.
    #[serde(default = "default_resolv_conf")]
    pub resolv_conf: String,
    /// Give up on a query after this long (the app gets SERVFAIL).
    #[serde(default = "default_dns_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_name() -> String {
    "openrelay0".into()
}
fn default_mtu() -> u16 {
    MIN_TUN_MTU
}
fn default_true() -> bool {
    true
}
fn default_udp_idle_timeout_secs() -> u64 {
    60
}
fn default_resolv_conf() -> String {
    "/etc/resolv.conf".into()
}
fn default_dns_timeout_ms() -> u64 {
    5000
}

impl Default for TunConfig {
    fn default() -> Self {
        TunConfig {
            enabled: false,
            name: default_name(),
            mtu: default_mtu(),
            exclude: Vec::new(),
            lan_access: false,
            kill_switch: true,
            udp_idle_timeout_secs: default_udp_idle_timeout_secs(),
            dns: TunDnsConfig::default(),
        }
    }
}

impl Default for TunDnsConfig {
    fn default() -> Self {
        TunDnsConfig {
            resolv_conf: default_resolv_conf(),
            timeout_ms: default_dns_timeout_ms(),
        }
    }
}

impl TunConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        // IFNAMSIZ is 16 with the terminating NUL.
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 15
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(ConfigError::invalid(
                "tun.name",
                "must be 1 to 15 characters: letters, digits, '-' or '_'",
            ));
        }
        if self.mtu < MIN_TUN_MTU {
            return Err(ConfigError::invalid(
                "tun.mtu",
                format!("must be at least {MIN_TUN_MTU} (IPv6 minimum, RFC 8200 §5)"),
            ));
        }
        if let Some(net) = self.exclude.iter().find(|n| n.prefix_len() == 0) {
            return Err(ConfigError::invalid(
                "tun.exclude",
                format!("{net} would exclude everything; turn the VPN off instead"),
            ));
        }
        if self.udp_idle_timeout_secs == 0 {
            return Err(ConfigError::invalid(
                "tun.udp_idle_timeout_secs",
                "must be at least 1",
            ));
        }
        if self.dns.timeout_ms == 0 {
            return Err(ConfigError::invalid(
                "tun.dns.timeout_ms",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::ClientConfig;

    const CLIENT_EXAMPLE: &str = include_str!("../../../../examples/client.toml");

    /// The example's commented `[tun]` section, uncommented (the relay
    /// sections come first in the file, so it is appended after them).
    fn with_tun(extra: &str) -> String {
        let (relays, tun) = CLIENT_EXAMPLE.split_once("# [tun]").unwrap();
        let tun: String = format!("# [tun]{tun}")
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        format!(
            "{relays}{}",
            tun.replacen("[tun]\n", &format!("[tun]\n{extra}"), 1)
        )
    }

    #[test]
    fn the_commented_tun_example_parses_and_defaults_are_safe() {
        let client = ClientConfig::from_toml(&with_tun("")).unwrap();
        assert_eq!(client.tun.name, "openrelay0");
        assert_eq!(client.tun.exclude.len(), 1);
        assert!(client.tun.kill_switch && !client.tun.lan_access && !client.tun.enabled);
        let plain = ClientConfig::from_toml(CLIENT_EXAMPLE).unwrap();
        assert!(plain.tun.kill_switch, "the kill switch is on by default");
        assert_eq!(plain.tun.dns.resolv_conf, "/etc/resolv.conf");
    }

    #[test]
    fn bad_tun_fields_are_named() {
        let text = with_tun("").replace("mtu = 1280", "mtu = 1200");
        let err = ClientConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("tun.mtu"), "{err}");
        let text = with_tun("").replace("\"openrelay0\"", "\"a-name-far-too-long\"");
        let err = ClientConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("tun.name"), "{err}");
        let text = with_tun("").replace("203.0.113.0/24", "0.0.0.0/0");
        let err = ClientConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("tun.exclude"), "{err}");
        let err = ClientConfig::from_toml(&with_tun("kill_swich = false\n")).unwrap_err();
        assert!(err.to_string().contains("kill_swich"), "{err}");
    }
}
