//! `didmpc credential …`: issue Verifiable Credentials (VC-JWT) from one of your DIDs, and
//! verify them.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use did_core::didcomm::message::now;
use did_core::{Did, Relationship};
use proofs::{jwt, vc};
use serde_json::{json, Map, Value};

use super::{did, print_json, read_stdin, resolver};
use crate::cli::{CredentialCommand, CredentialIssueArgs, Select};
use crate::home;

pub(super) async fn run(home_flag: Option<&Path>, c: CredentialCommand) -> Result<()> {
    match c {
        CredentialCommand::Issue(a) => issue(home_flag, a).await,
        CredentialCommand::Verify { file } => {
            let c = match read_credential(&file)? {
                Value::String(jwt) => vc::verify_credential(&jwt, &resolver()?, now()).await?,
                obj => proofs::di::verify_credential(&obj, &resolver()?, now()).await?,
            };
            print_json(&json!({
                "issuer": c.issuer,
                "subject": c.subject,
                "types": c.types,
                "id": c.id,
                "signed_by": c.signed_by,
            }))
        }
    }
}

/// A credential from a file (`-`: stdin): a VC-JWT (as a JSON string) or a JSON object
/// with an embedded Data Integrity proof.
pub(super) fn read_credential(path: &Path) -> Result<Value> {
    let text = if path == Path::new("-") {
        read_stdin(jwt::MAX_JWT_BYTES)?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading the credential {}", path.display()))?
    };
    let text = text.trim();
    if text.starts_with('{') {
        let v: Value =
            serde_json::from_str(text).with_context(|| format!("{} is not a JSON credential", path.display()))?;
        return Ok(v);
    }
    if text.split('.').count() != 3 {
        bail!("{} is neither a VC-JWT (header.payload.signature) nor a JSON credential", path.display());
    }
    Ok(Value::String(text.to_owned()))
}

fn claims(pairs: &[String]) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    for p in pairs {
        let (name, value) = p.split_once('=').with_context(|| format!("--claim {p:?}: expected NAME=VALUE"))?;
        if name.is_empty() || name == "id" {
            bail!("--claim {p:?}: the name must be set and not `id` (the subject is the id)");
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

async fn issue(home_flag: Option<&Path>, a: CredentialIssueArgs) -> Result<()> {
    let subject = Did::parse(&a.subject).with_context(|| format!("the subject {:?} is not a DID", a.subject))?;
    let ks = home::keystore(home_flag)?;
    let id = did::select(&ks, &Select { did: a.issuer.clone() })?;
    let doc = did::document_of(&id).await?;
    let (kid, key) = id.key_for(&doc, Relationship::AssertionMethod).with_context(|| {
        format!(
            "{} cannot issue credentials: it has no assertionMethod key here (use a did:key, or import a did:web)",
            id.did
        )
    })?;
    let from = now();
    let c = vc::Claims {
        issuer: id.did.to_string(),
        subject: subject.to_string(),
        types: a.types.clone(),
        subject_claims: claims(&a.claims)?,
        valid_from: from,
        valid_until: (a.valid_days > 0).then(|| from + a.valid_days * 86_400),
        id: Some(format!("urn:uuid:{}", uuid::Uuid::new_v4())),
    };
    let jwt = vc::issue(&c, kid, key)?;
    match &a.out {
        Some(path) => {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(path).with_context(|| format!("creating {} (it must not exist)", path.display()))?;
            f.write_all(jwt.as_bytes())?;
            f.write_all(b"\n")?;
            eprintln!("issued {} to {subject} as {}; written to {}", a.types.join("/"), id.did, path.display());
        }
        None => println!("{jwt}"),
    }
    Ok(())
}
