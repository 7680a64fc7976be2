//! `openrelay release`: build a release reproducibly and write its
//! manifest, verify a manifest by rebuilding, sign a manifest with a
//! release key (docs/releases.md).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use openrelay_release::build::{BuildRequest, last_commit_time};
use openrelay_release::{Manifest, SigningKey, VerifyingKey, dsse};
use openrelay_types::KeyPin;

/// The manifest's file name next to the binary.
const MANIFEST_FILE: &str = "openrelay.manifest.json";

/// Flags of `openrelay release`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReleaseArgs {
    #[command(subcommand)]
    command: ReleaseCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ReleaseCommand {
    /// Build the release binary reproducibly from a checkout and write it
    /// with its manifest (openrelay.manifest.json) to --out.
    Build(BuildArgs),
    /// Rebuild from a checkout and say whether it matches the manifest:
    /// signatures, every input file, the toolchain, the binary's bytes.
    /// Exits non-zero, with what differs, when it does not.
    Verify(VerifyArgs),
    /// Add a release key's signature to a manifest (several keys may sign).
    Sign(SignArgs),
}

#[derive(Debug, clap::Args)]
struct SourceArgs {
    /// The checkout (workspace root) to build.
    #[arg(long, default_value = ".")]
    source: PathBuf,
    /// Where the build happens (its target directory; reused by later
    /// builds). Default: <source>/target/reproducible.
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

impl SourceArgs {
    fn resolve(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        let source = self
            .source
            .canonicalize()
            .with_context(|| format!("{}", self.source.display()))?;
        let work_dir = match &self.work_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
                dir.canonicalize()?
            }
            None => source.join("target/reproducible"),
        };
        Ok((source, work_dir))
    }
}

#[derive(Debug, clap::Args)]
struct BuildArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Where to write the binary and the manifest. Default:
    /// <source>/target/release-out.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The package and binary to build.
    #[arg(long, default_value = "openrelay")]
    package: String,
    /// SOURCE_DATE_EPOCH; default: the last commit's time.
    #[arg(long)]
    source_date_epoch: Option<u64>,
    /// Release key files to sign with (created if absent, as other key
    /// files are; the public key is printed).
    #[arg(long = "key", value_name = "KEYFILE")]
    keys: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The manifest (openrelay.manifest.json).
    manifest: PathBuf,
    #[command(flatten)]
    source: SourceArgs,
    /// A trusted release key (`ed25519:<base64url>`, as `release sign`
    /// prints it). Without any, signatures are not checked and the output
    /// says so.
    #[arg(long = "trusted-key", value_name = "KEY")]
    trusted_keys: Vec<KeyPin>,
    /// How many of the trusted keys must have signed (default: 1 when
    /// trusted keys are given).
    #[arg(long)]
    required_signatures: Option<usize>,
}

#[derive(Debug, clap::Args)]
struct SignArgs {
    /// The manifest to sign (rewritten in place).
    manifest: PathBuf,
    /// The release key file (created if absent).
    #[arg(long, value_name = "KEYFILE")]
    key: PathBuf,
}

/// Runs `openrelay release ...`.
pub(crate) fn run(args: ReleaseArgs) -> anyhow::Result<()> {
    match args.command {
        ReleaseCommand::Build(args) => build(args),
        ReleaseCommand::Verify(args) => verify(args),
        ReleaseCommand::Sign(args) => sign(args),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    let (source, work_dir) = args.source.resolve()?;
    let source_date_epoch = match args.source_date_epoch {
        Some(epoch) => epoch,
        None => last_commit_time(&source)
            .context("SOURCE_DATE_EPOCH from the last commit (or give --source-date-epoch)")?,
    };
    let keys = args
        .keys
        .iter()
        .map(|path| load_key(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let built = openrelay_release::build::build(&BuildRequest {
        checkout: source.clone(),
        package: args.package.clone(),
        binary: args.package,
        source_date_epoch,
        work_dir,
    })?;
    let mut manifest = built.manifest;
    for key in &keys {
        manifest.sign(key);
        print_signer(&key.verifying_key());
    }
    let out = args
        .out
        .unwrap_or_else(|| source.join("target/release-out"));
    std::fs::create_dir_all(&out).with_context(|| format!("{}", out.display()))?;
    let (name, _) = manifest.subject();
    let binary = out.join(name);
    std::fs::copy(&built.binary_path, &binary).with_context(|| format!("{}", binary.display()))?;
    let manifest_path = out.join(MANIFEST_FILE);
    write_manifest(&manifest_path, &manifest)?;
    println!("binary:     {}", binary.display());
    println!("sha256:     {}", hex_digest(&built.sha256));
    println!("manifest:   {}", manifest_path.display());
    println!("release id: {}", manifest.release_id());
    Ok(())
}

fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let manifest = read_manifest(&args.manifest)?;
    let (source, work_dir) = args.source.resolve()?;
    let trusted: Vec<VerifyingKey> = args
        .trusted_keys
        .iter()
        .map(|pin| VerifyingKey::from_bytes(pin.as_bytes()))
        .collect::<Result<_, _>>()
        .context("a --trusted-key is not an Ed25519 public key")?;
    let required = args
        .required_signatures
        .unwrap_or(usize::from(!trusted.is_empty()));
    let report = openrelay_release::verify(&manifest, &source, &trusted, required, &work_dir)?;
    print!("{report}");
    anyhow::ensure!(
        report.passed(),
        "the release does not verify against {}",
        source.display()
    );
    Ok(())
}

fn sign(args: SignArgs) -> anyhow::Result<()> {
    let mut manifest = read_manifest(&args.manifest)?;
    let key = load_key(&args.key)?;
    manifest.sign(&key);
    write_manifest(&args.manifest, &manifest)?;
    print_signer(&key.verifying_key());
    println!("release id: {}", manifest.release_id());
    Ok(())
}

fn load_key(path: &Path) -> anyhow::Result<SigningKey> {
    let secret = openrelay_registry::keyfile::load_or_create_secret(path)
        .with_context(|| format!("release key {}", path.display()))?;
    Ok(SigningKey::from_bytes(&secret))
}

fn print_signer(key: &VerifyingKey) {
    println!(
        "signed by:  {} (keyid {})",
        KeyPin::from_ed25519(key.to_bytes()),
        dsse::key_id(key)
    );
}

fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
    // Read at most one byte more than the parser accepts, so a huge file
    // is refused without reading it whole.
    use std::io::Read as _;
    let file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(openrelay_release::manifest::MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("{}", path.display()))?;
    Manifest::parse(&bytes).with_context(|| format!("{}", path.display()))
}

fn write_manifest(path: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    // Written beside and renamed, so a reader never sees half a manifest.
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, manifest.to_json())
        .with_context(|| format!("{}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("{}", path.display()))?;
    Ok(())
}

fn hex_digest(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
