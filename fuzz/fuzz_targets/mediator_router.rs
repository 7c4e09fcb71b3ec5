//! The mediator's message router on arbitrary input, over HTTP and WebSocket channels:
//! it must never panic, and every answer must be a problem report or an envelope.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use mediator::store::SqliteStore;
use mediator::{Channel, Config, Mediator};

struct Fixture {
    rt: tokio::runtime::Runtime,
    mediator: Arc<Mediator>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("didmpc-fuzz-mediator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut config = Config::default();
    config.store.db = dir.join("mediator.db");
    let store = SqliteStore::open(&config.store.db, config.store.sync, 64).expect("store");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let listen = "127.0.0.1:7080".parse().expect("address");
    let mediator = rt.block_on(async { Mediator::with_store(config, listen, Arc::new(store)) }).expect("mediator");
    Fixture { rt, mediator }
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let f = &*FIXTURE;
    let (tx, _rx) = tokio::sync::mpsc::channel(4);
    for ch in [Channel::Http, Channel::Ws { conn: 1, tx: &tx }] {
        let out = f.rt.block_on(f.mediator.handle(text, ch));
        assert!((200..600).contains(&out.status));
        if let Some(body) = out.body {
            let v: serde_json::Value = serde_json::from_str(&body).expect("answers are JSON");
            assert!(v.get("ciphertext").is_some() || v["type"].as_str().is_some_and(|t| t.ends_with("/problem-report")));
        }
    }
});
