//! The relay list from a registry's signed directory: fetched, verified
//! against the configured validators (k of n; `openrelay-directory`), cached
//! in the state directory and refreshed. While the registry is down the client
//! keeps working from the directory it verified until that is past its
//! validity (or `max_age_secs` old); then it builds no more paths for traffic
//! ([`PathError::DirectoryExpired`](crate::PathError::DirectoryExpired), which
//! names the directory's age and what to do) and only keeps trying to fetch a
//! fresh one, through the relays of the expired one. A forged, stale,
//! rolled-back or under-signed directory is refused and changes nothing.
//!
//! Relays whose endpoints are loopback, private, link-local or otherwise
//! special-purpose addresses are left out unless
//! `directory.dangerously_allow_special_purpose_endpoints` is set (a local network such as
//! the devnet): a directory must not make the client send packets to hosts
//! inside its own network.
//!
//! The directory is fetched *through the relays*: a QUIC connection to the
//! registry inside a connect-udp flow on the current path, so the registry
//! sees an egress relay, never the user (SPEC: registries learn nothing about
//! users). The directory's signatures, not the channel, make it trustworthy.
//! There is no direct fetch: the first path comes from the cache or from the
//! config's `[[relay]]` entries, used to bootstrap. A copy the issuer hands
//! over (`GET /v1/directory` on the issuer, when the client checks the
//! issuer's token keys against the directory, RFC 9576 §6) is verified the
//! same way ([`DirectoryFeed::accept_copy`]).
//!
//! A refresh first asks for the diff from the directory held (issue 16:
//! at 100,000 relays a directory is tens of MiB, a diff a few hundred KiB):
//! the result of applying it must be the bytes the diff names, and is then
//! verified exactly as a whole directory. Whatever goes wrong with the diff
//! (none for that base, a bad one), the whole directory is fetched instead.

use openrelay_types::error::{ErrorKind, HasKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openrelay_config::{AttestationMode, DirectoryConfig, TrustPolicyConfig};
use openrelay_directory::{
    BodyFileError, Directory, DirectoryDiff, DirectoryDigest, DirectoryError, SignedDirectory,
    SignedDirectoryDigest, TrustConfig, TrustConfigError, ValidatorSet, VerifiedDirectory,
    endpoint_class, verify_directory,
};
use openrelay_registry_client::follow::NoDiff;
pub use openrelay_registry_client::follow::Refresh;
pub use openrelay_registry_client::follow::VerifiedDirectorySource;
use openrelay_registry_client::paths;
use openrelay_registry_client::{CallError, RegistryClient};
use openrelay_transport::endpoint::TUNNELLED_MTU;
use openrelay_types::unix_now;
use tracing::{debug, info, warn};

use crate::attestation::{AttestationVerdict, DirectoryJudge, VerdictCache};
use crate::chain_check::jsonrpc::RpcUrlError;
use crate::chain_check::{CheckError, RpcCheck};
use crate::flow::TunnelError;
use crate::manager::{DirectoryTimes, PathManager};
use crate::relay::{PlaceNames, Relay};

/// The cached directory's file name in the state directory.
pub const CACHE_FILE: &str = "directory.bin";
/// The latest validator set the client verified (`ValidatorSet::to_bytes`),
/// in the state directory: where verification starts after a restart, so a
/// registry need not serve hand-overs the client already followed.
pub const VALIDATOR_SET_FILE: &str = "validator-set.bin";

/// Why the directory source could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryConfigError {
    /// The validators (a key that is not a validator key, one listed
    /// twice), threshold and weights do not make a trust configuration.
    #[error("directory.validators: {0}")]
    Trust(#[from] TrustConfigError),
    /// `directory.rpc` is not a usable node URL.
    #[error("directory.rpc: {0}")]
    Rpc(#[from] RpcUrlError),
}

impl HasKind for DirectoryConfigError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }
}

/// Why no fresh directory was taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// No flow through the relays to the registry.
    #[error(transparent)]
    Tunnel(#[from] TunnelError),
    /// The call to the registry failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The registry answered without a directory.
    #[error("registry answered HTTP {0}")]
    Status(u16),
    /// The directory was refused (forged, under-signed, stale, rolled
    /// back, malformed): nothing changed.
    #[error(transparent)]
    Refused(#[from] DirectoryError),
    /// The user's node contradicts the directory, or (with
    /// `directory.rpc_required`) could not confirm it: nothing changed.
    #[error(transparent)]
    ChainCheck(#[from] CheckError),
}

impl HasKind for FetchError {
    fn kind(&self) -> ErrorKind {
        match self {
            FetchError::Tunnel(e) => e.kind(),
            FetchError::Call(e) => e.kind(),
            FetchError::Status(_) => ErrorKind::Refused,
            // Forged, under-signed, stale, rolled back or malformed: it did
            // not verify.
            FetchError::Refused(_) => ErrorKind::NotAuthenticated,
            FetchError::ChainCheck(e) => e.kind(),
        }
    }
}

/// What a refresh got from the registry.
enum Fetched {
    /// The newest directory's bytes, and how many crossed the network
    /// (a diff's, when `from_diff`).
    Directory {
        bytes: Vec<u8>,
        transferred: usize,
        from_diff: bool,
    },
    /// The directory held is the newest.
    Unchanged(Arc<VerifiedDirectory>),
}

/// A verified relay list.
#[derive(Debug, Clone)]
pub struct RelayList {
    /// The relays, as the path manager uses them.
    pub relays: Vec<Relay>,
    /// When the directory was issued and until when it may carry traffic.
    pub times: DirectoryTimes,
}

/// Fetches and verifies directories.
#[derive(Debug)]
pub struct DirectoryFeed {
    registry: RegistryClient,
    trust: TrustConfig,
    cache: PathBuf,
    /// [`VALIDATOR_SET_FILE`] in the state directory.
    validator_set_file: PathBuf,
    /// The last directory accepted (and what the next must not roll back).
    current: Mutex<Option<Arc<VerifiedDirectory>>>,
    /// The digest of the envelope in the cache file, kept as it is written
    /// or loaded: a refresh names it as the diff's base without reading
    /// and hashing the file (43 MB at 100,000 relays) every time.
    cached_digest: Mutex<Option<SignedDirectoryDigest>>,
    /// The directory whose relay list was last handed out: an unchanged
    /// refresh of it hands out none (at 100,000 relays a list is 100,000
    /// relays read back from the cache file and as many records).
    listed: Mutex<Option<DirectoryDigest>>,
    refresh: Duration,
    dangerously_allow_special_purpose_endpoints: bool,
    /// `directory.rpc`: the user's node, cross-checked through the relays.
    rpc: Option<RpcCheck>,
    /// Whether the node confirmed the directory in use.
    rpc_confirmed: AtomicBool,
    /// `[trust.tee]` when `[trust] attestation` is not `off`: a listed
    /// relay's evidence is judged under it when selection first considers
    /// the relay ([`DirectoryJudge`]).
    attestation: Option<Arc<openrelay_attest::Policy>>,
    /// Verdicts kept across directories.
    verdicts: Arc<VerdictCache>,
}

/// The relays of a verified directory, each at its first usable endpoint
/// ([`Relay::from_directory`]), with its attestation to be judged by
/// `judge` when first asked for (not checked without one). A relay with no
/// usable endpoint
/// (only special-purpose addresses, unless `allow_special` is set) is left
/// out.
fn relay_entries(
    directory: &VerifiedDirectory,
    allow_special: bool,
    judge: Option<&Arc<DirectoryJudge>>,
) -> Vec<Relay> {
    let usable = |addr: &&std::net::SocketAddr| allow_special || endpoint_class(addr).is_none();
    let mut skipped = 0usize;
    let mut places = PlaceNames::default();
    // One allocation of the final size: grown by doubling, the copies left
    // behind (tens of MiB at 100,000 relays) stayed resident.
    let mut entries: Vec<Relay> = Vec::with_capacity(directory.relay_count());
    entries.extend(directory.relays().filter_map(|relay| {
        let Some(addr) = relay.endpoints().iter().find(usable) else {
            skipped += 1;
            return None;
        };
        let attestation = match judge {
            Some(judge) => judge.attestation(&relay),
            None => AttestationVerdict::NotChecked.into(),
        };
        Some(Relay::from_directory_sharing(
            &relay,
            *addr,
            attestation,
            &mut places,
        ))
    }));
    if skipped > 0 {
        warn!(
            relays = skipped,
            "left out relays whose endpoints are loopback, private, link-local or other \
             special-purpose addresses (directory.dangerously_allow_special_purpose_endpoints is for local \
             test networks only)"
        );
    }
    entries
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// crash never leaves half a file; whether that worked (a failure is
/// logged, and the next fetch tries again).
fn write_atomically(path: &Path, bytes: &[u8], what: &str) -> bool {
    let temporary = path.with_extension("tmp");
    let written = std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .is_ok();
    if !written {
        warn!("cannot cache {what}");
    }
    written
}

/// `genesis` moved forward to the validator set persisted in `file`, if
/// there is one that follows it; else `genesis` (a missing file is a first
/// start, a bad one is logged and ignored: the cached directory's
/// hand-overs, or the next fetch's, lead from genesis again).
fn resume_trust(genesis: TrustConfig, file: &Path) -> TrustConfig {
    let Ok(bytes) = std::fs::read(file) else {
        return genesis;
    };
    let resumed = ValidatorSet::from_bytes(&bytes)
        .map_err(TrustConfigError::ValidatorSet)
        .and_then(|set| genesis.resume(set));
    match resumed {
        Ok(trust) => trust,
        Err(e) => {
            warn!(error = %e, "persisted validator set ignored");
            genesis
        }
    }
}

impl VerifiedDirectorySource for DirectoryFeed {
    fn verified(&self) -> Option<Arc<VerifiedDirectory>> {
        DirectoryFeed::verified(self)
    }

    fn accept_copy(&self, bytes: &[u8]) -> Result<Arc<VerifiedDirectory>, DirectoryError> {
        DirectoryFeed::accept_copy(self, bytes)
    }
}

impl DirectoryFeed {
    /// A feed for `config`, caching in `state_dir`.
    pub fn new(config: &DirectoryConfig, state_dir: &Path) -> Result<Self, DirectoryConfigError> {
        let genesis = openrelay_registry_client::follow::trust_config(config)?;
        let validator_set_file = state_dir.join(VALIDATOR_SET_FILE);
        let trust = resume_trust(genesis, &validator_set_file);
        Ok(DirectoryFeed {
            registry: RegistryClient::new(config.registry.addr, config.registry.key),
            trust,
            cache: state_dir.join(CACHE_FILE),
            validator_set_file,
            current: Mutex::new(None),
            cached_digest: Mutex::new(None),
            listed: Mutex::new(None),
            refresh: Duration::from_secs(config.refresh_secs),
            dangerously_allow_special_purpose_endpoints: config
                .dangerously_allow_special_purpose_endpoints,
            rpc: config
                .rpc
                .as_deref()
                .map(|url| {
                    url.parse()
                        .map(|url| RpcCheck::new(url, config.rpc_required))
                })
                .transpose()?,
            rpc_confirmed: AtomicBool::new(false),
            attestation: None,
            verdicts: Arc::new(VerdictCache::new()),
        })
    }

    /// This feed judging every relay's attestation under `trust` (unless
    /// `trust.attestation` is `off`).
    pub fn judging_attestation(mut self, trust: &TrustPolicyConfig) -> Self {
        self.attestation =
            (trust.attestation != AttestationMode::Off).then(|| Arc::new(trust.tee.clone()));
        self
    }

    fn list(&self, verified: &VerifiedDirectory) -> RelayList {
        *self
            .listed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(verified.digest());
        let issued_at = verified.issued_at();
        let judge = self.attestation.as_ref().map(|policy| {
            DirectoryJudge::new(
                verified.clone(),
                Arc::clone(policy),
                unix_now(),
                Arc::clone(&self.verdicts),
            )
        });
        RelayList {
            relays: relay_entries(
                verified,
                self.dangerously_allow_special_purpose_endpoints,
                judge.as_ref(),
            ),
            times: DirectoryTimes {
                issued_at,
                usable_until: verified
                    .valid_until()
                    .min(issued_at.saturating_add(self.trust.max_age_secs())),
            },
        }
    }

    fn current(&self) -> MutexGuard<'_, Option<Arc<VerifiedDirectory>>> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The last directory verified (however old: what it lists was shown
    /// to everyone), if any.
    pub fn verified(&self) -> Option<Arc<VerifiedDirectory>> {
        self.current().clone()
    }

    /// Verifies `signed` at `now` after the last directory accepted,
    /// without taking it yet.
    fn verify(
        &self,
        signed: SignedDirectory,
        now: u64,
    ) -> Result<Arc<VerifiedDirectory>, DirectoryError> {
        let current = self.current();
        let last_seen = current.as_ref().map(|d| d.last_seen());
        // From the validator set the last directory proved (its hand-overs
        // walked), so the next need not carry them again; after a restart
        // from the set persisted in the state directory.
        let trust = current
            .as_ref()
            .map_or_else(|| self.trust.clone(), |d| self.trust.advanced(d));
        Ok(Arc::new(verify_directory(
            signed,
            &trust,
            now,
            last_seen.as_ref(),
        )?))
    }

    /// Takes `verified` as the current directory (the rollback check of
    /// the next is against it), persisting a validator set it moved to.
    fn commit(&self, verified: &Arc<VerifiedDirectory>) {
        let mut current = self.current();
        // A newer one taken meanwhile (the issuer's copy, while this one
        // was cross-checked) stays: taking this would roll it back.
        if current
            .as_ref()
            .is_some_and(|c| c.sequence() > verified.sequence())
        {
            return;
        }
        let previous = current
            .as_ref()
            .map_or_else(|| self.trust.clone(), |d| self.trust.advanced(d));
        if verified.validator_set() != previous.validator_set() {
            info!(
                epoch = verified.validator_set().epoch(),
                "followed validator set hand-overs"
            );
            write_atomically(
                &self.validator_set_file,
                &verified.validator_set().to_bytes(),
                "the validator set",
            );
        }
        *current = Some(Arc::clone(verified));
    }

    /// Verifies `signed` at `now` after the last directory accepted, and
    /// remembers it.
    fn accept_signed(
        &self,
        signed: SignedDirectory,
        now: u64,
    ) -> Result<Arc<VerifiedDirectory>, DirectoryError> {
        let verified = self.verify(signed, now)?;
        self.commit(&verified);
        Ok(verified)
    }

    /// Verifies and takes `bytes` as a fetch does, without the RPC check.
    #[cfg(test)]
    fn accept(&self, bytes: &[u8], now: u64) -> Result<RelayList, DirectoryError> {
        let signed = SignedDirectory::from_bytes(bytes)?;
        self.accept_signed(signed, now)
            .map(|verified| self.list(&verified))
    }

    /// Verifies a directory someone else handed over (the issuer's copy),
    /// as a fetched one, and caches it: its validators' signatures, not who
    /// sent it, make it trustworthy.
    pub fn accept_copy(&self, bytes: &[u8]) -> Result<Arc<VerifiedDirectory>, DirectoryError> {
        let verified = self.accept_signed(SignedDirectory::from_bytes(bytes)?, unix_now())?;
        self.write_cache(bytes);
        self.keep_body_in_cache(&verified);
        Ok(verified)
    }

    /// Keeps `verified`'s body only in the cache file just written from
    /// the same bytes (`VerifiedDirectory::keep_body_in`): at 100,000
    /// relays 41 MiB less in memory, a relay read back from the file when
    /// it is looked at. If the file cannot serve (not written, replaced
    /// meanwhile), the body stays in memory.
    fn keep_body_in_cache(&self, verified: &VerifiedDirectory) {
        let kept = std::fs::File::open(&self.cache)
            .map_err(BodyFileError::from)
            .and_then(|file| verified.keep_body_in(file));
        if let Err(e) = kept {
            debug!(error = %e, "the directory's body stays in memory");
        }
    }

    /// Writes the cache (then renames, so a crash never leaves half a
    /// cache).
    fn write_cache(&self, bytes: &[u8]) {
        let written = write_atomically(&self.cache, bytes, "the directory");
        self.remember_cached(written.then(|| SignedDirectoryDigest::of(bytes)));
    }

    fn remember_cached(&self, digest: Option<SignedDirectoryDigest>) {
        *self
            .cached_digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = digest;
    }

    /// The held directory and the digest of its bytes in the cache file,
    /// when there is one to ask a diff from.
    fn held(&self) -> Option<(Arc<VerifiedDirectory>, SignedDirectoryDigest)> {
        let current = self.verified()?;
        let digest = (*self
            .cached_digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))?;
        Some((current, digest))
    }

    /// The cached directory. One that no longer verifies now because it is
    /// too old is still loaded if it verified when it was issued: its relays
    /// then serve only to fetch a fresh directory (its times say it is
    /// expired), so a client whose directory expired while it was off can
    /// recover. Anything else wrong with it and it is ignored.
    pub fn load_cache(&self) -> Option<RelayList> {
        let bytes = bytes::Bytes::from(std::fs::read(&self.cache).ok()?);
        let signed = match SignedDirectory::from_shared(&bytes) {
            Ok(signed) => signed,
            Err(e) => {
                warn!(error = %e, "cached directory refused");
                return None;
            }
        };
        let now = unix_now();
        self.remember_cached(Some(SignedDirectoryDigest::of(&bytes)));
        match self.accept_signed(signed.clone(), now) {
            Ok(verified) => {
                let list = self.list(&verified);
                self.keep_body_in_cache(&verified);
                Some(list)
            }
            Err(DirectoryError::Expired { .. } | DirectoryError::Stale { .. }) => {
                // Expiry is checked after the quorum's signatures: they passed.
                let issued_at =
                    Directory::from_quorum_signed_bytes_deferring_key_checks(&signed.directory)
                        .ok()?
                        .issued_at();
                match self.accept_signed(signed, issued_at) {
                    Ok(verified) => {
                        let list = self.list(&verified);
                        self.keep_body_in_cache(&verified);
                        warn!(
                            age_secs = now.saturating_sub(issued_at),
                            "the cached directory has expired; its relays are used only to fetch a fresh one"
                        );
                        Some(list)
                    }
                    Err(e) => {
                        warn!(error = %e, "cached directory refused");
                        None
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "cached directory refused");
                None
            }
        }
    }

    /// Fetches the newest directory through a path of `manager` (also on
    /// the relays of an expired directory: what comes back is verified on
    /// its own): as a diff from the one held where the registry has one.
    async fn fetch_through_path(&self, manager: &Arc<PathManager>) -> Result<Fetched, FetchError> {
        let (endpoint, _hold) =
            crate::flow::directory_tunnel_endpoint(manager, self.registry.addr()).await?;
        let result = async {
            if let Some((current, digest)) = self.held() {
                match self.fetch_diff(&endpoint, current, digest).await {
                    Ok(fetched) => return Ok(fetched),
                    Err(NoDiff::Status(404)) => {
                        debug!("no diff from the directory held; fetching the whole directory");
                    }
                    Err(e) => {
                        warn!(error = %e, "directory diff not used; fetching the whole directory");
                    }
                }
            }
            let (status, bytes) = self.get(&endpoint, paths::DIRECTORY).await?;
            match status {
                200 => Ok(Fetched::Directory {
                    transferred: bytes.len(),
                    bytes,
                    from_diff: false,
                }),
                status => Err(FetchError::Status(status)),
            }
        }
        .await;
        endpoint.close(quinn::VarInt::from_u32(0x100), b"done");
        result
    }

    /// The diff from the held directory (`current`, whose envelope in the
    /// cache file has `digest`) to the newest, applied.
    async fn fetch_diff(
        &self,
        endpoint: &quinn::Endpoint,
        current: Arc<VerifiedDirectory>,
        digest: SignedDirectoryDigest,
    ) -> Result<Fetched, NoDiff> {
        let path = format!("{}?from={digest}", paths::DIRECTORY_DIFF);
        match self.get(endpoint, &path).await? {
            (200, diff) => {
                // The cache holds the bytes of the directory in use (written
                // as it is taken), so nothing this size stays in memory
                // between refreshes; the diff checks they are its base.
                let held = std::fs::read(&self.cache).map_err(NoDiff::Base)?;
                Ok(Fetched::Directory {
                    bytes: DirectoryDiff::from_bytes(&diff)?.apply(&held)?,
                    transferred: diff.len(),
                    from_diff: true,
                })
            }
            (204, _) => Ok(Fetched::Unchanged(current)),
            (status, _) => Err(NoDiff::Status(status)),
        }
    }

    /// `GET path` at the registry over `endpoint`.
    async fn get(
        &self,
        endpoint: &quinn::Endpoint,
        path: &str,
    ) -> Result<(u16, Vec<u8>), CallError> {
        self.registry
            .call_via(endpoint, TUNNELLED_MTU, http::Method::GET, path, Vec::new())
            .await
    }

    /// Fetches (through the relays), verifies, cross-checks against the
    /// user's node (`directory.rpc`) and caches the newest directory; the
    /// relay list to use (none when the directory whose list was
    /// last handed out is unchanged) and what the refresh did.
    pub async fn fetch(
        &self,
        manager: &Arc<PathManager>,
    ) -> Result<(Option<RelayList>, Refresh), FetchError> {
        let (bytes, transferred, from_diff) = match self.fetch_through_path(manager).await? {
            Fetched::Directory {
                bytes,
                transferred,
                from_diff,
            } => (bytes, transferred, from_diff),
            Fetched::Unchanged(current) => {
                // The one held may not be cross-checked yet (a copy the
                // issuer handed over, or the node was unusable before).
                if let Some(rpc) = &self.rpc {
                    self.cross_check(rpc, manager, &current).await?;
                }
                let listed = *self
                    .listed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // A copy the issuer handed over was taken without a list.
                let list = (listed != Some(current.digest())).then(|| self.list(&current));
                return Ok((list, Refresh::Unchanged));
            }
        };
        // Shared, not copied: the directory keeps views of these bytes.
        let bytes = bytes::Bytes::from(bytes);
        let signed = SignedDirectory::from_shared(&bytes).map_err(DirectoryError::from)?;
        let verified = self.verify(signed, unix_now())?;
        if let Some(rpc) = &self.rpc {
            self.cross_check(rpc, manager, &verified).await?;
        }
        self.commit(&verified);
        self.write_cache(&bytes);
        let refresh = Refresh::Taken {
            from_diff,
            transferred,
            bytes: bytes.len(),
        };
        let list = self.list(&verified);
        self.keep_body_in_cache(&verified);
        Ok((Some(list), refresh))
    }

    /// Cross-checks `verified` against the node unless its chain facts are
    /// those of the directory in use (a registry republishes the same block's
    /// directory with a new sequence number and validity): a mismatch is an
    /// error, so is an unusable node with `rpc_required`; otherwise an
    /// unusable node is a warning and the directory is taken.
    async fn cross_check(
        &self,
        rpc: &RpcCheck,
        manager: &Arc<PathManager>,
        verified: &VerifiedDirectory,
    ) -> Result<(), CheckError> {
        let Some(section) = verified.chain() else {
            return Ok(());
        };
        let checked_before = self.current().as_ref().is_some_and(|current| {
            current.chain() == Some(section)
                && current
                    .relays()
                    .map(|r| r.descriptor().content_hash())
                    .eq(verified.relays().map(|r| r.descriptor().content_hash()))
        });
        if checked_before && self.rpc_confirmed.load(Ordering::Relaxed) {
            return Ok(());
        }
        match rpc.check_through(manager, verified).await {
            Ok(()) => {
                info!(
                    block = section.anchor.block_number,
                    "directory confirmed by the RPC node"
                );
                self.rpc_confirmed.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) if e.is_mismatch() || rpc.required() => Err(e),
            Err(e) => {
                warn!(
                    error = %e,
                    "directory not cross-checked against the RPC node; used on the validators' \
                     signatures alone (directory.rpc_required refuses it instead)"
                );
                self.rpc_confirmed.store(false, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Keeps `manager`'s relay list current: the cache at once, then a fetch
    /// every refresh interval. A refused or failed fetch keeps the list in
    /// use until it expires (the manager then refuses traffic on it).
    pub async fn run(self: Arc<Self>, manager: Arc<PathManager>) {
        let mut usable_until = None;
        if let Some(list) = self.load_cache() {
            usable_until = Some(list.times.usable_until);
            manager.set_relays(list.relays, Some(list.times));
        }
        loop {
            match self.fetch(&manager).await {
                Ok((list, refresh)) => {
                    let relays = list.as_ref().map(|l| l.relays.len());
                    match refresh {
                        Refresh::Taken {
                            from_diff,
                            transferred,
                            bytes,
                        } => info!(relays, from_diff, transferred, bytes, "directory updated"),
                        Refresh::Unchanged => info!(relays, "directory unchanged"),
                    }
                    if let Some(list) = list {
                        usable_until = Some(list.times.usable_until);
                        manager.set_relays(list.relays, Some(list.times));
                    }
                }
                Err(e) => {
                    let now = unix_now();
                    match usable_until {
                        Some(until) if now >= until => warn!(
                            error = %e,
                            expired_secs_ago = now - until,
                            "directory not updated; the one in use has expired, so no paths are \
                             built for traffic until a fresh one arrives"
                        ),
                        _ => warn!(error = %e, "directory not updated"),
                    }
                }
            }
            debug!(
                next_in_secs = self.refresh.as_secs(),
                "next directory fetch"
            );
            tokio::time::sleep(self.refresh).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use openrelay_config::ServiceEndpoint;
    use openrelay_directory::{
        CountryCode, DescriptorFields, Network, OperatorKey, OperatorProfile, ProfileFields,
        QuicKey, Region, RelayDescriptor, RelayKey, SignedDescriptor, SignedValidatorSetChange,
        ValidatorKey, ValidatorSet, ValidatorSetChange,
    };
    use openrelay_types::{KeyPin, RelayRole};

    use super::*;

    fn config(allow_special: bool) -> DirectoryConfig {
        DirectoryConfig {
            registry: ServiceEndpoint {
                addr: "127.0.0.1:1".parse().unwrap(),
                key: KeyPin::from(ValidatorKey::from_bytes(&[1; 32]).id()),
            },
            validators: vec![KeyPin::from(ValidatorKey::from_bytes(&[9; 32]).id())],
            threshold: 1,
            validator_weights: None,
            max_age_secs: 3600,
            refresh_secs: 30,
            dangerously_allow_special_purpose_endpoints: allow_special,
            rpc: None,
            rpc_required: false,
            chain: None,
        }
    }

    fn feed(allow_special: bool, dir: &Path) -> DirectoryFeed {
        DirectoryFeed::new(&config(allow_special), dir).unwrap()
    }

    #[test]
    fn an_rpc_url_must_be_plain_http() {
        let dir = tempfile::tempdir().unwrap();
        let config = |rpc: &str| DirectoryConfig {
            rpc: Some(rpc.to_owned()),
            rpc_required: true,
            ..config(false)
        };
        let error = DirectoryFeed::new(&config("https://node.example"), dir.path()).unwrap_err();
        assert!(matches!(
            error,
            DirectoryConfigError::Rpc(RpcUrlError::Https)
        ));
        assert!(error.to_string().starts_with("directory.rpc: "), "{error}");
        let feed = DirectoryFeed::new(&config("http://10.0.0.1:8545"), dir.path()).unwrap();
        assert!(feed.rpc.as_ref().unwrap().required());
    }

    /// The directory body of relays 1 and 2 (operator 1, ingress) and 3
    /// (operator 2, egress) at `endpoints[i]`.
    fn directory_body(now: u64, endpoints: [&[&str]; 3]) -> Directory {
        let operators: Vec<OperatorKey> =
            (1..=2).map(|i| OperatorKey::from_bytes(&[i; 32])).collect();
        let profiles = operators
            .iter()
            .map(|key| {
                key.sign_profile(
                    OperatorProfile::new(ProfileFields {
                        operator: key.id(),
                        name: "Op".into(),
                        contact: "mailto:op@example.org".into(),
                        jurisdiction: CountryCode::parse("DE").unwrap(),
                        // Chain-anchored bodies need it; others ignore it.
                        chain_account: Some([0x40; 20]),
                        published_at: now - 60,
                    })
                    .unwrap(),
                )
                .unwrap()
            })
            .collect();
        let descriptors = endpoints
            .iter()
            .enumerate()
            .map(|(i, endpoints)| {
                let n = u8::try_from(i).unwrap() + 10;
                let (relay, quic) = (
                    RelayKey::from_bytes(&[n; 32]),
                    QuicKey::from_bytes(&[n + 10; 32]),
                );
                let operator = &operators[usize::from(i == 2)];
                let descriptor = RelayDescriptor::new(DescriptorFields {
                    relay: relay.id(),
                    operator: operator.id(),
                    role: if i == 2 {
                        RelayRole::Egress
                    } else {
                        RelayRole::Ingress
                    },
                    endpoints: endpoints.iter().map(|e| e.parse().unwrap()).collect(),
                    quic_pin: quic.pin(),
                    region: Region {
                        country: CountryCode::parse("DE").unwrap(),
                        city: String::new(),
                    },
                    network: Network::Asn(64_500 + u32::from(n)),
                    bandwidth_bps: 1_000_000,
                    software_version: "openrelay 0.1.0".into(),
                    attestation: None,
                    not_before: now - 60,
                    not_after: now + 86_400,
                })
                .unwrap();
                let quic_signature = quic.sign_descriptor(&descriptor);
                SignedDescriptor::sign(descriptor, &relay, operator, quic_signature).unwrap()
            })
            .collect();
        Directory::new(1, now, now + 3600, profiles, descriptors).unwrap()
    }

    /// A directory signed by the feed's validator: relays 1 and 2 (operator
    /// 1, ingress) and 3 (operator 2, egress) at `endpoints[i]`.
    fn directory(now: u64, endpoints: [&[&str]; 3]) -> Vec<u8> {
        let mut signed = SignedDirectory::new(&directory_body(now, endpoints));
        signed.sign(&ValidatorKey::from_bytes(&[9; 32]));
        signed.to_bytes()
    }

    /// Validator `n`'s key (the feed's genesis validator is 9).
    fn validator(n: u8) -> ValidatorKey {
        ValidatorKey::from_bytes(&[n; 32])
    }

    /// The hand-over to validators `members` (weight 1 each) as epoch
    /// `epoch` at block `epoch * 10`, signed by `signers`.
    fn handover(epoch: u64, members: &[u8], signers: &[u8]) -> SignedValidatorSetChange {
        let set =
            ValidatorSet::equal_weights(epoch, members.iter().map(|&v| validator(v).id())).unwrap();
        let change =
            ValidatorSetChange::new(openrelay_testkit::fixtures::chain_anchor(epoch * 10), set)
                .unwrap();
        let mut signed = SignedValidatorSetChange::new(change);
        for &v in signers {
            signed.sign(&validator(v));
        }
        signed
    }

    /// Directory `sequence` with a chain section at block `epoch * 10 + 5`
    /// for validator set `epoch`, carrying `handovers`, signed by `signers`.
    fn chain_directory(
        now: u64,
        sequence: u64,
        epoch: u64,
        handovers: Vec<SignedValidatorSetChange>,
        signers: &[u8],
    ) -> Vec<u8> {
        let body = directory_body(now, [&["11.0.0.1:1"], &["11.0.0.2:1"], &["11.0.0.3:1"]]);
        let body = Directory::new(
            sequence,
            now,
            now + 3600,
            body.operators().to_vec(),
            body.descriptors().to_vec(),
        )
        .unwrap();
        let section = openrelay_testkit::fixtures::chain_section(&body, epoch * 10 + 5, epoch);
        let mut signed = SignedDirectory::new(&body.with_chain(section).unwrap())
            .with_handovers(handovers)
            .unwrap();
        for &v in signers {
            signed.sign(&validator(v));
        }
        signed.to_bytes()
    }

    /// Issue 13, item 4: a client that starts from its genesis validator
    /// set (the config's one validator, 9) follows three set changes, then
    /// verifies later directories from the latest set without the history,
    /// and refuses the old sets' signatures; a refused directory changes
    /// nothing.
    #[test]
    fn a_client_follows_three_validator_set_changes_from_its_genesis_set() {
        let dir = tempfile::tempdir().unwrap();
        let now = unix_now();
        let all = vec![
            handover(1, &[20, 21], &[9]),
            handover(2, &[22, 23, 24], &[20, 21]),
            handover(3, &[25], &[22, 23, 24]),
        ];
        let fresh = feed(true, dir.path());
        let list = fresh
            .accept(&chain_directory(now, 1, 3, all.clone(), &[25]), now)
            .unwrap();
        assert_eq!(list.relays.len(), 3);
        assert_eq!(fresh.verified().unwrap().validator_set().epoch(), 3);
        // Without the history: the feed verifies from the set it reached.
        fresh
            .accept(&chain_directory(now, 2, 3, vec![], &[25]), now)
            .unwrap();
        // A client at genesis (another state directory) needs the whole
        // history.
        let elsewhere = tempfile::tempdir().unwrap();
        let other = feed(true, elsewhere.path());
        assert!(matches!(
            other.accept(&chain_directory(now, 2, 3, all[1..].to_vec(), &[25]), now),
            Err(DirectoryError::HandOverGap {
                expected: 1,
                found: 2
            })
        ));
        // The set of epoch 2 signing after it handed over: refused, and the
        // feed keeps directory 2.
        assert!(matches!(
            fresh.accept(&chain_directory(now, 3, 2, vec![], &[22, 23, 24]), now),
            Err(DirectoryError::ValidatorEpochBehind {
                epoch: 2,
                trusted: 3
            })
        ));
        // Two of three of epoch 2 sign a hand-over to a set of their own:
        // exactly two thirds, refused.
        let forged = vec![
            all[0].clone(),
            all[1].clone(),
            handover(3, &[26], &[22, 23]),
        ];
        assert!(matches!(
            other.accept(&chain_directory(now, 3, 3, forged, &[26]), now),
            Err(DirectoryError::HandOverUnderSigned { epoch: 3, .. })
        ));
        assert_eq!(fresh.verified().unwrap().sequence(), 2);
        assert!(other.verified().is_none());
        // After a restart the feed starts from the set it persisted, so a
        // registry serving only the newest hand-overs is followed.
        let restarted = feed(true, dir.path());
        restarted
            .accept(&chain_directory(now, 4, 3, all[2..].to_vec(), &[25]), now)
            .unwrap();
        // A state directory without it starts from genesis again.
        assert!(
            feed(true, elsewhere.path())
                .accept(&chain_directory(now, 4, 3, all[2..].to_vec(), &[25]), now)
                .is_err()
        );
    }

    /// Issue 11, item 17: a directory cannot make the client send packets to
    /// hosts in its own network.
    #[test]
    fn relays_at_special_purpose_addresses_are_left_out_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let now = unix_now();
        let bytes = directory(
            now,
            [
                &["127.0.0.1:4433"],
                &["10.1.2.3:4433", "11.22.33.44:4433"],
                &["[fe80::1]:443", "169.254.169.254:80"],
            ],
        );
        let strict = feed(false, dir.path()).accept(&bytes, now).unwrap();
        let addrs: Vec<String> = strict.relays.iter().map(|r| r.addr.to_string()).collect();
        // Relay 1 (loopback only) and relay 3 (link-local only) are gone;
        // relay 2 is used at its public address.
        assert_eq!(addrs, vec!["11.22.33.44:4433"]);
        let local = feed(true, dir.path()).accept(&bytes, now).unwrap();
        assert_eq!(local.relays.len(), 3);
        // The times the manager gates traffic on.
        assert_eq!(local.times.issued_at, now);
        assert_eq!(local.times.usable_until, now + 3600);
    }

    /// A cached directory that expired still gives its relays, marked
    /// expired, so the client can fetch a fresh directory through them.
    #[test]
    fn an_expired_cache_is_loaded_for_fetching_only() {
        let dir = tempfile::tempdir().unwrap();
        let long_ago = unix_now() - 2 * 3600;
        let bytes = directory(
            long_ago,
            [&["11.0.0.1:1"], &["11.0.0.2:1"], &["11.0.0.3:1"]],
        );
        std::fs::write(dir.path().join(CACHE_FILE), &bytes).unwrap();
        let list = feed(false, dir.path()).load_cache().unwrap();
        assert_eq!(list.relays.len(), 3);
        assert!(list.times.usable_until <= unix_now());
        // Garbage in the cache is ignored.
        std::fs::write(dir.path().join(CACHE_FILE), b"junk").unwrap();
        assert!(feed(false, dir.path()).load_cache().is_none());
    }

    /// Issue 11 item 11 (RFC 9576 §6): a directory whose issuer key set
    /// breaks the bounds (here: four keys, one more than a set may list) is
    /// refused as a whole, even signed by the validators, and changes
    /// nothing.
    #[test]
    fn a_directory_with_an_over_bounded_key_set_is_refused() {
        use openrelay_directory::{IssuerKey, IssuerKeySet, IssuerTokenKey, KeySetFields};
        let dir = tempfile::tempdir().unwrap();
        let now = unix_now();
        let feed = feed(true, dir.path());
        let good = directory(now, [&["11.0.0.1:1"], &["11.0.0.2:1"], &["11.0.0.3:1"]]);
        feed.accept(&good, now).unwrap();
        let before = feed.verified().unwrap().digest();

        // A valid set of three keys, then its key count made four.
        let issuer = IssuerKey::from_bytes(&[5; 32]);
        let keys = (0..3u64)
            .map(|i| IssuerTokenKey {
                token_type: openrelay_directory::TOKEN_TYPE_BLIND_RSA,
                key: vec![u8::try_from(i).unwrap(); 342],
                not_before: now + i * 3600,
                expires: now + i * 3600 + 7200,
            })
            .collect();
        let set = issuer
            .sign_key_set(
                IssuerKeySet::new(KeySetFields {
                    issuer: issuer.id(),
                    issuer_name: "issuer.example:4450".into(),
                    published_at: now,
                    keys,
                })
                .unwrap(),
            )
            .unwrap()
            .to_bytes();
        let mut four = set.clone();
        four[1 + 32 + 1 + "issuer.example:4450".len() + 8] = 4;
        let signed = SignedDirectory::from_bytes(&good).unwrap();
        let mut body = signed.directory.to_vec();
        // Replace the empty list of key sets (a u32 0) by one entry.
        body.truncate(body.len() - 4);
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&four);
        let mut forged = SignedDirectory {
            directory: body.into(),
            handovers: Vec::new(),
            signatures: Vec::new(),
        };
        forged.sign(&ValidatorKey::from_bytes(&[9; 32]));
        let refused = feed.accept(&forged.to_bytes(), now).unwrap_err();
        assert!(refused.to_string().contains("malformed"), "{refused}");
        assert_eq!(feed.verified().unwrap().digest(), before);
    }
}
