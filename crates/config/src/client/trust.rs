//! `[trust]` in the client config: what the client asks of a relay beyond
//! the directory's signatures. Today that is remote attestation (issue 15,
//! item 5): whether a relay must prove, with evidence from its TEE, that it
//! runs an approved release (`docs/attestation.md`).

use serde::{Deserialize, Serialize};

/// How attestation decides which relays a path may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttestationMode {
    /// Ignore evidence: every listed relay may be used.
    Off,
    /// Use attested relays when a path of attested relays exists, any
    /// listed relay otherwise (today's networks have few TEEs).
    #[default]
    Prefer,
    /// Use only relays whose evidence verifies, is bound to the key the
    /// client pins and measures an approved, unrevoked release; with none,
    /// build no path (fail closed) and say why each candidate was refused.
    Require,
}

impl std::fmt::Display for AttestationMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttestationMode::Off => "off",
            AttestationMode::Prefer => "prefer",
            AttestationMode::Require => "require",
        })
    }
}

/// `[trust]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrustPolicyConfig {
    /// `off`, `prefer` (default) or `require`.
    pub attestation: AttestationMode,
    /// `[trust.tee]`: which platforms' evidence is accepted and at which
    /// TCB levels and advisories (`openrelay_attest::Policy`; its default
    /// is the strict one: no debug, no outdated TCB, no advisories, no
    /// simulated TEE).
    pub tee: openrelay_attest::Policy,
}
