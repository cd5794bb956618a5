//! Redfish: every reader of a BMC's JSON resources (service root, collections, system, power
//! supplies, reset action, ActionInfo, error bodies). The body is decoded the way the driver
//! decodes it (`serde_json`, its default recursion limit), then read as every resource at
//! once, since a hostile BMC may send any document at any URL.
//!
//! Invariants: only the exact string `"Off"` in `PowerState` reads as off; anything a BMC
//! says that is kept for evidence is clipped and free of control characters; collections
//! stay within their bounds.

#![no_main]

use fencegate_driver::{Action, PowerState};
use fencegate_redfish::model::{self, MAX_MESSAGE, MAX_SUPPLIES, ResetAction, ServiceRoot};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Text a BMC said, as kept for evidence: at most `MAX_MESSAGE` characters and a cut mark,
/// no control characters.
fn assert_clipped(text: &str) {
    assert!(
        text.chars().count() <= MAX_MESSAGE + 1,
        "not clipped: {text:?}"
    );
    assert!(
        !text.chars().any(char::is_control),
        "control character kept: {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };

    let state = model::power_state(&v);
    let says_off = v.get("PowerState").and_then(Value::as_str) == Some("Off");
    assert_eq!(
        state.is_off(),
        says_off,
        "{state:?} from {:?}",
        v.get("PowerState")
    );
    if let PowerState::Unknown(raw) = &state {
        assert_clipped(raw);
    }

    let _ = ServiceRoot::from_json(&v);
    for link in model::members(&v) {
        let _ = model::last_segment(&link);
    }
    let (uuid, serial) = model::identity(&v);
    for text in uuid.iter().chain(serial.iter()) {
        assert_clipped(text);
    }
    let _ = model::restore_setting(&v);
    if let Err(e) = model::chassis_link(&v) {
        assert!(
            e.len() < 2 * MAX_MESSAGE * 4,
            "unbounded error: {} bytes",
            e.len()
        );
    }
    let _ = model::supply_installed(&v);
    if let Ok(members) = model::supply_members(&v) {
        assert!(members.len() <= MAX_SUPPLIES);
    }
    if let Ok(Some(installed)) = model::legacy_supplies(&v) {
        assert!(installed <= MAX_SUPPLIES);
    }

    let allowed = ResetAction::from_system(&v)
        .and_then(|a| a.allowed)
        .or_else(|| model::action_info_allowed(&v));
    for action in [Action::Off, Action::On, Action::Cycle, Action::GracefulOff] {
        if let Ok(chosen) = model::choose_reset_type(action, allowed.as_deref()) {
            // A fence is only ever a hard power-off, whatever the BMC offers.
            if action == Action::Off {
                assert_eq!(chosen, "ForceOff");
            }
        }
    }

    if let Some(message) = model::error_message(&v) {
        assert_clipped(&message);
        let _ = model::is_session_limit(&message);
        for action in [Action::Off, Action::On, Action::Cycle, Action::GracefulOff] {
            let _ = model::says_already_in_state(&message, action);
        }
    }
});
