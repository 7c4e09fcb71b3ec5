//! Command implementations: each turns parsed arguments into library calls and output.

mod agent;
mod credential;
mod demo;
mod did;
mod mediator;
mod message;
mod mpc;
mod output;
mod page;
mod proof;
mod status;

use std::io::Read;

use anyhow::{Context, Result};

use crate::cli::{Cli, Command};

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    if let Some(v) = &cli.resolve_private {
        let reach = did_core::Reach::parse(v).context("--resolve-private")?;
        did_core::ResolverPolicy::set_process_default(Some(did_core::ResolverPolicy::with_reach(reach)));
    }
    let home = cli.home.as_deref();
    match cli.command {
        Command::Did(c) => did::run(home, c).await,
        Command::Message(c) => message::run(home, c).await,
        Command::Mediator(c) => mediator::run(home, c).await,
        Command::Init { mediator, identity } => agent::init(home, &mediator, identity.as_deref()).await,
        Command::Send { to, text } => agent::send(home, &to, &text).await,
        Command::Inbox { follow, json } => agent::inbox(home, follow, json).await,
        Command::Invite(a) => mpc::invite(home, a).await,
        Command::Join(a) => mpc::join(home, a).await,
        Command::Sessions => mpc::sessions(home).await,
        Command::Status { json } => status::status(home, json),
        Command::Proof(c) => proof::run(home, c).await,
        Command::Credential(c) => credential::run(home, c).await,
        Command::Demo(a) => demo::run(a).await,
    }
}

/// Reads all of stdin (bounded), for commands that take JSON input.
fn read_stdin(limit: usize) -> Result<String> {
    let mut buf = String::new();
    std::io::stdin().take(limit as u64 + 1).read_to_string(&mut buf).context("reading stdin (expected UTF-8 JSON)")?;
    anyhow::ensure!(buf.len() <= limit, "input on stdin is larger than {limit} bytes");
    anyhow::ensure!(!buf.trim().is_empty(), "expected JSON on stdin, got nothing");
    Ok(buf)
}

/// The resolver used by commands: did:key, did:peer, did:pkh and did:web over HTTPS.
fn resolver() -> Result<did_core::Resolver> {
    did_core::Resolver::with_http().context("building the DID resolver")
}

/// Prints pretty JSON on stdout.
fn print_json(v: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}
