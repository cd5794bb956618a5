//! OpenNebula: the `host_error` hook's input, a base64 `<HOST>` document, through the front
//! door's own decoders (the base64 word and the host XML).
//!
//! Invariants: the door reads a document the same way whether it comes bare or as the hook
//! sends it (base64); and what it reads from a document, written back as a plain `<HOST>`
//! document, reads the same again (the fields a fence acts on are never read two ways).

#![no_main]

use fencegate::opennebula::{HostInfo, parse_host_xml, parse_input};
use libfuzzer_sys::fuzz_target;

/// Standard base64 with padding, as Ruby's `strict_encode64` writes it.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Text as XML character data.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A plain `<HOST>` document saying `info`.
fn document(info: &HostInfo) -> String {
    let template = match &info.mapped {
        Some(m) => format!("<FENCEGATE_HOST>{}</FENCEGATE_HOST>", escaped(m)),
        None => String::new(),
    };
    format!(
        "<HOST><ID>{}</ID><NAME>{}</NAME><STATE>{}</STATE><TEMPLATE>{template}</TEMPLATE></HOST>",
        info.id,
        escaped(&info.name),
        info.state
    )
}

fuzz_target!(|data: &[u8]| {
    let bare = parse_host_xml(data);
    if !data.is_empty() {
        assert_eq!(parse_input(base64(data).as_bytes()), bare);
    }
    let _ = parse_input(data);
    if let Ok(info) = bare {
        let again = parse_host_xml(document(&info).as_bytes());
        assert_eq!(
            again.as_ref(),
            Ok(&info),
            "read differently when written back"
        );
    }
});
