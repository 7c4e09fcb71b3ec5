//! Concat KDF (NIST SP 800-56A, RFC 7518 §4.6.2), ECDH-1PU's tag binding
//! (draft-madden-jose-ecdh-1pu-04 §2.3) and AES key wrap (RFC 3394).

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Derives a 256-bit key-wrapping key.
///
/// `alg` is the JWE `alg` value (key-wrapping mode), `apu`/`apv` the decoded header
/// values, and `cctag` the content tag, present only for ECDH-1PU.
pub fn concat_kdf(z: &[u8], alg: &str, apu: &[u8], apv: &[u8], cctag: Option<&[u8]>) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    for part in [alg.as_bytes(), apu, apv] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    h.update(256u32.to_be_bytes());
    if let Some(tag) = cctag {
        h.update((tag.len() as u32).to_be_bytes());
        h.update(tag);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&h.finalize());
    out
}

/// Wraps a content key with AES-256 key wrap.
pub fn wrap(kek: &[u8; 32], cek: &[u8]) -> Result<Vec<u8>> {
    aes_kw::KekAes256::from(*kek).wrap_vec(cek).map_err(|_| Error::malformed("content key cannot be wrapped"))
}

/// Unwraps a content key; any integrity failure is [`Error::DecryptionFailed`].
pub fn unwrap(kek: &[u8; 32], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    aes_kw::KekAes256::from(*kek).unwrap_vec(wrapped).map(Zeroizing::new).map_err(|_| Error::DecryptionFailed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn rfc3394_wrap_vector() {
        // RFC 3394 §4.6: wrap 256 bits of key data with a 256-bit KEK.
        let kek: [u8; 32] = hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F").try_into().unwrap();
        let data = hex("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
        let wrapped = wrap(&kek, &data).unwrap();
        assert_eq!(wrapped, hex("28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"));
        assert_eq!(*unwrap(&kek, &wrapped).unwrap(), data);
        let mut bad = wrapped.clone();
        bad[3] ^= 1;
        assert!(matches!(unwrap(&kek, &bad), Err(Error::DecryptionFailed)));
    }

    /// draft-madden-jose-ecdh-1pu-04 Appendix A: Z = Ze || Zs, direct key agreement
    /// for A256GCM with apu "Alice" and apv "Bob" (no tag in direct mode).
    #[test]
    fn ecdh_1pu_appendix_a() {
        let z = [
            hex("9e56d91d817135d372834283bf84269cfb316ea3da806a48f6daa7798cfe90c4"),
            hex("e3ca3474384c9f62b30bfd4c688b3e7d4110a1b4badc3cc54ef7b81241efd50d"),
        ]
        .concat();
        let key = concat_kdf(&z, "A256GCM", b"Alice", b"Bob", None);
        assert_eq!(key.to_vec(), hex("6caf13723d14850ad4b42cd6dde935bffd2fff00a9ba70de05c203a5e1722ca7"));
        // The tag, when present, is bound into the derivation.
        assert_ne!(*concat_kdf(&z, "A256GCM", b"Alice", b"Bob", Some(b"tag")), *key);
    }
}
