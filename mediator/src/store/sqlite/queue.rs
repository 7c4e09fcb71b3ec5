//! Queued messages: enqueue under the quotas, acknowledge, purge what expired.

use rusqlite::{params, OptionalExtension};

use super::state::Slot;
use super::Worker;
use crate::error::Result;
use crate::store::{Enqueued, NewMessage, QueueLimits, Refused};

impl Worker {
    pub(super) fn enqueue(
        &mut self,
        m: NewMessage,
        limits: QueueLimits,
    ) -> Result<std::result::Result<Enqueued, Refused>> {
        let Some(client) = self.state.owners.get(&m.recipient).cloned() else {
            return Ok(Err(Refused::UnknownRecipient));
        };
        if self.state.grant_expired(&client, m.received_at, limits.grant_ttl) {
            self.expire(&client)?;
            return Ok(Err(Refused::UnknownRecipient));
        }
        let size = m.body.len() as u64;
        let slot = Slot { recipient: &m.recipient, client: &client, source: &m.source };
        if let Err(r) = self.state.check(&slot, size, &limits) {
            return Ok(Err(r));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.conn
            .prepare_cached(
                "INSERT INTO messages (id, recipient, client, body, size, received_at, expires_at, source) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                id,
                m.recipient,
                client,
                m.body,
                size as i64,
                m.received_at as i64,
                m.expires_at as i64,
                m.source
            ])?;
        self.state.add(&slot, 1, size);
        Ok(Ok(Enqueued { id, client }))
    }

    pub(super) fn ack(&mut self, client: &str, ids: &[String]) -> Result<u64> {
        let mut deleted = 0;
        let mut sel =
            self.conn.prepare_cached("SELECT recipient, size, source FROM messages WHERE id = ?1 AND client = ?2")?;
        let mut found = Vec::new();
        for id in ids {
            let row = sel
                .query_row(params![id, client], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })
                .optional()?;
            if let Some(row) = row {
                found.push((id, row));
            }
        }
        drop(sel);
        for (id, (recipient, size, source)) in found {
            let n = self.conn.prepare_cached("DELETE FROM messages WHERE id = ?1")?.execute(params![id])? as u64;
            if n > 0 {
                deleted += n;
                self.state.remove(&Slot { recipient: &recipient, client, source: &source }, 1, size as u64);
            }
        }
        Ok(deleted)
    }

    pub(super) fn purge(&mut self, now: u64) -> Result<u64> {
        let mut q = self.conn.prepare(
            "SELECT recipient, client, source, COUNT(*), SUM(size) FROM messages WHERE expires_at <= ?1 \
             GROUP BY recipient, client, source",
        )?;
        let rows: Vec<(String, String, String, i64, i64)> = q
            .query_map(params![now as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<rusqlite::Result<_>>()?;
        drop(q);
        let n = self.conn.execute("DELETE FROM messages WHERE expires_at <= ?1", params![now as i64])? as u64;
        self.conn.execute("DELETE FROM oob WHERE expires_at <= ?1", params![now as i64])?;
        self.conn.execute("DELETE FROM relay_routes WHERE expires_at <= ?1", params![now as i64])?;
        for (recipient, client, source, count, bytes) in rows {
            self.state.remove(
                &Slot { recipient: &recipient, client: &client, source: &source },
                count as u64,
                bytes as u64,
            );
        }
        Ok(n)
    }
}
