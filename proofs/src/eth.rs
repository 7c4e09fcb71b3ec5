//! Ethereum accounts: Keccak-256, EIP-191 `personal_sign` digests, secp256k1 public key
//! recovery, EIP-55 checksummed addresses, CAIP-10 / did:pkh names, and local key files
//! for scripts.

use std::fmt;
use std::path::Path;

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use tiny_keccak::{Hasher, Keccak};
use zeroize::Zeroizing;

use crate::error::{Error, ProofReason, Result};

/// Keccak-256 (the pre-standard SHA-3 padding Ethereum uses).
pub fn keccak256(data: &[u8]) -> [u8; 32] {
    let mut k = Keccak::v256();
    k.update(data);
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// The EIP-191 version `0x45` digest `personal_sign` signs:
/// `keccak256("\x19Ethereum Signed Message:\n" || len(message) || message)`.
pub fn personal_digest(message: &[u8]) -> [u8; 32] {
    let mut k = Keccak::v256();
    k.update(b"\x19Ethereum Signed Message:\n");
    k.update(message.len().to_string().as_bytes());
    k.update(message);
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// A 20-byte Ethereum account address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of a public key: the last 20 bytes of Keccak-256 of the uncompressed point.
    pub fn of_key(key: &VerifyingKey) -> Address {
        let point = key.to_encoded_point(false);
        let hash = keccak256(&point.as_bytes()[1..]);
        let mut a = [0u8; 20];
        a.copy_from_slice(&hash[12..]);
        Address(a)
    }

    /// Parses `0x` + 40 hex digits in any case (no checksum check).
    pub fn parse_any_case(s: &str) -> Result<Address> {
        let bad = || Error::proof(ProofReason::Malformed, format!("{s:?} is not an Ethereum address (0x + 40 hex)"));
        let h = s.strip_prefix("0x").ok_or_else(bad)?;
        let bytes = hex_decode(h).ok_or_else(bad)?;
        Ok(Address(bytes.try_into().map_err(|_| bad())?))
    }

    /// Parses an address that must be in its EIP-55 checksummed form.
    pub fn parse_checksummed(s: &str) -> Result<Address> {
        let a = Address::parse_any_case(s)?;
        if a.checksummed() != s {
            return Err(Error::proof(
                ProofReason::Malformed,
                format!("{s} is not EIP-55 checksummed (that is {})", a.checksummed()),
            ));
        }
        Ok(a)
    }

    /// The EIP-55 mixed-case form: a hex letter is upper case when the matching nibble of
    /// Keccak-256 of the lowercase hex is 8 or more.
    pub fn checksummed(&self) -> String {
        let lower = hex_encode(&self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> if i % 2 == 0 { 4 } else { 0 }) & 0x0f;
            out.push(if nibble >= 8 { c.to_ascii_uppercase() } else { c });
        }
        out
    }

    /// CAIP-10 account id on EIP-155 chain `chain`: `eip155:<chain>:<checksummed>`.
    pub fn caip10(&self, chain: u64) -> String {
        format!("eip155:{chain}:{}", self.checksummed())
    }

    /// `did:pkh:eip155:<chain>:<checksummed>`.
    pub fn did_pkh(&self, chain: u64) -> String {
        format!("did:pkh:{}", self.caip10(chain))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.checksummed())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.checksummed())
    }
}

/// An account on a chain, parsed from CAIP-10 (`eip155:1:0x…`), did:pkh
/// (`did:pkh:eip155:1:0x…`) or a bare address (chain 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Account {
    /// EIP-155 chain id.
    pub chain: u64,
    /// The address.
    pub address: Address,
}

impl Account {
    /// Parses CAIP-10, did:pkh or a bare `0x` address (then chain 1).
    pub fn parse(s: &str) -> Result<Account> {
        let bad = || Error::State(format!("{s:?} is not an Ethereum account (did:pkh:eip155:…, eip155:…, or 0x…)"));
        let s = s.trim();
        if s.starts_with("0x") {
            return Ok(Account { chain: 1, address: Address::parse_any_case(s).map_err(|_| bad())? });
        }
        let rest = s.strip_prefix("did:pkh:").unwrap_or(s);
        let rest = rest.strip_prefix("eip155:").ok_or_else(bad)?;
        let (chain, addr) = rest.split_once(':').ok_or_else(bad)?;
        if chain.is_empty() || chain.len() > 32 || !chain.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let chain = chain.parse().map_err(|_| bad())?;
        let address = Address::parse_any_case(addr).map_err(|_| bad())?;
        // A mixed-case address must carry a correct checksum (a typo guard).
        let mixed = addr.bytes().any(|c| c.is_ascii_uppercase()) && addr[2..].bytes().any(|c| c.is_ascii_lowercase());
        if mixed && address.checksummed() != addr {
            return Err(Error::State(format!(
                "{addr} has a wrong EIP-55 checksum (that is {})",
                address.checksummed()
            )));
        }
        Ok(Account { chain, address })
    }

    /// `did:pkh:eip155:<chain>:<address>`.
    pub fn did_pkh(&self) -> String {
        self.address.did_pkh(self.chain)
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address.caip10(self.chain))
    }
}

/// Decodes a 65-byte `r || s || v` signature given as `0x` hex (v = 27/28 or 0/1).
pub fn parse_signature(s: &str) -> Result<[u8; 65]> {
    let bad = |why: &str| Error::proof(ProofReason::Malformed, format!("signature: {why}"));
    let h = s.trim().strip_prefix("0x").ok_or_else(|| bad("expected 0x + 130 hex digits"))?;
    let bytes = hex_decode(h).ok_or_else(|| bad("not hex"))?;
    bytes.try_into().map_err(|_| bad("expected 65 bytes (r, s, v)"))
}

/// The address whose key made `sig` over the 32-byte `digest` (low-s only).
pub fn recover(digest: &[u8; 32], sig: &[u8; 65]) -> Result<Address> {
    let bad = |why: String| Error::proof(ProofReason::BadSignature, why);
    let v = match sig[64] {
        v @ (27 | 28) => v - 27,
        v @ (0 | 1) => v,
        v => return Err(bad(format!("recovery byte v = {v} (27 or 28 expected)"))),
    };
    let signature = Signature::from_slice(&sig[..64]).map_err(|e| bad(format!("r, s out of range: {e}")))?;
    if signature.normalize_s().is_some() {
        return Err(bad("s is in the upper half of the curve order (EIP-2 forbids it)".into()));
    }
    let recid = RecoveryId::from_byte(v).ok_or_else(|| bad("bad recovery id".into()))?;
    let key = VerifyingKey::recover_from_prehash(digest, &signature, recid)
        .map_err(|e| bad(format!("no public key recovers from it: {e}")))?;
    Ok(Address::of_key(&key))
}

/// A local secp256k1 account key (zeroized on drop), for scripts and tests; wallets keep
/// theirs.
pub struct LocalKey(SigningKey);

impl LocalKey {
    /// A fresh random key.
    pub fn generate() -> LocalKey {
        LocalKey(SigningKey::random(&mut rand_core::OsRng))
    }

    /// From 32 secret bytes.
    pub fn from_bytes(secret: &[u8; 32]) -> Result<LocalKey> {
        SigningKey::from_slice(secret)
            .map(LocalKey)
            .map_err(|_| Error::State("not a valid secp256k1 private key".into()))
    }

    /// Reads a key file: `0x` + 64 hex digits (one line). Refused if others may read it.
    pub fn load(path: &Path) -> Result<LocalKey> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| Error::State(format!("cannot read the key file {}: {e}", path.display())))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(Error::State(format!(
                    "the key file {} is readable by others (mode {:o}); chmod 600 it",
                    path.display(),
                    mode & 0o777
                )));
            }
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Error::State(format!("cannot read the key file {}: {e}", path.display())))?,
        );
        let t = text.trim();
        let h = t.strip_prefix("0x").unwrap_or(t);
        let bytes = Zeroizing::new(
            hex_decode(h).ok_or_else(|| Error::State(format!("{}: not a hex private key", path.display())))?,
        );
        let secret: &[u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| Error::State(format!("{}: a private key is 32 bytes", path.display())))?;
        LocalKey::from_bytes(secret)
    }

    /// Writes the key as `0x` hex to a new file with mode 0600 (refuses to overwrite).
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(path).map_err(|e| Error::State(format!("cannot create {}: {e}", path.display())))?;
        let secret = Zeroizing::new(self.0.to_bytes());
        let text = Zeroizing::new(format!("0x{}\n", hex_encode(&secret)));
        f.write_all(text.as_bytes())?;
        Ok(())
    }

    /// Its address.
    pub fn address(&self) -> Address {
        Address::of_key(self.0.verifying_key())
    }

    /// `personal_sign`: a 65-byte `r || s || v` signature (v = 27/28) over the EIP-191
    /// digest of `message`.
    pub fn personal_sign(&self, message: &[u8]) -> Result<[u8; 65]> {
        let digest = personal_digest(message);
        let (sig, recid) = self
            .0
            .sign_prehash_recoverable(&digest)
            .map_err(|e| Error::State(format!("secp256k1 signing failed: {e}")))?;
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = 27 + recid.to_byte();
        Ok(out)
    }
}

/// Lowercase hex.
pub fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Hex (either case) to bytes; None if odd length or not hex.
pub fn hex_decode(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    h.as_bytes().chunks(2).map(|p| Some(nib(p[0])? << 4 | nib(p[1])?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_and_eip55_known_answers() {
        assert_eq!(hex_encode(&keccak256(b"")), "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
        // EIP-55's own examples.
        for a in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            assert_eq!(Address::parse_checksummed(a).unwrap().checksummed(), a);
            assert!(Address::parse_checksummed(&a.to_lowercase()).is_err());
        }
    }

    #[test]
    fn the_address_of_private_key_one() {
        let mut one = [0u8; 32];
        one[31] = 1;
        let k = LocalKey::from_bytes(&one).unwrap();
        assert_eq!(k.address().checksummed(), "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf");
    }

    #[test]
    fn sign_recover_round_trip_and_tampering() {
        let k = LocalKey::generate();
        let sig = k.personal_sign(b"hello").unwrap();
        assert_eq!(recover(&personal_digest(b"hello"), &sig).unwrap(), k.address());
        assert_ne!(recover(&personal_digest(b"hellO"), &sig).ok(), Some(k.address()));
        let mut v = sig;
        v[64] = 29;
        assert_eq!(
            recover(&personal_digest(b"hello"), &v).unwrap_err().proof_reason(),
            Some(ProofReason::BadSignature)
        );
    }

    #[test]
    fn accounts_parse_in_every_form() {
        let a = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let want = Account { chain: 1, address: Address::parse_any_case(a).unwrap() };
        assert_eq!(Account::parse(a).unwrap(), want);
        assert_eq!(Account::parse(&format!("eip155:1:{a}")).unwrap(), want);
        assert_eq!(Account::parse(&format!("did:pkh:eip155:1:{}", a.to_lowercase())).unwrap(), want);
        assert_eq!(Account::parse(&format!("eip155:137:{a}")).unwrap().chain, 137);
        assert!(Account::parse("eip155:1:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD").is_err());
        assert!(Account::parse("did:pkh:solana:1:abc").is_err());
        assert_eq!(want.did_pkh(), format!("did:pkh:eip155:1:{a}"));
    }
}
