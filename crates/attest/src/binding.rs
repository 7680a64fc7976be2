//! What a relay's TEE report binds: the relay, the key its clients pin and
//! a freshness value, hashed into the 64 bytes of report data every
//! platform signs (SEV-SNP REPORT_DATA, TDX/SGX REPORTDATA).

use sha2::{Digest, Sha512};

/// Domain separation: these 64 bytes mean nothing else anywhere.
const REPORT_DATA_DOMAIN: &[u8] = b"openrelay attestation report data v1\0";

/// The statement a relay's evidence makes: "this TEE runs the relay whose
/// id and pinned QUIC key these are, as of `not_before`". Raw byte arrays,
/// so this crate depends on no other openrelay crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The relay's id (32 bytes, as in its descriptor).
    pub relay_id: [u8; 32],
    /// The QUIC key pin clients check on connect (32 bytes).
    pub key_pin: [u8; 32],
    /// Freshness: the descriptor's `not_before`, Unix seconds. Evidence
    /// made for an older descriptor does not verify for a newer one, so a
    /// relay cannot keep presenting a report from before a TCB recovery.
    pub not_before: u64,
}

/// SHA-512 over the domain, the relay id, the key pin and `not_before`
/// (big-endian): fixed-size fields, so the encoding is unambiguous.
pub fn report_data(binding: &Binding) -> [u8; 64] {
    Sha512::new()
        .chain_update(REPORT_DATA_DOMAIN)
        .chain_update(binding.relay_id)
        .chain_update(binding.key_pin)
        .chain_update(binding.not_before.to_be_bytes())
        .finalize()
        .into()
}
