//! What a registry asks validators to sign: the directory bytes and the
//! validators' votes it was built from (`docs/directory-format.md`,
//! "Proposal"). Nothing in it is signed as a whole: the directory is what
//! validators sign, each vote carries its own validator's signature.

use bytes::Bytes;

use crate::FormatError;
use crate::codec::{
    Reader, put_directory_bytes, put_small_count, read_directory_bytes, read_small_count,
};
use crate::vote::SignedVote;

/// The format version of proposals this crate reads and writes.
pub const PROPOSAL_VERSION: u8 = 1;

/// A proposal: a directory's canonical bytes and the votes behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// The directory's canonical bytes ([`crate::Directory::to_bytes`]), not
    /// parsed by [`Proposal::from_bytes`].
    pub directory: Bytes,
    /// The validators' votes the directory was built from, in any order
    /// (at most [`MAX_DIRECTORY_SIGNATURES`](crate::MAX_DIRECTORY_SIGNATURES)).
    pub votes: Vec<SignedVote>,
}

impl Proposal {
    /// The proposal's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 4 + self.directory.len() + 1);
        out.push(PROPOSAL_VERSION);
        put_directory_bytes(&mut out, &self.directory);
        let count = put_small_count(&mut out, self.votes.len(), crate::MAX_DIRECTORY_SIGNATURES);
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
        let directory = read_directory_bytes(&mut r)?;
        let count = read_small_count(&mut r, "votes", crate::MAX_DIRECTORY_SIGNATURES)?;
        let mut votes = Vec::with_capacity(count);
        for _ in 0..count {
            votes.push(SignedVote::decode(&mut r)?);
        }
        r.finish()?;
        Ok(Proposal { directory, votes })
    }
}
