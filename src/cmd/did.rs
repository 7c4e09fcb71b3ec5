//! `didmpc did …`: identities.

use std::path::Path;

use anyhow::{bail, Context, Result};
use did_core::{Did, DidCommEndpoint, DidDocument, DidResolver, Identity, Jwk, Keystore};
use serde_json::json;

use super::{print_json, resolver};
use crate::cli::{DidCommand, Method, Select};
use crate::home;

pub(super) async fn run(home: Option<&Path>, cmd: DidCommand) -> Result<()> {
    let ks = home::keystore(home)?;
    match cmd {
        DidCommand::New { method, service_endpoint, routing_keys, default } => {
            let id = new_identity(method, service_endpoint, routing_keys)?;
            let first = ks.list()?.is_empty();
            let path = ks.save(&id)?;
            if first || default {
                ks.set_default(&id.did)?;
            }
            eprintln!("stored keys in {}{}", path.display(), if first || default { " (default identity)" } else { "" });
            println!("{}", id.did);
        }
        DidCommand::Show(sel) => {
            let id = select(&ks, &sel)?;
            let doc = document_of(&id).await?;
            print_json(&json!({"did": id.did, "document": doc.to_value()}))?;
        }
        DidCommand::List { full } => {
            let default = ks.default_identity().ok().map(|i| i.did);
            for id in ks.list()? {
                let mark = if Some(&id.did) == default.as_ref() { "* " } else { "  " };
                let shown = if full { id.did.to_string() } else { id.did.fmt_short() };
                println!("{mark}{shown}");
            }
        }
        DidCommand::Resolve { did } => {
            let did = Did::parse(&did)?;
            let doc = resolver()?.resolve(&did).await?;
            print_json(&doc.to_value())?;
        }
        DidCommand::Import { did, jwks, document, default } => {
            let did = Did::parse(&did)?;
            let doc = match &document {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    let doc = DidDocument::from_json(&text).with_context(|| format!("{} is not a DID document", path.display()))?;
                    if doc.id != did {
                        bail!("{} describes {}, not {did}", path.display(), doc.id);
                    }
                    doc
                }
                None => (*resolver()?.resolve(&did).await.context("resolving the DID to check the keys against its document (pass --document FILE if it cannot be resolved)")?).clone(),
            };
            let mut keys = Vec::with_capacity(jwks.len());
            for path in &jwks {
                let text = zeroize::Zeroizing::new(
                    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
                );
                let jwk: Jwk =
                    serde_json::from_str(&text).with_context(|| format!("{} is not a JWK", path.display()))?;
                keys.push(jwk);
            }
            let mut id = Identity::from_jwks(&doc, &keys).context("the keys do not match the DID document")?;
            if !matches!(did.method(), "key" | "peer") {
                id.document = Some(doc);
            }
            let path = ks.save(&id)?;
            if default || ks.list()?.len() == 1 {
                ks.set_default(&id.did)?;
            }
            eprintln!("imported {} key(s) into {}", id.keys().count(), path.display());
            println!("{}", id.did);
        }
        DidCommand::Export(sel) => {
            let id = select(&ks, &sel)?;
            eprintln!("warning: these are private keys for {}; keep them secret", id.did);
            print_json(&serde_json::to_value(id.to_jwks())?)?;
        }
    }
    Ok(())
}

fn new_identity(method: Method, endpoint: Option<String>, routing_keys: Vec<String>) -> Result<Identity> {
    for rk in &routing_keys {
        did_core::DidUrl::parse(rk).with_context(|| format!("routing key {rk} is not a DID or DID URL"))?;
    }
    match method {
        Method::Key => {
            if endpoint.is_some() || !routing_keys.is_empty() {
                bail!("a did:key cannot carry a service endpoint or routing keys; use --method peer");
            }
            Ok(Identity::generate_key())
        }
        Method::Peer => {
            let endpoints = match endpoint {
                Some(uri) => vec![DidCommEndpoint { uri, accept: vec!["didcomm/v2".into()], routing_keys }],
                None if routing_keys.is_empty() => vec![],
                None => bail!("--routing-key needs --service-endpoint"),
            };
            Ok(Identity::generate_peer(&endpoints)?)
        }
    }
}

/// The identity chosen by `--did`, or the default one.
pub(super) fn select(ks: &Keystore, sel: &Select) -> Result<Identity> {
    match &sel.did {
        Some(d) => Ok(ks.load(&Did::parse(d)?)?),
        None => Ok(ks.default_identity()?),
    }
}

pub(super) async fn document_of(id: &Identity) -> Result<DidDocument> {
    match &id.document {
        Some(doc) => Ok(doc.clone()),
        None => Ok(did_core::keystore::derived_document(&id.did)?),
    }
}
