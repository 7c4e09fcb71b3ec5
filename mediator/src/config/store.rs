//! `[store]` and `[cluster]`: where queues, grants and routes are kept, and what the
//! instances sharing a Redis store need of each other.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};

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

    pub(super) fn validate(&self) -> Result<()> {
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
pub(super) fn store_field<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<StoreConfig, D::Error> {
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
