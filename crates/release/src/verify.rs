//! `release verify`: does this checkout build this manifest's binary?
//! Signatures first, then the inputs (a difference there is reported file
//! by file and no build is wasted), then a rebuild compared by SHA-256 and,
//! when it differs, section by section.

use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use crate::build::{self, BuildError, BuildRequest};
use crate::elf::{self, SectionDiff};
use crate::inputs::{self, Inputs, file_uri};
use crate::manifest::{Manifest, SignatureCheck, toolchain_descriptor};

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The release id (what validators vote on).
    pub release_id: crate::ReleaseId,
    /// The signatures against the trusted keys.
    pub signatures: SignatureCheck,
    /// How many trusted signatures were required.
    pub required_signatures: usize,
    /// How the checkout's inputs differ from the manifest's.
    pub inputs: InputsDiff,
    /// The rebuilt binary against the manifest's.
    pub binary: BinaryVerdict,
}

impl Report {
    /// Whether the manifest verified: enough trusted signatures (or none
    /// asked for, which [`Report`]'s display says loudly), equal inputs, and
    /// a bit-identical rebuild.
    pub fn passed(&self) -> bool {
        self.signatures_ok()
            && self.inputs.is_empty()
            && matches!(self.binary, BinaryVerdict::Matches)
    }

    fn signatures_ok(&self) -> bool {
        match &self.signatures {
            SignatureCheck::NotChecked { .. } => self.required_signatures == 0,
            SignatureCheck::Checked { signed_by, .. } => {
                signed_by.len() >= self.required_signatures.max(1)
            }
        }
    }
}

/// Differences between the manifest's inputs and the checkout's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputsDiff {
    /// Files in the checkout, not in the manifest (`file:` URIs).
    pub added: Vec<String>,
    /// Files in the manifest, not in the checkout.
    pub removed: Vec<String>,
    /// Files in both with different contents (`Cargo.lock` among them).
    pub changed: Vec<String>,
    /// The toolchain, when it differs: (manifest's, ours) `rustc -vV`.
    pub toolchain: Option<(String, String)>,
}

impl InputsDiff {
    /// No difference.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.toolchain.is_none()
    }
}

/// The rebuilt binary against the manifest's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryVerdict {
    /// Not rebuilt: the inputs differ, so the binary would too.
    NotBuilt,
    /// Bit-identical.
    Matches,
    /// Different bytes.
    Differs {
        /// The manifest's SHA-256.
        expected: String,
        /// The rebuilt binary's.
        actual: String,
        /// The rebuilt binary (to inspect further).
        rebuilt: PathBuf,
        /// The sections that differ.
        sections: Vec<SectionDiff>,
    },
}

/// Why verification could not run (a failed check is a [`Report`], not an
/// error).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The manifest is of a binary that was never reproduced.
    #[error(
        "the manifest describes an unreproduced binary (buildType {0}): there is nothing to rebuild"
    )]
    Unreproduced(String),
    /// Collecting inputs or building failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The rebuilt binary could not be read.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Verifies `manifest` against the checkout at `checkout`, rebuilding in
/// `work_dir` when the inputs are equal. `trusted` are the release keys
/// the caller trusts; with none, signatures are reported as not checked and
/// `required_signatures` must be 0 for the report to pass.
pub fn verify(
    manifest: &Manifest,
    checkout: &Path,
    trusted: &[VerifyingKey],
    required_signatures: usize,
    work_dir: &Path,
) -> Result<Report, VerifyError> {
    let (external, internal) = manifest.build_parameters().ok_or_else(|| {
        VerifyError::Unreproduced(
            manifest
                .statement()
                .predicate
                .build_definition
                .build_type
                .clone(),
        )
    })?;
    let request = BuildRequest {
        checkout: checkout.to_owned(),
        package: external.package,
        binary: external.binary,
        source_date_epoch: internal.source_date_epoch,
        work_dir: work_dir.to_owned(),
    };
    let env = build::environment(&request)?;
    let ours = inputs::collect(checkout, &env.vars).map_err(BuildError::from)?;
    let mut report = Report {
        release_id: manifest.release_id(),
        signatures: manifest.check_signatures(trusted),
        required_signatures,
        inputs: diff_inputs(manifest, &ours),
        binary: BinaryVerdict::NotBuilt,
    };
    if !report.inputs.is_empty() {
        return Ok(report);
    }
    let built = build::build(&request)?;
    let (_, expected) = manifest.subject();
    report.binary = if built.sha256 == expected {
        BinaryVerdict::Matches
    } else {
        let executable = std::fs::read(&built.binary_path).map_err(|source| VerifyError::Io {
            path: built.binary_path.clone(),
            source,
        })?;
        BinaryVerdict::Differs {
            expected: hex::encode(expected),
            actual: hex::encode(built.sha256),
            sections: elf::diff(
                &manifest.sections(),
                &elf::sections(&executable).unwrap_or_default(),
            ),
            rebuilt: built.binary_path,
        }
    };
    Ok(report)
}

/// How `ours` differs from the inputs `manifest` lists.
pub fn diff_inputs(manifest: &Manifest, ours: &Inputs) -> InputsDiff {
    let theirs = manifest.input_files();
    let ours_by_uri: std::collections::BTreeMap<String, _> = ours
        .files
        .iter()
        .map(|(name, digest)| (file_uri(name), *digest))
        .collect();
    let mut diff = InputsDiff::default();
    for (uri, digest) in &ours_by_uri {
        match theirs.get(uri) {
            None => diff.added.push(uri.clone()),
            Some(d) if d != digest => diff.changed.push(uri.clone()),
            Some(_) => {}
        }
    }
    diff.removed = theirs
        .keys()
        .filter(|uri| !ours_by_uri.contains_key(*uri))
        .cloned()
        .collect();
    let recorded = manifest
        .statement()
        .predicate
        .build_definition
        .resolved_dependencies
        .iter()
        .find(|d| d.name.as_deref() == Some(crate::manifest::TOOLCHAIN_DEPENDENCY));
    if recorded.map(|d| &d.digest) != Some(&toolchain_descriptor(&ours.toolchain).digest) {
        let theirs = manifest
            .build_parameters()
            .map(|(_, internal)| internal.rustc_version_verbose)
            .unwrap_or_default();
        diff.toolchain = Some((theirs, ours.toolchain.rustc_version_verbose.clone()));
    }
    diff
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "release id: {}", self.release_id)?;
        match &self.signatures {
            SignatureCheck::NotChecked { present } => writeln!(
                f,
                "signatures: NOT CHECKED (no trusted release key given; the envelope carries {present}): \
                 this says nothing about who made the release"
            )?,
            SignatureCheck::Checked { present, signed_by } => {
                let verdict = if self.signatures_ok() { "ok" } else { "FAILED" };
                writeln!(
                    f,
                    "signatures: {verdict}: {} of the trusted keys signed (required {}; the envelope carries {present})",
                    signed_by.len(),
                    self.required_signatures.max(1),
                )?;
                for key in signed_by {
                    writeln!(f, "  signed by {key}")?;
                }
            }
        }
        if self.inputs.is_empty() {
            writeln!(f, "inputs: equal")?;
        } else {
            writeln!(f, "inputs: DIFFER (not rebuilt)")?;
            for (what, uris) in [
                ("changed", &self.inputs.changed),
                ("added", &self.inputs.added),
                ("removed", &self.inputs.removed),
            ] {
                for uri in uris {
                    writeln!(f, "  {what}: {uri}")?;
                }
            }
            if let Some((theirs, ours)) = &self.inputs.toolchain {
                writeln!(
                    f,
                    "  toolchain changed:\n    manifest: {}\n    here:     {}",
                    oneline(theirs),
                    oneline(ours)
                )?;
            }
        }
        match &self.binary {
            BinaryVerdict::NotBuilt => writeln!(f, "binary: not rebuilt"),
            BinaryVerdict::Matches => writeln!(f, "binary: rebuilt bit-identical"),
            BinaryVerdict::Differs {
                expected,
                actual,
                rebuilt,
                sections,
            } => {
                writeln!(
                    f,
                    "binary: DIFFERS\n  manifest sha256: {expected}\n  rebuilt  sha256: {actual} ({})",
                    rebuilt.display()
                )?;
                for s in sections {
                    let size =
                        |s: Option<u64>| s.map_or("absent".to_owned(), |n| format!("{n} bytes"));
                    writeln!(
                        f,
                        "  section {} differs: manifest {}, rebuilt {}",
                        s.name,
                        size(s.expected_size),
                        size(s.actual_size)
                    )?;
                }
                Ok(())
            }
        }
    }
}

fn oneline(text: &str) -> String {
    text.lines().collect::<Vec<_>>().join("; ")
}
