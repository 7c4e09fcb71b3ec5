//! What the store keeps in memory next to SQLite: grants with their last use, the recipient →
//! client map, and queue usage per recipient, per client, per (recipient, source) and in all,
//! so every quota is checked without a query. Rebuilt from the database at start.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::error::Result;
use crate::store::{QueueLimits, Refused};

/// A grant's last use, and the last use written to the database.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grant {
    pub(super) last_used: u64,
    pub(super) persisted: u64,
}

/// Messages and bytes queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Usage {
    pub(super) messages: u64,
    pub(super) bytes: u64,
}

/// One queued message's place in the counters.
pub(super) struct Slot<'a> {
    pub(super) recipient: &'a str,
    pub(super) client: &'a str,
    pub(super) source: &'a str,
}

#[derive(Default)]
pub(super) struct State {
    pub(super) grants: HashMap<String, Grant>,
    pub(super) owners: HashMap<String, String>,
    pub(super) per_client: HashMap<String, u64>,
    queues: HashMap<String, Usage>,
    client_bytes: HashMap<String, u64>,
    sources: HashMap<(String, String), Usage>,
    total_bytes: u64,
}

impl State {
    pub(super) fn load(conn: &Connection) -> Result<State> {
        let mut s = State::default();
        let mut q = conn.prepare("SELECT client, last_used FROM mediations")?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
            let (c, used) = row?;
            s.grants.insert(c, Grant { last_used: used as u64, persisted: used as u64 });
        }
        let mut q = conn.prepare("SELECT recipient, client FROM recipients")?;
        for row in q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
            let (r, c) = row?;
            *s.per_client.entry(c.clone()).or_default() += 1;
            s.owners.insert(r, c);
        }
        let mut q = conn.prepare(
            "SELECT recipient, client, source, COUNT(*), SUM(size) FROM messages GROUP BY recipient, client, source",
        )?;
        let rows = q.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        for row in rows {
            let (recipient, client, source, n, b) = row?;
            let slot = Slot { recipient: &recipient, client: &client, source: &source };
            s.add(&slot, n as u64, b as u64);
        }
        Ok(s)
    }

    /// Whether `client`'s grant has gone unused for `ttl` seconds (0: grants never expire).
    pub(super) fn grant_expired(&self, client: &str, now: u64, ttl: u64) -> bool {
        ttl > 0 && self.grants.get(client).is_some_and(|g| g.last_used.saturating_add(ttl) <= now)
    }

    /// Which quota, if any, a new message of `size` bytes in `slot` would break.
    pub(super) fn check(&self, slot: &Slot<'_>, size: u64, l: &QueueLimits) -> std::result::Result<(), Refused> {
        let source =
            self.sources.get(&(slot.recipient.to_owned(), slot.source.to_owned())).copied().unwrap_or_default();
        if source.messages >= l.max_source_messages || source.bytes + size > l.max_source_bytes {
            return Err(Refused::SourceBudget);
        }
        let queue = self.queues.get(slot.recipient).copied().unwrap_or_default();
        if queue.messages >= l.max_messages {
            return Err(Refused::QueueFullMessages);
        }
        if queue.bytes + size > l.max_bytes {
            return Err(Refused::QueueFullBytes);
        }
        if self.client_bytes.get(slot.client).copied().unwrap_or(0) + size > l.max_client_bytes {
            return Err(Refused::ClientQueueBytes);
        }
        if self.total_bytes + size > l.max_total_bytes {
            return Err(Refused::TotalQueueBytes);
        }
        Ok(())
    }

    /// Counts `messages` messages of `bytes` bytes in `slot`.
    pub(super) fn add(&mut self, slot: &Slot<'_>, messages: u64, bytes: u64) {
        let q = self.queues.entry(slot.recipient.to_owned()).or_default();
        q.messages += messages;
        q.bytes += bytes;
        let s = self.sources.entry((slot.recipient.to_owned(), slot.source.to_owned())).or_default();
        s.messages += messages;
        s.bytes += bytes;
        *self.client_bytes.entry(slot.client.to_owned()).or_default() += bytes;
        self.total_bytes += bytes;
    }

    /// Uncounts `messages` messages of `bytes` bytes from `slot` (deleted or expired).
    pub(super) fn remove(&mut self, slot: &Slot<'_>, messages: u64, bytes: u64) {
        let shrink = |u: &mut Usage| {
            u.messages = u.messages.saturating_sub(messages);
            u.bytes = u.bytes.saturating_sub(bytes);
            u.messages == 0
        };
        if self.queues.get_mut(slot.recipient).is_some_and(shrink) {
            self.queues.remove(slot.recipient);
        }
        let key = (slot.recipient.to_owned(), slot.source.to_owned());
        if self.sources.get_mut(&key).is_some_and(shrink) {
            self.sources.remove(&key);
        }
        if let Some(b) = self.client_bytes.get_mut(slot.client) {
            *b = b.saturating_sub(bytes);
            if *b == 0 {
                self.client_bytes.remove(slot.client);
            }
        }
        self.total_bytes = self.total_bytes.saturating_sub(bytes);
    }

    /// Moves everything `old` owns to `new` (DID rotation; the caller checked `new` is free).
    pub(super) fn rotate(&mut self, old: &str, new: &str) {
        if let Some(mut g) = self.grants.remove(old) {
            g.persisted = g.last_used;
            self.grants.insert(new.to_owned(), g);
        }
        for owner in self.owners.values_mut().filter(|o| *o == old) {
            *owner = new.to_owned();
        }
        if let Some(n) = self.per_client.remove(old) {
            self.per_client.insert(new.to_owned(), n);
        }
        if let Some(b) = self.client_bytes.remove(old) {
            self.client_bytes.insert(new.to_owned(), b);
        }
    }

    /// Forgets `client`'s grant and recipients (its messages are uncounted by the caller).
    pub(super) fn forget_client(&mut self, client: &str) {
        self.grants.remove(client);
        self.per_client.remove(client);
        self.owners.retain(|_, c| c != client);
    }
}
