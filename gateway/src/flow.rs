//! The two whole flows a party runs: host (`invite` … run) and invitee (`join` … run).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proofs::Presented;

use crate::agent::Agent;
use crate::descriptor::Signed;
use crate::error::{Error, Result};
use crate::events::{emit, Event, Events};
use crate::invite::{self, Command, Invitation, NewSession, Progress};
use crate::join::{self, Place};
use crate::mailbox::Mailbox;
use crate::relay_client::RelayClient;
use crate::run::{self, Report, RunOptions};
use crate::runner::{self, Sink};
use crate::transport::Transport;

/// How MPyC runs on this machine.
#[derive(Clone)]
pub struct Local {
    /// The interpreter with MPyC.
    pub python: PathBuf,
    /// Working directory for MPyC (and where `join` looks for the program by name).
    pub cwd: PathBuf,
    /// Where MPyC's output goes.
    pub sink: Sink,
    /// Session tuning.
    pub session: session::Config,
    /// Time allowed for all pairwise handshakes.
    pub mesh_timeout: Duration,
    /// No direct paths (`--relay-only`): our addresses stay hidden from the peers.
    pub relay_only: bool,
    /// Where the steps after joining are reported (None: nowhere).
    pub events: Option<Events>,
}

impl Local {
    fn options(&self, program: PathBuf) -> RunOptions {
        RunOptions {
            python: self.python.clone(),
            program,
            cwd: Some(self.cwd.clone()),
            sink: self.sink.clone(),
            session: self.session.clone(),
            mesh_timeout: self.mesh_timeout,
            relay_only: self.relay_only,
            events: self.events.clone(),
        }
    }
}

/// Hosts a session: publishes it, waits for every invitee, runs the program as pid 0.
pub async fn host(
    agent: Arc<Agent>,
    new: NewSession,
    program: &Path,
    local: &Local,
    on_invitation: impl FnOnce(&Invitation),
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report> {
    host_steered(agent, new, program, local, on_invitation, progress, None).await
}

/// [`host`], steered by the host while it waits (a lobby page's Start and Cancel): with
/// `commands`, the run starts on [`Command::Start`] once everyone joined, and
/// [`Command::Cancel`] aborts the session for everyone.
pub async fn host_steered(
    agent: Arc<Agent>,
    new: NewSession,
    program: &Path,
    local: &Local,
    on_invitation: impl FnOnce(&Invitation),
    progress: &(dyn Fn(Progress) + Sync),
    commands: Option<&mut tokio::sync::mpsc::UnboundedReceiver<Command>>,
) -> Result<Report> {
    let mut mailbox = Mailbox::start(agent.clone());
    let inv = invite::create(&agent, new).await?;
    on_invitation(&inv);
    invite::send_invitations(&agent, &inv, progress).await;
    let members = invite::await_joins_steered(&agent, &mut mailbox, &inv.signed, progress, commands).await?;
    emit(&local.events, Event::Final { members: members.clone() });
    for m in &members {
        agent.expect(&m.agent);
    }
    let relay = RelayClient::new(Transport::new()?);
    run::run(agent, &mut mailbox, &relay, &inv.signed, &members, local.options(program.to_path_buf())).await
}

/// How an invitee joins.
pub struct Joining<'a> {
    /// Which session: an invitation URL or short link, a saved session id, or `next`.
    pub reference: &'a str,
    /// The program file (else the descriptor's file name in `local.cwd`).
    pub program: Option<&'a Path>,
    /// How long `next` waits for an invitation.
    pub wait: Duration,
    /// Wallet accounts (did:pkh) whose roster places we may take in this session (we can
    /// sign for them).
    pub wallets: &'a (dyn Fn(&Signed) -> Vec<String> + Sync),
    /// Whether to take an invitation arriving for `next` (its host is known, or the user agreed).
    pub accept_host: &'a (dyn Fn(&Signed) -> bool + Sync),
    /// Shown the session before anything is checked or joined; `Err` declines (with the
    /// reason the host is told).
    pub confirm: &'a (dyn Fn(&Signed, &Place) -> std::result::Result<(), String> + Sync),
    /// Makes the identity proof the session asks for (None: present none).
    pub prove: &'a Prover<'a>,
}

/// Makes the identity proof a session asks for (None: present none).
pub type Prover<'a> = dyn Fn(&Signed, &Place) -> Result<Option<Presented>> + Sync + 'a;

/// Joins a session after the user's confirmation and the local program check (refusing
/// before anything runs if it differs), presents the proof the policy asks for, waits for
/// the final roster, then runs the program.
pub async fn join(agent: Arc<Agent>, how: Joining<'_>, local: &Local) -> Result<Report> {
    let mut mailbox = Mailbox::start(agent.clone());
    let signed = join::find(&agent, &mut mailbox, how.reference, how.wait, how.accept_host).await?;
    for did in &signed.descriptor.roster {
        agent.expect(did);
    }
    let place = join::place(&agent, &signed, &(how.wallets)(&signed))?;
    if let Err(why) = (how.confirm)(&signed, &place) {
        join::decline(&agent, &signed, &why).await;
        return Err(Error::Refused { who: "you".into(), code: "declined".into(), comment: why });
    }
    let path = join::program_path(&signed, how.program, &local.cwd);
    if !path.is_file() {
        let why = format!("the program {} is not here ({} not found)", signed.descriptor.program.name, path.display());
        join::decline(&agent, &signed, &why).await;
        return Err(Error::State(format!("{why}; pass --program FILE")));
    }
    let here = match runner::describe(&path, &signed.descriptor.program.args, &local.python).await {
        Ok(p) => p,
        Err(e) => {
            join::decline(&agent, &signed, &format!("cannot run MPyC here: {e}")).await;
            return Err(e);
        }
    };
    join::check_program(&agent, &signed, &here).await?;
    let member = place.member.clone().unwrap_or_else(|| agent.file.party.to_string());
    let policy = proofs::policy_of(&signed.proof_session())?.filter(|p| p.rule_for(&member).asks_anything());
    let proof = match policy {
        Some(policy) => Some((how.prove)(&signed, &place)?.ok_or_else(|| {
            Error::State(format!(
                "session {} asks for {}; make one with `didmpc proof siwe {}` (or join with --siwe-key FILE)",
                signed.descriptor.id,
                policy.describe_for(&member),
                signed.descriptor.id
            ))
        })?),
        None => None,
    };
    let joined_at = std::time::Instant::now();
    emit(&local.events, Event::Joining { pid: place.pid });
    let members = join::join_and_wait(&agent, &mut mailbox, &signed, &place, proof.as_ref()).await?;
    emit(&local.events, Event::Final { members: members.clone() });
    for m in &members {
        agent.expect(&m.agent);
    }
    let relay = RelayClient::new(Transport::new()?);
    let mut report = run::run(agent, &mut mailbox, &relay, &signed, &members, local.options(path)).await?;
    report.joined_at = Some(joined_at);
    Ok(report)
}

/// Joins the next invitation from `host` without questions or proofs: for automation
/// that started the host itself (the demo, benchmarks).
pub async fn join_from(
    agent: Arc<Agent>,
    host: &str,
    program: Option<&Path>,
    wait: Duration,
    local: &Local,
) -> Result<Report> {
    let accept_host = |s: &Signed| s.descriptor.host == host;
    let how = Joining {
        reference: "next",
        program,
        wait,
        wallets: &|_| Vec::new(),
        accept_host: &accept_host,
        confirm: &|_, _| Ok(()),
        prove: &|_, _| Ok(None),
    };
    join(agent, how, local).await
}
