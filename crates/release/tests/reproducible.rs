//! Real reproducible builds of a tiny fixture workspace (seconds, not the
//! real release's minutes): two checkouts in different directories give
//! the same binary and manifest; `verify` passes on a match and names what
//! differs otherwise (a changed source file, `Cargo.lock`, the toolchain is
//! covered by the inputs diff, a build script that embeds the time).
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::Path;

use ed25519_dalek::SigningKey;
use openrelay_release::build::{BuildRequest, build};
use openrelay_release::fixture::{
    BUILD_RS_WITH_TIME, CARGO_LOCK, MAIN_RS, MAIN_RS_WITH_TIME, PACKAGE, fixture,
};
use openrelay_release::manifest::SignatureCheck;
use openrelay_release::verify::BinaryVerdict;
use openrelay_release::{Manifest, verify};

const EPOCH: u64 = 1_700_000_000;

fn request(checkout: &Path, work_dir: &Path) -> BuildRequest {
    BuildRequest {
        checkout: checkout.to_owned(),
        package: PACKAGE.to_owned(),
        binary: PACKAGE.to_owned(),
        source_date_epoch: EPOCH,
        work_dir: work_dir.to_owned(),
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn two_checkouts_in_different_directories_build_the_same_binary_and_verify() {
    let root = tempfile::tempdir().unwrap();
    let a = fixture(&root.path().join("first checkout"), MAIN_RS, None);
    let b = fixture(&root.path().join("elsewhere/second"), MAIN_RS, None);
    let built_a = build(&request(&a, &root.path().join("work-a"))).unwrap();
    let built_b = build(&request(&b, &root.path().join("work-b"))).unwrap();
    assert_eq!(
        built_a.sha256, built_b.sha256,
        "binaries differ between checkouts"
    );
    assert_eq!(built_a.manifest.to_json(), built_b.manifest.to_json());
    assert_eq!(built_a.manifest.release_id(), built_b.manifest.release_id());
    // No path of the builder is left in the binary (the builds' HOMEs are
    // inside their work directories, so this covers them too).
    let exe = std::fs::read(&built_a.binary_path).unwrap();
    let root_path = root.path().to_str().unwrap();
    assert!(
        !contains(&exe, root_path),
        "the build directory leaks into the binary"
    );
    assert!(contains(&exe, "/source/src/main.rs") || contains(&exe, "src/main.rs"));
    for var in ["HOME", "CARGO_HOME"] {
        if let Ok(dir) = std::env::var(var) {
            assert!(!contains(&exe, &dir), "{var} ({dir}) leaks into the binary");
        }
    }

    let manifest = Manifest::parse(&built_a.manifest.to_json()).unwrap();
    let report = verify(&manifest, &b, &[], 0, &root.path().join("work-b")).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.binary, BinaryVerdict::Matches);
    assert!(
        report.to_string().contains("signatures: NOT CHECKED"),
        "{report}"
    );
}

#[test]
fn verify_names_a_one_byte_change_in_a_source_file_or_cargo_lock_without_building() {
    let root = tempfile::tempdir().unwrap();
    let a = fixture(&root.path().join("a"), MAIN_RS, None);
    let manifest = build(&request(&a, &root.path().join("work-a")))
        .unwrap()
        .manifest;
    for (file, edit) in [
        ("src/main.rs", MAIN_RS.replacen("hello", "hellp", 1)),
        ("Cargo.lock", CARGO_LOCK.replacen("manual", "manuel", 1)),
    ] {
        let b = fixture(
            &root.path().join(format!("b-{}", file.replace('/', "-"))),
            MAIN_RS,
            None,
        );
        std::fs::write(b.join(file), edit).unwrap();
        let work = root.path().join("work-b");
        let report = verify(&manifest, &b, &[], 0, &work).unwrap();
        assert!(!report.passed());
        assert_eq!(report.inputs.changed, [format!("file:{file}")], "{report}");
        assert!(report.inputs.added.is_empty() && report.inputs.removed.is_empty());
        assert_eq!(report.binary, BinaryVerdict::NotBuilt);
        assert!(
            report
                .to_string()
                .contains(&format!("changed: file:{file}")),
            "{report}"
        );
        // Nothing was built for it.
        assert!(!work.join("target/release/fixture").exists());
    }
    // An added and a removed file.
    let c = fixture(&root.path().join("c"), MAIN_RS, None);
    std::fs::write(c.join("src/extra.rs"), "").unwrap();
    std::fs::remove_file(c.join("rust-toolchain.toml")).unwrap();
    std::fs::write(
        c.join("rust-toolchain.toml"),
        "[toolchain]\nchannel = \"1.95.0\"\n",
    )
    .unwrap();
    std::fs::remove_file(c.join("Cargo.toml")).unwrap();
    let report = verify(&manifest, &c, &[], 0, &root.path().join("work-c")).unwrap();
    assert_eq!(report.inputs.added, ["file:src/extra.rs"]);
    assert_eq!(report.inputs.removed, ["file:Cargo.toml"]);
}

#[test]
fn a_build_script_that_embeds_the_time_is_reported_with_the_differing_section() {
    let root = tempfile::tempdir().unwrap();
    let a = fixture(
        &root.path().join("a"),
        MAIN_RS_WITH_TIME,
        Some(BUILD_RS_WITH_TIME),
    );
    let manifest = build(&request(&a, &root.path().join("work-a")))
        .unwrap()
        .manifest;
    let report = verify(&manifest, &a, &[], 0, &root.path().join("work-again")).unwrap();
    assert!(!report.passed());
    let BinaryVerdict::Differs { sections, .. } = &report.binary else {
        panic!("expected a different binary: {report}");
    };
    assert!(
        sections
            .iter()
            .any(|s| s.name == ".rodata" && s.expected_size == s.actual_size),
        "{report}"
    );
    assert!(
        report.to_string().contains("section .rodata differs"),
        "{report}"
    );
}

#[test]
fn signatures_decide_when_trusted_keys_are_given() {
    let root = tempfile::tempdir().unwrap();
    let a = fixture(&root.path().join("a"), MAIN_RS, None);
    let work = root.path().join("work");
    let unsigned = build(&request(&a, &work)).unwrap().manifest;
    let release_key = SigningKey::from_bytes(&[11; 32]);
    let wrong_key = SigningKey::from_bytes(&[12; 32]);
    let mut signed = unsigned.clone();
    signed.sign(&release_key);
    let trusted = [release_key.verifying_key()];

    let report = verify(&signed, &a, &trusted, 1, &work).unwrap();
    assert!(report.passed(), "{report}");
    assert!(report.to_string().contains("signatures: ok"), "{report}");

    // Unsigned, a trusted key asked for.
    let report = verify(&unsigned, &a, &trusted, 1, &work).unwrap();
    assert!(!report.passed());
    assert!(
        report.to_string().contains("signatures: FAILED"),
        "{report}"
    );

    // Signed by a key that is not trusted.
    let mut wrong = unsigned.clone();
    wrong.sign(&wrong_key);
    let report = verify(&wrong, &a, &trusted, 1, &work).unwrap();
    assert!(!report.passed());
    assert_eq!(
        report.signatures,
        SignatureCheck::Checked {
            present: 1,
            signed_by: vec![]
        }
    );

    // Two trusted keys required, one signed.
    let report = verify(
        &signed,
        &a,
        &[release_key.verifying_key(), wrong_key.verifying_key()],
        2,
        &work,
    )
    .unwrap();
    assert!(!report.passed(), "{report}");
}

#[test]
fn an_unreproduced_devnet_manifest_cannot_be_verified() {
    let root = tempfile::tempdir().unwrap();
    let a = fixture(&root.path().join("a"), MAIN_RS, None);
    let exe = std::env::current_exe().unwrap();
    let manifest = Manifest::for_unreproduced_binary_insecure_devnet(&exe).unwrap();
    let error = verify(&manifest, &a, &[], 0, &root.path().join("w")).unwrap_err();
    assert!(error.to_string().contains("unreproduced"), "{error}");
}

#[test]
fn a_checkout_without_a_pinned_toolchain_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let a = fixture(&root.path().join("a"), MAIN_RS, None);
    std::fs::remove_file(a.join("rust-toolchain.toml")).unwrap();
    let error = build(&request(&a, &root.path().join("w"))).unwrap_err();
    assert!(error.to_string().contains("pinned toolchain"), "{error}");
}
