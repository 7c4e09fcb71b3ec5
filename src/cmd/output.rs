//! Output of the long-running commands (`invite`, `join`): the program's output on stdout,
//! didmpc's own lines on stderr; with `--json`, stdout carries only JSON event lines (the
//! program's output among them as `output` events). The QR code is drawn only on a
//! terminal.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use did_core::Did;
use gateway::descriptor::Descriptor;
use gateway::invite::{Invitation, Progress};
use gateway::run::Report;
use gateway::runner::Sink;
use serde_json::{json, Value};

/// Where a command's output goes.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    json: bool,
    tty: bool,
}

impl Out {
    /// Output for a command run with `--json` or not.
    pub(crate) fn new(json: bool) -> Out {
        Out { json, tty: std::io::stderr().is_terminal() }
    }

    /// One JSON event line on stdout (with `--json` only).
    pub(crate) fn event(&self, kind: &str, mut fields: Value) {
        if !self.json {
            return;
        }
        if let Value::Object(m) = &mut fields {
            m.insert("event".into(), kind.into());
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{fields}").and_then(|()| out.flush());
    }

    /// Where the program's output lines go.
    pub(crate) fn sink(&self) -> Sink {
        let me = *self;
        Arc::new(move |line: &str| {
            if me.json {
                me.event("output", json!({ "line": line }));
            } else {
                println!("{line}");
            }
        })
    }

    /// The published invitation: the link (and a QR code on a terminal).
    pub(crate) fn invitation(&self, inv: &Invitation) {
        let d = &inv.signed.descriptor;
        let link = inv.short_url.as_deref().unwrap_or(&inv.url);
        eprintln!("session {} · {} · {} parties", d.id, d.program.name, d.roster.len());
        if self.tty && !self.json {
            match qrcode::QrCode::new(link.as_bytes()) {
                Ok(code) => {
                    eprintln!("{}", code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build())
                }
                Err(_) => eprintln!("(the invitation is too long for a QR code; share the link)"),
            }
        }
        eprintln!("invitation link (share it; invitees run `didmpc join <link>`):");
        eprintln!("{link}");
        self.event("invitation", json!({ "session": d.id, "url": inv.url, "short_url": inv.short_url }));
    }

    /// A progress line of the host.
    pub(crate) fn progress(&self, p: &Progress) {
        match p {
            Progress::Reached { did, via } => {
                eprintln!("  reached  {} (via {via})", short(did));
                self.event("reached", json!({ "did": did, "via": via }));
            }
            Progress::Unreachable { did, why } => {
                eprintln!("  not reached {}: {why}", short(did));
                self.event("unreachable", json!({ "did": did, "why": why }));
            }
            Progress::Joined { did, pid, identity } => {
                match identity {
                    Some(id) => eprintln!("  joined   {} as pid {pid}, verified {id}", short(did)),
                    None => eprintln!("  joined   {} as pid {pid}", short(did)),
                }
                self.event("joined", json!({ "did": did, "pid": pid, "identity": identity }));
            }
            Progress::Refused { did, pid, code, why } => {
                let at = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
                eprintln!("  REFUSED  {}{at} {code}: {why}", short(did));
                self.event("refused", json!({ "did": did, "pid": pid, "code": code, "why": why }));
            }
            Progress::Ready => {
                eprintln!("  everyone joined; waiting for your go (Start in the page)");
                self.event("ready", json!({}));
            }
            Progress::Waiting { missing } => {
                let names: Vec<String> = missing.iter().map(|d| short(d)).collect();
                eprintln!("  waiting for {}: {}", names.len(), names.join(", "));
                self.event("waiting", json!({ "missing": missing }));
            }
        }
    }

    /// A session as the joiner sees it before it decides.
    pub(crate) fn session(&self, d: &Descriptor, pid: usize) {
        for line in d.summary(Some(pid)) {
            eprintln!("{line}");
        }
        let t = d.mpyc.threshold_for(d.roster.len());
        self.event(
            "session",
            json!({
                "session": d.id, "host": d.host, "roster": d.roster, "pid": pid, "program": d.program.name,
                "sha256": d.program.sha256, "args": d.program.args, "threshold": t, "ssl": d.mpyc.ssl,
            }),
        );
    }

    /// How the run went.
    pub(crate) fn report(&self, r: &Report) {
        eprintln!(
            "done: pid {} · sessions up in {:.0} ms · MPyC started after {:.0} ms · total {:.2} s",
            r.pid,
            r.mesh.as_secs_f64() * 1000.0,
            r.to_launch.as_secs_f64() * 1000.0,
            r.total.as_secs_f64()
        );
        self.event(
            "done",
            json!({ "pid": r.pid, "mesh_ms": r.mesh.as_millis() as u64, "total_s": r.total.as_secs_f64() }),
        );
    }

    /// A failure, as an event (the message itself goes to stderr from `main`).
    pub(crate) fn failed(&self, e: &anyhow::Error) {
        self.event("error", json!({ "error": format!("{e:#}") }));
    }
}

/// The short form of a DID for people (`did:key:z6Mk…ab12`).
pub(crate) fn short(did: &str) -> String {
    Did::parse(did).map(|d| d.fmt_short()).unwrap_or_else(|_| did.to_owned())
}
