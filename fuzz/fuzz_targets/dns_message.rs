//! DNS messages relayed for the full-device VPN: any bytes give a query or an
//! error, never a panic; a SERVFAIL built for a query answers it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_wire::dns::{self, Query};

fuzz_target!(|data: &[u8]| {
    let _ = dns::truncated(data);
    let _ = dns::id(data);
    if let Ok(query) = Query::parse(data) {
        let fail = query.servfail(data);
        assert!(query.check_answer(data, &fail).is_ok());
        // Any bytes as an answer: matched or refused, never a panic.
        let _ = query.check_answer(data, data);
    }
});
