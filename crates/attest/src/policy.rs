//! What a verifier accepts: a plain, serde-friendly struct (the client's
//! `[trust]` configuration embeds it). `Policy::default()` is the policy
//! for real deployments: every hardware platform on, no debug, strict TCB
//! statuses, no advisories accepted, and the insecure simulated platform off.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The verifier's policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// AMD SEV-SNP.
    pub sev_snp: SnpPolicy,
    /// Intel TDX.
    pub tdx: DcapPolicy,
    /// Intel SGX.
    pub sgx: DcapPolicy,
    /// The Ed25519 public key (hex in TOML/JSON) of the devnet's simulated
    /// TEE. Evidence signed by it proves nothing about the relay's software:
    /// anyone with the devnet key makes it. Default none: such evidence is
    /// refused. Set only for a devnet or CI.
    #[serde(with = "hex_key")]
    pub insecure_simulated_root: Option<[u8; 32]>,
}

/// AMD SEV-SNP policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnpPolicy {
    /// Accept SEV-SNP evidence at all. Default true.
    pub enabled: bool,
    /// The least privileged VMPL whose report is accepted. Default 0: the
    /// report comes from the guest's most privileged level (no SVSM in
    /// between that could have asked for it on the relay's behalf).
    pub max_vmpl: u32,
    /// The lowest REPORTED_TCB accepted, per product (SVNs are numbered
    /// per product). Default all zero: raise a product's minimum after an
    /// AMD security bulletin names the fixed firmware, so hosts that have
    /// not installed it are refused (TCB recovery).
    pub minimum_tcb: SnpMinimumTcb,
}

impl Default for SnpPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            max_vmpl: 0,
            minimum_tcb: SnpMinimumTcb::default(),
        }
    }
}

/// The minimum SEV-SNP TCB per product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnpMinimumTcb {
    /// EPYC 7003.
    pub milan: SnpTcb,
    /// EPYC 9004.
    pub genoa: SnpTcb,
    /// EPYC 9005.
    pub turin: SnpTcb,
}

/// SEV-SNP TCB security version numbers (AMD SEV-SNP ABI, TCB_VERSION).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnpTcb {
    /// PSP bootloader SVN.
    pub bootloader: u8,
    /// PSP OS (TEE) SVN.
    pub tee: u8,
    /// SNP firmware SVN.
    pub snp: u8,
    /// Lowest microcode patch level of all cores.
    pub microcode: u8,
    /// FMC SVN (Turin and later; ignored for earlier products).
    pub fmc: u8,
}

impl fmt::Display for SnpTcb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bootloader {} tee {} snp {} microcode {} fmc {}",
            self.bootloader, self.tee, self.snp, self.microcode, self.fmc
        )
    }
}

/// Intel DCAP (TDX or SGX) policy: which TCB statuses and advisories are
/// accepted, like libsignal's `rust/attest` allow-list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DcapPolicy {
    /// Accept this platform's evidence at all. Default true.
    pub enabled: bool,
    /// Statuses accepted. Default `UpToDate` and `SWHardeningNeeded`: the
    /// latter always comes with advisory IDs, and each must also be in
    /// `accepted_advisories`. `Revoked` is refused whatever this says.
    pub accepted_statuses: Vec<DcapTcbStatus>,
    /// Advisory IDs (e.g. `INTEL-SA-00615`) accepted after review: every
    /// advisory of the platform's TCB level must be listed. Default none.
    pub accepted_advisories: Vec<String>,
}

impl Default for DcapPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            accepted_statuses: vec![DcapTcbStatus::UpToDate, DcapTcbStatus::SWHardeningNeeded],
            accepted_advisories: Vec::new(),
        }
    }
}

/// Intel's TCB status of a platform (names as in Intel's TCB info JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)] // Intel's names; Intel's PCS API documents them.
pub enum DcapTcbStatus {
    UpToDate,
    SWHardeningNeeded,
    ConfigurationNeeded,
    ConfigurationAndSWHardeningNeeded,
    OutOfDate,
    OutOfDateConfigurationNeeded,
    TDRelaunchAdvised,
    TDRelaunchAdvisedConfigurationNeeded,
    Revoked,
}

impl fmt::Display for DcapTcbStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `Option<[u8; 32]>` as an optional hex string.
mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(
        key: &Option<[u8; 32]>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match key {
            Some(key) => s.serialize_some(&crate::error::hex(key)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<[u8; 32]>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let bad = || D::Error::custom("expected 64 hex digits (an Ed25519 public key)");
        if text.len() != 64 || !text.is_ascii() {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (byte, pair) in key.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Some(key))
    }
}
