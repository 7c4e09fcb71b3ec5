//! Redis store: what several mediator instances share (`specs/mediator.md`, "Cluster").
//!
//! Every operation is one call of a function in `functions.lua` (loaded with `FUNCTION LOAD`
//! when the store connects), so the steps that must not interleave with another instance's —
//! an enqueue with its quota checks, an acknowledgement with its counters, a rotation — run
//! atomically inside Redis, and each costs one round trip. Queues are one Redis Stream per
//! recipient DID (per registration, to be exact), deleted entry by entry only on
//! `messages-received` or expiry. An enqueue also tells the other instances holding a live
//! WebSocket of the recipient's client (a message id on their pub/sub channel, see
//! [`crate::cluster`]).
//!
//! The connection is a [`ConnectionManager`]: one multiplexed connection that reconnects by
//! itself; while Redis is away, calls fail (the router answers 503) instead of waiting.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Value};

use super::{
    Enqueued, GrantState, NewLink, NewMessage, QueueLimits, QueueStatus, Queued, Refused, RouteReservation, Store,
    UpdateResult,
};
use crate::error::{Error, Result};

/// The function library (its name carries the version of the key layout).
const FUNCTIONS: &str = include_str!("functions.lua");

/// The default prefix of every key the mediator writes.
pub const DEFAULT_PREFIX: &str = "didmpc:";

/// Expired messages, links and routes one purge call deletes at most (the caller repeats).
const PURGE_BATCH: u64 = 1000;

/// How long a command may wait for its answer before the call fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

fn store_err(e: redis::RedisError) -> Error {
    Error::Store(format!("redis: {e}"))
}

/// How often a grant's last use is written (as for SQLite): often enough that the expiry
/// judged from Redis lags little, rarely enough that traffic does not turn into writes.
fn persist_every(ttl: u64) -> u64 {
    if ttl == 0 {
        3600
    } else {
        (ttl / 8).clamp(1, 3600)
    }
}

/// The Redis implementation of [`Store`].
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    client: redis::Client,
    prefix: String,
    instance: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.prefix).field("instance", &self.instance).finish()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT/DB`, `rediss://…` for TLS is not built in),
    /// loads the function library, and returns the store of the keys under `prefix`.
    /// `instance` names this mediator process in live-delivery notifications.
    pub async fn connect(url: &str, prefix: &str, instance: &str) -> Result<RedisStore> {
        let client = redis::Client::open(url).map_err(|e| Error::Config(format!("store: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let conn = client.get_connection_manager_with_config(config).await.map_err(store_err)?;
        let store = RedisStore { conn, client, prefix: prefix.to_owned(), instance: instance.to_owned() };
        store.load_functions().await?;
        Ok(store)
    }

    /// Loads (or replaces) the function library. Every instance does at start, and again when
    /// Redis lost it (a restart without persistence).
    async fn load_functions(&self) -> Result<()> {
        let _: String = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(FUNCTIONS)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| {
                Error::Store(format!("redis: cannot load the mediator's functions (Redis 7 or later needed): {e}"))
            })?;
        Ok(())
    }

    /// The Redis client (for pub/sub connections).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The shared multiplexed connection.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// This instance's name in notifications and the route directory.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// `FCALL name 0 prefix args…`.
    pub(crate) fn fcall(&self, name: &str) -> redis::Cmd {
        let mut c = redis::cmd("FCALL");
        c.arg(name).arg(0).arg(&self.prefix);
        c
    }

    /// Runs a command on the shared connection.
    pub(crate) async fn run<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        match cmd.query_async(&mut self.conn.clone()).await {
            Err(e) if e.to_string().contains("Function not found") => {
                tracing::warn!("redis lost the mediator's functions (restarted?); loading them again");
                self.load_functions().await?;
                cmd.query_async(&mut self.conn.clone()).await.map_err(store_err)
            }
            r => r.map_err(store_err),
        }
    }
}

/// A bulk or simple string reply as text.
fn text(v: &Value) -> Result<String> {
    String::from_utf8(bytes(v)?).map_err(|_| Error::Store("redis: a reply was not UTF-8".into()))
}

/// A bulk or simple string reply as bytes.
fn bytes(v: &Value) -> Result<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b.clone()),
        Value::SimpleString(s) => Ok(s.clone().into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        other => Err(Error::Store(format!("redis: unexpected reply {other:?}"))),
    }
}

/// An integer reply (or a number in a string).
fn int(v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        other => text(other)?.parse().map_err(|_| Error::Store("redis: expected a number".into())),
    }
}

fn items(v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        other => Err(Error::Store(format!("redis: expected an array, got {other:?}"))),
    }
}

fn refusal(code: &str) -> Result<Refused> {
    Ok(match code {
        "unknown" => Refused::UnknownRecipient,
        "source" => Refused::SourceBudget,
        "queue_messages" => Refused::QueueFullMessages,
        "queue_bytes" => Refused::QueueFullBytes,
        "client_bytes" => Refused::ClientQueueBytes,
        "total_bytes" => Refused::TotalQueueBytes,
        other => return Err(Error::Store(format!("redis: unknown enqueue answer {other:?}"))),
    })
}

/// Routes name their keys in hex.
fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[async_trait]
impl Store for RedisStore {
    async fn grant(&self, client: &str, now: u64) -> Result<()> {
        self.run::<i64>(self.fcall("didmpc_grant").arg(client).arg(now)).await.map(drop)
    }

    async fn is_granted(&self, client: &str) -> Result<bool> {
        let score: Option<f64> = self.run(redis::cmd("ZSCORE").arg(format!("{}g", self.prefix)).arg(client)).await?;
        Ok(score.is_some())
    }

    async fn touch_grant(&self, client: &str, now: u64, ttl: u64) -> Result<GrantState> {
        let cmd = self.fcall("didmpc_touch").arg(client).arg(now).arg(ttl).arg(persist_every(ttl)).to_owned();
        Ok(match self.run::<String>(&cmd).await?.as_str() {
            "expired" => {
                tracing::info!(%client, "mediation grant expired");
                GrantState::Expired
            }
            "active" => GrantState::Active,
            _ => GrantState::None,
        })
    }

    async fn expire_grants(&self, now: u64, ttl: u64) -> Result<u64> {
        let mut total = 0;
        loop {
            let n: u64 = self.run(self.fcall("didmpc_expire_grants").arg(now).arg(ttl).arg(PURGE_BATCH)).await?;
            total += n;
            if n < PURGE_BATCH {
                return Ok(total);
            }
        }
    }

    async fn rotate_client(&self, old: &str, new: &str) -> Result<bool> {
        Ok(self.run::<i64>(self.fcall("didmpc_rotate").arg(old).arg(new)).await? == 1)
    }

    async fn update_recipient(&self, client: &str, recipient: &str, add: bool, max: u64) -> Result<UpdateResult> {
        let cmd =
            self.fcall("didmpc_update_recipient").arg(client).arg(recipient).arg(u8::from(add)).arg(max).to_owned();
        Ok(match self.run::<String>(&cmd).await?.as_str() {
            "success" => UpdateResult::Success,
            "no_change" => UpdateResult::NoChange,
            "limit" => UpdateResult::LimitReached,
            _ => UpdateResult::ClientError,
        })
    }

    async fn recipients(&self, client: &str, offset: u64, limit: u64) -> Result<(Vec<String>, u64)> {
        let v = items(self.run(self.fcall("didmpc_recipients").arg(client).arg(offset).arg(limit)).await?)?;
        let mut it = v.iter();
        let total = it.next().map(int).transpose()?.unwrap_or(0) as u64;
        Ok((it.map(text).collect::<Result<_>>()?, total))
    }

    async fn enqueue(&self, msg: NewMessage, l: QueueLimits) -> Result<std::result::Result<Enqueued, Refused>> {
        let mut cmd = self.fcall("didmpc_enqueue");
        cmd.arg(&msg.recipient).arg(&msg.body).arg(msg.received_at).arg(msg.expires_at).arg(&msg.source);
        cmd.arg(l.max_messages).arg(l.max_bytes).arg(l.max_client_bytes).arg(l.max_total_bytes);
        cmd.arg(l.max_source_messages).arg(l.max_source_bytes).arg(l.grant_ttl).arg(&self.instance);
        let v = items(self.run(&cmd).await?)?;
        match v.as_slice() {
            [ok, id, client] if text(ok)? == "ok" => Ok(Ok(Enqueued { id: text(id)?, client: text(client)? })),
            [code] => Ok(Err(refusal(&text(code)?)?)),
            other => Err(Error::Store(format!("redis: unexpected enqueue answer {other:?}"))),
        }
    }

    async fn status(&self, client: &str, recipient: Option<&str>, now: u64) -> Result<QueueStatus> {
        let cmd = self.fcall("didmpc_status").arg(client).arg(recipient.unwrap_or("")).arg(now).to_owned();
        let v: Vec<i64> = self.run(&cmd).await?;
        let time = |t: i64| (t >= 0).then_some(t as u64);
        match v.as_slice() {
            [count, bytes, oldest, newest] => Ok(QueueStatus {
                message_count: *count as u64,
                total_bytes: *bytes as u64,
                oldest_received_time: time(*oldest),
                newest_received_time: time(*newest),
            }),
            other => Err(Error::Store(format!("redis: unexpected status answer {other:?}"))),
        }
    }

    async fn fetch(
        &self,
        client: &str,
        recipient: Option<&str>,
        limit: usize,
        max_bytes: usize,
        now: u64,
    ) -> Result<Vec<Queued>> {
        let mut cmd = self.fcall("didmpc_fetch");
        cmd.arg(client).arg(recipient.unwrap_or("")).arg(limit).arg(max_bytes).arg(now);
        let v = items(self.run(&cmd).await?)?;
        v.chunks(3)
            .map(|c| match c {
                [id, r, body] => Ok(Queued { id: text(id)?, recipient: text(r)?, body: bytes(body)? }),
                _ => Err(Error::Store("redis: a fetch answer came in pieces".into())),
            })
            .collect()
    }

    async fn get(&self, id: &str, now: u64) -> Result<Option<(String, Queued)>> {
        let v = items(self.run(self.fcall("didmpc_get").arg(id).arg(now)).await?)?;
        match v.as_slice() {
            [client, r, body] => {
                Ok(Some((text(client)?, Queued { id: id.to_owned(), recipient: text(r)?, body: bytes(body)? })))
            }
            _ => Ok(None),
        }
    }

    async fn ack(&self, client: &str, ids: &[String]) -> Result<u64> {
        let mut cmd = self.fcall("didmpc_ack");
        cmd.arg(client).arg(ids);
        self.run(&cmd).await
    }

    async fn purge_expired(&self, now: u64) -> Result<u64> {
        let mut total = 0;
        loop {
            let v: Vec<u64> = self.run(self.fcall("didmpc_purge").arg(now).arg(PURGE_BATCH)).await?;
            total += v.first().copied().unwrap_or(0);
            if v.get(1) != Some(&1) {
                return Ok(total);
            }
        }
    }

    async fn put_oob(&self, link: NewLink, max_per_client: u64) -> Result<bool> {
        let mut cmd = self.fcall("didmpc_put_oob");
        cmd.arg(&link.client)
            .arg(&link.id)
            .arg(&link.invitation)
            .arg(link.now)
            .arg(link.expires_at)
            .arg(max_per_client);
        Ok(self.run::<i64>(&cmd).await? == 1)
    }

    async fn get_oob(&self, id: &str, now: u64) -> Result<Option<String>> {
        self.run(self.fcall("didmpc_get_oob").arg(id).arg(now)).await
    }

    async fn reserve_route(&self, route: &[u8], client: &str, key: &[u8], expires_at: u64, max: u64) -> Result<bool> {
        let mut cmd = self.fcall("didmpc_reserve");
        cmd.arg(hex(route)).arg(client).arg(key).arg(expires_at).arg(max);
        Ok(self.run::<i64>(&cmd).await? == 1)
    }

    async fn route_reservation(&self, route: &[u8], now: u64) -> Result<Option<RouteReservation>> {
        let v = items(self.run(self.fcall("didmpc_route").arg(hex(route)).arg(now)).await?)?;
        match v.as_slice() {
            [client, key, expires] => Ok(Some(RouteReservation {
                client: text(client)?,
                key: zeroize::Zeroizing::new(bytes(key)?),
                expires_at: int(expires)? as u64,
            })),
            _ => Ok(None),
        }
    }
}

/// The route directory: which instance holds which slot of a relay route.
impl RedisStore {
    /// Records that this instance holds `slot` of `route` and returns the instance holding
    /// the other slot, if any. The entry lives at most `ttl` without another join.
    pub async fn route_joined(&self, route: &[u8], slot: u8, ttl: Duration) -> Result<Option<String>> {
        let mut cmd = self.fcall("didmpc_route_joined");
        cmd.arg(hex(route)).arg(slot).arg(&self.instance).arg(ttl.as_secs().max(1));
        self.run(&cmd).await
    }

    /// Forgets `slot` of `route` if this instance still holds it.
    pub async fn route_left(&self, route: &[u8], slot: u8) -> Result<()> {
        let mut cmd = self.fcall("didmpc_route_left");
        cmd.arg(hex(route)).arg(slot).arg(&self.instance);
        self.run::<i64>(&cmd).await.map(drop)
    }
}

#[cfg(test)]
mod tests;
