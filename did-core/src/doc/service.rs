//! Service entries: `DIDCommMessaging` services in both shapes in use (a URI with `accept`
//! and `routingKeys` beside it, or endpoint objects) parsed into [`DidCommEndpoint`]s; any
//! other service kept verbatim.

use serde_json::{json, Map, Value};

use crate::did::{Did, DidUrl};
use crate::error::{Error, Result};

/// One DIDComm endpoint of a `DIDCommMessaging` service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DidCommEndpoint {
    /// Transport URI (http(s)://, ws(s)://) or a mediator DID.
    pub uri: String,
    /// Accepted media types/profiles, e.g. `didcomm/v2`.
    pub accept: Vec<String>,
    /// Keys (DID URLs) or DIDs to wrap Forward messages for; the first one's layer is outermost.
    pub routing_keys: Vec<String>,
}

/// A service entry.
#[derive(Clone, Debug, PartialEq)]
pub enum Service {
    /// A `DIDCommMessaging` service.
    DidComm {
        /// Absolute service id.
        id: String,
        /// Endpoints in order of preference.
        endpoints: Vec<DidCommEndpoint>,
    },
    /// Any other service, kept verbatim.
    Other(Value),
}

impl Service {
    /// Parses one service entry (relative ids resolved against `doc_id`).
    pub fn parse_value(v: &Value, doc_id: &Did) -> Result<Service> {
        let obj = v.as_object().ok_or_else(|| Error::doc("service is not an object"))?;
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => return Err(Error::doc("service without `type`")),
        };
        if !types.iter().any(|t| *t == "DIDCommMessaging" || *t == "DIDComm") {
            return Ok(Service::Other(v.clone()));
        }
        let raw_id = obj.get("id").and_then(Value::as_str).ok_or_else(|| Error::doc("service without `id`"))?;
        let id = DidUrl::resolve_ref(doc_id, raw_id)?.to_string();
        let strings = |v: Option<&Value>| -> Result<Vec<String>> {
            match v {
                None | Some(Value::Null) => Ok(vec![]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str().map(str::to_owned).ok_or_else(|| Error::doc(format!("{id}: non-string in list")))
                    })
                    .collect(),
                Some(_) => Err(Error::doc(format!("{id}: expected a list of strings"))),
            }
        };
        let endpoint = |e: &Value| -> Result<DidCommEndpoint> {
            let o = e.as_object().ok_or_else(|| Error::doc(format!("{id}: endpoint is not an object")))?;
            let uri = o
                .get("uri")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::doc(format!("{id}: endpoint without `uri`")))?;
            Ok(DidCommEndpoint {
                uri: uri.to_owned(),
                accept: strings(o.get("accept"))?,
                routing_keys: strings(o.get("routingKeys"))?,
            })
        };
        let endpoints = match obj.get("serviceEndpoint") {
            Some(Value::String(uri)) => vec![DidCommEndpoint {
                uri: uri.clone(),
                accept: strings(obj.get("accept"))?,
                routing_keys: strings(obj.get("routingKeys"))?,
            }],
            Some(e @ Value::Object(_)) => vec![endpoint(e)?],
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|e| match e {
                    Value::String(uri) => {
                        Ok(DidCommEndpoint { uri: uri.clone(), accept: vec![], routing_keys: vec![] })
                    }
                    e => endpoint(e),
                })
                .collect::<Result<_>>()?,
            _ => return Err(Error::doc(format!("{id}: missing or empty serviceEndpoint"))),
        };
        Ok(Service::DidComm { id, endpoints })
    }

    /// The JSON form (DIDComm v2.1 shape for DIDComm services).
    pub fn to_value(&self) -> Value {
        match self {
            Service::Other(v) => v.clone(),
            Service::DidComm { id, endpoints } => {
                let eps: Vec<Value> = endpoints
                    .iter()
                    .map(|e| {
                        let mut m = Map::new();
                        m.insert("uri".into(), e.uri.clone().into());
                        if !e.accept.is_empty() {
                            m.insert("accept".into(), json!(e.accept));
                        }
                        if !e.routing_keys.is_empty() {
                            m.insert("routingKeys".into(), json!(e.routing_keys));
                        }
                        Value::Object(m)
                    })
                    .collect();
                let ep = if eps.len() == 1 { eps.into_iter().next().unwrap_or(Value::Null) } else { Value::Array(eps) };
                json!({"id": id, "type": "DIDCommMessaging", "serviceEndpoint": ep})
            }
        }
    }
}
