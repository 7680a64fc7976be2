//! Deterministic directory fixtures (no I/O, no clock): keys from fixed
//! seeds, a small network of operators and relays, directories signed by
//! chosen validators, issuers' token key sets. Everything is dated from
//! [`T0`]; [`crate::registry`] dates the same keys and fields from now for
//! tests against a running registry.

use std::net::SocketAddr;

use openrelay_directory::{
    ChainAnchor, ChainOperator, ChainRelay, ChainSection, CountryCode, DescriptorFields, Directory,
    Network, OperatorKey, OperatorProfile, ProfileFields, QuicKey, Region, RelayDescriptor,
    RelayKey, RelayMeasurement, SignedDescriptor, SignedDirectory, SignedOperatorProfile,
    TrustConfig, ValidatorKey,
};

use openrelay_types::{KeyPin, RelayRole};

/// The fixtures' reference time (Unix seconds): directories are issued then.
pub const T0: u64 = 1_750_000_000;
/// When verification runs in the fixtures: a minute after issue.
pub const NOW: u64 = T0 + 60;
/// Directory validity in the fixtures.
pub const DIRECTORY_LIFETIME: u64 = 3 * 3600;
/// Maximum age the fixtures' trust config accepts.
pub const MAX_AGE: u64 = 6 * 3600;

/// A 32-byte seed: `tag` repeated, then `index`.
pub fn seed(tag: u8, index: u8) -> [u8; 32] {
    let mut s = [tag; 32];
    s[31] = index;
    s
}

/// Operator `i`'s key.
pub fn operator_key(i: u8) -> OperatorKey {
    OperatorKey::from_bytes(&seed(0x0a, i))
}

/// Relay `i`'s identity key.
pub fn relay_key(i: u8) -> RelayKey {
    RelayKey::from_bytes(&seed(0x0b, i))
}

/// Validator `i`'s key.
pub fn validator_key(i: u8) -> ValidatorKey {
    ValidatorKey::from_bytes(&seed(0x0c, i))
}

/// The QUIC/TLS key of relay `i` (any Ed25519 key; the transport makes its own).
pub fn quic_key(i: u8) -> QuicKey {
    QuicKey::from_bytes(&seed(0x0d, i))
}

/// The pin of [`quic_key`]`(i)`.
pub fn quic_pin(i: u8) -> KeyPin {
    quic_key(i).pin()
}

/// The EVM account operator `i`'s profile names (made up: fixtures are
/// signed data, not a chain).
pub fn chain_account(i: u8) -> [u8; 20] {
    [0x40 ^ i; 20]
}

/// Operator `i`'s profile fields (published a day before [`T0`]), naming
/// [`chain_account`]`(i)`.
pub fn profile_fields(i: u8) -> ProfileFields {
    ProfileFields {
        operator: operator_key(i).id(),
        name: format!("Operator {i}"),
        contact: format!("mailto:ops{i}@example.org"),
        jurisdiction: CountryCode::parse(["DE", "NL", "CH", "IS"][usize::from(i % 4)]).unwrap(),
        chain_account: Some(chain_account(i)),
        published_at: T0 - 86_400,
    }
}

/// Operator `i`'s signed profile.
pub fn profile(i: u8) -> SignedOperatorProfile {
    profile_naming(i, chain_account(i))
}

/// Operator `i`'s signed profile naming `account` as its chain account.
pub fn profile_naming(i: u8, account: [u8; 20]) -> SignedOperatorProfile {
    let fields = ProfileFields {
        chain_account: Some(account),
        ..profile_fields(i)
    };
    operator_key(i)
        .sign_profile(OperatorProfile::new(fields).unwrap())
        .unwrap()
}

/// Relay `relay`'s fields (endpoint `127.0.0.1:<4000 + relay>`), valid from
/// an hour before [`T0`] for a day.
pub fn descriptor_fields(relay: u8, operator: u8, role: RelayRole) -> DescriptorFields {
    let endpoint: SocketAddr = format!("127.0.0.1:{}", 4000 + u16::from(relay))
        .parse()
        .unwrap();
    DescriptorFields {
        relay: relay_key(relay).id(),
        operator: operator_key(operator).id(),
        role,
        endpoints: vec![endpoint],
        quic_pin: quic_pin(relay),
        region: Region {
            country: CountryCode::parse(["DE", "NL", "FR"][usize::from(relay % 3)]).unwrap(),
            city: ["Frankfurt", "Amsterdam", "Paris"][usize::from(relay % 3)].to_owned(),
        },
        network: Network::Asn(64_500 + u32::from(relay)),
        bandwidth_bps: 1_000_000_000,
        software_version: "openrelay 0.1.0".to_owned(),
        attestation: None,
        not_before: T0 - 3600,
        not_after: T0 + 86_400,
    }
}

/// Signs with relay `relay`'s key, operator `operator`'s key and the QUIC key
/// the fields pin (one of the fixtures' [`quic_key`]s).
pub fn sign(fields: DescriptorFields, relay: u8, operator: u8) -> SignedDescriptor {
    let quic = (0..=u8::MAX)
        .map(quic_key)
        .find(|k| k.pin() == fields.quic_pin)
        .expect("the fields pin one of the fixtures' QUIC keys");
    let descriptor = RelayDescriptor::new(fields).unwrap();
    let quic_signature = quic.sign_descriptor(&descriptor);
    SignedDescriptor::sign(
        descriptor,
        &relay_key(relay),
        &operator_key(operator),
        quic_signature,
    )
    .unwrap()
}

/// [`descriptor_fields`] signed (see [`sign`]).
pub fn descriptor(relay: u8, operator: u8, role: RelayRole) -> SignedDescriptor {
    sign(descriptor_fields(relay, operator, role), relay, operator)
}

/// Three operators; relays 0 (ingress, op 0), 1 (egress, op 1), 2 (ingress,
/// op 2), 3 (egress, op 2).
pub fn network() -> (Vec<SignedOperatorProfile>, Vec<SignedDescriptor>) {
    (
        vec![profile(0), profile(1), profile(2)],
        vec![
            descriptor(0, 0, RelayRole::Ingress),
            descriptor(1, 1, RelayRole::Egress),
            descriptor(2, 2, RelayRole::Ingress),
            descriptor(3, 2, RelayRole::Egress),
        ],
    )
}

/// A directory of `operators` and `descriptors` issued at [`T0`].
pub fn directory_with(
    sequence: u64,
    operators: Vec<SignedOperatorProfile>,
    descriptors: Vec<SignedDescriptor>,
) -> Directory {
    Directory::new(
        sequence,
        T0,
        T0 + DIRECTORY_LIFETIME,
        operators,
        descriptors,
    )
    .unwrap()
}

/// The [`network`]'s directory issued at [`T0`].
pub fn directory(sequence: u64) -> Directory {
    let (operators, descriptors) = network();
    directory_with(sequence, operators, descriptors)
}

/// The fixtures' chain: chain id 31337 (anvil's), a fixed contract address.
pub fn chain_anchor(block_number: u64) -> ChainAnchor {
    ChainAnchor {
        chain_id: 31_337,
        contract: [0x5f; 20],
        block_number,
        block_hash: [block_number as u8; 32],
    }
}

/// A chain section for `directory` at `block_number`, signed by validator
/// set `validator_epoch`, as an honest registry makes it: every relay
/// registered on chain with its advertised bandwidth (in Mbit/s, rounded
/// up) and measured at it (epoch 1, ended when the directory was issued),
/// every operator's stake covering exactly its listed relays (at 10¹⁵ wei
/// per Mbit/s), its account the operator's seed byte repeated.
pub fn chain_section(
    directory: &Directory,
    block_number: u64,
    validator_epoch: u64,
) -> ChainSection {
    let relays: Vec<ChainRelay> = directory
        .descriptors()
        .iter()
        .map(|d| ChainRelay {
            relay: d.descriptor().relay(),
            bandwidth_mbps: u32::try_from(d.descriptor().bandwidth_bps().div_ceil(1_000_000))
                .unwrap(),
            // Measured at its claim when the directory was issued, so that
            // stake alone decides weights in tests about stake; tests about
            // measurement set their own.
            measured: Some(RelayMeasurement {
                measured_bps: d.descriptor().bandwidth_bps(),
                measured_epoch: 1,
                measured_at: directory.issued_at(),
            }),
        })
        .collect();
    let operators = directory
        .operators()
        .iter()
        .map(|p| {
            let id = p.profile().operator();
            let covered_mbps: u64 = directory
                .descriptors()
                .iter()
                .zip(&relays)
                .filter(|(d, _)| d.descriptor().operator() == id)
                .map(|(_, r)| u64::from(r.bandwidth_mbps))
                .sum();
            ChainOperator {
                operator: id,
                account: p.profile().chain_account().unwrap_or_default(),
                stake_wei: u128::from(covered_mbps) * 1_000_000_000_000_000,
                covered_mbps,
            }
        })
        .collect();
    ChainSection {
        anchor: chain_anchor(block_number),
        validator_epoch,
        operators,
        relays,
        releases: Vec::new(),
    }
}

/// `directory` with [`chain_section`] (a format 6 directory).
pub fn with_chain(directory: Directory, block_number: u64, validator_epoch: u64) -> Directory {
    let section = chain_section(&directory, block_number, validator_epoch);
    directory.with_chain(section).unwrap()
}

/// `directory` signed by the validators with the given indices.
pub fn signed(directory: &Directory, validators: &[u8]) -> SignedDirectory {
    let mut signed = SignedDirectory::new(directory);
    for &v in validators {
        signed.sign(&validator_key(v));
    }
    signed
}

/// Trusts validators `0..n`, `k` of them needed.
pub fn trust(k: usize, n: u8) -> TrustConfig {
    TrustConfig::new((0..n).map(|v| validator_key(v).id()), k, MAX_AGE).unwrap()
}

/// Issuer `i`'s identity key.
pub fn issuer_key(i: u8) -> openrelay_directory::IssuerKey {
    openrelay_directory::IssuerKey::from_bytes(&seed(0x0e, i))
}

/// A stand-in token key (only its size is the directory's business): 342
/// bytes, like an RFC 9578 SPKI, made from `n`, whose `token_key_id`s end
/// in distinct bytes for distinct `n` in the fixtures' range.
pub fn token_key_bytes(n: u8) -> Vec<u8> {
    token_key_bytes_of_len(n, 342)
}

/// [`token_key_bytes`] of `len` bytes.
pub fn token_key_bytes_of_len(n: u8, len: usize) -> Vec<u8> {
    (0u16..)
        .map(|salt| {
            let mut bytes = vec![n; len];
            bytes[..2].copy_from_slice(&salt.to_be_bytes());
            bytes
        })
        .find(|bytes| {
            use sha2::Digest as _;
            let id: [u8; 32] = sha2::Sha256::digest(bytes).into();
            id[31] == n
        })
        .unwrap()
}

/// Key `n` of an issuer rotating every `period` seconds: signs from
/// `T0 + n * period` for one period, accepted for two.
pub fn token_key(n: u8, period: u64) -> openrelay_directory::IssuerTokenKey {
    let not_before = T0 - period + u64::from(n) * period;
    openrelay_directory::IssuerTokenKey {
        token_type: openrelay_directory::TOKEN_TYPE_BLIND_RSA,
        key: token_key_bytes(n),
        not_before,
        expires: not_before + 2 * period,
    }
}

/// Issuer `i`'s key set of the keys `keys` (a day's period), published at
/// `T0 - 60`, signed.
pub fn key_set(i: u8, keys: &[u8]) -> openrelay_directory::SignedIssuerKeySet {
    key_set_at(i, keys, T0 - 60)
}

/// [`key_set`] published at `published_at`.
pub fn key_set_at(
    i: u8,
    keys: &[u8],
    published_at: u64,
) -> openrelay_directory::SignedIssuerKeySet {
    let set = openrelay_directory::IssuerKeySet::new(openrelay_directory::KeySetFields {
        issuer: issuer_key(i).id(),
        issuer_name: format!("issuer{i}.example:4450"),
        published_at,
        keys: keys.iter().map(|&n| token_key(n, 86_400)).collect(),
    })
    .unwrap();
    issuer_key(i).sign_key_set(set).unwrap()
}
