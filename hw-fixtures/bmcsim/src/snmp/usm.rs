//! The agent's side of SNMPv3 user-based security, as far as the simulator needs it:
//! HMAC-SHA-256-192 authentication (RFC 7860) with RFC 3414 key localization, written here
//! from the RFCs on top of `sha2` rather than shared with the driver, so that the two are
//! independent implementations checking each other.
//!
//! Privacy (encryption) is not simulated: a user here is authNoPriv, and a request asking
//! for privacy is refused with `usmStatsUnsupportedSecLevels`, as net-snmp refuses a user
//! without a privacy key.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The MAC length of usmHMAC192SHA256AuthProtocol: 24 of the 32 bytes.
pub const MAC_LEN: usize = 24;
/// SHA-256's block size, for HMAC.
const BLOCK: usize = 64;

/// RFC 3414 A.2 password-to-key: SHA-256 over one megabyte of the password repeated.
/// Panics on an empty password (configuration error of a test).
fn password_key(password: &[u8]) -> Zeroizing<[u8; 32]> {
    assert!(!password.is_empty(), "an SNMPv3 password must not be empty");
    let mut h = Sha256::new();
    let mut chunk = [0u8; 64];
    let mut at = 0usize;
    for _ in 0..(1_048_576 / 64) {
        for b in chunk.iter_mut() {
            *b = password[at % password.len()];
            at += 1;
        }
        h.update(chunk);
    }
    Zeroizing::new(h.finalize().into())
}

/// The key of `password` localized to `engine_id` (RFC 3414 §2.6): H(Ku ‖ engineID ‖ Ku).
pub fn localized_key(password: &[u8], engine_id: &[u8]) -> Zeroizing<[u8; 32]> {
    let ku = password_key(password);
    let mut h = Sha256::new();
    h.update(*ku);
    h.update(engine_id);
    h.update(*ku);
    Zeroizing::new(h.finalize().into())
}

/// HMAC-SHA-256 of `message` under `key` (32 bytes, shorter than a block), cut to
/// [`MAC_LEN`].
pub fn mac(key: &[u8; 32], message: &[u8]) -> [u8; MAC_LEN] {
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(message)
        .finalize();
    let outer = Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&outer[..MAC_LEN]);
    out
}

/// Whether `mac` is the MAC of `message`, compared without an early exit.
pub fn verify(key: &[u8; 32], message: &[u8], given: &[u8]) -> bool {
    let want = mac(key, message);
    given.len() == MAC_LEN && want.iter().zip(given).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2 has a 4-byte key; HMAC pads any key shorter than a block
        // with zeros, which is what a 32-byte key with trailing zeros is.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let m = mac(&key, b"what do ya want for nothing?");
        assert_eq!(hex(&m), "5bdcc146bf60754e6a042426089575c75a003f089d273983");
        assert!(verify(&key, b"what do ya want for nothing?", &m));
        assert!(!verify(&key, b"what do ya want for nothing!", &m));
        assert!(!verify(&key, b"what do ya want for nothing?", &m[..12]));
    }

    #[test]
    fn localization_depends_on_password_and_engine() {
        let a = localized_key(
            b"maplesyrup",
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02",
        );
        let b = localized_key(
            b"maplesyrup",
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03",
        );
        let c = localized_key(
            b"maplesyrop",
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02",
        );
        assert_ne!(*a, *b);
        assert_ne!(*a, *c);
    }
}
