//! connect-udp paths (RFC 9298 §2) and CONNECT authorities (RFC 9110 §9.3.6):
//! whatever parses must round-trip through the matching encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_wire::masque;
use openrelay_wire::target::Target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    for path in [s.to_owned(), format!("{}{s}", masque::UDP_PATH_PREFIX)] {
        if let Ok(t) = masque::parse_udp_path(&path) {
            assert_ne!(t.port, 0);
            let again = masque::udp_path(&t);
            assert_eq!(masque::parse_udp_path(&again), Ok(t.clone()));
            assert_eq!(masque::udp_path(&t), again);
        }
    }

    if let Ok(t) = Target::parse_authority(s) {
        assert_ne!(t.port, 0);
        let again = t.authority();
        assert_eq!(Target::parse_authority(&again), Ok(t.clone()));
        // Both encodings describe the same target.
        assert_eq!(masque::parse_udp_path(&masque::udp_path(&t)), Ok(t));
    }
});
