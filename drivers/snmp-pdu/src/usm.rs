//! The User-based Security Model's cryptography (RFC 3414, RFC 7860, RFC 3826): key
//! localization, message authentication and AES-CFB privacy, sans IO.
//!
//! Every key lives in a [`Zeroizing`] buffer or a [`SecretSlice`] and is wiped when
//! dropped; the long-lived password keys ([`UserKeys`]) are never shown by `Debug`.

use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use aes::{Aes128, Aes256};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Digest;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// An authentication protocol: the hash, and how much of the HMAC goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAlg {
    /// usmHMACMD5AuthProtocol (HMAC-MD5-96).
    Md5,
    /// usmHMACSHAAuthProtocol (HMAC-SHA-96).
    Sha1,
    /// usmHMAC192SHA256AuthProtocol (RFC 7860).
    Sha256,
    /// usmHMAC384SHA512AuthProtocol (RFC 7860).
    Sha512,
}

/// The privacy protocols: AES in CFB-128 mode (RFC 3826), with a 128- or 256-bit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivAlg {
    /// usmAesCfb128Protocol.
    Aes128,
    /// AES-256-CFB, keyed from the first 32 bytes of the localized key (needs an auth
    /// hash of at least 256 bits: no key extension is done).
    Aes256,
}

impl PrivAlg {
    /// The AES key length.
    pub fn key_len(self) -> usize {
        match self {
            PrivAlg::Aes128 => 16,
            PrivAlg::Aes256 => 32,
        }
    }
}

/// Password-to-key (RFC 3414 §A.2): hash the password repeated over 1 MiB.
fn password_to_key<D: Digest>(password: &[u8]) -> Zeroizing<Vec<u8>> {
    const TOTAL: usize = 1_048_576;
    #[cfg(test)]
    derivations::note(password);
    let mut hasher = D::new();
    let mut chunk = Zeroizing::new([0u8; 64]);
    let mut index = 0;
    for _ in 0..TOTAL / 64 {
        for b in chunk.iter_mut() {
            *b = password[index % password.len()];
            index += 1;
        }
        hasher.update(&chunk[..]);
    }
    Zeroizing::new(hasher.finalize().to_vec())
}

/// Test builds count password-to-key derivations per password, so that a test can prove
/// the megabyte of hashing is paid once per driver rather than per session, retry or probe.
/// Per password, because tests run in parallel: each test counts its own password.
#[cfg(test)]
pub(crate) mod derivations {
    use std::sync::Mutex;

    static SEEN: Mutex<Vec<(Vec<u8>, usize)>> = Mutex::new(Vec::new());

    /// Count one derivation from `password`.
    pub(crate) fn note(password: &[u8]) {
        let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
        match seen.iter_mut().find(|(p, _)| p == password) {
            Some((_, n)) => *n += 1,
            None => seen.push((password.to_vec(), 1)),
        }
    }

    /// How many times a key was derived from `password` so far.
    pub(crate) fn of(password: &[u8]) -> usize {
        let seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter()
            .find(|(p, _)| p == password)
            .map_or(0, |(_, n)| *n)
    }
}

/// Key localization (RFC 3414 §2.6): `H(Ku || engineID || Ku)`.
fn localize<D: Digest>(ku: &[u8], engine_id: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut hasher = D::new();
    hasher.update(ku);
    hasher.update(engine_id);
    hasher.update(ku);
    Zeroizing::new(hasher.finalize().to_vec())
}

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Zeroizing<Vec<u8>> {
    // HMAC takes keys of any length, so this cannot fail.
    let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
        return Zeroizing::new(Vec::new());
    };
    mac.update(message);
    Zeroizing::new(mac.finalize().into_bytes().to_vec())
}

impl AuthAlg {
    /// How many bytes of the HMAC a message carries.
    pub fn mac_len(self) -> usize {
        match self {
            AuthAlg::Md5 | AuthAlg::Sha1 => 12,
            AuthAlg::Sha256 => 24,
            AuthAlg::Sha512 => 48,
        }
    }

    /// The password's key (`Ku`), independent of any engine: worth keeping, since it
    /// costs a megabyte of hashing.
    pub fn password_key(self, password: &[u8]) -> Zeroizing<Vec<u8>> {
        if password.is_empty() {
            return Zeroizing::new(Vec::new());
        }
        match self {
            AuthAlg::Md5 => password_to_key::<md5::Md5>(password),
            AuthAlg::Sha1 => password_to_key::<sha1::Sha1>(password),
            AuthAlg::Sha256 => password_to_key::<sha2::Sha256>(password),
            AuthAlg::Sha512 => password_to_key::<sha2::Sha512>(password),
        }
    }

    /// The key localized to one agent (`Kul`).
    pub fn localize(self, ku: &[u8], engine_id: &[u8]) -> Zeroizing<Vec<u8>> {
        match self {
            AuthAlg::Md5 => localize::<md5::Md5>(ku, engine_id),
            AuthAlg::Sha1 => localize::<sha1::Sha1>(ku, engine_id),
            AuthAlg::Sha256 => localize::<sha2::Sha256>(ku, engine_id),
            AuthAlg::Sha512 => localize::<sha2::Sha512>(ku, engine_id),
        }
    }

    /// The truncated HMAC of `message` (whose authentication parameters are zeros).
    pub fn sign(self, key: &[u8], message: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut full = match self {
            AuthAlg::Md5 => hmac::<Hmac<md5::Md5>>(key, message),
            AuthAlg::Sha1 => hmac::<Hmac<sha1::Sha1>>(key, message),
            AuthAlg::Sha256 => hmac::<Hmac<sha2::Sha256>>(key, message),
            AuthAlg::Sha512 => hmac::<Hmac<sha2::Sha512>>(key, message),
        };
        full.truncate(self.mac_len());
        full
    }

    /// Whether `mac` authenticates `message` (authentication parameters zeroed), compared
    /// in constant time.
    pub fn verify(self, key: &[u8], message: &[u8], mac: &[u8]) -> bool {
        let want = self.sign(key, message);
        want.len() == mac.len() && bool::from(want.ct_eq(mac))
    }
}

/// An SNMPv3 user's password keys (`Ku`, RFC 3414 §A.2), not yet localized to any engine.
///
/// Turning a password into `Ku` costs a megabyte of hashing; localizing `Ku` to an engine
/// (`Kul`, RFC 3414 §2.6) costs one short hash. A driver derives these once and localizes
/// them for every session, so the megabyte is paid once per driver rather than on every
/// session, retry and probe. The keys are wiped when dropped and `Debug` redacts them.
#[derive(Debug)]
pub struct UserKeys {
    auth: AuthAlg,
    auth_ku: SecretSlice<u8>,
    /// The privacy protocol and the privacy password's `Ku`, hashed with the
    /// authentication protocol's hash as RFC 3826 §1.2 and RFC 3414 §2.6 prescribe.
    privacy: Option<(PrivAlg, SecretSlice<u8>)>,
}

/// Copy a key into a secret box of exactly its length (so that nothing is reallocated and
/// left behind unwiped).
fn secret_key(key: &[u8]) -> SecretSlice<u8> {
    SecretSlice::from(key.to_vec())
}

impl UserKeys {
    /// Derive the keys from the passwords: the expensive step, a megabyte of hashing per
    /// password. Callers on an async runtime run it on the blocking pool.
    pub fn derive(
        auth: AuthAlg,
        auth_password: &[u8],
        privacy: Option<(PrivAlg, &[u8])>,
    ) -> UserKeys {
        UserKeys {
            auth,
            auth_ku: secret_key(&auth.password_key(auth_password)),
            privacy: privacy.map(|(alg, password)| (alg, secret_key(&auth.password_key(password)))),
        }
    }

    /// The authentication protocol the keys were derived for.
    pub fn auth(&self) -> AuthAlg {
        self.auth
    }

    /// Whether there is a privacy key (authPriv), or only authentication (authNoPriv).
    pub fn has_privacy(&self) -> bool {
        self.privacy.is_some()
    }

    /// The authentication key localized to `engine_id`.
    pub fn auth_key(&self, engine_id: &[u8]) -> Zeroizing<Vec<u8>> {
        self.auth.localize(self.auth_ku.expose_secret(), engine_id)
    }

    /// The privacy protocol and the privacy key localized to `engine_id`, at the hash's full
    /// length (the caller cuts it to the cipher's), or `None` without privacy.
    pub fn priv_key(&self, engine_id: &[u8]) -> Option<(PrivAlg, Zeroizing<Vec<u8>>)> {
        self.privacy
            .as_ref()
            .map(|(alg, ku)| (*alg, self.auth.localize(ku.expose_secret(), engine_id)))
    }
}

/// The AES-CFB IV (RFC 3826 §3.1.2.1): engine boots, engine time, the message's salt.
pub fn aes_iv(boots: i64, time: i64, salt: &[u8; 8]) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..4].copy_from_slice(&(boots as u32).to_be_bytes());
    iv[4..8].copy_from_slice(&(time as u32).to_be_bytes());
    iv[8..].copy_from_slice(salt);
    iv
}

/// Encrypt or decrypt `data` in place with AES in CFB-128 mode. `key` must be
/// [`PrivAlg::key_len`] bytes; `false` if it is not.
pub fn aes_cfb(alg: PrivAlg, key: &[u8], iv: &[u8; 16], data: &mut [u8], encrypt: bool) -> bool {
    match alg {
        PrivAlg::Aes128 => match Aes128::new_from_slice(key) {
            Ok(c) => cfb(&c, iv, data, encrypt),
            Err(_) => return false,
        },
        PrivAlg::Aes256 => match Aes256::new_from_slice(key) {
            Ok(c) => cfb(&c, iv, data, encrypt),
            Err(_) => return false,
        },
    }
    true
}

/// CFB-128: each block of keystream is the encryption of the previous ciphertext block.
fn cfb<C: BlockCipherEncrypt<BlockSize = aes::cipher::consts::U16>>(
    cipher: &C,
    iv: &[u8; 16],
    data: &mut [u8],
    encrypt: bool,
) {
    let mut feedback: Array<u8, aes::cipher::consts::U16> = Array::from(*iv);
    for chunk in data.chunks_mut(16) {
        let mut stream = feedback;
        cipher.encrypt_block(&mut stream);
        let mut next = [0u8; 16];
        for (i, b) in chunk.iter_mut().enumerate() {
            let c = if encrypt { *b ^ stream[i] } else { *b };
            next[i] = c;
            *b ^= stream[i];
        }
        feedback = Array::from(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3414 Appendix A.3: password "maplesyrup", engine ID 00…02.
    const ENGINE: &str = "000000000000000000000002";

    #[test]
    fn rfc3414_a3_1_md5_key_localization() {
        let ku = AuthAlg::Md5.password_key(b"maplesyrup");
        assert_eq!(*ku, hex("9faf3283884e92834ebc9847d8edd963"));
        let kul = AuthAlg::Md5.localize(&ku, &hex(ENGINE));
        assert_eq!(*kul, hex("526f5eed9fcce26f8964c2930787d82b"));
    }

    #[test]
    fn rfc3414_a3_2_sha1_key_localization() {
        let ku = AuthAlg::Sha1.password_key(b"maplesyrup");
        assert_eq!(*ku, hex("9fb5cc0381497b3793528939ff788d5d79145211"));
        let kul = AuthAlg::Sha1.localize(&ku, &hex(ENGINE));
        assert_eq!(*kul, hex("6695febc9288e36282235fc7151f128497b38f3f"));
    }

    /// RFC 3414 Appendix A.3 again, from the `Ku` the RFC prints rather than from the
    /// password: what a session does with a driver's kept keys.
    #[test]
    fn rfc3414_a3_localization_from_kept_keys() {
        for (alg, ku, kul) in [
            (
                AuthAlg::Md5,
                "9faf3283884e92834ebc9847d8edd963",
                "526f5eed9fcce26f8964c2930787d82b",
            ),
            (
                AuthAlg::Sha1,
                "9fb5cc0381497b3793528939ff788d5d79145211",
                "6695febc9288e36282235fc7151f128497b38f3f",
            ),
        ] {
            let keys = UserKeys {
                auth: alg,
                auth_ku: secret_key(&hex(ku)),
                privacy: Some((PrivAlg::Aes128, secret_key(&hex(ku)))),
            };
            assert_eq!(*keys.auth_key(&hex(ENGINE)), hex(kul), "{alg:?}");
            // The privacy key is localized with the authentication hash (RFC 3826 §1.2).
            let (priv_alg, key) = keys.priv_key(&hex(ENGINE)).unwrap();
            assert_eq!((priv_alg, &*key), (PrivAlg::Aes128, &hex(kul)), "{alg:?}");
        }
    }

    #[test]
    fn derived_keys_are_the_password_keys_and_never_shown() {
        let keys = UserKeys::derive(
            AuthAlg::Sha1,
            b"maplesyrup",
            Some((PrivAlg::Aes128, b"maplesyrup")),
        );
        assert_eq!(
            *keys.auth_key(&hex(ENGINE)),
            hex("6695febc9288e36282235fc7151f128497b38f3f")
        );
        assert!(keys.has_privacy());
        let shown = format!("{keys:?}");
        assert!(shown.contains("REDACTED"), "{shown}");
        // Neither Ku nor any byte of it in hex or decimal.
        for needle in ["9fb5cc", "9FB5CC", "159, 181"] {
            assert!(!shown.contains(needle), "{shown}");
        }
        let without = UserKeys::derive(AuthAlg::Sha1, b"maplesyrup", None);
        assert!(!without.has_privacy());
        assert!(without.priv_key(&hex(ENGINE)).is_none());
    }

    #[test]
    fn macs_are_truncated_to_the_protocol_length() {
        for (alg, len) in [
            (AuthAlg::Md5, 12),
            (AuthAlg::Sha1, 12),
            (AuthAlg::Sha256, 24),
            (AuthAlg::Sha512, 48),
        ] {
            let mac = alg.sign(b"0123456789abcdef", b"message");
            assert_eq!(mac.len(), len, "{alg:?}");
            assert!(alg.verify(b"0123456789abcdef", b"message", &mac));
            assert!(!alg.verify(b"0123456789abcdeX", b"message", &mac));
            assert!(!alg.verify(b"0123456789abcdef", b"messagX", &mac));
            assert!(!alg.verify(b"0123456789abcdef", b"message", &mac[..len - 1]));
        }
    }

    #[test]
    fn hmac_sha1_matches_rfc2202_case_2() {
        // RFC 2202 test case 2, truncated to 96 bits as HMAC-SHA-96 sends it.
        let mac = AuthAlg::Sha1.sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(*mac, hex("effcdf6ae5eb2fa2d27416d5")[..]);
    }

    #[test]
    fn aes128_cfb_matches_nist_sp800_38a_f_3_13() {
        let key = hex("2b7e151628aed2a6abf7158809cf4f3c");
        let iv: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let plain = hex(
            "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
             30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710",
        );
        let cipher = hex(
            "3b3fd92eb72dad20333449f8e83cfb4a c8a64537a0b3a93fcde3cdad9f1ce58b
             26751f67a3cbb140b1808cf187a4f4df c04b05357c5d1c0eeac4c66f9ff7f2e6",
        );
        let mut data = plain.clone();
        assert!(aes_cfb(PrivAlg::Aes128, &key, &iv, &mut data, true));
        assert_eq!(data, cipher);
        assert!(aes_cfb(PrivAlg::Aes128, &key, &iv, &mut data, false));
        assert_eq!(data, plain);
        // A partial last block (SNMP does not pad).
        let mut short = plain[..21].to_vec();
        assert!(aes_cfb(PrivAlg::Aes128, &key, &iv, &mut short, true));
        assert_eq!(short, cipher[..21]);
    }

    #[test]
    fn aes256_cfb_matches_nist_sp800_38a_f_3_17() {
        let key = hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        let iv: [u8; 16] = hex("000102030405060708090a0b0c0d0e0f").try_into().unwrap();
        let mut data = hex("6bc1bee22e409f96e93d7e117393172a");
        assert!(aes_cfb(PrivAlg::Aes256, &key, &iv, &mut data, true));
        assert_eq!(data, hex("dc7e84bfda79164b7ecd8486985d3860"));
        assert!(!aes_cfb(PrivAlg::Aes256, &key[..16], &iv, &mut data, true));
    }

    #[test]
    fn the_iv_is_boots_time_salt() {
        let iv = aes_iv(1, 0x0102_0304, &[9; 8]);
        assert_eq!(iv, [0, 0, 0, 1, 1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9]);
    }
}
