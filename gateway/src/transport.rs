//! Client transports: HTTP POST and WebSocket (with rustls for https/wss).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::{Error, Result};

/// Environment variable naming a PEM file of extra CA certificates to trust.
pub const ENV_CA_FILE: &str = "DIDMPC_CA_FILE";

/// How long a connect or a request may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// HTTP and WebSocket client for DIDComm endpoints.
#[derive(Clone)]
pub struct Transport {
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
}

impl Transport {
    /// A client trusting the Web PKI roots, plus the PEM certificates in the file named by
    /// [`ENV_CA_FILE`] (for mediators behind a private CA).
    pub fn new() -> Result<Transport> {
        let fail = |reason: String| Error::Transport { uri: String::new(), reason };
        let mut http =
            reqwest::Client::builder().timeout(TIMEOUT).user_agent(concat!("didmpc/", env!("CARGO_PKG_VERSION")));
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = std::env::var_os(ENV_CA_FILE) {
            let pem =
                std::fs::read(&path).map_err(|e| fail(format!("{ENV_CA_FILE}={}: {e}", path.to_string_lossy())))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| fail(format!("{ENV_CA_FILE}: {e}")))?;
                http =
                    http.add_root_certificate(reqwest::Certificate::from_der(&cert).map_err(|e| fail(e.to_string()))?);
                roots.add(cert).map_err(|e| fail(format!("{ENV_CA_FILE}: {e}")))?;
            }
        }
        let http = http.build().map_err(|e| fail(e.to_string()))?;
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Transport { http, tls: Arc::new(tls) })
    }

    /// POSTs a packed message. Returns the DIDComm message the server answered with, if any;
    /// an HTTP error becomes [`Error::Refused`] with the problem report's code and comment.
    pub async fn post(&self, uri: &str, packed: &str) -> Result<Option<String>> {
        let fail = |reason: String| Error::Transport { uri: uri.to_owned(), reason };
        let resp = self
            .http
            .post(uri)
            .header("content-type", "application/didcomm-encrypted+json")
            .body(packed.to_owned())
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| fail(e.to_string()))?;
        if status.is_success() {
            return Ok((!body.trim().is_empty()).then_some(body));
        }
        Err(refusal(uri, status.as_u16(), &body))
    }

    /// GETs a URL as text (e.g. an invitation).
    pub async fn get(&self, uri: &str) -> Result<String> {
        let fail = |reason: String| Error::Transport { uri: uri.to_owned(), reason };
        let resp = self.http.get(uri).send().await.map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(refusal(uri, status.as_u16(), &body));
        }
        Ok(body)
    }

    /// Opens a WebSocket.
    pub async fn connect(&self, uri: &str) -> Result<WsConn> {
        self.connect_with(uri, None).await
    }

    /// Opens a WebSocket with `config` (tungstenite's defaults if `None`). The settings
    /// apply from the handshake on, so nothing the server sends first is read otherwise.
    pub async fn connect_with(&self, uri: &str, config: Option<WebSocketConfig>) -> Result<WsConn> {
        let connector = tokio_tungstenite::Connector::Rustls(self.tls.clone());
        let fut = tokio_tungstenite::connect_async_tls_with_config(uri, config, true, Some(connector));
        let (ws, _) = tokio::time::timeout(TIMEOUT, fut)
            .await
            .map_err(|_| Error::Timeout(uri.to_owned()))?
            .map_err(|e| Error::Transport { uri: uri.to_owned(), reason: e.to_string() })?;
        Ok(WsConn { uri: uri.to_owned(), ws })
    }

    /// Delivers a packed message to an http(s) or ws(s) endpoint.
    pub async fn deliver(&self, uri: &str, packed: &str) -> Result<()> {
        if uri.starts_with("ws://") || uri.starts_with("wss://") {
            let mut c = self.connect(uri).await?;
            c.send(packed).await?;
            // A refusal comes back as a plaintext problem report right away.
            if let Ok(Ok(Some(text))) = tokio::time::timeout(Duration::from_millis(300), c.recv()).await {
                if let Some(e) = problem_in(uri, &text) {
                    return Err(e);
                }
            }
            c.close().await;
            Ok(())
        } else if uri.starts_with("http://") || uri.starts_with("https://") {
            self.post(uri, packed).await.map(|_| ())
        } else {
            Err(Error::Transport {
                uri: uri.to_owned(),
                reason: "unsupported transport (need http(s):// or ws(s)://)".into(),
            })
        }
    }
}

/// An open WebSocket to a DIDComm endpoint.
pub struct WsConn {
    uri: String,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsConn {
    /// Sends one message (a text frame).
    pub async fn send(&mut self, text: &str) -> Result<()> {
        self.ws
            .send(Frame::Text(text.to_owned().into()))
            .await
            .map_err(|e| Error::Transport { uri: self.uri.clone(), reason: e.to_string() })
    }

    /// The next message; `None` when the socket closed.
    pub async fn recv(&mut self) -> Result<Option<String>> {
        loop {
            match self.ws.next().await {
                Some(Ok(Frame::Text(t))) => return Ok(Some(t.to_string())),
                Some(Ok(Frame::Binary(b))) => {
                    return String::from_utf8(b.to_vec())
                        .map(Some)
                        .map_err(|_| Error::Protocol("binary frame is not UTF-8".into()))
                }
                Some(Ok(Frame::Close(_))) | None => return Ok(None),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(Error::Transport { uri: self.uri.clone(), reason: e.to_string() }),
            }
        }
    }

    /// The next message within `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<String>> {
        tokio::time::timeout(timeout, self.recv()).await.map_err(|_| Error::Timeout(self.uri.clone()))?
    }

    /// The underlying WebSocket (for binary protocols such as the relay).
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }

    /// Closes politely.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }
}

/// The problem report in an error answer, as an error.
pub fn refusal(uri: &str, status: u16, body: &str) -> Error {
    problem_in(uri, body).unwrap_or_else(|| Error::Refused {
        who: uri.to_owned(),
        code: format!("HTTP {status}"),
        comment: body.chars().take(300).collect(),
    })
}

/// If `text` is a plaintext problem report, the error it describes.
pub fn problem_in(who: &str, text: &str) -> Option<Error> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if !v.get("type")?.as_str()?.ends_with("/problem-report") {
        return None;
    }
    let body = v.get("body")?;
    Some(Error::Refused {
        who: who.to_owned(),
        code: body.get("code").and_then(|c| c.as_str()).unwrap_or("?").to_owned(),
        comment: body.get("comment").and_then(|c| c.as_str()).unwrap_or("").to_owned(),
    })
}
