//! The durable store behind a trait, so a networked engine can replace SQLite.

mod sqlite;

use async_trait::async_trait;

pub use sqlite::SqliteStore;

use crate::error::Result;

/// Outcome of a keylist/recipient update, as Coordinate Mediation reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateResult {
    /// Applied.
    Success,
    /// Nothing to do (already present / absent).
    NoChange,
    /// Refused: the DID belongs to another client, or is malformed.
    ClientError,
    /// Refused: the client has as many recipient DIDs as it may.
    LimitReached,
}

impl UpdateResult {
    /// The protocol's string.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateResult::Success => "success",
            UpdateResult::NoChange => "no_change",
            UpdateResult::ClientError | UpdateResult::LimitReached => "client_error",
        }
    }
}

/// A message to queue for a recipient DID.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The recipient DID (`next` of the forward).
    pub recipient: String,
    /// The envelope, as received.
    pub body: Vec<u8>,
    /// Arrival time (Unix seconds).
    pub received_at: u64,
    /// Expiry (Unix seconds).
    pub expires_at: u64,
    /// Who sent it, as far as the mediator can tell (the source address bucket, see
    /// [`source_bucket`]); "" when unknown. Per-source quotas are counted by it.
    pub source: String,
}

/// The quota bucket of a source address: an IPv4 address, or the /64 of an IPv6 address
/// (one host usually has a whole /64 to pick addresses from).
pub fn source_bucket(ip: Option<std::net::IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        None => String::new(),
        Some(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

/// Where a queued message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    /// Opaque message id (used in pickup attachments and `messages-received`).
    pub id: String,
    /// The client (mediation holder) that owns the recipient DID.
    pub client: String,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No client registered the recipient DID.
    UnknownRecipient,
    /// The recipient's queue is at its message-count limit.
    QueueFullMessages,
    /// The recipient's queue is at its byte limit.
    QueueFullBytes,
    /// The owning client's queues together are at their byte limit.
    ClientQueueBytes,
    /// The store as a whole is at its byte limit.
    TotalQueueBytes,
    /// This source has as much queued for this recipient as one source may.
    SourceBudget,
}

/// A queued message as handed out by pickup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Opaque id.
    pub id: String,
    /// Recipient DID.
    pub recipient: String,
    /// The envelope.
    pub body: Vec<u8>,
}

/// Queue statistics for a client (optionally one of its recipient DIDs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStatus {
    /// Messages waiting.
    pub message_count: u64,
    /// Their total size.
    pub total_bytes: u64,
    /// Oldest arrival (Unix seconds).
    pub oldest_received_time: Option<u64>,
    /// Newest arrival (Unix seconds).
    pub newest_received_time: Option<u64>,
}

/// Queue limits checked on every enqueue (see [`crate::config::Limits`]).
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Most messages per recipient.
    pub max_messages: u64,
    /// Most bytes per recipient.
    pub max_bytes: u64,
    /// Most bytes per owning client (all its recipients).
    pub max_client_bytes: u64,
    /// Most bytes in the store.
    pub max_total_bytes: u64,
    /// Most messages one source may have queued for one recipient.
    pub max_source_messages: u64,
    /// Most bytes one source may have queued for one recipient.
    pub max_source_bytes: u64,
    /// Grant lifetime since last use, seconds (0: forever): a forward for a client whose grant
    /// has expired finds no recipient.
    pub grant_ttl: u64,
}

impl QueueLimits {
    /// Per-recipient limits only (the others unbounded, grants forever): for tests.
    pub const fn per_recipient(max_messages: u64, max_bytes: u64) -> QueueLimits {
        QueueLimits {
            max_messages,
            max_bytes,
            max_client_bytes: u64::MAX,
            max_total_bytes: u64::MAX,
            max_source_messages: u64::MAX,
            max_source_bytes: u64::MAX,
            grant_ttl: 0,
        }
    }
}

/// Where a client's mediation grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// It never had one (or it was removed long ago).
    None,
    /// Granted and now refreshed.
    Active,
    /// It had one, unused for longer than the grant TTL: now removed with its recipients and queue.
    Expired,
}

/// An Out-of-Band short link to store.
#[derive(Debug, Clone)]
pub struct NewLink {
    /// The client creating it.
    pub client: String,
    /// Its short id.
    pub id: String,
    /// The invitation (JSON text).
    pub invitation: String,
    /// Now (Unix seconds).
    pub now: u64,
    /// Expiry (Unix seconds).
    pub expires_at: u64,
}

/// A relay route's reservation.
#[derive(Clone)]
pub struct RouteReservation {
    /// The client (mediation holder) that reserved it.
    pub client: String,
    /// The route key it registered (32 bytes; slot secrets derive from it).
    pub key: zeroize::Zeroizing<Vec<u8>>,
    /// When the reservation ends (Unix seconds).
    pub expires_at: u64,
}

impl std::fmt::Debug for RouteReservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteReservation").field("client", &self.client).field("expires_at", &self.expires_at).finish()
    }
}

/// The mediator's durable state: mediations, recipient DIDs, queued messages, short links.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records a mediation grant for `client` (idempotent).
    async fn grant(&self, client: &str, now: u64) -> Result<()>;
    /// Whether `client` holds a mediation grant.
    async fn is_granted(&self, client: &str) -> Result<bool>;
    /// Marks `client`'s grant as used now; a grant unused for `ttl` seconds (0: never expires)
    /// is removed instead, with its recipient DIDs and queued messages.
    async fn touch_grant(&self, client: &str, now: u64, ttl: u64) -> Result<GrantState>;
    /// Removes every grant unused for `ttl` seconds (0: none), with its recipient DIDs and queued
    /// messages; returns how many.
    async fn expire_grants(&self, now: u64, ttl: u64) -> Result<u64>;
    /// Moves a grant and everything it owns from `old` to `new` (DID rotation).
    async fn rotate_client(&self, old: &str, new: &str) -> Result<bool>;
    /// Adds or removes a recipient DID of `client`.
    async fn update_recipient(
        &self,
        client: &str,
        recipient: &str,
        add: bool,
        max_per_client: u64,
    ) -> Result<UpdateResult>;
    /// A page of `client`'s recipient DIDs and how many there are in all.
    async fn recipients(&self, client: &str, offset: u64, limit: u64) -> Result<(Vec<String>, u64)>;
    /// Durably queues a message; `Ok(Err(_))` when it is refused.
    async fn enqueue(&self, msg: NewMessage, limits: QueueLimits) -> Result<std::result::Result<Enqueued, Refused>>;
    /// Queue statistics, excluding expired messages.
    async fn status(&self, client: &str, recipient: Option<&str>, now: u64) -> Result<QueueStatus>;
    /// Up to `limit` unexpired messages, oldest first, stopping before the one that would pass
    /// `max_bytes` (the first is always returned).
    async fn fetch(
        &self,
        client: &str,
        recipient: Option<&str>,
        limit: usize,
        max_bytes: usize,
        now: u64,
    ) -> Result<Vec<Queued>>;
    /// Deletes acknowledged messages of `client`; returns how many were deleted.
    async fn ack(&self, client: &str, ids: &[String]) -> Result<u64>;
    /// Deletes expired messages; returns how many.
    async fn purge_expired(&self, now: u64) -> Result<u64>;
    /// Stores an Out-of-Band invitation under a short id; false (nothing stored) when the
    /// client already holds `max_per_client` unexpired links.
    async fn put_oob(&self, link: NewLink, max_per_client: u64) -> Result<bool>;
    /// A stored, unexpired invitation.
    async fn get_oob(&self, id: &str, now: u64) -> Result<Option<String>>;
    /// Reserves a relay route for `client` with route key `key` until `expires_at`
    /// (renewing its own reservation, key included); false when another client holds it
    /// or `client` has `max` routes.
    async fn reserve_route(&self, route: &[u8], client: &str, key: &[u8], expires_at: u64, max: u64) -> Result<bool>;
    /// The unexpired reservation of a route.
    async fn route_reservation(&self, route: &[u8], now: u64) -> Result<Option<RouteReservation>>;
}
