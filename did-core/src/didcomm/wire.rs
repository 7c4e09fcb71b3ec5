//! Reading one envelope layer from JSON text for `unpack`, without a detour through
//! `serde_json::Value` for the common case, a JWE.

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::jose::jwe::{Jwe, JweRecipient, RecipientHeader};

/// One layer read from JSON text.
pub(super) enum Read {
    /// A JWE, deserialized directly (no intermediate `Value`).
    Jwe(Jwe),
    /// Any other JSON, classified by its shape (`unpack::Layer::of`).
    Json(Value),
}

/// Reads a layer. A plain General JSON JWE (exactly the members we emit, see
/// [`WireJwe`]) is deserialized straight into [`Jwe`]. Anything else takes the `Value`
/// route, unchanged: the typed parse succeeds only for text that the `Value` route parses
/// too, classifies as encrypted and turns into the same `Jwe`, so what is accepted,
/// what is refused and with which error stay the same.
pub(super) fn read_layer(bytes: &[u8], what: &str) -> Result<Read> {
    let jwe_like = std::str::from_utf8(bytes)
        .is_ok_and(|s| s.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') && s.contains("\"ciphertext\""));
    if jwe_like {
        if let Ok(w) = serde_json::from_slice::<WireJwe>(bytes) {
            return Ok(Read::Jwe(w.into()));
        }
    }
    serde_json::from_slice(bytes).map(Read::Json).map_err(|e| Error::malformed(format!("{what}: {e}")))
}

/// The members a DIDComm JWE has, and nothing else: every value is a string (parsed and
/// checked exactly as the `Value` parser does), so there are no ignored members whose
/// content the typed parser would check less strictly. Duplicate members fail too.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireJwe {
    protected: String,
    recipients: Vec<WireRecipient>,
    iv: String,
    ciphertext: String,
    tag: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRecipient {
    header: WireHeader,
    encrypted_key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireHeader {
    kid: String,
}

impl From<WireJwe> for Jwe {
    fn from(w: WireJwe) -> Jwe {
        let recipients = w
            .recipients
            .into_iter()
            .map(|r| JweRecipient { header: RecipientHeader { kid: r.header.kid }, encrypted_key: r.encrypted_key });
        Jwe { protected: w.protected, recipients: recipients.collect(), iv: w.iv, ciphertext: w.ciphertext, tag: w.tag }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWE: &str = r#"{"protected":"p","recipients":[{"header":{"kid":"k"},"encrypted_key":"e"}],"iv":"i","ciphertext":"c","tag":"t"}"#;

    fn json(text: &str) -> Value {
        match read_layer(text.as_bytes(), "x") {
            Ok(Read::Json(v)) => v,
            Ok(Read::Jwe(_)) => panic!("typed route for {text}"),
            Err(e) => panic!("{text}: {e}"),
        }
    }

    #[test]
    fn typed_route_gives_the_value_routes_jwe() {
        let Read::Jwe(jwe) = read_layer(format!(" \n{JWE}").as_bytes(), "x").unwrap() else {
            panic!("a plain JWE takes the typed route");
        };
        let via_value: Jwe = serde_json::from_str(JWE).unwrap();
        assert_eq!(serde_json::to_value(jwe).unwrap(), serde_json::to_value(via_value).unwrap());
    }

    #[test]
    fn anything_else_takes_the_value_route_unchanged() {
        let extra = JWE.replace(r#""tag":"t""#, r#""tag":"t","unprotected":{"n":1e400}"#);
        assert_eq!(json(&extra), serde_json::from_str::<Value>(&extra).unwrap());
        let extra = JWE.replace(r#""tag":"t""#, r#""tag":"t","aad":"\ud800""#);
        assert!(serde_json::from_str::<WireJwe>(&extra).is_err());
        assert!(read_layer(extra.as_bytes(), "x").is_err(), "lone surrogate");
        let extra = JWE.replace(r#""tag":"t""#, r#""tag":"t","aad":"a""#);
        assert_eq!(json(&extra)["aad"], "a");
        let dup = JWE.replace(r#""iv":"i""#, r#""iv":"i","iv":"j""#);
        assert_eq!(json(&dup)["iv"], "j");
        let wider = JWE.replace(r#""kid":"k""#, r#""kid":"k","alg":"x""#);
        assert_eq!(json(&wider)["recipients"][0]["header"]["alg"], "x");
        assert!(json(r#"["p",[],"i","c","t"]"#).is_array());
        assert!(json(r#"{"id":"1","type":"t","body":{"ciphertext":1}}"#).is_object());
        let err = read_layer(b"{\"ciphertext\":", "not JSON").err().unwrap();
        assert!(err.to_string().contains("not JSON"), "{err}");
    }
}
