//! The reproducible build: `cargo build --release --locked -p PACKAGE --bin
//! BINARY` in a clean environment, so the binary does not depend on where
//! the checkout is, who builds it, or when.
//!
//! What varies between builders and how it is neutralised:
//! - paths (checkout, `CARGO_HOME`'s registry sources, `RUSTUP_HOME`, the
//!   target directory) enter debug info, panic locations and C objects:
//!   `--remap-path-prefix` for rustc and `-ffile-prefix-map` for C compilers
//!   (`cc` reads `CFLAGS`), each to a fixed name;
//! - time: `SOURCE_DATE_EPOCH` fixed (the last commit's), `TZ=UTC`;
//! - the environment (`HOME`, locale, `RUSTFLAGS`, wrappers a user set): the
//!   build starts from an empty environment with only what it needs;
//! - incremental state: `CARGO_INCREMENTAL=0`, and a target directory of
//!   its own.
//!
//! What is left (linker, glibc, the host's C compiler for C dependencies)
//! is listed in docs/releases.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::inputs::{self, Inputs, InputsError, Sha256Digest};
use crate::manifest::{ExternalParameters, InternalParameters, Manifest, ManifestError};

/// The profile release builds use.
pub const PROFILE: &str = "release";
/// What the checkout is called inside the binary.
pub const REMAPPED_SOURCE: &str = "/source";
/// What `CARGO_HOME` is called inside the binary.
pub const REMAPPED_CARGO_HOME: &str = "/cargo-home";
/// What `RUSTUP_HOME` is called inside the binary.
pub const REMAPPED_RUSTUP_HOME: &str = "/rustup-home";
/// What the build directory is called inside the binary.
pub const REMAPPED_BUILD_DIR: &str = "/build";

/// Variables passed through from the caller: where cargo and rustup live,
/// how to reach the registry. None of them changes what is compiled.
const PASSED_THROUGH: &[&str] = &[
    "PATH",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "no_proxy",
    "CARGO_NET_OFFLINE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The workspace root of the checkout.
    pub checkout: PathBuf,
    /// The package (`-p`).
    pub package: String,
    /// The binary (`--bin`).
    pub binary: String,
    /// `SOURCE_DATE_EPOCH` (the last commit's time: [`last_commit_time`]).
    pub source_date_epoch: u64,
    /// Where the build happens (its own target directory and an empty
    /// `HOME`); reused by later builds of the same checkout.
    pub work_dir: PathBuf,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    /// The binary (inside the work directory).
    pub binary_path: PathBuf,
    /// Its SHA-256.
    pub sha256: Sha256Digest,
    /// The inputs it was built from, collected before the build.
    pub inputs: Inputs,
    /// Its manifest (unsigned).
    pub manifest: Manifest,
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Collecting the inputs failed.
    #[error(transparent)]
    Inputs(#[from] InputsError),
    /// A directory or the binary could not be read or created.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The host triple is missing from `rustc -vV`.
    #[error("`rustc -vV` names no host triple")]
    NoHost,
    /// A path is not UTF-8 and cannot be remapped.
    #[error("{0}: path is not UTF-8")]
    NonUtf8Path(PathBuf),
    /// cargo failed (its output went to our standard error).
    #[error("cargo build failed: {0}")]
    Cargo(std::process::ExitStatus),
    /// The inputs changed while building.
    #[error("the checkout changed during the build; build again")]
    InputsChanged,
    /// The manifest could not be made.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// The time of the last commit of the git checkout `root` (`git log -1
/// --format=%ct`), the usual `SOURCE_DATE_EPOCH`.
pub fn last_commit_time(root: &Path) -> Result<u64, InputsError> {
    let out = inputs::run(
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["log", "-1", "--format=%ct"]),
        "git log -1 --format=%ct",
    )?;
    String::from_utf8_lossy(&out)
        .trim()
        .parse()
        .map_err(|_| InputsError::Tool {
            command: "git log -1 --format=%ct".to_owned(),
            detail: "no commit time".to_owned(),
        })
}

/// The clean environment of a build.
#[derive(Debug, Clone)]
pub struct BuildEnvironment {
    /// The variables cargo (and `rustc -vV` for the inputs) runs with.
    pub vars: Vec<(String, String)>,
    /// What the builder's directories are called inside the binary.
    pub remapped_prefixes: Vec<String>,
}

/// The clean environment of a build of `request` (creating its `HOME` and
/// target directory).
pub fn environment(request: &BuildRequest) -> Result<BuildEnvironment, BuildError> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let from_env_or_home = |var: &str, dir: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(dir)))
    };
    let cargo_home = from_env_or_home("CARGO_HOME", ".cargo");
    let rustup_home = from_env_or_home("RUSTUP_HOME", ".rustup");
    let build_home = request.work_dir.join("home");
    let target_dir = request.work_dir.join("target");
    for dir in [&build_home, &target_dir] {
        std::fs::create_dir_all(dir).map_err(|source| BuildError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    // Later mappings win (rustc and GCC alike): the target directory may lie
    // inside the checkout, so it comes after it.
    let mut mappings: Vec<(PathBuf, &str)> = Vec::new();
    let mut add = |path: &Path, to: &'static str| {
        mappings.push((path.to_owned(), to));
        if let Ok(canonical) = path.canonicalize()
            && canonical != path
        {
            mappings.push((canonical, to));
        }
    };
    if let Some(dir) = &rustup_home {
        add(dir, REMAPPED_RUSTUP_HOME);
    }
    if let Some(dir) = &cargo_home {
        add(dir, REMAPPED_CARGO_HOME);
    }
    add(&request.checkout, REMAPPED_SOURCE);
    add(&request.work_dir, REMAPPED_BUILD_DIR);
    let mut rustflags = Vec::new();
    let mut cflags = Vec::new();
    for (from, to) in &mappings {
        let from = from
            .to_str()
            .ok_or_else(|| BuildError::NonUtf8Path(from.clone()))?;
        rustflags.push(format!("--remap-path-prefix={from}={to}"));
        // CFLAGS is split at whitespace (cc-rs), so a path with a space
        // cannot be mapped there: it would become two broken arguments and
        // fail every C build. Only C sources and objects carry such paths
        // into a binary, and ours has C only under CARGO_HOME (ring) and
        // the build directory, so a checkout path with a space is safe to
        // leave out; a build directory with one is not (docs/releases.md).
        if !from.contains(char::is_whitespace) {
            cflags.push(format!("-ffile-prefix-map={from}={to}"));
        }
    }
    let path_string = |p: &Path| {
        p.to_str()
            .map(str::to_owned)
            .ok_or_else(|| BuildError::NonUtf8Path(p.to_owned()))
    };
    let mut env: Vec<(String, String)> = PASSED_THROUGH
        .iter()
        .filter_map(|var| Some((var.to_string(), std::env::var(var).ok()?)))
        .collect();
    if let Some(dir) = &cargo_home {
        env.push(("CARGO_HOME".into(), path_string(dir)?));
    }
    if let Some(dir) = &rustup_home {
        env.push(("RUSTUP_HOME".into(), path_string(dir)?));
    }
    let cflags = cflags.join(" ");
    env.extend([
        ("HOME".into(), path_string(&build_home)?),
        ("CARGO_TARGET_DIR".into(), path_string(&target_dir)?),
        ("CARGO_INCREMENTAL".into(), "0".into()),
        // Flags separated by 0x1f so paths with spaces stay whole.
        ("CARGO_ENCODED_RUSTFLAGS".into(), rustflags.join("\u{1f}")),
        ("CFLAGS".into(), cflags.clone()),
        ("CXXFLAGS".into(), cflags),
        (
            "SOURCE_DATE_EPOCH".into(),
            request.source_date_epoch.to_string(),
        ),
        ("TZ".into(), "UTC".into()),
        ("LC_ALL".into(), "C".into()),
        ("CARGO_TERM_COLOR".into(), "never".into()),
    ]);
    let remapped = [
        REMAPPED_SOURCE,
        REMAPPED_CARGO_HOME,
        REMAPPED_RUSTUP_HOME,
        REMAPPED_BUILD_DIR,
    ]
    .map(str::to_owned)
    .to_vec();
    Ok(BuildEnvironment {
        vars: env,
        remapped_prefixes: remapped,
    })
}

/// Builds `request` reproducibly and makes its (unsigned) manifest. Cargo's
/// output goes to our standard error.
pub fn build(request: &BuildRequest) -> Result<Built, BuildError> {
    let BuildEnvironment {
        vars: env,
        remapped_prefixes: remapped,
    } = environment(request)?;
    let inputs = inputs::collect(&request.checkout, &env)?;
    let target = inputs
        .toolchain
        .host()
        .ok_or(BuildError::NoHost)?
        .to_owned();
    tracing::info!(
        checkout = %request.checkout.display(),
        files = inputs.files.len(),
        "building {} reproducibly",
        request.binary
    );
    let status = Command::new("cargo")
        .current_dir(&request.checkout)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["build", "--release", "--locked", "-p"])
        .arg(&request.package)
        .arg("--bin")
        .arg(&request.binary)
        .status()
        .map_err(|source| BuildError::Io {
            path: PathBuf::from("cargo"),
            source,
        })?;
    if !status.success() {
        return Err(BuildError::Cargo(status));
    }
    // A file edited during the build would make the manifest lie about
    // what was compiled.
    if inputs::collect(&request.checkout, &env)? != inputs {
        return Err(BuildError::InputsChanged);
    }
    let binary_path = request
        .work_dir
        .join("target")
        .join(PROFILE)
        .join(&request.binary);
    let executable = std::fs::read(&binary_path).map_err(|source| BuildError::Io {
        path: binary_path.clone(),
        source,
    })?;
    let manifest = Manifest::for_reproducible_build(
        &ExternalParameters {
            package: request.package.clone(),
            binary: request.binary.clone(),
            profile: PROFILE.to_owned(),
            target,
        },
        &InternalParameters {
            source_date_epoch: request.source_date_epoch,
            remapped_prefixes: remapped,
            toolchain_channel: inputs.toolchain.channel.clone(),
            rustc_version_verbose: inputs.toolchain.rustc_version_verbose.clone(),
        },
        &inputs,
        &executable,
    )?;
    Ok(Built {
        binary_path,
        sha256: Sha256::digest(&executable).into(),
        inputs,
        manifest,
    })
}
