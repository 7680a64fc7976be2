use proptest::prelude::*;

use super::*;
use crate::inputs::Toolchain;

fn inputs() -> Inputs {
    Inputs {
        files: BTreeMap::from([
            ("Cargo.lock".to_owned(), [1; 32]),
            ("src/main.rs".to_owned(), [2; 32]),
        ]),
        toolchain: Toolchain {
            channel: "1.95.0".to_owned(),
            rustc_version_verbose: "rustc 1.95.0\nhost: x86_64-unknown-linux-gnu\n".to_owned(),
        },
    }
}

/// Built once: hashing this test executable's sections takes a while.
fn manifest() -> Manifest {
    static MANIFEST: std::sync::OnceLock<Manifest> = std::sync::OnceLock::new();
    MANIFEST.get_or_init(build_manifest).clone()
}

fn build_manifest() -> Manifest {
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    Manifest::for_reproducible_build(
        &ExternalParameters {
            package: "p".to_owned(),
            binary: "b".to_owned(),
            profile: "release".to_owned(),
            target: "x86_64-unknown-linux-gnu".to_owned(),
        },
        &InternalParameters {
            source_date_epoch: 1_700_000_000,
            remapped_prefixes: vec!["/source".to_owned()],
            toolchain_channel: "1.95.0".to_owned(),
            rustc_version_verbose: "rustc 1.95.0".to_owned(),
        },
        &inputs(),
        &exe,
    )
    .unwrap()
}

#[test]
fn a_manifest_round_trips_and_keeps_its_release_id() {
    let m = manifest();
    let parsed = Manifest::parse(&m.to_json()).unwrap();
    assert_eq!(parsed, m);
    assert_eq!(parsed.release_id(), m.release_id());
    assert!(parsed.is_reproducible_build());
    assert_eq!(parsed.input_files().len(), 2);
    assert!(parsed.input_files().contains_key("file:Cargo.lock"));
    assert!(parsed.sections().iter().any(|s| s.name == ".text"));
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert_eq!(
        parsed.insecure_simulated_measurement().unwrap(),
        insecure_simulated_measurement(&exe)
    );
    assert_eq!(parsed.subject().1, <[u8; 32]>::from(Sha256::digest(&exe)));
}

#[test]
fn the_statement_is_in_toto_with_slsa_provenance() {
    let m = manifest();
    let envelope: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let payload = dsse::decode_base64(envelope["payload"].as_str().unwrap()).unwrap();
    let statement: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    let definition = &statement["predicate"]["buildDefinition"];
    assert_eq!(definition["externalParameters"]["package"], "p");
    assert_eq!(
        definition["internalParameters"]["sourceDateEpoch"],
        1_700_000_000
    );
    assert_eq!(
        definition["resolvedDependencies"][0]["uri"],
        "file:Cargo.lock"
    );
    assert_eq!(definition["resolvedDependencies"][2]["name"], "toolchain");
    assert_eq!(
        statement["predicate"]["runDetails"]["byproducts"][0]["name"],
        "measurement/insecure-simulated"
    );
    assert!(
        statement["predicate"]["runDetails"]
            .get("metadata")
            .is_none()
    );
}

#[test]
fn signatures_are_checked_against_trusted_keys_only() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let other = SigningKey::from_bytes(&[2; 32]);
    let mut m = manifest();
    assert_eq!(
        m.check_signatures(&[key.verifying_key()]),
        SignatureCheck::Checked {
            present: 0,
            signed_by: vec![]
        }
    );
    m.sign(&key);
    m.sign(&key);
    m.sign(&other);
    let m = Manifest::parse(&m.to_json()).unwrap();
    assert_eq!(m.envelope().signatures.len(), 2);
    assert_eq!(
        m.check_signatures(&[key.verifying_key()]),
        SignatureCheck::Checked {
            present: 2,
            signed_by: vec![dsse::key_id(&key.verifying_key())]
        }
    );
    assert_eq!(
        m.check_signatures(&[]),
        SignatureCheck::NotChecked { present: 2 }
    );
    // Signing does not change what is voted on.
    assert_eq!(m.release_id(), manifest().release_id());
}

#[test]
fn a_flipped_byte_in_a_signature_or_payload_fails() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let mut m = manifest();
    m.sign(&key);
    let mut envelope = m.envelope().clone();
    let mut sig = dsse::decode_base64(&envelope.signatures[0].sig).unwrap();
    sig[10] ^= 1;
    envelope.signatures[0].sig = dsse::encode_base64(&sig);
    let flipped = Manifest::parse(&serde_json::to_vec(&envelope).unwrap()).unwrap();
    assert_eq!(
        flipped.check_signatures(&[key.verifying_key()]),
        SignatureCheck::Checked {
            present: 1,
            signed_by: vec![]
        }
    );
    // Another payload under the same signature.
    let mut envelope = m.envelope().clone();
    let mut statement = m.statement().clone();
    statement.subject[0].name = Some("other".to_owned());
    envelope.payload = dsse::encode_base64(&serde_json::to_vec(&statement).unwrap());
    let swapped = Manifest::parse(&serde_json::to_vec(&envelope).unwrap()).unwrap();
    assert!(matches!(
        swapped.check_signatures(&[key.verifying_key()]),
        SignatureCheck::Checked { signed_by, .. } if signed_by.is_empty()
    ));
}

#[test]
fn malformed_manifests_are_refused_with_a_reason() {
    let m = manifest();
    let too_big = vec![b' '; MAX_MANIFEST_BYTES + 1];
    assert!(matches!(
        Manifest::parse(&too_big),
        Err(ManifestError::TooLarge { .. })
    ));
    let mut envelope = m.envelope().clone();
    envelope.payload_type = "application/json".to_owned();
    assert!(matches!(
        Manifest::parse(&serde_json::to_vec(&envelope).unwrap()),
        Err(ManifestError::Unexpected {
            field: "payloadType",
            ..
        })
    ));
    let with = |edit: &dyn Fn(&mut Statement)| {
        let mut statement = m.statement().clone();
        edit(&mut statement);
        let mut envelope = m.envelope().clone();
        envelope.payload = dsse::encode_base64(&serde_json::to_vec(&statement).unwrap());
        Manifest::parse(&serde_json::to_vec(&envelope).unwrap())
    };
    assert!(matches!(
        with(&|s| s.subject.clear()),
        Err(ManifestError::Subject)
    ));
    assert!(matches!(
        with(&|s| {
            s.subject[0]
                .digest
                .insert("sha256".to_owned(), "AB".repeat(32));
        }),
        Err(ManifestError::Digest { .. })
    ));
    assert!(matches!(
        with(&|s| s.predicate.build_definition.build_type = "x".to_owned()),
        Err(ManifestError::Unexpected {
            field: "buildType",
            ..
        })
    ));
    assert!(matches!(
        with(&|s| {
            let first = s.predicate.build_definition.resolved_dependencies[0].clone();
            s.predicate
                .build_definition
                .resolved_dependencies
                .push(first);
        }),
        Err(ManifestError::DuplicateInput(_))
    ));
    assert!(matches!(
        with(&|s| s.predicate.build_definition.internal_parameters = serde_json::json!({})),
        Err(ManifestError::Json(_))
    ));
}

#[test]
fn the_devnet_manifest_says_it_is_unreproduced() {
    let exe = std::env::current_exe().unwrap();
    let m = Manifest::for_unreproduced_binary_insecure_devnet(&exe).unwrap();
    let m = Manifest::parse(&m.to_json()).unwrap();
    assert!(!m.is_reproducible_build());
    assert!(m.build_parameters().is_none());
    assert_eq!(
        m.statement().predicate.build_definition.build_type,
        BUILD_TYPE_UNREPRODUCED_INSECURE_DEVNET
    );
    assert_eq!(
        m.insecure_simulated_measurement().unwrap(),
        insecure_simulated_measurement(&std::fs::read(&exe).unwrap())
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Manifest::parse(&bytes);
    }

    #[test]
    fn a_mutated_manifest_parses_or_is_refused(
        positions in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        sign in any::<bool>(),
    ) {
        let mut m = manifest();
        if sign {
            m.sign(&SigningKey::from_bytes(&[3; 32]));
        }
        let mut bytes = m.to_json();
        for (at, byte) in positions {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Ok(parsed) = Manifest::parse(&bytes) {
            // Whatever parses, round-trips.
            prop_assert_eq!(Manifest::parse(&parsed.to_json()).unwrap(), parsed);
        }
    }
}

#[test]
fn the_fuzz_seeds_parse() {
    for seed in [
        include_bytes!("../../../../fuzz/seeds/release_manifest/devnet.json").as_slice(),
        include_bytes!("../../../../fuzz/seeds/release_manifest/reproducible.json").as_slice(),
    ] {
        let m = Manifest::parse(seed).unwrap();
        assert_eq!(m.sections().len(), 1);
    }
}
