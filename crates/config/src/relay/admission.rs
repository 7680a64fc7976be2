//! `[ingress.admission]`: token-gated access to an ingress relay (Privacy
//! Pass, RFC 9577/9578). Absent, the ingress admits every connect-udp request
//! to a known egress, as before.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, ServiceEndpoint};

/// How an ingress checks the access token of each tunnel request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdmissionConfig {
    /// The issuer's server name in the token challenge (RFC 9577 §2.1.1),
    /// e.g. `issuer.example:4433`; clients get tokens for this challenge.
    pub issuer_name: String,
    /// The issuer: its address and the key its TLS handshake must prove.
    /// The relay fetches the issuer's public keys from it (the issuer
    /// directory, RFC 9578 §4) at start, retrying with backoff until they
    /// arrive (tokens are refused with 503 meanwhile), then every
    /// `keys_refresh_secs`, so key rotations reach the relay. With the
    /// relay's `[directory]`, its key names the issuer whose key set the
    /// directory lists, and only those keys are accepted. Without
    /// `[directory]`, key consistency (RFC 9576 §6) rests on the issuer:
    /// it could give each relay, or each user, keys of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<ServiceEndpoint>,
    /// A local copy of the issuer directory (as `openrelay issuer` writes it
    /// to `<state_dir>/issuer-directory.json`), read instead of asking
    /// `issuer`: for a relay on the issuer's host, or one that must not
    /// reach it. Re-read every `keys_refresh_secs`. Key consistency then
    /// rests on the issuer, as with `issuer` and no `[directory]` (the two
    /// cannot be combined).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_keys: Option<PathBuf>,
    /// How often the issuer keys are fetched (or re-read).
    #[serde(default = "default_keys_refresh_secs")]
    pub keys_refresh_secs: u64,
    /// A Redis server shared by a fleet of ingresses as their double-spend
    /// set, e.g. `redis://10.0.0.5:6379/0`. Without it each ingress keeps
    /// its own set in `spent_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// The embedded double-spend set (default `<state_dir>/spent-tokens.redb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_path: Option<PathBuf>,
}

fn default_keys_refresh_secs() -> u64 {
    60
}

impl AdmissionConfig {
    /// With the relay's `[directory]` (`directory`), the keys come from the
    /// directory, for the issuer `issuer.key` names: a local key file would
    /// be ignored, so it is refused rather than silently unused.
    pub(crate) fn validate_key_source(
        &self,
        section: &str,
        directory: bool,
    ) -> Result<(), ConfigError> {
        if !directory {
            return Ok(());
        }
        if self.issuer.is_none() {
            return Err(ConfigError::invalid(
                format!("{section}.issuer"),
                "with [directory], give the issuer (`issuer = { addr, key }`): its key names the \
                 issuer whose keys the directory lists",
            ));
        }
        if self.issuer_keys.is_some() {
            return Err(ConfigError::invalid(
                format!("{section}.issuer_keys"),
                "with [directory], only the keys the directory lists are accepted: remove the \
                 local key file",
            ));
        }
        Ok(())
    }

    /// Checks the settings; errors name the field under `section` (the
    /// same settings describe the egress's payment tokens).
    pub(crate) fn validate_at(&self, section: &str) -> Result<(), ConfigError> {
        if !crate::issuer::is_server_name(&self.issuer_name) {
            return Err(ConfigError::invalid(
                format!("{section}.issuer_name"),
                "must be a server name (host or host:port)",
            ));
        }
        if self.issuer.is_none() && self.issuer_keys.is_none() {
            return Err(ConfigError::invalid(
                format!("{section}.issuer"),
                "say where the issuer's keys come from: issuer = { addr, key } (or a local issuer_keys file)",
            ));
        }
        if self.keys_refresh_secs == 0 {
            return Err(ConfigError::invalid(
                format!("{section}.keys_refresh_secs"),
                "must be at least 1",
            ));
        }
        if let Some(url) = &self.redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError::invalid(
                    format!("{section}.redis_url"),
                    "must be a redis:// URL",
                ));
            }
            if self.spent_path.is_some() {
                return Err(ConfigError::invalid(
                    format!("{section}.spent_path"),
                    "give either redis_url (shared set) or spent_path (embedded set), not both",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::{ConfigError, IngressRelayConfig, RelayConfig};

    const INGRESS: &str = include_str!("../../../../examples/ingress.toml");

    fn ingress(text: &str) -> IngressRelayConfig {
        match RelayConfig::from_toml(text).unwrap() {
            RelayConfig::Ingress(ingress) => ingress,
            other => panic!("{other:?}"),
        }
    }

    fn with_admission(section: &str) -> String {
        format!("{INGRESS}\n[ingress.admission]\n{section}")
    }

    #[test]
    fn a_token_gated_ingress_needs_its_operators_key() {
        let text = with_admission("issuer_name = \"i\"\nissuer_keys = \"k\"\n");
        let without = text.replace("\noperator_key =", "\n# operator_key =");
        let error = RelayConfig::from_toml(&without).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { field, .. } if field == "operator_key"),
            "{error}"
        );
        // Without admission the key is not needed.
        let plain = INGRESS.replace("\noperator_key =", "\n# operator_key =");
        assert_eq!(ingress(&plain).common.operator_key, None);
        assert!(ingress(&text).common.operator_key.is_some());
    }

    #[test]
    fn admission_is_opt_in_and_parsed_strictly() {
        let plain = ingress(INGRESS);
        assert_eq!(plain.role.admission, None);

        let text = with_admission(
            "issuer_name = \"issuer.example:4450\"\nissuer_keys = \"/var/lib/openrelay/issuer/issuer-directory.json\"\nredis_url = \"redis://10.0.0.5:6379/0\"\n",
        );
        let config = RelayConfig::from_toml(&text).unwrap();
        let admission = ingress(&text).role.admission.unwrap();
        assert_eq!(admission.keys_refresh_secs, 60);
        assert_eq!(admission.issuer, None);
        assert_eq!(
            admission.redis_url.as_deref(),
            Some("redis://10.0.0.5:6379/0")
        );
        assert_eq!(
            RelayConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
            config
        );

        let networked = with_admission(
            "issuer_name = \"issuer.example:4450\"\nissuer = { addr = \"192.0.2.7:4450\", key = \"ed25519:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA\" }\n",
        );
        let admission = ingress(&networked).role.admission.unwrap();
        assert_eq!(
            admission.issuer.unwrap().addr,
            "192.0.2.7:4450".parse().unwrap()
        );
        assert_eq!(admission.issuer_keys, None);

        for (section, field) in [
            (
                "issuer_name = \"\"\nissuer_keys = \"k\"\n",
                "ingress.admission.issuer_name",
            ),
            (
                "issuer_name = \"i\"\nissuer_keys = \"k\"\nkeys_refresh_secs = 0\n",
                "ingress.admission.keys_refresh_secs",
            ),
            (
                "issuer_name = \"i\"\nissuer_keys = \"k\"\nredis_url = \"http://x\"\n",
                "ingress.admission.redis_url",
            ),
            (
                "issuer_name = \"i\"\nissuer_keys = \"k\"\nredis_url = \"redis://x\"\nspent_path = \"p\"\n",
                "ingress.admission.spent_path",
            ),
            (
                "issuer_name = \"i\"\nissuer_keys = \"k\"\ncolour = 1\n",
                "colour",
            ),
            ("issuer_name = \"i\"\n", "ingress.admission.issuer"),
        ] {
            let error = RelayConfig::from_toml(&with_admission(section)).unwrap_err();
            let text = match &error {
                ConfigError::Invalid { field, .. } => field.clone(),
                other => other.to_string(),
            };
            assert!(text.contains(field), "{field}: {error}");
        }
    }
}
