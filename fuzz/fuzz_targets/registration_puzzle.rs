//! The registration puzzle and the upload that carries its solution
//! (openrelay_issuer_client::puzzle): the issuer splits uploads from anyone and
//! clients decode puzzles from the issuer. Nothing panics, what parses
//! re-encodes to the same bytes, and no edited puzzle verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_issuer_client::puzzle::{Puzzle, join_solution, split_solution};

fuzz_target!(|data: &[u8]| {
    if let Ok((puzzle, counter, rest)) = split_solution(data) {
        assert_eq!(join_solution(&puzzle, counter, rest), data);
        // Not issued under this key: never accepted, whatever the counter.
        assert!(puzzle.verify(&[0x5a; 32], 0, 0, "fuzz", counter).is_err());
    }
    if let Ok(puzzle) = Puzzle::decode(data) {
        assert_eq!(&puzzle.encode()[..], data);
    }
});
