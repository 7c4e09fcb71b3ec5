//! `from_prior`: a JWT by which a DID announces its rotation to a new DID (DIDComm v2 §"DID Rotation").

use serde::{Deserialize, Serialize};

use crate::did::{Did, DidUrl};
use crate::doc::Relationship;
use crate::error::{clip, Error, Result};
use crate::jose::{b64d, b64e, to_json_vec};
use crate::resolver::DidResolver;
use crate::secrets::SecretStore;

use super::message::now;

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

/// The claims of a `from_prior` JWT.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FromPrior {
    /// The old DID.
    pub iss: String,
    /// The new DID.
    pub sub: String,
    /// Issue time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// Signs a rotation from `old` (whose authentication key we hold) to `new`.
pub async fn issue(old: &Did, new: &Did, resolver: &dyn DidResolver, secrets: &dyn SecretStore) -> Result<String> {
    let doc = resolver.resolve(old).await?;
    let (kid, key) = doc
        .methods(Relationship::Authentication)
        .find_map(|vm| secrets.secret(&vm.id).map(|k| (vm.id.clone(), k)))
        .ok_or_else(|| Error::SecretNotFound(format!("an authentication key of {}", clip(old.as_str()))))?;
    let header = Header { alg: key.jws_alg()?.into(), kid, typ: Some("JWT".into()) };
    let claims = FromPrior { iss: old.to_string(), sub: new.to_string(), iat: Some(now()) };
    let input = format!("{}.{}", b64e(to_json_vec(&header)?), b64e(to_json_vec(&claims)?));
    let sig = key.sign(input.as_bytes())?;
    Ok(format!("{input}.{}", b64e(sig)))
}

/// Verifies a `from_prior` JWT: signed by an authentication key of `iss`, rotating to `from`.
/// Returns the claims and the signing key id.
pub async fn verify(jwt: &str, from: Option<&str>, resolver: &dyn DidResolver) -> Result<(FromPrior, String)> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [h, c, s] = parts.as_slice() else {
        return Err(Error::malformed("from_prior is not a compact JWT"));
    };
    let header: Header = serde_json::from_slice(&b64d(h, "from_prior header")?)
        .map_err(|e| Error::malformed(format!("from_prior header: {e}")))?;
    let claims: FromPrior = serde_json::from_slice(&b64d(c, "from_prior claims")?)
        .map_err(|e| Error::malformed(format!("from_prior claims: {e}")))?;
    let url = DidUrl::parse(&header.kid)?;
    if url.did().as_str() != claims.iss {
        return Err(Error::Protocol("from_prior is signed by a key of another DID than `iss`".into()));
    }
    if claims.iss == claims.sub {
        return Err(Error::Protocol("from_prior rotates a DID to itself".into()));
    }
    if from.is_some_and(|f| f != claims.sub) {
        return Err(Error::Protocol("from_prior `sub` is not the message's `from`".into()));
    }
    let doc = resolver.resolve(url.did()).await?;
    let vm = doc.method(&header.kid).ok_or_else(|| Error::KeyNotFound(clip(&header.kid)))?;
    if !doc.has(Relationship::Authentication, &header.kid) {
        return Err(Error::Protocol("from_prior key is not an authentication key".into()));
    }
    let alg = if header.alg == "Ed25519" { "EdDSA" } else { header.alg.as_str() };
    if !vm.key.verify(alg, format!("{h}.{c}").as_bytes(), &b64d(s, "from_prior signature")?)? {
        return Err(Error::InvalidSignature(clip(&header.kid)));
    }
    Ok((claims, header.kid))
}
