//! Unit tests of the internals: the reader, list ordering, text rules and
//! signature domains.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use proptest::prelude::*;

use crate::FormatError;
use crate::codec::{Reader, check_strictly_ascending};
use crate::fields::{check_text, encode_endpoint, endpoint_key};
use crate::keys::{Domain, RelayKey};

#[test]
fn the_reader_never_reads_past_the_end() {
    let mut r = Reader::new(&[1, 2, 3]);
    assert_eq!(r.u16(), Ok(0x0102));
    assert_eq!(r.u16(), Err(FormatError::Truncated));
    assert_eq!(r.bytes(usize::MAX), Err(FormatError::Truncated));
    assert_eq!(r.u8(), Ok(3));
    assert_eq!(r.u8(), Err(FormatError::Truncated));
    r.finish().unwrap();

    let r = Reader::new(&[0; 4]);
    assert_eq!(r.finish(), Err(FormatError::TrailingBytes { count: 4 }));

    let mut r = Reader::new(&[3, b'a', b'b']);
    assert_eq!(r.short_str("x", 10), Err(FormatError::Truncated));
    let mut r = Reader::new(&[3, b'a', b'b', b'c']);
    assert_eq!(
        r.short_str("x", 2),
        Err(FormatError::TooLarge {
            what: "x",
            limit: 2
        })
    );
}

#[test]
fn ascending_means_sorted_and_distinct() {
    check_strictly_ascending(&[1, 2, 3], "l", |x| *x).unwrap();
    check_strictly_ascending::<u8, u8>(&[], "l", |x| *x).unwrap();
    assert_eq!(
        check_strictly_ascending(&[1, 3, 2], "l", |x| *x),
        Err(FormatError::Unsorted { list: "l" })
    );
    assert_eq!(
        check_strictly_ascending(&[1, 1], "l", |x| *x),
        Err(FormatError::Duplicate { list: "l" })
    );
}

#[test]
fn text_rules() {
    check_text("f", "Hetzner Online GmbH", 1, 64).unwrap();
    check_text("f", "", 0, 64).unwrap();
    assert!(check_text("f", "", 1, 64).is_err());
    assert!(check_text("f", "a\tb", 0, 64).is_err());
    assert!(check_text("f", "a\u{feff}", 0, 64).is_err());
    assert!(check_text("f", "\u{a0}a", 0, 64).is_err());
    assert_eq!(
        check_text("f", "abc", 0, 2),
        Err(FormatError::TooLarge {
            what: "f",
            limit: 2
        })
    );
}

#[test]
fn domain_prefixes_are_distinct_and_prefix_free() {
    let all = [
        Domain::DescriptorRelay,
        Domain::DescriptorOperator,
        Domain::DescriptorQuic,
        Domain::OperatorProfile,
        Domain::Directory,
        Domain::Vote,
        Domain::IssuerKeys,
    ];
    for a in all {
        let pa = a.prefix();
        assert_eq!(pa.iter().filter(|b| **b == 0).count(), 1);
        assert_eq!(pa.last(), Some(&0));
        for b in all {
            if a != b {
                assert!(!b.prefix().starts_with(pa), "{a:?} is a prefix of {b:?}");
            }
        }
    }
}

#[test]
fn a_signature_verifies_only_in_its_own_domain() {
    let key = RelayKey::from_bytes(&[9; 32]);
    let body = b"the same bytes";
    let sig = key.sign(Domain::DescriptorRelay, body);
    assert!(key.id().verify(Domain::DescriptorRelay, body, &sig));
    for other in [
        Domain::DescriptorOperator,
        Domain::DescriptorQuic,
        Domain::OperatorProfile,
        Domain::Directory,
        Domain::Vote,
        Domain::IssuerKeys,
    ] {
        assert!(!key.id().verify(other, body, &sig), "{other:?}");
    }
    assert!(
        !key.id()
            .verify(Domain::DescriptorRelay, b"other bytes", &sig)
    );
}

proptest! {
    /// Endpoints are sorted by `endpoint_key`; the format says "by their
    /// encoding": the two orders must agree.
    #[test]
    fn endpoint_order_is_the_order_of_encodings(a in any::<SocketAddr>(), b in any::<SocketAddr>()) {
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        encode_endpoint(&a, &mut ea);
        encode_endpoint(&b, &mut eb);
        prop_assert_eq!(endpoint_key(&a).cmp(&endpoint_key(&b)), ea.cmp(&eb));
    }
}

/// `openrelay-config` bounds `[publication] issuers` by what a directory
/// can list; it cannot name this crate's constant (the dependency runs the
/// other way), so the two are compared here.
#[test]
fn the_config_bounds_issuers_by_what_a_directory_lists() {
    assert_eq!(crate::MAX_ISSUERS, openrelay_config::MAX_ISSUERS_LIMIT);
}
