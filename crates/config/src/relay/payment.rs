//! `[egress.payment]`: pay-as-you-go at an egress relay. Clients pay one
//! Privacy Pass token per quantum of traffic or time, inside their encrypted
//! connection; a session whose due token does not arrive within the grace
//! window is closed. Absent, the egress serves without payment, as before.

use serde::{Deserialize, Serialize};

use super::AdmissionConfig;
use crate::{ConfigError, ServiceEndpoint};

/// How an egress charges its sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentConfig {
    /// One token buys this many MiB carried ...
    #[serde(default = "default_quantum_mib")]
    pub quantum_mib: u64,
    /// ... or this many seconds of session, whichever runs out first.
    #[serde(default = "default_quantum_secs")]
    pub quantum_secs: u64,
    /// A due token must arrive within this many seconds.
    #[serde(default = "default_grace_secs")]
    pub grace_secs: u64,
    /// What a session that has paid nothing may carry (KiB) before its
    /// first token arrives: enough to start paying, and for a token refill
    /// (which pays nobody: docs/payments.md), not for free browsing.
    #[serde(default = "default_unpaid_allowance_kib")]
    pub unpaid_allowance_kib: u64,
    /// A session belongs to its tunnel (the ingress's UDP source) and is
    /// remembered this long after its last connection ended, so reconnecting
    /// through the same tunnel does not start a fresh, unpaid session.
    #[serde(default = "default_tunnel_memory_secs")]
    pub tunnel_memory_secs: u64,
    /// Where collected tokens are redeemed for the operator: the issuer's
    /// address and key. Absent: tokens accumulate in the relay's ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_at: Option<ServiceEndpoint>,
    /// How often collected tokens are settled.
    #[serde(default = "default_settle_secs")]
    pub settle_secs: u64,
    /// The tokens: their issuer, its keys and the double-spend set (as for
    /// `[ingress.admission]`; a separate set, since these tokens are for
    /// another challenge).
    pub tokens: AdmissionConfig,
}

fn default_settle_secs() -> u64 {
    60
}

fn default_quantum_mib() -> u64 {
    256
}
fn default_quantum_secs() -> u64 {
    600
}
fn default_grace_secs() -> u64 {
    10
}
fn default_unpaid_allowance_kib() -> u64 {
    1024
}
fn default_tunnel_memory_secs() -> u64 {
    600
}

impl PaymentConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (field, value) in [
            ("egress.payment.quantum_mib", self.quantum_mib),
            ("egress.payment.quantum_secs", self.quantum_secs),
            ("egress.payment.grace_secs", self.grace_secs),
            ("egress.payment.settle_secs", self.settle_secs),
            ("egress.payment.tunnel_memory_secs", self.tunnel_memory_secs),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(field, "must be at least 1"));
            }
        }
        if self.unpaid_allowance_kib >= self.quantum_mib.saturating_mul(1024) {
            return Err(ConfigError::invalid(
                "egress.payment.unpaid_allowance_kib",
                "must be less than a quantum (egress.payment.quantum_mib)",
            ));
        }
        if self.quantum_mib > 1 << 30 {
            return Err(ConfigError::invalid(
                "egress.payment.quantum_mib",
                "at most 2^30 MiB",
            ));
        }
        self.tokens.validate_at("egress.payment.tokens")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::{ConfigError, EgressConfig, RelayConfig};

    const EGRESS: &str = include_str!("../../../../examples/egress.toml");

    fn egress(text: &str) -> EgressConfig {
        match RelayConfig::from_toml(text).unwrap() {
            RelayConfig::Egress(egress) => egress.role,
            other => panic!("{other:?}"),
        }
    }

    fn with_payment(section: &str) -> String {
        format!("{EGRESS}\n[egress.payment]\n{section}")
    }

    const TOKENS: &str = "[egress.payment.tokens]\nissuer_name = \"issuer.example:4450\"\nissuer_keys = \"/k.json\"\n";

    #[test]
    fn payment_is_opt_in_with_defaults_and_checked() {
        assert_eq!(egress(EGRESS).payment, None);

        let text = with_payment(&format!("grace_secs = 5\n{TOKENS}"));
        let config = RelayConfig::from_toml(&text).unwrap();
        let payment = egress(&text).payment.unwrap();
        assert_eq!(
            (
                payment.quantum_mib,
                payment.quantum_secs,
                payment.grace_secs
            ),
            (256, 600, 5)
        );
        assert_eq!(
            (payment.unpaid_allowance_kib, payment.tunnel_memory_secs),
            (1024, 600)
        );
        assert_eq!(
            RelayConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
            config
        );

        for (text, field) in [
            (
                format!("quantum_mib = 0\n{TOKENS}"),
                "egress.payment.quantum_mib",
            ),
            (
                format!("grace_secs = 0\n{TOKENS}"),
                "egress.payment.grace_secs",
            ),
            (
                format!("quantum_mib = 1\nunpaid_allowance_kib = 1024\n{TOKENS}"),
                "egress.payment.unpaid_allowance_kib",
            ),
            (
                format!("tunnel_memory_secs = 0\n{TOKENS}"),
                "egress.payment.tunnel_memory_secs",
            ),
            (
                TOKENS.replace("issuer.example:4450", ""),
                "egress.payment.tokens.issuer_name",
            ),
        ] {
            let error = RelayConfig::from_toml(&with_payment(&text)).unwrap_err();
            assert!(
                matches!(&error, ConfigError::Invalid { field: f, .. } if f == field),
                "{field}: {error}"
            );
        }
        let error = RelayConfig::from_toml(&with_payment("quantum_mib = 1\n")).unwrap_err();
        assert!(error.to_string().contains("tokens"), "{error}");
    }
}
