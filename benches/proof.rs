//! What an identity proof costs the host: verifying one Sign-In with Ethereum proof (parse,
//! EIP-191 digest, secp256k1 recovery, policy) and one Verifiable Presentation (VP-JWT
//! with one VC-JWT: two DID resolutions and two Ed25519 signatures checked by `ssi-jws`,
//! dates, binding, policy), one Data Integrity credential (a Digital Bazaar
//! `Ed25519Signature2020` credential: JSON-LD expansion, RDF canonicalization and the
//! signature, all by `ssi`) next to one pairwise Noise handshake of the session setup (both
//! messages, both sides), measured in the same run.

use std::time::Duration;

use criterion::{criterion_main, Criterion};
use did_core::{KeyKind, Resolver, SecretKey};
use gateway::descriptor::{Descriptor, MpcOptions, Program, Signed, VERSION};
use proofs::eth::{Account, LocalKey};
use proofs::{vc, Policy, Session};
use serde_json::Value;
use session::handshake::{respond, Initiator, Params, NOISE_PARAMS};
use sha2::Digest;

const ALICE: &str = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK";
const HOST: &str = "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WXWSkDu8K4p";

fn session_with(policy: Value, now: u64) -> Session {
    let d = Descriptor {
        v: VERSION,
        id: "AAECAwQFBgcICQoLDA0ODw".into(),
        host: HOST.into(),
        host_route: None,
        roster: vec![HOST.into(), ALICE.into()],
        program: Program { name: "p.py".into(), sha256: "0".repeat(64), args: vec![], mpyc: "0.10".into() },
        mpyc: MpcOptions::default(),
        proofs: policy,
        created: now,
        expires: now + 600,
        peer_deadline_secs: 30,
    };
    let digest = sha2::Sha256::digest(serde_json::to_vec(&d).expect("json")).into();
    Signed { descriptor: d, jws: Value::Null, digest }.proof_session()
}

fn bench(c: &mut Criterion) {
    let now = did_core::didcomm::message::now();
    let key = LocalKey::generate();
    let mut p = Policy::default();
    p.require_account(None, &Account { chain: 1, address: key.address() });
    let s = session_with(p.to_value(), now);
    let presented = serde_json::to_value(proofs::siwe_sign(&s, ALICE, &key, 1, now).expect("sign")).expect("json");
    let resolver = Resolver::default();
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let admit = |s: &Session, party: &str, p: &Value| {
        rt.block_on(proofs::admit(s, party, Some(p), &resolver, now)).expect("admitted").expect("an identity")
    };
    admit(&s, ALICE, &presented);

    // A did:key issuer, a did:key holder, one credential, the session's presentation.
    let did_key = || {
        let k = SecretKey::generate(KeyKind::Ed25519);
        let did = did_core::method::key::did_for(&k.public_key()).to_string();
        let kid = format!("{did}#{}", &did["did:key:".len()..]);
        (did, kid, k)
    };
    let ((issuer, ikid, ikey), (holder, hkid, hkey)) = (did_key(), did_key());
    let claims = vc::Claims {
        issuer: issuer.clone(),
        subject: holder.clone(),
        types: vec!["EmployeeCredential".into()],
        subject_claims: Default::default(),
        valid_from: now - 60,
        valid_until: Some(now + 86_400),
        id: None,
    };
    let cred = vc::issue(&claims, &ikid, &ikey).expect("issue");
    let mut pv = Policy::default();
    pv.trust_issuer(None, &issuer, &["EmployeeCredential".into()]);
    let sv = session_with(pv.to_value(), now);
    let vp =
        serde_json::to_value(proofs::vp_present(&sv, &holder, &[Value::String(cred)], &hkid, &hkey, now).expect("vp"))
            .expect("json");
    admit(&sv, &holder, &vp);

    let gen = || snow::Builder::new(NOISE_PARAMS.parse().expect("params")).generate_keypair().expect("keypair");
    let (a, b) = (gen(), gen());
    let k32 = |v: Vec<u8>| -> [u8; 32] { v.try_into().expect("32 bytes") };
    let (a_sk, a_pk, b_sk, b_pk) = (k32(a.private), k32(a.public), k32(b.private), k32(b.public));
    let d = [0u8; 32];
    let params = |l, r| Params {
        session_id: b"bench",
        roster_digest: &d,
        initiator_did: "did:ex:a",
        responder_did: "did:ex:b",
        local_static: l,
        remote_static: r,
    };

    let mut g = c.benchmark_group("admission");
    g.measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
    g.bench_function("siwe_verify_and_policy", |bch| bch.iter(|| admit(&s, ALICE, &presented)));
    g.bench_function("vp_verify_and_policy", |bch| bch.iter(|| admit(&sv, &holder, &vp)));
    let dbvc: Value = serde_json::from_str(include_str!("../proofs/src/fixtures/dbvc_employee.json")).expect("fixture");
    let di_verify = || rt.block_on(proofs::di::verify_credential(&dbvc, &resolver, now)).expect("verifies");
    di_verify();
    g.bench_function("data_integrity_credential_verify", |bch| bch.iter(di_verify));
    g.bench_function("noise_handshake_pair", |bch| {
        bch.iter(|| {
            let (init, m1) = Initiator::start(&params(&a_sk, &b_pk)).expect("m1");
            let (_kb, m2) = respond(&params(&b_sk, &a_pk), &m1).expect("m2");
            init.finish(&m2).expect("keys")
        })
    });
    g.finish();
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
}

criterion_main!(benches);
