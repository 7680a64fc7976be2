//! Config files (TOML): any text gives a config or an error, never a panic;
//! a config that parses serialises and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_config::{ClientConfig, RegistryConfig, RelayConfig, ValidatorConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(relay) = RelayConfig::from_toml(text) {
        let again = relay.to_toml().expect("a valid config serialises");
        assert_eq!(RelayConfig::from_toml(&again).expect("and parses back"), relay);
    }
    if let Ok(client) = ClientConfig::from_toml(text) {
        let again = client.to_toml().expect("a valid config serialises");
        assert_eq!(ClientConfig::from_toml(&again).expect("and parses back"), client);
    }
    if let Ok(registry) = RegistryConfig::from_toml(text) {
        let again = registry.to_toml().expect("a valid config serialises");
        assert_eq!(RegistryConfig::from_toml(&again).expect("and parses back"), registry);
    }
    if let Ok(validator) = ValidatorConfig::from_toml(text) {
        let again = validator.to_toml().expect("a valid config serialises");
        assert_eq!(ValidatorConfig::from_toml(&again).expect("and parses back"), validator);
    }
});
