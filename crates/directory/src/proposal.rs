//! What a registry asks validators to sign: the directory bytes and the
//! validators' votes it was built from (`docs/directory-format.md`,
//! "Proposal"). Nothing in it is signed as a whole: the directory is what
//! validators sign, each vote carries its own validator's signature.

use crate::FormatError;
use crate::codec::{Reader, put_count_u32};
use crate::vote::SignedVote;

/// The format version of proposals this crate reads and writes.
pub const PROPOSAL_VERSION: u8 = 1;

/// A proposal: a directory's canonical bytes and the votes behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The directory's canonical bytes ([`crate::Directory::to_bytes`]), not
    /// parsed by [`Proposal::from_bytes`].
    pub directory: Vec<u8>,
    /// The validators' votes the directory was built from, in any order
    /// (at most [`MAX_DIRECTORY_SIGNATURES`](crate::MAX_DIRECTORY_SIGNATURES)).
    pub votes: Vec<SignedVote>,
}

impl Proposal {
    /// The proposal's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 4 + self.directory.len() + 1);
        out.push(PROPOSAL_VERSION);
        put_count_u32(&mut out, self.directory.len());
        out.extend_from_slice(&self.directory);
        // At most MAX_DIRECTORY_SIGNATURES (a `u8`) are encoded; a longer list
        // cannot have come from `from_bytes` and is cut rather than panicking.
        let count = self.votes.len().min(crate::MAX_DIRECTORY_SIGNATURES);
        out.push(u8::try_from(count).unwrap_or(u8::MAX));
        for vote in self.votes.iter().take(count) {
            vote.encode(&mut out);
        }
        out
    }

    /// Parses a proposal: bounds the directory's size (not its contents) and
    /// decodes every vote (signatures unchecked).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes);
        r.version("proposal", PROPOSAL_VERSION)?;
        let len = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if len > crate::MAX_DIRECTORY_BYTES {
            return Err(FormatError::TooLarge {
                what: "directory",
                limit: crate::MAX_DIRECTORY_BYTES,
            });
        }
        let directory = r.bytes(len)?.to_vec();
        let count = usize::from(r.u8()?);
        if count > crate::MAX_DIRECTORY_SIGNATURES {
            return Err(FormatError::TooLarge {
                what: "votes",
                limit: crate::MAX_DIRECTORY_SIGNATURES,
            });
        }
        let mut votes = Vec::with_capacity(count);
        for _ in 0..count {
            votes.push(SignedVote::decode(&mut r)?);
        }
        r.finish()?;
        Ok(Proposal { directory, votes })
    }
}

/// Largest proposal, in bytes: the largest directory and a vote of every
/// relay by each of the most validators.
pub const MAX_PROPOSAL_BYTES: usize = 1
    + 4
    + crate::MAX_DIRECTORY_BYTES
    + 1
    + crate::MAX_DIRECTORY_SIGNATURES * crate::vote::MAX_SIGNED_VOTE_BYTES;
