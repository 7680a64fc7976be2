//! HTTP Datagrams (RFC 9297 §2.1) and capsule streams (RFC 9297 §3.2).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openrelay_wire::{capsule, datagram};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = datagram::decode(data) {
        assert!(d.quarter_stream_id <= datagram::MAX_QUARTER_STREAM_ID);
        // Re-encoding (minimal varints) decodes to the same datagram.
        let mut re = Vec::new();
        datagram::encode_header(d.quarter_stream_id, d.context_id, &mut re)
            .expect("decoded values are encodable");
        assert_eq!(
            re.len(),
            datagram::header_len(d.quarter_stream_id, d.context_id)
        );
        re.extend_from_slice(d.payload);
        assert_eq!(datagram::decode(&re), Ok(d));
    }

    // Treat the input as a capsule stream, as a receiver would.
    let mut rest = data;
    while let Ok(Some((c, n))) = capsule::decode(rest) {
        assert!(n > 0 && n <= rest.len());
        assert!(c.value.len() <= capsule::MAX_CAPSULE_LEN);
        let mut re = Vec::new();
        capsule::encode(c.capsule_type, c.value, &mut re).expect("decoded capsule is encodable");
        let (again, m) = capsule::decode(&re)
            .expect("re-encoded capsule decodes")
            .expect("re-encoded capsule is complete");
        assert_eq!((again, m), (c, re.len()));
        rest = &rest[n..];
    }
});
