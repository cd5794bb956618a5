//! Plugins: a plugin's JSON reply, through every check the driver applies to it (the answer
//! to `status`, to `set_power` and to `configure`, and the identity facts it carries).
//!
//! Invariants: a reading is off only when the reply's `state` says `Off`, answers the request
//! id and says `ok`; a command receipt never carries a power state; the device's secret never
//! appears in a reading, receipt, error or identity fact, even when the plugin echoes it; at
//! most 16 identity facts are kept, and none is authenticated unless the plugin declared an
//! authenticated identity.

#![no_main]

use fencegate_driver::PowerState;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The device's secret, as a plugin might echo it back.
const SECRET: &str = "Qz7-plugin-Secret";
/// The id of the request being answered.
const ID: u64 = 7;

fn says_off(state: Option<&Value>) -> bool {
    match state {
        Some(Value::String(s)) => s == "Off",
        Some(Value::Object(map)) => map.len() == 1 && map.get("Off") == Some(&Value::Null),
        _ => false,
    }
}

fn assert_hidden(text: &str) {
    assert!(!text.contains(SECRET), "secret shown: {text:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, reply)) = data.split_first() else {
        return;
    };
    let declared = flags & 1 == 1;
    let out = fencegate_plugin::fuzz_reply(reply, ID, SECRET, declared);

    match &out.reading {
        Ok(state) => {
            let v: Value = serde_json::from_slice(reply).expect("an accepted reply is JSON");
            assert_eq!(v.get("id").and_then(Value::as_u64), Some(ID));
            assert_eq!(v.get("ok"), Some(&Value::Bool(true)));
            assert_eq!(
                state.is_off(),
                says_off(v.get("state")),
                "{state:?} from {v}"
            );
            if let PowerState::Unknown(raw) = state {
                assert_hidden(raw);
            }
        }
        Err(e) => assert_hidden(&e.to_string()),
    }
    match &out.receipt {
        Ok(receipt) => {
            let v: Value = serde_json::from_slice(reply).expect("an accepted reply is JSON");
            assert!(
                v.get("state").is_none_or(Value::is_null),
                "receipt with a state: {v}"
            );
            assert_hidden(&receipt.detail);
        }
        Err(e) => assert_hidden(&e.to_string()),
    }
    if let Err(e) = &out.configured {
        assert_hidden(&e.to_string());
    }
    assert!(out.identity.len() <= 16);
    for fact in &out.identity {
        assert_hidden(&fact.kind);
        assert_hidden(&fact.value);
        assert!(declared || !fact.authenticated);
    }
});
