//! The proof policy: the descriptor's `proofs` field. Which kinds of identity proof the
//! host accepts, and which accounts or issuers it trusts, for every invitee or per
//! invitee (see `specs/proofs.md`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::eth::Account;
use crate::error::{Error, Result};

/// Policy format version.
pub const POLICY_VERSION: u32 = 1;
/// Default (and largest) `Expiration Time - Issued At` of a SIWE proof: one day.
pub const DEFAULT_MAX_VALIDITY_SECS: u64 = 24 * 3600;

/// A kind of identity proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Sign-In with Ethereum (EIP-4361) signed by an Ethereum account.
    Siwe,
    /// A W3C Verifiable Presentation carrying a credential from a trusted issuer.
    Vp,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Siwe => "siwe",
            Kind::Vp => "vp",
        })
    }
}

/// A trusted credential issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trust {
    /// The issuer's DID.
    pub issuer: String,
    /// Credential types accepted from it (empty: any type).
    #[serde(default)]
    pub types: Vec<String>,
}

impl fmt::Display for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.types.is_empty() {
            f.write_str(&self.issuer)
        } else {
            write!(f, "{} ({})", self.issuer, self.types.join(", "))
        }
    }
}

/// What one party (or every party) must prove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// SIWE from any Ethereum account is admitted (the account is shown, not checked).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub any_account: bool,
    /// Accounts admitted for SIWE, as CAIP-10 (`eip155:<chain>:<address>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// Issuers (and credential types) trusted for VPs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuers: Vec<Trust>,
}

impl Rule {
    /// True if this rule asks for any proof at all (an empty rule admits without one).
    pub fn asks_anything(&self) -> bool {
        self.wants_account() || !self.issuers.is_empty()
    }

    /// True if SIWE can satisfy this rule at all.
    pub fn wants_account(&self) -> bool {
        self.any_account || !self.accounts.is_empty()
    }

    /// True if `account` is admitted.
    pub fn admits_account(&self, account: &Account) -> bool {
        self.any_account || self.accounts.iter().any(|a| Account::parse(a).is_ok_and(|a| a == *account))
    }

    /// The trusted issuer entry matching `issuer` with one of `types` (None: untrusted).
    pub fn trusts(&self, issuer: &str, types: &[String]) -> Option<&Trust> {
        self.issuers
            .iter()
            .find(|t| t.issuer == issuer && (t.types.is_empty() || t.types.iter().any(|w| types.contains(w))))
    }
}

/// The proof policy of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Format version ([`POLICY_VERSION`]).
    pub v: u32,
    /// Proof kinds accepted (a party presents one of them).
    pub accept: Vec<Kind>,
    /// The rule for every invitee without its own.
    #[serde(default)]
    pub all: Rule,
    /// Rules for particular invitees (by DID); they replace `all` for that invitee.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parties: BTreeMap<String, Rule>,
    /// Longest validity of a SIWE proof (`Expiration Time - Issued At`), seconds.
    pub max_validity_secs: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            v: POLICY_VERSION,
            accept: Vec::new(),
            all: Rule::default(),
            parties: BTreeMap::new(),
            max_validity_secs: DEFAULT_MAX_VALIDITY_SECS,
        }
    }
}

impl Policy {
    /// The policy in a descriptor's `proofs` field (None: null, no proofs asked).
    pub fn from_value(v: &Value) -> Result<Option<Policy>> {
        if v.is_null() {
            return Ok(None);
        }
        let p: Policy = serde_json::from_value(v.clone())
            .map_err(|e| Error::Protocol(format!("the proof policy is malformed: {e}")))?;
        p.check()?;
        Ok(Some(p))
    }

    /// As the descriptor's `proofs` value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Structural checks.
    pub fn check(&self) -> Result<()> {
        let bad = |why: String| Err(Error::Protocol(format!("proof policy: {why}")));
        if self.v != POLICY_VERSION {
            return bad(format!("version {} (we speak {POLICY_VERSION})", self.v));
        }
        if self.accept.is_empty() {
            return bad("accepts no kind of proof".into());
        }
        if self.max_validity_secs == 0 || self.max_validity_secs > DEFAULT_MAX_VALIDITY_SECS {
            return bad(format!("max_validity_secs must be 1..={DEFAULT_MAX_VALIDITY_SECS}"));
        }
        let admits_some = |r: &Rule| {
            (self.accept.contains(&Kind::Siwe) && r.wants_account())
                || (self.accept.contains(&Kind::Vp) && !r.issuers.is_empty())
        };
        // The common rule may be empty only when invitees have their own.
        if !admits_some(&self.all) && self.parties.is_empty() {
            return bad("admits no proof (no account and no issuer of an accepted kind)".into());
        }
        for (who, rule) in &self.parties {
            if !admits_some(rule) {
                return bad(format!("the rule for {who} admits no proof"));
            }
        }
        for rule in std::iter::once(&self.all).chain(self.parties.values()) {
            for a in &rule.accounts {
                if let Err(e) = Account::parse(a) {
                    return bad(e.to_string());
                }
            }
        }
        Ok(())
    }

    /// The rule for `party`.
    pub fn rule_for(&self, party: &str) -> &Rule {
        self.parties.get(party).unwrap_or(&self.all)
    }

    /// The rule `who` names (None: every invitee), created if needed.
    fn rule_mut(&mut self, who: Option<&str>) -> &mut Rule {
        match who {
            Some(d) => self.parties.entry(d.to_owned()).or_default(),
            None => &mut self.all,
        }
    }

    fn accept(&mut self, k: Kind) {
        if !self.accept.contains(&k) {
            self.accept.push(k);
            self.accept.sort();
        }
    }

    /// Admits SIWE proofs from any account for `who` (None: every invitee).
    pub fn accept_any_account(&mut self, who: Option<&str>) {
        self.accept(Kind::Siwe);
        self.rule_mut(who).any_account = true;
    }

    /// Admits `account` for `who` (None: every invitee); SIWE becomes accepted.
    pub fn require_account(&mut self, who: Option<&str>, account: &Account) {
        self.accept(Kind::Siwe);
        let caip = account.to_string();
        let rule = self.rule_mut(who);
        if !rule.accounts.contains(&caip) {
            rule.accounts.push(caip);
        }
    }

    /// Trusts `issuer` for credentials of `types` (empty: any) for `who`; VPs become accepted.
    pub fn trust_issuer(&mut self, who: Option<&str>, issuer: &str, types: &[String]) {
        self.accept(Kind::Vp);
        let t = Trust { issuer: issuer.to_owned(), types: types.to_vec() };
        let rule = self.rule_mut(who);
        if !rule.issuers.contains(&t) {
            rule.issuers.push(t);
        }
    }

    /// What `party` must present, in words.
    pub fn describe_for(&self, party: &str) -> String {
        let rule = self.rule_for(party);
        let mut out = Vec::new();
        if self.accept.contains(&Kind::Siwe) && rule.wants_account() {
            out.push(if rule.any_account {
                "Sign-In with Ethereum from any account".to_owned()
            } else {
                format!("Sign-In with Ethereum from {}", rule.accounts.join(" or "))
            });
        }
        if self.accept.contains(&Kind::Vp) && !rule.issuers.is_empty() {
            let issuers: Vec<String> = rule.issuers.iter().map(Trust::to_string).collect();
            out.push(format!("a Verifiable Presentation of a credential from {}", issuers.join(" or ")));
        }
        out.join(", or ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_party_rules_replace_the_common_one_and_round_trip() {
        let a = Account::parse("eip155:1:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").unwrap();
        let b = Account::parse("did:pkh:eip155:1:0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359").unwrap();
        let mut p = Policy::default();
        p.require_account(None, &a);
        p.require_account(Some("did:example:bob"), &b);
        p.trust_issuer(None, "did:web:acme.example", &["EmployeeCredential".into()]);
        assert_eq!(p.accept, vec![Kind::Siwe, Kind::Vp]);
        assert!(p.rule_for("did:example:alice").admits_account(&a));
        assert!(!p.rule_for("did:example:alice").admits_account(&b));
        assert!(p.rule_for("did:example:bob").admits_account(&b));
        assert!(!p.rule_for("did:example:bob").admits_account(&a), "a party's own rule replaces the common one");
        assert!(p.rule_for("did:example:bob").trusts("did:web:acme.example", &["EmployeeCredential".into()]).is_none());
        assert!(p
            .rule_for("did:example:carol")
            .trusts("did:web:acme.example", &["EmployeeCredential".into()])
            .is_some());
        assert!(p.rule_for("did:example:carol").trusts("did:web:acme.example", &["Other".into()]).is_none());
        let back = Policy::from_value(&p.to_value()).unwrap().unwrap();
        assert_eq!(back, p);
        assert!(Policy::from_value(&Value::Null).unwrap().is_none());
        assert!(Policy::from_value(&serde_json::json!({"v": 1, "accept": [], "max_validity_secs": 60})).is_err());
        assert!(p.describe_for("did:example:bob").contains("0xfB69"));
    }
}
