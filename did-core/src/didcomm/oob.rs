//! Out-of-Band 2.0 invitations: build, encode as a `?_oob=` URL, decode.

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::jose::b64e;

use super::message::{Attachment, Message};

/// The OOB 2.0 invitation message type.
pub const INVITATION: &str = "https://didcomm.org/out-of-band/2.0/invitation";
/// Longest invitation URL decoded.
pub const MAX_URL_BYTES: usize = 64 * 1024;

/// Builds an invitation from `from` with a goal code, goal text and attachments.
pub fn invitation(from: &str, goal_code: &str, goal: &str, attachments: Vec<Attachment>) -> Message {
    let mut m = Message::new(INVITATION, json!({"goal_code": goal_code, "goal": goal, "accept": ["didcomm/v2"]}));
    m.from = Some(from.to_owned());
    m.created_time = None;
    if !attachments.is_empty() {
        m.attachments = Some(attachments);
    }
    m
}

/// `base` with `_oob=<base64url(invitation)>` appended.
pub fn to_url(inv: &Message, base: &str) -> String {
    let mut v = inv.to_value();
    if let Value::Object(m) = &mut v {
        m.remove("typ");
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}_oob={}", b64e(v.to_string()))
}

/// What an invitation URL carries.
#[derive(Debug, Clone)]
pub enum OobRef {
    /// The whole invitation.
    Invitation(Box<Message>),
    /// A short link id (`_oobid`) to fetch from the URL's host.
    ShortLink(String),
}

/// Decodes an invitation URL (`_oob`, base64url with or without padding, or standard
/// base64), or a bare invitation JSON, or a short link (`_oobid`).
pub fn from_url(url: &str) -> Result<OobRef> {
    if url.len() > MAX_URL_BYTES {
        return Err(Error::TooLarge { size: url.len(), limit: MAX_URL_BYTES });
    }
    let trimmed = url.trim();
    if trimmed.starts_with('{') {
        return parse_invitation(trimmed.as_bytes()).map(|m| OobRef::Invitation(Box::new(m)));
    }
    let query = trimmed.split_once('?').map(|(_, q)| q).unwrap_or(trimmed);
    let query = query.split('#').next().unwrap_or_default();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)?;
        match k {
            "_oob" => {
                let bytes = decode_any_b64(&v)?;
                return parse_invitation(&bytes).map(|m| OobRef::Invitation(Box::new(m)));
            }
            "_oobid" if !v.is_empty() => return Ok(OobRef::ShortLink(v)),
            _ => {}
        }
    }
    Err(Error::malformed("URL has no `_oob` or `_oobid` parameter"))
}

fn parse_invitation(bytes: &[u8]) -> Result<Message> {
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| Error::malformed(format!("invitation is not JSON: {e}")))?;
    let m = Message::from_value(v)?;
    if m.type_ != INVITATION && m.type_ != "https://didcomm.org/out-of-band/2.1/invitation" {
        return Err(Error::malformed(format!("not an OOB 2.0 invitation but {}", crate::error::clip(&m.type_))));
    }
    if m.from.is_none() {
        return Err(Error::malformed("invitation has no `from`"));
    }
    Ok(m)
}

fn decode_any_b64(s: &str) -> Result<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let t = s.trim_end_matches('=');
    URL_SAFE_NO_PAD.decode(t).or_else(|_| STANDARD.decode(s)).map_err(|_| Error::malformed("`_oob` is not base64"))
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| Error::malformed("bad %-escape in URL"))?;
                out.push(byte);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| Error::malformed("URL parameter is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_roundtrip_and_variants() {
        let inv = invitation("did:example:alice", "streamlined-vp", "join", vec![]);
        let url = to_url(&inv, "https://example.com/path");
        assert!(url.starts_with("https://example.com/path?_oob=eyJ"));
        let OobRef::Invitation(back) = from_url(&url).unwrap() else { panic!() };
        assert_eq!(back.id, inv.id);
        assert_eq!(back.body["accept"][0], "didcomm/v2");
        // padded, standard base64 and %-escaped forms decode too
        let json = inv.to_json();
        use base64::Engine;
        let std = base64::engine::general_purpose::STANDARD
            .encode(&json)
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert!(matches!(from_url(&format!("https://x/?a=1&_oob={std}")).unwrap(), OobRef::Invitation(_)));
        assert!(matches!(from_url("https://x/?_oobid=abc123").unwrap(), OobRef::ShortLink(s) if s == "abc123"));
        assert!(from_url("https://x/?foo=bar").is_err());
        assert!(from_url("https://x/?_oob=!!!").is_err());
        let not_inv = b64e(serde_json::json!({"id": "1", "type": "x", "from": "did:ex:a"}).to_string());
        assert!(from_url(&format!("https://x/?_oob={not_inv}")).is_err());
    }

    /// The example invitation URL published in the DIDComm v2 spec (Out Of Band Messages).
    #[test]
    fn spec_example_url() {
        let url = "http://example.com/path?_oob=eyJ0eXBlIjoiaHR0cHM6Ly9kaWRjb21tLm9yZy9vdXQtb2YtYmFuZC8yLjAvaW52aXRhdGlvbiIsImlkIjoiNjkyMTJhM2EtZDA2OC00ZjlkLWEyZGQtNDc0MWJjYTg5YWYzIiwiZnJvbSI6ImRpZDpleGFtcGxlOmFsaWNlIiwiYm9keSI6eyJnb2FsX2NvZGUiOiIiLCJnb2FsIjoiIn0sImF0dGFjaG1lbnRzIjpbeyJpZCI6InJlcXVlc3QtMCIsIm1pbWUtdHlwZSI6ImFwcGxpY2F0aW9uL2pzb24iLCJkYXRhIjp7Impzb24iOiI8anNvbiBvZiBwcm90b2NvbCBtZXNzYWdlPiJ9fV19";
        let OobRef::Invitation(inv) = from_url(url).unwrap() else { panic!() };
        assert_eq!(inv.from.as_deref(), Some("did:example:alice"));
        assert_eq!(inv.id, "69212a3a-d068-4f9d-a2dd-4741bca89af3");
    }
}
