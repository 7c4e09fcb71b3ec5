//! Refusals by reason (for `/metrics`) and the global memory budget for the buffers the
//! mediator holds: request bodies, messages being handled, deliveries being built and sent,
//! live deliveries waiting for a slow WebSocket.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// Why the mediator said no. Each is counted at `/metrics` as
/// `didmpc_mediator_refused_total{reason="…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A client's grant went unused past `grant_ttl_secs` and was removed.
    GrantExpired,
    /// A client has `max_recipients_per_client` recipient DIDs.
    Recipients,
    /// A recipient's queue holds `max_queue_messages`.
    QueueMessages,
    /// A recipient's queue holds `max_queue_bytes`.
    QueueBytes,
    /// A client's queues hold `max_client_queue_bytes`.
    ClientQueueBytes,
    /// The store holds `max_total_queue_bytes`.
    TotalQueueBytes,
    /// One source has queued its share for one recipient.
    SourceBudget,
    /// A client holds `max_links_per_client` short links.
    Links,
    /// The memory budget is spent.
    Memory,
    /// A message named a did:web the mediator does not fetch for strangers.
    DidWebUnknown,
    /// The mediator is at `max_connections`.
    Connections,
    /// An address is at `max_connections_per_ip`.
    ConnectionsPerIp,
    /// An address is over its request rate.
    Rate,
}

impl Refusal {
    /// Every reason, in `/metrics` order.
    pub const ALL: [Refusal; 13] = [
        Refusal::GrantExpired,
        Refusal::Recipients,
        Refusal::QueueMessages,
        Refusal::QueueBytes,
        Refusal::ClientQueueBytes,
        Refusal::TotalQueueBytes,
        Refusal::SourceBudget,
        Refusal::Links,
        Refusal::Memory,
        Refusal::DidWebUnknown,
        Refusal::Connections,
        Refusal::ConnectionsPerIp,
        Refusal::Rate,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::GrantExpired => "grant_expired",
            Refusal::Recipients => "recipients",
            Refusal::QueueMessages => "queue_messages",
            Refusal::QueueBytes => "queue_bytes",
            Refusal::ClientQueueBytes => "client_queue_bytes",
            Refusal::TotalQueueBytes => "total_queue_bytes",
            Refusal::SourceBudget => "source_budget",
            Refusal::Links => "links",
            Refusal::Memory => "memory",
            Refusal::DidWebUnknown => "did_web_unknown",
            Refusal::Connections => "connections",
            Refusal::ConnectionsPerIp => "connections_per_ip",
            Refusal::Rate => "rate",
        }
    }
}

/// Counters of refusals by reason.
#[derive(Default)]
pub struct Refusals([AtomicU64; Refusal::ALL.len()]);

impl Refusals {
    /// Counts one refusal.
    pub fn inc(&self, r: Refusal) {
        self.0[r as usize].fetch_add(1, Relaxed);
    }

    /// Counts `n` refusals.
    pub fn add(&self, r: Refusal, n: u64) {
        self.0[r as usize].fetch_add(n, Relaxed);
    }

    /// How many refusals for `r`.
    pub fn get(&self, r: Refusal) -> u64 {
        self.0[r as usize].load(Relaxed)
    }

    /// Appends the Prometheus family.
    pub fn render(&self, out: &mut String) {
        let name = "didmpc_mediator_refused_total";
        let _ = writeln!(out, "# HELP {name} Requests, messages and connections refused, by reason");
        let _ = writeln!(out, "# TYPE {name} counter");
        for r in Refusal::ALL {
            let _ = writeln!(out, "{name}{{reason=\"{}\"}} {}", r.label(), self.get(r));
        }
    }
}

/// A byte budget shared by everything that buffers on behalf of others.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget { limit, used: AtomicUsize::new(0) })
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Reserves `bytes`, or `None` when that would pass the limit.
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Option<Reservation> {
        let mut r = Reservation { budget: self.clone(), bytes: 0 };
        r.try_grow(bytes).then_some(r)
    }

    fn take(&self, bytes: usize) -> bool {
        self.used.fetch_update(Relaxed, Relaxed, |u| u.checked_add(bytes).filter(|t| *t <= self.limit)).is_ok()
    }
}

/// Bytes held against a [`MemoryBudget`], given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: usize,
}

impl Reservation {
    /// Reserves `more` bytes on top; false (and nothing reserved) when over the limit.
    pub fn try_grow(&mut self, more: usize) -> bool {
        let ok = self.budget.take(more);
        if ok {
            self.bytes += more;
        }
        ok
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Relaxed);
    }
}

/// A reservation travelling with an answer until it is written (none for most answers).
#[derive(Debug, Default, Clone)]
pub struct Held(pub Option<Arc<Reservation>>);

impl PartialEq for Held {
    /// Answers compare by content; what they hold does not matter.
    fn eq(&self, _: &Held) -> bool {
        true
    }
}

impl Eq for Held {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_shared_and_returned() {
        let b = MemoryBudget::new(100);
        let mut a = b.try_reserve(60).unwrap();
        assert!(b.try_reserve(50).is_none());
        assert!(!a.try_grow(41));
        assert!(a.try_grow(40));
        assert_eq!((b.used(), a.bytes()), (100, 100));
        assert!(b.try_reserve(1).is_none());
        drop(a);
        assert_eq!(b.used(), 0);
        let c = b.try_reserve(100).unwrap();
        let held = Held(Some(Arc::new(c)));
        let copy = held.clone();
        drop(held);
        assert_eq!(b.used(), 100, "held until the last copy is dropped");
        drop(copy);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn refusals_render_every_reason() {
        let r = Refusals::default();
        r.inc(Refusal::SourceBudget);
        r.inc(Refusal::SourceBudget);
        let mut out = String::new();
        r.render(&mut out);
        assert!(out.contains("didmpc_mediator_refused_total{reason=\"source_budget\"} 2\n"), "{out}");
        assert_eq!(out.matches("didmpc_mediator_refused_total{").count(), Refusal::ALL.len());
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "ALL is in declaration order");
        }
    }
}
