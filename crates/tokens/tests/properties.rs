//! Round trips of every codec and totality of every parser (no input makes
//! one panic), plus issuance end to end.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use openrelay_tokens::header::{
    build_authorization, build_www_authenticate, parse_authorization, parse_www_authenticate,
};
use openrelay_tokens::token::TOKEN_LEN;
use openrelay_tokens::{
    EpochKey, HeaderError, IssuerDirectory, SigningKey, Token, TokenChallenge, TokenError,
    TokenRequest, TokenResponse, TokenVerifier, VerifyError, issuance,
};
use proptest::prelude::*;

fn server_name() -> impl Strategy<Value = String> {
    "[a-z0-9.:-]{1,40}"
}

fn challenge() -> impl Strategy<Value = TokenChallenge> {
    (
        any::<u16>(),
        server_name(),
        proptest::option::of(any::<[u8; 32]>()),
        proptest::collection::vec(server_name(), 0..4),
    )
        .prop_map(
            |(token_type, issuer_name, redemption_context, origin_info)| TokenChallenge {
                token_type,
                issuer_name,
                redemption_context,
                origin_info,
            },
        )
}

fn token() -> impl Strategy<Value = Token> {
    (
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 256),
    )
        .prop_map(
            |(nonce, challenge_digest, token_key_id, authenticator)| Token {
                nonce,
                challenge_digest,
                token_key_id,
                authenticator: authenticator.try_into().unwrap(),
            },
        )
}

proptest! {
    #[test]
    fn challenges_round_trip(c in challenge()) {
        let bytes = c.encode().unwrap();
        prop_assert_eq!(TokenChallenge::decode(&bytes).unwrap(), c);
    }

    #[test]
    fn challenge_decoding_is_total_and_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(c) = TokenChallenge::decode(&bytes) {
            prop_assert_eq!(c.encode().unwrap(), bytes);
        }
    }

    #[test]
    fn tokens_round_trip(t in token()) {
        let bytes = t.encode();
        prop_assert_eq!(bytes.len(), TOKEN_LEN);
        prop_assert_eq!(Token::decode(&bytes).unwrap(), t.clone());
        let header = build_authorization(&t);
        prop_assert_eq!(parse_authorization(&header).unwrap(), t);
    }

    #[test]
    fn token_decoding_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(t) = Token::decode(&bytes) {
            prop_assert_eq!(t.encode(), bytes);
        }
    }

    #[test]
    fn issuance_messages_round_trip(truncated in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 256)) {
        let request = TokenRequest { truncated_token_key_id: truncated, blinded_msg: body.clone() };
        prop_assert_eq!(TokenRequest::decode(&request.encode()).unwrap(), request);
        let response = TokenResponse { blind_sig: body };
        prop_assert_eq!(TokenResponse::decode(&response.encode()).unwrap(), response);
    }

    #[test]
    fn issuance_decoding_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(r) = TokenRequest::decode(&bytes) {
            prop_assert_eq!(r.encode(), bytes.clone());
        }
        if let Ok(r) = TokenResponse::decode(&bytes) {
            prop_assert_eq!(r.encode(), bytes);
        }
    }

    #[test]
    fn www_authenticate_round_trips(c in challenge(), key in proptest::collection::vec(any::<u8>(), 1..300), max_age in proptest::option::of(any::<u32>())) {
        let bytes = c.encode().unwrap();
        let header = build_www_authenticate(&bytes, &key, max_age.map(u64::from));
        // Next to other schemes and parameters, as RFC 9110 §11.6.1 allows.
        let header = format!("Basic realm=\"x\", {header}, other=\"y\", Negotiate abc==");
        let parsed = parse_www_authenticate(&header).unwrap();
        prop_assert_eq!(parsed.len(), 1);
        prop_assert_eq!(&parsed[0].challenge, &bytes);
        prop_assert_eq!(parsed[0].token_key.as_deref(), Some(key.as_slice()));
        prop_assert_eq!(parsed[0].max_age, max_age.map(u64::from));
    }

    #[test]
    fn header_parsers_are_total(text in "[ -~\t]{0,200}") {
        let _ = parse_www_authenticate(&text);
        let _ = parse_authorization(&text);
    }

    #[test]
    fn header_parsers_are_total_near_valid_input(t in token(), cut in 0usize..600, insert in "[ -~]{0,3}") {
        let header = build_authorization(&t);
        let cut = cut.min(header.len());
        let mangled = format!("{}{insert}{}", &header[..cut], &header[cut..]);
        let _ = parse_authorization(&mangled);
        let _ = parse_www_authenticate(&mangled);
    }
}

#[test]
fn authorization_refuses_what_is_not_one_private_token() {
    let token = Token::decode(&{
        let mut b = vec![0u8; TOKEN_LEN];
        b[1] = 2;
        b
    })
    .unwrap();
    let good = build_authorization(&token);
    assert!(parse_authorization(&good).is_ok());
    assert!(parse_authorization(&good.replace("PrivateToken", "privatetoken")).is_ok());
    assert_eq!(
        parse_authorization("Basic dXNlcjpwYXNz"),
        Err(HeaderError::OtherScheme)
    );
    assert_eq!(
        parse_authorization("PrivateToken"),
        Err(HeaderError::MissingParameter("token"))
    );
    assert_eq!(
        parse_authorization("PrivateToken token=\"@@@\""),
        Err(HeaderError::BadParameter("token"))
    );
    assert_eq!(
        parse_authorization("PrivateToken token=\"AAE=\""),
        Err(HeaderError::Token(TokenError::UnsupportedType(1)))
    );
    assert!(matches!(
        parse_authorization(&format!("{good}, token=\"AAE=\"")),
        Err(HeaderError::DuplicateParameter(_))
    ));
    assert!(matches!(
        parse_authorization(&format!("{good}, {good}")),
        Err(HeaderError::Syntax(_))
    ));
    for bad in [
        "",
        "PrivateToken token=",
        "PrivateToken token=\"abc",
        "PrivateToken=x",
        "PrivateToken ,",
    ] {
        assert!(parse_authorization(bad).is_err(), "{bad}");
    }
}

fn test_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate().unwrap())
}

#[test]
fn issued_tokens_verify_once_per_challenge_and_key() {
    let signing = test_key();
    let key = signing.public().clone();
    assert_eq!(
        SigningKey::from_pem(&signing.to_pem().unwrap())
            .unwrap()
            .public(),
        &key
    );
    let challenge = TokenChallenge::for_issuer("issuer.example:4433");
    let (request, pending) = issuance::request(&key, challenge.digest().unwrap()).unwrap();
    let request = TokenRequest::decode(&request.encode()).unwrap();
    let response = signing.sign(&request).unwrap();
    let token = pending.finalize(&response).unwrap();

    let epoch = EpochKey::new(key.clone(), 1000, 100);
    let verifier = TokenVerifier::new(&challenge, vec![epoch.clone()]).unwrap();
    let redemption = verifier.verify(&token, 1050).unwrap();
    assert_eq!(redemption.expires, 1200 + 60);
    assert_eq!(verifier.verify(&token, 1300), Err(VerifyError::KeyExpired));
    assert_eq!(verifier.verify(&token, 900), Err(VerifyError::KeyExpired));
    let other = TokenVerifier::new(
        &TokenChallenge::for_issuer("other.example"),
        vec![epoch.clone()],
    )
    .unwrap();
    assert_eq!(other.verify(&token, 1050), Err(VerifyError::WrongChallenge));
    let keyless = TokenVerifier::new(&challenge, Vec::new()).unwrap();
    assert_eq!(keyless.verify(&token, 1050), Err(VerifyError::UnknownKey));

    // A challenge a client can act on: our own parser reads it back.
    let header = verifier.www_authenticate(1050).unwrap();
    let parsed = parse_www_authenticate(&header).unwrap();
    assert_eq!(parsed[0].challenge, challenge.encode().unwrap());
    assert_eq!(parsed[0].token_key.as_deref(), Some(key.spki()));
    assert!(
        verifier.www_authenticate(1150).is_none(),
        "past its issuing half"
    );

    // A response from another key, or garbage, gives no token.
    let (request, pending) = issuance::request(&key, challenge.digest().unwrap()).unwrap();
    let mut bad = signing.sign(&request).unwrap();
    bad.blind_sig[10] ^= 1;
    assert!(pending.finalize(&bad).is_err());
    let wrong_key = TokenRequest {
        truncated_token_key_id: key.truncated_id().wrapping_add(1),
        ..request
    };
    assert!(signing.sign(&wrong_key).is_err());

    // The directory carries the keys and their epochs.
    let directory = IssuerDirectory::new("/token-request", std::slice::from_ref(&epoch));
    let parsed = IssuerDirectory::from_json(&directory.to_json()).unwrap();
    assert_eq!(parsed.epoch_keys().unwrap(), vec![epoch]);
}
