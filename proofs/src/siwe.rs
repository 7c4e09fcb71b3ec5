//! Sign-In with Ethereum (EIP-4361): the exact message text, a strict parser of its ABNF,
//! and verification of an EIP-191 `personal_sign` signature by public key recovery.
//!
//! For a didmpc session the message's `domain` is the session ([`super::domain`]), its
//! `uri` the party's DID, its `nonce` the session challenge ([`super::challenge`]) and its
//! `expiration-time` is required and bounded (see `specs/proofs.md`).

use std::fmt;

use super::eth::{self, Account, Address};
use super::time;
use crate::error::{Error, ProofReason, Result};

/// Longest message we parse.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
/// Clock skew allowed for `Issued At` and `Not Before` (seconds).
pub const CLOCK_SKEW_SECS: i64 = 300;

const HEADER_TAIL: &str = " wants you to sign in with your Ethereum account:";

/// An EIP-4361 message. Its [`fmt::Display`] is the exact text that is signed; for a
/// parsed message it is the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Optional URI scheme before the domain.
    pub scheme: Option<String>,
    /// RFC 3986 authority asking for the signature.
    pub domain: String,
    /// The signing account, EIP-55 checksummed.
    pub address: Address,
    /// Optional human-readable statement (one line).
    pub statement: Option<String>,
    /// RFC 3986 URI the signature is about (here: the party's DID).
    pub uri: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// At least 8 alphanumerics (here: the session challenge).
    pub nonce: String,
    /// RFC 3339 `Issued At`, as written.
    pub issued_at: String,
    /// RFC 3339 `Expiration Time`, as written.
    pub expiration_time: Option<String>,
    /// RFC 3339 `Not Before`, as written.
    pub not_before: Option<String>,
    /// `Request ID` (pchars).
    pub request_id: Option<String>,
    /// `Resources` (URIs).
    pub resources: Vec<String>,
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.scheme {
            write!(f, "{s}://")?;
        }
        write!(f, "{}{HEADER_TAIL}\n{}\n\n", self.domain, self.address)?;
        if let Some(s) = &self.statement {
            writeln!(f, "{s}")?;
        }
        write!(
            f,
            "\nURI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}",
            self.uri, self.chain_id, self.nonce, self.issued_at
        )?;
        if let Some(t) = &self.expiration_time {
            write!(f, "\nExpiration Time: {t}")?;
        }
        if let Some(t) = &self.not_before {
            write!(f, "\nNot Before: {t}")?;
        }
        if let Some(r) = &self.request_id {
            write!(f, "\nRequest ID: {r}")?;
        }
        if !self.resources.is_empty() {
            write!(f, "\nResources:")?;
            for r in &self.resources {
                write!(f, "\n- {r}")?;
            }
        }
        Ok(())
    }
}

fn malformed(why: impl Into<String>) -> Error {
    Error::proof(ProofReason::Malformed, format!("not an EIP-4361 message: {}", why.into()))
}

fn unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~".contains(&c)
}
fn sub_delim(c: u8) -> bool {
    b"!$&'()*+,;=".contains(&c)
}
fn reserved(c: u8) -> bool {
    sub_delim(c) || b":/?#[]@".contains(&c)
}

/// True if every byte of `s` is allowed by `ok` or starts a valid `%XX`.
fn chars_ok(s: &str, ok: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if ok(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn pchar(c: u8) -> bool {
    unreserved(c) || sub_delim(c) || c == b':' || c == b'@'
}

/// `scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`.
fn is_scheme(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b[0].is_ascii_alphabetic() && b.iter().all(|&c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
}

/// RFC 3986 `authority = [ userinfo "@" ] host [ ":" port ]` with a non-empty host.
pub fn is_authority(s: &str) -> bool {
    let (userinfo, hostport) = match s.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, s),
    };
    if let Some(u) = userinfo {
        if !chars_ok(u, |c| unreserved(c) || sub_delim(c) || c == b':') {
            return false;
        }
    }
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let Some((lit, after)) = rest.split_once(']') else { return false };
        let lit_ok =
            !lit.is_empty() && lit.bytes().all(|c| c.is_ascii_alphanumeric() || b":.-_~!$&'()*+,;=".contains(&c));
        if !lit_ok {
            return false;
        }
        match after.strip_prefix(':') {
            Some(p) => ("[]", Some(p)),
            None if after.is_empty() => ("[]", None),
            None => return false,
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    !host.is_empty()
        && (host == "[]" || chars_ok(host, |c| unreserved(c) || sub_delim(c)))
        && port.is_none_or(|p| p.bytes().all(|c| c.is_ascii_digit()))
}

/// RFC 3986 `URI = scheme ":" hier-part [ "?" query ] [ "#" fragment ]`.
pub fn is_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else { return false };
    if !is_scheme(scheme) {
        return false;
    }
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let (hier, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    let qf_ok = |x: Option<&str>| x.is_none_or(|x| chars_ok(x, |c| pchar(c) || c == b'/' || c == b'?'));
    let path_ok = |p: &str| chars_ok(p, |c| pchar(c) || c == b'/');
    let hier_ok = match hier.strip_prefix("//") {
        Some(auth_path) => {
            let (auth, path) = auth_path.find('/').map_or((auth_path, ""), |i| auth_path.split_at(i));
            (auth.is_empty() || is_authority(auth)) && path_ok(path)
        }
        None => path_ok(hier),
    };
    hier_ok && qf_ok(query) && qf_ok(fragment)
}

/// Takes the line starting with `tag` (or None if the next line has another tag).
fn tagged<'a>(lines: &[&'a str], at: &mut usize, tag: &str) -> Option<&'a str> {
    let v = lines.get(*at)?.strip_prefix(tag)?;
    *at += 1;
    Some(v)
}

fn required<'a>(lines: &[&'a str], at: &mut usize, tag: &str) -> Result<&'a str> {
    tagged(lines, at, tag).ok_or_else(|| malformed(format!("line {} must start with {tag:?}", *at + 1)))
}

fn date_time(v: &str, what: &str) -> Result<String> {
    time::parse(v).map_err(|_| malformed(format!("{what} {v:?} is not an RFC 3339 date-time")))?;
    Ok(v.to_owned())
}

/// Parses an EIP-4361 message, strictly: LF line ends, fields in the ABNF's order, no
/// trailing newline, an EIP-55 checksummed address, RFC 3986 domain and URIs, RFC 3339
/// timestamps, version 1.
pub fn parse(text: &str) -> Result<Message> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(malformed(format!("longer than {MAX_MESSAGE_BYTES} bytes")));
    }
    let lines: Vec<&str> = text.split('\n').collect();
    let header = lines[0].strip_suffix(HEADER_TAIL).ok_or_else(|| malformed("the first line is not a SIWE header"))?;
    let (scheme, domain) = match header.split_once("://") {
        Some((s, d)) if is_scheme(s) => (Some(s.to_owned()), d),
        Some(_) => return Err(malformed("bad scheme")),
        None => (None, header),
    };
    if !is_authority(domain) {
        return Err(malformed(format!("domain {domain:?} is not an RFC 3986 authority")));
    }
    let addr = lines.get(1).ok_or_else(|| malformed("no address line"))?;
    let address = Address::parse_checksummed(addr).map_err(|e| malformed(format!("address: {e}")))?;
    if lines.get(2) != Some(&"") {
        return Err(malformed("an empty line must follow the address"));
    }
    let mut at;
    let statement = match lines.get(3) {
        Some(&"") => {
            at = 4;
            None
        }
        Some(s) => {
            if s.is_empty() || !s.bytes().all(|c| reserved(c) || unreserved(c) || c == b' ') {
                return Err(malformed("the statement has characters EIP-4361 does not allow"));
            }
            if lines.get(4) != Some(&"") {
                return Err(malformed("an empty line must follow the statement"));
            }
            at = 5;
            Some((*s).to_owned())
        }
        None => return Err(malformed("truncated after the address")),
    };
    let uri = required(&lines, &mut at, "URI: ")?;
    if !is_uri(uri) {
        return Err(malformed(format!("URI {uri:?} is not an RFC 3986 URI")));
    }
    if required(&lines, &mut at, "Version: ")? != "1" {
        return Err(malformed("only version 1 exists"));
    }
    let chain = required(&lines, &mut at, "Chain ID: ")?;
    if chain.is_empty() || !chain.bytes().all(|c| c.is_ascii_digit()) {
        return Err(malformed(format!("chain id {chain:?} is not a number")));
    }
    let chain_id = chain.parse().map_err(|_| malformed(format!("chain id {chain} is too large")))?;
    let nonce = required(&lines, &mut at, "Nonce: ")?;
    if nonce.len() < 8 || !nonce.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(malformed("the nonce must be at least 8 letters or digits"));
    }
    let issued_at = date_time(required(&lines, &mut at, "Issued At: ")?, "Issued At")?;
    let expiration_time =
        tagged(&lines, &mut at, "Expiration Time: ").map(|v| date_time(v, "Expiration Time")).transpose()?;
    let not_before = tagged(&lines, &mut at, "Not Before: ").map(|v| date_time(v, "Not Before")).transpose()?;
    let request_id = tagged(&lines, &mut at, "Request ID: ").map(str::to_owned);
    if let Some(r) = &request_id {
        if !chars_ok(r, pchar) {
            return Err(malformed("the request id has characters outside RFC 3986 pchar"));
        }
    }
    let mut resources = Vec::new();
    if lines.get(at) == Some(&"Resources:") {
        at += 1;
        while let Some(r) = lines.get(at).and_then(|l| l.strip_prefix("- ")) {
            if !is_uri(r) {
                return Err(malformed(format!("resource {r:?} is not an RFC 3986 URI")));
            }
            resources.push(r.to_owned());
            at += 1;
        }
    }
    if at != lines.len() {
        return Err(malformed(format!("unexpected line {}: {:?}", at + 1, lines[at])));
    }
    Ok(Message {
        scheme,
        domain: domain.to_owned(),
        address,
        statement,
        uri: uri.to_owned(),
        chain_id,
        nonce: nonce.to_owned(),
        issued_at,
        expiration_time,
        not_before,
        request_id,
        resources,
    })
}

/// What a session expects of a SIWE proof.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// The session's domain.
    pub domain: &'a str,
    /// The session challenge.
    pub nonce: &'a str,
    /// The DID of the party presenting it.
    pub uri: &'a str,
    /// Longest allowed `Expiration Time - Issued At` (seconds).
    pub max_validity_secs: u64,
    /// Now (Unix seconds).
    pub now: u64,
}

/// A verified proof: the account that signed it.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The account (message chain id + recovered address).
    pub account: Account,
    /// The message.
    pub message: Message,
}

/// Verifies `text` signed (`personal_sign`) as `signature` against what the session
/// expects. Each failure is a [`ProofReason`]: malformed, bad signature, nonce reused
/// (domain or nonce of another session), subject mismatch (another DID), expired, not yet
/// valid.
pub fn verify(text: &str, signature: &str, expect: &Expect<'_>) -> Result<Verified> {
    let m = parse(text)?;
    let sig = eth::parse_signature(signature)?;
    let signer = eth::recover(&eth::personal_digest(text.as_bytes()), &sig)?;
    if signer != m.address {
        return Err(Error::proof(
            ProofReason::BadSignature,
            format!("signed by {signer}, but the message is for account {}", m.address),
        ));
    }
    if m.domain != expect.domain || m.nonce != expect.nonce || m.scheme.is_some() {
        return Err(Error::proof(
            ProofReason::NonceReused,
            format!(
                "made for another session (domain {}, nonce {}; this session is {} with nonce {})",
                m.domain, m.nonce, expect.domain, expect.nonce
            ),
        ));
    }
    if m.uri != expect.uri {
        return Err(Error::proof(
            ProofReason::SubjectMismatch,
            format!("the message links the account to {}, not to the sender {}", m.uri, expect.uri),
        ));
    }
    let now = expect.now as i64;
    let iat = time::parse(&m.issued_at)?;
    let Some(exp) = &m.expiration_time else {
        return Err(Error::proof(ProofReason::Expired, "no Expiration Time: this session needs proofs that expire"));
    };
    let exp = time::parse(exp)?;
    if now >= exp {
        return Err(Error::proof(ProofReason::Expired, format!("expired at {}", time::format(exp.max(0) as u64))));
    }
    if exp - iat > expect.max_validity_secs as i64 {
        return Err(Error::proof(
            ProofReason::Expired,
            format!("valid for {} s; at most {} s allowed", exp - iat, expect.max_validity_secs),
        ));
    }
    if iat > now + CLOCK_SKEW_SECS {
        return Err(Error::proof(ProofReason::NotYetValid, format!("issued in the future ({})", m.issued_at)));
    }
    if let Some(nbf) = &m.not_before {
        if time::parse(nbf)? > now + CLOCK_SKEW_SECS {
            return Err(Error::proof(ProofReason::NotYetValid, format!("not valid before {nbf}")));
        }
    }
    Ok(Verified { account: Account { chain: m.chain_id, address: m.address }, message: m })
}
