//! Known-answer tests for the RMCP+ key schedule.
//!
//! The expected values were computed once, independently of this crate, from the IPMI 2.0
//! definitions: Python's `hmac`/`hashlib` for every HMAC (SIK, K1, K2 with 20-byte constants,
//! RAKP 2/3 codes, RAKP 4 ICV, packet integrity) and `openssl enc -aes-128-cbc -nopad -K
//! <K2[0..16]> -iv f0f1…ff` for the encrypted block, fed with the IPMI-padded plaintext.
//! Inputs: Rm = 00..0f, Rc = 10..1f, GUIDc = a123456789abcdefa123456789abcdef,
//! SIDm = 0x11223344, SIDc = 0xa0b0c0d0, role 0x14 (administrator, name-only lookup),
//! user "admin", password "password", Kg "0123456789abcdefghij".

use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vector hex"))
        .collect()
}

const RM: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
const RC: [u8; 16] = [
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
];
const GUID: [u8; 16] = [
    0xa1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xa1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
];
const PACKET: &str = "06c0aabbccdd01000000200010";
const PLAIN: &str = "2018c881040101";
const IV: [u8; 16] = [
    0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
];

struct Vectors {
    sik: &'static str,
    k1: &'static str,
    k2: &'static str,
    rakp4: &'static str,
    integrity: &'static str,
    aes: &'static str,
}

fn handshake(suite: CipherSuite) -> Handshake<'static> {
    Handshake {
        suite,
        console_sid: 0x1122_3344,
        bmc_sid: 0xa0b0_c0d0,
        console_random: &RM,
        bmc_random: &RC,
        bmc_guid: &GUID,
        identity: Identity {
            role: 0x14,
            user: b"admin",
        },
    }
}

fn check(suite: CipherSuite, kg: Option<&SecretKey>, v: &Vectors) {
    let password = SecretKey::new(b"password").unwrap();
    let hs = handshake(suite);
    let keys = hs.session_keys(&password, kg);
    assert_eq!(keys.sik(), hex(v.sik), "SIK");
    assert_eq!(keys.k1(), hex(v.k1), "K1");
    assert_eq!(keys.k2(), hex(v.k2), "K2");
    let icv = keys.rakp4_icv(&RM, hs.bmc_sid, &GUID);
    assert_eq!(icv.as_bytes(), hex(v.rakp4), "RAKP4 ICV");
    assert!(icv.matches(&hex(v.rakp4)));
    assert_eq!(
        keys.integrity_tag(&hex(PACKET)).as_bytes(),
        hex(v.integrity),
        "integrity"
    );
    let mut out = Vec::new();
    keys.encrypt(&IV, &hex(PLAIN), &mut out);
    assert_eq!(&out[..16], IV);
    assert_eq!(out[16..], hex(v.aes), "AES-CBC");
    let mut back = Vec::new();
    keys.decrypt(&out, &mut back).unwrap();
    assert_eq!(back, hex(PLAIN));
}

#[test]
fn suite3_password_keys() {
    check(
        CipherSuite::Suite3,
        None,
        &Vectors {
            sik: "122c77c4b11ccd93251cbae6c34a9cb6310da154",
            k1: "e4472be78f9a81fa68297aab696a7be8c97fc9f8",
            k2: "2b6552012a2517cb3b5713901d757a6efc7d8301",
            rakp4: "ab431be69f11aa49484fa70e",
            integrity: "0e6bd8549f7a130023c8f28e",
            aes: "b3a417afe8792ee4d550aaacd9ac2f2c",
        },
    );
}

#[test]
fn suite3_kg_keys() {
    let kg = SecretKey::new(b"0123456789abcdefghij").unwrap();
    check(
        CipherSuite::Suite3,
        Some(&kg),
        &Vectors {
            sik: "65f784b694a40588bbd04701ea80d7f32d82e940",
            k1: "696460a459ab60253097b17d0cbf70afd1778948",
            k2: "ee2af29b141446326871f9d79268ec2e2fe28b9c",
            rakp4: "30f728435c5a887deee969bb",
            integrity: "07d20751e107cc2352d1f10f",
            aes: "e8db155cf625ed0873ab0a0a8ecd388e",
        },
    );
}

#[test]
fn suite17_password_keys() {
    check(
        CipherSuite::Suite17,
        None,
        &Vectors {
            sik: "e5935f7199865ad961063477b0662684e2ce9b1da8f2b8d41c5ce127d37e9bcf",
            k1: "dc4fe73d075306f6897115dd63257385e845c10404fa1d73991790c6a101bec2",
            k2: "2a4f969ea6dfa83066f36674fdc2fea289fa1a21da90303e9b5269b54ec5adb5",
            rakp4: "a70b603a252eb26feb33af92e8fd6d77",
            integrity: "10d555931c7515437a53e9c1cf2598b1",
            aes: "08cc39c8c4e018e15eee993a4c28e3ea",
        },
    );
}

#[test]
fn suite17_kg_keys() {
    let kg = SecretKey::new(b"0123456789abcdefghij").unwrap();
    check(
        CipherSuite::Suite17,
        Some(&kg),
        &Vectors {
            sik: "1b81a421925c6a1fe7328bea4e72c8e5826e24f55ba8bc6fc9511f62edcd7b9f",
            k1: "714226f0e5a8c5cab79a60a68df75e8aabb6499f74ed7160a1a4882a170d25a0",
            k2: "9438f46f203279dfa20c2567f2e242f305711668b5fc3ef590f30ebef086ad71",
            rakp4: "b07a7bf60d3fb7e13a82cfa827216b2b",
            integrity: "53823f4a4d0904bfe433bf0d0065e228",
            aes: "6777f893bca60e6c2e89dcef19a52ac8",
        },
    );
}

#[test]
fn zero_kg_means_password() {
    let zero = SecretKey::new(&[0; 20]).unwrap();
    let password = SecretKey::new(b"password").unwrap();
    let hs = handshake(CipherSuite::Suite3);
    assert_eq!(
        hs.session_keys(&password, Some(&zero)).sik(),
        hs.session_keys(&password, None).sik()
    );
}

#[test]
fn rakp_auth_codes() {
    let password = SecretKey::new(b"password").unwrap();
    let s3 = handshake(CipherSuite::Suite3);
    assert_eq!(
        s3.rakp2_auth_code(&password).as_bytes(),
        hex("af0dc9f85897ced164d159147fa784c4fd6011e5")
    );
    assert_eq!(
        s3.rakp3_auth_code(&password).as_bytes(),
        hex("4402012e214da511895a399bd77d5396e7998a4d")
    );
    let s17 = handshake(CipherSuite::Suite17);
    assert_eq!(
        s17.rakp2_auth_code(&password).as_bytes(),
        hex("4992225e224bf0b53da82c352106d0ee293c1062d9745fa43919763c13ec103d")
    );
    assert_eq!(
        s17.rakp3_auth_code(&password).as_bytes(),
        hex("e6f17841e92f8c11cbc4fd1cafcc9c21e3d814e713e13e9ee640103b50c0ef15")
    );
    let wrong = SecretKey::new(b"passwore").unwrap();
    assert!(
        !s3.rakp2_auth_code(&wrong)
            .matches(s3.rakp2_auth_code(&password).as_bytes())
    );
}

/// RFC 2202 test case 2 and RFC 4231 test case 2 ("Jefe"), as a sanity check of the HMAC
/// plumbing independent of IPMI.
#[test]
fn rfc_hmac_vectors() {
    let msg: &[u8] = b"what do ya want for nothing?";
    assert_eq!(
        hmac(Hash::Sha1, b"Jefe", &[&msg[..10], &msg[10..]]).as_bytes(),
        hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
    );
    assert_eq!(
        hmac(Hash::Sha256, b"Jefe", &[msg]).as_bytes(),
        hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    );
    // RFC 2202 case 1 / RFC 4231 case 1: key 0x0b×20, "Hi There".
    assert_eq!(
        hmac(Hash::Sha1, &[0x0b; 20], &[b"Hi There"]).as_bytes(),
        hex("b617318655057264e28bc0b6fb378c8ef146be00")
    );
    assert_eq!(
        hmac(Hash::Sha256, &[0x0b; 20], &[b"Hi There"]).as_bytes(),
        hex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    );
}

#[test]
fn decrypt_rejects_bad_padding_and_lengths() {
    let keys = handshake(CipherSuite::Suite3).session_keys(&SecretKey::new(b"x").unwrap(), None);
    let mut out = Vec::new();
    assert!(keys.decrypt(&[0; 15], &mut out).is_err());
    assert!(keys.decrypt(&[0; 16], &mut out).is_err());
    assert!(keys.decrypt(&[0; 40], &mut out).is_err());
    // Random ciphertext almost never decrypts to a valid pad; whatever it yields, no panic.
    for n in 0..64u8 {
        let _ = keys.decrypt(&[n; 48], &mut out);
    }
    for len in 0..40usize {
        let plain: Vec<u8> = (0..len as u8).collect();
        let mut enc = Vec::new();
        keys.encrypt(&IV, &plain, &mut enc);
        assert_eq!((enc.len() - 16) % 16, 0);
        keys.decrypt(&enc, &mut out).unwrap();
        assert_eq!(out, plain);
    }
}

#[test]
fn suite_ids_and_refusals() {
    assert_eq!(CipherSuite::from_id(3), Ok(CipherSuite::Suite3));
    assert_eq!(CipherSuite::from_id(17), Ok(CipherSuite::Suite17));
    let e = CipherSuite::from_id(0).unwrap_err().to_string();
    assert!(e.contains("authenticates nothing"), "{e}");
    assert!(CipherSuite::from_id(1).is_err());
    assert_eq!(
        CipherSuite::from_algorithms(0x03, 0x04, 0x01),
        Some(CipherSuite::Suite17)
    );
    assert_eq!(CipherSuite::from_algorithms(0x01, 0x01, 0x00), None);
    let k = SecretKey::new(b"hunter2").unwrap();
    assert!(!format!("{k:?}").contains("hunter2"));
}
