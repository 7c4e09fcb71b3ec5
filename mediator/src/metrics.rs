//! Counters exported at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// The mediator's counters and gauges.
#[derive(Default)]
pub struct Metrics {
    /// DIDComm messages received, by transport.
    pub received_http: AtomicU64,
    /// DIDComm messages received over WebSocket.
    pub received_ws: AtomicU64,
    /// Forwards queued.
    pub forwards_queued: AtomicU64,
    /// Forwards refused (unknown recipient, full queue, expired).
    pub forwards_refused: AtomicU64,
    /// Messages handed out by pickup deliveries.
    pub delivered: AtomicU64,
    /// Messages pushed live.
    pub delivered_live: AtomicU64,
    /// Messages deleted after `messages-received`.
    pub acked: AtomicU64,
    /// Problem reports sent.
    pub problems: AtomicU64,
    /// Requests refused by the rate or connection limits.
    pub throttled: AtomicU64,
    /// Open WebSocket connections.
    pub ws_open: AtomicI64,
    /// Messages expired and purged.
    pub expired: AtomicU64,
    /// Refusals by reason (shared with the connection tracker).
    pub refused: std::sync::Arc<crate::quota::Refusals>,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = [
            ("didmpc_mediator_received_total{transport=\"http\"}", &self.received_http, "DIDComm messages received"),
            ("didmpc_mediator_received_total{transport=\"ws\"}", &self.received_ws, ""),
            ("didmpc_mediator_forwards_queued_total", &self.forwards_queued, "Forwarded messages queued"),
            ("didmpc_mediator_forwards_refused_total", &self.forwards_refused, "Forwards refused"),
            ("didmpc_mediator_delivered_total", &self.delivered, "Messages delivered by pickup"),
            ("didmpc_mediator_delivered_live_total", &self.delivered_live, "Messages pushed live"),
            ("didmpc_mediator_acked_total", &self.acked, "Messages deleted after messages-received"),
            ("didmpc_mediator_problem_reports_total", &self.problems, "Problem reports sent"),
            ("didmpc_mediator_throttled_total", &self.throttled, "Requests refused by limits"),
            ("didmpc_mediator_expired_total", &self.expired, "Queued messages expired"),
        ];
        for (name, c, help) in counters {
            let base = name.split('{').next().unwrap_or(name);
            if !help.is_empty() {
                let _ = writeln!(out, "# HELP {base} {help}\n# TYPE {base} counter");
            }
            let _ = writeln!(out, "{name} {}", c.load(Relaxed));
        }
        let _ = writeln!(out, "# HELP didmpc_mediator_ws_connections Open WebSocket connections\n# TYPE didmpc_mediator_ws_connections gauge");
        let _ = writeln!(out, "didmpc_mediator_ws_connections {}", self.ws_open.load(Relaxed));
        self.refused.render(&mut out);
        out
    }
}
