//! The full-device VPN's journal, which `openrelay down` undoes as root: any
//! text parses to changes or is refused, never a panic, and deciding whether
//! undoing a change is allowed (`UndoScope::allows`) is total too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_tun::journal;
use openrelay_tun::system::UndoScope;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(changes) = journal::parse(text) {
        let scope = UndoScope::new(Some(std::path::Path::new("/etc/netns/x/resolv.conf")));
        for change in &changes {
            let _ = scope.allows(change);
            let _ = change.to_string();
            // What parses is written back the same.
            assert_eq!(journal::parse(&journal::line(change)).ok(), Some(vec![change.clone()]));
        }
    }
});
