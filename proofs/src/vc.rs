//! W3C Verifiable Credentials and Presentations in their JWT encoding (VC Data Model
//! 1.1 §6.3, "VC-JWT"): issuing a credential to a DID, presenting credentials for a
//! session (challenge = `nonce`, domain = `aud`), and verifying both.

use did_core::{DidResolver, Relationship, SecretKey};
use serde_json::{json, Map, Value};

use super::jwt::{self, malformed, Unverified};
use super::siwe::CLOCK_SKEW_SECS;
use super::time;
use crate::error::{Error, ProofReason, Result};

/// The VC Data Model 1.1 context (first in `@context`).
pub const CONTEXT_V1: &str = "https://www.w3.org/2018/credentials/v1";
/// The VC Data Model 2.0 context (accepted in credentials made by others).
pub const CONTEXT_V2: &str = "https://www.w3.org/ns/credentials/v2";

/// A credential to issue.
#[derive(Debug, Clone)]
pub struct Claims {
    /// The issuer's DID.
    pub issuer: String,
    /// The subject's DID (`credentialSubject.id`, JWT `sub`).
    pub subject: String,
    /// Credential types besides `VerifiableCredential`.
    pub types: Vec<String>,
    /// More `credentialSubject` properties.
    pub subject_claims: Map<String, Value>,
    /// Valid from (Unix seconds).
    pub valid_from: u64,
    /// Valid until (Unix seconds), if it expires.
    pub valid_until: Option<u64>,
    /// The credential's id (`jti`), e.g. `urn:uuid:...`.
    pub id: Option<String>,
}

/// Issues `c` as a VC-JWT signed by the issuer's assertion key (`kid`, `key`).
pub fn issue(c: &Claims, kid: &str, key: &SecretKey) -> Result<String> {
    let mut subject = c.subject_claims.clone();
    subject.insert("id".into(), json!(c.subject));
    let mut types = vec!["VerifiableCredential".to_owned()];
    types.extend(c.types.iter().filter(|t| *t != "VerifiableCredential").cloned());
    let mut vc = json!({
        "@context": [CONTEXT_V1],
        "type": types,
        "issuer": c.issuer,
        "issuanceDate": time::format(c.valid_from),
        "credentialSubject": subject,
    });
    let mut claims = json!({"iss": c.issuer, "sub": c.subject, "nbf": c.valid_from});
    if let Some(exp) = c.valid_until {
        vc["expirationDate"] = json!(time::format(exp));
        claims["exp"] = json!(exp);
    }
    if let Some(id) = &c.id {
        vc["id"] = json!(id);
        claims["jti"] = json!(id);
    }
    claims["vc"] = vc;
    jwt::sign(&claims, "JWT", kid, key)
}

/// What binds a presentation to one session, and its validity period.
#[derive(Debug, Clone)]
pub struct Binding<'a> {
    /// The session challenge (`nonce`).
    pub challenge: &'a str,
    /// The session domain (`aud`).
    pub domain: &'a str,
    /// Valid from (Unix seconds; also `iat`).
    pub from: u64,
    /// Valid until (Unix seconds).
    pub until: u64,
}

/// Presents `credentials` (VC-JWT strings or embedded-proof credential objects) as `holder` for a session: a VP-JWT with `nonce` =
/// the challenge and `aud` = the domain, signed with the holder's authentication key.
pub fn present(credentials: &[Value], holder: &str, b: &Binding<'_>, kid: &str, key: &SecretKey) -> Result<String> {
    let claims = json!({
        "iss": holder,
        "aud": b.domain,
        "nonce": b.challenge,
        "nbf": b.from,
        "iat": b.from,
        "exp": b.until,
        "vp": {
            "@context": [CONTEXT_V1],
            "type": ["VerifiablePresentation"],
            "holder": holder,
            "verifiableCredential": credentials,
        },
    });
    jwt::sign(&claims, "JWT", kid, key)
}

/// A credential whose signature, dates and form were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The issuer's DID.
    pub issuer: String,
    /// The subject's DID.
    pub subject: String,
    /// Its types (including `VerifiableCredential`).
    pub types: Vec<String>,
    /// Its id, if any.
    pub id: Option<String>,
    /// The issuer's verification method that signed it.
    pub signed_by: String,
}

/// The same value named twice (a JWT claim and its `vc`/`vp` property) must agree.
fn agree<'a>(claim: Option<&'a str>, prop: Option<&'a str>, name: &str) -> Result<Option<&'a str>> {
    match (claim, prop) {
        (Some(a), Some(b)) if a != b => Err(malformed(format!("{name} is {a} in the JWT but {b} inside it"))),
        (a, b) => Ok(a.or(b)),
    }
}

pub(super) fn id_of(v: Option<&Value>) -> Option<&str> {
    match v? {
        Value::String(s) => Some(s),
        Value::Object(o) => o.get("id").and_then(Value::as_str),
        _ => None,
    }
}

pub(super) fn types_of(obj: &Map<String, Value>, required: &str, what: &str) -> Result<Vec<String>> {
    let types: Vec<String> = match obj.get("type") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    if !types.iter().any(|t| t == required) {
        return Err(malformed(format!("the {what}'s type does not include {required}")));
    }
    match obj.get("@context") {
        Some(Value::Array(a)) if matches!(a.first().and_then(Value::as_str), Some(CONTEXT_V1 | CONTEXT_V2)) => {}
        Some(Value::String(s)) if s == CONTEXT_V1 || s == CONTEXT_V2 => {}
        _ => return Err(malformed(format!("the {what}'s @context does not start with the W3C credentials context"))),
    }
    Ok(types)
}

/// The first of `props` present in `obj`, as an RFC 3339 date-time.
pub(super) fn prop_date(obj: &Map<String, Value>, props: &[&str]) -> Result<Option<i64>> {
    match props.iter().find_map(|p| obj.get(*p).map(|v| (p, v))) {
        None => Ok(None),
        Some((p, v)) => {
            let s = v.as_str().ok_or_else(|| malformed(format!("{p} is not a date-time string")))?;
            time::parse(s).map(Some)
        }
    }
}

/// A date given as a JWT claim and/or an RFC 3339 property (they must agree to the second).
fn date(jwt: &Unverified, claim: &str, obj: &Map<String, Value>, props: &[&str]) -> Result<Option<i64>> {
    match (jwt.time_claim(claim)?, prop_date(obj, props)?) {
        (Some(a), Some(b)) if a != b => Err(malformed(format!("{claim} and {} disagree", props[0]))),
        (a, b) => Ok(a.or(b)),
    }
}

/// Checks `nbf`/`exp` against `now` (with clock skew); `what` names the thing.
pub(super) fn check_dates(nbf: Option<i64>, exp: Option<i64>, now: i64, what: &str) -> Result<()> {
    if let Some(exp) = exp {
        if now >= exp {
            return Err(Error::proof(
                ProofReason::Expired,
                format!("the {what} expired at {}", time::format(exp.max(0) as u64)),
            ));
        }
    }
    if let Some(nbf) = nbf {
        if nbf > now + CLOCK_SKEW_SECS {
            return Err(Error::proof(
                ProofReason::NotYetValid,
                format!("the {what} is not valid before {}", time::format(nbf.max(0) as u64)),
            ));
        }
    }
    Ok(())
}

/// Decodes a VC-JWT and returns its issuer without checking anything else (to decide
/// whether it is worth resolving the issuer's DID at all).
pub fn peek_issuer(compact: &str) -> Result<(String, Vec<String>)> {
    let jwt = jwt::decode(compact, "credential")?;
    let vc =
        jwt.claims.get("vc").and_then(Value::as_object).ok_or_else(|| malformed("the credential has no vc claim"))?;
    let issuer = agree(jwt.str_claim("iss")?, id_of(vc.get("issuer")), "the issuer")?
        .ok_or_else(|| malformed("the credential names no issuer"))?;
    Ok((issuer.to_owned(), types_of(vc, "VerifiableCredential", "credential")?))
}

/// Verifies a VC-JWT: form, the issuer's signature (an `assertionMethod` key of the
/// issuer's DID), and its validity period at `now`.
pub async fn verify_credential(compact: &str, resolver: &dyn DidResolver, now: u64) -> Result<Credential> {
    let jwt = jwt::decode(compact, "credential")?;
    let vc =
        jwt.claims.get("vc").and_then(Value::as_object).ok_or_else(|| malformed("the credential has no vc claim"))?;
    let types = types_of(vc, "VerifiableCredential", "credential")?;
    let issuer = agree(jwt.str_claim("iss")?, id_of(vc.get("issuer")), "the issuer")?
        .ok_or_else(|| malformed("the credential names no issuer"))?
        .to_owned();
    let subject = agree(jwt.str_claim("sub")?, id_of(vc.get("credentialSubject")), "the subject")?
        .ok_or_else(|| malformed("the credential names no subject (sub / credentialSubject.id)"))?
        .to_owned();
    let id =
        agree(jwt.str_claim("jti")?, vc.get("id").and_then(Value::as_str), "the credential id")?.map(str::to_owned);
    let nbf = date(&jwt, "nbf", vc, &["issuanceDate", "validFrom"])?;
    let exp = date(&jwt, "exp", vc, &["expirationDate", "validUntil"])?;
    let signed_by = jwt.verify(&issuer, Relationship::AssertionMethod, resolver).await?;
    check_dates(nbf, exp, now as i64, "credential")?;
    Ok(Credential { issuer, subject, types, id, signed_by })
}

/// What a session expects of a presentation.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// The party presenting it (must be the holder and the credentials' subject).
    pub holder: &'a str,
    /// The session challenge (`nonce`).
    pub challenge: &'a str,
    /// The session domain (`aud`).
    pub domain: &'a str,
    /// Longest allowed `exp - nbf` (or `exp - iat`).
    pub max_validity_secs: u64,
    /// Now (Unix seconds).
    pub now: u64,
}

/// A presentation whose holder signature, binding and dates were checked; its
/// credentials are not checked yet (VC-JWT strings: [`verify_credential`]; objects with
/// an embedded proof: [`super::di::verify_credential`]).
#[derive(Debug, Clone)]
pub struct Presentation {
    /// The holder's DID.
    pub holder: String,
    /// The enclosed credentials.
    pub credentials: Vec<Value>,
}

/// Verifies a VP-JWT: made for this session (`nonce`, `aud`), by the expected holder
/// (an `authentication` key of its DID), within its validity period.
pub async fn verify_presentation(
    compact: &str,
    expect: &Expect<'_>,
    resolver: &dyn DidResolver,
) -> Result<Presentation> {
    let jwt = jwt::decode(compact, "presentation")?;
    let vp =
        jwt.claims.get("vp").and_then(Value::as_object).ok_or_else(|| malformed("the presentation has no vp claim"))?;
    types_of(vp, "VerifiablePresentation", "presentation")?;
    let holder = agree(jwt.str_claim("iss")?, id_of(vp.get("holder")), "the holder")?
        .ok_or_else(|| malformed("the presentation names no holder (iss / vp.holder)"))?
        .to_owned();
    let aud_ok = match jwt.claims.get("aud") {
        Some(Value::String(a)) => a == expect.domain,
        Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(expect.domain)),
        _ => false,
    };
    let nonce = jwt.str_claim("nonce")?.unwrap_or_default();
    if !aud_ok || nonce != expect.challenge {
        return Err(Error::proof(
            ProofReason::NonceReused,
            format!(
                "made for another session (aud {}, nonce {nonce:?}; this session is {} with challenge {})",
                jwt.claims.get("aud").map(Value::to_string).unwrap_or_else(|| "missing".into()),
                expect.domain,
                expect.challenge
            ),
        ));
    }
    if holder != expect.holder {
        return Err(Error::proof(
            ProofReason::SubjectMismatch,
            format!("presented by {holder}, not by the sender {}", expect.holder),
        ));
    }
    let credentials = match vp.get("verifiableCredential") {
        Some(c @ (Value::String(_) | Value::Object(_))) => vec![c.clone()],
        Some(Value::Array(a)) if !a.is_empty() => {
            if let Some(bad) = a.iter().find(|c| !matches!(c, Value::String(_) | Value::Object(_))) {
                return Err(malformed(format!("a credential is neither a JWT nor an object: {bad}")));
            }
            a.clone()
        }
        _ => return Err(malformed("the presentation carries no credential")),
    };
    jwt.verify(&holder, Relationship::Authentication, resolver).await?;
    let start = jwt.time_claim("nbf")?.or(jwt.time_claim("iat")?);
    let exp = jwt.time_claim("exp")?;
    check_dates(start, exp, expect.now as i64, "presentation")?;
    if let (Some(start), Some(exp)) = (start, exp) {
        if exp - start > expect.max_validity_secs as i64 {
            return Err(Error::proof(
                ProofReason::Expired,
                format!(
                    "the presentation is valid for {} s; at most {} s allowed",
                    exp - start,
                    expect.max_validity_secs
                ),
            ));
        }
    }
    if let Some(iat) = jwt.time_claim("iat")? {
        check_dates(Some(iat), None, expect.now as i64, "presentation")?;
    }
    Ok(Presentation { holder, credentials })
}
