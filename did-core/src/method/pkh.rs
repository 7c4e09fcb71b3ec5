//! did:pkh (blockchain accounts, CAIP-10), resolved by Spruce's `did-pkh` (ssi).

use ssi_dids_core::{resolution::Options, DIDResolver, DID};

use crate::did::Did;
use crate::doc::DidDocument;
use crate::error::{Error, Result};

/// Resolves a did:pkh through `ssi`.
pub async fn resolve(did: &Did) -> Result<DidDocument> {
    let fail = |reason: String| Error::Resolution { did: did.to_string(), reason };
    let ssi_did = DID::new(did.as_str()).map_err(|e| fail(format!("ssi rejects the DID: {e}")))?;
    let out =
        did_pkh::DIDPKH.resolve_representation(ssi_did, Options::default()).await.map_err(|e| fail(e.to_string()))?;
    let text = std::str::from_utf8(&out.document).map_err(|_| fail("document is not UTF-8".into()))?;
    DidDocument::from_json(text)
}

/// The CAIP-10 account id (`eip155:1:0xab…`) of a did:pkh.
pub fn account_id(did: &Did) -> Result<&str> {
    if did.method() != "pkh" {
        return Err(Error::UnsupportedMethod(did.method().to_owned()));
    }
    Ok(did.method_specific_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn eip155_account() {
        let did = Did::parse("did:pkh:eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a").unwrap();
        let doc = resolve(&did).await.unwrap();
        assert_eq!(doc.id, did);
        assert_eq!(doc.other_methods.len(), 1);
        assert_eq!(doc.other_methods[0]["blockchainAccountId"], "eip155:1:0xb9c5714089478a327f09197987f16f9e5d936e8a");
        assert!(resolve(&Did::parse("did:pkh:eip155:1:nothex").unwrap()).await.is_err());
    }
}
