//! The lobby server on a real loopback socket: the token, Host and Origin checks answer
//! 403 before anything else, the launch link works once, the page's files carry the
//! hardening headers, the event stream sends the state, and the host's Start/Cancel reach
//! the flow only when the state allows them.

use std::sync::Arc;

use gateway::invite::Command as HostCommand;
use lobby::{HostPage, Hub, Lobby, Role};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;

async fn lobby() -> (Lobby, tokio::sync::mpsc::UnboundedReceiver<HostCommand>, String) {
    let hub = Hub::new(Role::Host);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let page = HostPage::new(hub.clone(), tx);
    let l = Lobby::start(hub, page).await.unwrap();
    let token = l.url().split("/t/").nth(1).unwrap().trim_end_matches('/').to_owned();
    (l, rx, token)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn with(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[tokio::test]
async fn requests_without_the_token_or_from_elsewhere_get_403() {
    let (l, _rx, token) = lobby().await;
    let base = format!("http://{}", l.addr());
    let c = client();
    let get = |path: String, h: HeaderMap| c.get(format!("{base}{path}")).headers(h).send();
    // No token, a wrong one, the token in the wrong place.
    for path in ["/", "/api/state", "/t/nope/", "/lobby.js", "/favicon.ico"] {
        let r = get(path.into(), HeaderMap::new()).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    let r = get(format!("/t/{token}/api/state"), HeaderMap::new()).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "the path token opens files, not the API");
    let r = get("/api/state".into(), with(&[("x-didmpc-token", "wrong")])).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // With the token: the page, and the API with the header.
    let r = get(format!("/t/{token}/"), HeaderMap::new()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.text().await.unwrap().contains("lobby.js"));
    let r = get("/api/state".into(), with(&[("x-didmpc-token", &token)])).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["role"], "host");
    // Another origin, another site, a DNS-rebinding Host: 403 even with the token.
    let port = l.addr().port();
    let refused: Vec<HeaderMap> = vec![
        with(&[("x-didmpc-token", &token), ("origin", "http://evil.example")]),
        with(&[("x-didmpc-token", &token), ("origin", "null")]),
        with(&[("x-didmpc-token", &token), ("origin", &format!("http://127.0.0.1:{}", port + 1))]),
        with(&[("x-didmpc-token", &token), ("sec-fetch-site", "cross-site")]),
        with(&[("x-didmpc-token", &token), ("host", &format!("rebind.example:{port}"))]),
    ];
    for h in refused {
        let r = get("/api/state".into(), h.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{h:?}");
        let r =
            c.post(format!("{base}/api/cancel")).headers(h.clone()).json(&serde_json::json!({})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{h:?}");
    }
    let r =
        get("/api/state".into(), with(&[("x-didmpc-token", &token), ("origin", &format!("http://127.0.0.1:{port}"))]))
            .await
            .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the page's own origin");
    l.close().await;
}

#[tokio::test]
async fn the_launch_link_opens_the_page_once() {
    let (l, _rx, token) = lobby().await;
    let c = client();
    let r = c.get(l.launch_url()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/t/{token}/"));
    let r = c.get(l.launch_url()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "spent");
    assert!(r.text().await.unwrap().contains("used already"));
    l.close().await;
}

#[tokio::test]
async fn commands_are_typed_and_fit_the_state() {
    let (l, mut rx, token) = lobby().await;
    let base = format!("http://{}", l.addr());
    let c = client();
    let post = |path: &str, body: &str, kind: &str| {
        c.post(format!("{base}/api/{path}"))
            .header("x-didmpc-token", &token)
            .header("content-type", kind)
            .body(body.to_owned())
            .send()
    };
    let r = post("cancel", "{}", "text/plain").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "a cross-site form cannot post JSON");
    let r = post("cancel", "{\"nope\":1}", "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = post("start", "{}", "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT, "nobody joined yet");
    let r = post("join", "{}", "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "the host does not join");
    let r = post("bogus", "{}", "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let big = format!("{{\"reason\":\"{}\"}}", "x".repeat(20_000));
    let r = post("cancel", &big, "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(rx.try_recv().is_err(), "nothing reached the flow");
    let r = post("cancel", "{\"reason\":\"rain\"}", "application/json").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(rx.recv().await, Some(HostCommand::Cancel("rain".into())));
    l.close().await;
}

#[tokio::test]
async fn the_event_stream_sends_each_new_state() {
    let (l, _rx, token) = lobby().await;
    let hub: Arc<Hub> = l.hub().clone();
    let r =
        client().get(format!("http://{}/api/events", l.addr())).header("x-didmpc-token", &token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut r = r;
    let first = String::from_utf8(r.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(first.starts_with("data: {") && first.contains("\"phase\":\"loading\""), "{first}");
    hub.update(|v| v.log(lobby::view::Level::Info, "hello from the flow"));
    let next = String::from_utf8(r.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(next.contains("hello from the flow"), "{next}");
    let closing = tokio::spawn(l.close());
    assert!(r.chunk().await.unwrap().is_none(), "the stream ends when the lobby closes");
    closing.await.unwrap();
}
