//! Issuer key sets (RFC 9576 §6 key consistency, `docs/directory-format.md`
//! "Issuer key set"): their canonical encoding, every bound (the number of
//! keys, overlapping issuing windows, epochs, sizes), their signature, their
//! place in the directory (version 3) and in votes (version 2), and the
//! majority rule that lists at most one set per issuer.
#![allow(clippy::unwrap_used)]

use openrelay_directory::vote::{IssuerVote, Vote, tally_issuers};
use openrelay_directory::{
    Directory, DirectoryError, FormatError, IssuerKeySet, IssuerTokenKey, KeySetFields,
    KeySetSignError, MAX_ISSUER_KEYS, MAX_ISSUERS, MAX_SIGNED_KEY_SET_BYTES, MAX_TOKEN_KEY_LEN,
    MAX_TOKEN_KEY_LIFETIME_SECS, SignedIssuerKeySet, Signer, TOKEN_TYPE_BLIND_RSA,
    verify_directory,
};
use openrelay_testkit::fixtures::*;
use proptest::prelude::*;

const DAY: u64 = 86_400;

fn fields(keys: Vec<IssuerTokenKey>) -> KeySetFields {
    KeySetFields {
        issuer: issuer_key(1).id(),
        issuer_name: "issuer.example:4450".into(),
        published_at: T0 - 60,
        keys,
    }
}

#[test]
fn a_key_set_round_trips_and_verifies() {
    let signed = key_set(1, &[0, 1, 2]);
    let bytes = signed.to_bytes();
    let decoded = SignedIssuerKeySet::from_bytes(&bytes).unwrap();
    assert_eq!(decoded, signed);
    assert_eq!(decoded.to_bytes(), bytes);
    decoded.verify().unwrap();
    let set = decoded.key_set();
    assert_eq!(set.issuer(), issuer_key(1).id());
    assert_eq!(set.keys().len(), 3);
    // Key 1 signs from T0 for a day; key 0's window has ended, key 2's
    // has not begun.
    assert_eq!(set.issuing_at(T0), Some(&set.keys()[1]));
    assert_eq!(set.issuing_at(T0 + DAY), Some(&set.keys()[2]));
    assert_eq!(set.issuing_until(), T0 + 2 * DAY);
    // The digest names the body, whatever signature came with it.
    assert_eq!(decoded.digest(), set.digest());
    let mut other_signature = bytes.clone();
    let n = other_signature.len();
    other_signature[n - 1] ^= 1;
    let resigned = SignedIssuerKeySet::from_bytes(&other_signature).unwrap();
    assert_eq!(resigned.digest(), signed.digest());
    assert!(resigned.verify().is_err());
}

#[test]
fn a_key_set_is_signed_only_by_its_issuer() {
    let set = key_set(1, &[1]).key_set().clone();
    assert_eq!(
        issuer_key(2).sign_key_set(set.clone()),
        Err(KeySetSignError::WrongIssuerKey)
    );
    // Signed by another key over the same message: refused on verify.
    let forged = SignedIssuerKeySet::from_parts(
        set.clone(),
        openrelay_directory::Signature::from_bytes(
            issuer_key(1)
                .sign_key_set(
                    IssuerKeySet::new(KeySetFields {
                        published_at: T0,
                        ..set.fields().clone()
                    })
                    .unwrap(),
                )
                .unwrap()
                .signature()
                .to_bytes(),
        ),
    );
    assert_eq!(
        forged.verify().unwrap_err().which,
        Signer::Issuer(issuer_key(1).id())
    );
}

/// Every bound of a set, through the constructor and through the decoder.
#[test]
fn over_bounded_key_sets_are_refused() {
    let k = |n| token_key(n, DAY);
    let too_many: Vec<IssuerTokenKey> = (0..=MAX_ISSUER_KEYS as u8).map(k).collect();
    let overlapping = {
        let mut second = k(1);
        second.not_before -= 1;
        second.expires -= 1;
        vec![k(0), second]
    };
    let too_long = IssuerTokenKey {
        expires: k(1).not_before + MAX_TOKEN_KEY_LIFETIME_SECS + 1,
        ..k(1)
    };
    let ends_before_start = IssuerTokenKey {
        expires: k(1).not_before,
        ..k(1)
    };
    let other_type = IssuerTokenKey {
        token_type: 0x0001,
        ..k(1)
    };
    let empty = IssuerTokenKey {
        key: Vec::new(),
        ..k(1)
    };
    let huge = IssuerTokenKey {
        key: vec![7; MAX_TOKEN_KEY_LEN + 1],
        ..k(1)
    };
    // Two keys whose ids end in the same byte (a token request names its
    // key by that byte, RFC 9578 §6.1).
    let same_truncated = vec![
        k(1),
        IssuerTokenKey {
            not_before: k(2).not_before,
            expires: k(2).expires,
            ..k(1)
        },
    ];
    let cases: Vec<(&str, KeySetFields)> = vec![
        ("no key", fields(Vec::new())),
        ("too many keys", fields(too_many)),
        ("overlapping issuing windows", fields(overlapping)),
        ("an epoch over 60 days", fields(vec![too_long])),
        ("an empty epoch", fields(vec![ends_before_start])),
        ("another token type", fields(vec![other_type])),
        ("an empty key", fields(vec![empty])),
        ("an oversized key", fields(vec![huge])),
        ("a repeated truncated id", fields(same_truncated)),
        (
            "only expired keys",
            KeySetFields {
                published_at: k(0).expires,
                ..fields(vec![k(0)])
            },
        ),
        (
            "an issuer name with '@'",
            KeySetFields {
                issuer_name: "user@issuer.example".into(),
                ..fields(vec![k(1)])
            },
        ),
        (
            "an empty issuer name",
            KeySetFields {
                issuer_name: String::new(),
                ..fields(vec![k(1)])
            },
        ),
    ];
    for (what, fields) in cases {
        assert!(IssuerKeySet::new(fields.clone()).is_err(), "{what}");
        // The same bytes, made by hand, do not decode either.
        let bytes = encode_unchecked(&fields);
        assert!(IssuerKeySet::from_bytes(&bytes).is_err(), "{what}");
    }
}

/// Encodes `fields` the way the format does, without any check (as an
/// attacker would).
fn encode_unchecked(f: &KeySetFields) -> Vec<u8> {
    let mut out = vec![openrelay_directory::ISSUER_KEYS_VERSION];
    out.extend_from_slice(f.issuer.as_bytes());
    out.push(f.issuer_name.len() as u8);
    out.extend_from_slice(f.issuer_name.as_bytes());
    out.extend_from_slice(&f.published_at.to_be_bytes());
    out.push(f.keys.len() as u8);
    for k in &f.keys {
        out.extend_from_slice(&k.token_type.to_be_bytes());
        out.extend_from_slice(&(k.key.len() as u16).to_be_bytes());
        out.extend_from_slice(&k.key);
        out.extend_from_slice(&k.not_before.to_be_bytes());
        out.extend_from_slice(&k.expires.to_be_bytes());
    }
    out
}

#[test]
fn the_encoding_is_canonical() {
    let set = key_set(1, &[0, 1]).key_set().clone();
    let bytes = set.to_bytes();
    assert_eq!(bytes, encode_unchecked(set.fields()));
    // Keys out of order: refused, not sorted.
    let mut swapped = set.fields().clone();
    swapped.keys.reverse();
    assert_eq!(
        IssuerKeySet::from_bytes(&encode_unchecked(&swapped)),
        Err(FormatError::Unsorted {
            list: "issuer keys"
        })
    );
    // Trailing bytes, truncations, another version.
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        IssuerKeySet::from_bytes(&longer),
        Err(FormatError::TrailingBytes { count: 1 })
    );
    for n in 0..bytes.len() {
        assert!(IssuerKeySet::from_bytes(&bytes[..n]).is_err(), "{n}");
    }
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert!(matches!(
        IssuerKeySet::from_bytes(&v2),
        Err(FormatError::UnsupportedVersion { version: 2, .. })
    ));
    // A key length over the limit is refused before it is read.
    let mut announced = vec![openrelay_directory::ISSUER_KEYS_VERSION];
    announced.extend_from_slice(issuer_key(1).id().as_bytes());
    announced.extend_from_slice(&[1, b'i']);
    announced.extend_from_slice(&T0.to_be_bytes());
    announced.push(1);
    announced.extend_from_slice(&TOKEN_TYPE_BLIND_RSA.to_be_bytes());
    announced.extend_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(
        IssuerKeySet::from_bytes(&announced),
        Err(FormatError::TooLarge {
            what: "token_key",
            limit: MAX_TOKEN_KEY_LEN
        })
    );
    // The largest set is what the format says.
    let largest = IssuerKeySet::new(KeySetFields {
        issuer_name: "i".repeat(255),
        keys: (0..MAX_ISSUER_KEYS as u8)
            .map(|n| IssuerTokenKey {
                key: token_key_bytes_of_len(n, MAX_TOKEN_KEY_LEN),
                ..token_key(n, DAY)
            })
            .collect(),
        ..set.fields().clone()
    })
    .unwrap();
    let signed = issuer_key(1).sign_key_set(largest).unwrap();
    assert_eq!(signed.to_bytes().len(), MAX_SIGNED_KEY_SET_BYTES);
}

#[test]
fn a_directory_lists_key_sets_by_issuer() {
    let d = directory(1)
        .with_issuer_keys(vec![key_set(2, &[1]), key_set(1, &[0, 1])])
        .unwrap();
    assert_eq!(
        d.key_sets()
            .iter()
            .map(|s| s.key_set().issuer())
            .collect::<Vec<_>>(),
        {
            let mut ids = vec![issuer_key(1).id(), issuer_key(2).id()];
            ids.sort();
            ids
        }
    );
    let bytes = d.to_bytes();
    assert_eq!(Directory::from_bytes(&bytes).unwrap(), d);
    let verified = verify_directory(signed(&d, &[0, 1]), &trust(2, 3), NOW, None).unwrap();
    let listed = verified.issuer_keys(&issuer_key(1).id()).unwrap();
    assert_eq!(listed.keys().len(), 2);
    assert!(verified.issuer_keys(&issuer_key(3).id()).is_none());

    // Two sets of one issuer: refused.
    assert_eq!(
        directory(1).with_issuer_keys(vec![key_set(1, &[1]), key_set(1, &[0, 1])]),
        Err(FormatError::Duplicate {
            list: "issuer key sets"
        })
    );
    // More issuers than a directory lists.
    let many: Vec<SignedIssuerKeySet> = (0..=MAX_ISSUERS as u8).map(|i| key_set(i, &[1])).collect();
    assert!(matches!(
        directory(1).with_issuer_keys(many),
        Err(FormatError::TooLarge {
            what: "issuer key sets",
            ..
        })
    ));
}

/// A directory whose key set is not signed by its issuer is refused by
/// clients as a whole (validators must not sign one).
#[test]
fn a_forged_key_set_refuses_the_directory() {
    let honest = key_set(1, &[1]);
    let forged =
        SignedIssuerKeySet::from_parts(honest.key_set().clone(), *key_set(2, &[1]).signature());
    let d = directory(1).with_issuer_keys(vec![forged]).unwrap();
    assert_eq!(
        verify_directory(signed(&d, &[0, 1]), &trust(2, 3), NOW, None).unwrap_err(),
        DirectoryError::BadSignature {
            which: Signer::Issuer(issuer_key(1).id())
        }
    );
}

#[test]
fn votes_name_key_sets_and_a_majority_elects_one() {
    let a = key_set(1, &[1]).digest();
    let b = key_set_at(1, &[1, 2], T0).digest();
    let c = key_set_at(1, &[2], T0 + 1).digest();
    let vote = |v: u8, digest| {
        Vote::new(validator_key(v).id(), T0, Vec::new())
            .unwrap()
            .with_issuers(vec![IssuerVote {
                issuer: issuer_key(1).id(),
                digest,
            }])
            .unwrap()
    };
    // A vote round-trips with its issuers.
    let signed = validator_key(0).sign_vote(vote(0, a)).unwrap();
    let decoded = openrelay_directory::vote::SignedVote::from_bytes(&signed.to_bytes()).unwrap();
    assert_eq!(decoded, signed);
    decoded.verify().unwrap();
    assert_eq!(decoded.vote().issuer(&issuer_key(1).id()), Some(a));

    let elected = |votes: &[Vote]| {
        tally_issuers(votes.iter())
            .get(&issuer_key(1).id())
            .copied()
    };
    assert_eq!(elected(&[vote(0, a), vote(1, a), vote(2, b)]), Some(a));
    assert_eq!(elected(&[vote(0, a), vote(1, b), vote(2, b)]), Some(b));
    // Equivocation: a different set for each validator lists none; so do
    // split votes without a majority.
    assert_eq!(elected(&[vote(0, a), vote(1, b), vote(2, c)]), None);
    assert_eq!(elected(&[vote(0, a), vote(1, b)]), None);
    // A vote without the issuer counts against every set of it.
    let silent = Vote::new(validator_key(2).id(), T0, Vec::new()).unwrap();
    assert_eq!(elected(&[vote(0, a), silent]), None);

    // An issuer named twice in one vote: refused.
    let twice = Vote::new(validator_key(0).id(), T0, Vec::new())
        .unwrap()
        .with_issuers(vec![
            IssuerVote {
                issuer: issuer_key(1).id(),
                digest: a,
            },
            IssuerVote {
                issuer: issuer_key(1).id(),
                digest: b,
            },
        ]);
    assert_eq!(
        twice,
        Err(FormatError::Duplicate {
            list: "vote issuers"
        })
    );
}

prop_compose! {
    fn token_key_any()(
        key in proptest::collection::vec(any::<u8>(), 1..=MAX_TOKEN_KEY_LEN),
        not_before in 0u64..u64::MAX / 2,
        lifetime in 1..=MAX_TOKEN_KEY_LIFETIME_SECS,
    ) -> IssuerTokenKey {
        IssuerTokenKey { token_type: TOKEN_TYPE_BLIND_RSA, key, not_before, expires: not_before + lifetime }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever the constructor accepts round-trips, and whatever decodes
    /// re-encodes to exactly the input.
    #[test]
    fn key_sets_round_trip(
        keys in proptest::collection::vec(token_key_any(), 1..=MAX_ISSUER_KEYS),
        published_at in any::<u64>(),
        name in "[!-+\\--?A-~]{1,40}",
    ) {
        let fields = KeySetFields { issuer: issuer_key(1).id(), issuer_name: name, published_at, keys };
        if let Ok(set) = IssuerKeySet::new(fields) {
            let signed = issuer_key(1).sign_key_set(set).unwrap();
            let bytes = signed.to_bytes();
            let decoded = SignedIssuerKeySet::from_bytes(&bytes).unwrap();
            prop_assert_eq!(decoded.to_bytes(), bytes);
            prop_assert!(decoded.verify().is_ok());
            // At most one key signs at any instant.
            let set = decoded.key_set();
            for key in set.keys() {
                for t in [key.not_before, key.issue_until().saturating_sub(1)] {
                    prop_assert!(set.keys().iter().filter(|k| k.issues_at(t)).count() <= 1);
                }
            }
        }
    }

    #[test]
    fn arbitrary_key_set_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let mut versioned = vec![openrelay_directory::ISSUER_KEYS_VERSION];
        versioned.extend_from_slice(&bytes);
        for input in [&bytes, &versioned] {
            if let Ok(set) = SignedIssuerKeySet::from_bytes(input) {
                prop_assert_eq!(&set.to_bytes(), input);
                let _ = set.verify();
            }
        }
    }

    #[test]
    fn mutated_key_sets_never_panic(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = key_set(1, &[0, 1, 2]).to_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(set) = SignedIssuerKeySet::from_bytes(&bytes) {
            prop_assert_eq!(set.to_bytes(), bytes);
        }
    }
}
