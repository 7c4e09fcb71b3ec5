//! The invitee's page: shows the session and the proof it asks for, makes the exact
//! Sign-In with Ethereum message for the wallet's account, checks the wallet's signature
//! as the host will ([`proofs::admit_as`]) before anything is sent, and hands the flow the
//! user's decision (join with that proof, or decline with a reason).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use did_core::didcomm::message::now;
use gateway::descriptor::Signed;
use gateway::{join, Agent};
use proofs::eth::{Account, Address};
use proofs::{Kind, Presented};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::api::{Actions, Command, Problem};
use crate::hub::Hub;
use crate::view::{Level, ProofAsk};

/// What the page is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Joining (`didmpc join --browser`); `auto`: join as soon as nothing is missing
    /// (`--yes`), without the Join button.
    Join {
        /// Join without the user's click once the proof (if any) is verified.
        auto: bool,
    },
    /// Making the proof only (`didmpc proof siwe --browser`): done once it verifies.
    Proof,
}

/// The user's decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Join, presenting this proof (verified here) for this roster place.
    Join {
        /// The proof (None: none asked of us).
        proof: Option<Presented>,
        /// The wallet (did:pkh) whose place we take, when not our own DID's.
        wallet: Option<String>,
    },
    /// Do not join; the host is told why.
    Decline(String),
}

/// Most pending messages kept (one per account the wallet offered).
const MAX_PENDING: usize = 16;

#[derive(Default)]
struct State {
    signed: Option<Signed>,
    pending: HashMap<Address, String>,
    proof: Option<(Presented, Option<String>)>,
}

/// The invitee's side of the page.
pub struct JoinPage {
    hub: Arc<Hub>,
    agent: Arc<Agent>,
    mode: Mode,
    state: Mutex<State>,
    decided: watch::Sender<Option<Decision>>,
}

impl JoinPage {
    /// The page of `agent` on `hub`.
    pub fn new(hub: Arc<Hub>, agent: Arc<Agent>, mode: Mode) -> Arc<JoinPage> {
        Arc::new(JoinPage { hub, agent, mode, state: Mutex::default(), decided: watch::channel(None).0 })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn me(&self) -> String {
        self.agent.file.party.to_string()
    }

    /// Shows `signed` (once) and the proof it asks of us.
    pub fn show(&self, signed: &Signed) {
        {
            let mut st = self.state();
            if st.signed.as_ref().is_some_and(|s| s.descriptor.id == signed.descriptor.id) {
                return;
            }
            st.signed = Some(signed.clone());
            st.pending.clear();
            st.proof = None;
        }
        let me = self.me();
        let ask = proof_ask(signed, &me);
        let pid = signed.descriptor.pid_of(&me);
        let nothing_to_prove = ask.text.is_none() && ask.note.is_none();
        let no_siwe = !ask.siwe;
        self.hub.update(|v| v.session(&signed.descriptor, pid, ask));
        if nothing_to_prove && self.mode == (Mode::Join { auto: true }) {
            self.decide_now(Decision::Join { proof: None, wallet: None });
        }
        if no_siwe && self.mode == Mode::Proof {
            self.decide_now(Decision::Decline("this session asks no Sign-In with Ethereum of you".into()));
        }
    }

    /// The decision, if made.
    pub fn decision(&self) -> Option<Decision> {
        self.decided.borrow().clone()
    }

    /// Shows `signed` and waits for the user's decision, at most until the session's join
    /// deadline (then: declined). This blocks the calling thread (it is called from the
    /// flow's synchronous callbacks, on a multi-threaded runtime).
    pub fn decide(&self, signed: &Signed) -> Decision {
        self.show(signed);
        if let Some(d) = self.decision() {
            return d;
        }
        let left = Duration::from_secs(signed.descriptor.expires.saturating_sub(now()));
        let mut rx = self.decided.subscribe();
        let got = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                tokio::time::timeout(left, rx.wait_for(Option::is_some)).await.ok()?.ok().and_then(|d| d.clone())
            })
        });
        got.unwrap_or_else(|| {
            let d = Decision::Decline("the session closed before you decided".into());
            self.decide_now(d.clone());
            d
        })
    }

    fn decide_now(&self, d: Decision) {
        match &d {
            Decision::Join { .. } if self.mode != Mode::Proof => self.hub.update(|v| v.joining()),
            Decision::Join { .. } => {}
            Decision::Decline(why) => self.hub.update(|v| v.declined(why)),
        }
        self.decided.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = Some(d);
            true
        });
    }

    fn signed(&self) -> Result<Signed, Problem> {
        self.state().signed.clone().ok_or_else(|| Problem::new(409, "not-now", "the invitation is still being opened"))
    }

    /// The exact EIP-4361 message for `address` (the chain of an admitted account with
    /// that address, else the wallet's chain, else 1).
    fn siwe_message(&self, address: &str, chain_id: Option<u64>) -> Result<Value, Problem> {
        let signed = self.signed()?;
        if !self.hub.view().can.sign {
            return Err(Problem::not_now("signing in"));
        }
        let address = Address::parse_any_case(address.trim())
            .map_err(|_| Problem::new(400, "bad-address", "the wallet's answer is not an Ethereum address"))?;
        let ask = self.hub.view().proof;
        let chain = ask
            .accounts
            .iter()
            .filter_map(|a| Account::parse(a).ok())
            .find(|a| a.address == address)
            .map_or(chain_id.unwrap_or(1), |a| a.chain);
        let account = Account { chain, address };
        let message = proofs::siwe_message(&signed.proof_session(), &self.me(), &account, now())
            .map_err(|e| Problem::new(409, "closed", e.to_string()))?
            .to_string();
        let mut st = self.state();
        if st.pending.len() >= MAX_PENDING {
            st.pending.clear();
        }
        st.pending.insert(address, message.clone());
        Ok(json!({ "message": message, "account": account.to_string() }))
    }

    /// Checks the wallet's signature as the host will; keeps the proof if it passes.
    async fn siwe_signature(&self, address: &str, signature: &str) -> Result<Value, Problem> {
        let signed = self.signed()?;
        if !self.hub.view().can.sign {
            return Err(Problem::not_now("signing in"));
        }
        let address = Address::parse_any_case(address.trim())
            .map_err(|_| Problem::new(400, "bad-address", "not an Ethereum address"))?;
        let message = self
            .state()
            .pending
            .get(&address)
            .cloned()
            .ok_or_else(|| Problem::new(409, "no-message", "ask for the message to sign first"))?;
        let chain = proofs::siwe::parse(&message).map(|m| m.chain_id).unwrap_or(1);
        let account = Account { chain, address };
        let me = self.me();
        let refuse = |code: &str, why: String| {
            let text = format!("The host would refuse this signature: {why}");
            self.hub.update(|v| {
                v.notice(Level::Error, text.clone());
                v.log(Level::Error, text.clone());
            });
            Problem::new(422, code, text)
        };
        let place = join::place(&self.agent, &signed, &[account.did_pkh()])
            .map_err(|e| refuse("not-invited", e.to_string()))?;
        let member = place.member.clone().unwrap_or_else(|| me.clone());
        let proof = Presented::Siwe { message, signature: signature.trim().to_owned() };
        let value = serde_json::to_value(&proof).map_err(|e| Problem::new(400, "bad-request", e.to_string()))?;
        let session = signed.proof_session();
        let admitted = proofs::admit_as(&session, &member, &me, Some(&value), self.agent.resolver(), now()).await;
        let identity = match admitted {
            Ok(Some(i)) => i.to_string(),
            Ok(None) => format!("account {} (this session asks no proof of you)", account.did_pkh()),
            Err(e) => {
                let code = e.proof_reason().map_or("malformed", |r| r.code());
                return Err(refuse(code, e.to_string()));
            }
        };
        self.state().proof = Some((proof.clone(), place.member.clone()));
        self.hub.update(|v| v.signed_in(&identity));
        if self.mode != (Mode::Join { auto: false }) {
            self.decide_now(Decision::Join { proof: Some(proof), wallet: place.member });
        }
        Ok(json!({ "identity": identity }))
    }

    fn join_now(&self) -> Result<Value, Problem> {
        if !self.hub.view().can.join {
            return Err(Problem::not_now("joining"));
        }
        let (proof, wallet) = match self.state().proof.clone() {
            Some((p, w)) => (Some(p), w),
            None => (None, None),
        };
        self.decide_now(Decision::Join { proof, wallet });
        Ok(json!({}))
    }

    fn decline_now(&self, reason: Option<String>) -> Result<Value, Problem> {
        if !self.hub.view().can.decline && !self.hub.view().can.sign {
            return Err(Problem::not_now("declining"));
        }
        let reason = reason.filter(|r| !r.is_empty()).unwrap_or_else(|| "the user declined in the lobby page".into());
        self.decide_now(Decision::Decline(reason));
        Ok(json!({}))
    }
}

#[async_trait::async_trait]
impl Actions for JoinPage {
    async fn act(&self, c: Command) -> Result<Value, Problem> {
        match c {
            Command::SiweMessage { address, chain_id } => self.siwe_message(&address, chain_id),
            Command::SiweSignature { address, signature } => self.siwe_signature(&address, &signature).await,
            Command::Join => self.join_now(),
            Command::Decline { reason } => self.decline_now(reason),
            Command::Start | Command::Cancel { .. } => {
                Err(Problem::new(404, "not-here", "only the host starts or cancels"))
            }
        }
    }
}

/// What the session asks of `me`: its own place's rule, or (off the roster) a wallet
/// account's Sign-In for one of the roster's did:pkh places.
pub fn proof_ask(signed: &Signed, me: &str) -> ProofAsk {
    let d = &signed.descriptor;
    let policy = proofs::policy_of(&signed.proof_session()).ok().flatten();
    let wallets: Vec<String> = d.roster.iter().filter_map(|r| r.strip_prefix("did:pkh:")).map(str::to_owned).collect();
    if d.pid_of(me).is_none() {
        if wallets.is_empty() {
            let note = format!("your DID {me} is not on this session's roster");
            return ProofAsk { note: Some(note), ..ProofAsk::default() };
        }
        let text = format!("Sign-In with Ethereum by a wallet account on the roster: {}", wallets.join(" or "));
        return ProofAsk { text: Some(text), siwe: true, accounts: wallets, note: None };
    }
    let Some(p) = policy else { return ProofAsk::default() };
    let rule = p.rule_for(me);
    if !rule.asks_anything() {
        return ProofAsk::default();
    }
    let siwe = p.accept.contains(&Kind::Siwe) && rule.wants_account();
    let vp = p.accept.contains(&Kind::Vp) && !rule.issuers.is_empty();
    let note = (vp && !siwe)
        .then(|| format!("this page cannot present credentials: run `didmpc join {} --credential FILE` instead", d.id));
    ProofAsk { text: Some(p.describe_for(me)), siwe, accounts: rule.accounts.clone(), note }
}
