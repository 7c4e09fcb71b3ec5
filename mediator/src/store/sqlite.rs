//! SQLite store: one writer thread that group-commits batches of commands, with the
//! queue counters and the recipient → client map kept in memory.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use super::{Enqueued, NewMessage, QueueLimits, QueueStatus, Queued, Refused, RouteReservation, Store, UpdateResult};
use crate::config::SyncMode;
use crate::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mediations (client TEXT PRIMARY KEY, granted_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS recipients (
    recipient TEXT PRIMARY KEY,
    client TEXT NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS recipients_by_client ON recipients(client);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    recipient TEXT NOT NULL,
    client TEXT NOT NULL,
    body BLOB NOT NULL,
    size INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_client ON messages(client, seq);
CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages(expires_at);
CREATE TABLE IF NOT EXISTS oob (id TEXT PRIMARY KEY, invitation TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS relay_routes (
    route BLOB PRIMARY KEY,
    client TEXT NOT NULL,
    key BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);
PRAGMA user_version = 1;
";

type Reply<T> = oneshot::Sender<Result<T>>;

enum Cmd {
    Grant(String, u64, Reply<()>),
    IsGranted(String, Reply<bool>),
    Rotate(String, String, Reply<bool>),
    Update {
        client: String,
        recipient: String,
        add: bool,
        max: u64,
        reply: Reply<UpdateResult>,
    },
    Recipients(String, u64, u64, Reply<(Vec<String>, u64)>),
    Enqueue(NewMessage, QueueLimits, Reply<std::result::Result<Enqueued, Refused>>),
    Status(String, Option<String>, u64, Reply<QueueStatus>),
    Fetch(String, Option<String>, usize, u64, Reply<Vec<Queued>>),
    Ack(String, Vec<String>, Reply<u64>),
    Purge(u64, Reply<u64>),
    PutOob(String, String, u64, Reply<()>),
    GetOob(String, u64, Reply<Option<String>>),
    Reserve {
        route: Vec<u8>,
        client: String,
        key: zeroize::Zeroizing<Vec<u8>>,
        expires_at: u64,
        max: u64,
        reply: Reply<bool>,
    },
    Reservation(Vec<u8>, u64, Reply<Option<RouteReservation>>),
}

/// The SQLite implementation of [`Store`].
pub struct SqliteStore {
    tx: mpsc::Sender<Cmd>,
}

impl SqliteStore {
    /// Opens (creating) the database and starts its writer thread.
    pub fn open(path: &Path, sync: SyncMode, batch: usize) -> Result<SqliteStore> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", if sync == SyncMode::Full { "FULL" } else { "NORMAL" })?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        drop_keyless_routes(&conn)?;
        conn.execute_batch(SCHEMA)?;
        let state = State::load(&conn)?;
        let (tx, rx) = mpsc::channel(8192);
        std::thread::Builder::new()
            .name("mediator-store".into())
            .spawn(move || Worker { conn, state, batch: batch.max(1) }.run(rx))
            .map_err(Error::Io)?;
        Ok(SqliteStore { tx })
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.map_err(|_| Error::Store("store thread has stopped".into()))?;
        rx.await.map_err(|_| Error::Store("store thread dropped a request".into()))?
    }
}

#[derive(Default)]
struct State {
    granted: HashSet<String>,
    owners: HashMap<String, String>,
    per_client: HashMap<String, u64>,
    queues: HashMap<String, (u64, u64)>,
}

impl State {
    fn load(conn: &Connection) -> Result<State> {
        let mut s = State::default();
        let mut q = conn.prepare("SELECT client FROM mediations")?;
        for c in q.query_map([], |r| r.get::<_, String>(0))? {
            s.granted.insert(c?);
        }
        let mut q = conn.prepare("SELECT recipient, client FROM recipients")?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (r, c) = row?;
            *s.per_client.entry(c.clone()).or_default() += 1;
            s.owners.insert(r, c);
        }
        let mut q = conn.prepare("SELECT recipient, COUNT(*), SUM(size) FROM messages GROUP BY recipient")?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))? {
            let (r, n, b) = row?;
            s.queues.insert(r, (n as u64, b as u64));
        }
        Ok(s)
    }
}

struct Worker {
    conn: Connection,
    state: State,
    batch: usize,
}

/// A reply waiting for the batch's commit.
type Pending = Box<dyn FnOnce(Option<&Error>) + Send>;

fn pending<T: Send + 'static>(reply: Reply<T>, value: Result<T>) -> Pending {
    Box::new(move |commit_err: Option<&Error>| {
        let out = match (value, commit_err) {
            (Ok(_), Some(e)) => Err(Error::Store(format!("commit failed: {e}"))),
            (v, _) => v,
        };
        let _ = reply.send(out);
    })
}

impl Worker {
    fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        while let Some(first) = rx.blocking_recv() {
            let mut cmds = vec![first];
            while cmds.len() < self.batch {
                match rx.try_recv() {
                    Ok(c) => cmds.push(c),
                    Err(_) => break,
                }
            }
            if let Err(e) = self.conn.execute_batch("BEGIN IMMEDIATE") {
                // Dropping the commands fails every caller with a store error.
                tracing::error!(error = %e, "store cannot begin a transaction");
                continue;
            }
            let replies: Vec<Pending> = cmds.into_iter().map(|c| self.apply(c)).collect();
            let commit = self.conn.execute_batch("COMMIT").map_err(Error::from);
            if let Err(e) = &commit {
                tracing::error!(error = %e, "store commit failed; reloading state");
                let _ = self.conn.execute_batch("ROLLBACK");
                if let Ok(s) = State::load(&self.conn) {
                    self.state = s;
                }
            }
            for r in replies {
                r(commit.as_ref().err());
            }
        }
    }

    fn apply(&mut self, cmd: Cmd) -> Pending {
        match cmd {
            Cmd::Grant(c, now, r) => pending(r, self.grant(&c, now)),
            Cmd::IsGranted(c, r) => pending(r, Ok(self.state.granted.contains(&c))),
            Cmd::Rotate(old, new, r) => pending(r, self.rotate(&old, &new)),
            Cmd::Update { client, recipient, add, max, reply } => {
                pending(reply, self.update(&client, &recipient, add, max))
            }
            Cmd::Recipients(c, off, lim, r) => pending(r, self.recipients(&c, off, lim)),
            Cmd::Enqueue(m, l, r) => pending(r, self.enqueue(m, l)),
            Cmd::Status(c, rec, now, r) => pending(r, self.status(&c, rec.as_deref(), now)),
            Cmd::Fetch(c, rec, lim, now, r) => pending(r, self.fetch(&c, rec.as_deref(), lim, now)),
            Cmd::Ack(c, ids, r) => pending(r, self.ack(&c, &ids)),
            Cmd::Purge(now, r) => pending(r, self.purge(now)),
            Cmd::PutOob(id, inv, exp, r) => pending(
                r,
                self.conn
                    .execute(
                        "INSERT OR REPLACE INTO oob (id, invitation, expires_at) VALUES (?1, ?2, ?3)",
                        params![id, inv, exp as i64],
                    )
                    .map(|_| ())
                    .map_err(Error::from),
            ),
            Cmd::Reserve { route, client, key, expires_at, max, reply } => {
                pending(reply, self.reserve(&route, &client, &key, expires_at, max))
            }
            Cmd::Reservation(route, now, r) => pending(
                r,
                self.conn
                    .query_row(
                        "SELECT client, key, expires_at FROM relay_routes WHERE route = ?1 AND expires_at > ?2",
                        params![route, now as i64],
                        |row| {
                            Ok(RouteReservation {
                                client: row.get(0)?,
                                key: zeroize::Zeroizing::new(row.get(1)?),
                                expires_at: row.get::<_, i64>(2)? as u64,
                            })
                        },
                    )
                    .optional()
                    .map_err(Error::from),
            ),
            Cmd::GetOob(id, now, r) => pending(
                r,
                self.conn
                    .query_row(
                        "SELECT invitation FROM oob WHERE id = ?1 AND expires_at > ?2",
                        params![id, now as i64],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(Error::from),
            ),
        }
    }

    fn reserve(&mut self, route: &[u8], client: &str, key: &[u8], expires_at: u64, max: u64) -> Result<bool> {
        let owner: Option<String> = self
            .conn
            .query_row("SELECT client FROM relay_routes WHERE route = ?1", params![route], |r| r.get(0))
            .optional()?;
        match owner {
            Some(o) if o != client => return Ok(false),
            Some(_) => {}
            None => {
                let n: i64 = self.conn.query_row(
                    "SELECT COUNT(*) FROM relay_routes WHERE client = ?1",
                    params![client],
                    |r| r.get(0),
                )?;
                if n as u64 >= max {
                    return Ok(false);
                }
            }
        }
        self.conn.execute(
            "INSERT INTO relay_routes (route, client, key, expires_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(route) DO UPDATE SET key = excluded.key, expires_at = excluded.expires_at",
            params![route, client, key, expires_at as i64],
        )?;
        Ok(true)
    }

    fn grant(&mut self, client: &str, now: u64) -> Result<()> {
        if self.state.granted.insert(client.to_owned()) {
            self.conn.execute(
                "INSERT OR IGNORE INTO mediations (client, granted_at) VALUES (?1, ?2)",
                params![client, now as i64],
            )?;
        }
        Ok(())
    }

    fn rotate(&mut self, old: &str, new: &str) -> Result<bool> {
        if !self.state.granted.contains(old) || self.state.granted.contains(new) {
            return Ok(false);
        }
        self.conn.execute("UPDATE mediations SET client = ?2 WHERE client = ?1", params![old, new])?;
        self.conn.execute("UPDATE recipients SET client = ?2 WHERE client = ?1", params![old, new])?;
        self.conn.execute("UPDATE messages SET client = ?2 WHERE client = ?1", params![old, new])?;
        self.state.granted.remove(old);
        self.state.granted.insert(new.to_owned());
        for owner in self.state.owners.values_mut().filter(|o| *o == old) {
            *owner = new.to_owned();
        }
        if let Some(n) = self.state.per_client.remove(old) {
            self.state.per_client.insert(new.to_owned(), n);
        }
        Ok(true)
    }

    fn update(&mut self, client: &str, recipient: &str, add: bool, max: u64) -> Result<UpdateResult> {
        let owner = self.state.owners.get(recipient).cloned();
        Ok(match (add, owner.as_deref()) {
            (true, Some(o)) if o == client => UpdateResult::NoChange,
            (true, Some(_)) => UpdateResult::ClientError,
            (true, None) => {
                let n = self.state.per_client.entry(client.to_owned()).or_default();
                if *n >= max {
                    return Ok(UpdateResult::ClientError);
                }
                *n += 1;
                self.conn.execute(
                    "INSERT INTO recipients (recipient, client, added_at) VALUES (?1, ?2, strftime('%s','now'))",
                    params![recipient, client],
                )?;
                self.state.owners.insert(recipient.to_owned(), client.to_owned());
                UpdateResult::Success
            }
            (false, Some(o)) if o == client => {
                self.conn.execute("DELETE FROM recipients WHERE recipient = ?1", params![recipient])?;
                self.state.owners.remove(recipient);
                if let Some(n) = self.state.per_client.get_mut(client) {
                    *n = n.saturating_sub(1);
                }
                UpdateResult::Success
            }
            (false, Some(_)) => UpdateResult::ClientError,
            (false, None) => UpdateResult::NoChange,
        })
    }

    fn recipients(&self, client: &str, offset: u64, limit: u64) -> Result<(Vec<String>, u64)> {
        let total = self.state.per_client.get(client).copied().unwrap_or(0);
        let mut q = self.conn.prepare_cached(
            "SELECT recipient FROM recipients WHERE client = ?1 ORDER BY recipient LIMIT ?2 OFFSET ?3",
        )?;
        let rows = q.query_map(params![client, limit as i64, offset as i64], |r| r.get(0))?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, total))
    }

    fn enqueue(&mut self, m: NewMessage, limits: QueueLimits) -> Result<std::result::Result<Enqueued, Refused>> {
        let Some(client) = self.state.owners.get(&m.recipient).cloned() else {
            return Ok(Err(Refused::UnknownRecipient));
        };
        let q = self.state.queues.entry(m.recipient.clone()).or_default();
        if q.0 >= limits.max_messages {
            return Ok(Err(Refused::QueueFullMessages));
        }
        let size = m.body.len() as u64;
        if q.1 + size > limits.max_bytes {
            return Ok(Err(Refused::QueueFullBytes));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.conn
            .prepare_cached("INSERT INTO messages (id, recipient, client, body, size, received_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
            .execute(params![id, m.recipient, client, m.body, size as i64, m.received_at as i64, m.expires_at as i64])?;
        q.0 += 1;
        q.1 += size;
        Ok(Ok(Enqueued { id, client }))
    }

    fn status(&self, client: &str, recipient: Option<&str>, now: u64) -> Result<QueueStatus> {
        let (sql, filter) = filter_sql(
            "SELECT COUNT(*), COALESCE(SUM(size),0), MIN(received_at), MAX(received_at) FROM messages",
            recipient,
        );
        let mut q = self.conn.prepare_cached(&sql)?;
        let row = |r: &rusqlite::Row| -> rusqlite::Result<QueueStatus> {
            Ok(QueueStatus {
                message_count: r.get::<_, i64>(0)? as u64,
                total_bytes: r.get::<_, i64>(1)? as u64,
                oldest_received_time: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                newest_received_time: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
            })
        };
        Ok(match filter {
            Some(rec) => q.query_row(params![client, now as i64, rec], row)?,
            None => q.query_row(params![client, now as i64], row)?,
        })
    }

    fn fetch(&self, client: &str, recipient: Option<&str>, limit: usize, now: u64) -> Result<Vec<Queued>> {
        let (sql, filter) = filter_sql("SELECT id, recipient, body FROM messages", recipient);
        let sql = format!("{sql} ORDER BY seq LIMIT {limit}");
        let mut q = self.conn.prepare_cached(&sql)?;
        let map = |r: &rusqlite::Row| Ok(Queued { id: r.get(0)?, recipient: r.get(1)?, body: r.get(2)? });
        let rows = match filter {
            Some(rec) => q.query_map(params![client, now as i64, rec], map)?.collect::<rusqlite::Result<Vec<_>>>()?,
            None => q.query_map(params![client, now as i64], map)?.collect::<rusqlite::Result<Vec<_>>>()?,
        };
        Ok(rows)
    }

    fn ack(&mut self, client: &str, ids: &[String]) -> Result<u64> {
        let mut deleted = 0;
        let mut sel = self.conn.prepare_cached("SELECT recipient, size FROM messages WHERE id = ?1 AND client = ?2")?;
        let mut found = Vec::new();
        for id in ids {
            if let Some(row) =
                sel.query_row(params![id, client], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).optional()?
            {
                found.push((id, row));
            }
        }
        drop(sel);
        for (id, (recipient, size)) in found {
            deleted += self.conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?.execute(params![id])? as u64;
            self.shrink(&recipient, 1, size as u64);
        }
        Ok(deleted)
    }

    fn purge(&mut self, now: u64) -> Result<u64> {
        let mut q = self
            .conn
            .prepare("SELECT recipient, COUNT(*), SUM(size) FROM messages WHERE expires_at <= ?1 GROUP BY recipient")?;
        let rows: Vec<(String, i64, i64)> = q
            .query_map(params![now as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        drop(q);
        let n = self.conn.execute("DELETE FROM messages WHERE expires_at <= ?1", params![now as i64])? as u64;
        self.conn.execute("DELETE FROM oob WHERE expires_at <= ?1", params![now as i64])?;
        self.conn.execute("DELETE FROM relay_routes WHERE expires_at <= ?1", params![now as i64])?;
        for (r, count, bytes) in rows {
            self.shrink(&r, count as u64, bytes as u64);
        }
        Ok(n)
    }

    fn shrink(&mut self, recipient: &str, count: u64, bytes: u64) {
        if let Some(q) = self.state.queues.get_mut(recipient) {
            q.0 = q.0.saturating_sub(count);
            q.1 = q.1.saturating_sub(bytes);
            if q.0 == 0 {
                self.state.queues.remove(recipient);
            }
        }
    }
}

/// Route reservations made before JOINs were authenticated have no key and can admit
/// nobody: the table is dropped (and made again by the schema) when it lacks the column.
fn drop_keyless_routes(conn: &Connection) -> Result<()> {
    let has_table: bool = conn
        .query_row("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'relay_routes'", [], |_| Ok(()))
        .optional()?
        .is_some();
    if has_table && conn.prepare("SELECT key FROM relay_routes LIMIT 0").is_err() {
        tracing::warn!("dropping relay route reservations without route keys (made by an older mediator)");
        conn.execute_batch("DROP TABLE relay_routes")?;
    }
    Ok(())
}

/// Adds the client/expiry filter (params ?1 client, ?2 now) and an optional recipient filter (?3).
fn filter_sql<'a>(select: &str, recipient: Option<&'a str>) -> (String, Option<&'a str>) {
    match recipient {
        Some(r) => (format!("{select} WHERE client = ?1 AND expires_at > ?2 AND recipient = ?3"), Some(r)),
        None => (format!("{select} WHERE client = ?1 AND expires_at > ?2"), None),
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn grant(&self, client: &str, now: u64) -> Result<()> {
        self.call(|r| Cmd::Grant(client.to_owned(), now, r)).await
    }
    async fn is_granted(&self, client: &str) -> Result<bool> {
        self.call(|r| Cmd::IsGranted(client.to_owned(), r)).await
    }
    async fn rotate_client(&self, old: &str, new: &str) -> Result<bool> {
        self.call(|r| Cmd::Rotate(old.to_owned(), new.to_owned(), r)).await
    }
    async fn update_recipient(&self, client: &str, recipient: &str, add: bool, max: u64) -> Result<UpdateResult> {
        self.call(|reply| Cmd::Update { client: client.to_owned(), recipient: recipient.to_owned(), add, max, reply })
            .await
    }
    async fn recipients(&self, client: &str, offset: u64, limit: u64) -> Result<(Vec<String>, u64)> {
        self.call(|r| Cmd::Recipients(client.to_owned(), offset, limit, r)).await
    }
    async fn enqueue(&self, msg: NewMessage, limits: QueueLimits) -> Result<std::result::Result<Enqueued, Refused>> {
        self.call(|r| Cmd::Enqueue(msg, limits, r)).await
    }
    async fn status(&self, client: &str, recipient: Option<&str>, now: u64) -> Result<QueueStatus> {
        self.call(|r| Cmd::Status(client.to_owned(), recipient.map(str::to_owned), now, r)).await
    }
    async fn fetch(&self, client: &str, recipient: Option<&str>, limit: usize, now: u64) -> Result<Vec<Queued>> {
        self.call(|r| Cmd::Fetch(client.to_owned(), recipient.map(str::to_owned), limit, now, r)).await
    }
    async fn ack(&self, client: &str, ids: &[String]) -> Result<u64> {
        self.call(|r| Cmd::Ack(client.to_owned(), ids.to_vec(), r)).await
    }
    async fn purge_expired(&self, now: u64) -> Result<u64> {
        self.call(|r| Cmd::Purge(now, r)).await
    }
    async fn put_oob(&self, id: &str, invitation: &str, expires_at: u64) -> Result<()> {
        self.call(|r| Cmd::PutOob(id.to_owned(), invitation.to_owned(), expires_at, r)).await
    }
    async fn get_oob(&self, id: &str, now: u64) -> Result<Option<String>> {
        self.call(|r| Cmd::GetOob(id.to_owned(), now, r)).await
    }
    async fn reserve_route(&self, route: &[u8], client: &str, key: &[u8], expires_at: u64, max: u64) -> Result<bool> {
        let key = zeroize::Zeroizing::new(key.to_vec());
        self.call(|reply| Cmd::Reserve {
            route: route.to_vec(),
            client: client.to_owned(),
            key,
            expires_at,
            max,
            reply,
        })
        .await
    }
    async fn route_reservation(&self, route: &[u8], now: u64) -> Result<Option<RouteReservation>> {
        self.call(|r| Cmd::Reservation(route.to_vec(), now, r)).await
    }
}

#[cfg(test)]
mod tests;
