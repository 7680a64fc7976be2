//! The Proxy-Status field (RFC 9209): parsing never panics, and whatever we
//! format parses back, whatever the proxy name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_wire::proxy_status::{self, ProxyErrorType};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = proxy_status::parse_error(s);

    let error = ProxyErrorType::all()
        .nth(data.first().map_or(0, |&b| usize::from(b) % 32))
        .unwrap_or(ProxyErrorType::ProxyInternalError);
    let member = proxy_status::format(s, error);
    assert!(member.bytes().all(|b| (0x20..0x7f).contains(&b)));
    assert_eq!(proxy_status::parse_error(&member), Some(error));
    assert_eq!(
        proxy_status::parse_error(&format!("origin-side, {member}, client-side")),
        Some(error)
    );
    let _ = proxy_status::http_status(error);
});
