//! DNS messages relayed for the full-device VPN: any bytes give a query or an
//! error, never a panic; a SERVFAIL or REFUSED built for a query answers it;
//! its type, class and reverse name read without panic. Any bytes as an
//! answer filter to an error, "unchanged", or a rewritten message whose
//! filtering changes nothing more.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use openrelay_wire::dns::{self, Filtered, Query};

fuzz_target!(|data: &[u8]| {
    let _ = dns::truncated(data);
    let _ = dns::id(data);
    if let Ok(query) = Query::parse(data) {
        let fail = query.servfail(data);
        assert!(query.check_answer(data, &fail).is_ok());
        let refused = query.refused(data);
        assert!(query.check_answer(data, &refused).is_ok());
        let _ = (query.question_type(data), query.question_class(data));
        let _ = query.reverse_name(data);
        // Any bytes as an answer: matched or refused, never a panic.
        let _ = query.check_answer(data, data);
    }
    // Keep an address by a bit of it, so the fuzzer reaches both branches.
    let keep = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => v4.octets()[3] & 1 == 0,
        IpAddr::V6(v6) => v6.octets()[15] & 1 == 0,
    };
    if let Ok(Filtered::Rewritten(out)) = dns::filter_answer(data, keep) {
        assert!(out.len() <= dns::MAX_MESSAGE);
        assert_eq!(dns::filter_answer(&out, keep), Ok(Filtered::Unchanged));
    }
});
