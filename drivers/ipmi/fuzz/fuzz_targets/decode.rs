//! Fuzz every decoder of the IPMI codec with arbitrary bytes: none may panic, index out of
//! range or loop. The first byte picks the session keys' suite so that the integrity and
//! decryption paths run too, both bare and behind a valid RMCP+ header.

#![no_main]

use fencegate_ipmi::commands::{self, AuthCapabilities, ChassisStatus};
use fencegate_ipmi::crypto::{CipherSuite, SecretKey, SessionKeys};
use fencegate_ipmi::message;
use fencegate_ipmi::rakp::{OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4};
use fencegate_ipmi::rmcp;
use fencegate_ipmi::session::Session;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rmcp::decode(data);
    let _ = message::decode_request(data);
    let _ = message::decode_response(data);
    let _ = OpenSessionRequest::decode(data);
    let _ = OpenSessionResponse::decode(data);
    let _ = Rakp1::decode(data);
    let _ = Rakp2::decode(data);
    let _ = Rakp3::decode(data);
    let _ = Rakp4::decode(data);
    let _ = AuthCapabilities::decode(data);
    let _ = ChassisStatus::decode(data);
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
    let mut session = Session::new(keys, 1, 2, true);
    let _ = session.open(data, &mut out);
    let mut framed = vec![0x06, 0x00, 0xFF, 0x07, 0x06, 0xC0, 1, 0, 0, 0];
    framed.extend_from_slice(data);
    let _ = session.open(&framed, &mut out);
});
