//! The registration puzzle: a proof of work that makes accounts cost
//! something, so the per-account token quota limits something.
//!
//! The issuer hands out puzzles without keeping them (`GET
//! /v1/register/puzzle`): each carries its difficulty, an expiry and a random
//! nonce, authenticated with HMAC-SHA256 under a key only the issuer holds.
//! The client searches a counter whose hash, bound to the puzzle and to the
//! account name, has `bits` leading zero bits (about 2^bits SHA-256 hashes),
//! and sends it with the registration. The issuer checks the tag, the expiry,
//! the difficulty and the hash (one HMAC and one hash), and accepts each
//! puzzle once: its nonce is stored with the new account, in the same
//! transaction, until the puzzle expires.
//!
//! Why a puzzle and not a free-tier token: a token needs an issuer that
//! already trusts someone (an account, a payment); a puzzle needs nothing,
//! works offline from the issuer's state, and its price is one visible
//! number (`registration_puzzle_bits`). Its limit: SHA-256 is fast on GPUs,
//! so it prices accounts for ordinary machines, not for a determined
//! attacker with hardware; the quota per account and login throttling still
//! bound what each account can do.
//!
//! ```text
//! puzzle   = version (1) = 1 ‖ bits (1) ‖ expires, Unix s (8) ‖ nonce (16) ‖
//!            tag = HMAC-SHA256(key, PUZZLE_TAG_PREFIX ‖ the 26 bytes before) (32)
//! solution = counter (8), such that
//!            SHA-256(SOLUTION_PREFIX ‖ puzzle ‖ u16 name length ‖ name ‖ counter)
//!            starts with `bits` zero bits
//! ```

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The encoded size of a puzzle.
pub const PUZZLE_LEN: usize = 1 + 1 + 8 + 16 + 32;
/// The encoded size of a solution.
pub const SOLUTION_LEN: usize = 8;
/// How long a puzzle may be solved and used.
pub const PUZZLE_LIFETIME_SECS: u64 = 600;
/// What the issuer's tag covers, after this prefix.
const PUZZLE_TAG_PREFIX: &[u8] = b"openrelay registration puzzle v1\0";
/// What a solution hashes, after this prefix.
const SOLUTION_PREFIX: &[u8] = b"openrelay registration solution v1\0";
const VERSION: u8 = 1;

/// Why a puzzle or its solution was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PuzzleError {
    /// Not the size or version of a puzzle.
    #[error("malformed registration puzzle")]
    Malformed,
    /// The tag does not verify: not a puzzle of this issuer.
    #[error("registration puzzle not issued here")]
    Forged,
    /// Past its expiry (or implausibly far ahead).
    #[error("registration puzzle expired; fetch a new one")]
    Expired,
    /// Easier than the issuer now asks.
    #[error("registration puzzle too easy; fetch a new one")]
    TooEasy,
    /// The solution's hash lacks the zero bits.
    #[error("registration puzzle not solved")]
    Unsolved,
}

/// A registration puzzle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Puzzle {
    /// Leading zero bits a solution's hash needs.
    pub bits: u8,
    /// Unix time after which it is refused.
    pub expires: u64,
    /// Random; what makes it single-use.
    pub nonce: [u8; 16],
    tag: [u8; 32],
}

fn mac(key: &[u8; 32], body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(PUZZLE_TAG_PREFIX);
    mac.update(body);
    mac
}

impl Puzzle {
    /// A fresh puzzle of `bits` under `key`, valid until `now` plus
    /// [`PUZZLE_LIFETIME_SECS`].
    pub fn issue(key: &[u8; 32], bits: u8, now: u64, nonce: [u8; 16]) -> Self {
        let mut puzzle = Puzzle {
            bits,
            expires: now.saturating_add(PUZZLE_LIFETIME_SECS),
            nonce,
            tag: [0; 32],
        };
        puzzle.tag = mac(key, &puzzle.body()).finalize().into_bytes().into();
        puzzle
    }

    fn body(&self) -> [u8; 26] {
        let mut body = [0u8; 26];
        body[0] = VERSION;
        body[1] = self.bits;
        body[2..10].copy_from_slice(&self.expires.to_be_bytes());
        body[10..].copy_from_slice(&self.nonce);
        body
    }

    /// The encoding above.
    pub fn encode(&self) -> [u8; PUZZLE_LEN] {
        let mut out = [0u8; PUZZLE_LEN];
        out[..26].copy_from_slice(&self.body());
        out[26..].copy_from_slice(&self.tag);
        out
    }

    /// Parses a puzzle (its tag is checked by [`Puzzle::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, PuzzleError> {
        let bytes = <&[u8; PUZZLE_LEN]>::try_from(bytes).map_err(|_| PuzzleError::Malformed)?;
        if bytes[0] != VERSION {
            return Err(PuzzleError::Malformed);
        }
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&bytes[2..10]);
        let mut nonce = [0u8; 16];
        nonce.copy_from_slice(&bytes[10..26]);
        let mut tag = [0u8; 32];
        tag.copy_from_slice(&bytes[26..]);
        Ok(Puzzle {
            bits: bytes[1],
            expires: u64::from_be_bytes(expires),
            nonce,
            tag,
        })
    }

    fn solution_hash(&self, username: &str, counter: u64) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(SOLUTION_PREFIX);
        hash.update(self.encode());
        // Names are at most 64 bytes (crate::MAX_USERNAME).
        hash.update((username.len() as u16).to_be_bytes());
        hash.update(username.as_bytes());
        hash.update(counter.to_be_bytes());
        hash.finalize().into()
    }

    /// The client's work: the first counter that solves the puzzle for
    /// `username` (about 2^bits hashes; run it off the async runtime).
    pub fn solve(&self, username: &str) -> u64 {
        (0..=u64::MAX)
            .find(|counter| leading_zero_bits(&self.solution_hash(username, *counter)) >= self.bits)
            .unwrap_or(u64::MAX)
    }

    /// The issuer's check: its own puzzle (the tag, in constant time), not
    /// expired at `now`, at least `min_bits` hard, solved by `counter` for
    /// `username`. Whether it was used before is the store's question.
    pub fn verify(
        &self,
        key: &[u8; 32],
        min_bits: u8,
        now: u64,
        username: &str,
        counter: u64,
    ) -> Result<(), PuzzleError> {
        mac(key, &self.body())
            .verify_slice(&self.tag)
            .map_err(|_| PuzzleError::Forged)?;
        if self.expires <= now || self.expires > now.saturating_add(PUZZLE_LIFETIME_SECS) {
            return Err(PuzzleError::Expired);
        }
        if self.bits < min_bits {
            return Err(PuzzleError::TooEasy);
        }
        if leading_zero_bits(&self.solution_hash(username, counter)) < self.bits {
            return Err(PuzzleError::Unsolved);
        }
        Ok(())
    }
}

/// A registration upload as the issuer receives it: `puzzle ‖ solution ‖
/// rest` (the rest is the OPAQUE `RegistrationUpload`). `Malformed` if it
/// does not start with a puzzle and a solution.
pub fn split_solution(message: &[u8]) -> Result<(Puzzle, u64, &[u8]), PuzzleError> {
    let (puzzle, rest) = message
        .split_at_checked(PUZZLE_LEN)
        .ok_or(PuzzleError::Malformed)?;
    let (counter, rest) = rest
        .split_first_chunk::<SOLUTION_LEN>()
        .ok_or(PuzzleError::Malformed)?;
    Ok((Puzzle::decode(puzzle)?, u64::from_be_bytes(*counter), rest))
}

/// What a client sends: `puzzle ‖ counter ‖ rest` (see [`split_solution`]).
pub fn join_solution(puzzle: &Puzzle, counter: u64, rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(PUZZLE_LEN + SOLUTION_LEN + rest.len());
    out.extend_from_slice(&puzzle.encode());
    out.extend_from_slice(&counter.to_be_bytes());
    out.extend_from_slice(rest);
    out
}

fn leading_zero_bits(hash: &[u8; 32]) -> u8 {
    let mut bits = 0u8;
    for byte in hash {
        if *byte != 0 {
            // At most 7 more: fits.
            return bits.saturating_add(byte.leading_zeros() as u8);
        }
        bits = bits.saturating_add(8);
    }
    bits
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: [u8; 32] = [7; 32];
    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_solved_puzzle_verifies_once_bound_to_its_name_and_key() {
        let puzzle = Puzzle::issue(&KEY, 10, NOW, [1; 16]);
        let counter = puzzle.solve("alice");
        let parsed = Puzzle::decode(&puzzle.encode()).unwrap();
        assert_eq!(parsed, puzzle);
        assert_eq!(parsed.verify(&KEY, 10, NOW + 1, "alice", counter), Ok(()));
        // Another name, another key, a lower counter, later, harder now.
        assert_eq!(
            parsed.verify(&KEY, 10, NOW, "mallory", counter),
            Err(PuzzleError::Unsolved),
            "a solution for one name serves another (1 in 1024 by chance)"
        );
        assert_eq!(
            parsed.verify(&[8; 32], 10, NOW, "alice", counter),
            Err(PuzzleError::Forged)
        );
        assert_eq!(
            parsed.verify(&KEY, 10, NOW + PUZZLE_LIFETIME_SECS, "alice", counter),
            Err(PuzzleError::Expired)
        );
        assert_eq!(
            parsed.verify(&KEY, 11, NOW, "alice", counter),
            Err(PuzzleError::TooEasy)
        );
        if counter > 0 {
            assert_eq!(
                parsed.verify(&KEY, 10, NOW, "alice", counter - 1),
                Err(PuzzleError::Unsolved)
            );
        }
    }

    #[test]
    fn an_edited_puzzle_is_forged() {
        let puzzle = Puzzle::issue(&KEY, 12, NOW, [1; 16]);
        for index in 0..PUZZLE_LEN {
            let mut bytes = puzzle.encode();
            bytes[index] ^= 1;
            if let Ok(edited) = Puzzle::decode(&bytes) {
                assert_eq!(
                    edited.verify(&KEY, 0, NOW, "alice", 0),
                    Err(PuzzleError::Forged),
                    "byte {index}"
                );
            }
        }
    }

    #[test]
    fn work_grows_with_bits() {
        let puzzle = Puzzle::issue(&KEY, 0, NOW, [2; 16]);
        assert_eq!(puzzle.solve("a"), 0, "zero bits: any counter");
        // Over 32 puzzles of 8 bits, the mean search is near 256.
        let total: u64 = (0..32u8)
            .map(|n| Puzzle::issue(&KEY, 8, NOW, [n; 16]).solve("a") + 1)
            .sum();
        assert!((32 * 64..32 * 1024).contains(&total), "{total}");
    }

    proptest! {
        #[test]
        fn decoding_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(puzzle) = Puzzle::decode(&bytes) {
                prop_assert_eq!(puzzle.encode().to_vec(), bytes);
            }
        }

        #[test]
        fn uploads_split_as_they_were_joined(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok((puzzle, counter, rest)) = split_solution(&bytes) {
                prop_assert_eq!(join_solution(&puzzle, counter, rest), bytes);
            }
        }
    }
}
