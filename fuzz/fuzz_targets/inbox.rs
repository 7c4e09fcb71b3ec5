//! The party agent's inbox pipeline on arbitrary bytes: a Pickup `delivery` message, the
//! envelopes in its attachments, each opened behind the agent's resolution gate (nobody
//! expected) with a did:web fetcher that must never be called, then every typed body of our
//! protocols and the host, joiner and mesh cores fed with what opened. No panic, no fetch.
#![no_main]

use std::sync::{Arc, LazyLock};

use did_core::didcomm::{self, Message, UnpackOptions};
use did_core::method::web::{FetchError, HttpFetch};
use did_core::{Identity, KeyRing, Resolver, ResolverPolicy};
use gateway::core::host::{HostCore, HostIn};
use gateway::core::joiner::{JoinCore, JoinIn};
use gateway::core::mesh::{MeshCore, MeshIn};
use gateway::descriptor::{Descriptor, MpcOptions, Program, VERSION};
use gateway::inbox::{Expected, Gated};
use gateway::wire::{self, Member};
use libfuzzer_sys::fuzz_target;

struct NeverFetch;

#[async_trait::async_trait]
impl HttpFetch for NeverFetch {
    async fn get(&self, url: &str, _max: usize) -> Result<Vec<u8>, FetchError> {
        panic!("the inbox fetched {url} for a sender nobody expects");
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    resolver: Resolver,
    keys: KeyRing,
    expected: Expected,
    me: String,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let id = Identity::generate_key();
    let mut keys = KeyRing::new();
    keys.add_identity(&id);
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let resolver = Resolver::with_fetcher(Some(Arc::new(NeverFetch)), ResolverPolicy::default());
    Fixture { rt, resolver, keys, expected: Expected::default(), me: id.did.to_string() }
});

fn descriptor(me: &str) -> Descriptor {
    let host = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK".to_owned();
    Descriptor {
        v: VERSION,
        id: "s".into(),
        host: host.clone(),
        host_route: None,
        roster: vec![host, me.to_owned()],
        program: Program { name: "p.py".into(), sha256: "0".repeat(64), args: vec![], mpyc: "0.11".into() },
        mpyc: MpcOptions::default(),
        proofs: serde_json::Value::Null,
        created: 1,
        expires: 10,
        peer_deadline_secs: 30,
    }
}

fn cores(m: &Message, sender: &str, me: &str) {
    let _ = m.parse::<wire::Invitation>();
    let _ = m.parse::<wire::Accept>();
    let _ = m.parse::<wire::Init>();
    let d = descriptor(me);
    let own = Member { did: d.host.clone(), agent: d.host.clone(), route: None, identity: None };
    let mut host = HostCore::new(d.clone(), own);
    let _ = host.handle(HostIn::Message { msg: m, sender });
    let mut join = JoinCore::new(d.clone(), 1, me, "j");
    let _ = join.handle(JoinIn::Message { msg: m, sender });
    let mut mesh = MeshCore::new(1, d.roster.clone(), 1000);
    let _ = mesh.start();
    let _ = mesh.handle(MeshIn::Message { msg: m, sender });
}

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let Ok(delivery) = Message::from_value(v) else { return };
    cores(&delivery, &f.me, &f.me);
    let Ok(envelopes) = gateway::link::deliveries(&delivery) else { return };
    let gated = Gated { inner: &f.resolver, expected: &f.expected };
    for d in envelopes {
        let opened = f.rt.block_on(didcomm::unpack(&d.envelope, &gated, &f.keys, &UnpackOptions::default()));
        if let Ok((m, meta)) = opened {
            cores(&m, meta.sender.as_deref().unwrap_or_default(), &f.me);
        }
    }
});
