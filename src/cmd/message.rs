//! `didmpc message …`: DIDComm v2 pack and unpack on stdin/stdout.

use std::path::Path;

use anyhow::{bail, Context, Result};
use did_core::didcomm::{self, Message, PackOptions, UnpackOptions};
use did_core::jose::content::ContentEnc;
use did_core::{Identity, Keystore, Resolver};
use serde_json::json;

use super::{print_json, read_stdin, resolver};
use crate::cli::{AnonEnc, MessageCommand};
use crate::home;

pub(super) async fn run(home: Option<&Path>, cmd: MessageCommand) -> Result<()> {
    let ks = home::keystore(home)?;
    let resolver = resolver()?;
    let ids = ks.list()?;
    pin_stored_documents(&resolver, &ids);
    match cmd {
        MessageCommand::Pack { to, from, sign, sign_only, anon_enc, protect_sender, forward } => {
            let input = read_stdin(didcomm::unpack::DEFAULT_MAX_BYTES)?;
            let value: serde_json::Value = serde_json::from_str(&input).context("stdin is not JSON")?;
            let mut msg = Message::from_value(value).context("stdin is not a DIDComm plaintext message")?;
            let to_did = did_core::DidUrl::parse(&to)?.did().to_string();
            let sender = match (&from, sign || sign_only) {
                (Some(f), _) => Some(stored(&ks, f)?.did.to_string()),
                (None, true) => Some(ks.default_identity().context("--sign needs an identity")?.did.to_string()),
                (None, false) => None,
            };
            if let Some(s) = &sender {
                msg.from.get_or_insert_with(|| s.clone());
            }
            msg.to.get_or_insert_with(|| vec![to_did.clone()]);
            if sign_only {
                let signer = sender.as_deref().unwrap_or_default();
                let (jws, _) = didcomm::pack_signed(&msg, signer, &resolver, &ids).await?;
                println!("{jws}");
                return Ok(());
            }
            let opts = PackOptions { protect_sender, forward, anon_enc: enc(anon_enc), ..PackOptions::default() };
            let sign_by = if sign { sender.as_deref() } else { None };
            let packed = didcomm::pack_encrypted(&msg, &to, from.as_deref(), sign_by, &resolver, &ids, &opts).await?;
            if let Some(svc) = &packed.service {
                eprintln!(
                    "deliver to {} (routing keys: {})",
                    svc.uri,
                    if svc.routing_keys.is_empty() { "none".into() } else { svc.routing_keys.join(", ") }
                );
            }
            println!("{}", packed.message);
        }
        MessageCommand::Unpack => {
            if ids.is_empty() {
                bail!("no identities in {}; create or import one first (didmpc did new)", ks.dir().display());
            }
            let input = read_stdin(didcomm::unpack::DEFAULT_MAX_BYTES)?;
            let (msg, meta) = didcomm::unpack(input.trim(), &resolver, &ids, &UnpackOptions::default()).await?;
            print_json(&json!({"message": msg.to_value(), "metadata": meta}))?;
        }
    }
    Ok(())
}

fn enc(e: AnonEnc) -> ContentEnc {
    match e {
        AnonEnc::A256CbcHs512 => ContentEnc::A256CbcHs512,
        AnonEnc::A256Gcm => ContentEnc::A256Gcm,
        AnonEnc::Xc20p => ContentEnc::Xc20p,
    }
}

fn stored(ks: &Keystore, did: &str) -> Result<Identity> {
    let did = did_core::Did::parse(did)?;
    ks.load(&did).with_context(|| format!("{did} is not one of your identities (see `didmpc did list`)"))
}

/// Stored documents (did:web identities) resolve locally.
fn pin_stored_documents(resolver: &Resolver, ids: &[Identity]) {
    for id in ids {
        if let Some(doc) = &id.document {
            resolver.insert(doc.clone());
        }
    }
}
