//! `openrelay sim` through the real binary: the published figure, the plot,
//! JSON, and clear errors with a non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use openrelay_testkit as kit;
use openrelay_testkit::process::{Finished, run_openrelay};

fn sim(args: &[&str]) -> Finished {
    run_openrelay(&[&["sim"], args].concat(), Duration::from_secs(120))
}

fn stdout(out: &Finished) -> String {
    out.stdout.clone()
}

fn stderr(out: &Finished) -> String {
    out.stderr.clone()
}

#[test]
fn headline_command_reproduces_the_published_1733() {
    let out = sim(&[
        "--policy",
        "random",
        "--adversary-share",
        "0.02",
        "--target-probability",
        "0.5",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l == "paths=1733"), "{text}");
    // The comparison table: every policy, with and without a Sybil split.
    for row in [
        "random ",
        "operator-diverse  1 operator",
        "operator-diverse  10 identities",
        "stake-weighted    1 operator",
        "stake-weighted    10 identities",
        "capped            1 operator",
        "capped            10 identities",
    ] {
        assert!(text.contains(row), "missing {row:?} in\n{text}");
    }
}

#[test]
fn plot_writes_an_svg_with_a_line_per_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("collusion.svg");
    let out = sim(&["--trials", "0", "--plot", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let svg = std::fs::read_to_string(&file).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 8, "{svg}");
    for scenario in [
        "random, 1 operator",
        "operator-diverse, 10 identities",
        "stake-weighted, 1 operator",
        "capped, 10 identities",
    ] {
        assert!(
            svg.contains(&format!("data-scenario=\"{scenario}\"")),
            "{scenario}"
        );
    }
    assert_eq!(svg.matches('<').count(), svg.matches('>').count());
}

#[test]
fn json_is_one_object() {
    let out = sim(&["--json", "--trials", "20", "--paths", "100"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let json = text.trim();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    assert!(json.contains("\"paths\":1733"), "{json}");
    assert!(json.contains("\"n\":100"), "{json}");
}

#[test]
fn example_population_file_runs() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/examples/population.toml");
    let out = sim(&[
        "--population",
        example.to_str().unwrap(),
        "--policy",
        "stake-weighted",
        "--trials",
        "0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l.starts_with("paths=")), "{text}");
    assert!(text.contains("2 operators"), "{text}");
}

/// Issue 13, item 5: the collusion figures of the population a directory
/// file lists (here the fixtures' network with a chain section, as a
/// client caches it), the heaviest operator as the adversary unless named.
#[test]
fn a_directory_file_runs() {
    use openrelay_testkit::fixtures;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("directory.bin");
    let directory = fixtures::with_chain(fixtures::directory(1), 100, 0);
    std::fs::write(&file, fixtures::signed(&directory, &[0, 1]).to_bytes()).unwrap();
    let out = sim(&[
        "--directory",
        file.to_str().unwrap(),
        "--policy",
        "capped",
        "--trials",
        "0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.lines().any(|l| l.starts_with("paths=")), "{text}");
    assert!(text.contains("3 operators"), "{text}");
    let adversary = fixtures::operator_key(1).id().to_string();
    let out = sim(&[
        "--directory",
        file.to_str().unwrap(),
        "--adversary",
        &adversary,
        "--trials",
        "0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let unknown = fixtures::operator_key(9).id().to_string();
    let out = sim(&[
        "--directory",
        file.to_str().unwrap(),
        "--adversary",
        &unknown,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not listed"), "{}", stderr(&out));
}

#[test]
fn bad_input_gives_a_clear_error_and_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[operator]]\ningress = 2\negress = 2\nbandwidth = -5\nadversary = true\n",
    )
    .unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--policy".into(), "tor".into()], "unknown policy"),
        (
            vec!["--adversary-share".into(), "1.5".into()],
            "--adversary-share",
        ),
        (vec!["--no-such-flag".into()], "--no-such-flag"),
        (
            vec!["--population".into(), bad.display().to_string()],
            "operator[1].bandwidth",
        ),
        (
            vec![
                "--population".into(),
                dir.path().join("missing.toml").display().to_string(),
            ],
            "cannot read population file",
        ),
        (
            vec!["--sybil-identities".into(), "1000".into()],
            "--sybil-identities",
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sim(&args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(kit::logs::panics(&err).is_empty(), "{args:?}: {err}");
    }
}
