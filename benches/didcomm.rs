//! DIDComm v2 pack+unpack rate, did-core vs SICPA `didcomm` 0.4.1, side by side in one run.
//!
//! Two did:key parties (Ed25519 with the derived X25519 key), a ~200-byte body, no
//! forward; one iteration = pack by alice + unpack by bob of the same message.
//! * authcrypt: ECDH-1PU+A256KW / A256CBC-HS512
//! * anoncrypt: ECDH-ES+A256KW / A256CBC-HS512
//!
//! Both sides resolve through in-memory resolvers holding documents built in advance
//! (ours: `Resolver`, which caches did:key documents; SICPA: a `Vec<DIDDoc>`).
//!
//! Run: `cargo bench --bench didcomm`

#[path = "../tests/support/sicpa.rs"]
mod sicpa;

use std::time::Duration;

use ::didcomm::algorithms::AnonCryptAlg;
use ::didcomm::{Message as SMessage, PackEncryptedOptions, UnpackOptions as SUnpackOptions};
use criterion::{criterion_main, Criterion, Throughput};
use did_core::didcomm::{self, Message, PackOptions, UnpackOptions};
use did_core::jose::content::ContentEnc;
use did_core::{DidResolver, Identity, Resolver};
use serde_json::{json, Value};
use sicpa::{Dids, Secrets};

struct Setup {
    rt: tokio::runtime::Runtime,
    alice: Identity,
    bob: Identity,
    ours: Resolver,
    theirs: Dids,
    alice_s: Secrets,
    bob_s: Secrets,
    json: Value,
    msg: Message,
    smsg: SMessage,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let alice = Identity::generate_key();
    let bob = Identity::generate_key();
    let ours = Resolver::default();
    // Warm our cache so both sides start with built documents.
    rt.block_on(async {
        ours.resolve(&alice.did).await.expect("alice");
        ours.resolve(&bob.did).await.expect("bob");
    });
    let theirs = Dids::of([&alice.did, &bob.did]);
    let json = json!({
        "id": "2f5b8c8e-6a1d-4f0e-9a43-1c2d3e4f5a6b",
        "typ": "application/didcomm-plain+json",
        "type": "https://didcomm.org/basicmessage/2.0/message",
        "from": alice.did.as_str(),
        "to": [bob.did.as_str()],
        "created_time": 1_700_000_000u64,
        "body": {"content": "x".repeat(186)},
    });
    assert_eq!(json["body"].to_string().len(), 200, "a 200-byte body");
    let msg = Message::from_value(json.clone()).expect("our message");
    let smsg: SMessage = serde_json::from_value(json.clone()).expect("SICPA message");
    Setup { rt, alice_s: Secrets::of(&alice), bob_s: Secrets::of(&bob), alice, bob, ours, theirs, json, msg, smsg }
}

async fn ours_round(s: &Setup, auth: bool) -> Message {
    let opts = PackOptions { forward: false, anon_enc: ContentEnc::A256CbcHs512, ..PackOptions::default() };
    let from = auth.then(|| s.alice.did.as_str());
    let packed = didcomm::pack_encrypted(&s.msg, s.bob.did.as_str(), from, None, &s.ours, &s.alice, &opts)
        .await
        .expect("our pack");
    let (got, meta) =
        didcomm::unpack(&packed.message, &s.ours, &s.bob, &UnpackOptions::default()).await.expect("our unpack");
    assert_eq!(meta.authenticated, auth);
    got
}

async fn sicpa_round(s: &Setup, auth: bool) -> SMessage {
    let opts = PackEncryptedOptions {
        forward: false,
        enc_alg_anon: AnonCryptAlg::A256cbcHs512EcdhEsA256kw,
        ..PackEncryptedOptions::default()
    };
    let from = auth.then(|| s.alice.did.as_str());
    let (packed, _) =
        s.smsg.pack_encrypted(s.bob.did.as_str(), from, None, &s.theirs, &s.alice_s, &opts).await.expect("SICPA pack");
    let (got, meta) =
        SMessage::unpack(&packed, &s.theirs, &s.bob_s, &SUnpackOptions::default()).await.expect("SICPA unpack");
    assert_eq!(meta.authenticated, auth);
    got
}

fn bench(c: &mut Criterion) {
    let s = setup();
    // Both sides really do the work (and produce the same plaintext) before we time them.
    for auth in [true, false] {
        let ours = s.rt.block_on(ours_round(&s, auth));
        assert_eq!(ours.to_value(), s.json);
        let theirs = s.rt.block_on(sicpa_round(&s, auth));
        assert_eq!(serde_json::to_value(&theirs).expect("json"), s.json);
    }
    for (name, auth) in [("authcrypt", true), ("anoncrypt", false)] {
        let mut g = c.benchmark_group(format!("didcomm/{name}"));
        g.throughput(Throughput::Elements(1))
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        g.bench_function("did-core", |b| {
            b.to_async(&s.rt).iter(|| ours_round(&s, auth));
        });
        g.bench_function("sicpa", |b| {
            b.to_async(&s.rt).iter(|| sicpa_round(&s, auth));
        });
        g.finish();
    }
}

/// `criterion_group!` makes a `pub fn`; keep it out of the crate's public (documented) surface.
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
