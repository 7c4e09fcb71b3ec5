//! `[limits]` and `[relay]`: the quotas that keep one party from hurting the others, and
//! the session relay's memory bounds.

use serde::Deserialize;

use crate::error::{Error, Result};

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

    pub(super) fn validate(&self) -> Result<()> {
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
