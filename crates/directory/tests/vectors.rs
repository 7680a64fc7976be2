//! Test vectors (`tests/vectors/directory-v6.json`): keys from fixed seeds,
//! the fields of profiles, descriptors and an issuer key set (with the token
//! key of RFC 9578 Appendix A.2), their canonical bytes and signatures, a
//! directory (format 3) and its validator-signed envelope, a vote and a
//! proposal; and (`chain`, issue 13) the descriptors' content hashes, the
//! same directory with a chain section (format 6, with releases), a validator set
//! hand-over signed by the genesis set, and the envelope (version 2) that
//! carries it, signed by the new set.
//!
//! `vectors_match_the_file` rebuilds the file's contents from the fixed inputs
//! and compares them byte for byte, so any change to the encoding or the
//! signing fails here. To change the format deliberately, regenerate:
//!
//! ```sh
//! OPENRELAY_REGENERATE_VECTORS=1 cargo test -p openrelay-directory --test vectors
//! ```
//!
//! and bump the version bytes if old bytes no longer decode the same way.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use openrelay_directory::vote::{IssuerVote, SignedVote, Vote, VoteEntry};
use openrelay_directory::{
    CountryCode, DescriptorFields, Directory, IssuerKey, IssuerKeySet, IssuerTokenKey,
    KeySetFields, Network, OperatorKey, OperatorProfile, ProfileFields, Proposal, QuicKey, Region,
    RelayDescriptor, RelayKey, SignedDescriptor, SignedDirectory, SignedIssuerKeySet,
    SignedOperatorProfile, TOKEN_TYPE_BLIND_RSA, TrustConfig, ValidatorKey, verify_directory_bytes,
};
use openrelay_directory::{
    SignedValidatorSetChange, ValidatorMember, ValidatorSet, ValidatorSetChange,
};
use openrelay_types::RelayRole;
use serde_json::{Value, json};

const ISSUED_AT: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const NOW: u64 = ISSUED_AT + 600;
const MAX_AGE: u64 = 6 * 3600;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/directory-v6.json")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Seed `n` of a vector key: the bytes `n, n+1, ..., n+31`.
fn seed(n: u8) -> [u8; 32] {
    std::array::from_fn(|i| n.wrapping_add(i as u8))
}

/// The issuer public key `pkS` of RFC 9578 Appendix A.2 (its SPKI).
const RFC9578_PK_S: &str = "30820152303d06092a864886f70d01010a3030a00d300b0609608648016503040202a11a301806092a864886f70d010108300b0609608648016503040202a2030201300382010f003082010a0282010100cb1aed6b6a95f5b1ce013a4cfcab25b94b2e64a23034e4250a7eab43c0df3a8c12993af12b111908d4b471bec31d4b6c9ad9cdda90612a2ee903523e6de5a224d6b02f09e5c374d0cfe01d8f529c500a78a2f67908fa682b5a2b430c81eaf1af72d7b5e794fc98a3139276879757ce453b526ef9bf6ceb99979b8423b90f4461a22af37aab0cf5733f7597abe44d31c732db68a181c6cbbe607d8c0e52e0655fd9996dc584eca0be87afbcd78a337d17b1dba9e828bbd81e291317144e7ff89f55619709b096cbb9ea474cead264c2073fe49740c01f00e109106066983d21e5f83f086e2e823c879cd43cef700d2a352a9babd612d03cad02db134b7e225a5f0203010001";

struct Inputs {
    issuer: (IssuerKey, KeySetFields),
    operators: Vec<(OperatorKey, ProfileFields)>,
    relays: Vec<(RelayKey, QuicKey, DescriptorFields, usize)>,
    validators: Vec<ValidatorKey>,
    signed_by: Vec<usize>,
}

fn inputs() -> Inputs {
    let operator_keys = [
        OperatorKey::from_bytes(&seed(0x10)),
        OperatorKey::from_bytes(&seed(0x30)),
    ];
    let relay_keys = [
        RelayKey::from_bytes(&seed(0x50)),
        RelayKey::from_bytes(&seed(0x70)),
    ];
    let quic_keys = [
        QuicKey::from_bytes(&seed(0x90)),
        QuicKey::from_bytes(&seed(0xb0)),
    ];
    let validators: Vec<ValidatorKey> = [0xd0, 0xe0, 0xf0]
        .map(|n| ValidatorKey::from_bytes(&seed(n)))
        .into();
    let operators = vec![
        (
            operator_keys[0].clone(),
            ProfileFields {
                operator: operator_keys[0].id(),
                name: "Example Relays e.V.".into(),
                contact: "mailto:relays@example.org".into(),
                jurisdiction: CountryCode::parse("DE").unwrap(),
                chain_account: Some([0x11; 20]),
                published_at: ISSUED_AT - 86_400,
            },
        ),
        (
            operator_keys[1].clone(),
            ProfileFields {
                operator: operator_keys[1].id(),
                name: "Beispiel Netz AG".into(),
                contact: "https://example.net/contact".into(),
                jurisdiction: CountryCode::parse("CH").unwrap(),
                chain_account: Some([0x22; 20]),
                published_at: ISSUED_AT - 3600,
            },
        ),
    ];
    let relays = vec![
        (
            relay_keys[0].clone(),
            quic_keys[0].clone(),
            DescriptorFields {
                relay: relay_keys[0].id(),
                operator: operator_keys[0].id(),
                role: RelayRole::Ingress,
                endpoints: vec![
                    "203.0.113.5:443".parse().unwrap(),
                    "[2001:db8::5]:443".parse().unwrap(),
                ],
                quic_pin: quic_keys[0].pin(),
                region: Region {
                    country: CountryCode::parse("DE").unwrap(),
                    city: "Frankfurt".into(),
                },
                network: Network::Asn(64_496),
                bandwidth_bps: 10_000_000_000,
                software_version: "openrelay 0.1.0".into(),
                attestation: None,
                not_before: ISSUED_AT - 3600,
                not_after: ISSUED_AT + 86_400,
            },
            0,
        ),
        (
            relay_keys[1].clone(),
            quic_keys[1].clone(),
            DescriptorFields {
                relay: relay_keys[1].id(),
                operator: operator_keys[1].id(),
                role: RelayRole::Egress,
                endpoints: vec!["198.51.100.7:8443".parse().unwrap()],
                quic_pin: quic_keys[1].pin(),
                region: Region {
                    country: CountryCode::parse("CH").unwrap(),
                    city: "Zürich".into(),
                },
                network: Network::Label("Example Hosting".into()),
                bandwidth_bps: 2_500_000_000,
                software_version: "openrelay 0.1.0".into(),
                attestation: Some(
                    openrelay_directory::AttestationEvidence::new((0..=63).collect()).unwrap(),
                ),
                not_before: ISSUED_AT - 600,
                not_after: ISSUED_AT + 2 * 86_400,
            },
            1,
        ),
    ];
    let issuer = IssuerKey::from_bytes(&seed(0xc0));
    let issuer_fields = KeySetFields {
        issuer: issuer.id(),
        issuer_name: "issuer.example:4450".into(),
        published_at: ISSUED_AT - 120,
        keys: vec![IssuerTokenKey {
            token_type: TOKEN_TYPE_BLIND_RSA,
            key: unhex(RFC9578_PK_S),
            not_before: ISSUED_AT - 86_400,
            expires: ISSUED_AT + 13 * 86_400,
        }],
    };
    Inputs {
        issuer: (issuer, issuer_fields),
        operators,
        relays,
        validators,
        signed_by: vec![0, 2],
    }
}

fn trust(inputs: &Inputs) -> TrustConfig {
    TrustConfig::new(inputs.validators.iter().map(|v| v.id()), 2, MAX_AGE).unwrap()
}

fn network_json(network: &Network) -> Value {
    match network {
        Network::Asn(asn) => json!({ "asn": asn }),
        Network::Label(label) => json!({ "label": label }),
    }
}

/// The file's contents, from the fixed inputs.
fn generate() -> String {
    let inputs = inputs();
    let mut keys = Vec::new();
    let mut profiles = Vec::new();
    let mut signed_profiles = Vec::new();
    for (i, (key, fields)) in inputs.operators.iter().enumerate() {
        keys.push(json!({
            "name": format!("operator {i}"),
            "seed": hex(&key.to_bytes()),
            "public": hex(key.id().as_bytes()),
            "id": key.id().to_string(),
        }));
        let signed = key
            .sign_profile(OperatorProfile::new(fields.clone()).unwrap())
            .unwrap();
        let bytes = signed.to_bytes();
        let body = signed.profile().to_bytes();
        profiles.push(json!({
            "operator": fields.operator.to_string(),
            "name": fields.name,
            "contact": fields.contact,
            "jurisdiction": fields.jurisdiction.as_str(),
            "published_at": fields.published_at,
            "body": hex(&body),
            "signature": hex(signed.signature().as_bytes()),
            "signed": hex(&bytes),
        }));
        signed_profiles.push(signed);
    }
    let mut descriptors = Vec::new();
    let mut signed_descriptors = Vec::new();
    for (i, (key, quic, fields, operator)) in inputs.relays.iter().enumerate() {
        keys.push(json!({
            "name": format!("relay {i}"),
            "seed": hex(&key.to_bytes()),
            "public": hex(key.id().as_bytes()),
            "id": key.id().to_string(),
        }));
        keys.push(json!({
            "name": format!("relay {i} QUIC key"),
            "seed": hex(&seed(if i == 0 { 0x90 } else { 0xb0 })),
            "public": hex(quic.pin().as_bytes()),
            "id": quic.pin().to_string(),
        }));
        let descriptor = RelayDescriptor::new(fields.clone()).unwrap();
        let quic_signature = quic.sign_descriptor(&descriptor);
        let signed = SignedDescriptor::sign(
            descriptor,
            key,
            &inputs.operators[*operator].0,
            quic_signature,
        )
        .unwrap();
        let f = signed.descriptor().fields();
        descriptors.push(json!({
            "relay": f.relay.to_string(),
            "operator": f.operator.to_string(),
            "role": f.role.to_string(),
            "endpoints": f.endpoints.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            "quic_pin": f.quic_pin.to_string(),
            "country": f.region.country.as_str(),
            "city": f.region.city,
            "network": network_json(&f.network),
            "bandwidth_bps": f.bandwidth_bps,
            "software_version": f.software_version,
            "attestation": f.attestation.as_ref().map(|e| hex(e.as_bytes())),
            "not_before": f.not_before,
            "not_after": f.not_after,
            "body": hex(signed.body()),
            "relay_signature": hex(signed.relay_signature().as_bytes()),
            "operator_signature": hex(signed.operator_signature().as_bytes()),
            "quic_signature": hex(signed.quic_signature().as_bytes()),
            "signed": hex(&signed.to_bytes()),
        }));
        signed_descriptors.push(signed);
    }
    for (i, key) in inputs.validators.iter().enumerate() {
        keys.push(json!({
            "name": format!("validator {i}"),
            "seed": hex(&key.to_bytes()),
            "public": hex(key.id().as_bytes()),
            "id": key.id().to_string(),
        }));
    }
    let (issuer, issuer_fields) = &inputs.issuer;
    keys.push(json!({
        "name": "issuer",
        "seed": hex(&issuer.to_bytes()),
        "public": hex(issuer.id().as_bytes()),
        "id": issuer.id().to_string(),
    }));
    let key_set = issuer
        .sign_key_set(IssuerKeySet::new(issuer_fields.clone()).unwrap())
        .unwrap();
    let directory = Directory::new(
        42,
        ISSUED_AT,
        ISSUED_AT + 3 * 3600,
        signed_profiles,
        signed_descriptors,
    )
    .unwrap()
    .with_issuer_keys(vec![key_set.clone()])
    .unwrap();
    let mut signed = SignedDirectory::new(&directory);
    for &v in &inputs.signed_by {
        signed.sign(&inputs.validators[v]);
    }
    let trust = trust(&inputs);
    let vote = inputs.validators[0]
        .sign_vote(
            Vote::new(
                inputs.validators[0].id(),
                ISSUED_AT - 30,
                inputs
                    .relays
                    .iter()
                    .map(|(key, _, fields, _)| VoteEntry {
                        relay: key.id(),
                        not_before: fields.not_before,
                    })
                    .collect(),
            )
            .unwrap()
            .with_issuers(vec![IssuerVote {
                issuer: issuer.id(),
                digest: key_set.digest(),
            }])
            .unwrap(),
        )
        .unwrap();
    let proposal = Proposal {
        directory: directory.to_bytes().into(),
        votes: vec![vote.clone()],
    };
    let chain = chain_vectors(&inputs, &directory);
    let doc = json!({
        "about": "openrelay directory format v3 and v5 test vectors (docs/directory-format.md). \
                  Generated by crates/directory/tests/vectors.rs; do not edit by hand.",
        "chain": chain,
        "keys": keys,
        "operator_profiles": profiles,
        "descriptors": descriptors,
        "issuer_key_set": {
            "issuer": issuer_fields.issuer.to_string(),
            "issuer_name": issuer_fields.issuer_name,
            "published_at": issuer_fields.published_at,
            "keys": issuer_fields.keys.iter().map(|k| json!({
                "token_type": k.token_type,
                "token_key": hex(&k.key),
                "not_before": k.not_before,
                "expires": k.expires,
            })).collect::<Vec<_>>(),
            "body": hex(&key_set.key_set().to_bytes()),
            "sha256": key_set.digest().to_string(),
            "signature": hex(key_set.signature().as_bytes()),
            "signed": hex(&key_set.to_bytes()),
        },
        "directory": {
            "sequence": directory.sequence(),
            "issued_at": directory.issued_at(),
            "valid_until": directory.valid_until(),
            "body": hex(&directory.to_bytes()),
            "sha256": directory.digest().to_string(),
        },
        "signed_directory": {
            "signed_by": inputs.signed_by.iter().map(|&v| inputs.validators[v].id().to_string()).collect::<Vec<_>>(),
            "validator_signatures": signed.signatures.iter().map(|s| hex(s.signature.as_bytes())).collect::<Vec<_>>(),
            "bytes": hex(&signed.to_bytes()),
        },
        "vote": {
            "validator": vote.vote().validator().to_string(),
            "voted_at": vote.vote().voted_at(),
            "relays": vote.vote().entries().iter().map(|e| json!({
                "relay": e.relay.to_string(),
                "not_before": e.not_before,
            })).collect::<Vec<_>>(),
            "issuers": vote.vote().issuers().iter().map(|e| json!({
                "issuer": e.issuer.to_string(),
                "key_set": e.digest.to_string(),
            })).collect::<Vec<_>>(),
            "signature": hex(vote.signature().as_bytes()),
            "signed": hex(&vote.to_bytes()),
        },
        "proposal": {
            "bytes": hex(&proposal.to_bytes()),
        },
        "verification": {
            "trusted_validators": trust.validators().iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            "threshold": trust.threshold(),
            "max_age_secs": trust.max_age_secs(),
            "now": NOW,
            "result": "valid",
        },
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap();
    text.push('\n');
    text
}

/// The validator set of epoch 1 in the vectors: validators 1 and 2, weights
/// 2 and 1 ether (so validator 1 alone holds exactly two thirds: not
/// enough).
fn epoch_one(inputs: &Inputs) -> ValidatorSet {
    ValidatorSet::new(
        1,
        vec![
            ValidatorMember {
                validator: inputs.validators[1].id(),
                weight: 2_000_000_000_000_000_000,
            },
            ValidatorMember {
                validator: inputs.validators[2].id(),
                weight: 1_000_000_000_000_000_000,
            },
        ],
    )
    .unwrap()
}

/// The `chain` part of the vectors (issue 13).
fn chain_vectors(inputs: &Inputs, directory: &Directory) -> Value {
    // Both measurement tags: the first relay never measured, the others
    // measured (the fixture measures every relay at its claim).
    let mut section = openrelay_testkit::fixtures::chain_section(directory, 1000, 1);
    section.relays[0].measured = None;
    // Both release statuses (issue 15).
    section.releases = vec![
        openrelay_directory::ChainRelease {
            release_id: [0xa1; 32],
            binary_sha256: [0xb1; 32],
            status: openrelay_directory::ReleaseStatus::Approved,
            measurements: vec![
                openrelay_directory::ReleaseMeasurement {
                    platform: 1,
                    value: [0xc1; 48],
                },
                openrelay_directory::ReleaseMeasurement {
                    platform: 0x7f,
                    value: [0xc2; 48],
                },
            ],
        },
        openrelay_directory::ChainRelease {
            release_id: [0xa2; 32],
            binary_sha256: [0xb2; 32],
            status: openrelay_directory::ReleaseStatus::Revoked,
            measurements: vec![openrelay_directory::ReleaseMeasurement {
                platform: 0x7f,
                value: [0xc3; 48],
            }],
        },
    ];
    let chain_directory = directory.clone().with_chain(section).unwrap();
    let set = epoch_one(inputs);
    let change =
        ValidatorSetChange::new(openrelay_testkit::fixtures::chain_anchor(990), set.clone())
            .unwrap();
    let mut handover = SignedValidatorSetChange::new(change.clone());
    // The genesis set of the verification below is 2 of the 3 validators
    // with equal weights: a hand-over needs more than two thirds, all 3.
    for key in &inputs.validators {
        handover.sign(key);
    }
    let mut envelope = SignedDirectory::new(&chain_directory)
        .with_handovers(vec![handover.clone()])
        .unwrap();
    envelope.sign(&inputs.validators[1]);
    envelope.sign(&inputs.validators[2]);
    let section = chain_directory.chain().unwrap();
    json!({
        "content_hashes": directory.descriptors().iter().map(|d| json!({
            "relay": d.descriptor().relay().to_string(),
            "content_hash": hex(&d.descriptor().content_hash()),
        })).collect::<Vec<_>>(),
        "directory": {
            "anchor": {
                "chain_id": section.anchor.chain_id,
                "contract": hex(&section.anchor.contract),
                "block_number": section.anchor.block_number,
                "block_hash": hex(&section.anchor.block_hash),
            },
            "validator_epoch": section.validator_epoch,
            "operators": section.operators.iter().map(|o| json!({
                "operator": o.operator.to_string(),
                "account": hex(&o.account),
                "stake_wei": o.stake_wei.to_string(),
                "covered_mbps": o.covered_mbps,
            })).collect::<Vec<_>>(),
            "relays": section.relays.iter().map(|r| json!({
                "relay": r.relay.to_string(),
                "bandwidth_mbps": r.bandwidth_mbps,
                "measured": r.measured.map(|m| json!({
                    "measured_bps": m.measured_bps,
                    "measured_epoch": m.measured_epoch,
                    "measured_at": m.measured_at,
                })),
            })).collect::<Vec<_>>(),
            "releases": section.releases.iter().map(|r| json!({
                "release_id": hex(&r.release_id),
                "binary_sha256": hex(&r.binary_sha256),
                "status": format!("{:?}", r.status),
                "measurements": r.measurements.iter().map(|m| json!({
                    "platform": m.platform,
                    "value": hex(&m.value),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "body": hex(&chain_directory.to_bytes()),
            "sha256": chain_directory.digest().to_string(),
        },
        "handover": {
            "epoch": change.epoch(),
            "members": set.members().iter().map(|m| json!({
                "validator": m.validator.to_string(),
                "weight": m.weight.to_string(),
            })).collect::<Vec<_>>(),
            "body": hex(&change.to_bytes()),
            "signed": hex(&handover.to_bytes()),
        },
        "signed_directory": {
            "signed_by": [inputs.validators[1].id().to_string(), inputs.validators[2].id().to_string()],
            "bytes": hex(&envelope.to_bytes()),
        },
        "verification": "with the trust of `verification` (the genesis set, 2 of 3 equal weights) at its `now`: valid, signed by validator set 1",
    })
}

/// The first place where two JSON values differ, as a path.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(u), Some(v)) => first_difference(u, v, &format!("{path}.{k}")),
                _ => Some(format!("{path}.{k}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(path.to_owned()),
    }
}

#[test]
fn vectors_match_the_file() {
    let generated = generate();
    if std::env::var_os("OPENRELAY_REGENERATE_VECTORS").is_some() {
        std::fs::write(path(), &generated).unwrap();
        return;
    }
    // Compared as JSON values (key order aside, every value and every hex
    // string of canonical bytes must be identical).
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    let generated: Value = serde_json::from_str(&generated).unwrap();
    if let Some(at) = first_difference(&stored, &generated, "") {
        panic!(
            "the encoding or signing changed: `{at}` in {} differs from what the code \
             produces (if the change is deliberate, regenerate with \
             OPENRELAY_REGENERATE_VECTORS=1 and bump the format version where old bytes \
             would now decode differently)",
            path().display()
        );
    }
}

/// The stored bytes, read back with only the public decoding API, verify.
#[test]
fn stored_vectors_decode_and_verify() {
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    for p in stored["operator_profiles"].as_array().unwrap() {
        let signed =
            SignedOperatorProfile::from_bytes(&unhex(p["signed"].as_str().unwrap())).unwrap();
        signed.verify().unwrap();
        assert_eq!(signed.profile().name(), p["name"].as_str().unwrap());
        assert_eq!(
            hex(&signed.profile().to_bytes()),
            p["body"].as_str().unwrap()
        );
    }
    for d in stored["descriptors"].as_array().unwrap() {
        let signed = SignedDescriptor::from_bytes(&unhex(d["signed"].as_str().unwrap())).unwrap();
        signed.verify(NOW).unwrap();
        assert_eq!(hex(signed.body()), d["body"].as_str().unwrap());
        assert_eq!(
            signed.descriptor().relay().to_string(),
            d["relay"].as_str().unwrap()
        );
    }
    let v = &stored["verification"];
    let trust = TrustConfig::new(
        v["trusted_validators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_str().unwrap().parse().unwrap()),
        v["threshold"].as_u64().unwrap() as usize,
        v["max_age_secs"].as_u64().unwrap(),
    )
    .unwrap();
    let bytes = unhex(stored["signed_directory"]["bytes"].as_str().unwrap());
    let verified =
        verify_directory_bytes(&bytes, &trust, v["now"].as_u64().unwrap(), None).unwrap();
    assert_eq!(
        verified.digest().to_string(),
        stored["directory"]["sha256"].as_str().unwrap()
    );
    assert_eq!(verified.relays().count(), 2);
    let key_set = SignedIssuerKeySet::from_bytes(&unhex(
        stored["issuer_key_set"]["signed"].as_str().unwrap(),
    ))
    .unwrap();
    key_set.verify().unwrap();
    let issuer = key_set.key_set().issuer();
    assert_eq!(
        verified.issuer_keys(&issuer).unwrap().keys()[0].key,
        unhex(RFC9578_PK_S)
    );
    assert_eq!(
        key_set.digest().to_string(),
        stored["issuer_key_set"]["sha256"].as_str().unwrap()
    );
    let vote = SignedVote::from_bytes(&unhex(stored["vote"]["signed"].as_str().unwrap())).unwrap();
    vote.verify().unwrap();
    assert_eq!(vote.vote().entries().len(), 2);
    assert_eq!(vote.vote().issuer(&issuer), Some(key_set.digest()));
    // Issue 13: the chain directory follows the hand-over from the genesis
    // set and is signed by the set of epoch 1.
    let chain = &stored["chain"];
    let bytes = unhex(chain["signed_directory"]["bytes"].as_str().unwrap());
    let verified =
        verify_directory_bytes(&bytes, &trust, v["now"].as_u64().unwrap(), None).unwrap();
    assert_eq!(verified.validator_set().epoch(), 1);
    assert_eq!(
        verified.digest().to_string(),
        chain["directory"]["sha256"].as_str().unwrap()
    );
    for (relay, hash) in verified
        .relays()
        .zip(chain["content_hashes"].as_array().unwrap())
    {
        assert_eq!(
            hex(&relay.descriptor().content_hash()),
            hash["content_hash"].as_str().unwrap()
        );
    }
    let proposal =
        Proposal::from_bytes(&unhex(stored["proposal"]["bytes"].as_str().unwrap())).unwrap();
    assert_eq!(proposal.votes, vec![vote]);
    assert_eq!(
        hex(&proposal.directory),
        stored["directory"]["body"].as_str().unwrap()
    );
}
