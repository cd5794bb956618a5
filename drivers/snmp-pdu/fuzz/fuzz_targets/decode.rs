//! Fuzz the SNMP decoders and the SNMPv3 answer path (authentication check, decryption,
//! scoped PDU) with arbitrary bytes: none may panic, index out of range or loop.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fencegate_snmp_pdu::fuzz_decode(data);
});
