//! Power states as read from a device, and the actions a device can be asked to perform.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a power channel said about the power of the thing it controls.
///
/// Only [`PowerState::Off`] is ever proof that a host is fenced. Transitional and unknown states
/// are kept distinct (rather than folded into on/off) so the evidence record shows exactly what
/// the device answered; peers that read `PoweringOff` as off have caused split brain.
///
/// Non-exhaustive: a later contract may name more states. Code outside this crate must
/// treat a state it does not know as *not off* (ask [`PowerState::is_off`] rather than
/// matching), so a new state can never become proof by accident.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum PowerState {
    /// The device reports the power as on.
    On,
    /// The device reports the power as off. The only reading that can prove a fence.
    Off,
    /// The device reports a transition towards on.
    PoweringOn,
    /// The device reports a transition towards off: *not* proof, the relay may still be closed.
    PoweringOff,
    /// The device answered with something that is neither on nor off (kept verbatim).
    Unknown(String),
}

impl PowerState {
    /// True only for [`PowerState::Off`]: the single reading the engine may count as proof.
    pub fn is_off(&self) -> bool {
        matches!(self, PowerState::Off)
    }
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PowerState::On => f.write_str("on"),
            PowerState::Off => f.write_str("off"),
            PowerState::PoweringOn => f.write_str("powering-on"),
            PowerState::PoweringOff => f.write_str("powering-off"),
            PowerState::Unknown(detail) => write!(f, "unknown ({detail})"),
        }
    }
}

/// A power command.
///
/// `Off` is the hard, immediate power-off used for fencing. `GracefulOff` exists for operators
/// and is never used by the fencing engine: it needs the (possibly hung) OS to cooperate.
///
/// Non-exhaustive: a later contract may add actions. A driver asked for an action it does
/// not know answers [`crate::ErrorKind::Unsupported`] and sends nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Hard power off (IPMI power down, Redfish ForceOff, outlet off, `poweroff -f`).
    Off,
    /// Power on.
    On,
    /// Power cycle (off then on, done by the device). Cannot be verified on its own.
    Cycle,
    /// Ask the operating system to shut down. Never used for fencing.
    GracefulOff,
}

impl Action {
    /// Every action, in a stable order (for capability listings and metadata).
    pub const ALL: [Action; 4] = [Action::Off, Action::On, Action::Cycle, Action::GracefulOff];

    /// The lowercase name used in configuration, URLs, JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::On => "on",
            Action::Cycle => "cycle",
            Action::GracefulOff => "graceful_off",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_off_is_off() {
        assert!(PowerState::Off.is_off());
        for s in [
            PowerState::On,
            PowerState::PoweringOn,
            PowerState::PoweringOff,
            PowerState::Unknown("Off".into()),
        ] {
            assert!(!s.is_off(), "{s} must not count as off");
        }
    }

    #[test]
    fn a_state_or_action_this_build_does_not_know_is_refused_not_guessed() {
        // What a newer plugin or external driver might send. Refused whole (the reply is a
        // protocol error), never folded into a known state, least of all `Off`.
        for wire in [
            r#""Standby""#,
            r#""off""#,
            r#""OFF""#,
            r#""PoweredOff""#,
            r#"{"Off":"yes"}"#,
            r#"{"Off":null,"On":null}"#,
        ] {
            let parsed = serde_json::from_str::<PowerState>(wire);
            assert!(parsed.is_err(), "{wire} read as {parsed:?}");
        }
        let verbatim: PowerState = serde_json::from_str(r#"{"Unknown":"Off"}"#).unwrap();
        assert!(
            !verbatim.is_off(),
            "an unknown reading that says Off is not Off"
        );
        for wire in [r#""hard_off""#, r#""Off""#, r#""power_off""#] {
            let parsed = serde_json::from_str::<Action>(wire);
            assert!(parsed.is_err(), "{wire} read as {parsed:?}");
        }
    }
}
