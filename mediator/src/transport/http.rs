//! HTTP endpoints: DIDComm POST, DID document, invitation, short links, health, metrics.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::listener::PeerAddr;
use crate::metrics::Metrics;
use crate::protocols::codes;
use crate::router::{Channel, Outcome};
use crate::server::App;

/// Media types accepted on POST (with or without the `application/` prefix).
const ACCEPTED: [&str; 4] = ["didcomm-encrypted+json", "didcomm-signed+json", "didcomm-plain+json", "json"];

/// Renders an outcome as an HTTP response.
pub fn respond(o: Outcome) -> Response {
    let status = StatusCode::from_u16(o.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match o.body {
        None => status.into_response(),
        Some(body) => {
            let ct =
                if o.status == 200 { "application/didcomm-encrypted+json" } else { "application/didcomm-plain+json" };
            (status, [(header::CONTENT_TYPE, ct)], body).into_response()
        }
    }
}

/// `POST /didcomm` (and `POST /`): one DIDComm message in, at most one out.
pub async fn post_didcomm(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if !app.rate.allow(peer.0.ip()) {
        Metrics::inc(&app.mediator.metrics.throttled);
        return respond(Outcome::plain_problem(429, codes::RATE, "too many requests from your address; slow down"));
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let media = media.strip_prefix("application/").unwrap_or(&media);
    if !ACCEPTED.contains(&media) {
        return respond(Outcome::plain_problem(
            415,
            codes::MALFORMED,
            &format!("content-type {ct:?} is not a DIDComm media type (use application/didcomm-encrypted+json)"),
        ));
    }
    let limit = app.mediator.config.limits.max_message_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return respond(Outcome::plain_problem(
                413,
                codes::TOO_BIG,
                &format!("messages are limited to {limit} bytes"),
            ))
        }
    };
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return respond(Outcome::plain_problem(400, codes::MALFORMED, "the body is not UTF-8 JSON"));
    };
    respond(app.mediator.handle(text, Channel::Http).await)
}

/// `GET /.well-known/did.json` (did:web mediators) and `GET /did.json`.
pub async fn did_json(State(app): State<Arc<App>>) -> Response {
    let doc = app.mediator.document().to_value();
    ([(header::CONTENT_TYPE, "application/did+json")], doc.to_string()).into_response()
}

/// `GET /did`: the mediator's DID as text.
pub async fn did_text(State(app): State<Arc<App>>) -> String {
    app.mediator.did().to_string()
}

/// `GET /invitation`: an OOB 2.0 invitation to request mediation (JSON).
pub async fn invitation(State(app): State<Arc<App>>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], app.mediator.invitation().to_json()).into_response()
}

/// Query of `GET /oob`.
#[derive(Deserialize)]
pub struct OobQuery {
    #[serde(rename = "_oobid")]
    oobid: Option<String>,
}

/// `GET /oob?_oobid=…`: a stored invitation.
pub async fn oob(State(app): State<Arc<App>>, Query(q): Query<OobQuery>) -> Response {
    let Some(id) = q.oobid.filter(|i| i.len() <= 64) else {
        return (StatusCode::BAD_REQUEST, "missing or bad _oobid").into_response();
    };
    match app.mediator.store().get_oob(&id, did_core::didcomm::message::now()).await {
        Ok(Some(inv)) => ([(header::CONTENT_TYPE, "application/json")], inv).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "no such invitation (expired or never created)").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "oob lookup failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// `GET /health`.
pub async fn health(State(app): State<Arc<App>>) -> Response {
    let body = serde_json::json!({"status": "ok", "did": app.mediator.did().to_string(), "version": env!("CARGO_PKG_VERSION")});
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `GET /metrics` (Prometheus text format).
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let mut text = app.mediator.metrics.render();
    text.push_str(&format!(
        "# HELP didmpc_mediator_connections Open TCP connections\n# TYPE didmpc_mediator_connections gauge\ndidmpc_mediator_connections {}\n",
        app.conns.open()
    ));
    crate::metrics::render_relay(&app.mediator.relay().stats(), &mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
