//! The JOSE pieces DIDComm v2 needs: JWE (ECDH-ES / ECDH-1PU with A256KW and three
//! content ciphers) and JWS (General JSON serialization).

pub mod content;
pub mod jwe;
pub mod jws;
pub mod kdf;
pub(crate) mod zs_cache;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::error::{Error, Result};

/// Base64url without padding.
pub fn b64e(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Decodes base64url, tolerating trailing padding; `what` names the field in errors.
pub fn b64d(s: &str, what: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| Error::malformed(format!("`{what}` is not base64url")))
}

/// Serializes to compact JSON bytes.
pub(crate) fn to_json_vec<T: serde::Serialize + ?Sized>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::malformed(format!("cannot serialize: {e}")))
}

/// Serializes to compact JSON text.
pub(crate) fn to_json_string<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::malformed(format!("cannot serialize: {e}")))
}
