use std::net::SocketAddr;
use std::path::PathBuf;

use openrelay_types::RelayRole;

use openrelay_types::error::{ErrorKind, HasKind};

use super::*;

const INGRESS_EXAMPLE: &str = include_str!("../../../examples/ingress.toml");
const EGRESS_EXAMPLE: &str = include_str!("../../../examples/egress.toml");
const CLIENT_EXAMPLE: &str = include_str!("../../../examples/client.toml");
const ISSUER_EXAMPLE: &str = include_str!("../../../examples/issuer.toml");

fn ingress(text: &str) -> IngressRelayConfig {
    match RelayConfig::from_toml(text).unwrap() {
        RelayConfig::Ingress(ingress) => ingress,
        other => panic!("{other:?}"),
    }
}

fn egress(text: &str) -> EgressRelayConfig {
    match RelayConfig::from_toml(text).unwrap() {
        RelayConfig::Egress(egress) => egress,
        other => panic!("{other:?}"),
    }
}

fn expect_field(err: ConfigError, wanted: &str) {
    let text = err.to_string();
    assert!(
        text.contains(wanted),
        "error {text:?} should name {wanted:?}"
    );
}

#[test]
fn the_commented_examples_parse() {
    let ingress = ingress(INGRESS_EXAMPLE);
    assert_eq!(ingress.role.egress_relays.len(), 2);
    assert_eq!(
        RelayConfig::from_toml(INGRESS_EXAMPLE).unwrap().role(),
        RelayRole::Ingress
    );
    let egress = egress(EGRESS_EXAMPLE);
    assert_eq!(egress.role.connect_timeout_secs, 10);
    assert_eq!(
        RelayConfig::from_toml(EGRESS_EXAMPLE).unwrap().role(),
        RelayRole::Egress
    );
    let client = ClientConfig::from_toml(CLIENT_EXAMPLE).unwrap();
    assert_eq!(client.relays.len(), 2);
    assert_eq!(client.socks, SocketAddr::from(([127, 0, 0, 1], 1080)));
}

#[test]
fn a_missing_field_is_named() {
    let text = INGRESS_EXAMPLE.replace("listen = \"0.0.0.0:4433\"", "");
    expect_field(RelayConfig::from_toml(&text).unwrap_err(), "listen");
}

#[test]
fn an_unknown_field_is_named() {
    let text = format!("{EGRESS_EXAMPLE}\nconect_timeout = 3\n");
    expect_field(RelayConfig::from_toml(&text).unwrap_err(), "conect_timeout");
}

#[test]
fn a_bad_value_is_named() {
    let text = EGRESS_EXAMPLE.replace("0.0.0.0:4433", "not-an-address");
    expect_field(RelayConfig::from_toml(&text).unwrap_err(), "listen");
    let text = CLIENT_EXAMPLE.replace("ed25519:11qY", "ed25519:!!");
    expect_field(ClientConfig::from_toml(&text).unwrap_err(), "key");
}

#[test]
fn an_ingress_needs_egress_relays() {
    let text = INGRESS_EXAMPLE.replace(
        "egress_relays = [\"198.51.100.20:4433\", \"[2001:db8::20]:4433\"]",
        "egress_relays = []",
    );
    expect_field(
        RelayConfig::from_toml(&text).unwrap_err(),
        "ingress.egress_relays",
    );
    let without_section = INGRESS_EXAMPLE.split("[ingress]").next().unwrap();
    expect_field(
        RelayConfig::from_toml(without_section).unwrap_err(),
        "ingress",
    );
}

#[test]
fn the_wrong_section_for_the_role_is_refused() {
    let text = format!("{EGRESS_EXAMPLE}\n[ingress]\negress_relays = [\"192.0.2.1:1\"]\n");
    expect_field(RelayConfig::from_toml(&text).unwrap_err(), "ingress");
}

#[test]
fn a_client_needs_a_two_operator_path() {
    let text = CLIENT_EXAMPLE.replace("operator = \"example-isp\"", "operator = \"example-coop\"");
    expect_field(ClientConfig::from_toml(&text).unwrap_err(), "relay");
}

#[test]
fn duplicate_relay_names_are_refused() {
    let text = CLIENT_EXAMPLE.replace("name = \"egress-isp\"", "name = \"ingress-coop\"");
    expect_field(ClientConfig::from_toml(&text).unwrap_err(), "relay[1].name");
}

#[test]
fn keepalive_must_be_shorter_than_idle_timeout() {
    let text = CLIENT_EXAMPLE.replace("keepalive_ms = 500", "keepalive_ms = 5000");
    expect_field(
        ClientConfig::from_toml(&text).unwrap_err(),
        "path.keepalive_ms",
    );
}

#[test]
fn errors_from_files_name_the_file() {
    let dir = std::env::temp_dir().join(format!("openrelay-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("relay.toml");
    std::fs::write(&path, "role = \"ingress\"\n").unwrap();
    let text = RelayConfig::load(&path).unwrap_err().to_string();
    assert!(text.contains("relay.toml"), "{text}");
    let missing = RelayConfig::load(&dir.join("absent.toml")).unwrap_err();
    assert!(matches!(missing, ConfigError::Read { .. }));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn configs_round_trip_through_toml() {
    let client = ClientConfig::from_toml(CLIENT_EXAMPLE).unwrap();
    assert_eq!(
        ClientConfig::from_toml(&client.to_toml().unwrap()).unwrap(),
        client
    );
    let relay = RelayConfig::from_toml(INGRESS_EXAMPLE).unwrap();
    assert_eq!(
        RelayConfig::from_toml(&relay.to_toml().unwrap()).unwrap(),
        relay
    );
}

proptest::proptest! {
    #[test]
    fn config_parsers_never_panic(text in "\\PC{0,400}") {
        let _ = RelayConfig::from_toml(&text);
        let _ = ClientConfig::from_toml(&text);
    }
}

#[test]
fn worker_threads_must_be_positive() {
    let relay = format!("worker_threads = 0\n{EGRESS_EXAMPLE}");
    expect_field(
        RelayConfig::from_toml(&relay).unwrap_err(),
        "worker_threads",
    );
    let client = format!("worker_threads = 0\n{CLIENT_EXAMPLE}");
    expect_field(
        ClientConfig::from_toml(&client).unwrap_err(),
        "worker_threads",
    );
    assert!(
        ClientConfig::from_toml(CLIENT_EXAMPLE)
            .unwrap()
            .worker_threads
            >= 1,
        "the client defaults to one thread per core"
    );
    assert_eq!(
        egress(EGRESS_EXAMPLE).common.worker_threads,
        None,
        "relays default to one thread per core"
    );
}

const REGISTRY_EXAMPLE: &str = include_str!("../../../examples/registry.toml");
const VALIDATOR_EXAMPLE: &str = include_str!("../../../examples/validator.toml");

#[test]
fn registry_and_validator_examples_parse() {
    let registry = RegistryConfig::from_toml(REGISTRY_EXAMPLE).unwrap();
    assert_eq!((registry.validators.len(), registry.threshold), (3, 2));
    assert_eq!(
        RegistryConfig::from_toml(&registry.to_toml().unwrap()).unwrap(),
        registry
    );
    let validator = ValidatorConfig::from_toml(VALIDATOR_EXAMPLE).unwrap();
    assert_eq!(
        ValidatorConfig::from_toml(&validator.to_toml().unwrap()).unwrap(),
        validator
    );
}

#[test]
fn a_threshold_above_the_validator_count_is_named() {
    let text = REGISTRY_EXAMPLE.replace("threshold = 2", "threshold = 4");
    expect_field(RegistryConfig::from_toml(&text).unwrap_err(), "threshold");
    let text = REGISTRY_EXAMPLE.replace("threshold = 2", "threshold = 0");
    expect_field(RegistryConfig::from_toml(&text).unwrap_err(), "threshold");
}

#[test]
fn an_egress_city_needs_a_country() {
    let text = CLIENT_EXAMPLE.replace("[path]\n", "[path]\negress_city = \"Zurich\"\n");
    expect_field(
        ClientConfig::from_toml(&text).unwrap_err(),
        "path.egress_city",
    );
    let text = CLIENT_EXAMPLE.replace(
        "[path]\n",
        "[path]\negress_country = \"CH\"\negress_city = \"Zurich\"\n",
    );
    let config = ClientConfig::from_toml(&text).unwrap();
    assert_eq!(config.path.egress_country.as_deref(), Some("CH"));
}

#[test]
fn path_selection_settings_are_checked_and_named() {
    for (line, field) in [
        ("home_country = \"Germany\"", "path.home_country"),
        ("egress_country = \"C1\"", "path.egress_country"),
    ] {
        let text = CLIENT_EXAMPLE.replace("[path]\n", &format!("[path]\n{line}\n"));
        expect_field(ClientConfig::from_toml(&text).unwrap_err(), field);
    }
    let text = CLIENT_EXAMPLE.replace("rotation_secs = 600", "rotation_secs = 0");
    expect_field(
        ClientConfig::from_toml(&text).unwrap_err(),
        "path.rotation_secs",
    );
    let text = CLIENT_EXAMPLE.replace("[path]\n", "[path]\nhome_country = \"SE\"\n");
    let text = text.replace("per_site = false", "per_site = true");
    let path = ClientConfig::from_toml(&text).unwrap().path;
    assert_eq!(path.home_country.as_deref(), Some("SE"));
    assert!(path.per_site);
    assert_eq!(path.rotation_secs, 600);
}

#[test]
fn congestion_control_is_chosen_per_process_and_checked() {
    let client = ClientConfig::from_toml(CLIENT_EXAMPLE).unwrap();
    assert_eq!(client.path.congestion, CongestionControl::Cubic);
    assert_eq!(
        ingress(INGRESS_EXAMPLE).common.congestion,
        CongestionControl::Cubic
    );
    for (text, wanted) in [
        ("delivery-rate", CongestionControl::DeliveryRate),
        ("newreno", CongestionControl::NewReno),
    ] {
        let egress = EGRESS_EXAMPLE.replace(
            "congestion = \"cubic\"",
            &format!("congestion = \"{text}\""),
        );
        assert_eq!(
            RelayConfig::from_toml(&egress).unwrap().common().congestion,
            wanted
        );
    }
    // Absent: the default.
    let without = CLIENT_EXAMPLE.replace("congestion = \"cubic\"", "");
    assert_eq!(
        ClientConfig::from_toml(&without).unwrap().path.congestion,
        CongestionControl::default()
    );
    let text = CLIENT_EXAMPLE.replace("congestion = \"cubic\"", "congestion = \"vegas\"");
    expect_field(ClientConfig::from_toml(&text).unwrap_err(), "congestion");
    let text = INGRESS_EXAMPLE.replace("congestion = \"cubic\"", "congestion = \"Cubic\"");
    expect_field(RelayConfig::from_toml(&text).unwrap_err(), "congestion");
}

#[test]
fn publication_limits_are_checked_and_named() {
    let registry = RegistryConfig::from_toml(REGISTRY_EXAMPLE).unwrap();
    assert_eq!(registry.publication.max_relays, MAX_RELAYS_LIMIT);
    assert!(
        !registry
            .publication
            .dangerously_allow_special_purpose_endpoints
    );
    assert_eq!(registry.publication.issuers.len(), 1);
    assert_eq!(
        ValidatorConfig::from_toml(VALIDATOR_EXAMPLE)
            .unwrap()
            .publication,
        registry.publication,
        "the examples' registry and validator apply the same rules"
    );
    for (from, to, field) in [
        (
            "max_relays = 100000",
            "max_relays = 100001",
            "publication.max_relays",
        ),
        (
            "max_relays_per_operator = 256",
            "max_relays_per_operator = 0",
            "publication.max_relays_per_operator",
        ),
        (
            "descriptor_ttl_secs = 600",
            "descriptor_ttl_secs = 0",
            "publication.descriptor_ttl_secs",
        ),
        (
            "min_token_key_period_secs = 3600",
            "min_token_key_period_secs = 0",
            "publication.min_token_key_period_secs",
        ),
        (
            "issuers = [\"ed25519:iOgV5UGCEvAK2wEt-6Wc2JuXf4UwIlhPS3MZTDChNnU\"]",
            "issuers = [\"ed25519:iOgV5UGCEvAK2wEt-6Wc2JuXf4UwIlhPS3MZTDChNnU\", \"ed25519:iOgV5UGCEvAK2wEt-6Wc2JuXf4UwIlhPS3MZTDChNnU\"]",
            "publication.issuers",
        ),
    ] {
        assert!(REGISTRY_EXAMPLE.contains(from), "{from}");
        let text = REGISTRY_EXAMPLE.replace(from, to);
        expect_field(RegistryConfig::from_toml(&text).unwrap_err(), field);
        let text = VALIDATOR_EXAMPLE.replace(from, to);
        expect_field(ValidatorConfig::from_toml(&text).unwrap_err(), field);
    }
    // Absent, the section takes its defaults.
    let without = REGISTRY_EXAMPLE.split("[publication]").next().unwrap();
    let registry =
        RegistryConfig::from_toml(&format!("{without}\n[log]\nlevel = \"info\"\n")).unwrap();
    assert_eq!(registry.publication, PublicationLimits::default());
}

#[test]
fn a_validator_names_its_peers_and_where_relays_reach_it() {
    let validator = ValidatorConfig::from_toml(VALIDATOR_EXAMPLE).unwrap();
    assert_eq!((validator.validators.len(), validator.threshold), (3, 2));
    assert_eq!(validator.max_directory_lifetime_secs, 7200);
    let text = VALIDATOR_EXAMPLE.replace("listen = \"0.0.0.0:4444\"", "");
    expect_field(ValidatorConfig::from_toml(&text).unwrap_err(), "listen");
    let text = VALIDATOR_EXAMPLE.replace("threshold = 2", "threshold = 4");
    expect_field(ValidatorConfig::from_toml(&text).unwrap_err(), "threshold");
}

#[test]
fn a_relay_publishes_to_every_validator() {
    let publish = "\n[publish]\noperator_key_file = \"/k\"\noperator_name = \"Op\"\n\
        operator_contact = \"mailto:o@example.org\"\njurisdiction = \"DE\"\ncountry = \"DE\"\n\
        city = \"Berlin\"\nnetwork = \"AS64500\"\nbandwidth_bps = 1000000000\n\
        [publish.registry]\naddr = \"192.0.2.1:4443\"\nkey = \"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"\n";
    let text = format!("{EGRESS_EXAMPLE}{publish}");
    expect_field(
        RelayConfig::from_toml(&text).unwrap_err(),
        "publish.validators",
    );
    let text = format!(
        "{text}[[publish.validators]]\naddr = \"192.0.2.2:4444\"\nkey = \"ed25519:PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw\"\n"
    );
    let relay = RelayConfig::from_toml(&text).unwrap();
    assert_eq!(relay.common().publish.as_ref().unwrap().validators.len(), 1);
}

/// Issue 13, item 4: a weighted genesis validator set, its weights as
/// integers or (beyond TOML's 2^63) decimal strings; `threshold` is for the
/// unweighted k of n only.
#[test]
fn a_genesis_set_can_carry_weights() {
    let directory = |settings: &str| {
        format!(
            "{CLIENT_EXAMPLE}\n[directory]\nvalidators = [\"ed25519:PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw\", \"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"]\n{settings}\n\
             [directory.registry]\naddr = \"192.0.2.1:4443\"\nkey = \"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"\n"
        )
    };
    let client = ClientConfig::from_toml(&directory(
        "validator_weights = [3, \"340282366920938463463374607431768211000\"]",
    ))
    .unwrap();
    let config = client.directory.unwrap();
    assert_eq!(config.threshold, 0);
    assert_eq!(
        config.weights(),
        Some(vec![3, 340_282_366_920_938_463_463_374_607_431_768_211_000])
    );
    // The unweighted form is unchanged.
    let plain = ClientConfig::from_toml(&directory("threshold = 2")).unwrap();
    assert_eq!(plain.directory.unwrap().weights(), None);
    // A pinned deployment.
    let pinned = ClientConfig::from_toml(&directory(
        "threshold = 2
[directory.chain]
chain_id = 1
contract = \"0x00000000000000000000000000000000000000aa\"",
    ))
    .unwrap();
    let pin = pinned.directory.unwrap().chain.unwrap();
    assert_eq!((pin.chain_id, pin.contract.0[19]), (1, 0xaa));
    for settings in [
        "threshold = 2
[directory.chain]
chain_id = 1
contract = \"0xaa\"",
        "threshold = 2
[directory.chain]
chain_id = 1",
        "threshold = 2
[directory.chain]
chain_id = 1
contract = \"0x00000000000000000000000000000000000000aa\"
rpc = \"x\"",
    ] {
        assert!(
            ClientConfig::from_toml(&directory(settings)).is_err(),
            "{settings}"
        );
    }
    for (settings, field) in [
        ("threshold = 1\nvalidator_weights = [1, 1]", "threshold"),
        ("validator_weights = [1]", "validator_weights"),
        ("validator_weights = [1, 0]", "validator_weights"),
        (
            "validator_weights = [\"340282366920938463463374607431768211455\", 1]",
            "validator_weights",
        ),
        ("validator_weights = [1, -2]", "validator_weights"),
        ("validator_weights = [1, \"0x10\"]", "validator_weights"),
        ("", "threshold"),
    ] {
        let err = ClientConfig::from_toml(&directory(settings)).unwrap_err();
        expect_field(err, field);
    }
}

#[test]
fn local_relay_endpoints_are_an_explicit_choice_of_the_client() {
    let directory = "\n[directory]\nvalidators = [\"ed25519:PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw\"]\nthreshold = 1\n\
        [directory.registry]\naddr = \"192.0.2.1:4443\"\nkey = \"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"\n";
    let client = ClientConfig::from_toml(&format!("{CLIENT_EXAMPLE}{directory}")).unwrap();
    let directory_config = client.directory.clone().unwrap();
    assert!(!directory_config.dangerously_allow_special_purpose_endpoints);
    let text =
        format!("{CLIENT_EXAMPLE}{directory}dangerously_allow_special_purpose_endpoints = true\n");
    let client = ClientConfig::from_toml(&text);
    // The flag belongs to [directory.registry]'s parent; written after the
    // sub-table it lands in the wrong table and is refused as unknown.
    assert!(client.is_err());
    let text = format!(
        "{CLIENT_EXAMPLE}{}",
        directory.replace(
            "threshold = 1\n",
            "threshold = 1\ndangerously_allow_special_purpose_endpoints = true\n"
        )
    );
    let client = ClientConfig::from_toml(&text).unwrap();
    assert!(
        client
            .directory
            .unwrap()
            .dangerously_allow_special_purpose_endpoints
    );
}

#[test]
fn a_new_validator_can_print_its_key_before_its_config_lists_it() {
    let path = std::env::temp_dir().join(format!("orr-validator-{}.toml", std::process::id()));
    std::fs::write(&path, "state_dir = \"/var/lib/v\"\n").unwrap();
    let (full, state_dir) = (
        ValidatorConfig::load(&path),
        ValidatorConfig::load_state_dir(&path),
    );
    std::fs::remove_file(&path).unwrap();
    assert!(full.is_err());
    assert_eq!(state_dir.unwrap(), PathBuf::from("/var/lib/v"));
}

/// RFC 9576 §6 key consistency: an issuer publishes its key set and follows
/// the directory (both or neither); a relay with a directory names its
/// issuer by key and takes no local key file.
#[test]
fn key_consistency_settings_go_together() {
    let issuer = IssuerConfig::from_toml(ISSUER_EXAMPLE).unwrap();
    assert_eq!(issuer.publish.as_ref().unwrap().validators.len(), 3);
    assert_eq!(issuer.directory.as_ref().unwrap().threshold, 2);
    let publish_only = ISSUER_EXAMPLE.replace("[directory]", "[directory_absent]");
    let publish_only = publish_only
        .split("[directory_absent]")
        .next()
        .unwrap()
        .to_owned();
    expect_field(
        IssuerConfig::from_toml(&publish_only).unwrap_err(),
        "directory",
    );
    let directory_only = {
        let (head, tail) = ISSUER_EXAMPLE.split_once("[publish]").unwrap();
        let (_, rest) = tail.split_once("[directory]").unwrap();
        format!("{head}[directory]{rest}")
    };
    expect_field(
        IssuerConfig::from_toml(&directory_only).unwrap_err(),
        "publish",
    );

    let directory = "\n[directory]\nregistry = { addr = \"203.0.113.10:4440\", key = \"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\" }\nvalidators = [\"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"]\nthreshold = 1\n";
    let gated = |tokens: &str| {
        format!("{INGRESS_EXAMPLE}{directory}\n[ingress.admission]\nissuer_name = \"i\"\n{tokens}")
    };
    let relay = RelayConfig::from_toml(&gated(
        "issuer = { addr = \"203.0.113.5:4450\", key = \"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\" }\n",
    ))
    .unwrap();
    assert_eq!(relay.common().directory.as_ref().unwrap().threshold, 1);
    expect_field(
        RelayConfig::from_toml(&gated("issuer_keys = \"/k.json\"\n")).unwrap_err(),
        "ingress.admission.issuer",
    );
    expect_field(
        RelayConfig::from_toml(&gated(
            "issuer = { addr = \"203.0.113.5:4450\", key = \"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\" }\nissuer_keys = \"/k.json\"\n",
        ))
        .unwrap_err(),
        "ingress.admission.issuer_keys",
    );
}

/// A relay config is an enum by role: a section of the other role does not
/// parse, and the error names it.
#[test]
fn a_section_of_the_other_role_does_not_parse() {
    let text = format!("{INGRESS_EXAMPLE}\n[egress]\nconnect_timeout_secs = 3\n");
    let error = RelayConfig::from_toml(&text).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Invalid { field, .. } if field == "egress"),
        "{error}"
    );
    assert_eq!(error.kind(), ErrorKind::Config);
    let text = format!("{EGRESS_EXAMPLE}\n[ingress]\negress_relays = [\"192.0.2.1:1\"]\n");
    let error = RelayConfig::from_toml(&text).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Invalid { field, .. } if field == "ingress"),
        "{error}"
    );
    // An egress without its section takes the defaults, and writes them.
    let without = EGRESS_EXAMPLE.split("\n[egress]\n").next().unwrap();
    let relay = egress(without);
    assert_eq!(relay.role, EgressConfig::default());
    let again = RelayConfig::from_toml(&RelayConfig::Egress(relay.clone()).to_toml().unwrap());
    assert_eq!(again.unwrap(), RelayConfig::Egress(relay));
}

/// Every field renamed because it weakens a guarantee: a file using the old
/// name is refused with a message naming the new one, in every file kind
/// that has it.
#[test]
fn renamed_fields_name_their_new_name() {
    let special = |table: &str| format!("[{table}]\nallow_special_purpose_endpoints = true\n");
    let directory = "\n[directory]\nvalidators = [\"ed25519:PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw\"]\nthreshold = 1\nallow_special_purpose_endpoints = true\n\
        [directory.registry]\naddr = \"192.0.2.1:4443\"\nkey = \"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"\n";
    type Parse = fn(&str) -> Result<(), ConfigError>;
    let relay: Parse = |t| RelayConfig::from_toml(t).map(drop);
    let client: Parse = |t| ClientConfig::from_toml(t).map(drop);
    let issuer: Parse = |t| IssuerConfig::from_toml(t).map(drop);
    let registry: Parse = |t| RegistryConfig::from_toml(t).map(drop);
    let validator: Parse = |t| ValidatorConfig::from_toml(t).map(drop);
    let cases: Vec<(Parse, String, &str, &str)> = vec![
        (
            relay,
            EGRESS_EXAMPLE.replace("\n[egress]\n", "\n[egress]\nallow = [\"10.20.0.0/16\"]\n"),
            "egress.allow",
            "egress.dangerously_allow_networks",
        ),
        (
            // `allow = []`, as the example had it, gets the message too.
            relay,
            EGRESS_EXAMPLE.replace("\n[egress]\n", "\n[egress]\nallow = []\n"),
            "egress.allow",
            "egress.dangerously_allow_networks",
        ),
        (
            relay,
            format!("{EGRESS_EXAMPLE}{directory}"),
            "directory.allow_special_purpose_endpoints",
            "directory.dangerously_allow_special_purpose_endpoints",
        ),
        (
            client,
            format!("{CLIENT_EXAMPLE}{directory}"),
            "directory.allow_special_purpose_endpoints",
            "directory.dangerously_allow_special_purpose_endpoints",
        ),
        (
            issuer,
            ISSUER_EXAMPLE.replacen(
                "[directory]\n",
                "[directory]\nallow_special_purpose_endpoints = true\n",
                1,
            ),
            "directory.allow_special_purpose_endpoints",
            "directory.dangerously_allow_special_purpose_endpoints",
        ),
        (
            issuer,
            ISSUER_EXAMPLE.replacen(
                "[settlement.directory]\n",
                "[settlement.directory]\nallow_special_purpose_endpoints = true\n",
                1,
            ),
            "settlement.directory.allow_special_purpose_endpoints",
            "settlement.directory.dangerously_allow_special_purpose_endpoints",
        ),
        (
            registry,
            REGISTRY_EXAMPLE.replace("[publication]\n", &special("publication")),
            "publication.allow_special_purpose_endpoints",
            "publication.dangerously_allow_special_purpose_endpoints",
        ),
        (
            validator,
            VALIDATOR_EXAMPLE.replace("[publication]\n", &special("publication")),
            "publication.allow_special_purpose_endpoints",
            "publication.dangerously_allow_special_purpose_endpoints",
        ),
    ];
    for (parse, text, old, new) in cases {
        let error = parse(&text).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Renamed { old: o, new: n, .. } if o == old && n == new),
            "{old}: {error}"
        );
        assert_eq!(error.kind(), ErrorKind::Config);
        let message = error.to_string();
        assert!(message.contains(old) && message.contains(new), "{message}");
        // Under its new name the file parses.
        let key = |dotted: &str| format!("\n{} =", dotted.rsplit('.').next().unwrap());
        let renamed = text.replace(&key(old), &key(new));
        parse(&renamed).unwrap_or_else(|e| panic!("{new}: {e}"));
    }
}

/// Every file in `examples/` parses and round-trips through `to_toml`.
#[test]
fn every_example_parses_and_round_trips() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.ends_with(".toml") {
            continue;
        }
        seen += 1;
        match name.as_str() {
            "ingress.toml" | "egress.toml" => {
                let config = RelayConfig::load(&path).unwrap();
                assert_eq!(
                    RelayConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
                    config
                );
            }
            "client.toml" => {
                let config = ClientConfig::load(&path).unwrap();
                assert_eq!(
                    ClientConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
                    config
                );
            }
            "issuer.toml" => {
                let config = IssuerConfig::load(&path).unwrap();
                assert_eq!(
                    IssuerConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
                    config
                );
            }
            "registry.toml" => {
                let config = RegistryConfig::load(&path).unwrap();
                assert_eq!(
                    RegistryConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
                    config
                );
            }
            "validator.toml" => {
                let config = ValidatorConfig::load(&path).unwrap();
                assert_eq!(
                    ValidatorConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
                    config
                );
            }
            other => panic!("examples/{other}: which process reads it? add it here"),
        }
    }
    assert_eq!(seen, 6);
}

#[test]
fn a_test_throttle_is_off_unless_its_section_is_there() {
    let config = RelayConfig::from_toml(EGRESS_EXAMPLE).unwrap();
    assert_eq!(config.common().throttle_for_tests, None);
    let text = format!(
        "{EGRESS_EXAMPLE}\n[throttle_for_tests]\nbps = 10000000\nexempt_sources = [\"192.0.2.7\"]\n"
    );
    let config = RelayConfig::from_toml(&text).unwrap();
    let throttle = config.common().throttle_for_tests.clone().unwrap();
    assert_eq!(throttle.bps, 10_000_000);
    assert_eq!(
        throttle.exempt_sources,
        ["192.0.2.7".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(
        RelayConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
        config
    );
    for (bad, field) in [
        ("bps = 1000", "throttle_for_tests.bps"),
        (
            "bps = 10000000\nexempt_sources = [\"nope\"]",
            "exempt_sources",
        ),
        ("rate = 10000000", "unknown field `rate`, expected `bps`"),
    ] {
        let text = format!("{EGRESS_EXAMPLE}\n[throttle_for_tests]\n{bad}\n");
        let error = RelayConfig::from_toml(&text).unwrap_err();
        assert!(error.to_string().contains(field), "{bad}: {error}");
    }
}

#[test]
fn probes_never_leave_from_the_validators_service_address() {
    let base =
        VALIDATOR_EXAMPLE.replace("listen = \"0.0.0.0:4444\"", "listen = \"192.0.2.1:4444\"");
    let with = |measure: &str| {
        format!(
            "{base}\n[measure]\n{measure}\n[measure.directory]\nvalidators = [\"ed25519:PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw\"]\nthreshold = 1\n\
             [measure.directory.registry]\naddr = \"192.0.2.1:4443\"\nkey = \"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"\n"
        )
    };
    let config = ValidatorConfig::from_toml(&with("probe_bind = \"192.0.2.9\"")).unwrap();
    let measure = config.measure.clone().unwrap();
    assert_eq!(
        measure.account_key_file(std::path::Path::new("/state")),
        std::path::Path::new("/state/evm.key")
    );
    assert_eq!(
        measure.sink_ip(),
        "192.0.2.9".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        ValidatorConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
        config
    );
    for (bad, field) in [
        ("probe_bind = \"192.0.2.1\"", "measure.probe_bind"),
        (
            "probe_bind = \"192.0.2.9\"\nsink_bind = \"192.0.2.1\"",
            "measure.sink_bind",
        ),
        ("probe_bind = \"0.0.0.0\"", "measure.probe_bind"),
    ] {
        let error = ValidatorConfig::from_toml(&with(bad)).unwrap_err();
        assert!(error.to_string().contains(field), "{bad}: {error}");
        assert!(error.to_string().contains("must"), "{bad}: {error}");
    }
}

/// `[measure] partners` are relay ids; a test validator's misreports say
/// what they are in their name and survive a round trip.
#[test]
fn measuring_partners_are_relay_ids() {
    let base =
        VALIDATOR_EXAMPLE.replace("listen = \"0.0.0.0:4444\"", "listen = \"192.0.2.1:4444\"");
    let relay = "ed25519:PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw";
    let with = |extra: &str| {
        format!(
            "{base}\n[measure]\nprobe_bind = \"192.0.2.9\"\n{extra}\n[measure.directory]\nvalidators = [\"{relay}\"]\nthreshold = 1\n\
             [measure.directory.registry]\naddr = \"192.0.2.1:4443\"\nkey = \"{relay}\"\n"
        )
    };
    let config = ValidatorConfig::from_toml(&with(&format!(
        "partners = [\"{relay}\"]\nmisreport_for_tests = [{{ relay = \"{relay}\", capacity_bps = 40000000 }}]"
    )))
    .unwrap();
    let measure = config.measure.clone().unwrap();
    assert_eq!(measure.partners, vec![relay.parse().unwrap()]);
    assert_eq!(measure.misreport_for_tests[0].capacity_bps, 40_000_000);
    assert_eq!(
        ValidatorConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
        config
    );
    assert!(ValidatorConfig::from_toml(&with("partners = [\"egress-1\"]")).is_err());
}

#[test]
fn a_probe_account_defaults_its_password_file_and_refuses_bad_names() {
    let base =
        VALIDATOR_EXAMPLE.replace("listen = \"0.0.0.0:4444\"", "listen = \"192.0.2.1:4444\"");
    let with = |account: &str| {
        format!(
            "{base}\n[measure]\nprobe_bind = \"192.0.2.9\"\n[measure.directory]\nvalidators = [\"ed25519:PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw\"]\nthreshold = 1\n\
             [measure.directory.registry]\naddr = \"192.0.2.1:4443\"\nkey = \"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"\n\
             [measure.account]\n{account}\n[measure.account.issuer]\naddr = \"192.0.2.2:4443\"\nkey = \"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"\n"
        )
    };
    let config = ValidatorConfig::from_toml(&with(
        "issuer_name = \"issuer.example\"\nusername = \"validator-7\"",
    ))
    .unwrap();
    let account = config.measure.as_ref().unwrap().account.clone().unwrap();
    assert_eq!(account.username, "validator-7");
    assert_eq!(
        account.password_file(std::path::Path::new("/state")),
        std::path::Path::new("/state/probe-account.secret")
    );
    assert_eq!(
        ValidatorConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
        config
    );
    let own = ValidatorConfig::from_toml(&with(
        "issuer_name = \"issuer.example\"\nusername = \"v\"\npassword_file = \"/secrets/probe\"",
    ))
    .unwrap();
    assert_eq!(
        own.measure
            .unwrap()
            .account
            .unwrap()
            .password_file(std::path::Path::new("/state")),
        std::path::Path::new("/secrets/probe")
    );
    let long = "v".repeat(65);
    for (bad, field) in [
        (
            "issuer_name = \"\"\nusername = \"v\"",
            "measure.account.issuer_name",
        ),
        (
            "issuer_name = \"i.example\"\nusername = \"\"",
            "measure.account.username",
        ),
        (
            "issuer_name = \"i.example\"\nusername = \"a b\"",
            "measure.account.username",
        ),
        (
            &format!("issuer_name = \"i.example\"\nusername = \"{long}\""),
            "measure.account.username",
        ),
        (
            "issuer_name = \"i.example\"\nusername = \"v\"\npassword_file = \"\"",
            "measure.account.password_file",
        ),
        ("issuer_name = \"i.example\"", "username"),
    ] {
        let error = ValidatorConfig::from_toml(&with(bad)).unwrap_err();
        assert!(error.to_string().contains(field), "{bad}: {error}");
    }
}

/// `[release_votes]` needs `[chain]`, names its checks as what they are,
/// and sends with the validator's one account.
#[test]
fn release_votes_need_a_chain_and_one_account() {
    let chain = "[chain]\nrpc = \"http://127.0.0.1:8545\"\nchain_id = 31337\ncontract = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n";
    let with = |votes: &str| format!("{VALIDATOR_EXAMPLE}\n{chain}\n[release_votes]\n{votes}\n");
    let config =
        ValidatorConfig::from_toml(&with("check = \"own_binary_insecure_devnet\"")).unwrap();
    let votes = config.release_votes.clone().unwrap();
    assert_eq!(
        votes.check,
        crate::ReleaseCheckConfig::OwnBinaryInsecureDevnet
    );
    assert_eq!(
        config.release_votes_key_file(),
        Some(config.state_dir.join("evm.key"))
    );
    assert_eq!(
        ValidatorConfig::from_toml(&config.to_toml().unwrap()).unwrap(),
        config
    );
    let dissent = ValidatorConfig::from_toml(&with(
        "check = \"reject_all_for_tests\"\naccount_key_file = \"votes.key\"",
    ))
    .unwrap();
    assert_eq!(
        dissent.release_votes_key_file(),
        Some(dissent.state_dir.join("votes.key"))
    );
    // The real check needs its manifests, a checkout and trusted keys.
    let rebuild = ValidatorConfig::from_toml(&with(
        "check = \"rebuild\"\nmanifests_dir = \"/srv/manifests\"\nsource_dir = \"/srv/openrelay\"\n\
         trusted_release_keys = [\"ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"]",
    ))
    .unwrap();
    let votes = rebuild.release_votes.unwrap();
    assert_eq!(votes.check, crate::ReleaseCheckConfig::Rebuild);
    assert_eq!(votes.required_release_signatures, 1);
    for (missing, field) in [
        (
            "manifests_dir = \"/m\"\nsource_dir = \"/s\"",
            "trusted_release_keys",
        ),
        ("source_dir = \"/s\"", "manifests_dir"),
    ] {
        let error = ValidatorConfig::from_toml(&with(&format!("check = \"rebuild\"\n{missing}")))
            .unwrap_err();
        expect_field(error, field);
    }
    let error = ValidatorConfig::from_toml(&with("check = \"trust_me\"")).unwrap_err();
    assert!(
        error.to_string().contains("own_binary_insecure_devnet"),
        "{error}"
    );
    let without_chain =
        format!("{VALIDATOR_EXAMPLE}\n[release_votes]\ncheck = \"own_binary_insecure_devnet\"\n");
    let error = ValidatorConfig::from_toml(&without_chain).unwrap_err();
    assert!(error.to_string().contains("needs [chain]"), "{error}");
}

/// Issue 15: `[trust]` with its attestation mode and the TEE policy; the
/// default is `prefer` with the strict policy (no simulated TEE), and a
/// misspelt mode is named.
#[test]
fn trust_takes_an_attestation_mode_and_a_tee_policy() {
    let client = ClientConfig::from_toml(CLIENT_EXAMPLE).unwrap();
    assert_eq!(client.trust.attestation, crate::AttestationMode::Prefer);
    assert_eq!(client.trust.tee.insecure_simulated_root, None);
    let text = format!(
        "{CLIENT_EXAMPLE}\n[trust]\nattestation = \"require\"\n[trust.tee]\n\
         insecure_simulated_root = \"{}\"\ntdx.accepted_advisories = [\"INTEL-SA-00615\"]\n",
        "ab".repeat(32)
    );
    let client = ClientConfig::from_toml(&text).unwrap();
    assert_eq!(client.trust.attestation, crate::AttestationMode::Require);
    assert_eq!(client.trust.tee.insecure_simulated_root, Some([0xab; 32]));
    assert_eq!(client.trust.tee.tdx.accepted_advisories, ["INTEL-SA-00615"]);
    let text = format!("{CLIENT_EXAMPLE}\n[trust]\nattestation = \"required\"\n");
    expect_field(ClientConfig::from_toml(&text).unwrap_err(), "attestation");
}
