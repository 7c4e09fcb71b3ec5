//! HTTP endpoints: DIDComm POST, DID document, invitation, short links, health, metrics.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;

use super::listener::PeerAddr;
use crate::metrics::Metrics;
use crate::protocols::codes;
use crate::quota::{Held, Refusal};
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
            let body = match o.held.0 {
                None => Body::from(body),
                held => Body::from_stream(HeldBody { body: Some(body), _held: Held(held) }),
            };
            (status, [(header::CONTENT_TYPE, ct)], body).into_response()
        }
    }
}

/// A response body that keeps its share of the memory budget until the server drops it,
/// which is once it has been handed to the connection.
struct HeldBody {
    body: Option<String>,
    _held: Held,
}

impl futures_util::Stream for HeldBody {
    type Item = Result<String, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.body.take().map(Ok))
    }
}

/// `POST /didcomm` (and `POST /`): one DIDComm message in, at most one out.
pub async fn post_didcomm(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let m = &app.mediator;
    if !app.rate.allow(peer.0.ip()) {
        Metrics::inc(&m.metrics.throttled);
        m.metrics.refused.inc(Refusal::Rate);
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
    let limit = m.config.limits.max_message_bytes;
    let too_big =
        || respond(Outcome::plain_problem(413, codes::TOO_BIG, &format!("messages are limited to {limit} bytes")));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_big();
    }
    // The body is held against the memory budget as it arrives (what a client only declares
    // costs nothing), until the answer is built.
    let Some(mut held) = m.memory.try_reserve(0) else {
        return busy(&app);
    };
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return respond(Outcome::plain_problem(400, codes::MALFORMED, "the request body could not be read"));
        };
        let len = bytes.len() + chunk.len();
        if len > limit {
            return too_big();
        }
        if len > held.bytes() && !held.try_grow(len - held.bytes()) {
            return busy(&app);
        }
        bytes.extend_from_slice(&chunk);
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return respond(Outcome::plain_problem(400, codes::MALFORMED, "the body is not UTF-8 JSON"));
    };
    let outcome = m.handle_from(text, Channel::Http, Some(peer.0.ip())).await;
    drop(held);
    respond(outcome)
}

/// 503 for a request the memory budget has no room for.
fn busy(app: &App) -> Response {
    app.mediator.metrics.refused.inc(Refusal::Memory);
    respond(Outcome::plain_problem(503, codes::MEMORY, "the mediator is short of memory right now; retry shortly"))
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
    let mem = app.mediator.memory();
    text.push_str(&format!(
        "# HELP didmpc_mediator_memory_reserved_bytes Buffers held against the memory budget\n# TYPE didmpc_mediator_memory_reserved_bytes gauge\ndidmpc_mediator_memory_reserved_bytes {}\ndidmpc_mediator_memory_budget_bytes {}\n",
        mem.used(),
        mem.limit()
    ));
    crate::metrics::render_relay(&app.mediator.relay().stats(), &mut text);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
