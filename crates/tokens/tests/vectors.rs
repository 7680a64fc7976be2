//! The RFCs' own test vectors: RFC 9578 Appendix A.2 (publicly verifiable
//! issuance, token type 0x0002) and RFC 9577 §7 (challenge and token
//! structures, WWW-Authenticate headers). The vectors are data copied from the
//! RFC sources (github.com/ietf-wg-privacypass/base-drafts), see the
//! `source` field of each file.
#![allow(clippy::unwrap_used)]

use openrelay_tokens::header::parse_www_authenticate;
use openrelay_tokens::verify::verify_signature;
use openrelay_tokens::{
    EpochKey, SigningKey, Token, TokenChallenge, TokenKey, TokenRequest, TokenResponse,
    TokenVerifier, VerifyError,
};
use serde_json::Value;
use sha2::Digest;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn field(v: &Value, name: &str) -> Vec<u8> {
    hex(v[name].as_str().unwrap())
}

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn rfc9578_publicly_verifiable_issuance_vectors() {
    let file = load("rfc9578_a2.json");
    let vectors = file["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 5);
    for (i, v) in vectors.iter().enumerate() {
        let pem = String::from_utf8(field(v, "skS")).unwrap();
        let signing = SigningKey::from_pem(&pem).unwrap();
        let pk_s = field(v, "pkS");
        // The SPKI encoding and token_key_id of RFC 9578 §6.5.
        assert_eq!(signing.public().spki(), pk_s.as_slice(), "vector {i}");
        let key = TokenKey::from_spki(&pk_s).unwrap();
        let key_id: [u8; 32] = sha2::Sha256::digest(&pk_s).into();
        assert_eq!(key.id(), key_id);

        let challenge_bytes = field(v, "token_challenge");
        let challenge = TokenChallenge::decode(&challenge_bytes).unwrap();
        assert_eq!(challenge.encode().unwrap(), challenge_bytes);

        // The issuer's step is deterministic: BlindSign(skS, blinded_msg).
        let request_bytes = field(v, "token_request");
        let request = TokenRequest::decode(&request_bytes).unwrap();
        assert_eq!(request.encode(), request_bytes);
        assert_eq!(request.truncated_token_key_id, key.truncated_id());
        let response_bytes = field(v, "token_response");
        let response = TokenResponse::decode(&response_bytes).unwrap();
        assert_eq!(response.encode(), response_bytes);
        assert_eq!(signing.sign(&request).unwrap(), response, "vector {i}");

        // The token: its fields and its signature.
        let token_bytes = field(v, "token");
        let token = Token::decode(&token_bytes).unwrap();
        assert_eq!(token.encode(), token_bytes);
        assert_eq!(token.nonce.as_slice(), field(v, "nonce").as_slice());
        assert_eq!(token.challenge_digest, challenge.digest().unwrap());
        assert_eq!(token.token_key_id, key_id);
        verify_signature(&token, &key).unwrap();
        let verifier =
            TokenVerifier::new(&challenge, vec![EpochKey::new(key.clone(), 0, 10)]).unwrap();
        verifier.verify(&token, 5).unwrap();
        assert_eq!(
            verifier.verify(&token, 10_000),
            Err(VerifyError::KeyExpired)
        );

        // Any changed bit breaks it.
        for byte in [2, 40, 70, 200, 353] {
            let mut bad = token_bytes.clone();
            bad[byte] ^= 1;
            let bad = Token::decode(&bad).unwrap();
            assert!(
                verify_signature(&bad, &key).is_err(),
                "vector {i} byte {byte}"
            );
        }
    }
}

#[test]
fn rfc9577_challenge_and_token_structure_vectors() {
    let file = load("rfc9577.json");
    let structures = file["structures"].as_array().unwrap();
    assert_eq!(structures.len(), 6);
    for (i, v) in structures.iter().enumerate() {
        if v["token_type"] != "0002" {
            continue; // Vector 6 is greasing: random bytes of type 0.
        }
        let context = field(v, "redemption_context");
        let origins = String::from_utf8(field(v, "origin_info")).unwrap();
        let challenge = TokenChallenge {
            token_type: 2,
            issuer_name: String::from_utf8(field(v, "issuer_name")).unwrap(),
            redemption_context: (!context.is_empty()).then(|| context.try_into().unwrap()),
            origin_info: if origins.is_empty() {
                Vec::new()
            } else {
                origins.split(',').map(str::to_owned).collect()
            },
        };
        let encoded = challenge.encode().unwrap();
        assert_eq!(TokenChallenge::decode(&encoded).unwrap(), challenge);
        let mut token_bytes = vec![0, 2];
        token_bytes.extend(field(v, "nonce"));
        token_bytes.extend(challenge.digest().unwrap());
        token_bytes.extend(field(v, "token_key_id"));
        token_bytes.extend([0u8; 256]);
        let token = Token::decode(&token_bytes).unwrap();
        assert_eq!(
            token.authenticator_input().as_slice(),
            field(v, "token_authenticator_input").as_slice(),
            "vector {i}"
        );
    }
}

#[test]
fn rfc9577_www_authenticate_vectors() {
    let file = load("rfc9577.json");
    let headers = file["www_authenticate"].as_array().unwrap();
    let pk_s = field(&load("rfc9578_a2.json")["vectors"][0], "pkS");
    let expected_types: [&[u16]; 3] = [&[2], &[2, 1], &[0, 1]];
    for (header, types) in headers.iter().zip(expected_types) {
        let challenges = parse_www_authenticate(header.as_str().unwrap()).unwrap();
        let got: Vec<u16> = challenges.iter().map(|c| c.token_type().unwrap()).collect();
        assert_eq!(got, types);
        for challenge in &challenges {
            // The greasing challenge (type 0) has no max-age.
            let max_age = (challenge.token_type() != Some(0)).then_some(10);
            assert_eq!(challenge.max_age, max_age);
            if challenge.token_type() == Some(2) {
                assert_eq!(challenge.token_key.as_deref(), Some(pk_s.as_slice()));
                let decoded = TokenChallenge::decode(&challenge.challenge).unwrap();
                assert_eq!(decoded.issuer_name, "issuer.example");
                assert_eq!(decoded.origin_info, ["origin.example"]);
            }
        }
    }
}
