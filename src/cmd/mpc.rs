//! `didmpc invite`, `join`, `sessions`: MPC sessions between DIDs.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use did_core::Did;
use gateway::descriptor::{MpcOptions, Signed};
use gateway::flow::{self, Joining, Local};
use gateway::invite::NewSession;
use gateway::join::Place;
use gateway::run::Report;
use gateway::{join, runner, Agent};
use lobby::{Decision, HostPage, Hub, JoinPage, Mode, Role};
use proofs::eth::LocalKey;
use proofs::{Policy, Presented};
use serde_json::Value;

use super::output::{short, Out};
use crate::cli::{InviteArgs, JoinArgs, MpcLocal};
use crate::home;

/// Hosts this party has joined sessions of (one DID per line in the home).
const KNOWN_HOSTS: &str = "known-hosts";

fn local(l: &MpcLocal, out: &Out) -> Result<Local> {
    Ok(Local {
        python: runner::find_python(l.python.as_deref(), &|line| eprintln!("{line}"))?,
        cwd: std::env::current_dir()?,
        sink: out.sink(),
        session: session::Config::default(),
        mesh_timeout: Duration::from_secs(l.handshake_timeout),
        relay_only: l.relay_only,
        events: None,
    })
}

pub(super) async fn invite(home_flag: Option<&Path>, a: InviteArgs) -> Result<()> {
    let out = Out::new(a.json);
    let r = invite_inner(home_flag, a, &out).await;
    if let Err(e) = &r {
        out.failed(e);
    }
    r
}

async fn invite_inner(home_flag: Option<&Path>, a: InviteArgs, out: &Out) -> Result<()> {
    let agent = Arc::new(Agent::load(&home::dir(home_flag)?)?);
    let mut invitees = Vec::new();
    for d in &a.dids {
        invitees.push(Did::parse(d).with_context(|| format!("{d} is not a DID"))?);
    }
    let local = local(&a.local, out)?;
    anyhow::ensure!(a.program.is_file(), "the program {} does not exist", a.program.display());
    let m = invitees.len() + 1;
    let options = MpcOptions { threshold: a.threshold, ssl: a.ssl };
    if options.threshold_for(m) == 0 {
        eprintln!("warning: threshold 0 gives no input privacy; invitees refuse it unless they pass --min-threshold 0");
    }
    let program = runner::describe(&a.program, &a.args, &local.python).await?;
    let new = NewSession {
        invitees,
        program,
        options,
        ttl: Duration::from_secs(a.join_timeout),
        peer_deadline: Duration::from_secs(a.peer_deadline),
        proofs: policy(&a)?,
    };
    if !a.page.browser {
        let report =
            flow::host(agent, new, &a.program, &local, |inv| out.invitation(inv), &|p| out.progress(&p)).await?;
        out.report(&report);
        return Ok(());
    }
    // The lobby page: the link and QR code, each invitee's state, Start and Cancel.
    let hub = Hub::new(Role::Host);
    let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel();
    let page = HostPage::new(hub.clone(), tx);
    let lobby = super::page::start(hub.clone(), page.clone(), &a.page, out).await?;
    let mut local = local;
    local.events = Some(lobby::events(&hub));
    local.sink = lobby::tee(&hub, local.sink);
    let on_invitation = |inv: &gateway::invite::Invitation| {
        out.invitation(inv);
        page.invitation(inv);
    };
    let progress = |p: gateway::invite::Progress| {
        out.progress(&p);
        hub.update(|v| v.host_progress(&p));
    };
    let r = flow::host_steered(agent, new, &a.program, &local, on_invitation, &progress, Some(&mut commands))
        .await
        .map_err(anyhow::Error::from);
    super::page::end(lobby, &r, summary).await;
    out.report(&r?);
    Ok(())
}

/// How a run went, in one line for the page.
fn summary(r: &Report) -> String {
    format!(
        "Finished as pid {}: sessions up in {:.0} ms, total {:.1} s.",
        r.pid,
        r.mesh.as_secs_f64() * 1000.0,
        r.total.as_secs_f64()
    )
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

fn known_hosts(home: &Path) -> Vec<String> {
    std::fs::read_to_string(home.join(KNOWN_HOSTS))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn remember_host(home: &Path, host: &str) {
    if known_hosts(home).iter().any(|h| h == host) {
        return;
    }
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join(KNOWN_HOSTS))
        .and_then(|mut f| writeln!(f, "{host}"));
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot record the host as known");
    }
}

/// Asks a yes/no question on the terminal (false when there is none).
fn ask(question: &str) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// The joiner's own limits and consent, before anything is checked or joined.
fn confirm(a: &JoinArgs, out: &Out, s: &Signed, place: &Place) -> std::result::Result<(), String> {
    out.session(&s.descriptor, place.pid);
    limits(a, s)?;
    if a.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err("not confirmed: no terminal to ask on (pass --yes to join without the question)".into());
    }
    if ask(&format!("Join as pid {} and run {}?", place.pid, s.descriptor.program.name)) {
        Ok(())
    } else {
        Err("the user did not confirm".into())
    }
}

/// The joiner's own limits (`--max-parties`, `--min-threshold`).
fn limits(a: &JoinArgs, s: &Signed) -> std::result::Result<(), String> {
    let d = &s.descriptor;
    let m = d.roster.len();
    let t = d.mpyc.threshold_for(m);
    if m > a.max_parties {
        return Err(format!("{m} parties is more than this party accepts (--max-parties {})", a.max_parties));
    }
    if t < a.min_threshold {
        return Err(format!(
            "threshold {t} is below this party's minimum {} (threshold 0 gives no input privacy; \
             --min-threshold lowers the minimum)",
            a.min_threshold
        ));
    }
    Ok(())
}

pub(super) async fn join(home_flag: Option<&Path>, a: JoinArgs) -> Result<()> {
    let out = Out::new(a.json);
    let r = join_inner(home_flag, &a, &out).await;
    if let Err(e) = &r {
        out.failed(e);
    }
    r
}

async fn join_inner(home_flag: Option<&Path>, a: &JoinArgs, out: &Out) -> Result<()> {
    let agent = Arc::new(Agent::load(&home::dir(home_flag)?)?);
    let mut local = local(&a.local, out)?;
    // The lobby page: the session, the wallet's sign-in, Join/Decline, live progress.
    let page = match a.page.browser {
        true => {
            let hub = Hub::new(Role::Join);
            let page = JoinPage::new(hub.clone(), agent.clone(), Mode::Join { auto: a.yes });
            let lobby = super::page::start(hub.clone(), page.clone(), &a.page, out).await?;
            local.events = Some(lobby::events(&hub));
            local.sink = lobby::tee(&hub, local.sink);
            Some((page, lobby))
        }
        false => None,
    };
    let joiner = page.as_ref().map(|(p, _)| p.clone());
    let r = join_with(agent, a, out, local, joiner).await;
    if let Some((_, lobby)) = page {
        super::page::end(lobby, &r, summary).await;
    }
    out.report(&r?);
    Ok(())
}

async fn join_with(
    agent: Arc<Agent>,
    a: &JoinArgs,
    out: &Out,
    local: Local,
    page: Option<Arc<JoinPage>>,
) -> Result<Report> {
    let me = agent.file.party.to_string();
    let home = agent.home.clone();
    let key = a.siwe_key.as_deref().map(LocalKey::load).transpose()?;
    let chain = a.chain_id;
    let credentials =
        a.credentials.iter().map(|p| super::credential::read_credential(p)).collect::<Result<Vec<_>>>()?;
    let holder = if credentials.is_empty() { None } else { Some(super::proof::auth_kid(&agent).await?) };
    let from = a.from.as_deref().map(Did::parse).transpose().context("--from must be a DID")?;
    if a.invitation.trim() == "next" {
        let hosts = match &from {
            Some(h) => short(h.as_str()),
            None => "a host you joined before (or one you accept when asked)".into(),
        };
        eprintln!(
            "waiting up to {} s for an invitation to {} from {hosts}, in your inbox at {}",
            a.wait,
            agent.file.party.fmt_short(),
            agent.file.mediator.did.fmt_short()
        );
    }
    let known = known_hosts(&home);
    // Their invitations may be opened (a did:web host's document fetched); nobody else's.
    for h in known.iter().map(String::as_str).chain(from.as_ref().map(Did::as_str)) {
        agent.expect(h);
    }
    let accept_host = |s: &Signed| {
        let host = &s.descriptor.host;
        if from.as_ref().is_some_and(|f| f.as_str() == host) || known.contains(host) {
            return true;
        }
        from.is_none() && ask(&format!("An invitation from {host}, a host you have not joined before. Look at it?"))
    };
    let wallets = |s: &Signed| -> Vec<String> {
        let mut w: Vec<String> = key.iter().map(|k| k.address().did_pkh(chain)).collect();
        if let Some(page) = &page {
            if limits(a, s).is_err() {
                page.show(s); // refused by our limits: nothing to decide (confirm says why)
            } else if let Decision::Join { wallet: Some(wallet), .. } = page.decide(s) {
                w.push(wallet);
            }
        }
        if let Ok(Some(Presented::Siwe { message, .. })) = proofs::store::load(&home, &s.descriptor.id) {
            if let Ok(m) = proofs::siwe::parse(&message) {
                w.push(m.address.did_pkh(m.chain_id));
            }
        }
        w
    };
    let signer = agent.clone();
    let prove = |s: &Signed, place: &Place| -> gateway::Result<Option<Presented>> {
        let session = s.proof_session();
        let policy = proofs::policy_of(&session)?;
        let member = place.member.clone().unwrap_or_else(|| me.clone());
        let now = did_core::didcomm::message::now();
        if let Some(Decision::Join { proof: Some(proof), .. }) = page.as_ref().and_then(|p| p.decision()) {
            eprintln!("presenting the Sign-In with Ethereum signed in the browser");
            return Ok(Some(proof));
        }
        if let (Some(key), Some(p)) = (&key, &policy) {
            if p.accept.contains(&proofs::Kind::Siwe) && p.rule_for(&member).wants_account() {
                let proof = proofs::siwe_sign(&session, &me, key, chain, now)?;
                eprintln!("presenting Sign-In with Ethereum as {}", key.address().did_pkh(chain));
                return Ok(Some(proof));
            }
        }
        if let (Some(kid), Some(p)) = (&holder, &policy) {
            if p.accept.contains(&proofs::Kind::Vp) && !p.rule_for(&member).issuers.is_empty() {
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
    let confirm = |s: &Signed, place: &Place| {
        let r = match &page {
            None => confirm(a, out, s, place),
            Some(page) => {
                out.session(&s.descriptor, place.pid);
                limits(a, s).and_then(|()| match page.decision() {
                    Some(Decision::Join { .. }) => Ok(()),
                    Some(Decision::Decline(why)) => Err(why),
                    None => Err("not confirmed in the page".into()),
                })
            }
        };
        if r.is_ok() {
            remember_host(&home, &s.descriptor.host);
            eprintln!("joining as pid {}; waiting for the others", place.pid);
            out.event("joining", serde_json::json!({ "session": s.descriptor.id, "pid": place.pid }));
        }
        r
    };
    let how = Joining {
        reference: &a.invitation,
        program: a.program.as_deref(),
        wait: Duration::from_secs(a.wait),
        wallets: &wallets,
        accept_host: &accept_host,
        confirm: &confirm,
        prove: &prove,
    };
    Ok(flow::join(agent, how, &local).await?)
}

pub(super) async fn sessions(home_flag: Option<&Path>) -> Result<()> {
    let agent = Agent::load(&home::dir(home_flag)?)?;
    let taken = agent.take_matching(100, |m| m.is::<gateway::wire::Invitation>()).await?;
    for (m, _) in taken {
        match join::descriptor_of(&m) {
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
        // Another host's id may start with `-`: after `--` it is not read as an option.
        let dashes = if d.id.starts_with('-') { "-- " } else { "" };
        println!(
            "{}  from {}  {} parties  {}  (join: didmpc join {dashes}{})",
            d.id,
            short(&d.host),
            d.roster.len(),
            d.program.name,
            d.id
        );
    }
    Ok(())
}
