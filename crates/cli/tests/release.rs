//! `openrelay release` through the real binary on a tiny fixture workspace
//! (issue 15): two builds in different directories with different HOMEs
//! give the same binary; `verify` exits 0 on a match and non-zero naming
//! what differs; `sign` adds release keys' signatures that `verify` checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use openrelay_release::fixture::{MAIN_RS, fixture};
use openrelay_testkit::process::{Finished, run_openrelay_with_env};

/// Each run gets its own HOME; cargo and rustup stay where they are.
fn release(home: &Path, args: &[&str]) -> Finished {
    let user_home = PathBuf::from(std::env::var_os("HOME").unwrap());
    let cargo_home = std::env::var_os("CARGO_HOME").map_or(user_home.join(".cargo"), PathBuf::from);
    let rustup_home =
        std::env::var_os("RUSTUP_HOME").map_or(user_home.join(".rustup"), PathBuf::from);
    std::fs::create_dir_all(home).unwrap();
    run_openrelay_with_env(
        &[&["release"], args].concat(),
        &[
            ("HOME", home),
            ("CARGO_HOME", &cargo_home),
            ("RUSTUP_HOME", &rustup_home),
        ],
        Duration::from_secs(300),
    )
}

fn field<'a>(out: &'a Finished, name: &str) -> &'a str {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in {}", out.stdout))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn build_verify_and_sign_through_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let a = fixture(&r.join("alice/src"), MAIN_RS, None);
    let b = fixture(&r.join("bob with space/checkout"), MAIN_RS, None);
    let key = r.join("keys/release-1.key");
    let build = |home: &str, source: &Path, name: &str, extra: &[&str]| {
        let out = release(
            &r.join(home),
            &[
                &[
                    "build",
                    "--package",
                    "fixture",
                    "--source",
                    path(source),
                    "--source-date-epoch",
                    "1700000000",
                    "--work-dir",
                    path(&r.join(format!("work-{name}"))),
                    "--out",
                    path(&r.join(format!("out-{name}"))),
                ],
                extra,
            ]
            .concat(),
        );
        assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
        out
    };
    let first = build("home-alice", &a, "a", &["--key", path(&key)]);
    let second = build("home-bob", &b, "b", &[]);
    assert_eq!(field(&first, "sha256:"), field(&second, "sha256:"));
    assert_eq!(field(&first, "release id:"), field(&second, "release id:"));
    let pin = field(&first, "signed by:")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(pin.starts_with("ed25519:"), "{pin}");
    let manifest = r.join("out-a/openrelay.manifest.json");
    assert!(r.join("out-a/fixture").is_file());

    let verify = |source: &Path, extra: &[&str]| {
        release(
            &r.join("home-carol"),
            &[
                &[
                    "verify",
                    path(&manifest),
                    "--source",
                    path(source),
                    "--work-dir",
                    path(&r.join("work-b")),
                ],
                extra,
            ]
            .concat(),
        )
    };
    // Against the second checkout, with the release key trusted.
    let out = verify(&b, &["--trusted-key", &pin]);
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("binary: rebuilt bit-identical"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("signatures: ok"), "{}", out.stdout);
    // Without trusted keys it still matches, and says nothing was checked.
    let out = verify(&b, &[]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(out.stdout.contains("NOT CHECKED"), "{}", out.stdout);

    // A key that did not sign: non-zero.
    let other = r.join("keys/other.key");
    let signed_other = release(
        &r.join("home-dave"),
        &[
            "sign",
            path(&r.join("out-b/openrelay.manifest.json")),
            "--key",
            path(&other),
        ],
    );
    assert!(signed_other.status.success(), "{}", signed_other.stderr);
    let other_pin = field(&signed_other, "signed by:")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let out = verify(&b, &["--trusted-key", &other_pin]);
    assert!(!out.status.success());
    assert!(out.stdout.contains("signatures: FAILED"), "{}", out.stdout);

    // A second release key signs: both now verify, and two are required.
    let out = release(
        &r.join("home-dave"),
        &["sign", path(&manifest), "--key", path(&other)],
    );
    assert!(out.status.success(), "{}", out.stderr);
    let out = verify(
        &b,
        &[
            "--trusted-key",
            &pin,
            "--trusted-key",
            &other_pin,
            "--required-signatures",
            "2",
        ],
    );
    assert!(out.status.success(), "{}\n{}", out.stdout, out.stderr);

    // One byte changed in a source file: non-zero, the file named.
    let src = b.join("src/main.rs");
    std::fs::write(&src, MAIN_RS.replacen("hello", "hellp", 1)).unwrap();
    let out = verify(&b, &[]);
    assert!(!out.status.success());
    assert!(
        out.stdout.contains("changed: file:src/main.rs"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("does not verify"), "{}", out.stderr);

    // A manifest that is not one: a clear error.
    std::fs::write(r.join("junk.json"), b"{\"payload\": 1}").unwrap();
    let out = release(
        &r.join("home-carol"),
        &["verify", path(&r.join("junk.json")), "--source", path(&a)],
    );
    assert!(!out.status.success());
    assert!(out.stderr.contains("not a DSSE envelope"), "{}", out.stderr);
}
