//! `didmpc proof`: identity proofs a session asks for (Sign-In with Ethereum).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use did_core::didcomm::message::now;
use did_core::{DidResolver, Relationship};
use gateway::descriptor::Signed;
use gateway::mailbox::Mailbox;
use gateway::{join, Agent};
use lobby::{Decision, Hub, JoinPage, Mode, Role};
use proofs::eth::{Account, LocalKey};
use proofs::{store, Presented};

use crate::cli::{ProofCommand, ProofSiweArgs, ProofVpArgs};
use crate::home;

pub(super) async fn run(home_flag: Option<&Path>, c: ProofCommand) -> Result<()> {
    match c {
        ProofCommand::Siwe(a) => siwe(home_flag, a).await,
        ProofCommand::Vp(a) => vp(home_flag, a).await,
        ProofCommand::NewKey { out } => {
            let key = LocalKey::generate();
            key.save(&out)?;
            eprintln!("wrote {} (mode 0600); its account:", out.display());
            println!("{}", key.address().did_pkh(1));
            Ok(())
        }
    }
}

/// A bare 0x address takes `chain`; CAIP-10 and did:pkh carry their own.
pub(super) fn account(s: &str, chain: u64) -> Result<Account> {
    let mut a = Account::parse(s)?;
    if s.trim().starts_with("0x") {
        a.chain = chain;
    }
    Ok(a)
}

/// Checks `p` as the host will, then keeps it for `didmpc join`.
async fn check_and_keep(agent: &Agent, signed: &Signed, p: &Presented) -> Result<()> {
    let party = agent.file.party.as_str();
    let value = serde_json::to_value(p)?;
    let session = signed.proof_session();
    match proofs::admit(&session, party, Some(&value), agent.resolver(), now()).await {
        Ok(Some(id)) => eprintln!("verified: {id}"),
        Ok(None) => {
            // No policy: still check the signature, so a bad one is caught here.
            if let Presented::Siwe { message, signature } = p {
                let (domain, nonce) = (proofs::domain(&session)?, proofs::challenge(&session));
                let expect = proofs::siwe::Expect {
                    domain: &domain,
                    nonce: &nonce,
                    uri: party,
                    max_validity_secs: proofs::policy::DEFAULT_MAX_VALIDITY_SECS,
                    now: now(),
                };
                let v = proofs::siwe::verify(message, signature, &expect)?;
                eprintln!("verified: account {} (this session asks for no proof)", v.account.did_pkh());
            }
        }
        Err(e) => bail!("the host would refuse this proof: {e}"),
    }
    let path = store::save(&agent.home, &signed.descriptor.id, p)?;
    eprintln!("kept in {}; now run: didmpc join {}", path.display(), signed.descriptor.id);
    Ok(())
}

async fn siwe(home_flag: Option<&Path>, a: ProofSiweArgs) -> Result<()> {
    let agent = Arc::new(Agent::load(&home::dir(home_flag)?)?);
    let mut mailbox = Mailbox::start(agent.clone());
    let signed = join::find(&agent, &mut mailbox, &a.invitation, Duration::from_secs(a.wait), &|_| true).await?;
    join::save(&agent, &signed)?;
    let id = signed.descriptor.id.clone();
    let party = agent.file.party.to_string();
    let session = signed.proof_session();
    if let Some(policy) = proofs::policy_of(&session)? {
        eprintln!("session {id} asks for {}", policy.describe_for(&party));
    }
    if a.page.browser {
        anyhow::ensure!(
            a.account.is_none() && a.signature.is_none() && a.key.is_none(),
            "--browser signs with the wallet in your browser: leave out --account, --signature and --key"
        );
        return siwe_in_browser(agent, &signed, &a).await;
    }
    if let Some(path) = &a.key {
        let key = LocalKey::load(path)?;
        let p = proofs::siwe_sign(&session, &party, &key, a.chain_id, now())?;
        if let Presented::Siwe { message, .. } = &p {
            println!("{message}");
        }
        return check_and_keep(&agent, &signed, &p).await;
    }
    if let Some(signature) = &a.signature {
        let message = store::load_pending(&agent.home, &id)?;
        let p = Presented::Siwe { message, signature: signature.trim().to_owned() };
        return check_and_keep(&agent, &signed, &p).await;
    }
    let acct = a.account.as_deref().context("say which account signs: --account 0x… (or --key FILE)")?;
    let message = proofs::siwe_message(&session, &party, &account(acct, a.chain_id)?, now())?.to_string();
    store::save_pending(&agent.home, &id, &message)?;
    eprintln!("sign this exact message (no trailing newline) with personal_sign, then run:");
    eprintln!("  didmpc proof siwe {id} --signature 0x…");
    println!("{message}");
    Ok(())
}

/// `proof siwe --browser`: the lobby page asks the wallet to sign; the proof is checked as
/// the host will check it, then kept for `didmpc join`.
async fn siwe_in_browser(agent: Arc<Agent>, signed: &Signed, a: &ProofSiweArgs) -> Result<()> {
    let hub = Hub::new(Role::Proof);
    let page = JoinPage::new(hub.clone(), agent.clone(), Mode::Proof);
    let out = super::output::Out::new(false);
    let lobby = super::page::start(hub, page.clone(), &a.page, &out).await?;
    let id = signed.descriptor.id.clone();
    let r = match page.decide(signed) {
        Decision::Join { proof: Some(p), .. } => check_and_keep(&agent, signed, &p).await,
        Decision::Join { proof: None, .. } => Err(anyhow::anyhow!("no proof was made")),
        Decision::Decline(why) => Err(anyhow::anyhow!("no proof was made: {why}")),
    };
    super::page::end(lobby, &r, |()| format!("Your proof is kept. Now run: didmpc join {id}")).await;
    r
}

/// The kid of our party DID's authentication key (the key that signs presentations).
pub(super) async fn auth_kid(agent: &Agent) -> Result<String> {
    let doc = agent.resolver().resolve(&agent.file.party).await?;
    let (kid, _) = proofs::jwt::signing_key(&doc, Relationship::Authentication, |k| agent.secret(k))?;
    Ok(kid)
}

async fn vp(home_flag: Option<&Path>, a: ProofVpArgs) -> Result<()> {
    let agent = Arc::new(Agent::load(&home::dir(home_flag)?)?);
    let credentials =
        a.credentials.iter().map(|p| super::credential::read_credential(p)).collect::<Result<Vec<_>>>()?;
    let mut mailbox = Mailbox::start(agent.clone());
    let signed = join::find(&agent, &mut mailbox, &a.invitation, Duration::from_secs(a.wait), &|_| true).await?;
    join::save(&agent, &signed)?;
    let party = agent.file.party.to_string();
    let session = signed.proof_session();
    if let Some(policy) = proofs::policy_of(&session)? {
        eprintln!("session {} asks for {}", signed.descriptor.id, policy.describe_for(&party));
    }
    let kid = auth_kid(&agent).await?;
    let key = agent.secret(&kid).context("our authentication key is gone")?;
    let p = proofs::vp_present(&session, &party, &credentials, &kid, key, now())?;
    check_and_keep(&agent, &signed, &p).await
}
