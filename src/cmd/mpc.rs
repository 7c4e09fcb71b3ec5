//! `didmpc invite`, `join`, `sessions`, `status`: MPC sessions between DIDs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use did_core::Did;
use gateway::descriptor::{Descriptor, MpcOptions, Signed};
use gateway::flow::{self, Local};
use gateway::invite::{Invitation, NewSession, Progress};
use gateway::run::Report;
use gateway::{join, mpc, runner, status, Agent};
use proofs::eth::LocalKey;
use proofs::{Policy, Presented};
use serde_json::Value;

use crate::cli::{InviteArgs, JoinArgs, MpcLocal};
use crate::home;

fn local(l: &MpcLocal) -> Result<Local> {
    Ok(Local {
        python: runner::find_python(l.python.as_deref(), &|line| eprintln!("{line}"))?,
        cwd: std::env::current_dir()?,
        sink: Arc::new(|line: &str| println!("{line}")),
        session: session::Config::default(),
        mesh_timeout: Duration::from_secs(l.handshake_timeout),
    })
}

pub(super) async fn invite(home_flag: Option<&Path>, a: InviteArgs) -> Result<()> {
    let agent = Arc::new(Agent::load(&home::dir(home_flag)?)?);
    let mut invitees = Vec::new();
    for d in &a.dids {
        invitees.push(Did::parse(d).with_context(|| format!("{d} is not a DID"))?);
    }
    let local = local(&a.local)?;
    anyhow::ensure!(a.program.is_file(), "the program {} does not exist", a.program.display());
    let program = runner::describe(&a.program, &a.args, &local.python).await?;
    let new = NewSession {
        invitees,
        program,
        options: MpcOptions { threshold: a.threshold, ssl: a.ssl },
        ttl: Duration::from_secs(a.join_timeout),
        peer_deadline: Duration::from_secs(a.peer_deadline),
        proofs: policy(&a)?,
    };
    let report = flow::host(agent, new, &a.program, &local, print_invitation, &print_progress).await?;
    print_report(&report);
    Ok(())
}

/// The proof policy the invite flags ask for (null: none).
fn policy(a: &InviteArgs) -> Result<Value> {
    let mut p = Policy::default();
    let split = |s: &str| match s.rsplit_once('=') {
        Some((who, what)) => (Some(who.to_owned()), what.to_owned()),
        None => (None, s.to_owned()),
    };
    for r in &a.require_accounts {
        let (who, acct) = split(r);
        p.require_account(who.as_deref(), &super::proof::account(&acct, 1)?);
    }
    if a.any_account {
        p.accept_any_account(None);
    }
    for t in &a.trust_issuers {
        let (who, issuer) = split(t);
        Did::parse(&issuer).with_context(|| format!("--trust-issuer {issuer} is not a DID"))?;
        p.trust_issuer(who.as_deref(), &issuer, &a.credential_types);
    }
    if let Some(v) = a.proof_validity {
        p.max_validity_secs = v;
    }
    if p.accept.is_empty() {
        return Ok(Value::Null);
    }
    for who in p.parties.keys() {
        anyhow::ensure!(a.dids.contains(who), "a proof rule names {who}, who is not invited");
    }
    p.check()?;
    Ok(p.to_value())
}

fn print_invitation(inv: &Invitation) {
    let d = &inv.signed.descriptor;
    eprintln!("session {} · {} · {} parties", d.id, d.program.name, d.roster.len());
    let link = inv.short_url.as_deref().unwrap_or(&inv.url);
    match qrcode::QrCode::new(link.as_bytes()) {
        Ok(code) => eprintln!("{}", code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build()),
        Err(_) => eprintln!("(the invitation is too long for a QR code; share the URL)"),
    }
    eprintln!("invitation (share it, or invitees run `didmpc join next`):");
    println!("{link}");
}

fn print_progress(p: Progress) {
    match p {
        Progress::Reached { did, via } => eprintln!("  reached  {} (via {via})", short(&did)),
        Progress::Unreachable { did, why } => eprintln!("  UNREACHABLE {}: {why}", short(&did)),
        Progress::Joined { did, pid, identity: None } => eprintln!("  joined   {} as pid {pid}", short(&did)),
        Progress::Joined { did, pid, identity: Some(id) } => {
            eprintln!("  joined   {} as pid {pid}, verified {id}", short(&did))
        }
        Progress::Refused { did, pid, code, why } => {
            eprintln!("  REFUSED  {} (pid {pid}) {code}: {why}", short(&did))
        }
        Progress::Waiting { missing } => {
            let names: Vec<String> = missing.iter().map(|d| short(d)).collect();
            eprintln!("  waiting for {}: {}", names.len(), names.join(", "));
        }
    }
}

fn short(did: &str) -> String {
    Did::parse(did).map(|d| d.fmt_short()).unwrap_or_else(|_| did.to_owned())
}

fn describe(d: &Descriptor) {
    eprintln!("session {} from {}", d.id, short(&d.host));
    eprintln!(
        "  program: {} (sha256 {}…) args {:?}, MPyC {}",
        d.program.name,
        &d.program.sha256[..12],
        d.program.args,
        d.program.mpyc
    );
    for (pid, did) in d.roster.iter().enumerate() {
        eprintln!("  pid {pid}: {}", short(did));
    }
}

pub(super) async fn join(home_flag: Option<&Path>, a: JoinArgs) -> Result<()> {
    let agent = Arc::new(Agent::load(&home::dir(home_flag)?)?);
    let local = local(&a.local)?;
    let me = agent.file.party.to_string();
    let home = agent.home.clone();
    let key = a.siwe_key.as_deref().map(LocalKey::load).transpose()?;
    let chain = a.chain_id;
    let credentials =
        a.credentials.iter().map(|p| super::credential::read_credential(p)).collect::<Result<Vec<_>>>()?;
    let holder = if credentials.is_empty() { None } else { Some(super::proof::auth_kid(&agent).await?) };
    let signer = agent.clone();
    let prove = |s: &Signed| -> gateway::Result<Option<Presented>> {
        let session = s.proof_session();
        let policy = proofs::policy_of(&session)?;
        let now = did_core::didcomm::message::now();
        if let (Some(key), Some(p)) = (&key, &policy) {
            if p.accept.contains(&proofs::Kind::Siwe) && p.rule_for(&me).wants_account() {
                let proof = proofs::siwe_sign(&session, &me, key, chain, now)?;
                eprintln!("presenting Sign-In with Ethereum as {}", key.address().did_pkh(chain));
                return Ok(Some(proof));
            }
        }
        if let (Some(kid), Some(p)) = (&holder, &policy) {
            if p.accept.contains(&proofs::Kind::Vp) && !p.rule_for(&me).issuers.is_empty() {
                let secret =
                    signer.secret(kid).ok_or_else(|| gateway::Error::State("our authentication key is gone".into()))?;
                let proof = proofs::vp_present(&session, &me, &credentials, kid, secret, now)?;
                eprintln!("presenting {} credential(s) in a Verifiable Presentation", credentials.len());
                return Ok(Some(proof));
            }
        }
        let saved = proofs::store::load(&home, &s.descriptor.id)?;
        if saved.is_some() {
            eprintln!("presenting the proof made with `didmpc proof`");
        }
        Ok(saved)
    };
    let wait = Duration::from_secs(a.wait);
    let on_found = |s: &Signed| {
        describe(&s.descriptor);
        if let Some(pid) = s.descriptor.pid_of(&me) {
            eprintln!("joining as pid {pid}; waiting for the others");
        }
    };
    let report = flow::join_proving(agent, &a.invitation, a.program.as_deref(), &local, wait, on_found, &prove).await?;
    print_report(&report);
    Ok(())
}

fn print_report(r: &Report) {
    eprintln!(
        "done: pid {} · sessions up in {:.0} ms · MPyC started after {:.0} ms · total {:.2} s",
        r.pid,
        r.mesh.as_secs_f64() * 1000.0,
        r.to_launch.as_secs_f64() * 1000.0,
        r.total.as_secs_f64()
    );
}

pub(super) async fn sessions(home_flag: Option<&Path>) -> Result<()> {
    let agent = Agent::load(&home::dir(home_flag)?)?;
    let invitation = mpc::msg_type("invitation");
    let taken = agent.take_matching(100, |m| m.type_ == invitation).await?;
    for (m, _) in taken {
        match mpc::descriptor_of(&m) {
            Ok(jws) => {
                match gateway::descriptor::verify(&jws, agent.resolver(), did_core::didcomm::message::now()).await {
                    Ok(s) => join::save(&agent, &s)?,
                    Err(e) => eprintln!("ignored an invitation that does not verify: {e}"),
                }
            }
            Err(e) => eprintln!("ignored a malformed invitation: {e}"),
        }
    }
    let saved = join::saved(&agent).await;
    if saved.is_empty() {
        eprintln!("no pending invitations");
    }
    for s in saved {
        let d = &s.descriptor;
        println!(
            "{}  from {}  {} parties  {}  (join: didmpc join {})",
            d.id,
            short(&d.host),
            d.roster.len(),
            d.program.name,
            d.id
        );
    }
    Ok(())
}

pub(super) fn status(home_flag: Option<&Path>, as_json: bool) -> Result<()> {
    let st = status::read(&home::dir(home_flag)?)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(());
    }
    let age = did_core::didcomm::message::now().saturating_sub(st.updated);
    let stale = if age > 5 && (st.state == "running" || st.state == "connecting") {
        " (stale: the gateway is not running any more)"
    } else {
        ""
    };
    println!("session {} · {} · pid {} · {}{stale} (updated {age} s ago)", st.session, st.program, st.pid, st.state);
    println!(
        "{:<4} {:<28} {:<12} {:<20} {:>9} {:>12} {:>12}",
        "PID", "DID", "STATE", "PATH", "RTT", "SENT", "RECEIVED"
    );
    for p in &st.peers {
        let rtt = p.rtt_ms.map(|r| format!("{r:.1} ms")).unwrap_or_else(|| "-".into());
        println!(
            "{:<4} {:<28} {:<12} {:<20} {:>9} {:>12} {:>12}",
            p.pid,
            short(&p.did),
            clip(&p.state, 12),
            p.path,
            rtt,
            bytes(p.bytes_sent),
            bytes(p.bytes_received)
        );
    }
    if let Some(id) = &st.identity {
        println!("you (pid {}) verified: {id}", st.pid);
    }
    for p in st.peers.iter().filter(|p| p.identity.is_some()) {
        println!("pid {} verified: {}", p.pid, p.identity.as_deref().unwrap_or_default());
    }
    if st.state.starts_with("failed") {
        bail!("the session failed");
    }
    Ok(())
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(std::iter::once('…')).collect()
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
