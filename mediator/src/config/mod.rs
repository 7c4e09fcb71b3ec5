//! Mediator configuration (TOML). Every field is optional; `config.dev.toml` at the
//! crate root lists them all with their defaults.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::error::{Error, Result};
pub use crate::resolution::{ResolverConfig, WebSenders};

mod limits;
mod server;
mod store;

pub use limits::{Limits, RelayConfig};
pub use server::{Admission, IdentityConfig, IdentityMethod, PolicyConfig, ServerConfig};
pub use store::{ClusterConfig, StoreConfig, SyncMode};

use store::store_field;

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
        let dev = Config::from_toml(include_str!("../../config.dev.toml")).unwrap();
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
