//! Tokens issued and verified per second on one core: the issuer's blind
//! signature (RFC 9578 §6.2), the client's blinding and finalisation, and a
//! relay's verification (RFC 9578 §6.4).
//!
//! `gate/*`: an ingress's whole admission of one token at its `TokenGate`
//! (RFC 9578 §6.4 verification and the spend in the embedded redb set, one
//! durable write transaction each), and the spend alone; the tokens are
//! minted outside the timed loop (issue 16 item 3).
//!
//! `cargo bench -p openrelay-tokens --bench tokens`

#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented `pub fn`"
)]

use std::hint::black_box;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use openrelay_tokens::gate::TokenGate;
use openrelay_tokens::spent::{RedbSpentTokens, SpendKey, SpentTokens};
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

/// Redemptions at a gate with the embedded spent set, each token fresh.
fn gate(c: &mut Criterion) {
    let (Ok(signing), Ok(dir), Ok(runtime)) = (
        SigningKey::generate(),
        tempfile::tempdir(),
        tokio::runtime::Builder::new_current_thread().build(),
    ) else {
        return;
    };
    let challenge = TokenChallenge::for_issuer("issuer.example");
    let Ok(digest) = challenge.digest() else {
        return;
    };
    let Ok(store) = RedbSpentTokens::open(&dir.path().join("spent.redb")) else {
        return;
    };
    let store: Arc<dyn SpentTokens> = Arc::new(store);
    let Ok(gate) = TokenGate::new(&challenge, Arc::clone(&store)) else {
        return;
    };
    let now = openrelay_types::unix_now();
    gate.set_keys(vec![EpochKey::new(
        signing.public().clone(),
        now - 10,
        3600,
    )]);
    let mint = || {
        let (request, pending) = issuance::request(signing.public(), digest).ok()?;
        pending.finalize(&signing.sign(&request).ok()?).ok()
    };
    let mut group = c.benchmark_group("gate");
    // Each redemption needs a fresh token (a few ms to mint): few samples.
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.bench_function("redeem_redb", |b| {
        b.iter_custom(|iters| {
            let tokens: Vec<_> = (0..iters).filter_map(|_| mint()).collect();
            let started = Instant::now();
            for token in &tokens {
                let _ = runtime.block_on(gate.redeem(black_box(token)));
            }
            started.elapsed()
        })
    });
    let mut counter = 0u64;
    group.bench_function("spend_redb", |b| {
        b.iter(|| {
            // Spread over the key space as real spend keys (SHA-256) are.
            counter += 1;
            let mut key = [0u8; 32];
            for (i, word) in key.chunks_mut(8).enumerate() {
                let mixed = (counter ^ i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                word.copy_from_slice(&(mixed ^ (mixed >> 29)).to_le_bytes());
            }
            runtime.block_on(store.spend(SpendKey(key), now + 3600, now))
        })
    });
    group.finish();
}

criterion_group!(benches, tokens, gate);
criterion_main!(benches);
