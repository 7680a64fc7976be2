//! A running registry's fixtures: the [`crate::fixtures`] operators and
//! relays dated from now (descriptors signed by relay, operator and QUIC
//! key, with global unicast endpoints as the registry requires), publishing
//! them, real `openrelay validator` processes with their keys made in
//! advance, and a registry impostor that takes a devnet's registry's place.

#![cfg(feature = "harness")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use openrelay_directory::{
    CountryCode, DescriptorFields, Directory, OperatorId, OperatorProfile, ProfileFields, Region,
    SignedDescriptor, SignedOperatorProfile, ValidatorKey,
};
use openrelay_registry_client::RegistryClient;
use openrelay_registry_client::paths;
use openrelay_transport::identity::Identity;
use openrelay_types::{KeyPin, RelayRole, unix_now};

pub use crate::fixtures::{operator_key, quic_key, relay_key};
use crate::process::Proc;

/// Operator `operator`'s signed profile, signed a minute ago.
pub fn profile(operator: u8) -> Vec<u8> {
    profile_naming(operator, None)
}

/// [`profile`] naming `chain_account` as the operator's EVM account (what
/// a registry on a chain requires).
pub fn profile_naming(operator: u8, chain_account: Option<[u8; 20]>) -> Vec<u8> {
    let fields = ProfileFields {
        jurisdiction: CountryCode::parse("NL").unwrap(),
        chain_account,
        published_at: unix_now() - 60,
        ..crate::fixtures::profile_fields(operator)
    };
    operator_key(operator)
        .sign_profile(OperatorProfile::new(fields).unwrap())
        .unwrap()
        .to_bytes()
}

/// Relay `relay`'s fields: a global unicast endpoint (`11.22.33.<relay>`;
/// nothing connects to it), valid from `age` seconds ago for a day.
pub fn fields(relay: u8, operator: u8, role: RelayRole, age: u64) -> DescriptorFields {
    let now = unix_now();
    DescriptorFields {
        endpoints: vec![format!("11.22.33.{relay}:4433").parse().unwrap()],
        region: Region {
            country: CountryCode::parse("DE").unwrap(),
            city: "Berlin".to_owned(),
        },
        not_before: now - age,
        not_after: now + 86_400,
        ..crate::fixtures::descriptor_fields(relay, operator, role)
    }
}

/// `fields` signed by relay `relay`, operator `operator` and the QUIC key
/// they pin, encoded.
pub fn sign(fields: DescriptorFields, relay: u8, operator: u8) -> Vec<u8> {
    crate::fixtures::sign(fields, relay, operator).to_bytes()
}

/// A fresh descriptor of `relay` (a newer `not_before` every second).
pub fn descriptor(relay: u8, operator: u8, role: RelayRole) -> Vec<u8> {
    sign(fields(relay, operator, role, 0), relay, operator)
}

/// POSTs `body` to `path`; the status.
pub async fn post(client: &RegistryClient, path: &str, body: Vec<u8>) -> u16 {
    client.call(http::Method::POST, path, body).await.unwrap().0
}

/// Publishes operator `operator`'s profile and a fresh descriptor of
/// `relay` to each of `targets`; every answer must be 204 (a profile may
/// also be 409: already stored). The descriptor and profile published.
pub async fn publish(
    targets: &[RegistryClient],
    relay: u8,
    operator: u8,
    role: RelayRole,
) -> (Vec<u8>, Vec<u8>) {
    publish_naming(targets, relay, operator, role, None).await
}

/// [`publish`] with the profile naming `chain_account` ([`profile_naming`]).
pub async fn publish_naming(
    targets: &[RegistryClient],
    relay: u8,
    operator: u8,
    role: RelayRole,
    chain_account: Option<[u8; 20]>,
) -> (Vec<u8>, Vec<u8>) {
    let descriptor = descriptor(relay, operator, role);
    let profile = profile_naming(operator, chain_account);
    for target in targets {
        let status = post(target, paths::PROFILES, profile.clone()).await;
        assert!(matches!(status, 204 | 409), "profile: {status}");
        assert_eq!(
            post(target, paths::DESCRIPTORS, descriptor.clone()).await,
            204,
            "descriptor of relay {relay} to {}",
            target.addr()
        );
    }
    (descriptor, profile)
}

/// The relays (descriptors) and their operators' profiles as published,
/// by fixture number: what a malicious registry the test plays builds
/// directories from.
#[derive(Debug, Default)]
pub struct Published {
    descriptors: std::collections::BTreeMap<u8, SignedDescriptor>,
    profiles: std::collections::BTreeMap<OperatorId, SignedOperatorProfile>,
    /// The chain account each operator's profile names (none if absent).
    chain_accounts: std::collections::BTreeMap<u8, [u8; 20]>,
}

impl Published {
    /// Nothing published yet; operator profiles will name the chain
    /// accounts `chain_accounts` gives (operator → account).
    pub fn naming(chain_accounts: std::collections::BTreeMap<u8, [u8; 20]>) -> Published {
        Published {
            chain_accounts,
            ..Published::default()
        }
    }

    /// [`publish`]es `relay` to `targets` and records it.
    pub async fn publish(
        &mut self,
        targets: &[RegistryClient],
        relay: u8,
        operator: u8,
        role: RelayRole,
    ) {
        let account = self.chain_accounts.get(&operator).copied();
        let (descriptor, profile) = publish_naming(targets, relay, operator, role, account).await;
        self.record(relay, &descriptor, &profile);
    }

    /// Records a fresh descriptor of `relay` that nobody was sent (a relay
    /// only the registry knows).
    pub fn unpublished(&mut self, relay: u8, operator: u8, role: RelayRole) {
        let account = self.chain_accounts.get(&operator).copied();
        self.record(
            relay,
            &descriptor(relay, operator, role),
            &profile_naming(operator, account),
        );
    }

    fn record(&mut self, relay: u8, descriptor: &[u8], profile: &[u8]) {
        let descriptor = SignedDescriptor::from_bytes(descriptor).unwrap();
        let profile = SignedOperatorProfile::from_bytes(profile).unwrap();
        self.descriptors.insert(relay, descriptor);
        self.profiles.insert(profile.profile().operator(), profile);
    }

    /// A directory of the recorded relays `relays`, with their operators'
    /// profiles.
    pub fn directory(
        &self,
        sequence: u64,
        issued_at: u64,
        valid_until: u64,
        relays: &[u8],
    ) -> Directory {
        let descriptors: Vec<SignedDescriptor> =
            relays.iter().map(|r| self.descriptors[r].clone()).collect();
        let operators: std::collections::BTreeSet<OperatorId> = descriptors
            .iter()
            .map(|d| d.descriptor().operator())
            .collect();
        let profiles = operators.iter().map(|o| self.profiles[o].clone()).collect();
        Directory::new(sequence, issued_at, valid_until, profiles, descriptors).unwrap()
    }
}

/// A validator's keys, made before it starts (so configs can name them).
#[derive(Debug)]
pub struct ValidatorKeys {
    /// Its state directory, where the keys are.
    pub dir: PathBuf,
    /// Its signing key.
    pub key: ValidatorKey,
    /// Its TLS key's pin.
    pub tls: KeyPin,
}

impl ValidatorKeys {
    /// Makes (or loads) the keys in `dir`.
    pub fn new(dir: &Path) -> ValidatorKeys {
        std::fs::create_dir_all(dir).unwrap();
        ValidatorKeys {
            dir: dir.to_owned(),
            key: openrelay_registry::keyfile::load_or_create(dir).unwrap(),
            tls: Identity::load_or_create(dir).unwrap().pin(),
        }
    }
}

/// `count` validators' keys in `root/validator-<i>`.
pub fn validator_keys(root: &Path, count: usize) -> Vec<ValidatorKeys> {
    (0..count)
        .map(|i| ValidatorKeys::new(&root.join(format!("validator-{i}"))))
        .collect()
}

/// The TOML list of the validators' signing keys.
pub fn key_list(validators: &[ValidatorKeys]) -> String {
    let keys: Vec<String> = validators
        .iter()
        .map(|v| format!("\"{}\"", v.key.id()))
        .collect();
    format!("[{}]", keys.join(", "))
}

/// Starts validator `v` (threshold `threshold` of `all`) checking the
/// registry at `registry` with TLS key `registry_key`; `publication` is the
/// TOML of its `[publication]` section.
pub fn start_validator(
    v: &ValidatorKeys,
    all: &[ValidatorKeys],
    threshold: usize,
    registry: SocketAddr,
    registry_key: &str,
    publication: &str,
) -> Proc {
    let config = v.dir.join("validator.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nstate_dir = {:?}\nvalidators = {}\nthreshold = {threshold}\npoll_interval_secs = 1\n\
             [registry]\naddr = \"{registry}\"\nkey = \"{registry_key}\"\n[publication]\n{publication}\n[log]\nlevel = \"debug\"\nfile = {:?}\n",
            v.dir.display(),
            key_list(all),
            v.dir.join("validator.log").display(),
        ),
    )
    .unwrap();
    Proc::start(
        &["validator", "--config", &config.display().to_string()],
        &v.dir.join("stderr"),
    )
}

/// A client for a started validator's publication endpoint.
pub fn validator_client(proc: &Proc) -> RegistryClient {
    RegistryClient::new(
        proc.ready_field("listen").parse().unwrap(),
        proc.ready_field("tls_key").parse().unwrap(),
    )
}

/// A registry stand-in that answers every request with the bytes it is
/// told to serve, and, while diffs are on, `GET /v1/directory/diff` with
/// the diff from any directory it served (or the client held at the
/// take-over) to those bytes: a hostile registry may send either.
#[derive(Debug, Default)]
pub struct Impostor {
    serving: std::sync::Mutex<Vec<u8>>,
    /// Every directory served before, and the client's at the take-over.
    known: std::sync::Mutex<Vec<Vec<u8>>>,
    /// Whether diff requests get diffs (else 404, as from an old registry).
    diffs_off: std::sync::atomic::AtomicBool,
}

impl openrelay_transport::server::RequestHandler for Impostor {
    fn handle(
        self: std::sync::Arc<Self>,
        request: http::Request<()>,
        stream: openrelay_transport::server::ServerStream,
        _context: openrelay_transport::server::RequestContext,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        use openrelay_directory::{DirectoryDiff, SignedDirectoryDigest};
        let serving = self.serving.lock().unwrap().clone();
        let (status, body) = if request.uri().path() != paths::DIRECTORY_DIFF {
            (http::StatusCode::OK, serving)
        } else {
            let from: Option<SignedDirectoryDigest> = request
                .uri()
                .query()
                .and_then(|q| q.strip_prefix("from="))
                .and_then(|d| d.parse().ok());
            let known = self.known.lock().unwrap();
            let base = known
                .iter()
                .find(|b| Some(SignedDirectoryDigest::of(b)) == from);
            match base {
                _ if self.diffs_off.load(std::sync::atomic::Ordering::Relaxed) => {
                    (http::StatusCode::NOT_FOUND, Vec::new())
                }
                Some(base) => (
                    http::StatusCode::OK,
                    DirectoryDiff::between(base, &serving).unwrap().to_bytes(),
                ),
                None => (http::StatusCode::NOT_FOUND, Vec::new()),
            }
        };
        openrelay_transport::server::respond(stream, status, bytes::Bytes::from(body))
    }
}

impl Impostor {
    /// Serves `bytes` from now on (what it served before stays a base for
    /// diffs).
    pub fn serve(&self, bytes: Vec<u8>) {
        let old = std::mem::replace(&mut *self.serving.lock().unwrap(), bytes);
        self.known.lock().unwrap().push(old);
    }

    /// Answers diff requests with 404 (`off`) or with diffs.
    pub fn diffs_off(&self, off: bool) {
        self.diffs_off
            .store(off, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A devnet whose registry was killed and replaced by an [`Impostor`]
/// holding its key, at its address: only the directory's validator
/// signatures can tell them apart.
#[derive(Debug)]
pub struct TakenOver {
    /// The impostor.
    pub impostor: std::sync::Arc<Impostor>,
    /// The directory the client had verified before (its cache).
    pub genuine: Vec<u8>,
    /// That directory, parsed.
    pub current: openrelay_directory::Directory,
    /// The devnet's three validators' keys.
    pub validators: Vec<ValidatorKey>,
    /// The client's cache file.
    pub cache: PathBuf,
    serving: tokio::task::JoinHandle<()>,
}

impl Drop for TakenOver {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

/// Kills `devnet`'s registry and takes its place (see [`TakenOver`]).
pub async fn take_over_registry(devnet: &crate::devnet::Devnet) -> TakenOver {
    use openrelay_transport::endpoint::{TUNNELLED_MTU, Tuning};
    use openrelay_transport::limits::ServerLimits;
    use openrelay_transport::server::{self, ServerCounters};
    use std::time::Duration;
    let config =
        openrelay_config::ClientConfig::load(&devnet.state_dir.join("configs/client.toml"))
            .unwrap();
    let registry = config.directory.unwrap().registry.addr;
    let identity = Identity::load_or_create(&devnet.state_dir.join("registry")).unwrap();
    let validators: Vec<ValidatorKey> = (1..=3)
        .map(|i| {
            openrelay_registry::keyfile::load_or_create(
                &devnet.state_dir.join(format!("validator-{i}")),
            )
            .unwrap()
        })
        .collect();
    let registry_pid = devnet.component_pid("registry");
    assert!(crate::process::send_signal(registry_pid, "KILL"));
    // Its socket is free once it is gone.
    while crate::process::is_running(registry_pid) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cache = devnet.state_dir.join("client/directory.bin");
    let genuine = std::fs::read(&cache).unwrap();
    let current = openrelay_directory::Directory::from_bytes(
        &openrelay_directory::SignedDirectory::from_bytes(&genuine)
            .unwrap()
            .directory,
    )
    .unwrap();
    let impostor = std::sync::Arc::new(Impostor::default());
    impostor.known.lock().unwrap().push(genuine.clone());
    let tuning = Tuning::relay(Duration::from_secs(30), TUNNELLED_MTU);
    // The kernel may take a moment to release the dead registry's port.
    let mut tries = 0;
    let endpoint = loop {
        match server::bind(registry, &identity, &tuning, ServerLimits::service()) {
            Ok(endpoint) => break endpoint,
            Err(_) if tries < 40 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot take the registry's place: {e}"),
        }
    };
    let serving = tokio::spawn(server::serve(
        endpoint,
        std::sync::Arc::clone(&impostor),
        std::sync::Arc::new(ServerCounters::default()),
        std::future::pending(),
    ));
    TakenOver {
        impostor,
        genuine,
        current,
        validators,
        cache,
        serving,
    }
}

/// `directory`'s contents (its chain section too) under a new sequence and
/// validity, signed by `validators`.
pub fn reissued(
    directory: &openrelay_directory::Directory,
    validators: &[&ValidatorKey],
    sequence: u64,
    issued_at: u64,
    valid_until: u64,
) -> Vec<u8> {
    let mut d = openrelay_directory::Directory::new(
        sequence,
        issued_at,
        valid_until,
        directory.operators().to_vec(),
        directory.descriptors().to_vec(),
    )
    .unwrap();
    if let Some(chain) = directory.chain() {
        d = d.with_chain(chain.clone()).unwrap();
    }
    let mut signed = openrelay_directory::SignedDirectory::new(&d);
    for key in validators {
        signed.sign(key);
    }
    signed.to_bytes()
}

/// A malicious registry the test plays: keeps the latest vote of each
/// validator, records every signature (validator, digest) and serves
/// whatever proposal it is told, with the votes it holds.
#[derive(Debug, Default)]
pub struct VotingImpostor {
    votes: std::sync::Mutex<
        std::collections::BTreeMap<
            openrelay_directory::ValidatorId,
            openrelay_directory::vote::SignedVote,
        >,
    >,
    signatures: std::sync::Mutex<
        Vec<(
            openrelay_directory::ValidatorId,
            openrelay_directory::DirectoryDigest,
        )>,
    >,
    proposal: std::sync::Mutex<Option<Vec<u8>>>,
}

/// A [`VotingImpostor`] serving on a loopback port (stops when dropped).
#[derive(Debug)]
pub struct VotingImpostorServer {
    /// The impostor.
    pub impostor: std::sync::Arc<VotingImpostor>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its TLS key's pin, as validators' configs name it.
    pub key: String,
    serving: tokio::task::JoinHandle<()>,
}

impl Drop for VotingImpostorServer {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl VotingImpostor {
    /// Starts one on a free loopback port.
    pub fn start() -> VotingImpostorServer {
        use openrelay_transport::endpoint::{TUNNELLED_MTU, Tuning};
        use openrelay_transport::limits::ServerLimits;
        use openrelay_transport::server::{self, ServerCounters};
        let identity = Identity::generate().unwrap();
        let tuning = Tuning::relay(std::time::Duration::from_secs(30), TUNNELLED_MTU);
        let endpoint = server::bind(
            "127.0.0.1:0".parse().unwrap(),
            &identity,
            &tuning,
            ServerLimits::service(),
        )
        .unwrap();
        let addr = endpoint.local_addr().unwrap();
        let impostor = std::sync::Arc::new(VotingImpostor::default());
        let serving = tokio::spawn(server::serve(
            endpoint,
            std::sync::Arc::clone(&impostor),
            std::sync::Arc::new(ServerCounters::default()),
            std::future::pending(),
        ));
        VotingImpostorServer {
            impostor,
            addr,
            key: identity.pin().to_string(),
            serving,
        }
    }

    /// How many distinct validators signed `digest`.
    pub fn signers(&self, digest: &openrelay_directory::DirectoryDigest) -> usize {
        let mut who: Vec<openrelay_directory::ValidatorId> = self
            .signatures
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, d)| d == digest)
            .map(|(v, _)| *v)
            .collect();
        who.sort();
        who.dedup();
        who.len()
    }

    /// The latest vote of each validator.
    pub fn votes(&self) -> Vec<openrelay_directory::vote::SignedVote> {
        self.votes.lock().unwrap().values().cloned().collect()
    }

    /// Serves `directory` with the current votes; its digest.
    pub fn serve(
        &self,
        directory: &openrelay_directory::Directory,
    ) -> openrelay_directory::DirectoryDigest {
        let bytes = directory.to_bytes();
        let digest = openrelay_directory::DirectoryDigest::of(&bytes);
        *self.proposal.lock().unwrap() = Some(
            openrelay_directory::Proposal {
                directory: bytes.into(),
                votes: self.votes(),
            }
            .to_bytes(),
        );
        digest
    }
}

impl openrelay_transport::server::RequestHandler for VotingImpostor {
    async fn handle(
        self: std::sync::Arc<Self>,
        request: http::Request<()>,
        mut stream: openrelay_transport::server::ServerStream,
        _context: openrelay_transport::server::RequestContext,
    ) {
        use bytes::Bytes;
        use openrelay_transport::server;
        if request.method() == http::Method::GET {
            let proposal = self.proposal.lock().unwrap().clone();
            let (status, body) = match proposal {
                Some(p) => (http::StatusCode::OK, Bytes::from(p)),
                None => (http::StatusCode::NOT_FOUND, Bytes::new()),
            };
            return server::respond(stream, status, body).await;
        }
        let body = server::read_body(&mut stream, 1 << 20)
            .await
            .unwrap_or_default();
        let path = request.uri().path();
        if path == paths::VOTES
            && let Ok(vote) = openrelay_directory::vote::SignedVote::from_bytes(&body)
        {
            let validator = vote.vote().validator();
            self.votes.lock().unwrap().insert(validator, vote);
            return server::respond(stream, http::StatusCode::OK, Bytes::new()).await;
        }
        if path == paths::SIGNATURES && body.len() == 128 {
            let validator =
                openrelay_directory::ValidatorId::from_bytes(body[..32].try_into().unwrap())
                    .unwrap();
            let digest =
                openrelay_directory::DirectoryDigest::from_bytes(body[32..64].try_into().unwrap());
            self.signatures.lock().unwrap().push((validator, digest));
        }
        // Publications forwarded or misdirected: taken and ignored.
        server::respond(stream, http::StatusCode::NO_CONTENT, Bytes::new()).await;
    }
}

/// Asserts that every validator of `keys` logged each of `reasons`.
pub fn assert_every_validator_logged(keys: &[ValidatorKeys], reasons: &[&str]) {
    let logs: Vec<String> = keys
        .iter()
        .map(|v| std::fs::read_to_string(v.dir.join("validator.log")).unwrap())
        .collect();
    for reason in reasons {
        assert!(
            logs.iter().all(|log| log.contains(reason)),
            "a validator did not log {reason:?}"
        );
    }
}
