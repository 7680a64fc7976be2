//! The sections of an ELF executable with a digest each, so a manifest can
//! record them and a rebuild that does not match says which sections differ
//! without needing the original binary. Parsing is the `object` crate's
//! (bounds-checked; it already parses our own backtraces).

use object::{Object as _, ObjectSection as _};
use sha2::{Digest, Sha256};

use crate::inputs::Sha256Digest;

/// One section of an executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Its name (`.text`, `.rodata`, ...).
    pub name: String,
    /// Its size in memory.
    pub size: u64,
    /// SHA-256 of its bytes in the file (of nothing for `.bss`-like
    /// sections, which have none).
    pub sha256: Sha256Digest,
}

/// Why the sections could not be read.
#[derive(Debug, thiserror::Error)]
#[error("not an ELF executable we can read: {0}")]
pub struct ElfError(#[from] object::Error);

/// The sections of `executable`, in file order. A section name appearing
/// twice is numbered (`name#2`) so names stay unique.
pub fn sections(executable: &[u8]) -> Result<Vec<Section>, ElfError> {
    let file = object::File::parse(executable)?;
    let mut out: Vec<Section> = Vec::new();
    for section in file.sections() {
        let base = section.name()?;
        if base.is_empty() {
            continue;
        }
        let mut name = base.to_owned();
        let mut n = 1;
        while out.iter().any(|s| s.name == name) {
            n += 1;
            name = format!("{base}#{n}");
        }
        out.push(Section {
            name,
            size: section.size(),
            sha256: Sha256::digest(section.data()?).into(),
        });
    }
    Ok(out)
}

/// How one section differs between the expected and the rebuilt binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionDiff {
    /// The section.
    pub name: String,
    /// Its size in the expected binary (`None`: only in the rebuilt one).
    pub expected_size: Option<u64>,
    /// Its size in the rebuilt binary (`None`: only in the expected one).
    pub actual_size: Option<u64>,
}

/// The sections that differ (added, removed, or other bytes), in the
/// expected binary's order, then the rebuilt binary's new ones.
pub fn diff(expected: &[Section], actual: &[Section]) -> Vec<SectionDiff> {
    let mut out = Vec::new();
    for e in expected {
        match actual.iter().find(|a| a.name == e.name) {
            Some(a) if a.sha256 == e.sha256 && a.size == e.size => {}
            found => out.push(SectionDiff {
                name: e.name.clone(),
                expected_size: Some(e.size),
                actual_size: found.map(|a| a.size),
            }),
        }
    }
    for a in actual {
        if !expected.iter().any(|e| e.name == a.name) {
            out.push(SectionDiff {
                name: a.name.clone(),
                expected_size: None,
                actual_size: Some(a.size),
            });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn section(name: &str, size: u64, byte: u8) -> Section {
        Section {
            name: name.to_owned(),
            size,
            sha256: [byte; 32],
        }
    }

    #[test]
    fn diff_names_changed_added_and_removed_sections() {
        let expected = [
            section(".text", 10, 1),
            section(".rodata", 5, 2),
            section(".a", 1, 3),
        ];
        let actual = [
            section(".text", 10, 1),
            section(".rodata", 5, 9),
            section(".b", 2, 4),
        ];
        let names: Vec<_> = diff(&expected, &actual)
            .into_iter()
            .map(|d| (d.name, d.expected_size, d.actual_size))
            .collect();
        assert_eq!(
            names,
            [
                (".rodata".to_owned(), Some(5), Some(5)),
                (".a".to_owned(), Some(1), None),
                (".b".to_owned(), None, Some(2)),
            ]
        );
    }

    #[test]
    fn our_own_test_executable_has_a_text_section() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let found = sections(&exe).unwrap();
        assert!(found.iter().any(|s| s.name == ".text" && s.size > 0));
        assert!(sections(b"not an elf").is_err());
    }
}
