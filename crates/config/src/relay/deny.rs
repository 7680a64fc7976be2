//! `[egress] deny`: destinations an egress refuses even where
//! `dangerously_allow_networks` names
//! them, for the operator's own networks and hosts (management networks,
//! databases, a bastion's SSH).
//!
//! ```toml
//! deny = [
//!     "203.0.113.0/24",                                 # every port of a net
//!     "198.51.100.7",                                   # one address
//!     { net = "198.51.100.8/32", ports = [22, 6379] },  # some ports only
//! ]
//! ```

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A net, written as CIDR (`10.0.0.0/8`) or as a single address (`10.0.0.5`,
/// `2001:db8::5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Net(pub IpNet);

impl FromStr for Net {
    type Err = ipnet::AddrParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.parse::<IpAddr>() {
            Ok(ip) => Ok(Net(IpNet::from(ip))),
            Err(_) => text.parse().map(Net),
        }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Net {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Net {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "{text:?} is not a net (10.0.0.0/8) or an address (10.0.0.5)"
            ))
        })
    }
}

/// One entry of `[egress] deny`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DenyEntry {
    /// Every port of a net.
    Net(Net),
    /// Only some ports of a net.
    Ports {
        /// The net.
        net: Net,
        /// The refused ports.
        ports: Vec<u16>,
    },
}

impl DenyEntry {
    /// The net.
    pub fn net(&self) -> IpNet {
        match self {
            DenyEntry::Net(net) | DenyEntry::Ports { net, .. } => net.0,
        }
    }

    /// The refused ports; `None`: all of them.
    pub fn ports(&self) -> Option<&[u16]> {
        match self {
            DenyEntry::Net(_) => None,
            DenyEntry::Ports { ports, .. } => Some(ports),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::{ConfigError, RelayConfig};

    const EGRESS: &str = include_str!("../../../../examples/egress.toml");

    fn with_deny(deny: &str) -> Result<RelayConfig, ConfigError> {
        RelayConfig::from_toml(
            &EGRESS.replace("\n[egress]\n", &format!("\n[egress]\ndeny = {deny}\n")),
        )
    }

    fn deny_of(config: &RelayConfig) -> Vec<super::DenyEntry> {
        match config {
            RelayConfig::Egress(egress) => egress.role.deny.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deny_takes_nets_addresses_and_ports_and_round_trips() {
        let config = with_deny(
            r#"["203.0.113.0/24", "198.51.100.7", "2001:db8::5", { net = "198.51.100.8/32", ports = [22, 6379] }]"#,
        )
        .unwrap();
        let deny = deny_of(&config);
        let nets: Vec<String> = deny.iter().map(|d| d.net().to_string()).collect();
        assert_eq!(
            nets,
            [
                "203.0.113.0/24",
                "198.51.100.7/32",
                "2001:db8::5/128",
                "198.51.100.8/32"
            ]
        );
        assert_eq!(deny[0].ports(), None);
        assert_eq!(deny[3].ports(), Some(&[22, 6379][..]));
        assert_eq!(
            RelayConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
            config
        );
        assert!(deny_of(&RelayConfig::from_toml(EGRESS).unwrap()).is_empty());
    }

    #[test]
    fn malformed_deny_entries_are_refused_naming_the_field() {
        for bad in [
            r#"["10.0.0.0/33"]"#,
            r#"["example.com"]"#,
            r#"[{ net = "10.0.0.0/8", ports = [70000] }]"#,
            r#"[{ net = "10.0.0.0/8", port = 22 }]"#,
        ] {
            let error = with_deny(bad).unwrap_err().to_string();
            assert!(error.contains("deny"), "{bad}: {error}");
        }
    }
}
