//! # proofs
//!
//! Wallet-linked identity proofs: before a host admits a party, the party proves its DID
//! is linked to an identity the host's policy trusts (see `specs/proofs.md`). This crate
//! depends on `did-core` only (no gateway, no transport), so any admitting component (the
//! gateway's host today, a mediator later) can run the same checks.
//!
//! What flows where:
//!
//! - In: a [`Session`], the few facts of one signed session descriptor that proofs are
//!   bound to (its id, the digest of its signed payload, its join deadline and its proof
//!   policy); gateway builds it from its signed descriptor.
//! - From the session: [`challenge`] (the SIWE nonce and the VP challenge), [`domain`]
//!   (`<session id>.didmpc`) and [`policy_of`] (the [`Policy`], if any).
//! - A joining party makes a [`Presented`] proof ([`siwe_sign`], or [`siwe_message`] for an
//!   external wallet; [`vp_present`] for credentials) and sends it in its `join` body.
//! - The host passes the `join` body's `proof` to [`admit`], with a [`DidResolver`]; it
//!   gets the [`Identity`] established, or [`Error::Proof`] with a [`ProofReason`] whose
//!   code becomes the problem report `e.p.req.proof.<code>`.
//!
//! Modules:
//!
//! - [`siwe`], [`eth`]: Sign-In with Ethereum (EIP-4361) signed by an Ethereum account;
//! - [`vc`], [`jwt`], [`di`]: Verifiable Credentials and Presentations (VC-JWT, and
//!   credentials with an embedded Data Integrity proof) from trusted issuers;
//! - [`policy`]: the descriptor's `proofs` field;
//! - [`store`]: proofs kept on disk between `didmpc proof` and `didmpc join`;
//! - [`time`]: RFC 3339 date-times.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod di;
pub mod error;
pub mod eth;
pub mod jwt;
pub mod policy;
pub mod siwe;
pub mod store;
pub mod time;
pub mod vc;

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use did_core::{DidResolver, SecretKey};

pub use error::{Error, ProofReason, Result};
pub use policy::{Kind, Policy, Rule, Trust};

/// The statement of a session's SIWE message.
pub const SIWE_STATEMENT: &str = "Link this Ethereum account to the DID in the URI below for one didmpc MPC session.";

/// A proof as carried in the `join` body (`"proof": {...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Presented {
    /// An EIP-4361 message and its `personal_sign` signature.
    Siwe {
        /// The exact message text.
        message: String,
        /// `0x` + 65 bytes hex.
        signature: String,
    },
    /// A Verifiable Presentation (JSON-LD with a proof, or a JWT string).
    Vp {
        /// The presentation.
        presentation: Value,
    },
}

/// The identity a verified proof establishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The kind of proof.
    pub kind: Kind,
    /// For SIWE the account's did:pkh; for a VP the issuer's DID.
    pub id: String,
    /// For a VP the credential type(s) trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_type: Option<String>,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.credential_type) {
            (Kind::Siwe, _) => write!(f, "account {}", self.id),
            (Kind::Vp, Some(t)) => write!(f, "{t} from {}", self.id),
            (Kind::Vp, None) => write!(f, "credential from {}", self.id),
        }
    }
}

/// The session a proof is bound to: what the proofs need of a signed session descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The session id (the descriptor's `id`).
    pub id: String,
    /// SHA-256 of the signed descriptor's payload (its roster digest).
    pub digest: [u8; 32],
    /// The join deadline, in Unix seconds (the descriptor's `expires`): no proof is made
    /// valid past it.
    pub join_deadline: u64,
    /// The proof policy (the descriptor's `proofs` field; null: no proofs asked).
    pub policy: Value,
}

/// The session challenge: 32 hex digits of SHA-256 over a label and the signed
/// descriptor's digest. It is the SIWE nonce and the VP challenge, so a proof made for
/// one session (or one version of its descriptor) is worthless in another.
pub fn challenge(session: &Session) -> String {
    let mut h = Sha256::new();
    h.update(b"didmpc proof challenge v1\0");
    h.update(session.digest);
    eth::hex_encode(&h.finalize()[..16])
}

/// The session's domain in proofs: `<session id>.didmpc` (an RFC 3986 authority).
pub fn domain(session: &Session) -> Result<String> {
    let d = format!("{}.didmpc", session.id);
    if !siwe::is_authority(&d) || d.contains([':', '@']) {
        return Err(Error::Protocol(format!("session id {:?} cannot be a proof domain", session.id)));
    }
    Ok(d)
}

/// The session's policy (None: no proofs asked).
pub fn policy_of(session: &Session) -> Result<Option<Policy>> {
    Policy::from_value(&session.policy)
}

/// The exact SIWE message `party` signs with `account` for this session, issued `now` and
/// valid until the session's join deadline or the policy's longest validity, whichever
/// comes first.
pub fn siwe_message(session: &Session, party: &str, account: &eth::Account, now: u64) -> Result<siwe::Message> {
    let max = policy_of(session)?.map_or(policy::DEFAULT_MAX_VALIDITY_SECS, |p| p.max_validity_secs);
    let expires = session.join_deadline.min(now + max);
    if expires <= now {
        return Err(Error::State(format!("session {} is no longer open", session.id)));
    }
    Ok(siwe::Message {
        scheme: None,
        domain: domain(session)?,
        address: account.address,
        statement: Some(SIWE_STATEMENT.to_owned()),
        uri: party.to_owned(),
        chain_id: account.chain,
        nonce: challenge(session),
        issued_at: time::format(now),
        expiration_time: Some(time::format(expires)),
        not_before: None,
        request_id: Some(session.id.clone()),
        resources: Vec::new(),
    })
}

/// Signs this session's SIWE message for `party` with a local key.
pub fn siwe_sign(session: &Session, party: &str, key: &eth::LocalKey, chain: u64, now: u64) -> Result<Presented> {
    let account = eth::Account { chain, address: key.address() };
    let message = siwe_message(session, party, &account, now)?.to_string();
    let signature = format!("0x{}", eth::hex_encode(&key.personal_sign(message.as_bytes())?));
    Ok(Presented::Siwe { message, signature })
}

/// The host's check of the proof `party` presented (`proof`: the `join` body's `proof`).
/// Ok(None) when the session asks for no proof; Ok(Some(identity)) when the proof
/// satisfies the policy; otherwise [`Error::Proof`] saying why.
pub async fn admit(
    session: &Session,
    party: &str,
    proof: Option<&Value>,
    resolver: &dyn DidResolver,
    now: u64,
) -> Result<Option<Identity>> {
    admit_as(session, party, party, proof, resolver, now).await
}

/// [`admit`] for a party that joins for the roster place `member` (whose rule applies),
/// e.g. a did:pkh wallet account whose Sign-In with Ethereum names `party` as its URI.
pub async fn admit_as(
    session: &Session,
    member: &str,
    party: &str,
    proof: Option<&Value>,
    resolver: &dyn DidResolver,
    now: u64,
) -> Result<Option<Identity>> {
    let Some(policy) = policy_of(session)? else { return Ok(None) };
    let rule = policy.rule_for(member);
    if !rule.asks_anything() {
        // The policy has rules for others only (e.g. a wallet's place): nothing to prove here.
        return Ok(None);
    }
    let Some(proof) = proof.filter(|p| !p.is_null()) else {
        return Err(Error::proof(
            ProofReason::Missing,
            format!("this session asks for {}", policy.describe_for(member)),
        ));
    };
    let presented: Presented = serde_json::from_value(proof.clone())
        .map_err(|e| Error::proof(ProofReason::Malformed, format!("the proof is not understood: {e}")))?;
    match presented {
        Presented::Siwe { message, signature } => {
            if !policy.accept.contains(&Kind::Siwe) || !rule.wants_account() {
                return Err(Error::proof(
                    ProofReason::KindNotAccepted,
                    format!(
                        "Sign-In with Ethereum is not accepted here; this session asks for {}",
                        policy.describe_for(member)
                    ),
                ));
            }
            let domain = domain(session)?;
            let nonce = challenge(session);
            let expect = siwe::Expect {
                domain: &domain,
                nonce: &nonce,
                uri: party,
                max_validity_secs: policy.max_validity_secs,
                now,
            };
            let v = siwe::verify(&message, &signature, &expect)?;
            if !rule.admits_account(&v.account) {
                return Err(Error::proof(
                    ProofReason::WrongAccount,
                    format!(
                        "{} is not an account this session admits for {party} (it admits {})",
                        v.account,
                        rule.accounts.join(", ")
                    ),
                ));
            }
            Ok(Some(Identity { kind: Kind::Siwe, id: v.account.did_pkh(), credential_type: None }))
        }
        Presented::Vp { presentation } => {
            if !policy.accept.contains(&Kind::Vp) || rule.issuers.is_empty() {
                return Err(Error::proof(
                    ProofReason::KindNotAccepted,
                    format!(
                        "Verifiable Presentations are not accepted here; this session asks for {}",
                        policy.describe_for(member)
                    ),
                ));
            }
            let Value::String(compact) = presentation else {
                return Err(Error::proof(
                    ProofReason::Malformed,
                    "the presentation must be a JWT (VC-JWT); embedded-proof presentations are not verified here",
                ));
            };
            let (domain, challenge) = (domain(session)?, challenge(session));
            let expect = vc::Expect {
                holder: party,
                challenge: &challenge,
                domain: &domain,
                max_validity_secs: policy.max_validity_secs,
                now,
            };
            let vp = vc::verify_presentation(&compact, &expect, resolver).await?;
            admit_credentials(rule, party, &vp.credentials, resolver, now).await.map(Some)
        }
    }
}

/// The first credential that is valid, issued to `party` and trusted by `rule`; else the
/// reason the first one fails.
async fn admit_credentials(
    rule: &Rule,
    party: &str,
    credentials: &[Value],
    resolver: &dyn DidResolver,
    now: u64,
) -> Result<Identity> {
    let mut first_err = None;
    for c in credentials {
        let outcome = async {
            // Trust first: an untrusted issuer's DID is never resolved (no fetches for it).
            let (issuer, types) = match c {
                Value::String(jwt) => vc::peek_issuer(jwt)?,
                other => di::peek_issuer(other)?,
            };
            let trust = rule.trusts(&issuer, &types).ok_or_else(|| {
                let trusted: Vec<String> = rule.issuers.iter().map(Trust::to_string).collect();
                Error::proof(
                    ProofReason::UntrustedIssuer,
                    format!(
                        "a {} from {issuer}, which this session does not trust (it trusts {})",
                        types.join("/"),
                        trusted.join(", ")
                    ),
                )
            })?;
            let cred = match c {
                Value::String(jwt) => vc::verify_credential(jwt, resolver, now).await?,
                other => Box::pin(di::verify_credential(other, resolver, now)).await?,
            };
            if cred.subject != party {
                return Err(Error::proof(
                    ProofReason::SubjectMismatch,
                    format!("the credential was issued to {}, not to the sender {party}", cred.subject),
                ));
            }
            let shown = trust
                .types
                .iter()
                .find(|t| cred.types.contains(t))
                .or_else(|| cred.types.iter().rev().find(|t| *t != "VerifiableCredential"))
                .cloned();
            Ok(Identity { kind: Kind::Vp, id: cred.issuer, credential_type: shown })
        }
        .await;
        match outcome {
            Ok(id) => return Ok(id),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or_else(|| Error::proof(ProofReason::Malformed, "the presentation carries no credential")))
}

/// Presents `credentials` (VC-JWT strings or embedded-proof credentials issued to
/// `party`) for this session, signed with the
/// party's authentication key; valid for the policy's longest validity or until the
/// session's join deadline.
pub fn vp_present(
    session: &Session,
    party: &str,
    credentials: &[Value],
    kid: &str,
    key: &SecretKey,
    now: u64,
) -> Result<Presented> {
    let max = policy_of(session)?.map_or(policy::DEFAULT_MAX_VALIDITY_SECS, |p| p.max_validity_secs);
    let until = session.join_deadline.min(now + max);
    if until <= now {
        return Err(Error::State(format!("session {} is no longer open", session.id)));
    }
    let (challenge, domain) = (challenge(session), domain(session)?);
    let binding = vc::Binding { challenge: &challenge, domain: &domain, from: now, until };
    let compact = vc::present(credentials, party, &binding, kid, key)?;
    Ok(Presented::Vp { presentation: Value::String(compact) })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vp_tests;
