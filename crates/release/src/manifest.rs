//! The release manifest: a DSSE envelope (payloadType
//! `application/vnd.in-toto+json`) holding an in-toto Statement v1 whose
//! predicate is SLSA Provenance v1 (slsa.dev/spec/v1.0/provenance). No
//! field holds a time or a host name, so building a release twice gives the
//! same statement, and so the same [`ReleaseId`].
//!
//! The manifest arrives from anyone (a release page, a validator's peer):
//! [`Manifest::parse`] bounds its size and checks every field it relies on.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dsse::{self, Envelope};
use crate::elf::{self, ElfError, Section};
use crate::inputs::{Inputs, Sha256Digest, file_uri};
use crate::measurement::{INSECURE_SIMULATED, insecure_simulated_measurement};

/// DSSE payload type of an in-toto statement (in-toto attestation spec,
/// envelope.md).
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// SLSA Provenance v1.
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// Our build type: `release::build` from a checkout, defined in
/// docs/releases.md.
pub const BUILD_TYPE_REPRODUCIBLE: &str =
    "https://example.invalid/openrelay/docs/releases.md#reproducible-cargo-build-v1";
/// The build type of a manifest that only describes a binary someone
/// already had: nothing was (re)built, so nothing about its sources is
/// claimed. The devnet uses it to propose "its release" without a release
/// build; `verify` refuses it.
pub const BUILD_TYPE_UNREPRODUCED_INSECURE_DEVNET: &str =
    "https://example.invalid/openrelay/docs/releases.md#unreproduced-binary-insecure-devnet-v1";
/// The builder: this crate's build (docs/releases.md).
pub const BUILDER_ID: &str =
    "https://example.invalid/openrelay/docs/releases.md#openrelay-release-build";
/// The largest manifest we read. The real release lists ~1,000 input files
/// (~150 KB of statement, a third more as base64): 16 MiB leaves room for
/// growth and still bounds what a hostile manifest costs.
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;
/// Prefix of the byproducts that record the executable's sections.
pub const SECTION_PREFIX: &str = "elf-section/";
/// Name of the toolchain's entry in `resolvedDependencies`.
pub const TOOLCHAIN_DEPENDENCY: &str = "toolchain";

/// in-toto ResourceDescriptor (in-toto attestation spec v1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ResourceDescriptor {
    /// A name (the subject's file name, a byproduct's kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the resource is (`file:<relative path>` for inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Algorithm (`sha256`, `sha384`) to lowercase hex.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    /// Extra facts (a section's size, the toolchain's `rustc -vV`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The released binary.
    pub subject: Vec<ResourceDescriptor>,
    /// [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// SLSA provenance.
    pub predicate: Provenance,
}

/// SLSA Provenance v1 predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// What was built, from what.
    pub build_definition: BuildDefinition,
    /// Who built it, and what else the build produced.
    pub run_details: RunDetails,
}

/// SLSA BuildDefinition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildDefinition {
    /// [`BUILD_TYPE_REPRODUCIBLE`] or [`BUILD_TYPE_UNREPRODUCED_INSECURE_DEVNET`].
    pub build_type: String,
    /// What the release chooses: package, binary, profile, target.
    pub external_parameters: serde_json::Value,
    /// What the builder fixes: SOURCE_DATE_EPOCH, remapped prefixes, toolchain.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub internal_parameters: serde_json::Value,
    /// Every input file, then the toolchain.
    #[serde(default)]
    pub resolved_dependencies: Vec<ResourceDescriptor>,
}

/// SLSA RunDetails. No `metadata` (its times would make the statement
/// differ between two builds of the same release).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDetails {
    /// The builder.
    pub builder: Builder,
    /// Measurements TEEs report for the binary, and its ELF sections.
    #[serde(default)]
    pub byproducts: Vec<ResourceDescriptor>,
}

/// SLSA Builder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    /// [`BUILDER_ID`].
    pub id: String,
}

/// `externalParameters` of a reproducible build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalParameters {
    /// The cargo package (`-p`).
    pub package: String,
    /// The binary target (`--bin`).
    pub binary: String,
    /// The cargo profile.
    pub profile: String,
    /// The target triple (the builder's host: no cross builds).
    pub target: String,
}

/// `internalParameters` of a reproducible build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InternalParameters {
    /// The `SOURCE_DATE_EPOCH` of the build (the last commit's time).
    pub source_date_epoch: u64,
    /// What the builder's directories are remapped to in the binary.
    pub remapped_prefixes: Vec<String>,
    /// rust-toolchain.toml's channel.
    pub toolchain_channel: String,
    /// `rustc -vV` of the pinned toolchain.
    pub rustc_version_verbose: String,
}

/// A release's id: SHA-256 of the DSSE payload (the statement's bytes,
/// exactly as signed). Validators vote on it on-chain as a `bytes32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseId(pub [u8; 32]);

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest is {size} bytes, more than the {max} we read")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The bound.
        max: usize,
    },
    /// Not a DSSE envelope, or its payload not an in-toto statement.
    #[error("manifest is not a DSSE envelope of an in-toto statement: {0}")]
    Json(#[from] serde_json::Error),
    /// The envelope's payload is not base64.
    #[error("the envelope's payload is not base64")]
    Base64,
    /// A field has the wrong value.
    #[error("{field} is {found:?}, expected {expected:?}")]
    Unexpected {
        /// Which field.
        field: &'static str,
        /// What it holds.
        found: String,
        /// What it must hold.
        expected: &'static str,
    },
    /// Not exactly one subject with a SHA-256.
    #[error("the statement must have exactly one subject with a name and a sha256 digest")]
    Subject,
    /// A digest is not lowercase hex of the algorithm's length.
    #[error("{entry}: malformed {algorithm} digest")]
    Digest {
        /// The descriptor (uri or name).
        entry: String,
        /// The algorithm.
        algorithm: String,
    },
    /// A resolved dependency is neither a `file:` input nor the toolchain.
    #[error("{0}: resolved dependency is neither a file: input nor the toolchain")]
    Dependency(String),
    /// The same input file is listed twice.
    #[error("{0}: input listed twice")]
    DuplicateInput(String),
    /// Reading the binary failed.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The binary is not an ELF file we can read.
    #[error(transparent)]
    Elf(#[from] ElfError),
}

/// A parsed (or built) manifest: the envelope with its decoded statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    envelope: Envelope,
    payload: Vec<u8>,
    statement: Statement,
}

impl Manifest {
    /// Parses a manifest from untrusted bytes. Signatures are not checked
    /// here ([`Manifest::check_signatures`]).
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                size: bytes.len(),
                max: MAX_MANIFEST_BYTES,
            });
        }
        let envelope: Envelope = serde_json::from_slice(bytes)?;
        expect("payloadType", &envelope.payload_type, PAYLOAD_TYPE)?;
        let payload = dsse::decode_base64(&envelope.payload).ok_or(ManifestError::Base64)?;
        let statement: Statement = serde_json::from_slice(&payload)?;
        check_statement(&statement)?;
        Ok(Manifest {
            envelope,
            payload,
            statement,
        })
    }

    /// An unsigned manifest of `statement`.
    pub fn from_statement(statement: Statement) -> Manifest {
        let payload = serde_json::to_vec(&statement).unwrap_or_default();
        Manifest {
            envelope: Envelope {
                payload: dsse::encode_base64(&payload),
                payload_type: PAYLOAD_TYPE.to_owned(),
                signatures: Vec::new(),
            },
            payload,
            statement,
        }
    }

    /// The manifest of a reproducible build of `executable` from `inputs`.
    pub fn for_reproducible_build(
        external: &ExternalParameters,
        internal: &InternalParameters,
        inputs: &Inputs,
        executable: &[u8],
    ) -> Result<Manifest, ManifestError> {
        let mut resolved: Vec<ResourceDescriptor> = inputs
            .files
            .iter()
            .map(|(name, digest)| ResourceDescriptor {
                uri: Some(file_uri(name)),
                digest: sha256_digest(digest),
                ..ResourceDescriptor::default()
            })
            .collect();
        resolved.push(toolchain_descriptor(&inputs.toolchain));
        let statement = statement(
            &external.binary,
            executable,
            BuildDefinition {
                build_type: BUILD_TYPE_REPRODUCIBLE.to_owned(),
                external_parameters: serde_json::to_value(external)?,
                internal_parameters: serde_json::to_value(internal)?,
                resolved_dependencies: resolved,
            },
            &elf::sections(executable)?,
        );
        Ok(Manifest::from_statement(statement))
    }

    /// The manifest of a binary that was NOT reproduced: its name, hash,
    /// sections and measurements only, under
    /// [`BUILD_TYPE_UNREPRODUCED_INSECURE_DEVNET`], so the devnet can
    /// propose "its release" without a release build. It claims nothing
    /// about sources; `verify` refuses it.
    pub fn for_unreproduced_binary_insecure_devnet(path: &Path) -> Result<Manifest, ManifestError> {
        let executable = std::fs::read(path).map_err(|source| ManifestError::Io {
            path: path.to_owned(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let definition = BuildDefinition {
            build_type: BUILD_TYPE_UNREPRODUCED_INSECURE_DEVNET.to_owned(),
            external_parameters: serde_json::json!({ "binary": name }),
            internal_parameters: serde_json::Value::Null,
            resolved_dependencies: Vec::new(),
        };
        // A binary that is not ELF (another platform's) still gets a
        // manifest, without sections.
        let sections = elf::sections(&executable).unwrap_or_default();
        Ok(Manifest::from_statement(statement(
            &name,
            &executable,
            definition,
            &sections,
        )))
    }

    /// The manifest as written to `openrelay.manifest.json`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(&self.envelope).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The statement.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// What validators vote on: SHA-256 of the signed payload.
    pub fn release_id(&self) -> ReleaseId {
        ReleaseId(Sha256::digest(&self.payload).into())
    }

    /// Whether this manifest claims a reproducible build (and not an
    /// unreproduced devnet binary).
    pub fn is_reproducible_build(&self) -> bool {
        self.statement.predicate.build_definition.build_type == BUILD_TYPE_REPRODUCIBLE
    }

    /// The subject: binary name and SHA-256.
    pub fn subject(&self) -> (&str, Sha256Digest) {
        let subject = &self.statement.subject[0];
        let digest = subject
            .digest
            .get("sha256")
            .and_then(|h| decode_digest::<32>(h))
            .unwrap_or_default();
        (subject.name.as_deref().unwrap_or_default(), digest)
    }

    /// The byproduct digest named `name` with `algorithm` (e.g.
    /// [`INSECURE_SIMULATED`], `sha384`), as bytes.
    pub fn byproduct_digest(&self, name: &str, algorithm: &str) -> Option<Vec<u8>> {
        self.statement
            .predicate
            .run_details
            .byproducts
            .iter()
            .find(|b| b.name.as_deref() == Some(name))
            .and_then(|b| hex::decode(b.digest.get(algorithm)?).ok())
    }

    /// The simulated TEE's measurement of the binary.
    pub fn insecure_simulated_measurement(&self) -> Option<[u8; 48]> {
        self.byproduct_digest(INSECURE_SIMULATED, "sha384")?
            .try_into()
            .ok()
    }

    /// The parameters of a reproducible build (`None` for the devnet's
    /// unreproduced manifests). Checked by [`Manifest::parse`].
    pub fn build_parameters(&self) -> Option<(ExternalParameters, InternalParameters)> {
        let definition = &self.statement.predicate.build_definition;
        if definition.build_type != BUILD_TYPE_REPRODUCIBLE {
            return None;
        }
        Some((
            serde_json::from_value(definition.external_parameters.clone()).ok()?,
            serde_json::from_value(definition.internal_parameters.clone()).ok()?,
        ))
    }

    /// The input files (`file:` URIs, as written) and their SHA-256.
    pub fn input_files(&self) -> BTreeMap<String, Sha256Digest> {
        self.statement
            .predicate
            .build_definition
            .resolved_dependencies
            .iter()
            .filter_map(|d| {
                let uri = d.uri.as_ref().filter(|u| u.starts_with("file:"))?;
                Some((uri.clone(), decode_digest(d.digest.get("sha256")?)?))
            })
            .collect()
    }

    /// The executable's sections as recorded.
    pub fn sections(&self) -> Vec<Section> {
        self.statement
            .predicate
            .run_details
            .byproducts
            .iter()
            .filter_map(|b| {
                let name = b.name.as_deref()?.strip_prefix(SECTION_PREFIX)?;
                Some(Section {
                    name: name.to_owned(),
                    size: b.annotations.as_ref()?.get("size")?.as_u64()?,
                    sha256: decode_digest(b.digest.get("sha256")?)?,
                })
            })
            .collect()
    }

    /// Adds `key`'s signature (replacing an earlier one of the same key).
    pub fn sign(&mut self, key: &SigningKey) {
        let signature = dsse::sign(key, PAYLOAD_TYPE, &self.payload);
        self.envelope
            .signatures
            .retain(|s| s.keyid != signature.keyid);
        self.envelope.signatures.push(signature);
    }

    /// Which of `trusted` signed this manifest.
    pub fn check_signatures(&self, trusted: &[VerifyingKey]) -> SignatureCheck {
        let present = self.envelope.signatures.len();
        if trusted.is_empty() {
            return SignatureCheck::NotChecked { present };
        }
        let signed_by: Vec<String> = trusted
            .iter()
            .filter(|key| {
                self.envelope
                    .signatures
                    .iter()
                    .any(|s| dsse::verifies(s, key, PAYLOAD_TYPE, &self.payload))
            })
            .map(dsse::key_id)
            .collect();
        SignatureCheck::Checked { present, signed_by }
    }
}

/// The outcome of checking signatures against trusted release keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// No trusted key was given: the manifest may be signed or not; nothing
    /// was checked and nothing may be assumed.
    NotChecked {
        /// How many signatures the envelope carries.
        present: usize,
    },
    /// Checked against the trusted keys.
    Checked {
        /// How many signatures the envelope carries.
        present: usize,
        /// The `keyid`s of the trusted keys with a valid signature.
        signed_by: Vec<String>,
    },
}

fn statement(
    name: &str,
    executable: &[u8],
    build_definition: BuildDefinition,
    sections: &[Section],
) -> Statement {
    let mut byproducts = vec![ResourceDescriptor {
        name: Some(INSECURE_SIMULATED.to_owned()),
        digest: BTreeMap::from([(
            "sha384".to_owned(),
            hex::encode(insecure_simulated_measurement(executable)),
        )]),
        ..ResourceDescriptor::default()
    }];
    byproducts.extend(sections.iter().map(|s| ResourceDescriptor {
        name: Some(format!("{SECTION_PREFIX}{}", s.name)),
        digest: sha256_digest(&s.sha256),
        annotations: Some(serde_json::Map::from_iter([(
            "size".to_owned(),
            serde_json::Value::from(s.size),
        )])),
        ..ResourceDescriptor::default()
    }));
    Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: vec![ResourceDescriptor {
            name: Some(name.to_owned()),
            digest: sha256_digest(&Sha256::digest(executable).into()),
            ..ResourceDescriptor::default()
        }],
        predicate_type: PREDICATE_TYPE.to_owned(),
        predicate: Provenance {
            build_definition,
            run_details: RunDetails {
                builder: Builder {
                    id: BUILDER_ID.to_owned(),
                },
                byproducts,
            },
        },
    }
}

/// The toolchain's entry in `resolvedDependencies`: the digest of its
/// `rustc -vV`, which names version, commit, host and LLVM.
pub fn toolchain_descriptor(toolchain: &crate::inputs::Toolchain) -> ResourceDescriptor {
    ResourceDescriptor {
        name: Some(TOOLCHAIN_DEPENDENCY.to_owned()),
        digest: sha256_digest(&Sha256::digest(toolchain.rustc_version_verbose.as_bytes()).into()),
        annotations: Some(serde_json::Map::from_iter([
            ("channel".to_owned(), toolchain.channel.clone().into()),
            (
                "rustcVersionVerbose".to_owned(),
                toolchain.rustc_version_verbose.clone().into(),
            ),
        ])),
        ..ResourceDescriptor::default()
    }
}

fn sha256_digest(digest: &Sha256Digest) -> BTreeMap<String, String> {
    BTreeMap::from([("sha256".to_owned(), hex::encode(digest))])
}

fn decode_digest<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(text).ok()?.try_into().ok()
}

fn expect(field: &'static str, found: &str, expected: &'static str) -> Result<(), ManifestError> {
    if found == expected {
        Ok(())
    } else {
        Err(ManifestError::Unexpected {
            field,
            found: found.chars().take(200).collect(),
            expected,
        })
    }
}

fn check_digests(entry: &ResourceDescriptor) -> Result<(), ManifestError> {
    for (algorithm, value) in &entry.digest {
        let ok = match algorithm.as_str() {
            "sha256" => decode_digest::<32>(value).is_some(),
            "sha384" => decode_digest::<48>(value).is_some(),
            // Other algorithms are allowed by in-toto and ignored by us.
            _ => true,
        };
        if !ok {
            return Err(ManifestError::Digest {
                entry: entry
                    .uri
                    .clone()
                    .or_else(|| entry.name.clone())
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect(),
                algorithm: algorithm.chars().take(20).collect(),
            });
        }
    }
    Ok(())
}

fn check_statement(statement: &Statement) -> Result<(), ManifestError> {
    expect("_type", &statement.statement_type, STATEMENT_TYPE)?;
    expect("predicateType", &statement.predicate_type, PREDICATE_TYPE)?;
    match statement.subject.as_slice() {
        [subject] if subject.name.is_some() && subject.digest.contains_key("sha256") => {}
        _ => return Err(ManifestError::Subject),
    }
    let definition = &statement.predicate.build_definition;
    let descriptors = statement
        .subject
        .iter()
        .chain(&definition.resolved_dependencies)
        .chain(&statement.predicate.run_details.byproducts);
    for descriptor in descriptors {
        check_digests(descriptor)?;
    }
    match definition.build_type.as_str() {
        BUILD_TYPE_REPRODUCIBLE => {
            let external: ExternalParameters =
                serde_json::from_value(definition.external_parameters.clone())?;
            // `verify` rebuilds with this profile only.
            expect(
                "externalParameters.profile",
                &external.profile,
                crate::build::PROFILE,
            )?;
            serde_json::from_value::<InternalParameters>(definition.internal_parameters.clone())?;
            let mut seen = std::collections::BTreeSet::new();
            for dependency in &definition.resolved_dependencies {
                match (&dependency.uri, &dependency.name) {
                    (Some(uri), _) if uri.starts_with("file:") => {
                        if !dependency.digest.contains_key("sha256") {
                            return Err(ManifestError::Dependency(uri.clone()));
                        }
                        if !seen.insert(uri) {
                            return Err(ManifestError::DuplicateInput(uri.clone()));
                        }
                    }
                    (None, Some(name)) if name == TOOLCHAIN_DEPENDENCY => {}
                    (uri, name) => {
                        return Err(ManifestError::Dependency(
                            uri.clone().or_else(|| name.clone()).unwrap_or_default(),
                        ));
                    }
                }
            }
        }
        BUILD_TYPE_UNREPRODUCED_INSECURE_DEVNET => {}
        other => {
            return Err(ManifestError::Unexpected {
                field: "buildType",
                found: other.chars().take(200).collect(),
                expected: BUILD_TYPE_REPRODUCIBLE,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
