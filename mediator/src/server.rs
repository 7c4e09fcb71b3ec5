//! Builds the HTTP/WebSocket service around a [`Mediator`] and runs it on an
//! already-bound listener until a shutdown future completes.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::error::Result;
use crate::limits::{ConnTracker, RateLimiter};
use crate::state::Mediator;
use crate::transport::listener::{Limited, PeerAddr};
use crate::transport::{http, relay_ws, tls, ws};

/// State shared by the handlers.
pub struct App {
    /// The mediator.
    pub mediator: Arc<Mediator>,
    /// Per-IP request rate limiter.
    pub rate: RateLimiter,
    /// Open connections.
    pub conns: Arc<ConnTracker>,
    /// Flips to true when shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// WebSocket connection ids.
    pub next_conn: AtomicU64,
}

/// The axum router (handy for tests driving it without a socket).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/didcomm", post(http::post_didcomm))
        .route("/", post(http::post_didcomm))
        .route("/ws", get(ws::upgrade))
        .route("/relay", get(relay_ws::upgrade))
        .route("/.well-known/did.json", get(http::did_json))
        .route("/did.json", get(http::did_json))
        .route("/did", get(http::did_text))
        .route("/invitation", get(http::invitation))
        .route("/oob", get(http::oob))
        .route("/health", get(http::health))
        .route("/metrics", get(http::metrics))
        .route("/cluster/link", get(crate::cluster::links::upgrade))
        .with_state(app)
}

/// Serves `mediator` on `listener` (TLS when configured) until `shutdown` completes,
/// then closes WebSockets with 1001 and waits up to the configured grace period.
pub async fn serve(
    listener: TcpListener,
    mediator: Arc<Mediator>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let cfg = mediator.config().clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let conns = Arc::new(ConnTracker::with_refusals(mediator.metrics.refused.clone()));
    let app = Arc::new(App {
        mediator: mediator.clone(),
        rate: RateLimiter::new(cfg.limits.requests_per_second_per_ip, cfg.limits.request_burst_per_ip),
        conns: conns.clone(),
        shutdown: stop_rx.clone(),
        next_conn: AtomicU64::new(1),
    });
    let purge = tokio::spawn(purge_loop(mediator.clone()));
    let udp = crate::transport::udp::spawn(&mediator);
    let sweep = tokio::spawn(sweep_loop(mediator.clone()));
    let cluster_tasks = match mediator.cluster() {
        Some(c) => crate::cluster::start(&mediator, c),
        None => Vec::new(),
    };
    let svc = router(app).into_make_service_with_connect_info::<PeerAddr>();
    let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
    let mut stop_wait = stop_rx;
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    let deadline = async move {
        let _ = stop_wait.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    let result = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
        (Some(cert), Some(key)) => {
            let acceptor = tls::acceptor(cert, key)?;
            let handshake = Duration::from_secs(cfg.server.tls_handshake_timeout_secs);
            let l = tls::TlsListener::new(listener, acceptor, conns, cfg.limits.clone(), handshake)?;
            tokio::select! {
                r = axum::serve(l, svc).with_graceful_shutdown(signal) => r,
                _ = deadline => Ok(()),
            }
        }
        _ => {
            // No Nagle: relayed frames and small DIDComm answers leave at once.
            let l = Limited::new(listener.tap_io(|tcp| drop(tcp.set_nodelay(true))), conns, cfg.limits.clone());
            tokio::select! {
                r = axum::serve(l, svc).with_graceful_shutdown(signal) => r,
                _ = deadline => Ok(()),
            }
        }
    };
    purge.abort();
    sweep.abort();
    for t in udp {
        t.abort();
    }
    for t in cluster_tasks {
        t.abort();
    }
    if let Some(c) = mediator.cluster() {
        c.shut_down();
    }
    result.map_err(Into::into)
}

/// Every minute: deletes expired messages, links and routes, and grants unused past their TTL
/// (each also expires when its client or a forward for it next shows up).
async fn purge_loop(m: Arc<Mediator>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        let now = did_core::didcomm::message::now();
        match m.store().purge_expired(now).await {
            Ok(0) => {}
            Ok(n) => {
                m.metrics.expired.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(expired = n, "purged expired messages");
            }
            Err(e) => tracing::warn!(error = %e, "purge failed"),
        }
        match m.store().expire_grants(now, m.config().limits.grant_ttl_secs).await {
            Ok(0) => {}
            Ok(n) => {
                m.metrics.refused.add(crate::quota::Refusal::GrantExpired, n);
                tracing::info!(grants = n, "expired unused mediation grants");
            }
            Err(e) => tracing::warn!(error = %e, "grant expiry failed"),
        }
    }
}

/// Frees what the relay holds for routes whose reservation ended.
async fn sweep_loop(m: Arc<Mediator>) {
    let mut tick = tokio::time::interval(Duration::from_secs(m.config().relay.sweep_secs));
    loop {
        tick.tick().await;
        let ended = m.relay().sweep(did_core::didcomm::message::now());
        if ended > 0 {
            tracing::debug!(routes = ended, "relay reservations ended");
        }
    }
}
