//! TLS from PEM files. Its own test binary: it sets DIDMPC_CA_FILE, which must not
//! race other tests' environment reads.

#[path = "support/mediator.rs"]
mod support;

use std::time::Duration;

use gateway::{Agent, Incoming};
use mediator::Config;
use support::{temp_path, InProcess};

fn home() -> std::path::PathBuf {
    temp_path("home").parent().unwrap().to_path_buf()
}

fn texts(items: Vec<Incoming>) -> Vec<(String, String)> {
    items
        .into_iter()
        .map(|i| {
            let (m, meta) = i.result.expect("a readable message");
            (meta.sender.expect("authenticated"), m.body["content"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// TLS from certificate files: HTTPS health, and init/send over https and live inbox over wss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_from_pem_files() {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let dir = temp_path("x").parent().unwrap().to_path_buf();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cfg = Config::default();
    cfg.store.db = dir.join("mediator.db");
    cfg.server.tls_cert = Some(dir.join("cert.pem"));
    cfg.server.tls_key = Some(dir.join("key.pem"));
    let m = InProcess::start_on(cfg, listener).await;
    let url = format!("https://127.0.0.1:{port}");
    assert!(m.mediator.base_urls()[0].starts_with("https://"));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let health: serde_json::Value = client.get(format!("{url}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "ok");
    // plain HTTP to the TLS port gets nothing useful
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/health")).await.is_err());
    // parties trusting the certificate (DIDMPC_CA_FILE) work over https and wss
    std::env::set_var(gateway::transport::ENV_CA_FILE, dir.join("cert.pem"));
    let alice = Agent::init(&home(), &url).await.unwrap();
    let bob = Agent::init(&home(), &url).await.unwrap();
    assert!(bob.file.mediator.ws.as_deref().unwrap().starts_with("wss://"));
    alice.send_text(bob.file.party.as_str(), "over TLS").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let follower = tokio::spawn(async move {
        bob.follow(
            move |i| {
                tx.send(i).unwrap();
                Ok(())
            },
            async {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    let got = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.unwrap().unwrap();
    assert_eq!(texts(vec![got])[0].1, "over TLS");
    stop_tx.send(()).unwrap();
    follower.await.unwrap().unwrap();
    m.stop().await;
}
