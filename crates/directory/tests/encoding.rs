//! The canonical encoding: round trips, and refusal of every non-canonical or
//! out-of-bounds input (`docs/directory-format.md`).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use openrelay_directory::{
    CountryCode, Directory, FormatError, MAX_CITY_LEN, MAX_DIRECTORY_BYTES,
    MAX_DIRECTORY_SIGNATURES, MAX_ENDPOINTS, Network, OperatorId, OperatorProfile, RelayDescriptor,
    RelayId, SignedDescriptor, SignedDirectory, SignedOperatorProfile,
};
use openrelay_testkit::fixtures::*;
use openrelay_types::RelayRole;

/// Offsets in a descriptor body (`docs/directory-format.md`).
const ROLE: usize = 65;
const ENDPOINT_COUNT: usize = 66;
const FIRST_ENDPOINT: usize = 67;
const V4_ENDPOINT_LEN: usize = 7;

fn body(relay: u8) -> Vec<u8> {
    descriptor(relay, relay, RelayRole::Ingress)
        .descriptor()
        .to_bytes()
}

fn two_endpoint_body() -> Vec<u8> {
    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.endpoints = vec![
        "192.0.2.2:443".parse().unwrap(),
        "192.0.2.1:443".parse().unwrap(),
    ];
    let d = RelayDescriptor::new(fields).unwrap();
    // Sorted on construction.
    assert_eq!(
        d.endpoints()[0],
        "192.0.2.1:443".parse::<SocketAddr>().unwrap()
    );
    d.to_bytes()
}

#[test]
fn every_object_round_trips() {
    let signed_descriptor = descriptor(1, 1, RelayRole::Egress);
    let body = signed_descriptor.descriptor().to_bytes();
    assert_eq!(body, signed_descriptor.body());
    assert_eq!(
        RelayDescriptor::from_bytes(&body).unwrap(),
        *signed_descriptor.descriptor()
    );
    let bytes = signed_descriptor.to_bytes();
    assert_eq!(bytes.len(), body.len() + 192);
    assert_eq!(
        SignedDescriptor::from_bytes(&bytes).unwrap(),
        signed_descriptor
    );

    let p = profile(2);
    assert_eq!(
        OperatorProfile::from_bytes(&p.profile().to_bytes()).unwrap(),
        *p.profile()
    );
    assert_eq!(SignedOperatorProfile::from_bytes(&p.to_bytes()).unwrap(), p);

    let d = directory(3);
    let bytes = d.to_bytes();
    assert_eq!(Directory::from_bytes(&bytes).unwrap(), d);
    assert_eq!(d.digest(), openrelay_directory::DirectoryDigest::of(&bytes));

    let s = signed(&d, &[0, 1]);
    assert_eq!(SignedDirectory::from_bytes(&s.to_bytes()).unwrap(), s);
}

#[test]
fn trailing_bytes_are_refused_everywhere() {
    let mut b = body(0);
    b.push(0);
    assert_eq!(
        RelayDescriptor::from_bytes(&b),
        Err(FormatError::TrailingBytes { count: 1 })
    );
    let mut b = descriptor(0, 0, RelayRole::Ingress).to_bytes();
    b.push(0);
    assert!(matches!(
        SignedDescriptor::from_bytes(&b),
        Err(FormatError::TrailingBytes { .. })
    ));
    let mut b = profile(0).to_bytes();
    b.push(0);
    assert!(matches!(
        SignedOperatorProfile::from_bytes(&b),
        Err(FormatError::TrailingBytes { .. })
    ));
    let mut b = directory(1).to_bytes();
    b.push(0);
    assert!(matches!(
        Directory::from_bytes(&b),
        Err(FormatError::TrailingBytes { .. })
    ));
    let mut b = signed(&directory(1), &[0]).to_bytes();
    b.push(0);
    assert!(matches!(
        SignedDirectory::from_bytes(&b),
        Err(FormatError::TrailingBytes { .. })
    ));
}

#[test]
fn every_truncation_is_refused() {
    let signed = signed(&directory(1), &[0]).to_bytes();
    for n in 0..signed.len() {
        assert!(SignedDirectory::from_bytes(&signed[..n]).is_err(), "{n}");
    }
    let d = directory(1).to_bytes();
    for n in 0..d.len() {
        assert!(Directory::from_bytes(&d[..n]).is_err(), "{n}");
    }
}

#[test]
fn unknown_versions_are_refused() {
    // Version 1 (before the QUIC key signed too), 2 (a self-declared
    // software measurement where version 3 has attestation evidence) and
    // anything newer.
    for version in [1, 2, 4] {
        let mut b = body(0);
        b[0] = version;
        assert_eq!(
            RelayDescriptor::from_bytes(&b),
            Err(FormatError::UnsupportedVersion {
                object: "descriptor",
                version
            })
        );
    }
    // Directory version 2 (before issuer key sets), 0, 4 (the chain
    // section before measurements), 5 (before releases) and anything newer
    // than 6.
    for version in [0, 2, 4, 5, 7] {
        let mut b = directory(1).to_bytes();
        b[0] = version;
        assert_eq!(
            Directory::from_bytes(&b),
            Err(FormatError::UnsupportedVersion {
                object: "directory",
                version
            })
        );
    }
}

#[test]
fn a_role_must_be_ingress_or_egress() {
    for bad in [0u8, 3, 0xff] {
        let mut b = body(0);
        b[ROLE] = bad;
        assert!(matches!(
            RelayDescriptor::from_bytes(&b),
            Err(FormatError::Invalid { field: "role", .. })
        ));
    }
}

#[test]
fn endpoints_must_be_sorted_and_distinct() {
    let b = two_endpoint_body();
    assert_eq!(b[ENDPOINT_COUNT], 2);
    let first = FIRST_ENDPOINT..FIRST_ENDPOINT + V4_ENDPOINT_LEN;
    let second = first.end..first.end + V4_ENDPOINT_LEN;

    let mut swapped = b.clone();
    swapped[first.clone()].copy_from_slice(&b[second.clone()]);
    swapped[second.clone()].copy_from_slice(&b[first.clone()]);
    assert_eq!(
        RelayDescriptor::from_bytes(&swapped),
        Err(FormatError::Unsorted { list: "endpoints" })
    );

    let mut duplicated = b.clone();
    duplicated[second].copy_from_slice(&b[first]);
    assert_eq!(
        RelayDescriptor::from_bytes(&duplicated),
        Err(FormatError::Duplicate { list: "endpoints" })
    );

    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.endpoints.push(fields.endpoints[0]);
    assert_eq!(
        RelayDescriptor::new(fields),
        Err(FormatError::Duplicate { list: "endpoints" })
    );
}

#[test]
fn endpoint_counts_are_bounded() {
    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.endpoints = Vec::new();
    assert!(matches!(
        RelayDescriptor::new(fields.clone()),
        Err(FormatError::Invalid {
            field: "endpoints",
            ..
        })
    ));
    fields.endpoints = (0..=MAX_ENDPOINTS as u16)
        .map(|p| SocketAddr::from(([192, 0, 2, 1], 1000 + p)))
        .collect();
    assert_eq!(
        RelayDescriptor::new(fields),
        Err(FormatError::TooLarge {
            what: "endpoints",
            limit: MAX_ENDPOINTS
        })
    );
    let mut b = body(0);
    b[ENDPOINT_COUNT] = 200;
    assert!(matches!(
        RelayDescriptor::from_bytes(&b),
        Err(FormatError::TooLarge {
            what: "endpoints",
            ..
        })
    ));
}

#[test]
fn endpoints_must_be_addresses_a_client_can_reach() {
    for bad in [
        "0.0.0.0:443",
        "192.0.2.1:0",
        "224.0.0.1:443",
        "255.255.255.255:443",
        "[::]:443",
        "[ff02::1]:443",
        "[::ffff:192.0.2.1]:443",
        "[fe80::1%2]:443",
    ] {
        let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
        fields.endpoints = vec![bad.parse().unwrap()];
        assert!(
            matches!(
                RelayDescriptor::new(fields),
                Err(FormatError::Invalid {
                    field: "endpoints",
                    ..
                })
            ),
            "{bad}"
        );
    }
    // Loopback and private addresses are fine (devnet, local networks).
    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.endpoints = vec![
        "[::1]:443".parse().unwrap(),
        "10.0.0.1:443".parse().unwrap(),
        "[2001:db8::1]:443".parse().unwrap(),
    ];
    let d = RelayDescriptor::new(fields).unwrap();
    assert_eq!(RelayDescriptor::from_bytes(&d.to_bytes()).unwrap(), d);
}

#[test]
fn unknown_address_families_are_refused() {
    let mut b = body(0);
    b[FIRST_ENDPOINT] = 5;
    assert!(matches!(
        RelayDescriptor::from_bytes(&b),
        Err(FormatError::Invalid {
            field: "endpoints",
            ..
        })
    ));
}

#[test]
fn strings_over_their_limit_are_refused() {
    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.region.city = "x".repeat(MAX_CITY_LEN + 1);
    assert_eq!(
        RelayDescriptor::new(fields),
        Err(FormatError::TooLarge {
            what: "city",
            limit: MAX_CITY_LEN
        })
    );
    // A length byte over the limit is refused before reading further.
    let b = body(0);
    let city_len_at = FIRST_ENDPOINT + V4_ENDPOINT_LEN + 32 + 2;
    let mut overlong = b.clone();
    overlong[city_len_at] = 200;
    assert_eq!(
        RelayDescriptor::from_bytes(&overlong),
        Err(FormatError::TooLarge {
            what: "city",
            limit: MAX_CITY_LEN
        })
    );
}

#[test]
fn text_that_could_deceive_a_reader_is_refused() {
    for bad in [
        " Frankfurt",
        "Frankfurt ",
        "Frank\nfurt",
        "Frank\u{7f}furt",
        "Frank\u{202e}furt",
        "Frank\u{200b}furt",
        "Frank\u{85}furt",
    ] {
        let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
        fields.region.city = bad.to_owned();
        assert!(
            matches!(
                RelayDescriptor::new(fields),
                Err(FormatError::Invalid { field: "city", .. })
            ),
            "{bad:?}"
        );
    }
    let mut fields = profile_fields(0);
    fields.name = "Operator\u{2066}0".to_owned();
    assert!(OperatorProfile::new(fields).is_err());
    let mut fields = profile_fields(0);
    fields.contact = String::new();
    assert!(OperatorProfile::new(fields).is_err());
    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.software_version = "openrelay 0.1.0 ü".to_owned();
    assert!(RelayDescriptor::new(fields).is_err());
    // Non-ASCII letters are fine where names are free text.
    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.region.city = "Zürich".to_owned();
    RelayDescriptor::new(fields).unwrap();
}

#[test]
fn invalid_utf8_is_refused() {
    let b = body(0);
    let city_at = FIRST_ENDPOINT + V4_ENDPOINT_LEN + 32 + 3;
    let mut bad = b.clone();
    bad[city_at] = 0xff;
    assert_eq!(
        RelayDescriptor::from_bytes(&bad),
        Err(FormatError::Invalid {
            field: "city",
            reason: "not UTF-8"
        })
    );
}

#[test]
fn a_network_has_one_spelling() {
    for bad in [
        Network::Asn(0),
        Network::Label("AS64500".into()),
        Network::Label("as1".into()),
        Network::Label(String::new()),
    ] {
        let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
        fields.network = bad.clone();
        assert!(RelayDescriptor::new(fields).is_err(), "{bad:?}");
    }
    for good in [
        Network::Label("Hetzner FSN".into()),
        Network::Label("AS".into()),
    ] {
        let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
        fields.network = good;
        let d = RelayDescriptor::new(fields).unwrap();
        assert_eq!(RelayDescriptor::from_bytes(&d.to_bytes()).unwrap(), d);
    }
    assert_eq!(Network::Asn(64500).to_string(), "AS64500");
}

#[test]
fn country_codes_are_two_capital_letters() {
    assert_eq!(CountryCode::parse("DE").unwrap().as_str(), "DE");
    for bad in ["de", "D", "DEU", "D1", "ÄÖ", ""] {
        assert!(CountryCode::parse(bad).is_err(), "{bad}");
    }
    let mut b = body(0);
    let country_at = FIRST_ENDPOINT + V4_ENDPOINT_LEN + 32;
    b[country_at] = b'd';
    assert!(matches!(
        RelayDescriptor::from_bytes(&b),
        Err(FormatError::Invalid {
            field: "country",
            ..
        })
    ));
}

#[test]
fn descriptor_fields_are_checked() {
    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.bandwidth_bps = 0;
    assert!(RelayDescriptor::new(fields).is_err());

    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.not_after = fields.not_before;
    assert!(RelayDescriptor::new(fields).is_err());

    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.not_after = fields.not_before + openrelay_directory::MAX_DESCRIPTOR_LIFETIME_SECS + 1;
    assert!(RelayDescriptor::new(fields).is_err());

    // One key cannot be both relay and operator: "signed by both" would be
    // one signature.
    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.operator = OperatorId::from_bytes(fields.relay.to_bytes()).unwrap();
    assert!(matches!(
        RelayDescriptor::new(fields),
        Err(FormatError::Invalid {
            field: "operator",
            ..
        })
    ));

    // The pin must be a usable key.
    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.quic_pin = openrelay_types::KeyPin::from_ed25519([0; 32]);
    assert!(matches!(
        RelayDescriptor::new(fields),
        Err(FormatError::Invalid {
            field: "quic_pin",
            ..
        })
    ));
}

#[test]
fn keys_must_be_canonical_points_of_large_order() {
    use openrelay_directory::KeyError;
    // The identity point (small order).
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(RelayId::from_bytes(identity), Err(KeyError::Weak));
    // y = p + 1 is a non-canonical spelling of the identity's y = 1.
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xee;
    non_canonical[31] = 0x7f;
    assert!(RelayId::from_bytes(non_canonical).is_err());
    // y = 2 is not on the curve.
    let mut off_curve = [0u8; 32];
    off_curve[0] = 2;
    assert_eq!(RelayId::from_bytes(off_curve), Err(KeyError::NotAPoint));

    // In a descriptor: the relay key replaced by the identity point.
    let mut b = body(0);
    b[1..33].copy_from_slice(&identity);
    assert!(matches!(
        RelayDescriptor::from_bytes(&b),
        Err(FormatError::Invalid { field: "relay", .. })
    ));
}

#[test]
fn ids_print_and_parse_like_key_pins() {
    let id = relay_key(1).id();
    let text = id.to_string();
    assert!(text.starts_with("ed25519:"));
    assert_eq!(text, openrelay_types::KeyPin::from(id).to_string());
    assert_eq!(text.parse::<RelayId>().unwrap(), id);
    assert_eq!(format!("{id:?}"), format!("RelayId({text})"));
    let pin: openrelay_types::KeyPin = text.parse().unwrap();
    assert_eq!(RelayId::try_from(pin).unwrap(), id);
    assert!("ed25519:AAAA".parse::<RelayId>().is_err());
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(serde_json::from_str::<RelayId>(&json).unwrap(), id);
    // Secrets never show in Debug.
    let key = relay_key(1);
    let debug = format!("{key:?}");
    assert_eq!(debug, format!("RelayKey({id:?})"));
}

#[test]
fn keys_round_trip_through_their_bytes_and_generate_from_an_rng() {
    let key = operator_key(3);
    let again = openrelay_directory::OperatorKey::from_bytes(&key.to_bytes());
    assert_eq!(again.id(), key.id());

    /// A deterministic RNG for the test (not a CSPRNG).
    struct Counter(u8);
    impl rand_core::RngCore for Counter {
        fn next_u32(&mut self) -> u32 {
            rand_core::impls::next_u32_via_fill(self)
        }
        fn next_u64(&mut self) -> u64 {
            rand_core::impls::next_u64_via_fill(self)
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for b in dest {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl rand_core::CryptoRng for Counter {}
    use openrelay_directory::rand_core;

    let a = openrelay_directory::ValidatorKey::generate(&mut Counter(0));
    let b = openrelay_directory::ValidatorKey::generate(&mut Counter(0));
    let c = openrelay_directory::ValidatorKey::generate(&mut Counter(1));
    assert_eq!(a.id(), b.id());
    assert_ne!(a.id(), c.id());
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8 + 1);
    assert_eq!(a.to_bytes(), seed);
}

#[test]
fn directory_lists_must_be_sorted_and_distinct() {
    // `new` sorts.
    let (mut operators, mut descriptors) = network();
    operators.reverse();
    descriptors.reverse();
    let d = directory_with(1, operators, descriptors);
    assert_eq!(d, directory(1));
    let ids: Vec<RelayId> = d
        .descriptors()
        .iter()
        .map(|s| s.descriptor().relay())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));

    // Duplicates are refused.
    let (operators, mut descriptors) = network();
    descriptors.push(descriptor(0, 0, RelayRole::Ingress));
    assert_eq!(
        Directory::new(1, T0, T0 + 60, operators, descriptors),
        Err(FormatError::Duplicate {
            list: "descriptors"
        })
    );
    let (mut operators, descriptors) = network();
    operators.push(profile(0));
    assert_eq!(
        Directory::new(1, T0, T0 + 60, operators, descriptors),
        Err(FormatError::Duplicate { list: "operators" })
    );

    // Unsorted bytes are refused: two descriptors swapped in the encoding.
    let two = Directory::new(
        1,
        T0,
        T0 + 60,
        vec![profile(0), profile(1)],
        vec![
            descriptor(0, 0, RelayRole::Ingress),
            descriptor(1, 1, RelayRole::Egress),
        ],
    )
    .unwrap();
    let bytes = two.to_bytes();
    let first = two.descriptors()[0].to_bytes();
    let second = two.descriptors()[1].to_bytes();
    // The descriptors, then an empty list of issuer key sets (a u32 0).
    let end = bytes.len() - 4;
    let start = end - first.len() - second.len();
    let no_key_sets = &bytes[end..];
    let mut swapped = bytes[..start].to_vec();
    swapped.extend_from_slice(&second);
    swapped.extend_from_slice(&first);
    swapped.extend_from_slice(no_key_sets);
    assert_eq!(
        Directory::from_bytes(&swapped),
        Err(FormatError::Unsorted {
            list: "descriptors"
        })
    );
    let mut doubled = bytes[..start].to_vec();
    doubled.extend_from_slice(&first);
    doubled.extend_from_slice(&first);
    doubled.extend_from_slice(no_key_sets);
    assert_eq!(
        Directory::from_bytes(&doubled),
        Err(FormatError::Duplicate {
            list: "descriptors"
        })
    );
}

#[test]
fn directory_windows_are_bounded() {
    let (operators, descriptors) = network();
    assert!(Directory::new(1, T0, T0, operators.clone(), descriptors.clone()).is_err());
    assert!(
        Directory::new(
            1,
            T0,
            T0 + openrelay_directory::MAX_DIRECTORY_LIFETIME_SECS + 1,
            operators,
            descriptors
        )
        .is_err()
    );
}

#[test]
fn forged_counts_do_not_allocate_or_overrun() {
    // A directory header announcing u32::MAX operators, then nothing.
    let mut b = vec![openrelay_directory::DIRECTORY_VERSION];
    b.extend_from_slice(&1u64.to_be_bytes());
    b.extend_from_slice(&T0.to_be_bytes());
    b.extend_from_slice(&(T0 + 60).to_be_bytes());
    let mut many = b.clone();
    many.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        Directory::from_bytes(&many),
        Err(FormatError::TooLarge {
            what: "operators",
            ..
        })
    ));
    let mut some = b;
    some.extend_from_slice(&1000u32.to_be_bytes());
    assert_eq!(Directory::from_bytes(&some), Err(FormatError::Truncated));

    // An envelope announcing a directory over the limit.
    let mut e = vec![1u8];
    e.extend_from_slice(&(MAX_DIRECTORY_BYTES as u32 + 1).to_be_bytes());
    assert!(matches!(
        SignedDirectory::from_bytes(&e),
        Err(FormatError::TooLarge {
            what: "directory",
            ..
        })
    ));
    // ... and more signatures than allowed.
    let mut e = vec![1u8, 0, 0, 0, 0];
    e.push(MAX_DIRECTORY_SIGNATURES as u8 + 1);
    assert!(matches!(
        SignedDirectory::from_bytes(&e),
        Err(FormatError::TooLarge {
            what: "signatures",
            ..
        })
    ));
}

#[test]
fn the_largest_valid_directory_fits_the_size_limit() {
    use openrelay_directory::{
        MAX_CONTACT_LEN, MAX_NAME_LEN, MAX_NETWORK_LABEL_LEN, MAX_OPERATORS, MAX_RELAYS,
        MAX_SOFTWARE_VERSION_LEN,
    };
    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.endpoints = (0..MAX_ENDPOINTS as u16)
        .map(|p| SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 1000 + p)))
        .collect();
    fields.region.city = "c".repeat(MAX_CITY_LEN);
    fields.network = Network::Label("n".repeat(MAX_NETWORK_LABEL_LEN));
    fields.software_version = "v".repeat(MAX_SOFTWARE_VERSION_LEN);
    let largest_descriptor = sign(fields.clone(), 0, 0).to_bytes().len();
    fields.attestation = Some(
        openrelay_directory::AttestationEvidence::new(vec![
            7;
            openrelay_directory::MAX_ATTESTATION_EVIDENCE_LEN
        ])
        .unwrap(),
    );
    let largest_attested = sign(fields, 0, 0).to_bytes().len();
    assert_eq!(
        largest_attested,
        largest_descriptor + 2 + openrelay_directory::MAX_ATTESTATION_EVIDENCE_LEN
    );
    let mut p = profile_fields(0);
    p.name = "n".repeat(MAX_NAME_LEN);
    p.contact = "c".repeat(MAX_CONTACT_LEN);
    let largest_profile = operator_key(0)
        .sign_profile(OperatorProfile::new(p).unwrap())
        .unwrap()
        .to_bytes()
        .len();
    // The sizes `docs/directory-format.md` states.
    // The fixture's profile names an account (version 2, 20 bytes more).
    assert!(profile_fields(0).chain_account.is_some());
    assert_eq!((largest_descriptor, largest_profile), (666, 321));
    let mut fields = descriptor_fields(0, 0, RelayRole::Ingress);
    fields.region.city = String::new();
    fields.software_version = "v".into();
    let smallest_descriptor = sign(fields, 0, 0).to_bytes().len();
    let mut p = profile_fields(0);
    p.name = "n".into();
    p.contact = "c".into();
    p.chain_account = None;
    let smallest_profile = operator_key(0)
        .sign_profile(OperatorProfile::new(p).unwrap())
        .unwrap()
        .to_bytes()
        .len();
    assert_eq!((smallest_descriptor, smallest_profile), (333, 111));

    let header = 1 + 3 * 8 + 3 * 4;
    let key_sets = openrelay_directory::MAX_ISSUERS * openrelay_directory::MAX_SIGNED_KEY_SET_BYTES;
    let largest =
        header + MAX_RELAYS * largest_descriptor + MAX_OPERATORS * largest_profile + key_sets;
    // Version 4 adds the anchor and epoch, two counts, and per operator its
    // key, account, stake and cover, per relay its key and bandwidth.
    let largest_with_chain =
        largest + 68 + 8 + 2 * 4 + MAX_OPERATORS * (32 + 20 + 16 + 8) + MAX_RELAYS * (32 + 4);
    // Version 6 adds the releases.
    let largest_releases = 4 + openrelay_directory::MAX_RELEASES
        * (32 + 32 + 1 + 1 + openrelay_directory::MAX_RELEASE_MEASUREMENTS * (1 + 48));
    let largest_with_chain = largest_with_chain + largest_releases;
    assert!(
        largest_with_chain <= MAX_DIRECTORY_BYTES,
        "{largest_with_chain} > {MAX_DIRECTORY_BYTES}"
    );
    // Attestation evidence is not budgeted per relay: at its largest only
    // this many attested relays fit (docs/directory-format.md says so; the
    // registry's directory is then bounded by the byte limit, issue 16).
    let attested_relays_that_fit = (MAX_DIRECTORY_BYTES
        - (largest_with_chain - MAX_RELAYS * largest_descriptor))
        / largest_attested;
    assert_eq!(attested_relays_that_fit, 2_708);
}

#[test]
fn a_profile_is_version_2_exactly_when_it_names_a_chain_account() {
    let with = OperatorProfile::new(profile_fields(3)).unwrap();
    let without = OperatorProfile::new(openrelay_directory::ProfileFields {
        chain_account: None,
        ..profile_fields(3)
    })
    .unwrap();
    let (with_bytes, without_bytes) = (with.to_bytes(), without.to_bytes());
    assert_eq!((with_bytes[0], without_bytes[0]), (2, 1));
    assert_eq!(with_bytes.len(), without_bytes.len() + 20);
    assert_eq!(OperatorProfile::from_bytes(&with_bytes).unwrap(), with);
    assert_eq!(
        OperatorProfile::from_bytes(&without_bytes).unwrap(),
        without
    );
    assert_eq!(with.chain_account(), Some(chain_account(3)));
    // Relabelled versions: one encoding per profile.
    let mut relabelled = with_bytes.clone();
    relabelled[0] = 1;
    assert!(OperatorProfile::from_bytes(&relabelled).is_err());
    let mut relabelled = without_bytes.clone();
    relabelled[0] = 2;
    assert!(OperatorProfile::from_bytes(&relabelled).is_err());
    let mut future = with_bytes;
    future[0] = 3;
    assert!(matches!(
        OperatorProfile::from_bytes(&future),
        Err(FormatError::UnsupportedVersion { version: 3, .. })
    ));
    // The chain's commitment leaves the signing time out, and nothing else.
    let later = OperatorProfile::new(openrelay_directory::ProfileFields {
        published_at: profile_fields(3).published_at + 1,
        ..profile_fields(3)
    })
    .unwrap();
    assert_eq!(later.content_hash(), with.content_hash());
    assert_ne!(without.content_hash(), with.content_hash());
}
