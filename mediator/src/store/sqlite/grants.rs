//! Grants (with expiry), recipient DIDs and short links: the per-client side of the store.

use rusqlite::params;

use super::state::{Grant, Slot};
use super::Worker;
use crate::error::Result;
use crate::store::{GrantState, NewLink, UpdateResult};

/// How often a grant's last use is written to the database: often enough that a restart loses
/// little of a short TTL, rarely enough that traffic does not turn into writes.
fn persist_every(ttl: u64) -> u64 {
    if ttl == 0 {
        3600
    } else {
        (ttl / 8).clamp(1, 3600)
    }
}

impl Worker {
    pub(super) fn grant(&mut self, client: &str, now: u64) -> Result<()> {
        match self.state.grants.get_mut(client) {
            Some(g) => {
                g.last_used = g.last_used.max(now);
                g.persisted = g.last_used;
                self.conn.execute(
                    "UPDATE mediations SET last_used = ?2 WHERE client = ?1",
                    params![client, g.last_used as i64],
                )?;
            }
            None => {
                self.conn.execute(
                    "INSERT OR REPLACE INTO mediations (client, granted_at, last_used) VALUES (?1, ?2, ?2)",
                    params![client, now as i64],
                )?;
                self.state.grants.insert(client.to_owned(), Grant { last_used: now, persisted: now });
            }
        }
        Ok(())
    }

    pub(super) fn touch(&mut self, client: &str, now: u64, ttl: u64) -> Result<GrantState> {
        if self.state.grant_expired(client, now, ttl) {
            self.expire(client)?;
            return Ok(GrantState::Expired);
        }
        let Some(g) = self.state.grants.get_mut(client) else {
            return Ok(GrantState::None);
        };
        g.last_used = g.last_used.max(now);
        if g.last_used >= g.persisted + persist_every(ttl) {
            g.persisted = g.last_used;
            self.conn.execute(
                "UPDATE mediations SET last_used = ?2 WHERE client = ?1",
                params![client, g.last_used as i64],
            )?;
        }
        Ok(GrantState::Active)
    }

    pub(super) fn expire_all(&mut self, now: u64, ttl: u64) -> Result<u64> {
        let expired: Vec<String> =
            self.state.grants.keys().filter(|c| self.state.grant_expired(c, now, ttl)).cloned().collect();
        for c in &expired {
            self.expire(c)?;
        }
        Ok(expired.len() as u64)
    }

    /// Removes `client`'s grant, recipient DIDs and queued messages.
    pub(super) fn expire(&mut self, client: &str) -> Result<()> {
        let mut q = self.conn.prepare_cached(
            "SELECT recipient, source, COUNT(*), SUM(size) FROM messages WHERE client = ?1 GROUP BY recipient, source",
        )?;
        let rows: Vec<(String, String, i64, i64)> = q
            .query_map(params![client], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        drop(q);
        self.conn.execute("DELETE FROM messages WHERE client = ?1", params![client])?;
        self.conn.execute("DELETE FROM recipients WHERE client = ?1", params![client])?;
        self.conn.execute("DELETE FROM mediations WHERE client = ?1", params![client])?;
        for (recipient, source, n, bytes) in rows {
            self.state.remove(&Slot { recipient: &recipient, client, source: &source }, n as u64, bytes as u64);
        }
        self.state.forget_client(client);
        tracing::info!(%client, "mediation grant expired");
        Ok(())
    }

    pub(super) fn rotate(&mut self, old: &str, new: &str) -> Result<bool> {
        if !self.state.grants.contains_key(old) || self.state.grants.contains_key(new) {
            return Ok(false);
        }
        self.conn.execute("UPDATE mediations SET client = ?2 WHERE client = ?1", params![old, new])?;
        self.conn.execute("UPDATE recipients SET client = ?2 WHERE client = ?1", params![old, new])?;
        self.conn.execute("UPDATE messages SET client = ?2 WHERE client = ?1", params![old, new])?;
        self.conn.execute("UPDATE oob SET client = ?2 WHERE client = ?1", params![old, new])?;
        self.state.rotate(old, new);
        Ok(true)
    }

    pub(super) fn update(&mut self, client: &str, recipient: &str, add: bool, max: u64) -> Result<UpdateResult> {
        let owner = self.state.owners.get(recipient).cloned();
        Ok(match (add, owner.as_deref()) {
            (true, Some(o)) if o == client => UpdateResult::NoChange,
            (true, Some(_)) => UpdateResult::ClientError,
            (true, None) => {
                let n = self.state.per_client.entry(client.to_owned()).or_default();
                if *n >= max {
                    return Ok(UpdateResult::LimitReached);
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

    pub(super) fn put_oob(&mut self, link: &NewLink, max: u64) -> Result<bool> {
        let held: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM oob WHERE client = ?1 AND expires_at > ?2",
            params![link.client, link.now as i64],
            |r| r.get(0),
        )?;
        if held as u64 >= max {
            return Ok(false);
        }
        self.conn.execute(
            "INSERT OR REPLACE INTO oob (id, invitation, expires_at, client) VALUES (?1, ?2, ?3, ?4)",
            params![link.id, link.invitation, link.expires_at as i64, link.client],
        )?;
        Ok(true)
    }
}
