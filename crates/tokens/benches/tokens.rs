//! Tokens issued and verified per second on one core: the issuer's blind
//! signature (RFC 9578 §6.2), the client's blinding and finalisation, and a
//! relay's verification (RFC 9578 §6.4).
//!
//! `gate/*`: an ingress's whole admission of one token at its `TokenGate`
//! (RFC 9578 §6.4 verification and the spend in the embedded redb set, with
//! group commit, or in a local Redis), one at a time and concurrently, and
//! the spend alone; the tokens are minted outside the timed loop (issue 16
//! item 3).
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
use futures_util::future::join_all;
use openrelay_tokens::gate::TokenGate;
use openrelay_tokens::spent::{RedbSpentTokens, RedisSpentTokens, SpendKey, SpentTokens};
use openrelay_tokens::testing::RedisServer;
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

/// Spends or redemptions in flight at once in the `*_concurrent` benches: an
/// ingress admitting a burst of tunnel set-ups. Each wave of this many is
/// started together and awaited together; the time is per token.
const CONCURRENT: usize = 64;

/// A spend key spread over the key space as real ones (SHA-256) are.
fn spread_key(counter: u64) -> SpendKey {
    let mut key = [0u8; 32];
    for (i, word) in key.chunks_mut(8).enumerate() {
        let mixed = (counter ^ i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        word.copy_from_slice(&(mixed ^ (mixed >> 29)).to_le_bytes());
    }
    SpendKey(key)
}

/// Redemptions at a gate with each spent set (the embedded redb set, and a
/// local redis-server if installed), each token fresh, one at a time and
/// [`CONCURRENT`] at once; and the spend alone, both ways. All on one
/// thread (the redb set's writer thread and redis-server aside).
fn gate(c: &mut Criterion) {
    let (Ok(signing), Ok(dir), Ok(runtime)) = (
        SigningKey::generate(),
        tempfile::tempdir(),
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    ) else {
        return;
    };
    let challenge = TokenChallenge::for_issuer("issuer.example");
    let Ok(digest) = challenge.digest() else {
        return;
    };
    let mut stores: Vec<(&str, Arc<dyn SpentTokens>)> = Vec::new();
    if let Ok(store) = RedbSpentTokens::open(&dir.path().join("spent.redb")) {
        stores.push(("redb", Arc::new(store)));
    }
    // Killed when dropped, at the end of this function.
    let redis_server = RedisServer::start();
    if let Some(server) = &redis_server
        && let Ok(store) = runtime.block_on(RedisSpentTokens::connect(&server.url()))
    {
        stores.push(("redis", Arc::new(store)));
    }
    let now = openrelay_types::unix_now();
    let mint = || {
        let (request, pending) = issuance::request(signing.public(), digest).ok()?;
        pending.finalize(&signing.sign(&request).ok()?).ok()
    };
    let mut counter = 0u64;
    let mut group = c.benchmark_group("gate");
    // Each redemption needs a fresh token (a few ms to mint): few samples.
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for (name, store) in stores {
        let Ok(gate) = TokenGate::new(&challenge, Arc::clone(&store)) else {
            return;
        };
        gate.set_keys(vec![EpochKey::new(
            signing.public().clone(),
            now - 10,
            3600,
        )]);
        group.bench_function(format!("redeem_{name}"), |b| {
            b.iter_custom(|iters| {
                let tokens: Vec<_> = (0..iters).filter_map(|_| mint()).collect();
                let started = Instant::now();
                for token in &tokens {
                    let _ = runtime.block_on(gate.redeem(black_box(token)));
                }
                started.elapsed()
            })
        });
        group.bench_function(format!("redeem_{name}_concurrent"), |b| {
            b.iter_custom(|iters| {
                let tokens: Vec<_> = (0..iters).filter_map(|_| mint()).collect();
                let started = Instant::now();
                for wave in tokens.chunks(CONCURRENT) {
                    runtime.block_on(join_all(wave.iter().map(|t| gate.redeem(black_box(t)))));
                }
                started.elapsed()
            })
        });
        group.bench_function(format!("spend_{name}"), |b| {
            b.iter(|| {
                counter += 1;
                runtime.block_on(store.spend(spread_key(counter), now + 3600, now))
            })
        });
        group.bench_function(format!("spend_{name}_concurrent"), |b| {
            b.iter_custom(|iters| {
                let keys: Vec<_> = (0..iters)
                    .map(|_| {
                        counter += 1;
                        spread_key(counter)
                    })
                    .collect();
                let started = Instant::now();
                for wave in keys.chunks(CONCURRENT) {
                    runtime.block_on(join_all(
                        wave.iter().map(|key| store.spend(*key, now + 3600, now)),
                    ));
                }
                started.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, tokens, gate);
criterion_main!(benches);
