//! SQLite store: one writer thread that group-commits batches of commands, with the
//! quota counters, grants and the recipient → client map kept in memory (`state`).

mod grants;
mod queue;
mod schema;
mod state;

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::{mpsc, oneshot};

use self::state::State;
use super::{
    Enqueued, GrantState, NewLink, NewMessage, QueueLimits, QueueStatus, Queued, Refused, RouteReservation, Store,
    UpdateResult,
};
use crate::config::SyncMode;
use crate::error::{Error, Result};

/// The version-1 tables (`schema::migrate` brings them to the current version).
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
CREATE TABLE IF NOT EXISTS relay_routes (route BLOB PRIMARY KEY, client TEXT NOT NULL, expires_at INTEGER NOT NULL);
";

type Reply<T> = oneshot::Sender<Result<T>>;

enum Cmd {
    Grant(String, u64, Reply<()>),
    IsGranted(String, Reply<bool>),
    Touch(String, u64, u64, Reply<GrantState>),
    Expire(u64, u64, Reply<u64>),
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
    Fetch(String, Option<String>, usize, usize, u64, Reply<Vec<Queued>>),
    Get(String, u64, Reply<Option<(String, Queued)>>),
    Ack(String, Vec<String>, Reply<u64>),
    Purge(u64, Reply<u64>),
    PutOob(NewLink, u64, Reply<bool>),
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
        conn.execute_batch(SCHEMA)?;
        schema::migrate(&conn)?;
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
            Cmd::IsGranted(c, r) => pending(r, Ok(self.state.grants.contains_key(&c))),
            Cmd::Touch(c, now, ttl, r) => pending(r, self.touch(&c, now, ttl)),
            Cmd::Expire(now, ttl, r) => pending(r, self.expire_all(now, ttl)),
            Cmd::Rotate(old, new, r) => pending(r, self.rotate(&old, &new)),
            Cmd::Update { client, recipient, add, max, reply } => {
                pending(reply, self.update(&client, &recipient, add, max))
            }
            Cmd::Recipients(c, off, lim, r) => pending(r, self.recipients(&c, off, lim)),
            Cmd::Enqueue(m, l, r) => pending(r, self.enqueue(m, l)),
            Cmd::Status(c, rec, now, r) => pending(r, self.status(&c, rec.as_deref(), now)),
            Cmd::Fetch(c, rec, lim, max, now, r) => pending(r, self.fetch(&c, rec.as_deref(), lim, max, now)),
            Cmd::Get(id, now, r) => pending(
                r,
                self.conn
                    .query_row(
                        "SELECT client, recipient, body FROM messages WHERE id = ?1 AND expires_at > ?2",
                        params![id, now as i64],
                        |row| Ok((row.get(0)?, Queued { id: id.clone(), recipient: row.get(1)?, body: row.get(2)? })),
                    )
                    .optional()
                    .map_err(Error::from),
            ),
            Cmd::Ack(c, ids, r) => pending(r, self.ack(&c, &ids)),
            Cmd::Purge(now, r) => pending(r, self.purge(now)),
            Cmd::PutOob(link, max, r) => pending(r, self.put_oob(&link, max)),
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

    fn recipients(&self, client: &str, offset: u64, limit: u64) -> Result<(Vec<String>, u64)> {
        let total = self.state.per_client.get(client).copied().unwrap_or(0);
        let mut q = self.conn.prepare_cached(
            "SELECT recipient FROM recipients WHERE client = ?1 ORDER BY recipient LIMIT ?2 OFFSET ?3",
        )?;
        let rows = q.query_map(params![client, limit as i64, offset as i64], |r| r.get(0))?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, total))
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

    fn fetch(
        &self,
        client: &str,
        recipient: Option<&str>,
        limit: usize,
        max_bytes: usize,
        now: u64,
    ) -> Result<Vec<Queued>> {
        // Fair between sources: the oldest message of every source first, then the second of
        // each, … (messages of one source keep their order). A stranger who keeps a recipient's
        // queue full from a few addresses cannot push others' messages back.
        // The order is chosen on (seq, source) alone; bodies are read for the chosen rows only
        // (a window over whole rows copied every queued body per fetch: O(queue bytes)).
        let (inner, filter) = filter_sql(
            "SELECT seq, ROW_NUMBER() OVER (PARTITION BY source ORDER BY seq) AS turn FROM messages",
            recipient,
        );
        let sql = format!(
            "SELECT m.id, m.recipient, m.body FROM (SELECT seq, turn FROM ({inner}) ORDER BY turn, seq LIMIT {limit}) \
             AS pick JOIN messages AS m ON m.seq = pick.seq ORDER BY pick.turn, pick.seq"
        );
        let mut q = self.conn.prepare_cached(&sql)?;
        let map = |r: &rusqlite::Row| Ok(Queued { id: r.get(0)?, recipient: r.get(1)?, body: r.get(2)? });
        let rows = match filter {
            Some(rec) => q.query_map(params![client, now as i64, rec], map)?,
            None => q.query_map(params![client, now as i64], map)?,
        };
        let (mut out, mut bytes) = (Vec::new(), 0);
        for row in rows {
            let row = row?;
            bytes += row.body.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push(row);
        }
        Ok(out)
    }
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
    async fn touch_grant(&self, client: &str, now: u64, ttl: u64) -> Result<GrantState> {
        self.call(|r| Cmd::Touch(client.to_owned(), now, ttl, r)).await
    }
    async fn expire_grants(&self, now: u64, ttl: u64) -> Result<u64> {
        self.call(|r| Cmd::Expire(now, ttl, r)).await
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
    async fn fetch(
        &self,
        client: &str,
        recipient: Option<&str>,
        limit: usize,
        max_bytes: usize,
        now: u64,
    ) -> Result<Vec<Queued>> {
        self.call(|r| Cmd::Fetch(client.to_owned(), recipient.map(str::to_owned), limit, max_bytes, now, r)).await
    }
    async fn get(&self, id: &str, now: u64) -> Result<Option<(String, Queued)>> {
        self.call(|r| Cmd::Get(id.to_owned(), now, r)).await
    }
    async fn ack(&self, client: &str, ids: &[String]) -> Result<u64> {
        self.call(|r| Cmd::Ack(client.to_owned(), ids.to_vec(), r)).await
    }
    async fn purge_expired(&self, now: u64) -> Result<u64> {
        self.call(|r| Cmd::Purge(now, r)).await
    }
    async fn put_oob(&self, link: NewLink, max_per_client: u64) -> Result<bool> {
        self.call(|r| Cmd::PutOob(link, max_per_client, r)).await
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
