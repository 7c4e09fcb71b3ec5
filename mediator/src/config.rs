//! Mediator configuration (TOML). Every field is optional; `config.dev.toml` at the
//! crate root lists them all with their defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
pub use crate::resolution::{ResolverConfig, WebSenders};

/// Environment variable naming the configuration file.
pub const ENV_CONFIG: &str = "DIDMPC_MEDIATOR_CONFIG";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Listening and public addresses, TLS.
    pub server: ServerConfig,
    /// The mediator's own DID.
    pub identity: IdentityConfig,
    /// The durable store: a `[store]` table, or `store = "redis://HOST:PORT/DB"` for short.
    #[serde(deserialize_with = "store_field")]
    pub store: StoreConfig,
    /// Who may register.
    pub policy: PolicyConfig,
    /// Limits that keep one party from hurting the others.
    pub limits: Limits,
    /// The session relay's memory bounds.
    pub relay: RelayConfig,
    /// UDP sockets answering reflexive-address probes.
    pub udp: crate::transport::udp::UdpConfig,
    /// did:web resolution: what it may reach, and for whom it is done.
    pub resolver: ResolverConfig,
    /// Several instances sharing one Redis store (`specs/mediator.md`, "Cluster").
    pub cluster: ClusterConfig,
}

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

/// `[store]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `redis://HOST:PORT/DB`: keep everything in Redis, so several instances can serve one
    /// mediator (`--store` overrides). Unset (default): the SQLite file `db`.
    pub url: Option<String>,
    /// Prefix of every Redis key (default `didmpc:`), so mediators can share one Redis.
    pub redis_prefix: String,
    /// SQLite database file (default `mediator.db`; `--db` overrides). With Redis, only its
    /// name matters: the keystore defaults to `<db>.keys`.
    pub db: PathBuf,
    /// `normal`: a committed message survives a process crash (default);
    /// `full`: it also survives power loss (fsync per batch, slower).
    pub sync: SyncMode,
    /// Most commands committed in one transaction (group commit; default 512).
    pub batch: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            redis_prefix: crate::store::redis::DEFAULT_PREFIX.into(),
            db: PathBuf::from("mediator.db"),
            sync: SyncMode::Normal,
            batch: 512,
        }
    }
}

impl StoreConfig {
    /// The Redis URL, when the store is Redis.
    pub fn redis_url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    fn validate(&self) -> Result<()> {
        if let Some(url) = &self.url {
            if !(url.starts_with("redis://") || url.starts_with("redis+unix://")) {
                return Err(Error::Config(format!("store: {url:?} is not a redis:// URL")));
            }
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.len() > 64 {
            return Err(Error::Config("store.redis_prefix must be 1 to 64 characters".into()));
        }
        if self.batch == 0 {
            return Err(Error::Config("store.batch must be at least 1".into()));
        }
        Ok(())
    }
}

/// `store = "redis://…"` or a `[store]` table.
fn store_field<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<StoreConfig, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = StoreConfig;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a redis:// URL or a [store] table")
        }
        fn visit_str<E: serde::de::Error>(self, url: &str) -> std::result::Result<StoreConfig, E> {
            Ok(StoreConfig { url: Some(url.to_owned()), ..StoreConfig::default() })
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> std::result::Result<StoreConfig, M::Error> {
            StoreConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    d.deserialize_any(V)
}

/// `[cluster]`: what instances sharing a Redis store need of each other.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The base URL other instances reach this one at for instance links (`<url>/cluster/link`),
    /// e.g. `http://10.0.0.5:7080`: its own address, not the load balancer's. Default
    /// `http://<listen address>` (then the listen address must not be unspecified).
    pub advertise_url: Option<String>,
    /// A file holding the cluster secret (at least 32 bytes) that authenticates instance
    /// links. Default: a key derived from the mediator's own X25519 key, which every
    /// instance of one mediator holds anyway.
    pub secret_file: Option<PathBuf>,
}

/// SQLite durability level.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// WAL with `synchronous=NORMAL`.
    #[default]
    Normal,
    /// WAL with `synchronous=FULL`.
    Full,
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

/// `[limits]`
///
/// Quotas protect the service from its clients and the clients from strangers: anyone who
/// knows a party's DID can send it forwards, so what one sender (source address) can queue for
/// one recipient is bounded well below the recipient's own limits. Every refusal is answered
/// with a problem report naming the limit, and counted at `/metrics` by reason.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest DIDComm message accepted, bytes (default 1 MiB).
    pub max_message_bytes: usize,
    /// Most queued messages per recipient DID (default 10,000).
    pub max_queue_messages: u64,
    /// Most queued bytes per recipient DID (default 64 MiB).
    pub max_queue_bytes: u64,
    /// Most queued bytes per client, summed over all its recipient DIDs (default 128 MiB).
    pub max_client_queue_bytes: u64,
    /// Most queued bytes in the whole store (default 4 GiB).
    pub max_total_queue_bytes: u64,
    /// Most messages one source (an IPv4 address or an IPv6 /64) may have queued for one
    /// recipient DID (default 1,000, a tenth of `max_queue_messages`).
    pub max_queue_messages_per_source: u64,
    /// Most bytes one source may have queued for one recipient DID (default 16 MiB, a quarter of
    /// `max_queue_bytes`).
    pub max_queue_bytes_per_source: u64,
    /// Most simultaneous connections in total, TLS handshakes included (default 20,000).
    pub max_connections: usize,
    /// Most simultaneous connections from one IP address, TLS handshakes included (default 256).
    pub max_connections_per_ip: usize,
    /// Sustained requests (HTTP requests and WebSocket messages) per second per IP (default 2,000).
    pub requests_per_second_per_ip: u32,
    /// Burst allowance on top of the sustained rate (default 4,000).
    pub request_burst_per_ip: u32,
    /// Lifetime of a queued message without `expires_time`, seconds (default 7 days).
    pub default_message_ttl_secs: u64,
    /// Most messages in one pickup delivery (default 100).
    pub max_delivery_batch: usize,
    /// A mediation grant unused for this long expires, seconds (default 30 days; 0: never).
    /// Any authenticated message from the client is a use. An expired grant is removed with
    /// its recipient DIDs and their queued messages; the client must request mediation again.
    pub grant_ttl_secs: u64,
    /// Most recipient DIDs one client may register (default 100).
    pub max_recipients_per_client: u64,
    /// Most unexpired OOB short links one client may hold (default 100).
    pub max_links_per_client: u64,
    /// Most relay routes one client may reserve (default 256).
    pub max_routes_per_client: u64,
    /// Bytes the mediator may hold in memory at once for request bodies, WebSocket messages
    /// being handled, pickup deliveries being built and sent, and live deliveries waiting for
    /// a slow WebSocket (default 512 MiB). Over it, requests get 503 `e.p.me.res.memory` and
    /// live pushes wait for pickup.
    pub memory_budget_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1024 * 1024,
            max_queue_messages: 10_000,
            max_queue_bytes: 64 * 1024 * 1024,
            max_client_queue_bytes: 128 * 1024 * 1024,
            max_total_queue_bytes: 4 * 1024 * 1024 * 1024,
            max_queue_messages_per_source: 1_000,
            max_queue_bytes_per_source: 16 * 1024 * 1024,
            max_connections: 20_000,
            max_connections_per_ip: 256,
            requests_per_second_per_ip: 2_000,
            request_burst_per_ip: 4_000,
            default_message_ttl_secs: 7 * 24 * 3600,
            max_delivery_batch: 100,
            grant_ttl_secs: 30 * 24 * 3600,
            max_recipients_per_client: 100,
            max_links_per_client: 100,
            max_routes_per_client: 256,
            memory_budget_bytes: 512 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// The queue limits the store enforces on each forward.
    pub fn queue_limits(&self) -> crate::store::QueueLimits {
        crate::store::QueueLimits {
            max_messages: self.max_queue_messages,
            max_bytes: self.max_queue_bytes,
            max_client_bytes: self.max_client_queue_bytes,
            max_total_bytes: self.max_total_queue_bytes,
            max_source_messages: self.max_queue_messages_per_source,
            max_source_bytes: self.max_queue_bytes_per_source,
            grant_ttl: self.grant_ttl_secs,
        }
    }
}

/// `[relay]`: what the session relay may hold in memory (see `specs/session.md` §2).
/// Queued frames count at their length plus 64 bytes of bookkeeping each, held frames in
/// whole 4 KiB pages (each has its own memory mapping) plus 64 bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Bytes of frames held for the absent member of one route (default 1 MiB).
    pub held_bytes_per_route: usize,
    /// Bytes held across all the routes one client reserved (default 16 MiB).
    pub held_bytes_per_client: usize,
    /// Bytes held across the relay (default 256 MiB).
    pub held_bytes_total: usize,
    /// Bytes queued towards one relay connection; DATA frames past it are dropped and the
    /// sessions retransmit them (default 16 MiB).
    pub queue_bytes_per_conn: usize,
    /// Bytes queued towards all relay connections together (default 512 MiB).
    pub queue_bytes_total: usize,
    /// Seconds frames may wait for a connection whose socket takes none of them before it
    /// is cut (default 20).
    pub stall_secs: u64,
    /// Refused JOINs after which a relay connection is cut (default 64).
    pub max_refused_joins: u32,
    /// Seconds between sweeps that free what expired reservations hold (default 10).
    pub sweep_secs: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        let l = relay::server::Limits::default();
        RelayConfig {
            held_bytes_per_route: l.held_bytes_per_route,
            held_bytes_per_client: l.held_bytes_per_client,
            held_bytes_total: l.held_bytes_total,
            queue_bytes_per_conn: l.queue_bytes_per_conn,
            queue_bytes_total: l.queue_bytes_total,
            stall_secs: l.stall.as_secs(),
            max_refused_joins: l.max_refused_joins,
            sweep_secs: 10,
        }
    }
}

impl RelayConfig {
    /// The relay's limits.
    pub fn limits(&self) -> relay::server::Limits {
        relay::server::Limits {
            held_bytes_per_route: self.held_bytes_per_route,
            held_bytes_per_client: self.held_bytes_per_client,
            held_bytes_total: self.held_bytes_total,
            queue_bytes_per_conn: self.queue_bytes_per_conn,
            queue_bytes_total: self.queue_bytes_total,
            stall: std::time::Duration::from_secs(self.stall_secs),
            max_refused_joins: self.max_refused_joins,
        }
    }

    fn validate(&self) -> Result<()> {
        // Every bound takes at least one frame of the largest size.
        let held = relay::server::held_cost(relay::MAX_FRAME);
        let queued = relay::MAX_FRAME + relay::server::FRAME_OVERHEAD;
        let bytes = [
            ("held_bytes_per_route", self.held_bytes_per_route, held),
            ("held_bytes_per_client", self.held_bytes_per_client, held),
            ("held_bytes_total", self.held_bytes_total, held),
            ("queue_bytes_per_conn", self.queue_bytes_per_conn, queued),
            ("queue_bytes_total", self.queue_bytes_total, queued),
        ];
        for (name, v, min) in bytes {
            if v < min {
                return Err(Error::Config(format!("relay.{name} must be at least {min} (one largest frame)")));
            }
        }
        if self.stall_secs == 0 || self.sweep_secs == 0 || self.max_refused_joins == 0 {
            return Err(Error::Config("relay.stall_secs, sweep_secs and max_refused_joins must be at least 1".into()));
        }
        Ok(())
    }
}

impl Config {
    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Reads and parses a TOML file.
    pub fn load(path: &std::path::Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Config::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Checks settings that depend on each other.
    pub fn validate(&self) -> Result<()> {
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(Error::Config("set both server.tls_cert and server.tls_key, or neither".into()));
        }
        if self.identity.method == IdentityMethod::Web && self.identity.web_host.is_none() {
            return Err(Error::Config("identity.method = \"web\" needs identity.web_host".into()));
        }
        if self.policy.admission == Admission::Allowlist && self.policy.allowlist.is_empty() {
            return Err(Error::Config("policy.admission = \"allowlist\" with an empty allowlist admits nobody".into()));
        }
        for did in &self.policy.allowlist {
            did_core::Did::parse(did).map_err(|e| Error::Config(format!("policy.allowlist: {e}")))?;
        }
        for url in &self.server.public_urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::Config(format!("server.public_urls: {url} must start with http:// or https://")));
            }
        }
        let l = &self.limits;
        if l.max_message_bytes < 1024
            || l.max_delivery_batch == 0
            || l.max_connections == 0
            || l.max_connections_per_ip == 0
            || l.max_queue_messages_per_source == 0
            || l.max_queue_bytes_per_source < l.max_message_bytes as u64
        {
            return Err(Error::Config("limits are too small to serve anyone".into()));
        }
        if l.memory_budget_bytes < 2 * l.max_message_bytes {
            return Err(Error::Config(
                "limits.memory_budget_bytes must hold at least two messages of max_message_bytes".into(),
            ));
        }
        for did in &self.resolver.web_allow {
            match did_core::Did::parse(did) {
                Ok(d) if d.method() == "web" => {}
                _ => return Err(Error::Config(format!("resolver.web_allow: {did:?} is not a did:web DID"))),
            }
        }
        if self.server.tls_handshake_timeout_secs == 0 {
            return Err(Error::Config("server.tls_handshake_timeout_secs must be positive".into()));
        }
        if self.resolver.timeout_ms == 0 {
            return Err(Error::Config("resolver.timeout_ms must be positive".into()));
        }
        self.store.validate()?;
        if let Some(url) = &self.cluster.advertise_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::Config(format!("cluster.advertise_url: {url} must start with http:// or https://")));
            }
        }
        if self.udp.key_ttl_secs < 60 || self.udp.answers_per_second == 0 {
            return Err(Error::Config(
                "udp.key_ttl_secs must be at least 60 and udp.answers_per_second positive".into(),
            ));
        }
        self.relay.validate()
    }

    /// The public base URLs, defaulting to the listen address.
    pub fn base_urls(&self, listen: SocketAddr) -> Vec<String> {
        if !self.server.public_urls.is_empty() {
            return self.server.public_urls.iter().map(|u| u.trim_end_matches('/').to_owned()).collect();
        }
        let scheme = if self.server.tls_cert.is_some() { "https" } else { "http" };
        vec![format!("{scheme}://{listen}")]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_config_parses_and_matches_defaults() {
        let dev = Config::from_toml(include_str!("../config.dev.toml")).unwrap();
        let d = Config::default();
        assert_eq!(dev.limits.max_message_bytes, d.limits.max_message_bytes);
        assert_eq!(dev.limits.max_queue_messages, d.limits.max_queue_messages);
        assert_eq!(dev.store.batch, d.store.batch);
        assert_eq!(dev.server.listen, d.server.listen);
        let (r, rd) = (&dev.relay, &d.relay);
        assert_eq!(
            (r.held_bytes_per_route, r.held_bytes_per_client, r.held_bytes_total),
            (rd.held_bytes_per_route, rd.held_bytes_per_client, rd.held_bytes_total)
        );
        assert_eq!(
            (r.queue_bytes_per_conn, r.queue_bytes_total, r.stall_secs, r.max_refused_joins, r.sweep_secs),
            (rd.queue_bytes_per_conn, rd.queue_bytes_total, rd.stall_secs, rd.max_refused_joins, rd.sweep_secs)
        );
        let (a, b) = (&dev.limits, &d.limits);
        assert_eq!(
            (a.grant_ttl_secs, a.max_recipients_per_client, a.max_client_queue_bytes, a.max_total_queue_bytes),
            (b.grant_ttl_secs, b.max_recipients_per_client, b.max_client_queue_bytes, b.max_total_queue_bytes)
        );
        assert_eq!(
            (a.max_queue_messages_per_source, a.max_queue_bytes_per_source, a.max_links_per_client),
            (b.max_queue_messages_per_source, b.max_queue_bytes_per_source, b.max_links_per_client)
        );
        assert_eq!(a.memory_budget_bytes, b.memory_budget_bytes);
        assert_eq!(dev.udp.listen, d.udp.listen);
        assert_eq!((dev.udp.key_ttl_secs, dev.udp.answers_per_second), (d.udp.key_ttl_secs, d.udp.answers_per_second));
        assert_eq!(dev.udp.max_keys, d.udp.max_keys);
        assert_eq!(dev.resolver.policy(), d.resolver.policy());
        assert_eq!(dev.resolver.web_senders, d.resolver.web_senders);
        assert_eq!(d.resolver.policy().reach, did_core::Reach::PublicOnly);
    }

    #[test]
    fn rejects_typos_and_inconsistencies() {
        assert!(Config::from_toml("[limits]\nmax_mesage_bytes = 5").is_err());
        assert!(Config::from_toml("[server]\ntls_cert = \"a.pem\"").is_err());
        assert!(Config::from_toml("[policy]\nadmission = \"allowlist\"").is_err());
        assert!(Config::from_toml("[policy]\nallowlist = [\"not-a-did\"]").is_err());
        assert!(Config::from_toml("[identity]\nmethod = \"web\"").is_err());
        assert!(Config::from_toml("[relay]\nheld_bytes_per_route = 1000").is_err());
        assert!(Config::from_toml("[relay]\nstall_secs = 0").is_err());
        assert!(Config::from_toml("[limits]\nrelay_held_bytes = 1048576").is_err(), "moved to [relay]");
        assert!(Config::from_toml("[resolver]\nweb_allow = [\"did:key:z6Mk\"]").is_err());
        assert!(Config::from_toml("[resolver]\nweb_senders = \"some\"").is_err());
        assert!(Config::from_toml("[limits]\nmemory_budget_bytes = 1024").is_err());
        let c = Config::from_toml("[resolver]\nallow_private_addresses = true\nweb_senders = \"any\"").unwrap();
        assert_eq!(c.resolver.policy().reach, did_core::Reach::Private);
        assert!(Config::from_toml("").is_ok());
        assert!(Config::from_toml("[udp]\nkey_ttl_secs = 5").is_err());
        assert!(Config::from_toml("[udp]\nlisten = [\"nope\"]").is_err());
        let c = Config::from_toml("[udp]\nlisten = [\"0.0.0.0:3478\", \"0.0.0.0:3479\"]").unwrap();
        assert_eq!(c.udp.listen.len(), 2);
        assert!(Config::from_toml("store = \"postgres://x\"").is_err());
        assert!(Config::from_toml("[store]\nurl = \"redis://h:1/0\"\nbach = 1").is_err(), "typos in the table");
        assert!(Config::from_toml("[cluster]\nadvertise_url = \"10.0.0.5:7080\"").is_err());
    }

    #[test]
    fn the_store_is_a_table_or_a_redis_url() {
        let short = Config::from_toml("store = \"redis://127.0.0.1:6379/2\"").unwrap();
        assert_eq!(short.store.redis_url(), Some("redis://127.0.0.1:6379/2"));
        assert_eq!(short.store.redis_prefix, "didmpc:");
        let table = Config::from_toml("[store]\nurl = \"redis://r:6379/0\"\nredis_prefix = \"m1:\"").unwrap();
        assert_eq!((table.store.redis_url(), table.store.redis_prefix.as_str()), (Some("redis://r:6379/0"), "m1:"));
        assert_eq!(Config::default().store.redis_url(), None, "SQLite by default");
    }
}
