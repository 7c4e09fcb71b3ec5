//! Small-message rate: one message per packet through a session (seal, open, stream
//! bookkeeping, acknowledgements) versus one DIDComm authcrypt pack+unpack per message
//! (did-core and SICPA `didcomm` 0.4.1), for 64- and 200-byte messages, in one run.
//!
//! Run: `cargo bench --bench session`

#[path = "../tests/support/sicpa.rs"]
mod sicpa;

use std::time::{Duration, Instant};

use ::didcomm::{Message as SMessage, PackEncryptedOptions, UnpackOptions as SUnpackOptions};
use criterion::{criterion_main, Criterion, Throughput};
use did_core::didcomm::{self, Message, PackOptions, UnpackOptions};
use did_core::{DidResolver, Identity, Resolver};
use serde_json::json;
use session::handshake::{respond, Initiator, Params, NOISE_PARAMS};
use session::{Config, Read, Session};
use sicpa::{Dids, Secrets};

fn session_pair() -> (Session, Session, u32) {
    let gen = || snow::Builder::new(NOISE_PARAMS.parse().expect("params")).generate_keypair().expect("keypair");
    let (a, b) = (gen(), gen());
    let key = |v: Vec<u8>| -> [u8; 32] { v.try_into().expect("32 bytes") };
    let (a_sk, a_pk, b_sk, b_pk) = (key(a.private), key(a.public), key(b.private), key(b.public));
    let d = [0u8; 32];
    let p = |l, r| Params {
        session_id: b"bench",
        roster_digest: &d,
        initiator_did: "did:ex:a",
        responder_did: "did:ex:b",
        local_static: l,
        remote_static: r,
    };
    let (init, m1) = Initiator::start(&p(&a_sk, &b_pk)).expect("m1");
    let (kb, m2) = respond(&p(&b_sk, &a_pk), &m1).expect("m2");
    let ka = init.finish(&m2).expect("keys");
    let now = Instant::now();
    let (mut sa, mut sb) = (Session::new(ka, Config::default(), now), Session::new(kb, Config::default(), now));
    let id = sa.open_stream().expect("stream");
    (sa.next_packet(now).into_iter()).for_each(|p| sb.handle_packet(now, &p));
    while sb.poll_event().is_some() {}
    (sa, sb, id)
}

/// One message a → b in its own packet, read by b; b's acknowledgements flow back.
fn session_round(sa: &mut Session, sb: &mut Session, id: u32, msg: &[u8], buf: &mut [u8]) -> usize {
    let now = Instant::now();
    sa.write(id, msg).expect("write");
    let pkt = sa.next_packet(now).expect("a packet");
    sb.handle_packet(now, &pkt);
    let n = match sb.read(id, buf).expect("read") {
        Read::Data(n) => n,
        other => panic!("expected data, got {other:?}"),
    };
    while let Some(ack) = sb.next_packet(now + Duration::from_millis(5)) {
        sa.handle_packet(now, &ack);
    }
    n
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (alice, bob) = (Identity::generate_key(), Identity::generate_key());
    let ours = Resolver::default();
    rt.block_on(async {
        ours.resolve(&alice.did).await.expect("alice");
        ours.resolve(&bob.did).await.expect("bob");
    });
    let theirs = Dids::of([&alice.did, &bob.did]);
    let (alice_s, bob_s) = (Secrets::of(&alice), Secrets::of(&bob));
    for size in [64usize, 200] {
        let payload = vec![0x5au8; size];
        // DIDComm messages carry the same number of bytes in their body.
        let body = json!({ "d": "x".repeat(size - 8) });
        assert_eq!(body.to_string().len(), size);
        let msg = Message::new("https://didmpc.dev/bench/1.0/m", body).from(alice.did.as_str()).to(bob.did.as_str());
        let smsg: SMessage = serde_json::from_value(msg.to_value()).expect("SICPA message");
        let (mut sa, mut sb, id) = session_pair();
        let mut buf = vec![0u8; 4096];
        assert_eq!(session_round(&mut sa, &mut sb, id, &payload, &mut buf), size);
        let mut g = c.benchmark_group(format!("small_messages/{size}B"));
        g.throughput(Throughput::Elements(1))
            .sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        g.bench_function("session", |b| b.iter(|| session_round(&mut sa, &mut sb, id, &payload, &mut buf)));
        let opts = PackOptions { forward: false, ..PackOptions::default() };
        g.bench_function("did-core-authcrypt", |b| {
            b.to_async(&rt).iter(|| async {
                let p = didcomm::pack_encrypted(
                    &msg,
                    bob.did.as_str(),
                    Some(alice.did.as_str()),
                    None,
                    &ours,
                    &alice,
                    &opts,
                )
                .await
                .expect("pack");
                didcomm::unpack(&p.message, &ours, &bob, &UnpackOptions::default()).await.expect("unpack")
            })
        });
        let sopts = PackEncryptedOptions { forward: false, ..PackEncryptedOptions::default() };
        g.bench_function("sicpa-authcrypt", |b| {
            b.to_async(&rt).iter(|| async {
                let (p, _) = smsg
                    .pack_encrypted(bob.did.as_str(), Some(alice.did.as_str()), None, &theirs, &alice_s, &sopts)
                    .await
                    .expect("pack");
                SMessage::unpack(&p, &theirs, &bob_s, &SUnpackOptions::default()).await.expect("unpack")
            })
        });
        g.finish();
    }
}

mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
