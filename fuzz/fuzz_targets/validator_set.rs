//! Validator sets and their hand-overs (`docs/directory-format.md`,
//! "Validator set hand-over"): what a client parses from a directory
//! envelope and from its own persisted state, then walks from its genesis
//! set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_directory::{
    ChainAnchor, Directory, SignedDirectory, SignedValidatorSetChange, TrustConfig, ValidatorKey,
    ValidatorMember, ValidatorSet, ValidatorSetChange, verify_directory,
};

fuzz_target!(|data: &[u8]| {
    // Whatever decodes is canonical: it re-encodes to exactly the input.
    if let Ok(set) = ValidatorSet::from_bytes(data) {
        assert_eq!(set.to_bytes(), data);
        let _ = set.is_more_than_two_thirds(set.total_weight() / 3 * 2);
    }
    if let Ok(change) = ValidatorSetChange::from_bytes(data) {
        assert_eq!(change.to_bytes(), data);
    }
    if let Ok(signed) = SignedValidatorSetChange::from_bytes(data) {
        assert_eq!(signed.to_bytes(), data);
        // Walked from a fixed genesis set whose only member signs it, then
        // used for an empty chain directory of its epoch, so the walk and
        // the quorum checks are reached with the fuzzed set.
        let genesis = ValidatorKey::from_bytes(&[7; 32]);
        let set = ValidatorSet::new(
            0,
            vec![ValidatorMember {
                validator: genesis.id(),
                weight: 1,
            }],
        )
        .expect("a valid set");
        let trust = TrustConfig::genesis(set, u64::MAX).expect("a valid trust config");
        let mut resigned = SignedValidatorSetChange::new(signed.change().clone());
        resigned.sign(&genesis);
        let directory = Directory::new(1, 1_750_000_000, 1_750_003_600, vec![], vec![])
            .and_then(|d| {
                d.with_chain(openrelay_directory::ChainSection {
                    anchor: ChainAnchor {
                        block_number: signed.change().anchor().block_number,
                        ..*signed.change().anchor()
                    },
                    validator_epoch: signed.change().epoch(),
                    operators: vec![],
                    relays: vec![],
                    releases: vec![],
                })
            })
            .expect("a valid directory");
        for handover in [signed, resigned] {
            if let Ok(envelope) = SignedDirectory::new(&directory).with_handovers(vec![handover]) {
                let _ = verify_directory(envelope, &trust, 1_750_000_060, None);
            }
        }
    }
});
