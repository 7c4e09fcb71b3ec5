//! Choosing which keys of which DID documents an envelope uses.

use crate::did::{Did, DidUrl};
use crate::doc::Relationship;
use crate::error::{clip, Error, Result};
use crate::keys::{KeyKind, PublicKey, SecretKey};
use crate::resolver::DidResolver;
use crate::secrets::SecretStore;

/// A DID or a DID URL naming one key.
pub(crate) enum Target {
    Did(Did),
    Key(DidUrl),
}

impl Target {
    pub(crate) fn parse(s: &str) -> Result<Target> {
        if s.contains('#') {
            Ok(Target::Key(DidUrl::parse(s)?))
        } else {
            Ok(Target::Did(Did::parse(s)?))
        }
    }

    pub(crate) fn did(&self) -> &Did {
        match self {
            Target::Did(d) => d,
            Target::Key(u) => u.did(),
        }
    }
}

/// Public keys under `rel` of a DID (all) or of one DID URL (that key, which must be listed under `rel`).
pub(crate) async fn public_keys(
    target: &str,
    rel: Relationship,
    resolver: &dyn DidResolver,
) -> Result<(Did, Vec<(String, PublicKey)>)> {
    let t = Target::parse(target)?;
    let doc = resolver.resolve(t.did()).await?;
    let keys: Vec<(String, PublicKey)> = match &t {
        Target::Did(_) => doc.methods(rel).map(|vm| (vm.id.clone(), vm.key.clone())).collect(),
        Target::Key(url) => {
            let kid = url.to_string();
            let vm = doc.method(&kid).ok_or_else(|| Error::KeyNotFound(clip(&kid)))?;
            if !doc.has(rel, &kid) {
                return Err(Error::Protocol(format!("{} is not listed under {}", clip(&kid), rel.name())));
            }
            vec![(kid, vm.key.clone())]
        }
    };
    if keys.is_empty() {
        return Err(Error::KeyNotFound(format!("{} has no {} key", clip(target), rel.name())));
    }
    Ok((t.did().clone(), keys))
}

/// Our keys under `rel` for a DID or DID URL, in document order, that `secrets` holds.
pub(crate) async fn own_keys<'s>(
    target: &str,
    rel: Relationship,
    resolver: &dyn DidResolver,
    secrets: &'s dyn SecretStore,
) -> Result<(Did, Vec<(String, &'s SecretKey)>)> {
    let (did, keys) = public_keys(target, rel, resolver).await?;
    let held: Vec<_> = keys.into_iter().filter_map(|(kid, _)| secrets.secret(&kid).map(|s| (kid, s))).collect();
    if held.is_empty() {
        return Err(Error::SecretNotFound(format!("any {} key of {}", rel.name(), clip(target))));
    }
    Ok((did, held))
}

/// Keeps only recipient keys of one curve: `kind`, or the first key's curve.
pub(crate) fn same_curve(keys: Vec<(String, PublicKey)>, kind: Option<KeyKind>) -> Vec<(String, PublicKey)> {
    let Some(kind) = kind.or_else(|| keys.first().map(|(_, k)| k.kind())) else {
        return keys;
    };
    keys.into_iter().filter(|(_, k)| k.kind() == kind).collect()
}
