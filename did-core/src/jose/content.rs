//! Content encryption: A256CBC-HS512 (RFC 7518 §5.2.5), A256GCM and XC20P.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha512;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A JWE content-encryption algorithm (`enc`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContentEnc {
    /// AES-256-CBC with HMAC-SHA-512 (the one every DIDComm implementation accepts).
    A256CbcHs512,
    /// AES-256-GCM.
    A256Gcm,
    /// XChaCha20-Poly1305.
    Xc20p,
}

impl ContentEnc {
    /// The JWE `enc` name.
    pub fn name(self) -> &'static str {
        match self {
            ContentEnc::A256CbcHs512 => "A256CBC-HS512",
            ContentEnc::A256Gcm => "A256GCM",
            ContentEnc::Xc20p => "XC20P",
        }
    }

    /// Parses a JWE `enc` name.
    pub fn from_name(s: &str) -> Result<ContentEnc> {
        match s {
            "A256CBC-HS512" => Ok(ContentEnc::A256CbcHs512),
            "A256GCM" => Ok(ContentEnc::A256Gcm),
            "XC20P" => Ok(ContentEnc::Xc20p),
            other => Err(Error::UnsupportedAlgorithm(format!("content encryption `{}`", crate::error::clip(other)))),
        }
    }

    /// Content key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            ContentEnc::A256CbcHs512 => 64,
            _ => 32,
        }
    }

    /// IV length in bytes.
    pub fn iv_len(self) -> usize {
        match self {
            ContentEnc::A256CbcHs512 => 16,
            ContentEnc::A256Gcm => 12,
            ContentEnc::Xc20p => 24,
        }
    }

    /// A fresh random content key.
    pub fn generate_key(self) -> Zeroizing<Vec<u8>> {
        let mut k = Zeroizing::new(vec![0u8; self.key_len()]);
        rand::thread_rng().fill_bytes(&mut k);
        k
    }

    /// Encrypts with a fresh IV; returns `(iv, ciphertext, tag)`.
    pub fn encrypt(self, cek: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
        self.check_key(cek)?;
        let mut iv = vec![0u8; self.iv_len()];
        rand::thread_rng().fill_bytes(&mut iv);
        let (ct, tag) = match self {
            ContentEnc::A256CbcHs512 => {
                let (mac_key, enc_key) = cek.split_at(32);
                let ct = cbc::Encryptor::<aes::Aes256>::new_from_slices(enc_key, &iv)
                    .map_err(|_| Error::DecryptionFailed)?
                    .encrypt_padded_vec_mut::<Pkcs7>(plaintext);
                let tag = cbc_hs512_tag(mac_key, aad, &iv, &ct)?;
                (ct, tag)
            }
            ContentEnc::A256Gcm => split_tag(
                aes_gcm::Aes256Gcm::new_from_slice(cek)
                    .map_err(|_| Error::DecryptionFailed)?
                    .encrypt(iv.as_slice().into(), Payload { msg: plaintext, aad })
                    .map_err(|_| Error::DecryptionFailed)?,
            ),
            ContentEnc::Xc20p => split_tag(
                chacha20poly1305::XChaCha20Poly1305::new_from_slice(cek)
                    .map_err(|_| Error::DecryptionFailed)?
                    .encrypt(iv.as_slice().into(), Payload { msg: plaintext, aad })
                    .map_err(|_| Error::DecryptionFailed)?,
            ),
        };
        Ok((iv, ct, tag))
    }

    /// Authenticates and decrypts. Every failure is [`Error::DecryptionFailed`].
    pub fn decrypt(self, cek: &[u8], aad: &[u8], iv: &[u8], ct: &[u8], tag: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        self.check_key(cek).map_err(|_| Error::DecryptionFailed)?;
        if iv.len() != self.iv_len() {
            return Err(Error::DecryptionFailed);
        }
        let pt = match self {
            ContentEnc::A256CbcHs512 => {
                let (mac_key, enc_key) = cek.split_at(32);
                let expected = cbc_hs512_tag(mac_key, aad, iv, ct)?;
                if tag.len() != 32 || !bool::from(expected.ct_eq(tag)) {
                    return Err(Error::DecryptionFailed);
                }
                cbc::Decryptor::<aes::Aes256>::new_from_slices(enc_key, iv)
                    .map_err(|_| Error::DecryptionFailed)?
                    .decrypt_padded_vec_mut::<Pkcs7>(ct)
                    .map_err(|_| Error::DecryptionFailed)?
            }
            ContentEnc::A256Gcm | ContentEnc::Xc20p => {
                if tag.len() != 16 {
                    return Err(Error::DecryptionFailed);
                }
                let msg = [ct, tag].concat();
                let payload = Payload { msg: &msg, aad };
                let res = if self == ContentEnc::A256Gcm {
                    aes_gcm::Aes256Gcm::new_from_slice(cek)
                        .map_err(|_| Error::DecryptionFailed)?
                        .decrypt(iv.into(), payload)
                } else {
                    chacha20poly1305::XChaCha20Poly1305::new_from_slice(cek)
                        .map_err(|_| Error::DecryptionFailed)?
                        .decrypt(iv.into(), payload)
                };
                res.map_err(|_| Error::DecryptionFailed)?
            }
        };
        Ok(Zeroizing::new(pt))
    }

    fn check_key(self, cek: &[u8]) -> Result<()> {
        if cek.len() == self.key_len() {
            Ok(())
        } else {
            Err(Error::malformed(format!("{} needs a {}-byte key", self.name(), self.key_len())))
        }
    }
}

fn split_tag(mut ct: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let tag = ct.split_off(ct.len() - 16);
    (ct, tag)
}

fn cbc_hs512_tag(mac_key: &[u8], aad: &[u8], iv: &[u8], ct: &[u8]) -> Result<Vec<u8>> {
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(mac_key).map_err(|_| Error::DecryptionFailed)?;
    mac.update(aad);
    mac.update(iv);
    mac.update(ct);
    mac.update(&((aad.len() as u64) * 8).to_be_bytes());
    Ok(mac.finalize().into_bytes()[..32].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 7518 Appendix B.3 (AES_256_CBC_HMAC_SHA_512 test case).
    #[test]
    fn rfc7518_b3() {
        let k = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
                     202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f");
        let p = b"A cipher system must not be required to be secret, and it must be able to fall into the hands of the enemy without inconvenience";
        let iv = hex("1af38c2dc2b96ffdd86694092341bc04");
        let a = b"The second principle of Auguste Kerckhoffs";
        let e = hex("4affaaadb78c31c5da4b1b590d10ffbd3dd8d5d302423526912da037ecbcc7bd
                     822c301dd67c373bccb584ad3e9279c2e6d12a1374b77f077553df829410446b
                     36ebd97066296ae6427ea75c2e0846a11a09ccf5370dc80bfecbad28c73f09b3
                     a3b75e662a2594410ae496b2e2e6609e31e6e02cc837f053d21f37ff4f51950b
                     be2638d09dd7a4930930806d0703b1f6");
        let t = hex("4dd3b4c088a7f45c216839645b2012bf2e6269a8c56a816dbc1b267761955bc5");
        assert_eq!(cbc_hs512_tag(&k[..32], a, &iv, &e).unwrap(), t);
        let pt = ContentEnc::A256CbcHs512.decrypt(&k, a, &iv, &e, &t).unwrap();
        assert_eq!(pt.as_slice(), p);
    }

    #[test]
    fn roundtrip_and_tamper_all() {
        for enc in [ContentEnc::A256CbcHs512, ContentEnc::A256Gcm, ContentEnc::Xc20p] {
            let k = enc.generate_key();
            let (iv, ct, tag) = enc.encrypt(&k, b"aad", b"hello world").unwrap();
            assert_eq!(*enc.decrypt(&k, b"aad", &iv, &ct, &tag).unwrap(), b"hello world");
            let mut bad_tag = tag.clone();
            bad_tag[0] ^= 1;
            assert!(matches!(enc.decrypt(&k, b"aad", &iv, &ct, &bad_tag), Err(Error::DecryptionFailed)));
            let mut bad_ct = ct.clone();
            bad_ct[0] ^= 1;
            assert!(matches!(enc.decrypt(&k, b"aad", &iv, &bad_ct, &tag), Err(Error::DecryptionFailed)));
            assert!(matches!(enc.decrypt(&k, b"aaD", &iv, &ct, &tag), Err(Error::DecryptionFailed)));
            assert!(matches!(enc.decrypt(&k, b"aad", &iv[1..], &ct, &tag), Err(Error::DecryptionFailed)));
        }
    }
}
