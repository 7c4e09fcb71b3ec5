//! DIDs and DID URLs, valid by construction (W3C DID Core §3.1 ABNF).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{clip, Error, Result};

/// Longest DID accepted (did:peer:2 with several keys and services stays far below).
pub const MAX_DID_LEN: usize = 8192;

/// A syntactically valid DID such as `did:key:z6Mk…`.
///
/// ```
/// use did_core::Did;
/// let did: Did = "did:web:example.com".parse().unwrap();
/// assert_eq!(did.method(), "web");
/// assert_eq!(did.method_specific_id(), "example.com");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Did {
    s: String,
    method_end: usize,
}

impl Did {
    /// Parses and validates a DID.
    pub fn parse(input: &str) -> Result<Did> {
        let bad = |reason| Error::InvalidDid { input: clip(input), reason };
        if input.len() > MAX_DID_LEN {
            return Err(bad("too long"));
        }
        let rest = input.strip_prefix("did:").ok_or_else(|| bad("must start with `did:`"))?;
        let colon = rest.find(':').ok_or_else(|| bad("missing method-specific id"))?;
        let method = &rest[..colon];
        if method.is_empty() {
            return Err(bad("empty method name"));
        }
        if !method.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            return Err(bad("method name must be lowercase letters and digits"));
        }
        let msid = &rest[colon + 1..];
        check_method_specific_id(msid, method == "peer").map_err(bad)?;
        Ok(Did { s: input.to_owned(), method_end: 4 + colon })
    }

    /// The method name (`key`, `peer`, `web`, `pkh`, …).
    pub fn method(&self) -> &str {
        &self.s[4..self.method_end]
    }

    /// Everything after `did:<method>:`.
    pub fn method_specific_id(&self) -> &str {
        &self.s[self.method_end + 1..]
    }

    /// The DID as a string.
    pub fn as_str(&self) -> &str {
        &self.s
    }

    /// A DID URL for `#fragment` of this DID.
    pub fn with_fragment(&self, fragment: &str) -> DidUrl {
        DidUrl { did: self.clone(), path_query: String::new(), fragment: Some(fragment.to_owned()) }
    }

    /// A short form for people and logs: `did:key:z6Mk…ab12` (the id's first and last four
    /// characters); short ids, and did:web names up to 40 characters, stay whole.
    pub fn fmt_short(&self) -> String {
        let id = self.method_specific_id();
        let chars: Vec<char> = id.chars().collect();
        if chars.len() <= 12 || (self.method() == "web" && chars.len() <= 40) {
            return self.s.clone();
        }
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("did:{}:{head}…{tail}", self.method())
    }
}

fn check_method_specific_id(msid: &str, lenient_padding: bool) -> std::result::Result<(), &'static str> {
    if msid.is_empty() {
        return Err("empty method-specific id");
    }
    if msid.ends_with(':') {
        return Err("method-specific id must not end with `:`");
    }
    let b = msid.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':') => i += 1,
            // Some deployed did:peer:2 implementations emitted base64 padding.
            b'=' if lenient_padding => i += 1,
            b'%' => {
                if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
                {
                    return Err("invalid percent-encoding");
                }
                i += 3;
            }
            _ => return Err("invalid character in method-specific id"),
        }
    }
    Ok(())
}

impl FromStr for Did {
    type Err = Error;
    fn from_str(s: &str) -> Result<Did> {
        Did::parse(s)
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.s)
    }
}

impl fmt::Debug for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Did({})", self.s)
    }
}

impl AsRef<str> for Did {
    fn as_ref(&self) -> &str {
        &self.s
    }
}

impl Serialize for Did {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.s)
    }
}

impl<'de> Deserialize<'de> for Did {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Did, D::Error> {
        let s = String::deserialize(d)?;
        Did::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A DID URL: a DID plus optional path, query and fragment, e.g. `did:example:alice#key-1`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DidUrl {
    did: Did,
    /// Path and query exactly as given (starting with `/` or `?`), or empty.
    path_query: String,
    fragment: Option<String>,
}

impl DidUrl {
    /// Parses an absolute DID URL.
    pub fn parse(input: &str) -> Result<DidUrl> {
        let bad = |reason| Error::InvalidDidUrl { input: clip(input), reason };
        let (before_frag, fragment) = match input.split_once('#') {
            Some((a, f)) => (a, Some(f)),
            None => (input, None),
        };
        let split = before_frag.find(['/', '?']).unwrap_or(before_frag.len());
        let did = Did::parse(&before_frag[..split]).map_err(|e| match e {
            Error::InvalidDid { reason, .. } => bad(reason),
            other => other,
        })?;
        if before_frag[split..].bytes().any(|c| c.is_ascii_control() || c == b' ' || !c.is_ascii()) {
            return Err(bad("invalid character in path or query"));
        }
        if let Some(f) = fragment {
            if f.is_empty() {
                return Err(bad("empty fragment"));
            }
            if f.bytes().any(|c| c.is_ascii_control() || c == b' ' || c == b'#') {
                return Err(bad("invalid character in fragment"));
            }
        }
        Ok(DidUrl { did, path_query: before_frag[split..].to_owned(), fragment: fragment.map(str::to_owned) })
    }

    /// Resolves `reference` (absolute DID URL, `#frag` or bare fragment) against a base DID.
    pub fn resolve_ref(base: &Did, reference: &str) -> Result<DidUrl> {
        if reference.starts_with("did:") {
            DidUrl::parse(reference)
        } else if let Some(frag) = reference.strip_prefix('#') {
            DidUrl::parse(&format!("{base}#{frag}"))
        } else if !reference.is_empty() && !reference.contains(['/', '?', ':']) {
            DidUrl::parse(&format!("{base}#{reference}"))
        } else {
            Err(Error::InvalidDidUrl { input: clip(reference), reason: "not a DID URL or fragment reference" })
        }
    }

    /// The DID part.
    pub fn did(&self) -> &Did {
        &self.did
    }

    /// The fragment without `#`, if any.
    pub fn fragment(&self) -> Option<&str> {
        self.fragment.as_deref()
    }
}

impl fmt::Display for DidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.did, self.path_query)?;
        if let Some(frag) = &self.fragment {
            write!(f, "#{frag}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DidUrl({self})")
    }
}

impl FromStr for DidUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<DidUrl> {
        DidUrl::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_dids() {
        for s in [
            "did:example:123456789abcdefghi",
            "did:web:example.com%3A8443:user:alice",
            "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            "did:pkh:eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a",
        ] {
            let d = Did::parse(s).unwrap();
            assert_eq!(d.to_string(), s);
        }
    }

    #[test]
    fn invalid_dids() {
        for s in [
            "",
            "did:",
            "did:x",
            "did::abc",
            "did:Web:x",
            "did:web:",
            "did:web:a:",
            "did:web:a b",
            "did:web:%4",
            "did:web:%zz",
            "dix:web:a",
            "did:web:a#b",
        ] {
            assert!(Did::parse(s).is_err(), "{s} should be invalid");
        }
        assert!(Did::parse("did:peer:2.Ez6LS.SeyJ0IjoiZG0ifQ==").is_ok());
        assert!(Did::parse("did:web:eyJ0IjoiZG0ifQ==").is_err());
    }

    #[test]
    fn did_urls() {
        let u = DidUrl::parse("did:example:alice#key-1").unwrap();
        assert_eq!(u.did().as_str(), "did:example:alice");
        assert_eq!(u.fragment(), Some("key-1"));
        let base = Did::parse("did:example:bob").unwrap();
        assert_eq!(DidUrl::resolve_ref(&base, "#k").unwrap().to_string(), "did:example:bob#k");
        assert_eq!(DidUrl::resolve_ref(&base, "k").unwrap().to_string(), "did:example:bob#k");
        assert!(DidUrl::parse("did:example:bob#").is_err());
        assert!(DidUrl::parse("did:example:bob/a b").is_err());
        assert!(DidUrl::parse("did:example:bob?q=\u{1}").is_err());
        assert_eq!(DidUrl::parse("did:example:bob/path?q=1#f").unwrap().to_string(), "did:example:bob/path?q=1#f");
    }
}
