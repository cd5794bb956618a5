//! IPMI: every decoder of the RMCP+ codec (RMCP and session headers, IPMI messages, the
//! open-session and RAKP messages, command answers, SDR records, integrity and decryption
//! with fixed session keys), through the codec's own fuzzing entry point.
//!
//! Invariants: nothing panics; a request message that decodes encodes back to the very same
//! bytes; a chassis status reads power off only when bit 0 of its power state byte is clear,
//! and encodes back to what it decoded from.

#![no_main]

use fencegate_ipmi_codec::commands::ChassisStatus;
use fencegate_ipmi_codec::message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fencegate_ipmi_codec::decode_any(data);

    if let Ok((header, body)) = message::decode_request(data) {
        let mut again = Vec::new();
        message::encode_request(&mut again, &header, body);
        assert_eq!(again, data, "a request does not encode back to its bytes");
    }

    if let Ok(status) = ChassisStatus::decode(data) {
        assert_eq!(status.power_on, data[0] & 1 == 1, "power bit misread");
        assert_eq!(ChassisStatus::decode(&status.encode()).ok(), Some(status));
    }
});
