//! RMCP+ cryptography for cipher suites 3 and 17: the RAKP key exchange codes, the session
//! key schedule (SIK, K1, K2), packet integrity and AES-CBC-128 confidentiality.
//!
//! Both suites go through the same functions; only the [`CipherSuite`] value (and thus the
//! hash function and tag lengths) differs, so a bug cannot hide in a path only one suite uses.
//!
//! Interoperability note: K1 and K2 are HMACs of a *20-byte* constant (`0x01`×20, `0x02`×20)
//! for both suites. The IPMI 2.0 text defines the constants as 20 bytes and both ipmitool and
//! FreeIPMI keep 20 bytes for RAKP-HMAC-SHA256, so a 32-byte constant would not interoperate.

use crate::error::DecodeError;
use aes::Aes128;
use aes::cipher::{Array, BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of the random numbers exchanged in RAKP 1 and 2.
pub const RANDOM_LEN: usize = 16;
/// Length of a managed system GUID.
pub const GUID_LEN: usize = 16;
/// AES block length, also the length of the per-packet IV.
pub const AES_BLOCK: usize = 16;
/// Longest key IPMI accepts for a user password or for Kg.
pub const MAX_KEY_LEN: usize = 20;
/// Longest user name IPMI accepts.
pub const MAX_USER_LEN: usize = 16;
/// Length of the K1/K2 derivation constants (see the module note on interoperability).
const KEY_CONSTANT_LEN: usize = 20;

/// A cipher suite this crate implements. Everything else, suite 0 ("none") and the
/// IPMI 1.5 style MD5/MD2/straight-password schemes included, is refused: they either send
/// no integrity at all or can be brute-forced from one captured handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CipherSuite {
    /// Suite 3: RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128. The most widely deployed suite.
    Suite3,
    /// Suite 17: RAKP-HMAC-SHA256, HMAC-SHA256-128, AES-CBC-128. Preferred where offered.
    Suite17,
}

/// The hash function underlying one suite's HMACs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha256,
}

impl CipherSuite {
    /// The suite for a numeric id, or an error saying why the id is not acceptable.
    pub fn from_id(id: u8) -> Result<CipherSuite, UnsupportedSuite> {
        match id {
            3 => Ok(CipherSuite::Suite3),
            17 => Ok(CipherSuite::Suite17),
            other => Err(UnsupportedSuite(other)),
        }
    }

    /// The numeric cipher suite id.
    pub fn id(self) -> u8 {
        match self {
            CipherSuite::Suite3 => 3,
            CipherSuite::Suite17 => 17,
        }
    }

    /// The suite matching an authentication/integrity/confidentiality algorithm triple, as
    /// proposed in Open Session or listed by Get Channel Cipher Suites.
    pub fn from_algorithms(auth: u8, integrity: u8, confidentiality: u8) -> Option<CipherSuite> {
        [CipherSuite::Suite3, CipherSuite::Suite17]
            .into_iter()
            .find(|s| {
                s.auth_algorithm() == auth
                    && s.integrity_algorithm() == integrity
                    && s.confidentiality_algorithm() == confidentiality
            })
    }

    /// RAKP authentication algorithm number (0x01 RAKP-HMAC-SHA1, 0x03 RAKP-HMAC-SHA256).
    pub fn auth_algorithm(self) -> u8 {
        match self {
            CipherSuite::Suite3 => 0x01,
            CipherSuite::Suite17 => 0x03,
        }
    }

    /// Integrity algorithm number (0x01 HMAC-SHA1-96, 0x04 HMAC-SHA256-128).
    pub fn integrity_algorithm(self) -> u8 {
        match self {
            CipherSuite::Suite3 => 0x01,
            CipherSuite::Suite17 => 0x04,
        }
    }

    /// Confidentiality algorithm number (0x01 AES-CBC-128 for both suites).
    pub fn confidentiality_algorithm(self) -> u8 {
        0x01
    }

    /// Length of the RAKP 2/3 key exchange authentication codes (the full HMAC).
    pub fn auth_code_len(self) -> usize {
        match self.hash() {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }

    /// Length of the truncated HMACs: the per-packet integrity tag and the RAKP 4 integrity
    /// check value (12 bytes for SHA-1-96, 16 for SHA-256-128).
    pub fn tag_len(self) -> usize {
        match self.hash() {
            Hash::Sha1 => 12,
            Hash::Sha256 => 16,
        }
    }

    fn hash(self) -> Hash {
        match self {
            CipherSuite::Suite3 => Hash::Sha1,
            CipherSuite::Suite17 => Hash::Sha256,
        }
    }
}

impl fmt::Display for CipherSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.id())
    }
}

/// A cipher suite id this crate will not use, with the reason in its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", unsupported_suite_reason(*.0))]
pub struct UnsupportedSuite(pub u8);

fn unsupported_suite_reason(id: u8) -> String {
    match id {
        0 => "cipher suite 0 authenticates nothing (no RAKP, no integrity, no encryption) \
              and is refused; use 17 or 3"
            .to_owned(),
        1 | 2 => format!(
            "cipher suite {id} sends commands without encryption and is refused; use 17 or 3"
        ),
        _ => format!("cipher suite {id} is not supported; only 17 and 3 are"),
    }
}

/// A secret byte string of at most 32 bytes (a password, Kg, SIK, K1 or K2), wiped on drop
/// and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey {
    buf: [u8; 32],
    len: u8,
}

impl SecretKey {
    /// A key holding `bytes`, or `None` when longer than 32 bytes.
    pub fn new(bytes: &[u8]) -> Option<SecretKey> {
        let mut key = SecretKey {
            buf: [0; 32],
            len: 0,
        };
        key.buf.get_mut(..bytes.len())?.copy_from_slice(bytes);
        key.len = bytes.len() as u8;
        Some(key)
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// True when empty or all zero: IPMI treats such a Kg as "no Kg".
    pub fn is_zero(&self) -> bool {
        self.expose().iter().all(|b| *b == 0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// An HMAC output (up to 32 bytes). Not secret by itself, but compared in constant time.
#[derive(Clone, Copy)]
pub struct Mac32 {
    buf: [u8; 32],
    len: u8,
}

impl Mac32 {
    /// The MAC bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Constant-time comparison with a received code (false on a length mismatch).
    pub fn matches(&self, received: &[u8]) -> bool {
        self.as_bytes().ct_eq(received).into()
    }

    fn truncated(mut self, len: usize) -> Mac32 {
        self.len = self.len.min(len as u8);
        self
    }
}

impl fmt::Debug for Mac32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mac32(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// Compute the HMAC of the concatenation of `parts` under `key` into `out`, returning the
/// output length (20 for SHA-1, 32 for SHA-256).
fn hmac_into(hash: Hash, key: &[u8], parts: &[&[u8]], out: &mut [u8; 32]) -> u8 {
    fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]], out: &mut [u8; 32]) -> u8 {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
            return 0;
        };
        for part in parts {
            mac.update(part);
        }
        let mut tag = mac.finalize().into_bytes();
        let n = tag.len().min(32);
        out[..n].copy_from_slice(&tag[..n]);
        tag.as_mut_slice().zeroize();
        n as u8
    }
    match hash {
        Hash::Sha1 => run::<Hmac<sha1::Sha1>>(key, parts, out),
        Hash::Sha256 => run::<Hmac<sha2::Sha256>>(key, parts, out),
    }
}

/// An HMAC used as a code to compare against a received one.
fn hmac(hash: Hash, key: &[u8], parts: &[&[u8]]) -> Mac32 {
    let mut buf = [0u8; 32];
    let len = hmac_into(hash, key, parts, &mut buf);
    Mac32 { buf, len }
}

/// An HMAC used as a key: it goes straight into a wiped-on-drop buffer.
fn hmac_key(hash: Hash, key: &[u8], parts: &[&[u8]]) -> SecretKey {
    let mut out = SecretKey {
        buf: [0; 32],
        len: 0,
    };
    out.len = hmac_into(hash, key, parts, &mut out.buf);
    out
}

/// The role byte and user name as they enter every RAKP hash (`RoleM | ULengthM | UNameM`).
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// The requested role byte exactly as sent in RAKP 1 (privilege plus lookup bit).
    pub role: u8,
    /// The user name (at most 16 bytes; may be empty).
    pub user: &'a [u8],
}

impl Identity<'_> {
    fn ulen(&self) -> [u8; 1] {
        [self.user.len().min(MAX_USER_LEN) as u8]
    }
}

/// The values RAKP 1 and 2 establish and every later hash refers to.
#[derive(Debug, Clone, Copy)]
pub struct Handshake<'a> {
    /// The suite being negotiated.
    pub suite: CipherSuite,
    /// The remote console's session id (`SIDm`).
    pub console_sid: u32,
    /// The managed system's session id (`SIDc`).
    pub bmc_sid: u32,
    /// The remote console's random number (`Rm`).
    pub console_random: &'a [u8; RANDOM_LEN],
    /// The managed system's random number (`Rc`).
    pub bmc_random: &'a [u8; RANDOM_LEN],
    /// The managed system's GUID (`GUIDc`).
    pub bmc_guid: &'a [u8; GUID_LEN],
    /// Role and user name.
    pub identity: Identity<'a>,
}

impl Handshake<'_> {
    /// The RAKP 2 key exchange authentication code, keyed by the user password:
    /// `HMAC_Kuid(SIDm | SIDc | Rm | Rc | GUIDc | RoleM | ULengthM | UNameM)`.
    pub fn rakp2_auth_code(&self, password: &SecretKey) -> Mac32 {
        hmac(
            self.suite.hash(),
            password.expose(),
            &[
                &self.console_sid.to_le_bytes(),
                &self.bmc_sid.to_le_bytes(),
                self.console_random,
                self.bmc_random,
                self.bmc_guid,
                &[self.identity.role],
                &self.identity.ulen(),
                self.identity.user,
            ],
        )
    }

    /// The RAKP 3 key exchange authentication code, keyed by the user password:
    /// `HMAC_Kuid(Rc | SIDm | RoleM | ULengthM | UNameM)`.
    pub fn rakp3_auth_code(&self, password: &SecretKey) -> Mac32 {
        hmac(
            self.suite.hash(),
            password.expose(),
            &[
                self.bmc_random,
                &self.console_sid.to_le_bytes(),
                &[self.identity.role],
                &self.identity.ulen(),
                self.identity.user,
            ],
        )
    }

    /// The session keys, keyed by Kg when one is set (non-zero) and by the password otherwise:
    /// `SIK = HMAC_K(Rm | Rc | RoleM | ULengthM | UNameM)`, `K1 = HMAC_SIK(0x01×20)`,
    /// `K2 = HMAC_SIK(0x02×20)`.
    pub fn session_keys(&self, password: &SecretKey, kg: Option<&SecretKey>) -> SessionKeys {
        let key = match kg {
            Some(kg) if !kg.is_zero() => kg,
            _ => password,
        };
        let hash = self.suite.hash();
        let sik = hmac_key(
            hash,
            key.expose(),
            &[
                self.console_random,
                self.bmc_random,
                &[self.identity.role],
                &self.identity.ulen(),
                self.identity.user,
            ],
        );
        SessionKeys::from_sik(self.suite, sik)
    }
}

/// The keys of an established session. Wiped on drop, never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    #[zeroize(skip)]
    suite: CipherSuite,
    sik: SecretKey,
    k1: SecretKey,
    k2: SecretKey,
}

impl SessionKeys {
    /// Derive K1 and K2 from a session integrity key.
    pub fn from_sik(suite: CipherSuite, sik: SecretKey) -> SessionKeys {
        let hash = suite.hash();
        let k1 = hmac_key(hash, sik.expose(), &[&[0x01; KEY_CONSTANT_LEN]]);
        let k2 = hmac_key(hash, sik.expose(), &[&[0x02; KEY_CONSTANT_LEN]]);
        SessionKeys { suite, sik, k1, k2 }
    }

    /// The suite these keys belong to.
    pub fn suite(&self) -> CipherSuite {
        self.suite
    }

    /// The session integrity key (exposed for known-answer tests and the simulator).
    pub fn sik(&self) -> &[u8] {
        self.sik.expose()
    }

    /// K1, the integrity key.
    pub fn k1(&self) -> &[u8] {
        self.k1.expose()
    }

    /// K2, whose first 16 bytes are the AES key.
    pub fn k2(&self) -> &[u8] {
        self.k2.expose()
    }

    /// The RAKP 4 integrity check value: `HMAC_SIK(Rm | SIDc | GUIDc)`, truncated to the
    /// suite's tag length.
    pub fn rakp4_icv(
        &self,
        console_random: &[u8; RANDOM_LEN],
        bmc_sid: u32,
        bmc_guid: &[u8; GUID_LEN],
    ) -> Mac32 {
        hmac(
            self.suite.hash(),
            self.sik(),
            &[console_random, &bmc_sid.to_le_bytes(), bmc_guid],
        )
        .truncated(self.suite.tag_len())
    }

    /// The integrity tag of a packet's signed region (from the auth type byte through the
    /// next-header byte), keyed by K1.
    pub fn integrity_tag(&self, signed: &[u8]) -> Mac32 {
        hmac(self.suite.hash(), self.k1(), &[signed]).truncated(self.suite.tag_len())
    }

    fn aes_key(&self) -> Array<u8, aes::cipher::consts::U16> {
        let mut key = Array::default();
        let k2 = self.k2();
        if let Some(src) = k2.get(..16) {
            key.copy_from_slice(src);
        }
        key
    }

    /// Append `iv | AES-CBC-128(plain | 1,2,…,n | n)` to `out`, padding with IPMI's own
    /// confidentiality pad so the encrypted part is a whole number of blocks.
    pub fn encrypt(&self, iv: &[u8; AES_BLOCK], plain: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(iv);
        let start = out.len();
        out.extend_from_slice(plain);
        let pad = (AES_BLOCK - (plain.len() + 1) % AES_BLOCK) % AES_BLOCK;
        out.extend((1..=pad).map(|i| i as u8));
        out.push(pad as u8);
        let mut key = self.aes_key();
        let mut enc = cbc::Encryptor::<Aes128>::new(&key, &Array::from(*iv));
        let (blocks, _) = Array::slice_as_chunks_mut(&mut out[start..]);
        enc.encrypt_blocks(blocks);
        key.zeroize();
    }

    /// Decrypt `iv | ciphertext` into `out` (cleared first), checking and removing the
    /// confidentiality pad.
    pub fn decrypt(&self, data: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
        out.clear();
        let (iv, body) = data
            .split_first_chunk::<AES_BLOCK>()
            .ok_or(DecodeError::Truncated("encrypted payload IV"))?;
        if body.is_empty() || body.len() % AES_BLOCK != 0 {
            return Err(DecodeError::Malformed(
                "encrypted payload is not a whole number of AES blocks",
            ));
        }
        out.extend_from_slice(body);
        let mut key = self.aes_key();
        let mut dec = cbc::Decryptor::<Aes128>::new(&key, &Array::from(*iv));
        let (blocks, _) = Array::slice_as_chunks_mut(&mut out[..]);
        dec.decrypt_blocks(blocks);
        key.zeroize();
        let pad = usize::from(*out.last().unwrap_or(&0));
        let plain_len = out
            .len()
            .checked_sub(pad + 1)
            .filter(|_| pad < AES_BLOCK)
            .ok_or(DecodeError::Malformed("confidentiality pad length"))?;
        let pad_ok = out[plain_len..plain_len + pad]
            .iter()
            .enumerate()
            .all(|(i, b)| usize::from(*b) == i + 1);
        if !pad_ok {
            out.zeroize();
            out.clear();
            return Err(DecodeError::Malformed("confidentiality pad bytes"));
        }
        out.truncate(plain_len);
        Ok(())
    }
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// Fill `buf` from the operating system's random source (session ids, RAKP randoms, IVs).
pub fn random_bytes(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    getrandom::fill(buf)
}

#[cfg(test)]
mod tests;
