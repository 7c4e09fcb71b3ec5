//! Schema versions after the first: each migration runs once, in a transaction, and moves
//! `PRAGMA user_version` forward, so a database written by an older mediator opens with its
//! grants, recipients and queued messages intact.

use rusqlite::Connection;

use crate::error::Result;

/// The version this code writes.
pub(super) const VERSION: i64 = 3;

/// Version 2: grants expire (`mediations.last_used`), quotas per source (`messages.source`) and
/// per client for short links (`oob.client`). Rows from version 1 get: `last_used` =
/// `granted_at`, `source` = "" (unknown), `client` = "" (counted against nobody).
const V2: &str = "
ALTER TABLE mediations ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
UPDATE mediations SET last_used = granted_at;
ALTER TABLE messages ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE oob ADD COLUMN client TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS oob_by_client ON oob(client, expires_at);
";

/// Version 3: relay route reservations carry the route key that JOINs on `/relay` are
/// checked against (`relay_routes.key`, `specs/session.md` §2). Reservations made before
/// have no key and could admit nobody: they are dropped (their sessions reserve anew).
const V3: &str = "
DROP TABLE relay_routes;
CREATE TABLE relay_routes (
    route BLOB PRIMARY KEY,
    client TEXT NOT NULL,
    key BLOB NOT NULL,
    expires_at INTEGER NOT NULL
);
";

/// Brings a database holding the version-1 tables up to [`VERSION`].
pub(super) fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > VERSION {
        return Err(crate::error::Error::Store(format!(
            "the database has schema version {version}; this mediator knows up to {VERSION} (newer mediator?)"
        )));
    }
    for (to, sql) in [(2, V2), (3, V3)] {
        if version >= to {
            continue;
        }
        if let Err(e) = conn.execute_batch(&format!("BEGIN IMMEDIATE; {sql} PRAGMA user_version = {to}; COMMIT;")) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        if version >= 1 {
            tracing::info!("store schema migrated to version {to}");
        }
    }
    Ok(())
}
