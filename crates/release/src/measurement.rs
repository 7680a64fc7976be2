//! What a TEE reports for a release's executable, so the relay side (the
//! attestation evidence) and the release manifest compute it the same way.

use sha2::{Digest, Sha384};

/// The name of the simulated platform's measurement in a manifest's
/// `runDetails.byproducts`. Simulated evidence proves nothing about the
/// host; it exists so the devnet and CI exercise the chain end to end.
pub const INSECURE_SIMULATED: &str = "measurement/insecure-simulated";

/// The measurement the devnet's simulated TEE reports for a relay: SHA-384
/// of the relay's executable file, byte for byte (48 bytes, the size of a
/// SEV-SNP launch measurement and of a TDX MRTD, so evidence formats carry
/// it unchanged).
pub fn insecure_simulated_measurement(executable: &[u8]) -> [u8; 48] {
    Sha384::digest(executable).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_measurement_is_sha384_of_the_executable() {
        // FIPS 180-2 appendix D.1: SHA-384("abc").
        assert_eq!(
            hex::encode(insecure_simulated_measurement(b"abc")),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
             8086072ba1e7cc2358baeca134c825a7"
        );
    }
}
