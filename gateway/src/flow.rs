//! The two whole flows a party runs: host (`invite` … run) and invitee (`join` … run).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proofs::Presented;

use crate::agent::Agent;
use crate::descriptor::Signed;
use crate::error::{Error, Result};
use crate::invite::{self, Invitation, NewSession, Progress};
use crate::join;
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
}

impl Local {
    fn options(&self, program: PathBuf, identities: Vec<Option<String>>) -> RunOptions {
        RunOptions {
            identities,
            python: self.python.clone(),
            program,
            cwd: Some(self.cwd.clone()),
            sink: self.sink.clone(),
            session: self.session.clone(),
            mesh_timeout: self.mesh_timeout,
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
    let mut mailbox = Mailbox::start(agent.clone());
    let inv = invite::create(&agent, new, progress).await?;
    on_invitation(&inv);
    let identities = invite::await_joins(&agent, &mut mailbox, &inv.signed, progress).await?;
    let relay = RelayClient::new(Transport::new()?);
    run::run(agent, &mut mailbox, &relay, &inv.signed, local.options(program.to_path_buf(), identities)).await
}

/// Joins the session `reference` names (see [`join::find`]) after checking the local
/// program (`program`, or the descriptor's file name in `local.cwd`), then runs it.
/// Presents no identity proof (see [`join_proving`]).
pub async fn join(
    agent: Arc<Agent>,
    reference: &str,
    program: Option<&Path>,
    local: &Local,
    wait: Duration,
    on_found: impl FnOnce(&Signed),
) -> Result<Report> {
    join_proving(agent, reference, program, local, wait, on_found, &|_| Ok(None)).await
}

/// Makes the identity proof a session asks for (None: present none).
pub type Prover<'a> = dyn Fn(&Signed) -> Result<Option<Presented>> + Sync + 'a;

/// [`join`], presenting the proof `prove` makes for the session (asked only when the
/// session's policy wants one; it runs after the program check, before joining).
pub async fn join_proving(
    agent: Arc<Agent>,
    reference: &str,
    program: Option<&Path>,
    local: &Local,
    wait: Duration,
    on_found: impl FnOnce(&Signed),
    prove: &Prover<'_>,
) -> Result<Report> {
    let mut mailbox = Mailbox::start(agent.clone());
    let signed = join::find(&agent, &mut mailbox, reference, wait).await?;
    on_found(&signed);
    let path = join::program_path(&signed, program, &local.cwd);
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
    let proof = match proofs::policy_of(&signed.proof_session())? {
        Some(policy) => Some(prove(&signed)?.ok_or_else(|| {
            Error::State(format!(
                "session {} asks for {}; make one with `didmpc proof siwe {}` (or join with --siwe-key FILE)",
                signed.descriptor.id,
                policy.describe_for(agent.file.party.as_str()),
                signed.descriptor.id
            ))
        })?),
        None => None,
    };
    let joined_at = std::time::Instant::now();
    let identities = join::join_and_wait(&agent, &mut mailbox, &signed, proof.as_ref()).await?;
    let relay = RelayClient::new(Transport::new()?);
    let mut report = run::run(agent, &mut mailbox, &relay, &signed, local.options(path, identities)).await?;
    report.joined_at = Some(joined_at);
    Ok(report)
}
