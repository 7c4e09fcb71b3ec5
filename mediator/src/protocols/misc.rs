//! Trust Ping 2.0, Discover Features 2.0 and Out-of-Band short links.

use did_core::didcomm::{message::now, oob, Message};
use serde_json::{json, Value};

use super::{codes, problem_reply, reply, DISCLOSED, DISCOVER_2, OOB_LINK_1, TRUST_PING_2};
use crate::error::Result;
use crate::state::Mediator;
use crate::store::NewLink;

/// Longest lifetime of a short link, seconds.
pub const MAX_LINK_TTL: u64 = 30 * 24 * 3600;

/// Trust Ping: answers unless `response_requested` is false.
pub fn trust_ping(msg: &Message) -> Option<Message> {
    let wanted = msg.body.get("response_requested").and_then(Value::as_bool).unwrap_or(true);
    wanted.then(|| reply(msg, format!("{TRUST_PING_2}/ping-response"), json!({})))
}

/// Most queries in one Discover Features `queries` message.
pub const MAX_QUERIES: usize = 50;
/// Longest `match` pattern, bytes.
pub const MAX_PATTERN_BYTES: usize = 256;

/// Discover Features: discloses our protocols matching the queries (`*` wildcards). More than
/// [`MAX_QUERIES`] queries or a pattern longer than [`MAX_PATTERN_BYTES`] gets a problem report.
pub fn discover(msg: &Message) -> Message {
    let empty = Vec::new();
    let queries = msg.body.get("queries").and_then(Value::as_array).unwrap_or(&empty);
    if queries.len() > MAX_QUERIES {
        return problem_reply(msg, codes::BAD_REQUEST, &format!("at most {MAX_QUERIES} queries per message"));
    }
    let mut disclosures = Vec::new();
    for q in queries {
        if q.get("feature-type").and_then(Value::as_str) != Some("protocol") {
            continue;
        }
        let pattern = q.get("match").and_then(Value::as_str).unwrap_or_default();
        if pattern.len() > MAX_PATTERN_BYTES {
            return problem_reply(
                msg,
                codes::BAD_REQUEST,
                &format!("a `match` pattern is limited to {MAX_PATTERN_BYTES} bytes"),
            );
        }
        for (proto, role) in DISCLOSED {
            if glob(pattern, proto) && !disclosures.iter().any(|d: &Value| d["id"] == *proto) {
                disclosures.push(json!({"feature-type": "protocol", "id": proto, "roles": [role]}));
            }
        }
    }
    reply(msg, format!("{DISCOVER_2}/disclose"), json!({ "disclosures": disclosures }))
}

/// Whether `s` matches `pattern`, in which `*` stands for any run of characters.
///
/// The literal pieces between stars must appear in order: the first as a prefix, the last as a
/// suffix, each middle one at its leftmost place after the previous one (taking the leftmost
/// place never loses a match, so there is no backtracking). Each piece is searched once with
/// `str::find` (linear), so the time is linear in `|pattern| + |s|` however many stars there are.
pub fn glob(pattern: &str, s: &str) -> bool {
    let mut pieces = pattern.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let Some(mut last) = pieces.next() else {
        return rest.is_empty();
    };
    for next in pieces {
        match rest.find(last) {
            Some(i) => rest = &rest[i + last.len()..],
            None => return false,
        }
        last = next;
    }
    rest.ends_with(last)
}

/// OOB short links: `create` stores an invitation and answers with its `_oobid` URL.
pub async fn oob_link(m: &Mediator, name: &str, msg: &Message, sender: &str) -> Result<Message> {
    if name != "create" {
        return Ok(problem_reply(msg, codes::UNSUPPORTED, "only `create` is defined"));
    }
    if !m.store.is_granted(sender).await? {
        return Ok(problem_reply(msg, codes::NOT_GRANTED, "short links are for parties this mediator serves"));
    }
    let Some(inv) = msg.body.get("invitation") else {
        return Ok(problem_reply(msg, codes::BAD_REQUEST, "`invitation` is required"));
    };
    let text = inv.to_string();
    if text.len() > oob::MAX_URL_BYTES {
        return Ok(problem_reply(msg, codes::TOO_BIG, "invitation too large"));
    }
    if let Err(e) = oob::from_url(&text) {
        return Ok(problem_reply(msg, codes::BAD_REQUEST, &format!("not an OOB 2.0 invitation: {e}")));
    }
    let ttl = msg.body.get("ttl_secs").and_then(Value::as_u64).unwrap_or(24 * 3600).min(MAX_LINK_TTL);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let link =
        NewLink { client: sender.to_owned(), id: id.clone(), invitation: text, now: now(), expires_at: now() + ttl };
    let max = m.config.limits.max_links_per_client;
    if !m.store.put_oob(link, max).await? {
        m.metrics.refused.inc(crate::quota::Refusal::Links);
        return Ok(problem_reply(
            msg,
            codes::LINK_QUOTA,
            &format!("you hold {max} unexpired short links, the most a client may; wait for one to expire"),
        ));
    }
    let url = format!("{}/oob?_oobid={id}", m.base_urls[0]);
    Ok(reply(msg, format!("{OOB_LINK_1}/created"), json!({"id": id, "url": url, "expires_time": now() + ttl})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing() {
        assert!(glob("", ""));
        assert!(!glob("", "x"));
        assert!(glob("*", ""));
        assert!(glob("a*", "a"));
        assert!(glob("*a", "ba"));
        assert!(!glob("*a", "ab"));
        assert!(glob("a*b*c", "abc"));
        assert!(glob("a*b*c", "aXbYbZc"));
        assert!(!glob("a*b*c", "aXcYb"));
        assert!(!glob("ab*ba", "aba"), "prefix and suffix may not overlap");
        assert!(glob("ab*ba", "abba"));
        assert!(glob("**x**", "yxy"));
        assert!(glob("é*ü", "éaü"));
        assert!(glob("*/2.*", "https://didcomm.org/routing/2.0"));
        assert!(glob("https://didcomm.org/*", "https://didcomm.org/routing/2.0"));
        assert!(glob("https://didcomm.org/messagepickup/3.*", "https://didcomm.org/messagepickup/3.0"));
        assert!(!glob("https://didcomm.org/messagepickup/2.*", "https://didcomm.org/messagepickup/3.0"));
        assert!(glob("*", "x"));
        assert!(glob("https://didcomm.org/routing/2.0", "https://didcomm.org/routing/2.0"));
    }

    /// Compares with a plain backtracking matcher (fine on short inputs) over every pattern
    /// and subject built from a small alphabet.
    #[test]
    fn glob_agrees_with_backtracking() {
        fn slow(p: &[u8], s: &[u8]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some((b'*', rest)) => (0..=s.len()).any(|i| slow(rest, &s[i..])),
                Some((c, rest)) => s.first() == Some(c) && slow(rest, &s[1..]),
            }
        }
        let words = |n: usize, alphabet: &[u8]| {
            let mut out = vec![Vec::new()];
            for len in 1..=n {
                let mut ws = vec![Vec::new()];
                for _ in 0..len {
                    ws = ws.iter().flat_map(|w| alphabet.iter().map(move |c| [w.as_slice(), &[*c]].concat())).collect();
                }
                out.extend(ws);
            }
            out
        };
        for p in words(5, b"ab*") {
            for s in words(5, b"ab") {
                let (ps, ss) = (std::str::from_utf8(&p).unwrap(), std::str::from_utf8(&s).unwrap());
                assert_eq!(glob(ps, ss), slow(&p, &s), "{ps:?} {ss:?}");
            }
        }
    }

    /// The pattern that took 25 s with the old recursive matcher: many stars, no match.
    /// Answered at once (a `cargo test` run would not finish otherwise).
    #[test]
    fn pathological_pattern() {
        let subject = "https://didcomm.org/coordinate-mediation/2.0";
        let pattern = format!("{}!", "*o".repeat(120));
        assert!(pattern.len() <= MAX_PATTERN_BYTES);
        assert!(!glob(&pattern, subject));
        let stars = "*".repeat(MAX_PATTERN_BYTES - 1) + "!";
        assert!(!glob(&stars, subject));
        let q = Message::new(
            format!("{DISCOVER_2}/queries"),
            json!({"queries": [{"feature-type": "protocol", "match": pattern}, {"feature-type": "protocol", "match": stars}]}),
        );
        let d = discover(&q);
        assert_eq!(d.body["disclosures"], json!([]));
    }

    #[test]
    fn discover_bounds() {
        let long = "*".repeat(MAX_PATTERN_BYTES + 1);
        let q = Message::new(
            format!("{DISCOVER_2}/queries"),
            json!({"queries": [{"feature-type": "protocol", "match": long}]}),
        );
        assert_eq!(discover(&q).body["code"], codes::BAD_REQUEST);
        let many: Vec<Value> = (0..=MAX_QUERIES).map(|_| json!({"feature-type": "protocol", "match": "x"})).collect();
        let q = Message::new(format!("{DISCOVER_2}/queries"), json!({ "queries": many }));
        assert_eq!(discover(&q).body["code"], codes::BAD_REQUEST);
        // other feature types and missing fields are skipped, not refused
        let q = Message::new(
            format!("{DISCOVER_2}/queries"),
            json!({"queries": [{"feature-type": "goal-code", "match": "*"}, {}, 7, {"feature-type": "protocol"}]}),
        );
        assert_eq!(discover(&q).body["disclosures"], json!([]));
    }

    #[test]
    fn ping_and_discover() {
        let ping = Message::new(format!("{TRUST_PING_2}/ping"), json!({"response_requested": false}));
        assert!(trust_ping(&ping).is_none());
        let ping = Message::new(format!("{TRUST_PING_2}/ping"), json!({})).from("did:ex:a");
        let pong = trust_ping(&ping).unwrap();
        assert_eq!(pong.thid.as_deref(), Some(ping.id.as_str()));
        assert_eq!(pong.to, Some(vec!["did:ex:a".to_owned()]));
        let q = Message::new(
            format!("{DISCOVER_2}/queries"),
            json!({"queries": [{"feature-type": "protocol", "match": "https://didcomm.org/coordinate-mediation/*"}]}),
        );
        let d = discover(&q);
        assert_eq!(d.body["disclosures"].as_array().unwrap().len(), 2);
    }
}
