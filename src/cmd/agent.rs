//! `didmpc init`, `didmpc send`, `didmpc inbox`: the party as a DIDComm messenger.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use gateway::{Agent, Incoming};
use serde_json::json;

use crate::home;

pub(super) async fn init(home_flag: Option<&Path>, mediator: &str, identity: Option<&str>) -> Result<()> {
    let home = home::dir(home_flag)?;
    let identity = identity.map(did_core::Did::parse).transpose().context("--as must be a DID")?;
    let agent = Agent::init_as(&home, mediator, identity.as_ref())
        .await
        .with_context(|| format!("setting up mediation with {mediator}"))?;
    eprintln!("mediator: {}", agent.file.mediator.did.fmt_short());
    if let Some(routed) = &agent.file.routed {
        eprintln!("routed alias (a DID that carries the route, for peers you never messaged): {routed}");
    }
    eprintln!("your identity (share it; invitations reach you through this mediator):");
    println!("{}", agent.file.party);
    Ok(())
}

pub(super) async fn send(home_flag: Option<&Path>, to: &str, text: &str) -> Result<()> {
    let agent = Agent::load(&home::dir(home_flag)?)?;
    let target = agent.send_text(to, text).await.with_context(|| format!("sending to {to}"))?;
    eprintln!("sent via {}", target.uri);
    Ok(())
}

pub(super) async fn inbox(home_flag: Option<&Path>, follow: bool, as_json: bool) -> Result<()> {
    let agent = Agent::load(&home::dir(home_flag)?)?;
    // A person reading their own messages: senders' documents may be fetched (with the
    // resolver's own limits: no private addresses, no redirects, short timeouts).
    agent.expect_anyone();
    let print = move |inc: Incoming| -> gateway::Result<()> {
        let line = render(&inc, as_json);
        let mut out = std::io::stdout().lock();
        // Only acknowledge what really reached stdout.
        writeln!(out, "{line}").and_then(|_| out.flush()).map_err(gateway::Error::Io)
    };
    if follow {
        eprintln!("following the inbox of {} (Ctrl-C to stop)", agent.file.party.fmt_short());
        agent
            .follow(print, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
    } else {
        let n = agent.fetch(print).await?;
        eprintln!("{n} message(s)");
    }
    Ok(())
}

fn render(inc: &Incoming, as_json: bool) -> String {
    match (&inc.result, as_json) {
        (Ok((m, meta)), true) => json!({"id": inc.id, "message": m.to_value(), "metadata": meta}).to_string(),
        (Err(e), true) => json!({"id": inc.id, "error": e.to_string()}).to_string(),
        (Ok((m, meta)), false) => {
            let from = meta.sender.as_deref().unwrap_or("(anonymous)");
            match m.body.get("content").and_then(|c| c.as_str()) {
                Some(text) if m.type_ == gateway::agent::BASIC_MESSAGE => format!("{from}: {text}"),
                _ => format!("{from}: [{}] {}", m.type_, m.body),
            }
        }
        (Err(e), false) => format!("(unreadable message {}: {e})", inc.id),
    }
}
