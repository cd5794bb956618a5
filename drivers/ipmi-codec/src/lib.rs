//! The sans-IO IPMI 2.0 "lanplus" (RMCP+) codec: both directions of every packet a fencing
//! conversation needs, and the RMCP+ cryptography (RAKP codes, key schedule, integrity,
//! AES-CBC-128).
//!
//! It is a crate of its own because two very different users speak the same wire format:
//! the IPMI power driver (`fencegate-ipmi`, the console side) and the BMC simulator
//! (`fencegate-bmcsim`, the BMC side). Keeping it apart lets the driver crate expose only
//! its factory and driver, lets the simulator build without the driver, and gives the fuzz
//! targets one place to reach every decoder ([`decode_any`]).
//!
//! No function here does I/O, and none panics on input: every decoder returns
//! [`DecodeError`] for anything a peer can send.
//!
//! Only cipher suites 17 (SHA-256) and 3 (SHA-1) are spoken, both with AES-CBC-128
//! encryption and HMAC integrity; suite 0 and IPMI 1.5 sessions are refused.

#![warn(missing_docs)]

pub mod commands;
pub mod crypto;
pub mod error;
pub mod message;
pub mod rakp;
pub mod rmcp;
pub mod session;
mod wire;

pub use crypto::CipherSuite;
pub use error::DecodeError;

/// Run every decoder of the codec over `data`, for fuzzing: none may panic, index out of
/// range or loop, whatever the bytes.
///
/// The first byte picks the session keys' suite so that the integrity and decryption paths
/// run too, both on the bare bytes and behind a valid RMCP+ header. The results are thrown
/// away on purpose: a fuzzer only looks for crashes, and the property tests check values.
pub fn decode_any(data: &[u8]) {
    use crypto::{SecretKey, SessionKeys};
    use rakp::{OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4};

    let _ = rmcp::decode(data);
    let _ = message::decode_request(data);
    let _ = message::decode_response(data);
    let _ = OpenSessionRequest::decode(data);
    let _ = OpenSessionResponse::decode(data);
    let _ = Rakp1::decode(data);
    let _ = Rakp2::decode(data);
    let _ = Rakp3::decode(data);
    let _ = Rakp4::decode(data);
    let _ = commands::AuthCapabilities::decode(data);
    let _ = commands::ChassisStatus::decode(data);
    let _ = commands::SdrRepoInfo::decode(data);
    let _ = commands::GetSdr::decode(data);
    let _ = commands::decode_sdr_chunk(data);
    let _ = commands::SdrHeader::decode(data);
    let _ = commands::sensor_types(data);
    let _ = commands::parse_cipher_suite_records(data);

    let suite = match data.first() {
        Some(b) if b & 1 == 1 => CipherSuite::Suite17,
        _ => CipherSuite::Suite3,
    };
    let Some(sik) = SecretKey::new(&[0x5a; 20]) else {
        return;
    };
    let keys = SessionKeys::from_sik(suite, sik);
    let mut out = Vec::new();
    let _ = keys.decrypt(data, &mut out);
    let mut session = session::Session::new(keys, 1, 2, true);
    let _ = session.open(data, &mut out);
    let mut framed = vec![
        rmcp::RMCP_VERSION,
        0x00,
        rmcp::RMCP_SEQ_NO_ACK,
        rmcp::RMCP_CLASS_IPMI,
        rmcp::AUTH_TYPE_RMCP_PLUS,
        0xC0,
        1,
        0,
        0,
        0,
    ];
    framed.extend_from_slice(data);
    let _ = session.open(&framed, &mut out);
}
