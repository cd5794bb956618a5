//! External drivers: one line a driver program writes on its stdout, decoded by the
//! protocol's own decoder, and the version string of its hello.
//!
//! Invariant: a response reads as off only when its `state` says `Off` in the contract's serde
//! form; no other field, and nothing a driver leaves out, can make an off reading.

#![no_main]

use fencegate_driver::PowerState;
use fencegate_external::protocol::{self, DriverMessage, Version};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Whether a JSON value is the contract's serde form of `Off` (`"Off"`, or `{"Off":null}`
/// which serde also reads as that unit variant).
fn says_off(state: Option<&Value>) -> bool {
    match state {
        Some(Value::String(s)) => s == "Off",
        Some(Value::Object(map)) => map.len() == 1 && map.get("Off") == Some(&Value::Null),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(DriverMessage::Response(response)) = protocol::decode(data) {
        if response.state == Some(PowerState::Off) {
            let v: Value = serde_json::from_slice(data).expect("a decoded line is JSON");
            assert_eq!(v.get("type").and_then(Value::as_str), Some("response"));
            assert!(says_off(v.get("state")), "off from {v}");
        }
        if let Some(PowerState::Unknown(raw)) = &response.state {
            // Kept verbatim here; the driver clips it before it becomes evidence.
            let _ = raw.len();
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(version) = Version::parse(text)
    {
        // A version that parses is a plain `MAJOR.MINOR` and reads back as itself.
        assert_eq!(Version::parse(&version.to_string()), Some(version));
    }
});
