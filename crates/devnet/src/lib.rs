#![doc = include_str!("../README.md")]

pub mod chain;
pub mod netns;
mod supervise;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use openrelay_config::{
    AccountConfig, AdmissionConfig, AttestationMode, ClientConfig, DirectoryConfig, EgressConfig,
    IngressConfig, IssuerConfig, KeyPublishConfig, LogConfig, PathConfig, PaymentConfig,
    PublicationLimits, PublishConfig, RegistryConfig, Relay, RelayAttestationConfig, RelayCommon,
    RelayConfig, RelayEntry, ServiceEndpoint, SettlementRelays, ValidatorConfig,
};
use openrelay_registry_client::RegistryClient;
use openrelay_transport::identity::{Identity, IdentityError};
use openrelay_types::{ErrorKind, HasKind, KeyPin, RelayRole};

pub use supervise::{Component, NotReady, SuperviseError};

/// The client's outer QUIC socket address in a devnet.
pub const CLIENT_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 1);
/// The registry's address in a devnet with `--registry`.
pub const REGISTRY_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 4, 1);
/// Where the token issuer listens.
pub const ISSUER_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 5, 1);
/// Where validator `i` (from 1) listens for relays' publications:
/// `127.0.6.i`.
pub fn validator_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 6, u8::try_from(i).unwrap_or(u8::MAX))
}
/// Where validator `i` (from 1) sends its measurement probes from and runs
/// its sink (`[measure]` with `--measure`): `127.0.7.i`, never its
/// published `127.0.6.i`.
pub fn probe_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 7, u8::try_from(i).unwrap_or(u8::MAX))
}
/// The account the devnet creates for its client.
pub const DEVNET_ACCOUNT: &str = "devnet";
/// Validators in a devnet with a registry, unless `--validators` says
/// otherwise.
pub const DEFAULT_VALIDATORS: usize = 3;
/// The most validators a devnet runs (each has its own addresses).
pub const MAX_VALIDATORS: usize = 20;

/// Signatures a devnet directory of `validators` needs: a majority.
pub fn threshold(validators: usize) -> usize {
    validators / 2 + 1
}

/// Destinations a devnet's egresses may reach besides loopback: the
/// benchmarking range (RFC 2544), where tests put the servers that a client
/// in its own namespace reaches through the relays.
pub const DEVNET_INTERNET: ipnet::IpNet =
    ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15));

/// Why a devnet could not be planned or exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevnetError {
    /// The devnet's release manifest.
    #[error("the devnet's release manifest: {0}")]
    Manifest(#[from] openrelay_release::ManifestError),
    /// Proposing the devnet's release.
    #[error("proposing the devnet's release: {0}")]
    ReleaseVote(#[from] openrelay_chain::release::ReleaseError),
    /// The devnet's simulated TEE key.
    #[error(transparent)]
    Tee(#[from] openrelay_registry::relay_tee::RelayTeeError),
    /// At least two operators are needed for a path of two operators.
    #[error("--operators must be between 2 and 250, got {0}")]
    Operators(usize),
    /// The validators need addresses of their own.
    #[error("--validators must be between 1 and {MAX_VALIDATORS}, got {0}")]
    Validators(usize),
    /// Keys could not be created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// Signing keys could not be created.
    #[error(transparent)]
    KeyFile(#[from] openrelay_registry::keyfile::KeyFileError),
    /// A free port could not be found, or a file written.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A config could not be serialised.
    #[error(transparent)]
    Config(#[from] openrelay_config::ConfigError),
    /// `--chain` without the registry: the chain is what the registry
    /// follows.
    #[error("--chain needs the registry and validators (drop --no-registry)")]
    ChainNeedsRegistry,
    /// A relay named on the command line is not in the plan.
    #[error("no devnet relay is named {0:?} (relays are ingress-<i> and egress-<i>)")]
    UnknownRelay(String),
    /// anvil could not be started (or funded an account).
    #[error(transparent)]
    Anvil(#[from] openrelay_chain::anvil::AnvilError),
    /// anvil printed an endpoint that is no URL.
    #[error("devnet chain: anvil's endpoint {0} is not a URL")]
    Rpc(String),
    /// The registry contract could not be deployed.
    #[error("devnet chain: cannot deploy the registry contract")]
    Deploy(#[from] openrelay_chain::deploy::DeployError),
    /// An EVM account key file could not be created or read.
    #[error("devnet chain: an account key file")]
    AccountKey(#[from] openrelay_chain::operator::KeyFileError),
    /// A relay's descriptor (whose hash the chain holds) could not be built.
    #[error("devnet chain: a relay's descriptor: {0}")]
    Descriptor(#[from] openrelay_registry::publisher::PublisherError),
    /// A relay advertises more than the chain's bandwidth field holds.
    #[error("devnet chain: {0} bit/s is more than the chain registers")]
    Bandwidth(u64),
    /// An operator or one of its relays could not be registered.
    #[error("devnet chain: registering {operator}: {source}")]
    Register {
        /// `operator-<i>`.
        operator: String,
        /// Why.
        source: Box<openrelay_chain::operator::OperatorError>,
    },
}

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct DevnetOptions {
    /// Number of operators (each runs one ingress and one egress).
    pub operators: usize,
    /// The client's SOCKS5 address.
    pub socks: SocketAddr,
    /// The client's HTTP proxy address.
    pub http: SocketAddr,
    /// Keys and state.
    pub state_dir: PathBuf,
    /// Where components log (one file each); None: no log files.
    pub log_dir: Option<PathBuf>,
    /// Log filter for every component.
    pub log_level: String,
    /// Run a registry and validators; relays publish, the client reads the
    /// signed directory (instead of a relay list in its config).
    pub registry: bool,
    /// How many validators (with `registry`); a majority signs directories.
    pub validators: usize,
    /// The client's path selection settings.
    pub path: PathConfig,
    /// The client runs with its full-device VPN in a network namespace
    /// linked to this one ([`netns`]): the ingresses listen on the link.
    pub client_netns: bool,
    /// The resolver the egresses send clients' DNS queries to (default:
    /// each egress's system resolver).
    pub dns_resolver: Option<SocketAddr>,
    /// Run a token issuer: ingresses admit only with an access token,
    /// egresses charge payment tokens, and the client has an account.
    pub tokens: bool,
    /// How long each of the issuer's token keys signs (`key_rotation_secs`;
    /// short to watch rotations happen). With a registry, the publication
    /// rules allow keys this short.
    pub key_rotation_secs: u64,
    /// The client's `[trust] attestation`. Every devnet relay publishes
    /// evidence from the devnet's insecure simulated TEE (a key in the
    /// state directory, [`INSECURE_SIMULATED_TEE_KEY_FILE`]) measuring its
    /// executable, and the client trusts that key.
    pub attestation: AttestationMode,
    /// Relays (by name, e.g. `egress-2`) whose simulated TEE measures a
    /// modified build: software no vote approved.
    pub unapproved_build_relays_for_tests: Vec<String>,
}

/// The devnet's insecure simulated TEE key, in the state directory: 32
/// random bytes in hex, created on first use. It proves nothing (anyone
/// with the file signs any measurement); a devnet client trusts it as
/// `[trust.tee] insecure_simulated_root`.
pub const INSECURE_SIMULATED_TEE_KEY_FILE: &str = "insecure-simulated-tee.key";

/// The devnet's simulated TEE, its key created on first use (mode 0600).
fn insecure_simulated_tee(options: &DevnetOptions) -> Result<(PathBuf, [u8; 32]), DevnetError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = options.state_dir.join(INSECURE_SIMULATED_TEE_KEY_FILE);
    let io = |what: &str, source| DevnetError::Io {
        what: format!("{what} {}", path.display()),
        source,
    };
    if !path.exists() {
        std::fs::create_dir_all(&options.state_dir)
            .map_err(|e| io("creating the directory of", e))?;
        let mut seed = [0u8; 32];
        openrelay_directory::rand_core::RngCore::fill_bytes(
            &mut openrelay_directory::rand_core::OsRng,
            &mut seed,
        );
        let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(hex.as_bytes()))
            .map_err(|e| io("writing", e))?;
    }
    let root = openrelay_registry::relay_tee::insecure_simulated_root(&path)?;
    Ok((path, root))
}

/// The devnet issuer's key rotation by default: a week, as in production.
pub const DEVNET_KEY_ROTATION_SECS: u64 = 7 * 24 * 3600;

/// The configs of every component.
#[derive(Debug, Clone)]
pub struct DevnetPlan {
    /// The token issuer (unless `--no-tokens`).
    pub issuer: Option<IssuerConfig>,
    /// The registry (with `--registry`).
    pub registry: Option<RegistryConfig>,
    /// The validators, named `validator-<i>` (with `--registry`).
    pub validators: Vec<(String, ValidatorConfig)>,
    /// Relay configs, named `ingress-<i>` / `egress-<i>`.
    pub relays: Vec<(String, RelayConfig)>,
    /// The client config.
    pub client: ClientConfig,
}

/// Ports the devnet gives its components lie below the kernel's ephemeral
/// range (`net.ipv4.ip_local_port_range`, 32768 and up by default), so no
/// process's outgoing socket (bound to 0.0.0.0 and a kernel-chosen port,
/// which also blocks every 127.x address) can take one between the check
/// here and the component's own bind.
const DEVNET_PORTS: std::ops::Range<u16> = 20_000..32_768;

fn free_udp_port(ip: Ipv4Addr) -> Result<u16, DevnetError> {
    let mut last_error = None;
    for _ in 0..64 {
        let port = fastrand::u16(DEVNET_PORTS);
        match UdpSocket::bind((ip, port)) {
            Ok(_) => return Ok(port),
            Err(error) => last_error = Some(error),
        }
    }
    Err(DevnetError::Io {
        what: format!("no free UDP port on {ip} in {DEVNET_PORTS:?}"),
        source: last_error.unwrap_or_else(|| std::io::Error::other("no port tried")),
    })
}

fn log_config(options: &DevnetOptions, name: &str) -> LogConfig {
    LogConfig {
        level: options.log_level.clone(),
        file: options
            .log_dir
            .as_ref()
            .map(|d| d.join(format!("{name}.log"))),
    }
}

/// Plans a devnet: addresses, keys (created in the state directory), configs.
pub fn plan(options: &DevnetOptions) -> Result<DevnetPlan, DevnetError> {
    let n = options.operators;
    if !(2..=250).contains(&n) {
        return Err(DevnetError::Operators(n));
    }
    if !(1..=MAX_VALIDATORS).contains(&options.validators) {
        return Err(DevnetError::Validators(options.validators));
    }
    options.path.validate()?;
    let (tee_key_file, tee_root) = insecure_simulated_tee(options)?;
    // The issuer's identity key (clients pin it; with a registry it signs
    // the issuer's key set, which the registry and validators recognise).
    let issuer_pin = match options.tokens {
        true => Some(Identity::load_or_create(&options.state_dir.join("issuer"))?.pin()),
        false => None,
    };
    let registry = options
        .registry
        .then(|| registry_plan(options, issuer_pin))
        .transpose()?;
    let endpoint = registry.as_ref().map(|(config, validators, pins)| {
        (
            ServiceEndpoint {
                addr: config.listen,
                key: pins.registry,
            },
            pins.validators.clone(),
            validators
                .iter()
                .zip(&pins.validator_tls)
                .map(|((_, v), key)| ServiceEndpoint {
                    addr: v.listen,
                    key: *key,
                })
                .collect::<Vec<_>>(),
        )
    });
    let mut issuer = options.tokens.then(|| issuer_plan(options)).transpose()?;
    let issuer_endpoint = issuer
        .as_ref()
        .zip(issuer_pin)
        .map(|(issuer, key)| ServiceEndpoint {
            addr: issuer.listen,
            key,
        });
    // With a registry, every server follows the validator-signed directory
    // as the client does: relays accept only the issuer keys it lists
    // (RFC 9576 §6), the issuer signs only with listed keys.
    let followed = endpoint
        .as_ref()
        .map(|(registry, validators, _)| DirectoryConfig {
            registry: registry.clone(),
            validators: validators.clone(),
            threshold: threshold(options.validators),
            validator_weights: None,
            max_age_secs: 7200,
            refresh_secs: 2,
            dangerously_allow_special_purpose_endpoints: true,
            rpc: None,
            rpc_required: false,
            chain: None,
        });
    let mut egress_addrs = Vec::new();
    let mut entries = Vec::new();
    let mut relays = Vec::new();
    for role in [RelayRole::Egress, RelayRole::Ingress] {
        for i in 1..=n {
            let octet = u8::try_from(i).map_err(|_| DevnetError::Operators(n))?;
            let ip = match role {
                RelayRole::Ingress if options.client_netns => netns::ingress_address(octet),
                RelayRole::Ingress => Ipv4Addr::new(127, 0, 1, octet),
                RelayRole::Egress => Ipv4Addr::new(127, 0, 2, octet),
            };
            let listen = SocketAddr::new(IpAddr::V4(ip), free_udp_port(ip)?);
            let name = format!("{role}-{i}");
            let state_dir = options.state_dir.join(&name);
            let identity = Identity::load_or_create(&state_dir)?;
            let operator = format!("operator-{i}");
            // One key per operator, also without a registry: it is the
            // operator's id in the directory, and access tokens are scoped
            // to it, so the bootstrap entries must carry the same key.
            let operator_key = operator_pin(options, i)?;
            let publish = match &endpoint {
                Some((registry, _, validators)) => Some(publish_config(
                    options,
                    registry.clone(),
                    validators.clone(),
                    i,
                    octet,
                    RelayAttestationConfig::InsecureSimulated {
                        key_file: tee_key_file.clone(),
                        measure_modified_build_for_tests: options
                            .unapproved_build_relays_for_tests
                            .contains(&name),
                    },
                )?),
                None => None,
            };
            let common = RelayCommon {
                operator: operator.clone(),
                operator_key: Some(operator_key),
                listen,
                state_dir,
                // Every devnet process shares this machine's cores.
                worker_threads: Some(1),
                congestion: Default::default(),
                log: log_config(options, &name),
                limits: Default::default(),
                publish,
                // Only where tokens are checked.
                directory: followed.clone().filter(|_| options.tokens),
                throttle_for_tests: None,
            };
            let config = match role {
                RelayRole::Egress => {
                    egress_addrs.push(listen);
                    let egress = EgressConfig {
                        // Loopback destinations are allowed (a web server on
                        // this machine, as in the README); everything else
                        // follows the default policy, so the internet is
                        // reached where the machine has it (from the address
                        // the kernel picks: `transport::udp::local_for`).
                        dangerously_allow_networks: vec![
                            ipnet::IpNet::from(
                                ipnet::Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).map_err(
                                    |e| DevnetError::Io {
                                        what: "allow list".into(),
                                        source: std::io::Error::other(e),
                                    },
                                )?,
                            ),
                            ipnet::IpNet::from(ipnet::Ipv6Net::from(std::net::Ipv6Addr::LOCALHOST)),
                            // With a client namespace, destinations live on
                            // the benchmarking range (RFC 2544) here.
                            DEVNET_INTERNET,
                        ],
                        dns_resolver: options.dns_resolver,
                        payment: issuer.as_ref().map(|issuer| PaymentConfig {
                            quantum_mib: 256,
                            quantum_secs: 600,
                            grace_secs: 10,
                            unpaid_allowance_kib: 1024,
                            tunnel_memory_secs: 600,
                            settle_at: issuer_endpoint.clone(),
                            settle_secs: 5,
                            tokens: token_settings(issuer, issuer_endpoint.clone()),
                        }),
                        ..EgressConfig::default()
                    };
                    RelayConfig::Egress(Relay {
                        common,
                        role: egress,
                    })
                }
                RelayRole::Ingress => RelayConfig::Ingress(Relay {
                    common,
                    role: IngressConfig {
                        egress_relays: egress_addrs.clone(),
                        max_tunnels_per_client: 64,
                        max_tunnels_per_address_with_tokens: 1024,
                        tunnel_idle_timeout_secs: 120,
                        outbound_bind: None,
                        admission: issuer
                            .as_ref()
                            .map(|issuer| token_settings(issuer, issuer_endpoint.clone())),
                    },
                }),
            };
            entries.push(RelayEntry {
                name: name.clone(),
                role,
                operator: operator.clone(),
                operator_key: Some(operator_key),
                addr: listen,
                key: identity.pin(),
                country: Some(country_of(i)),
                city: Some(DEVNET_CITY.to_owned()),
                network: Some(network_of(octet)),
                bandwidth_bps: Some(DEVNET_BANDWIDTH),
            });
            relays.push((name, config));
        }
    }
    // Who may settle: the relays the directory lists for their operator,
    // or, without a registry, each operator's egress by key. With a
    // registry, the issuer publishes its key set to it and every validator.
    if let Some(issuer) = &mut issuer {
        if let (Some((registry, _, validators)), Some(followed)) = (&endpoint, &followed) {
            issuer.publish = Some(KeyPublishConfig {
                registry: registry.clone(),
                validators: validators.clone(),
                refresh_secs: 10,
            });
            issuer.directory = Some(followed.clone());
        }
        issuer.settlement = Some(match &followed {
            Some(followed) => SettlementRelays::Directory(followed.clone()),
            None => SettlementRelays::Relays(
                entries
                    .iter()
                    .filter(|e| e.role == RelayRole::Egress)
                    .map(|e| (e.operator.clone(), vec![e.key]))
                    .collect(),
            ),
        });
    }
    let client = ClientConfig {
        state_dir: options.state_dir.join("client"),
        socks: options.socks,
        http: options.http,
        bind: Some(IpAddr::V4(if options.client_netns {
            netns::CLIENT_V4
        } else {
            CLIENT_ADDRESS
        })),
        worker_threads: 1,
        log: log_config(options, "client"),
        path: options.path.clone(),
        // With a registry, these only bootstrap the first path, through which
        // the client fetches the signed directory that replaces them.
        relays: entries,
        // Every devnet relay is on loopback (or a private test range):
        // `dangerously_allow_special_purpose_endpoints`.
        directory: followed,
        tun: openrelay_config::TunConfig {
            enabled: options.client_netns,
            ..openrelay_config::TunConfig::default()
        },
        trust: openrelay_config::TrustPolicyConfig {
            attestation: options.attestation,
            tee: openrelay_attest::Policy {
                insecure_simulated_root: Some(tee_root),
                ..openrelay_attest::Policy::default()
            },
        },
        account: issuer
            .as_ref()
            .zip(issuer_endpoint)
            .map(|(issuer, endpoint)| AccountConfig {
                issuer: endpoint,
                issuer_name: issuer.issuer_name.clone(),
                batch: 16,
                low_water: 4,
                refill_delay_min_secs: 5,
                refill_delay_max_secs: 60,
            }),
    };
    let (registry, validators) = match registry {
        Some((config, validators, _)) => (Some(config), validators),
        None => (None, Vec::new()),
    };
    // Without a registry no relay publishes, so none has evidence to alter.
    if let Some(name) = options
        .unapproved_build_relays_for_tests
        .iter()
        .find(|name| registry.is_none() || !relays.iter().any(|(n, _)| n == *name))
    {
        return Err(DevnetError::UnknownRelay(name.clone()));
    }
    Ok(DevnetPlan {
        issuer,
        registry,
        validators,
        relays,
        client,
    })
}

struct Pins {
    registry: KeyPin,
    /// The validators' signing keys.
    validators: Vec<KeyPin>,
    /// The validators' TLS keys (relays publish to them).
    validator_tls: Vec<KeyPin>,
}

type RegistryPlan = (RegistryConfig, Vec<(String, ValidatorConfig)>, Pins);

/// The registry and its validators; keys are created now, so every config
/// can carry the pins.
/// The issuer: generous quotas and long sessions, so a devnet runs for days;
/// a light registration puzzle (a few thousand hashes).
fn issuer_plan(options: &DevnetOptions) -> Result<IssuerConfig, DevnetError> {
    let listen = SocketAddr::new(IpAddr::V4(ISSUER_ADDRESS), free_udp_port(ISSUER_ADDRESS)?);
    Ok(IssuerConfig {
        listen,
        state_dir: options.state_dir.join("issuer"),
        issuer_name: listen.to_string(),
        log: log_config(options, "issuer"),
        key_rotation_secs: options.key_rotation_secs,
        // Enough for the client and every measuring validator's probes
        // (about 3 tokens per relay per epoch), so no account is named in
        // `account_quotas`.
        tokens_per_period: 1_000_000,
        token_period_secs: 24 * 3600,
        account_quotas: Default::default(),
        session_lifetime_secs: 30 * 24 * 3600,
        registration_puzzle_bits: DEVNET_PUZZLE_BITS,
        // Set once the relays are planned.
        settlement: None,
        limits: Default::default(),
        publish: None,
        directory: None,
    })
}

/// The devnet issuer's registration puzzle: 2^12 hashes, a few ms.
pub const DEVNET_PUZZLE_BITS: u8 = 12;

/// How a relay checks tokens of `issuer`: its name, its keys fetched from
/// it over the network (so relays may start before the issuer), each
/// relay's own double-spend set.
fn token_settings(issuer: &IssuerConfig, endpoint: Option<ServiceEndpoint>) -> AdmissionConfig {
    AdmissionConfig {
        issuer_name: issuer.issuer_name.clone(),
        issuer: endpoint,
        issuer_keys: None,
        // With a registry: as often as the directory is fetched.
        keys_refresh_secs: 2,
        redis_url: None,
        spent_path: None,
    }
}

fn registry_plan(
    options: &DevnetOptions,
    issuer: Option<KeyPin>,
) -> Result<RegistryPlan, DevnetError> {
    let listen = SocketAddr::new(
        IpAddr::V4(REGISTRY_ADDRESS),
        free_udp_port(REGISTRY_ADDRESS)?,
    );
    let state_dir = options.state_dir.join("registry");
    let registry_pin = Identity::load_or_create(&state_dir)?.pin();
    // The registry and every validator apply the same rules; the devnet's
    // relays are on loopback, and leave 10 s after they stop publishing.
    // The issuer's key set is recognised; its keys may sign as briefly as
    // it rotates them (`--key-rotation-secs`).
    let publication = PublicationLimits {
        descriptor_ttl_secs: 10,
        dangerously_allow_special_purpose_endpoints: true,
        issuers: issuer.into_iter().collect(),
        min_token_key_period_secs: options
            .key_rotation_secs
            .min(PublicationLimits::default().min_token_key_period_secs),
        ..PublicationLimits::default()
    };
    let mut validator_pins = Vec::new();
    let mut validator_tls = Vec::new();
    let mut dirs = Vec::new();
    for i in 1..=options.validators {
        let name = format!("validator-{i}");
        let state_dir = options.state_dir.join(&name);
        let key = openrelay_registry::keyfile::load_or_create(&state_dir)?;
        validator_pins.push(KeyPin::from(key.id()));
        validator_tls.push(Identity::load_or_create(&state_dir)?.pin());
        dirs.push((i, name, state_dir));
    }
    let mut validators = Vec::new();
    for (i, name, state_dir) in dirs {
        let ip = validator_address(i);
        validators.push((
            name.clone(),
            ValidatorConfig {
                listen: SocketAddr::new(IpAddr::V4(ip), free_udp_port(ip)?),
                state_dir,
                registry: ServiceEndpoint {
                    addr: listen,
                    key: registry_pin,
                },
                validators: validator_pins.clone(),
                threshold: threshold(options.validators),
                log: log_config(options, &name),
                poll_interval_secs: 1,
                max_directory_lifetime_secs: 7200,
                publication: publication.clone(),
                limits: Default::default(),
                chain: None,
                measure: None,
                release_votes: None,
            },
        ));
    }
    let config = RegistryConfig {
        listen,
        state_dir,
        log: log_config(options, "registry"),
        validators: validator_pins.clone(),
        threshold: threshold(options.validators),
        directory_lifetime_secs: 3600,
        proposal_interval_secs: 1,
        publication,
        limits: Default::default(),
        chain: None,
    };
    Ok((
        config,
        validators,
        Pins {
            registry: registry_pin,
            validators: validator_pins,
            validator_tls,
        },
    ))
}

/// The city every devnet relay claims.
const DEVNET_CITY: &str = "Localhost";
/// The bandwidth every devnet relay advertises (bits/s).
const DEVNET_BANDWIDTH: u64 = 1_000_000_000;

/// The country operator `i`'s relays are in: operators 1, 2, 3, ... are in
/// NL, CH, SE, FR, IS, DE, ... so region choices can be tried on a devnet.
pub fn country_of(operator: usize) -> String {
    const COUNTRIES: [&str; 6] = ["DE", "NL", "CH", "SE", "FR", "IS"];
    COUNTRIES[operator % COUNTRIES.len()].to_owned()
}

/// The network label of the relays on `127.0.x.octet`.
fn network_of(octet: u8) -> String {
    format!("AS{}", 64_500 + u32::from(octet))
}

/// Operator `i`'s key file, shared by both its relays.
fn operator_key_file(options: &DevnetOptions, operator: usize) -> PathBuf {
    options
        .state_dir
        .join(format!("operator-{operator}"))
        .join("operator.key")
}

/// Operator `i`'s public key, its key created on first use.
fn operator_pin(options: &DevnetOptions, operator: usize) -> Result<KeyPin, DevnetError> {
    let key = openrelay_registry::keyfile::operator_key(&operator_key_file(options, operator))?;
    Ok(KeyPin::from(key.id()))
}

/// What relay `i` of operator `i` publishes, signed with the operator's key
/// ([`operator_pin`] created it).
fn publish_config(
    options: &DevnetOptions,
    registry: ServiceEndpoint,
    validators: Vec<ServiceEndpoint>,
    operator: usize,
    octet: u8,
    attestation: RelayAttestationConfig,
) -> Result<PublishConfig, DevnetError> {
    let operator_key_file = operator_key_file(options, operator);
    let country = country_of(operator);
    Ok(PublishConfig {
        registry,
        validators,
        operator_key_file,
        operator_name: format!("Devnet operator {operator}"),
        operator_contact: format!("mailto:operator-{operator}@devnet.invalid"),
        jurisdiction: country.clone(),
        country,
        city: DEVNET_CITY.to_owned(),
        network: network_of(octet),
        bandwidth_bps: DEVNET_BANDWIDTH,
        // Set by `chain::start` when the devnet runs on a chain.
        operator_account: None,
        endpoint: None,
        refresh_secs: 2,
        descriptor_lifetime_secs: 86_400,
        attestation,
    })
}

/// Writes one config file per component into `dir`; returns the
/// components in start order: the issuer, the registry, validators, relays,
/// the client last (no network namespace given yet).
pub fn export(plan: &DevnetPlan, dir: &Path) -> Result<Vec<Component>, DevnetError> {
    std::fs::create_dir_all(dir).map_err(|source| DevnetError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    let mut written = Vec::new();
    let header = "# Written by `openrelay devnet --export`.\n";
    let mut write = |name: &str, subcommand: &'static str, text: String| {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, format!("{header}{text}")).map_err(|source| DevnetError::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
        written.push(Component {
            name: name.to_owned(),
            subcommand,
            config: path,
            netns: None,
        });
        Ok::<(), DevnetError>(())
    };
    // Any start order works (relays fetch the issuer's keys and retry);
    // the devnet itself starts the issuer first.
    if let Some(issuer) = &plan.issuer {
        write("issuer", "issuer", issuer.to_toml()?)?;
    }
    if let Some(registry) = &plan.registry {
        write("registry", "registry", registry.to_toml()?)?;
    }
    for (name, validator) in &plan.validators {
        write(name, "validator", validator.to_toml()?)?;
    }
    for (name, relay) in &plan.relays {
        write(name, "relay", relay.to_toml()?)?;
    }
    write("client", "client", plan.client.to_toml()?)?;
    Ok(written)
}

/// Why a running devnet stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Its configs could not be written.
    #[error(transparent)]
    Plan(#[from] DevnetError),
    /// A component failed.
    #[error(transparent)]
    Supervise(#[from] SuperviseError),
}

impl HasKind for RunError {
    fn kind(&self) -> ErrorKind {
        match self {
            RunError::Plan(e) => e.kind(),
            RunError::Supervise(e) => e.kind(),
        }
    }
}

impl HasKind for DevnetError {
    fn kind(&self) -> ErrorKind {
        match self {
            DevnetError::Operators(_)
            | DevnetError::Validators(_)
            | DevnetError::Config(_)
            | DevnetError::ChainNeedsRegistry
            | DevnetError::UnknownRelay(_)
            | DevnetError::Bandwidth(_) => ErrorKind::Config,
            DevnetError::Identity(_)
            | DevnetError::KeyFile(_)
            | DevnetError::Io { .. }
            | DevnetError::Tee(_) => ErrorKind::Local,
            DevnetError::Anvil(e) => e.kind(),
            DevnetError::Manifest(_) => ErrorKind::Local,
            DevnetError::ReleaseVote(e) => e.kind(),
            DevnetError::Rpc(_) => ErrorKind::Unreachable,
            DevnetError::Deploy(e) => e.kind(),
            DevnetError::AccountKey(e) => e.kind(),
            DevnetError::Descriptor(_) => ErrorKind::Config,
            DevnetError::Register { source, .. } => source.kind(),
        }
    }
}

/// Runs `plan` from `exe` (the `openrelay` binary): writes its configs to
/// `state_dir/configs`, starts every component, waits until the directory
/// lists the whole network (with a registry), runs `prepare_client`, starts
/// the client (in `client_netns` if given), writes `state_dir/devnet.pids`
/// and calls `on_ready` with the client's ready line; runs until `shutdown`
/// (supervised by the `supervise` module).
pub async fn run_plan(
    plan: &DevnetPlan,
    state_dir: &Path,
    exe: &Path,
    client_netns: Option<String>,
    prepare_client: impl Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
    on_ready: impl FnOnce(&str),
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let mut components = export(plan, &state_dir.join("configs"))?;
    let Some(mut client) = components.pop() else {
        return Ok(());
    };
    let outlive_client = client_netns.is_some();
    client.netns = client_netns;
    let pids_file = state_dir.join("devnet.pids");
    let client_config = plan.client.clone();
    let relay_count = plan.relays.len();
    let prepare = async move {
        if let Some(directory) = &client_config.directory {
            let issuer = client_config.account.as_ref().map(|a| a.issuer.key);
            // A client that requires attested relays has no path before
            // the validators approve the devnet's release (a vote of about
            // 45 s on the devnet's chain).
            let approved_release_needed = plan.client.trust.attestation == AttestationMode::Require
                && plan
                    .validators
                    .iter()
                    .any(|(_, v)| v.release_votes.is_some());
            full_directory(directory, relay_count, issuer, approved_release_needed).await;
        }
        prepare_client.await
    };
    supervise::run(
        exe,
        &components,
        &client,
        outlive_client,
        prepare,
        |line, pids| {
            let list: String = pids
                .iter()
                .map(|(name, pid)| format!("{name} {pid}\n"))
                .collect();
            if let Err(e) = std::fs::write(&pids_file, list) {
                tracing::warn!(error = %e, "cannot write the pid list");
            }
            on_ready(line);
        },
        shutdown,
    )
    .await?;
    Ok(())
}

/// Waits (up to 20 s, or 120 s for an approved release) until the registry
/// serves a directory listing all `relays` of the devnet, with tokens the
/// key set of `issuer`, and if `approved_release` an approved release, so
/// its client starts on the whole network rather than on the first relays
/// to publish, and with relays that know the issuer's keys. (A real network
/// has no such moment; its clients start on whatever the current directory
/// lists.)
async fn full_directory(
    directory: &DirectoryConfig,
    relays: usize,
    issuer: Option<KeyPin>,
    approved_release: bool,
) {
    let registry = RegistryClient::new(directory.registry.addr, directory.registry.key);
    let issuer = issuer.and_then(|pin| openrelay_directory::IssuerId::try_from(pin).ok());
    let wait = Duration::from_secs(if approved_release { 120 } else { 20 });
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        let complete = registry
            .call(
                http::Method::GET,
                openrelay_registry_client::paths::DIRECTORY,
                Vec::new(),
            )
            .await
            .ok()
            .filter(|(status, _)| *status == 200)
            .and_then(|(_, body)| openrelay_directory::SignedDirectory::from_bytes(&body).ok())
            .and_then(|signed| openrelay_directory::Directory::from_bytes(&signed.directory).ok())
            .is_some_and(|d| {
                d.descriptors().len() >= relays
                    && issuer.is_none_or(|issuer| d.key_set(&issuer).is_some())
                    && (!approved_release
                        || d.chain().is_some_and(|c| {
                            c.releases
                                .iter()
                                .any(|r| r.status == openrelay_directory::ReleaseStatus::Approved)
                        }))
            });
        if complete {
            // The relays take the listed keys at their next directory fetch.
            tokio::time::sleep(Duration::from_secs(directory.refresh_secs.min(5))).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!(
        "the directory does not list every devnet relay (and the issuer's keys, and an approved release where the client requires attested relays) yet; starting the client anyway"
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn options(dir: &Path, operators: usize) -> DevnetOptions {
        DevnetOptions {
            operators,
            socks: "127.0.0.1:0".parse().unwrap(),
            http: "127.0.0.1:1".parse().unwrap(),
            state_dir: dir.to_owned(),
            log_dir: None,
            log_level: "info".into(),
            registry: false,
            validators: DEFAULT_VALIDATORS,
            path: PathConfig::default(),
            tokens: false,
            client_netns: false,
            dns_resolver: None,
            key_rotation_secs: DEVNET_KEY_ROTATION_SECS,
            attestation: AttestationMode::default(),
            unapproved_build_relays_for_tests: Vec::new(),
        }
    }

    #[test]
    fn exported_configs_load_and_pin_the_relays_keys() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(&options(dir.path(), 3)).unwrap();
        let files = export(&plan, &dir.path().join("configs")).unwrap();
        assert_eq!(files.len(), 7);
        for relay in &files[..6] {
            assert_eq!(relay.subcommand, "relay");
            let config = RelayConfig::load(&relay.config).unwrap();
            let config = config.common();
            let key = Identity::load_or_create(&config.state_dir).unwrap().pin();
            let entry = plan
                .client
                .relays
                .iter()
                .find(|r| r.name == relay.name)
                .unwrap();
            assert_eq!(entry.key, key);
            assert_eq!(entry.addr, config.listen);
        }
        assert_eq!(files[6].subcommand, "client");
        let client = ClientConfig::load(&files[6].config).unwrap();
        assert_eq!(client.relays.len(), 6);
    }

    #[test]
    fn every_component_has_its_own_address() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(&options(dir.path(), 2)).unwrap();
        let mut ips: Vec<IpAddr> = plan
            .relays
            .iter()
            .map(|(_, r)| r.common().listen.ip())
            .collect();
        ips.push(IpAddr::V4(CLIENT_ADDRESS));
        let count = ips.len();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), count);
    }

    /// Access tokens are scoped to the ingress operator's key: the relays'
    /// configs, the client's bootstrap entries and (with a registry) the key
    /// that signs the operator's descriptors must name the same one, per
    /// operator, and no two operators share one.
    #[test]
    fn every_component_names_the_same_operator_key() {
        for registry in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut options = options(dir.path(), 3);
            options.registry = registry;
            options.tokens = true;
            let plan = plan(&options).unwrap();
            let mut keys = std::collections::BTreeSet::new();
            for (name, relay) in &plan.relays {
                let relay = relay.common();
                let key = relay.operator_key.unwrap();
                let entry = plan.client.relays.iter().find(|r| &r.name == name).unwrap();
                assert_eq!(entry.operator_key, Some(key), "{name}");
                assert_eq!(entry.operator, relay.operator, "{name}");
                if let Some(publish) = &relay.publish {
                    let signer =
                        openrelay_registry::keyfile::operator_key(&publish.operator_key_file)
                            .unwrap();
                    assert_eq!(KeyPin::from(signer.id()), key, "{name}");
                }
                keys.insert((relay.operator.clone(), key.to_string()));
            }
            let operators: std::collections::BTreeSet<&String> =
                keys.iter().map(|(_, key)| key).collect();
            assert_eq!((keys.len(), operators.len()), (3, 3), "{keys:?}");
        }
    }

    /// Every file `openrelay devnet --export` writes, in every mode, loads
    /// with the loader of the subcommand that reads it, as the config the
    /// plan holds (so a field renamed or retyped in `openrelay-config` that
    /// the devnet still writes under its old shape fails here).
    #[test]
    fn every_exported_config_loads_as_planned() {
        for (registry, tokens) in [(false, false), (false, true), (true, false), (true, true)] {
            let dir = tempfile::tempdir().unwrap();
            let mut options = options(dir.path(), 2);
            options.registry = registry;
            options.tokens = tokens;
            let plan = plan(&options).unwrap();
            let files = export(&plan, &dir.path().join("configs")).unwrap();
            let validators: std::collections::BTreeMap<_, _> =
                plan.validators.iter().cloned().collect();
            let relays: std::collections::BTreeMap<_, _> = plan.relays.iter().cloned().collect();
            for file in &files {
                let name = file.name.as_str();
                let what = format!("{name} (registry {registry}, tokens {tokens})");
                match file.subcommand {
                    "issuer" => assert_eq!(
                        Some(IssuerConfig::load(&file.config).unwrap()),
                        plan.issuer,
                        "{what}"
                    ),
                    "registry" => assert_eq!(
                        Some(RegistryConfig::load(&file.config).unwrap()),
                        plan.registry,
                        "{what}"
                    ),
                    "validator" => assert_eq!(
                        &ValidatorConfig::load(&file.config).unwrap(),
                        &validators[name],
                        "{what}"
                    ),
                    "relay" => assert_eq!(
                        &RelayConfig::load(&file.config).unwrap(),
                        &relays[name],
                        "{what}"
                    ),
                    "client" => assert_eq!(
                        ClientConfig::load(&file.config).unwrap(),
                        plan.client,
                        "{what}"
                    ),
                    other => panic!("{what}: unknown subcommand {other}"),
                }
            }
            let expected = 1 + 2 * 2 + usize::from(tokens) + 4 * usize::from(registry);
            assert_eq!(files.len(), expected);
        }
    }

    #[test]
    fn one_operator_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            plan(&options(dir.path(), 1)),
            Err(DevnetError::Operators(1))
        ));
    }

    /// Four validators: four validator configs, and directories need three
    /// signatures (a majority); none or too many are refused.
    #[test]
    fn the_validators_are_counted_and_a_majority_signs() {
        let dir = tempfile::tempdir().unwrap();
        let mut four = options(dir.path(), 2);
        four.registry = true;
        four.validators = 4;
        let plan = plan(&four).unwrap();
        assert_eq!(plan.validators.len(), 4);
        for (_, validator) in &plan.validators {
            assert_eq!(validator.threshold, 3);
        }
        assert_eq!(threshold(3), 2);
        for bad in [0, MAX_VALIDATORS + 1] {
            let mut options = four.clone();
            options.validators = bad;
            assert!(matches!(
                super::plan(&options),
                Err(DevnetError::Validators(n)) if n == bad
            ));
        }
    }
}
