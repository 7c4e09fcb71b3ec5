//! Counters exported at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use relay::server::{Disconnect, DropReason, Stats};
use relay::JoinStatus;

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
    /// Reflexive-address probes answered.
    pub reflex_answered: AtomicU64,
    /// Probes dropped: not a probe, wrong length or version.
    pub reflex_malformed: AtomicU64,
    /// Probes dropped: the key expired.
    pub reflex_expired: AtomicU64,
    /// Probes dropped: the MAC did not verify.
    pub reflex_bad_mac: AtomicU64,
    /// Probes dropped: the key's rate was spent.
    pub reflex_rate_limited: AtomicU64,
    /// Probe keys granted.
    pub reflex_grants: AtomicU64,
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
            ("didmpc_mediator_reflex_grants_total", &self.reflex_grants, "Reflexive-address probe keys granted"),
            (
                "didmpc_mediator_reflex_probes_total{outcome=\"answered\"}",
                &self.reflex_answered,
                "Reflexive-address probes by outcome",
            ),
            ("didmpc_mediator_reflex_probes_total{outcome=\"malformed\"}", &self.reflex_malformed, ""),
            ("didmpc_mediator_reflex_probes_total{outcome=\"expired\"}", &self.reflex_expired, ""),
            ("didmpc_mediator_reflex_probes_total{outcome=\"bad_mac\"}", &self.reflex_bad_mac, ""),
            ("didmpc_mediator_reflex_probes_total{outcome=\"rate_limited\"}", &self.reflex_rate_limited, ""),
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

/// The relay's counters and gauges in the Prometheus text format.
pub fn render_relay(s: &Stats, out: &mut String) {
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP didmpc_mediator_relay_{name} {help}\n# TYPE didmpc_mediator_relay_{name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "didmpc_mediator_relay_{name}{labels} {v}");
        }
    };
    let one = |v: u64| [(String::new(), v)];
    let by = |label: &str, names: &mut dyn Iterator<Item = &'static str>, values: &[u64]| -> Vec<(String, u64)> {
        names.zip(values).map(|(n, v)| (format!("{{{label}=\"{n}\"}}"), *v)).collect()
    };
    family("forwarded_total", "counter", "Frames passed to the other member of their route", &one(s.forwarded));
    let drops = by("reason", &mut DropReason::ALL.iter().map(|r| r.as_str()), &s.dropped_by);
    family("dropped_total", "counter", "Frames dropped, by reason (the sessions retransmit)", &drops);
    let joins = by("status", &mut JoinStatus::ALL.iter().map(|j| j.as_str()), &s.joins);
    family("joins_total", "counter", "JOINs answered, by status (ok, or why refused)", &joins);
    family("displaced_total", "counter", "Members whose slot another valid JOIN took", &one(s.displaced));
    let cuts = by("reason", &mut Disconnect::ALL.iter().map(|d| d.as_str()), &s.disconnects);
    family("disconnects_total", "counter", "Relay connections the relay cut, by reason", &cuts);
    family("held_bytes", "gauge", "Bytes held for absent route members", &one(s.held_bytes));
    family("queued_bytes", "gauge", "Bytes queued towards relay connections", &one(s.queued_bytes));
    family("connections", "gauge", "Open relay connections", &one(s.connections));
    family("links", "gauge", "Open links to other instances of the cluster", &one(s.links));
    family("routes", "gauge", "Routes with a member or held frames", &one(s.routes));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_metrics_name_every_reason() {
        let mut s = Stats::default();
        s.dropped_by[DropReason::HeldClient as usize] = 3;
        s.joins[JoinStatus::BadAuth as usize] = 2;
        s.disconnects[Disconnect::Stalled as usize] = 1;
        s.held_bytes = 4096;
        let mut out = String::new();
        render_relay(&s, &mut out);
        for line in [
            "didmpc_mediator_relay_dropped_total{reason=\"held_client\"} 3",
            "didmpc_mediator_relay_dropped_total{reason=\"congested\"} 0",
            "didmpc_mediator_relay_joins_total{status=\"bad_auth\"} 2",
            "didmpc_mediator_relay_disconnects_total{reason=\"stalled\"} 1",
            "didmpc_mediator_relay_held_bytes 4096",
            "# TYPE didmpc_mediator_relay_held_bytes gauge",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} missing in\n{out}");
        }
    }
}
