//! SNMP: BER, community (v1/v2c) messages, v3 envelopes, scoped PDUs and the whole v3 answer
//! path (USM authentication check, AES decryption, report and request-id matching) with
//! fixed keys, on arbitrary datagrams. Nothing may panic, and a PDU that decodes must encode
//! to bytes that decode to it again (checked inside the entry point, where the codec is).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fencegate_snmp_pdu::fuzz_decode(data);
});
