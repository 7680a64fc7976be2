//! Directory diffs (`docs/directory-format.md`, "Directory diffs"): a diff
//! reproduces the target exactly, decodes only canonically, and a diff that
//! would yield a forged directory is refused by verification.

#![allow(clippy::unwrap_used)]

use openrelay_directory::{
    DiffError, DiffOp, DirectoryDiff, FormatError, MAX_DIFF_OPS, SignedDirectory,
    SignedDirectoryDigest, TrustConfig, ValidatorKey, verify_directory_bytes,
};
use openrelay_testkit::fixtures;
use proptest::prelude::*;

/// Bytes with long shared runs, as consecutive directories have.
fn related() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        proptest::collection::vec(any::<u8>(), 0..2_000),
        proptest::collection::vec((any::<u16>(), any::<u8>()), 0..20),
        proptest::collection::vec(any::<u8>(), 0..100),
    )
        .prop_map(|(a, edits, tail)| {
            let mut b = a.clone();
            for (at, byte) in edits {
                if !b.is_empty() {
                    let at = usize::from(at) % b.len();
                    b[at] = byte;
                }
            }
            b.extend_from_slice(&tail);
            (a, b)
        })
}

proptest! {
    #[test]
    fn apply_of_diff_gives_the_target(a in proptest::collection::vec(any::<u8>(), 0..3_000),
                                      b in proptest::collection::vec(any::<u8>(), 0..3_000)) {
        let diff = DirectoryDiff::between(&a, &b).unwrap();
        prop_assert_eq!(diff.apply(&a).unwrap(), b.clone());
        let decoded = DirectoryDiff::from_bytes(&diff.to_bytes()).unwrap();
        prop_assert_eq!(decoded.apply(&a).unwrap(), b);
    }

    #[test]
    fn related_directories_diff_small_and_exactly((a, b) in related()) {
        let diff = DirectoryDiff::between(&a, &b).unwrap();
        let bytes = diff.to_bytes();
        prop_assert_eq!(DirectoryDiff::from_bytes(&bytes).unwrap(), diff.clone());
        prop_assert_eq!(diff.apply(&a).unwrap(), b.clone());
        // Never much larger than sending the target whole.
        prop_assert!(bytes.len() <= b.len() + 1 + 64 + 8 + 5 + 9);
    }

    /// Any bytes: a diff decodes only from its one encoding.
    #[test]
    fn only_canonical_diffs_decode(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(diff) = DirectoryDiff::from_bytes(&bytes) {
            prop_assert_eq!(diff.to_bytes(), bytes);
        }
    }
}

fn header(from: &[u8], to: &[u8], result_len: u32, ops: u32) -> Vec<u8> {
    let mut out = vec![1];
    out.extend_from_slice(SignedDirectoryDigest::of(from).as_bytes());
    out.extend_from_slice(SignedDirectoryDigest::of(to).as_bytes());
    out.extend_from_slice(&result_len.to_be_bytes());
    out.extend_from_slice(&ops.to_be_bytes());
    out
}

#[test]
fn non_canonical_and_unbounded_diffs_are_refused() {
    let base = vec![7u8; 100];
    let insert = |bytes: &[u8]| {
        let mut op = vec![1];
        op.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        op.extend_from_slice(bytes);
        op
    };
    let copy = |offset: u32, len: u32| {
        let mut op = vec![0];
        op.extend_from_slice(&offset.to_be_bytes());
        op.extend_from_slice(&len.to_be_bytes());
        op
    };
    let invalid = |bytes: Vec<u8>| {
        let refused = DirectoryDiff::from_bytes(&bytes);
        assert!(
            matches!(
                refused,
                Err(FormatError::Invalid { .. } | FormatError::TooLarge { .. })
            ),
            "{refused:?}"
        );
    };
    // Two inserts in a row (one insert says the same).
    invalid([header(&base, b"ab", 2, 2), insert(b"a"), insert(b"b")].concat());
    // A copy continuing the one before.
    invalid([header(&base, &base[..20], 20, 2), copy(0, 10), copy(10, 10)].concat());
    // Empty operations.
    invalid([header(&base, b"", 0, 1), insert(b"")].concat());
    invalid([header(&base, b"", 0, 1), copy(3, 0)].concat());
    // A result length the operations do not produce.
    invalid([header(&base, b"ab", 3, 1), insert(b"ab")].concat());
    // Operations producing more than the declared result, before any
    // allocation of it.
    invalid([header(&base, b"", 1, 1), copy(0, u32::MAX - 1)].concat());
    // A result or an operation count over the limits.
    invalid(header(&base, b"", u32::MAX, 0));
    invalid(header(&base, b"", 0, MAX_DIFF_OPS as u32 + 1));
    // Unknown operation.
    invalid([header(&base, b"a", 1, 1), vec![2, 0, 0, 0, 1, b'a']].concat());
    // A copy past the base's end decodes but does not apply.
    let diff =
        DirectoryDiff::from_bytes(&[header(&base, &[7; 5], 5, 1), copy(98, 5)].concat()).unwrap();
    assert_eq!(
        diff.apply(&base),
        Err(DiffError::CopyOutOfRange { base_len: 100 })
    );
    // Another base than the diff names.
    assert!(matches!(
        diff.apply(&[1, 2, 3]),
        Err(DiffError::WrongBase { .. })
    ));
    // Bytes that are not the named result.
    let wrong =
        DirectoryDiff::from_bytes(&[header(&base, b"xy", 2, 1), insert(b"ab")].concat()).unwrap();
    assert_eq!(wrong.apply(&base), Err(DiffError::WrongResult));
    assert_eq!(wrong.ops(), &[DiffOp::Insert(b"ab".to_vec())]);
}

/// Attack: the registry (or anyone on the path) serves a diff whose result
/// is a directory the validators did not sign, and names that result
/// correctly. The diff applies, verification refuses the result, and the
/// client keeps its last good directory.
#[test]
fn a_diff_to_a_forged_directory_is_refused_by_verification() {
    let validator = ValidatorKey::from_bytes(&[9; 32]);
    let trust = TrustConfig::new([validator.id()], 1, 6 * 3_600).unwrap();
    let now = fixtures::NOW;
    let held = {
        let mut signed = SignedDirectory::new(&fixtures::directory(1));
        signed.sign(&validator);
        signed.to_bytes()
    };
    assert!(verify_directory_bytes(&held, &trust, now, None).is_ok());
    // The same signatures over a body with another sequence number (the
    // last byte of the `u64` after the version byte).
    let mut forged = SignedDirectory::from_bytes(&held).unwrap();
    let mut changed = forged.directory.to_vec();
    changed[8] ^= 1;
    forged.directory = changed.into();
    let forged = forged.to_bytes();
    let diff = DirectoryDiff::between(&held, &forged).unwrap();
    assert!(diff.to_bytes().len() < 200, "{}", diff.to_bytes().len());
    let applied = diff.apply(&held).unwrap();
    assert_eq!(applied, forged);
    assert!(verify_directory_bytes(&applied, &trust, now, None).is_err());
    // A diff between two honest consecutive directories yields one that
    // verifies.
    let next = {
        let mut signed = SignedDirectory::new(&fixtures::directory(2));
        signed.sign(&validator);
        signed.to_bytes()
    };
    let diff = DirectoryDiff::between(&held, &next).unwrap();
    let applied = DirectoryDiff::from_bytes(&diff.to_bytes())
        .unwrap()
        .apply(&held)
        .unwrap();
    assert!(verify_directory_bytes(&applied, &trust, now, None).is_ok());
}
