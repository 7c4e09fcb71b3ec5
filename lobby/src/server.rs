//! The loopback HTTP server: one handler that asks the [`Guard`] first, then serves the
//! embedded page, the API ([`crate::api`]) and the event stream. It binds 127.0.0.1 on a
//! random port only and loads nothing from anywhere.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;
use tokio::sync::oneshot;

use crate::api::{self, Actions, Problem};
use crate::assets;
use crate::error::Result;
use crate::guard::{self, Access, Facts, Guard, TOKEN_HEADER};
use crate::hub::Hub;

/// How long [`Lobby::close`] waits for the last state to reach the open pages.
pub const DELIVERY_WAIT: Duration = Duration::from_secs(3);

struct App {
    guard: Guard,
    token: String,
    launch: Mutex<Option<String>>,
    hub: Arc<Hub>,
    actions: Arc<dyn Actions>,
}

/// A running lobby server.
pub struct Lobby {
    hub: Arc<Hub>,
    addr: SocketAddr,
    token: String,
    launch: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Lobby {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lobby").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Lobby {
    /// Serves `hub`'s page on 127.0.0.1 (a random port), with `actions` behind its API.
    pub async fn start(hub: Arc<Hub>, actions: Arc<dyn Actions>) -> Result<Lobby> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (token, launch) = (guard::secret()?, guard::secret()?);
        let app = Arc::new(App {
            guard: Guard::new(addr.port(), token.clone()),
            token: token.clone(),
            launch: Mutex::new(Some(launch.clone())),
            hub: hub.clone(),
            actions,
        });
        let router = Router::new().fallback(handle).with_state(app);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, router).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "the lobby server stopped");
            }
        });
        Ok(Lobby { hub, addr, token, launch, stop: Some(stop), task: Some(task) })
    }

    /// The page's URL (with its token: give it only to the user).
    pub fn url(&self) -> String {
        format!("http://{}/t/{}/", self.addr, self.token)
    }

    /// The one-time link that opens the page (what the browser is started with, so the
    /// token itself never appears in a process's arguments).
    pub fn launch_url(&self) -> String {
        format!("http://{}/launch/{}", self.addr, self.launch)
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's state.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Waits (at most [`DELIVERY_WAIT`]) until the open pages got the latest state, then
    /// stops serving.
    pub async fn close(mut self) {
        let until = tokio::time::Instant::now() + DELIVERY_WAIT;
        while !self.hub.delivered() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.hub.close_streams();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(2), &mut Box::pin(task)).await.is_err() {
                tracing::debug!("the lobby server did not stop in time");
            }
        }
    }
}

impl Drop for Lobby {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Headers on every answer: nothing from elsewhere, no framing, no sniffing, no caching,
/// no referrer (the URL holds the token).
fn harden(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "content-security-policy", assets::CSP);
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cache-control", "no-store");
    set(h, "x-frame-options", "DENY");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
    r
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

fn problem(p: &Problem) -> Response {
    let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
    (status, axum::Json(json!({ "code": p.code, "error": p.message }))).into_response()
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    harden(route(&app, req).await)
}

async fn route(app: &Arc<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let get = |k: &str| h.get(k).map(HeaderValue::as_bytes);
    let facts = Facts {
        path: parts.uri.path(),
        host: get("host"),
        origin: get("origin"),
        fetch_site: get("sec-fetch-site"),
        token: get(TOKEN_HEADER),
    };
    let access = match app.guard.check(&facts) {
        Ok(a) => a,
        Err(denied) => {
            tracing::debug!(path = %parts.uri.path(), ?denied, "lobby request refused");
            return (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], denied.reason())
                .into_response();
        }
    };
    match (access, &parts.method) {
        (Access::Launch(code), &Method::GET) => launch(app, code),
        (Access::Asset(name), &Method::GET) => asset(app, name),
        (Access::Api("state"), &Method::GET) => axum::Json(app.hub.view()).into_response(),
        (Access::Api("events"), &Method::GET) => events(app),
        (Access::Api(path), &Method::POST) => {
            let json = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
            });
            if !json {
                return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json");
            }
            let Ok(bytes) = axum::body::to_bytes(body, api::MAX_BODY).await else {
                return text(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large");
            };
            match api::parse(path, &bytes) {
                None => text(StatusCode::NOT_FOUND, "no such command"),
                Some(Err(p)) => problem(&p),
                Some(Ok(c)) => match app.actions.act(c).await {
                    Ok(v) => axum::Json(v).into_response(),
                    Err(p) => problem(&p),
                },
            }
        }
        (Access::Api("state" | "events"), _) | (Access::Asset(_) | Access::Launch(_), _) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        (Access::Api(_), _) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

/// The one-time link: spent on first use, then a redirect to the page.
fn launch(app: &App, code: &str) -> Response {
    let mut slot = app.launch.lock().unwrap_or_else(|p| p.into_inner());
    match slot.as_deref() {
        Some(want) if guard::same(code.as_bytes(), want.as_bytes()) => {
            *slot = None;
            let to = format!("/t/{}/", app.token);
            Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, to)
                .body(Body::empty())
                .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "redirect"))
        }
        _ => {
            tracing::warn!("a spent or wrong lobby launch link was opened");
            text(
                StatusCode::FORBIDDEN,
                "This one-time link was used already. Open the URL didmpc printed instead. \
                 If you did not open it before, someone else on this computer may have: stop didmpc (Ctrl-C).",
            )
        }
    }
}

fn asset(app: &App, name: &str) -> Response {
    if name == "qr.svg" {
        return match app.hub.qr() {
            Some(svg) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response(),
            None => text(StatusCode::NOT_FOUND, "no QR code"),
        };
    }
    match assets::get(name) {
        Some((kind, body)) => ([(header::CONTENT_TYPE, kind)], body).into_response(),
        None => text(StatusCode::NOT_FOUND, "not found"),
    }
}

fn events(app: &App) -> Response {
    let stream = app.hub.subscribe();
    let s = futures_util::stream::unfold(stream, |mut stream| async move {
        let view = stream.next().await?;
        let event = SseEvent::default().json_data(&view).unwrap_or_else(|_| SseEvent::default().data("{}"));
        stream.sent(view.version);
        Some((Ok::<_, std::convert::Infallible>(event), stream))
    });
    Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
