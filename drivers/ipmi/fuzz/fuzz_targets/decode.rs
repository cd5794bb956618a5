//! Fuzz every decoder of the IPMI codec with arbitrary bytes: none may panic, index out of
//! range or loop. The codec's `decode_any` is the one entry point that reaches them all,
//! including the integrity and decryption paths (see its documentation).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fencegate_ipmi_codec::decode_any(data);
});
