//! Diffs between consecutive signed directories (issue 16, item 4; the role
//! Tor's consensus diffs play, in our binary format; `docs/directory-format.md`,
//! "Directory diffs").
//!
//! A diff turns the bytes of one signed directory (the client's held copy,
//! named by its [`SignedDirectoryDigest`]) into the bytes of another. It is
//! never trusted by itself: [`DirectoryDiff::apply`] only reproduces bytes,
//! which the client then verifies exactly as a full directory (the
//! validators' signatures cover the resulting body). The decoder is a parser
//! of untrusted bytes: the result is at most [`MAX_DIFF_RESULT_BYTES`], a
//! diff at most [`MAX_DIFF_OPS`] operations, and only one encoding of a list
//! of operations decodes (no empty operations, no two inserts in a row, no
//! copy continuing the one before it).

use std::collections::HashMap;

use crate::FormatError;
use crate::codec::Reader;

/// Version byte leading every diff.
pub const DIFF_VERSION: u8 = 1;
/// Largest signed directory a diff may produce: a body at its limit plus the
/// envelope's signatures and validator set hand-overs (at most 64 and
/// 1,024; about 9.4 MiB at their largest). A larger result is refused and
/// the client fetches the full directory.
pub const MAX_DIFF_RESULT_BYTES: usize = crate::MAX_DIRECTORY_BYTES + 16 * 1024 * 1024;
/// Most operations in one diff (the diff of two unrelated directories at
/// their largest needs one insert; a 2 % churn at 100,000 relays about
/// 14,000).
pub const MAX_DIFF_OPS: usize = 1 << 20;
/// Shortest run of equal bytes [`DirectoryDiff::between`] looks for: shorter
/// ones cost as much to name (a copy is 9 bytes) as to send.
const MATCH_LEN: usize = 32;
const OP_COPY: u8 = 0;
const OP_INSERT: u8 = 1;

crate::digest::sha256_digest!(
    /// SHA-256 of a signed directory's bytes (the envelope, as served and as
    /// a client keeps it): names the copy a diff starts from.
    SignedDirectoryDigest
);

/// One step of a diff: the result is the concatenation of its operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffOp {
    /// `len` bytes of the base directory from `offset`.
    Copy {
        /// Where in the base.
        offset: u32,
        /// How many bytes (at least 1).
        len: u32,
    },
    /// New bytes (at least 1).
    Insert(Vec<u8>),
}

/// The bytes that turn one signed directory into another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryDiff {
    from: SignedDirectoryDigest,
    to: SignedDirectoryDigest,
    ops: Vec<DiffOp>,
}

/// Why a diff does not apply to the held directory. The client then fetches
/// the full directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// The diff's bytes break the format.
    #[error("malformed diff: {0}")]
    Format(#[from] FormatError),
    /// The diff starts from another directory than the held one.
    #[error("the diff starts from {diff}, not from the held directory {held}")]
    WrongBase {
        /// What the diff names.
        diff: SignedDirectoryDigest,
        /// What is held.
        held: SignedDirectoryDigest,
    },
    /// A copy reaches past the end of the base.
    #[error("a copy reaches past the base's {base_len} bytes")]
    CopyOutOfRange {
        /// The base's length.
        base_len: usize,
    },
    /// The result is not the directory the diff names.
    #[error("the result is not the directory the diff names")]
    WrongResult,
}

impl DirectoryDiff {
    /// The diff from `from` to `to` (both signed directories' bytes, at most
    /// [`MAX_DIFF_RESULT_BYTES`] each): copies of every run of at least 32
    /// bytes of `to` found in `from`, the rest inserted.
    pub fn between(from: &[u8], to: &[u8]) -> Result<Self, FormatError> {
        for bytes in [from, to] {
            if bytes.len() > MAX_DIFF_RESULT_BYTES {
                return Err(FormatError::TooLarge {
                    what: "diffed directory",
                    limit: MAX_DIFF_RESULT_BYTES,
                });
            }
        }
        let mut ops = Ops::default();
        // Blocks of the base at multiples of MATCH_LEN, by content: a run of
        // 2 × MATCH_LEN equal bytes always covers one whole block.
        let mut blocks: HashMap<&[u8], u32> = HashMap::with_capacity(from.len() / MATCH_LEN);
        for (i, block) in from.chunks_exact(MATCH_LEN).enumerate() {
            // At most MAX_DIFF_RESULT_BYTES < 2^32 (checked above).
            blocks.entry(block).or_insert((i * MATCH_LEN) as u32);
        }
        let mut pending = 0; // start of the bytes not yet covered
        let mut at = 0;
        // Where the last copy ended in the base: unchanged stretches are
        // tried there first, without a lookup.
        let mut next_in_base = 0usize;
        while at + MATCH_LEN <= to.len() {
            let window = &to[at..at + MATCH_LEN];
            let candidate = if from.get(next_in_base..next_in_base + MATCH_LEN) == Some(window) {
                Some(next_in_base)
            } else {
                blocks.get(window).map(|&o| o as usize)
            };
            let Some(start) = candidate else {
                // Most changes replace bytes by as many (times, signatures):
                // keep the base's position in step.
                at += 1;
                next_in_base += 1;
                continue;
            };
            // Extend backwards into the uncovered bytes, then forwards.
            let back = to[pending..at]
                .iter()
                .rev()
                .zip(from[..start].iter().rev())
                .take_while(|(a, b)| a == b)
                .count();
            let forward = to[at..]
                .iter()
                .zip(&from[start..])
                .take_while(|(a, b)| a == b)
                .count();
            ops.insert(&to[pending..at - back]);
            ops.copy(start - back, back + forward);
            at += forward;
            pending = at;
            next_in_base = start + forward;
        }
        ops.insert(&to[pending..]);
        if ops.0.len() > MAX_DIFF_OPS {
            // Only for unrelated inputs with scattered common runs.
            ops = Ops::default();
            ops.insert(to);
        }
        Ok(DirectoryDiff {
            from: SignedDirectoryDigest::of(from),
            to: SignedDirectoryDigest::of(to),
            ops: ops.0,
        })
    }

    /// The directory this diff starts from.
    pub fn from(&self) -> SignedDirectoryDigest {
        self.from
    }

    /// The directory it produces.
    pub fn to(&self) -> SignedDirectoryDigest {
        self.to
    }

    /// Its operations.
    pub fn ops(&self) -> &[DiffOp] {
        &self.ops
    }

    /// The bytes this diff makes of `base`. Checks only that `base` is the
    /// directory it starts from and the result the one it names: the caller
    /// verifies the result as a full directory.
    pub fn apply(&self, base: &[u8]) -> Result<Vec<u8>, DiffError> {
        let held = SignedDirectoryDigest::of(base);
        if held != self.from {
            return Err(DiffError::WrongBase {
                diff: self.from,
                held,
            });
        }
        let mut out = Vec::with_capacity(self.result_len());
        for op in &self.ops {
            match op {
                DiffOp::Copy { offset, len } => {
                    let (offset, len) = (*offset as usize, *len as usize);
                    let piece = base.get(offset..offset.saturating_add(len)).ok_or(
                        DiffError::CopyOutOfRange {
                            base_len: base.len(),
                        },
                    )?;
                    out.extend_from_slice(piece);
                }
                DiffOp::Insert(bytes) => out.extend_from_slice(bytes),
            }
        }
        if SignedDirectoryDigest::of(&out) != self.to {
            return Err(DiffError::WrongResult);
        }
        Ok(out)
    }

    /// How many bytes the result has (at most [`MAX_DIFF_RESULT_BYTES`] for
    /// a decoded or computed diff).
    pub fn result_len(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                DiffOp::Copy { len, .. } => *len as usize,
                DiffOp::Insert(bytes) => bytes.len(),
            })
            .sum()
    }

    /// `version u8 ‖ from [32] ‖ to [32] ‖ result length u32 ‖ op count u32 ‖
    /// ops`, each op `0 ‖ offset u32 ‖ len u32` (copy) or `1 ‖ len u32 ‖
    /// bytes` (insert).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.push(DIFF_VERSION);
        out.extend_from_slice(self.from.as_bytes());
        out.extend_from_slice(self.to.as_bytes());
        // Both at most MAX_DIFF_RESULT_BYTES and MAX_DIFF_OPS (< 2^32) for a
        // decoded or computed diff.
        out.extend_from_slice(&(self.result_len() as u32).to_be_bytes());
        out.extend_from_slice(&(self.ops.len() as u32).to_be_bytes());
        for op in &self.ops {
            match op {
                DiffOp::Copy { offset, len } => {
                    out.push(OP_COPY);
                    out.extend_from_slice(&offset.to_be_bytes());
                    out.extend_from_slice(&len.to_be_bytes());
                }
                DiffOp::Insert(bytes) => {
                    out.push(OP_INSERT);
                    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                    out.extend_from_slice(bytes);
                }
            }
        }
        out
    }

    /// Decodes a diff, refusing anything but the one encoding of a list of
    /// operations (see the module docs) and results over
    /// [`MAX_DIFF_RESULT_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        crate::codec::decode_exact(bytes, |r| {
            let version = r.u8()?;
            if version != DIFF_VERSION {
                return Err(FormatError::UnsupportedVersion {
                    object: "directory diff",
                    version,
                });
            }
            let from = SignedDirectoryDigest::from_bytes(r.array()?);
            let to = SignedDirectoryDigest::from_bytes(r.array()?);
            let result_len = r.u32()? as usize;
            if result_len > MAX_DIFF_RESULT_BYTES {
                return Err(FormatError::TooLarge {
                    what: "diff result",
                    limit: MAX_DIFF_RESULT_BYTES,
                });
            }
            let count = r.u32()? as usize;
            if count > MAX_DIFF_OPS {
                return Err(FormatError::TooLarge {
                    what: "diff operations",
                    limit: MAX_DIFF_OPS,
                });
            }
            let mut ops = Vec::with_capacity(crate::codec::bounded_capacity(
                count,
                r.remaining(),
                1 + 4 + 4,
            ));
            let mut produced = 0usize;
            for _ in 0..count {
                let op = read_op(r)?;
                produced += match &op {
                    DiffOp::Copy { len, .. } => *len as usize,
                    DiffOp::Insert(bytes) => bytes.len(),
                };
                if produced > result_len {
                    return Err(FormatError::Invalid {
                        field: "diff operations",
                        reason: "produce more than the result length",
                    });
                }
                let redundant = match (ops.last(), &op) {
                    (Some(DiffOp::Insert(_)), DiffOp::Insert(_)) => true,
                    (
                        Some(DiffOp::Copy { offset, len }),
                        DiffOp::Copy {
                            offset: next,
                            len: _,
                        },
                    ) => u64::from(*offset) + u64::from(*len) == u64::from(*next),
                    _ => false,
                };
                if redundant {
                    return Err(FormatError::Invalid {
                        field: "diff operations",
                        reason: "two inserts in a row, or a copy continuing the one before",
                    });
                }
                ops.push(op);
            }
            if produced != result_len {
                return Err(FormatError::Invalid {
                    field: "diff result length",
                    reason: "differs from what the operations produce",
                });
            }
            Ok(DirectoryDiff { from, to, ops })
        })
    }
}

fn read_op(r: &mut Reader<'_>) -> Result<DiffOp, FormatError> {
    let op = match r.u8()? {
        OP_COPY => {
            let offset = r.u32()?;
            let len = r.u32()?;
            if u64::from(offset) + u64::from(len) > MAX_DIFF_RESULT_BYTES as u64 {
                return Err(FormatError::Invalid {
                    field: "diff copy",
                    reason: "reaches past the largest directory",
                });
            }
            DiffOp::Copy { offset, len }
        }
        OP_INSERT => {
            let len = r.u32()? as usize;
            DiffOp::Insert(r.bytes(len)?.to_vec())
        }
        _ => {
            return Err(FormatError::Invalid {
                field: "diff operation",
                reason: "unknown tag",
            });
        }
    };
    let empty = match &op {
        DiffOp::Copy { len, .. } => *len == 0,
        DiffOp::Insert(bytes) => bytes.is_empty(),
    };
    if empty {
        return Err(FormatError::Invalid {
            field: "diff operation",
            reason: "empty",
        });
    }
    Ok(op)
}

/// Operations under construction, kept canonical: no empty ones, no two
/// inserts in a row, contiguous copies merged.
#[derive(Default)]
struct Ops(Vec<DiffOp>);

impl Ops {
    fn insert(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Some(DiffOp::Insert(last)) = self.0.last_mut() {
            last.extend_from_slice(bytes);
        } else {
            self.0.push(DiffOp::Insert(bytes.to_vec()));
        }
    }

    /// A copy of `len` bytes of the base from `offset` (both below 2^32:
    /// the base is at most MAX_DIFF_RESULT_BYTES).
    fn copy(&mut self, offset: usize, len: usize) {
        if len == 0 {
            return;
        }
        if let Some(DiffOp::Copy {
            offset: last_offset,
            len: last_len,
        }) = self.0.last_mut()
            && *last_offset as usize + *last_len as usize == offset
        {
            *last_len += len as u32;
            return;
        }
        self.0.push(DiffOp::Copy {
            offset: offset as u32,
            len: len as u32,
        });
    }
}
