//! `didmpc mediator serve`.

use std::path::Path;

use anyhow::{Context, Result};
use mediator::{Config, Mediator};

use crate::cli::MediatorCommand;
use crate::home;

pub(super) async fn run(home_flag: Option<&Path>, cmd: MediatorCommand) -> Result<()> {
    let MediatorCommand::Serve { listen, config, db, store, public_urls, udp } = cmd;
    let mut cfg = match &config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(l) = listen {
        cfg.server.listen = l;
    }
    match db {
        Some(db) => cfg.store.db = db,
        None if config.is_none() => {
            let dir = home::dir(home_flag)?;
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            cfg.store.db = dir.join("mediator.db");
        }
        None => {}
    }
    if !public_urls.is_empty() {
        cfg.server.public_urls = public_urls;
    }
    if store.is_some() {
        cfg.store.url = store;
    }
    if !udp.is_empty() {
        cfg.udp.listen = udp;
    }
    cfg.validate()?;
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("cannot listen on {} (in use? try --listen 127.0.0.1:0)", cfg.server.listen))?;
    let addr = listener.local_addr()?;
    let m = Mediator::open(cfg, addr).await.context("starting the mediator")?;
    println!("mediator DID: {}", m.did());
    println!("listening on: {addr}");
    if let Some(c) = m.cluster() {
        println!("instance:     {} (Redis store)", c.instance());
    }
    println!("invitation:   {}", m.invitation_url());
    if !m.udp_addresses().is_empty() {
        println!("udp probes:   {}", m.udp_addresses().join(", "));
    }
    mediator::serve(listener, m, shutdown_signal()).await?;
    eprintln!("mediator stopped");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
