//! DIDComm v2 plaintext messages and attachments.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Media type of plaintext messages.
pub const PLAIN: &str = "application/didcomm-plain+json";
/// Media type of signed messages.
pub const SIGNED: &str = "application/didcomm-signed+json";
/// Media type of encrypted messages.
pub const ENCRYPTED: &str = "application/didcomm-encrypted+json";

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A DIDComm v2 plaintext message. Headers other than the standard ones are kept in
/// `extra` (e.g. `please_ack`, `ack`, `return_route`, `lang`).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// Unique message id.
    pub id: String,
    /// Message type URI.
    pub type_: String,
    /// Sender DID.
    pub from: Option<String>,
    /// Recipient DIDs.
    pub to: Option<Vec<String>>,
    /// Thread id.
    pub thid: Option<String>,
    /// Parent thread id.
    pub pthid: Option<String>,
    /// Creation time (seconds since the epoch).
    pub created_time: Option<u64>,
    /// Expiry time (seconds since the epoch).
    pub expires_time: Option<u64>,
    /// The body (a JSON object).
    pub body: Value,
    /// Attachments.
    pub attachments: Option<Vec<Attachment>>,
    /// A JWT announcing a DID rotation.
    pub from_prior: Option<String>,
    /// Other headers, verbatim.
    pub extra: Map<String, Value>,
}

/// A DIDComm attachment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Attachment id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Human-readable description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Suggested file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Media type of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Format identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Last modification time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lastmod_time: Option<u64>,
    /// Size of the content in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_count: Option<u64>,
    /// The content.
    pub data: AttachmentData,
}

/// Attachment content: inline JSON, inline base64, or links with a hash.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AttachmentData {
    /// Inline JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
    /// Inline base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base64: Option<String>,
    /// Links to the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
    /// Multihash of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// A JWS over the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jws: Option<Value>,
}

impl Attachment {
    /// An attachment with inline JSON.
    pub fn json(v: Value) -> Attachment {
        Attachment {
            id: None,
            description: None,
            filename: None,
            media_type: None,
            format: None,
            lastmod_time: None,
            byte_count: None,
            data: AttachmentData { json: Some(v), ..Default::default() },
        }
    }
}

const KNOWN: [&str; 11] =
    ["id", "type", "from", "to", "thid", "pthid", "created_time", "expires_time", "body", "attachments", "from_prior"];

impl Message {
    /// A new message with a random id, the current time and an object body.
    pub fn new(type_: impl Into<String>, body: Value) -> Message {
        Message {
            id: uuid::Uuid::new_v4().to_string(),
            type_: type_.into(),
            from: None,
            to: None,
            thid: None,
            pthid: None,
            created_time: Some(now()),
            expires_time: None,
            body,
            attachments: None,
            from_prior: None,
            extra: Map::new(),
        }
    }

    /// Sets `from`.
    pub fn from(mut self, did: impl Into<String>) -> Message {
        self.from = Some(did.into());
        self
    }

    /// Sets `to` to one DID.
    pub fn to(mut self, did: impl Into<String>) -> Message {
        self.to = Some(vec![did.into()]);
        self
    }

    /// Sets `thid`.
    pub fn thid(mut self, thid: impl Into<String>) -> Message {
        self.thid = Some(thid.into());
        self
    }

    /// The thread id: `thid`, or the message id for a thread's first message.
    pub fn thread_id(&self) -> &str {
        self.thid.as_deref().unwrap_or(&self.id)
    }

    /// Parses a plaintext message, with a clear error for each missing or mistyped header.
    pub fn from_value(v: Value) -> Result<Message> {
        let Value::Object(mut m) = v else {
            return Err(Error::malformed("message is not a JSON object"));
        };
        if let Some(typ) = m.get("typ").and_then(Value::as_str) {
            if typ != PLAIN && typ != "didcomm-plain+json" {
                return Err(Error::malformed(format!("plaintext `typ` is {typ:?}")));
            }
        }
        fn take<T: serde::de::DeserializeOwned>(m: &mut Map<String, Value>, k: &str) -> Result<Option<T>> {
            match m.remove(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => {
                    serde_json::from_value(v).map(Some).map_err(|e| Error::malformed(format!("header `{k}`: {e}")))
                }
            }
        }
        let id: String = take(&mut m, "id")?.ok_or_else(|| Error::malformed("message has no `id`"))?;
        let type_: String = take(&mut m, "type")?.ok_or_else(|| Error::malformed("message has no `type`"))?;
        let body = m.remove("body").unwrap_or_else(|| Value::Object(Map::new()));
        if !body.is_object() {
            return Err(Error::malformed("message `body` is not an object"));
        }
        let msg = Message {
            id,
            type_,
            from: take(&mut m, "from")?,
            to: take(&mut m, "to")?,
            thid: take(&mut m, "thid")?,
            pthid: take(&mut m, "pthid")?,
            created_time: take(&mut m, "created_time")?,
            expires_time: take(&mut m, "expires_time")?,
            body,
            attachments: take(&mut m, "attachments")?,
            from_prior: take(&mut m, "from_prior")?,
            extra: {
                m.remove("typ");
                m
            },
        };
        Ok(msg)
    }

    /// The JSON form, with `typ` set to the plaintext media type.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), self.id.clone().into());
        m.insert("typ".into(), PLAIN.into());
        m.insert("type".into(), self.type_.clone().into());
        let mut opt = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        opt("from", self.from.clone().map(Value::from));
        opt("to", self.to.clone().map(Value::from));
        opt("thid", self.thid.clone().map(Value::from));
        opt("pthid", self.pthid.clone().map(Value::from));
        opt("created_time", self.created_time.map(Value::from));
        opt("expires_time", self.expires_time.map(Value::from));
        opt("attachments", self.attachments.as_ref().and_then(|a| serde_json::to_value(a).ok()));
        opt("from_prior", self.from_prior.clone().map(Value::from));
        m.insert("body".into(), self.body.clone());
        for (k, v) in &self.extra {
            if !KNOWN.contains(&k.as_str()) {
                m.insert(k.clone(), v.clone());
            }
        }
        Value::Object(m)
    }

    /// Compact JSON text: the same text as `to_value().to_string()`, written without
    /// building (and cloning the body into) a `Value` first.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Wire(self)).unwrap_or_else(|_| self.to_value().to_string())
    }

    /// Whether `expires_time` has passed.
    pub fn is_expired(&self, now: u64) -> bool {
        self.expires_time.is_some_and(|t| t <= now)
    }
}

/// Serializes a message borrowed, member for member as [`Message::to_value`] builds it.
struct Wire<'a>(&'a Message);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let m = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", &m.id)?;
        // `to_value` lets an extra `typ` overwrite the media type in place.
        match m.extra.get("typ") {
            Some(typ) => map.serialize_entry("typ", typ)?,
            None => map.serialize_entry("typ", PLAIN)?,
        }
        map.serialize_entry("type", &m.type_)?;
        fn opt<M: SerializeMap, T: Serialize>(
            map: &mut M,
            k: &str,
            v: &Option<T>,
        ) -> std::result::Result<(), M::Error> {
            match v {
                Some(v) => map.serialize_entry(k, v),
                None => Ok(()),
            }
        }
        opt(&mut map, "from", &m.from)?;
        opt(&mut map, "to", &m.to)?;
        opt(&mut map, "thid", &m.thid)?;
        opt(&mut map, "pthid", &m.pthid)?;
        opt(&mut map, "created_time", &m.created_time)?;
        opt(&mut map, "expires_time", &m.expires_time)?;
        opt(&mut map, "attachments", &m.attachments)?;
        opt(&mut map, "from_prior", &m.from_prior)?;
        map.serialize_entry("body", &m.body)?;
        for (k, v) in &m.extra {
            if k != "typ" && !KNOWN.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn roundtrip_keeps_unknown_headers() {
        let v = json!({"id": "1", "type": "https://x/1.0/y", "from": "did:ex:a", "to": ["did:ex:b"],
            "created_time": 1516269022u64, "body": {"k": 1}, "please_ack": ["1"], "lang": "en",
            "attachments": [{"id": "a", "data": {"json": {"x": 1}}, "byte_count": 3}]});
        let m = Message::from_value(v.clone()).unwrap();
        assert_eq!(m.extra["lang"], "en");
        assert_eq!(m.created_time, Some(1516269022));
        let back = m.to_value();
        assert_eq!(back["please_ack"], json!(["1"]));
        assert_eq!(back["typ"], PLAIN);
        assert_eq!(Message::from_value(back).unwrap(), m);
    }

    #[test]
    fn to_json_is_the_text_of_to_value() {
        let full = json!({"id": "1", "type": "t", "from": "did:ex:a", "to": ["did:ex:b"],
            "thid": "t1", "pthid": "p1", "created_time": 1u64, "expires_time": 2u64,
            "body": {"k": [1, "\u{2028}\"x"]}, "from_prior": "a.b.c", "please_ack": ["1"],
            "attachments": [{"id": "a", "data": {"json": {"x": 1}, "links": ["l"]}}]});
        let mut odd = Message::from_value(json!({"id": "2", "type": "t"})).unwrap();
        odd.extra.insert("typ".into(), "x/y".into());
        odd.extra.insert("body".into(), json!("shadowed"));
        odd.extra.insert("zz".into(), json!(null));
        let m = Message::from_value(full).unwrap();
        for msg in [m, odd, Message::new("t", json!({}))] {
            assert_eq!(msg.to_json(), msg.to_value().to_string());
        }
    }

    #[test]
    fn clear_errors() {
        for (v, needle) in [
            (json!([]), "not a JSON object"),
            (json!({"type": "t"}), "no `id`"),
            (json!({"id": "1"}), "no `type`"),
            (json!({"id": 1, "type": "t"}), "header `id`"),
            (json!({"id": "1", "type": "t", "to": "did:ex:b"}), "header `to`"),
            (json!({"id": "1", "type": "t", "body": []}), "body"),
            (json!({"id": "1", "type": "t", "created_time": "yesterday"}), "created_time"),
            (json!({"id": "1", "type": "t", "typ": "application/json"}), "typ"),
        ] {
            let e = Message::from_value(v).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} should mention {needle}");
        }
    }
}
