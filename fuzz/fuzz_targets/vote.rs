//! Validators' votes and registry proposals (`docs/directory-format.md`,
//! "Vote" and "Proposal"): what a registry parses when a validator votes, and
//! what a validator parses when it fetches a proposal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_directory::vote::{SignedVote, tally};
use openrelay_directory::{Directory, Proposal};

fuzz_target!(|data: &[u8]| {
    // Whatever decodes is canonical: it re-encodes to exactly the input.
    if let Ok(v) = SignedVote::from_bytes(data) {
        assert_eq!(v.to_bytes(), data);
        let _ = v.verify();
        let _ = tally([v.vote()]);
    }
    if let Ok(p) = Proposal::from_bytes(data) {
        assert_eq!(p.to_bytes(), data);
        for v in &p.votes {
            let _ = v.verify();
        }
        let _ = tally(p.votes.iter().map(SignedVote::vote));
        if let Ok(d) = Directory::from_bytes(&p.directory) {
            assert_eq!(d.to_bytes(), p.directory);
        }
    }
});
