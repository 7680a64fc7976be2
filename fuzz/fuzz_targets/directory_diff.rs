//! Directory diffs (`docs/directory-format.md`, "Directory diffs"): what a
//! client decodes and applies to its held directory on every refresh.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_directory::DirectoryDiff;

fuzz_target!(|data: &[u8]| {
    // The first bytes serve as the held directory, the rest as the diff.
    let split = usize::from(data.first().copied().unwrap_or(0)).min(data.len());
    let (base, diff) = data.split_at(split);
    if let Ok(d) = DirectoryDiff::from_bytes(diff) {
        // Whatever decodes is canonical.
        assert_eq!(d.to_bytes(), diff);
        if let Ok(result) = d.apply(base) {
            assert_eq!(result.len(), d.result_len());
        }
    }
    // A diff computed between any two inputs reproduces the second.
    let computed = DirectoryDiff::between(base, diff).expect("small inputs");
    assert_eq!(computed.apply(base).expect("applies to its base"), diff);
});
