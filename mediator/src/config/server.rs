//! `[server]`, `[identity]` and `[policy]`: where the mediator listens, which DID it is,
//! and who may register with it.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:7080`; `--listen` overrides).
    pub listen: SocketAddr,
    /// Base URLs parties use to reach the mediator (e.g. `https://m.example.com`).
    /// Default: `http(s)://<listen address>`. The DID document lists `<url>/didcomm`
    /// (HTTP POST) and `<ws-url>/ws` (WebSocket) for each.
    pub public_urls: Vec<String>,
    /// PEM certificate chain; TLS is served when both this and `tls_key` are set.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Longest TLS handshake, seconds (default 10); the connection holds its slot meanwhile.
    pub tls_handshake_timeout_secs: u64,
    /// Seconds to wait for connections to finish on shutdown (default 10).
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7080)),
            public_urls: vec![],
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_secs: 10,
            shutdown_grace_secs: 10,
        }
    }
}

/// `[identity]`
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// `peer` (did:peer:2, default) or `web` (did:web, served at `/.well-known/did.json`).
    pub method: IdentityMethod,
    /// The did:web host part, e.g. `m.example.com` or `localhost%3A7080` (method `web`).
    pub web_host: Option<String>,
    /// The keystore directory holding the mediator's keys (default: `<store.db>.keys`).
    /// Instances of a cluster share one identity: point them at the same directory (or
    /// copies of it).
    pub keys: Option<PathBuf>,
}

/// DID method of the mediator's own DID.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IdentityMethod {
    /// did:peer:2 whose service lists the public URLs.
    #[default]
    Peer,
    /// did:web for the mediator's host name.
    Web,
}

/// `[policy]`
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// `open` (anyone may request mediation, default) or `allowlist`.
    pub admission: Admission,
    /// DIDs allowed to request mediation when `admission = "allowlist"`.
    pub allowlist: Vec<String>,
}

/// Who may request mediation.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Admission {
    /// Anyone.
    #[default]
    Open,
    /// Only the DIDs in `allowlist`.
    Allowlist,
}
