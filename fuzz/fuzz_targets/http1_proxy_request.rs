//! The local HTTP proxy's request-head parser (RFC 9112 §3.2).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_wire::http1::{self, Http1Error, ProxyRequest};
use openrelay_wire::target::Target;

fuzz_target!(|data: &[u8]| {
    match http1::parse_proxy_request(data) {
        Ok(Some(ProxyRequest::Tunnel { target, consumed })) => {
            assert!(consumed <= data.len() && consumed <= http1::MAX_HEAD_LEN);
            assert_eq!(Target::parse_authority(&target.authority()), Ok(target));
        }
        Ok(Some(ProxyRequest::Forward {
            target,
            head,
            consumed,
        })) => {
            assert!(consumed <= data.len() && consumed <= http1::MAX_HEAD_LEN);
            assert_ne!(target.port, 0);
            assert!(head.ends_with(b"Connection: close\r\n\r\n"));
            // The rewritten head is a well-formed origin-form request (the
            // two added fields may push it over our own limits).
            match http1::parse_proxy_request(&head) {
                Err(Http1Error::NotAProxyRequest)
                | Err(Http1Error::TooManyHeaders)
                | Err(Http1Error::HeadTooLarge) => {}
                other => panic!("rewritten head re-parsed as {other:?}"),
            }
        }
        Ok(None) => assert!(data.len() < http1::MAX_HEAD_LEN),
        Err(e) => assert!(matches!(e.status(), 400 | 431 | 501)),
    }
});
