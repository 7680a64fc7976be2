//! Tokens issued and verified per second on one core: the issuer's blind
//! signature (RFC 9578 §6.2), the client's blinding and finalisation, and a
//! relay's verification (RFC 9578 §6.4).
//!
//! `cargo bench -p openrelay-tokens --bench tokens`

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use openrelay_tokens::{EpochKey, SigningKey, TokenChallenge, TokenVerifier, issuance};

fn tokens(c: &mut Criterion) {
    let Ok(signing) = SigningKey::generate() else {
        return;
    };
    let key = signing.public().clone();
    let challenge = TokenChallenge::for_issuer("issuer.example");
    let Ok(digest) = challenge.digest() else {
        return;
    };
    let Ok((request, pending)) = issuance::request(&key, digest) else {
        return;
    };
    let Ok(response) = signing.sign(&request) else {
        return;
    };
    let Ok(token) = pending.finalize(&response) else {
        return;
    };
    let Ok(verifier) = TokenVerifier::new(&challenge, vec![EpochKey::new(key.clone(), 0, 1 << 40)])
    else {
        return;
    };

    let mut group = c.benchmark_group("tokens");
    group.bench_function("issuer_sign", |b| {
        b.iter(|| signing.sign(black_box(&request)))
    });
    group.bench_function("client_blind", |b| {
        b.iter(|| issuance::request(black_box(&key), digest))
    });
    group.bench_function("client_blind_sign_finalize", |b| {
        b.iter(|| {
            let (request, pending) = issuance::request(&key, digest).ok()?;
            let response = signing.sign(&request).ok()?;
            pending.finalize(&response).ok()
        })
    });
    group.bench_function("relay_verify", |b| {
        b.iter(|| verifier.verify(black_box(&token), 1000))
    });
    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
