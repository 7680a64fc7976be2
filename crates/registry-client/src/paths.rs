//! Paths of the registry's HTTP API (the publication paths are the
//! validators' too).

/// Operator profiles.
pub const PROFILES: &str = "/v1/profiles";
/// Relay descriptors.
pub const DESCRIPTORS: &str = "/v1/descriptors";
/// Issuers' signed token key sets.
pub const ISSUER_KEYS: &str = "/v1/issuer-keys";
/// Validators' votes.
pub const VOTES: &str = "/v1/votes";
/// The proposal for validators.
pub const PROPOSAL: &str = "/v1/proposal";
/// Validator signatures.
pub const SIGNATURES: &str = "/v1/signatures";
/// The signed directory.
pub const DIRECTORY: &str = "/v1/directory";
/// The diff from a held signed directory to the newest (issue 16):
/// `?from=` and the held directory's SHA-256, hex.
pub const DIRECTORY_DIFF: &str = "/v1/directory/diff";
/// Validator set hand-overs signed by members of the previous set
/// (issue 13, item 4).
pub const HANDOVERS: &str = "/v1/handovers";
/// The latest measurement verdicts and their explanations, JSON
/// (issue 14, item 4): `?relay=`, `?operator=` and `?after=` (see
/// [`crate::measurements`]).
pub const MEASUREMENTS: &str = "/v1/measurements";
