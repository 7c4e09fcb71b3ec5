//! X25519 for the mediator's own ECDH: curve25519-dalek vs AWS-LC (aws-lc-rs), side by side.
//!
//! Every forward is anoncrypted (ECDH-ES) to the mediator's static X25519 key, so accepting
//! one costs one X25519 with a long-lived secret and the sender's ephemeral public key.
//! * `static-ecdh`: one agreement with a static secret (what the mediator does per forward);
//!   `did-core` is [`did_core::SecretKey::ecdh`], which the DIDComm code calls.
//! * `ephemeral`: a fresh key pair and its public key (what a sender does per message).
//!
//! ring is not compared: its agreement API takes ephemeral keys only, so the mediator's
//! static key cannot be used with it.
//!
//! Run: `cargo bench --bench x25519`

use std::time::Duration;

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use criterion::{criterion_main, Criterion, Throughput};
use did_core::{KeyKind, PublicKey, SecretKey};

fn bench(c: &mut Criterion) {
    let ours = SecretKey::generate(KeyKind::X25519);
    let peer = SecretKey::generate(KeyKind::X25519).public_key();
    let peer_bytes: [u8; 32] = peer.to_bytes().try_into().expect("32 bytes");
    let secret: [u8; 32] = ours.to_bytes()[..].try_into().expect("32 bytes");

    let dalek = x25519_dalek::StaticSecret::from(secret);
    let dalek_peer = x25519_dalek::PublicKey::from(peer_bytes);
    let lc = PrivateKey::from_private_key(&X25519, &secret).expect("aws-lc key");
    let dalek_dh = || {
        let shared = dalek.diffie_hellman(&dalek_peer);
        assert!(shared.was_contributory());
        *shared.as_bytes()
    };
    let lc_dh = || {
        agreement::agree(&lc, UnparsedPublicKey::new(&X25519, &peer_bytes), (), |z| {
            Ok(<[u8; 32]>::try_from(z).expect("32 bytes"))
        })
        .expect("agreement")
    };
    // All three compute the same shared secret before any is timed.
    assert_eq!(dalek_dh(), lc_dh());
    assert_eq!(&ours.ecdh(&peer).expect("did-core")[..], &dalek_dh()[..]);

    let mut g = c.benchmark_group("x25519/static-ecdh");
    g.throughput(Throughput::Elements(1)).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.bench_function("curve25519-dalek", |b| b.iter(dalek_dh));
    g.bench_function("aws-lc-rs", |b| b.iter(lc_dh));
    g.bench_function("did-core", |b| b.iter(|| ours.ecdh(&peer).expect("did-core")));
    g.finish();

    let mut g = c.benchmark_group("x25519/ephemeral");
    g.throughput(Throughput::Elements(1)).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    g.bench_function("curve25519-dalek", |b| {
        b.iter(|| {
            let s = x25519_dalek::StaticSecret::random_from_rng(rand::rngs::OsRng);
            x25519_dalek::PublicKey::from(&s)
        })
    });
    g.bench_function("aws-lc-rs", |b| {
        b.iter(|| PrivateKey::generate(&X25519).and_then(|k| k.compute_public_key()).expect("aws-lc key"))
    });
    g.bench_function("did-core", |b| b.iter(|| -> PublicKey { SecretKey::generate(KeyKind::X25519).public_key() }));
    g.finish();
}

/// `criterion_group!` makes a `pub fn`; keep it out of the crate's public (documented) surface.
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
