//! The dependency rule of ARCHITECTURE.md, checked on the real crate graph
//! (`cargo tree`, normal dependencies only): a client build links no
//! server code and no server storage; relays link no registry or issuer
//! service; the devnet does not link the TUN front-end; the shared small
//! types depend on no other openrelay crate; no build but a test's links
//! the test kit.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;

/// The packages `package` links in a normal (non-dev, non-build) build.
fn linked(package: &str) -> BTreeSet<String> {
    normal_tree(&["-p", package])
}

/// The packages in `cargo tree -e normal <select>` (which packages to
/// start from).
fn normal_tree(select: &[&str]) -> BTreeSet<String> {
    let package = select.join(" ");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--locked",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .args(select)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo tree {package}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn assert_links_none(package: &str, forbidden: &[&str]) {
    let linked = linked(package);
    assert!(linked.contains(package), "{package}: {linked:?}");
    let found: Vec<_> = forbidden.iter().filter(|f| linked.contains(**f)).collect();
    assert!(found.is_empty(), "{package} links {found:?}");
}

/// Server crates and their storage: what no client build may link.
const SERVER_CODE: &[&str] = &[
    "openrelay-registry",
    "openrelay-issuer",
    "openrelay-ingress",
    "openrelay-egress",
    "openrelay-devnet",
    "redb",
    "redis",
    // Chain code: clients verify signed directories, never the chain.
    "openrelay-chain",
    "alloy",
];

#[test]
fn a_client_build_links_no_server_code() {
    assert_links_none("openrelay-client", SERVER_CODE);
    assert_links_none("openrelay-tun", SERVER_CODE);
}

#[test]
fn relays_link_no_registry_or_issuer_service() {
    for relay in ["openrelay-ingress", "openrelay-egress"] {
        assert_links_none(
            relay,
            &[
                "openrelay-registry",
                "openrelay-issuer",
                "openrelay-client",
                "openrelay-chain",
            ],
        );
    }
}

#[test]
fn the_devnet_does_not_link_the_tun_front_end() {
    // It links the client's library through the registry (a measuring
    // validator tests relays through client paths), never the TUN
    // front-end and its system plumbing.
    assert_links_none("openrelay-devnet", &["openrelay-tun"]);
}

#[test]
fn the_shared_small_types_depend_on_no_other_openrelay_crate() {
    let linked = linked("openrelay-types");
    let ours: Vec<_> = linked
        .iter()
        .filter(|p| p.starts_with("openrelay-") && *p != "openrelay-types")
        .collect();
    assert!(ours.is_empty(), "openrelay-types links {ours:?}");
}

#[test]
fn no_normal_build_links_the_test_kit() {
    // Every workspace member but the kit, with its normal dependencies: the
    // binary, the relays, the services, the client, the fuzz-free rest.
    let linked = normal_tree(&["--workspace", "--exclude", "openrelay-testkit"]);
    assert!(linked.contains("openrelay"), "{linked:?}");
    assert!(
        !linked.contains("openrelay-testkit"),
        "a normal build links openrelay-testkit: {linked:?}"
    );
}
