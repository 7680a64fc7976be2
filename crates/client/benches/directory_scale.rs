//! The directory at 1 000, 10 000 and 100 000 relays (issue 16, item 4):
//! encoded size, verification time (`verify_directory`, then the relay
//! list and the path plan the client makes of it and the body moved to
//! the file it came from, as the client's feed does with its cache), the
//! client's memory for the verified directory and the path plan over its
//! relays (resident memory added in a fresh process that only reads,
//! verifies and holds them, as the client's path controller does), the
//! time to read every relay back from the file, and the download time at
//! 100 Mbit/s (computed, not fetched). At 100 000 relays it prints the
//! issue's targets as MET or MISSED.
//!
//! Synthetic but realistic: real Ed25519 keys and all signatures, one
//! operator per ten relays, a chain section with every relay measured,
//! public IPv4 endpoints (IPv6 too for every other relay), and a second
//! run where every fourth relay carries 2 600 bytes of TEE evidence (an
//! SEV-SNP report with its VCEK; random bytes, so it does not compress,
//! as the VCEK's signature and key do not).
//!
//! Each size is one directory (`MAX_RELAYS` is 100 000).
//!
//! Accepting the list uses `[trust] attestation = "prefer"` (the default):
//! no relay is judged then; the time to the first path and the number of
//! relays judged for it are printed apart.
//!
//! Run with `bench/directory-scale` (`cargo bench -p openrelay-client
//! --bench directory_scale`; `-- --quick` stops at 10 000).

#![expect(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark binary: prints its figures, panics on a broken fixture"
)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use std::sync::Arc;

use openrelay_client::attestation::{DirectoryJudge, VerdictCache};
use openrelay_client::relay::{PlaceNames, Relay};
use openrelay_client::selection::{PathPlan, PlanConfig};
use openrelay_config::AttestationMode;
use openrelay_directory::{
    AttestationEvidence, ChainOperator, ChainRelay, ChainSection, CountryCode, DescriptorFields,
    Directory, DirectoryDiff, Network, OperatorKey, OperatorProfile, ProfileFields, QuicKey,
    Region, RelayDescriptor, RelayKey, RelayMeasurement, SignedDescriptor, SignedDirectory,
    SignedOperatorProfile, TrustConfig, ValidatorKey, VerifiedDirectory, verify_directory,
};
use openrelay_types::RelayRole;

const ISSUED_AT: u64 = 1_750_000_000;
const NOW: u64 = ISSUED_AT + 60;
const VALIDATORS: u8 = 9;
const THRESHOLD: usize = 5;
/// One operator per this many relays.
const RELAYS_PER_OPERATOR: u32 = 10;
/// An SEV-SNP report (1 184 bytes) with its VCEK certificate, as
/// `openrelay_attest::Evidence` encodes them.
const SEV_SNP_EVIDENCE_LEN: usize = 2_600;
/// Every this many relays carries evidence in the attested run.
const ATTESTED_EVERY: u32 = 4;
/// What judging one relay's SEV-SNP evidence costs (measured for issue 16
/// on this machine); the bench's evidence is random bytes, refused as
/// malformed at once, so the time of judging is computed from this.
const SEV_SNP_JUDGE_MS: f64 = 5.35;
const TARGET_DOWNLOAD_BYTES: usize = 100 * 1024;
const TARGET_VERIFY: Duration = Duration::from_millis(200);
const TARGET_MEMORY_BYTES: usize = 50 * 1024 * 1024;
const LINK_BITS_PER_SEC: f64 = 100e6;
const COUNTRIES: [&str; 8] = ["DE", "NL", "FR", "SE", "CH", "US", "CA", "JP"];
const CITIES: [&str; 8] = [
    "Frankfurt",
    "Amsterdam",
    "Paris",
    "Stockholm",
    "Zurich",
    "Ashburn",
    "Montreal",
    "Tokyo",
];

/// A 32-byte secret: `tag`, then zeros, then `index`.
fn secret(tag: u8, index: u32) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[0] = tag;
    s[28..].copy_from_slice(&index.to_be_bytes());
    s
}

fn operator_key(i: u32) -> OperatorKey {
    OperatorKey::from_bytes(&secret(0x0a, i))
}

fn profile(i: u32) -> SignedOperatorProfile {
    let key = operator_key(i);
    let fields = ProfileFields {
        operator: key.id(),
        name: format!("Operator number {i}"),
        contact: format!("abuse@operator-{i}.example.net"),
        jurisdiction: CountryCode::parse(COUNTRIES[i as usize % COUNTRIES.len()]).unwrap(),
        chain_account: Some(std::array::from_fn(|b| (i >> (8 * (b % 4))) as u8)),
        published_at: ISSUED_AT - 86_400,
    };
    key.sign_profile(OperatorProfile::new(fields).unwrap())
        .unwrap()
}

/// Relay `i`, signed by its key, its operator's and its QUIC key; re-signed
/// `resigned` times (each a minute later, with new evidence, as a relay
/// whose descriptor changed).
fn descriptor(i: u32, attested: bool, resigned: u64) -> SignedDescriptor {
    let relay = RelayKey::from_bytes(&secret(0x0b, i));
    let quic = QuicKey::from_bytes(&secret(0x0d, i));
    let operator = i / RELAYS_PER_OPERATOR;
    let [a, b, c, d] = i.to_be_bytes();
    let mut endpoints = vec![SocketAddr::from((
        Ipv4Addr::new(45, b.wrapping_add(1), c, d.max(1)),
        443,
    ))];
    if i.is_multiple_of(2) {
        endpoints.push(SocketAddr::from((
            Ipv6Addr::new(
                0x2a01,
                0x4f8,
                u16::from(a),
                u16::from(b),
                0,
                0,
                u16::from(c),
                u16::from(d) + 1,
            ),
            443,
        )));
    }
    let place = i as usize % COUNTRIES.len();
    let fields = DescriptorFields {
        relay: relay.id(),
        operator: operator_key(operator).id(),
        role: if i.is_multiple_of(2) {
            RelayRole::Ingress
        } else {
            RelayRole::Egress
        },
        endpoints,
        quic_pin: quic.pin(),
        region: Region {
            country: CountryCode::parse(COUNTRIES[place]).unwrap(),
            city: CITIES[place].to_owned(),
        },
        network: Network::Asn(16_000 + operator % 5_000),
        bandwidth_bps: 100_000_000 * u64::from(1 + i % 100),
        software_version: "openrelay 0.1.0".to_owned(),
        attestation: attested.then(|| {
            let mut state = (u64::from(i) << 8 | resigned) | 1;
            let bytes = (0..SEV_SNP_EVIDENCE_LEN)
                .map(|_| {
                    // xorshift: incompressible filler of the right size.
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            AttestationEvidence::new(bytes).unwrap()
        }),
        not_before: ISSUED_AT - 3_600 + 60 * resigned,
        not_after: ISSUED_AT + 86_400 + 60 * resigned,
    };
    let descriptor = RelayDescriptor::new(fields).unwrap();
    let quic_signature = quic.sign_descriptor(&descriptor);
    SignedDescriptor::sign(descriptor, &relay, &operator_key(operator), quic_signature).unwrap()
}

/// `f` over `range`, on every core.
fn par_map<T: Send>(range: std::ops::Range<u32>, f: impl Fn(u32) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let chunk = (range.end - range.start).div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let start = range.start + t * chunk;
                let end = (start + chunk).min(range.end);
                let f = &f;
                s.spawn(move || (start..end).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// The operators and descriptors of relays `0..n`, every fourth attested if
/// `attested`.
fn network(n: u32, attested: bool) -> (Vec<SignedOperatorProfile>, Vec<SignedDescriptor>) {
    let operators = par_map(0..n.div_ceil(RELAYS_PER_OPERATOR), profile);
    let descriptors = par_map(0..n, |i| {
        descriptor(i, attested && i.is_multiple_of(ATTESTED_EVERY), 0)
    });
    (operators, descriptors)
}

/// The signed envelope listing `descriptors` (a format 6 directory with
/// every relay measured in `epoch`), issued a minute after its predecessor
/// for each `sequence`.
fn envelope(
    operators: Vec<SignedOperatorProfile>,
    descriptors: Vec<SignedDescriptor>,
    sequence: u64,
    epoch: u64,
) -> Vec<u8> {
    let issued_at = ISSUED_AT + 60 * (sequence - 1);
    let directory = Directory::new(
        sequence,
        issued_at,
        issued_at + 3 * 3_600,
        operators,
        descriptors,
    )
    .unwrap();
    let mut covered: std::collections::HashMap<_, u64> = Default::default();
    let relays = directory
        .descriptors()
        .iter()
        .map(|d| {
            let d = d.descriptor();
            let mbps = d.bandwidth_bps().div_ceil(1_000_000);
            *covered.entry(d.operator()).or_default() += mbps;
            ChainRelay {
                relay: d.relay(),
                bandwidth_mbps: u32::try_from(mbps).unwrap(),
                measured: Some(RelayMeasurement {
                    // Each epoch measures every relay anew (a figure that
                    // moves by a few per cent).
                    measured_bps: d.bandwidth_bps() / 2
                        + epoch * 1_000
                        + u64::from(d.relay().as_bytes()[0]),
                    measured_epoch: epoch,
                    measured_at: ISSUED_AT - 600 + 60 * (epoch - 41),
                }),
            }
        })
        .collect();
    let operators = directory
        .operators()
        .iter()
        .map(|p| {
            let p = p.profile();
            let covered_mbps = covered.get(&p.operator()).copied().unwrap_or(0);
            ChainOperator {
                operator: p.operator(),
                account: p.chain_account().unwrap_or_default(),
                stake_wei: u128::from(covered_mbps) * 1_000_000_000_000_000,
                covered_mbps,
            }
        })
        .collect();
    let directory = directory
        .with_chain(ChainSection {
            anchor: openrelay_testkit::fixtures::chain_anchor(21_000_000),
            validator_epoch: 0,
            operators,
            relays,
            releases: Vec::new(),
        })
        .unwrap();
    let mut signed = SignedDirectory::new(&directory);
    for v in 0..VALIDATORS {
        signed.sign(&ValidatorKey::from_bytes(&secret(0x0c, u32::from(v))));
    }
    signed.to_bytes()
}

fn trust() -> TrustConfig {
    TrustConfig::new(
        (0..VALIDATORS).map(|v| ValidatorKey::from_bytes(&secret(0x0c, u32::from(v))).id()),
        THRESHOLD,
        6 * 3_600,
    )
    .unwrap()
}

/// The client's relay list, as its directory feed builds it with
/// `[trust] attestation = "prefer"` (the default): each relay judged by
/// `judge` when selection first draws it.
fn relay_list(verified: &VerifiedDirectory, cache: &Arc<VerdictCache>) -> Vec<Relay> {
    let judge = DirectoryJudge::new(
        verified.clone(),
        Arc::new(openrelay_attest::Policy::default()),
        NOW,
        Arc::clone(cache),
    );
    let mut places = PlaceNames::default();
    let mut list = Vec::with_capacity(verified.relay_count());
    list.extend(verified.relays().filter_map(|r| {
        let addr = *r.endpoints().first()?;
        Some(Relay::from_directory_sharing(
            &r,
            addr,
            judge.attestation(&r),
            &mut places,
        ))
    }));
    list
}

struct Figures {
    bytes: usize,
    verify: Duration,
    /// Decoding the envelope and the body alone, measured apart (part of
    /// what `verify` includes).
    decode: Duration,
    /// Making the relay list and the path plan of it, and moving the body
    /// to the file (part of what `verify` includes).
    listing: Duration,
    /// Resident memory added by holding the verified directories and the
    /// path plans over their relays (after the fetched bytes were dropped).
    held: usize,
    /// The most resident memory added at any moment (`VmHWM`).
    peak: usize,
    /// The first path with `[trust] attestation = "prefer"` over the
    /// accepted list (relays judged as the draws land on them).
    first_path: Duration,
    /// Reading every relay back from the file the body is kept in.
    read_back: Duration,
    /// Relays judged by then (accepting judges none).
    judged: u64,
}

/// `VmRSS` and `VmHWM` of this process, bytes.
fn resident() -> (usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
            .unwrap()
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// In a fresh process (so nothing the generation left in the heap counts):
/// reads each envelope in `files`, verifies it as a client does and keeps
/// what the client keeps; prints the figures for [`measure`].
fn hold(files: &[String]) {
    let trust = trust();
    let cache = Arc::new(VerdictCache::new());
    let (before, _) = resident();
    let mut bytes = 0;
    let mut verify = Duration::ZERO;
    let mut decode = Duration::ZERO;
    let mut listing = Duration::ZERO;
    let mut held = Vec::with_capacity(files.len());
    for file in files {
        let envelope = std::fs::read(file).unwrap();
        bytes += envelope.len();
        let start = Instant::now();
        // As the client takes a fetched directory: shared, not copied.
        let envelope = bytes::Bytes::from(envelope);
        let verified = verify_directory(
            SignedDirectory::from_shared(&envelope).unwrap(),
            &trust,
            NOW,
            None,
        )
        .unwrap();
        verify += start.elapsed();
        drop(envelope);
        // What the client's path controller keeps of the list: its plan;
        // then, as the client's feed does, the body is kept only in the
        // file it came from (the client's cache).
        let start = Instant::now();
        let plan = plan(relay_list(&verified, &cache));
        verified
            .keep_body_in(std::fs::File::open(file).unwrap())
            .unwrap();
        listing += start.elapsed();
        held.push((verified, plan));
    }
    let (after, peak) = resident();
    // Decoding alone, as verification decodes (key checks deferred;
    // besides it: the quorum's signatures and the listing checks), after
    // the memory was measured: what it frees stays resident.
    for file in files {
        let envelope = bytes::Bytes::from(std::fs::read(file).unwrap());
        let start = Instant::now();
        let signed = SignedDirectory::from_shared(&envelope).unwrap();
        drop(Directory::from_quorum_signed_bytes_deferring_key_checks(&signed.directory).unwrap());
        decode += start.elapsed();
    }
    // The first path with `prefer`: relays judged as draws land on them.
    let start = Instant::now();
    for (_, plan) in &mut held {
        plan.current(Duration::ZERO).unwrap();
    }
    let first_path = start.elapsed();
    // Every relay read back from the file (what the client's cross-check
    // against its node does with the directory it holds).
    let start = Instant::now();
    for (verified, _) in &held {
        assert_eq!(verified.relays().count(), verified.relay_count());
    }
    let read_back = start.elapsed();
    println!(
        "{bytes} {} {} {} {} {} {} {} {}",
        (verify + listing).as_nanos(),
        decode.as_nanos(),
        listing.as_nanos(),
        after.saturating_sub(before),
        peak.saturating_sub(before),
        first_path.as_nanos(),
        cache.judgements(),
        read_back.as_nanos()
    );
    drop(held);
}

/// The plan a client's path controller makes of `list`, with
/// `[trust] attestation = "prefer"` (the default).
fn plan(list: Vec<Relay>) -> PathPlan<Duration> {
    let config = PlanConfig {
        attestation: AttestationMode::Prefer,
        ..PlanConfig::default()
    };
    PathPlan::new(list, config, fastrand::Rng::with_seed(1))
}

/// Writes `shards` to files and has a fresh process of this bench verify
/// and hold them ([`hold`]).
fn measure(shards: Vec<Vec<u8>>) -> Figures {
    let dir =
        std::env::temp_dir().join(format!("openrelay-directory-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<PathBuf> = shards
        .iter()
        .enumerate()
        .map(|(i, shard)| {
            let file = dir.join(format!("{i}.dir"));
            std::fs::write(&file, shard).unwrap();
            file
        })
        .collect();
    drop(shards);
    let output = Command::new(std::env::current_exe().unwrap())
        .arg("--hold")
        .args(&files)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8(output.stdout).unwrap();
    let numbers: Vec<u128> = line
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let [
        bytes,
        verify_ns,
        decode_ns,
        listing_ns,
        held,
        peak,
        first_path_ns,
        judged,
        read_back_ns,
    ] = numbers[..]
    else {
        panic!("unexpected output {line:?}");
    };
    Figures {
        bytes: bytes as usize,
        verify: Duration::from_nanos(verify_ns as u64),
        decode: Duration::from_nanos(decode_ns as u64),
        listing: Duration::from_nanos(listing_ns as u64),
        held: held as usize,
        peak: peak as usize,
        first_path: Duration::from_nanos(first_path_ns as u64),
        read_back: Duration::from_nanos(read_back_ns as u64),
        judged: judged as u64,
    }
}

/// Real diffs (`DirectoryDiff`) from a directory to its successor a
/// minute later: where 2 % of relays changed their descriptor (what stable
/// descriptors leave of a refresh: a relay republishing unchanged keeps
/// its listed descriptor), and at a measurement epoch's end (every chain
/// relay entry's measurement changes, no descriptor does); with the time a
/// client takes to apply each to its held bytes (verifying the result is
/// the "verify" column).
struct Diffs {
    two_percent: usize,
    two_percent_apply: Duration,
    epoch_end: usize,
    epoch_end_apply: Duration,
}

fn diffs(
    held: &[u8],
    operators: &[SignedOperatorProfile],
    descriptors: &[SignedDescriptor],
    attested: bool,
) -> Diffs {
    let churned = descriptors
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if i.is_multiple_of(50) {
                let i = u32::try_from(i).unwrap();
                descriptor(i, attested && i.is_multiple_of(ATTESTED_EVERY), 1)
            } else {
                d.clone()
            }
        })
        .collect();
    let churn = envelope(operators.to_vec(), churned, 2, 41);
    let epoch = envelope(operators.to_vec(), descriptors.to_vec(), 2, 42);
    let measure = |next: &[u8]| {
        let diff = DirectoryDiff::between(held, next).unwrap().to_bytes();
        let start = Instant::now();
        let applied = DirectoryDiff::from_bytes(&diff)
            .unwrap()
            .apply(held)
            .unwrap();
        let apply = start.elapsed();
        assert_eq!(applied, next);
        (diff.len(), apply)
    };
    let (two_percent, two_percent_apply) = measure(&churn);
    let (epoch_end, epoch_end_apply) = measure(&epoch);
    Diffs {
        two_percent,
        two_percent_apply,
        epoch_end,
        epoch_end_apply,
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "MISSED" }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(files) = args.strip_prefix(&["--hold".to_owned()]) {
        return hold(files);
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: &[u32] = if quick {
        &[1_000, 10_000]
    } else {
        &[1_000, 10_000, 100_000]
    };
    println!(
        "directory scale: {VALIDATORS} validators ({THRESHOLD} needed), one operator per \
         {RELAYS_PER_OPERATOR} relays, chain section with measurements"
    );
    println!(
        "{:>8} {:>9} {:>12} {:>10} {:>10} {:>10} {:>11} {:>12} {:>10}",
        "relays",
        "evidence",
        "bytes",
        "MiB",
        "verify ms",
        "decode ms",
        "held MiB",
        "peak MiB",
        "100M s"
    );
    let mut at_100k = None;
    let mut diffs_at_100k = None;
    for &n in sizes {
        for attested in [false, true] {
            let (operators, descriptors) = network(n, attested);
            let held = envelope(operators.clone(), descriptors.clone(), 1, 41);
            let d = diffs(&held, &operators, &descriptors, attested);
            drop((operators, descriptors));
            let f = measure(vec![held]);
            println!(
                "{:>8} {:>9} {:>12} {:>10.2} {:>10.1} {:>10.1} {:>11.2} {:>12.2} {:>10.2}",
                n,
                if attested { "1 in 4" } else { "none" },
                f.bytes,
                mib(f.bytes),
                f.verify.as_secs_f64() * 1e3,
                f.decode.as_secs_f64() * 1e3,
                mib(f.held),
                mib(f.peak),
                f.bytes as f64 * 8.0 / LINK_BITS_PER_SEC,
            );
            println!(
                "{:>8} {:>9} diff KiB: 2 % churn {:.1} (apply {:.0} ms, 100M {:.3} s), \
                 epoch end {:.1} (apply {:.0} ms, 100M {:.3} s)",
                "",
                "",
                d.two_percent as f64 / 1024.0,
                d.two_percent_apply.as_secs_f64() * 1e3,
                d.two_percent as f64 * 8.0 / LINK_BITS_PER_SEC,
                d.epoch_end as f64 / 1024.0,
                d.epoch_end_apply.as_secs_f64() * 1e3,
                d.epoch_end as f64 * 8.0 / LINK_BITS_PER_SEC,
            );
            println!(
                "{:>8} {:>9} relay list, path plan, body to file {:.1} ms (part of verify); \
                 every relay read back from the file {:.1} ms; \
                 attestation = \"prefer\": first path {:.1} ms, {} relays judged \
                 (accepting judged none; judging every relay with evidence, as before, would \
                 take {:.1} s at {SEV_SNP_JUDGE_MS} ms per SEV-SNP relay)",
                "",
                "",
                f.listing.as_secs_f64() * 1e3,
                f.read_back.as_secs_f64() * 1e3,
                f.first_path.as_secs_f64() * 1e3,
                f.judged,
                if attested {
                    f64::from(n / ATTESTED_EVERY) * SEV_SNP_JUDGE_MS / 1e3
                } else {
                    0.0
                },
            );
            if n == 100_000 && !attested {
                at_100k = Some(f);
                diffs_at_100k = Some(d);
            }
        }
    }
    println!("compressed size: skipped (no compressor in Cargo.lock)");
    println!(
        "fetch: not measured over QUIC; the column '100M s' is the transfer time at 100 Mbit/s"
    );
    if let Some(f) = at_100k {
        println!("targets at 100 000 relays (no evidence):");
        println!(
            "  full download {:.0} KiB <= 100 KiB: {} (a client without a held directory)",
            f.bytes as f64 / 1024.0,
            verdict(f.bytes <= TARGET_DOWNLOAD_BYTES)
        );
        if let Some(d) = &diffs_at_100k {
            for (what, bytes) in [("2 % churn", d.two_percent), ("epoch end", d.epoch_end)] {
                println!(
                    "  refresh download (diff, {what}) {:.1} KiB <= 100 KiB: {}",
                    bytes as f64 / 1024.0,
                    verdict(bytes <= TARGET_DOWNLOAD_BYTES)
                );
            }
        }
        let verification = f.verify.saturating_sub(f.listing);
        println!(
            "  verification (verify_directory) {:.0} ms <= 200 ms: {}",
            verification.as_secs_f64() * 1e3,
            verdict(verification <= TARGET_VERIFY)
        );
        println!(
            "  accepting in all (verification, relay list, path plan, body to file) {:.0} ms \
             <= 200 ms: {}",
            f.verify.as_secs_f64() * 1e3,
            verdict(f.verify <= TARGET_VERIFY)
        );
        println!(
            "  client memory {:.1} MiB <= 50 MiB: {}",
            mib(f.held),
            verdict(f.held <= TARGET_MEMORY_BYTES)
        );
    }
}
