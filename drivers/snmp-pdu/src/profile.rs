//! Vendor profiles: which OIDs switch and read an outlet, and which integers mean what.
//!
//! PDU vendors agree on nothing but SNMP itself, so everything vendor-specific is data in
//! this one module: a profile is a table of OID templates and integer values. Adding a
//! vendor means adding a [`Profile`] constant, never touching the protocol code. The values
//! below come from the vendors' public MIBs (PowerNet-MIB, PDU2-MIB, EATON-EPDU-MIB,
//! Sentry3-MIB) and are the ones fence-agents, MAAS and NUT use.

use fencegate_driver::{Action, DeviceSpec, PowerState, SpecError};
use std::fmt;

/// Where the outlet number goes in an OID template.
pub const OUTLET_PLACEHOLDER: &str = "{outlet}";

/// One SET that performs an action on one outlet: write `value` to the control OID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// OID template of the writable object (`{outlet}` is replaced by the outlet number).
    pub oid: String,
    /// The integer to write.
    pub value: i64,
}

/// How to read and switch outlets of one PDU family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The profile name as given in the `profile` option.
    pub name: String,
    /// OID template of the readable outlet state.
    pub state_oid: String,
    /// State integers that mean the outlet is powered.
    pub on_states: Vec<i64>,
    /// State integers that mean the outlet is unpowered: the only readings that can become `Off`.
    pub off_states: Vec<i64>,
    /// The SET for `Action::Off`.
    pub off: Command,
    /// The SET for `Action::On`.
    pub on: Command,
    /// The SET for `Action::Cycle`, if the family has a device-side reboot.
    pub cycle: Option<Command>,
}

/// A built-in profile as static data.
#[derive(Clone, Copy)]
struct Builtin {
    name: &'static str,
    what: &'static str,
    state_oid: &'static str,
    on_states: &'static [i64],
    off_states: &'static [i64],
    off: (&'static str, i64),
    on: (&'static str, i64),
    cycle: Option<(&'static str, i64)>,
}

/// The built-in vendor table. Templates use `{outlet}` for the outlet number; the unit,
/// tower or infeed index that some MIBs add is the first one (a stand-alone PDU).
const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "apc",
        what: "APC MasterSwitch, PowerNet-MIB sPDUOutletCtl (1 on, 2 off, 3 reboot)",
        state_oid: "1.3.6.1.4.1.318.1.1.4.4.2.1.3.{outlet}",
        on_states: &[1],
        off_states: &[2],
        off: ("1.3.6.1.4.1.318.1.1.4.4.2.1.3.{outlet}", 2),
        on: ("1.3.6.1.4.1.318.1.1.4.4.2.1.3.{outlet}", 1),
        cycle: Some(("1.3.6.1.4.1.318.1.1.4.4.2.1.3.{outlet}", 3)),
    },
    Builtin {
        name: "apc-rpdu",
        what: "APC rack PDU (AP78xx/AP79xx), PowerNet-MIB rPDUOutletControlOutletCommand",
        state_oid: "1.3.6.1.4.1.318.1.1.12.3.5.1.1.4.{outlet}",
        on_states: &[1],
        off_states: &[2],
        off: ("1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.{outlet}", 2),
        on: ("1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.{outlet}", 1),
        cycle: Some(("1.3.6.1.4.1.318.1.1.12.3.3.1.1.4.{outlet}", 3)),
    },
    Builtin {
        name: "raritan",
        what: "Raritan PX2/PX3, PDU2-MIB switchingOperation and the outlet onOff sensor (7 on, 8 off)",
        state_oid: "1.3.6.1.4.1.13742.6.5.4.3.1.3.1.{outlet}.14",
        on_states: &[7],
        off_states: &[8],
        off: ("1.3.6.1.4.1.13742.6.4.1.2.1.2.1.{outlet}", 0),
        on: ("1.3.6.1.4.1.13742.6.4.1.2.1.2.1.{outlet}", 1),
        cycle: Some(("1.3.6.1.4.1.13742.6.4.1.2.1.2.1.{outlet}", 2)),
    },
    Builtin {
        name: "eaton",
        what: "Eaton ePDU G2/G3, EATON-EPDU-MIB outletControl (off/on/reboot commands, delay 0)",
        state_oid: "1.3.6.1.4.1.534.6.6.7.6.6.1.2.0.{outlet}",
        on_states: &[1],
        off_states: &[0],
        off: ("1.3.6.1.4.1.534.6.6.7.6.6.1.3.0.{outlet}", 0),
        on: ("1.3.6.1.4.1.534.6.6.7.6.6.1.4.0.{outlet}", 0),
        cycle: Some(("1.3.6.1.4.1.534.6.6.7.6.6.1.5.0.{outlet}", 0)),
    },
    Builtin {
        name: "servertech",
        what: "Server Technology Sentry3, Sentry3-MIB outletStatus and outletControlAction (tower 1, infeed 1)",
        state_oid: "1.3.6.1.4.1.1718.3.2.3.1.5.1.1.{outlet}",
        on_states: &[1],
        off_states: &[0],
        off: ("1.3.6.1.4.1.1718.3.2.3.1.11.1.1.{outlet}", 2),
        on: ("1.3.6.1.4.1.1718.3.2.3.1.11.1.1.{outlet}", 1),
        cycle: Some(("1.3.6.1.4.1.1718.3.2.3.1.11.1.1.{outlet}", 3)),
    },
];

impl Builtin {
    /// The profile this table entry describes, refused if its commands contradict.
    fn profile(&self) -> Result<Profile, SpecError> {
        let cmd = |(oid, value): (&str, i64)| Command {
            oid: oid.to_owned(),
            value,
        };
        Profile {
            name: self.name.to_owned(),
            state_oid: self.state_oid.to_owned(),
            on_states: self.on_states.to_vec(),
            off_states: self.off_states.to_vec(),
            off: cmd(self.off),
            on: cmd(self.on),
            cycle: self.cycle.map(cmd),
        }
        .check_commands("profile", "profile")
    }
}

/// The options the `generic` profile reads (and that every other profile refuses).
pub const GENERIC_OPTIONS: &[&str] = &[
    "state_oid",
    "control_oid",
    "on_value",
    "off_value",
    "reboot_value",
    "state_on",
    "state_off",
];

/// Names of all profiles, for error messages and documentation.
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<_> = BUILTINS.iter().map(|b| b.name).collect();
    v.push("generic");
    v
}

/// One line per built-in profile saying what it talks to.
pub fn describe() -> Vec<(&'static str, &'static str)> {
    BUILTINS.iter().map(|b| (b.name, b.what)).collect()
}

impl Profile {
    /// The profile selected by the spec's `profile` option (default `apc`).
    pub fn from_spec(spec: &DeviceSpec) -> Result<Profile, SpecError> {
        let name = spec.option("profile").unwrap_or("apc");
        if name == "generic" {
            return generic(spec);
        }
        if let Some(k) = GENERIC_OPTIONS.iter().find(|k| spec.option(k).is_some()) {
            return Err(SpecError::for_key(
                *k,
                format!("only the `generic` profile takes `{k}` (profile is `{name}`)"),
            ));
        }
        let b = BUILTINS.iter().find(|b| b.name == name).ok_or_else(|| {
            SpecError::for_key(
                "profile",
                format!("unknown profile {name:?} (known: {})", names().join(", ")),
            )
        })?;
        b.profile()
    }

    /// Refuse a profile whose off command is the same SET (object and value) as its
    /// reboot or on command. A PDU "turned off" with its reboot action powers the outlet on
    /// again seconds later: the fence would read `Off` for a moment and the host would come
    /// back. `on_key` and `cycle_key` name the option to blame (`profile` for a built-in).
    fn check_commands(self, on_key: &str, cycle_key: &str) -> Result<Profile, SpecError> {
        if let Some(cycle) = self.cycle.as_ref().filter(|c| **c == self.off) {
            return Err(SpecError::for_key(
                cycle_key,
                format!(
                    "profile `{}`: the reboot command ({} = {}) is the off command: an outlet \
                     \"turned off\" with its reboot action powers on again seconds later, so \
                     a fence would not hold",
                    self.name, self.off.oid, cycle.value
                ),
            ));
        }
        if self.on == self.off {
            return Err(SpecError::for_key(
                on_key,
                format!(
                    "profile `{}`: the on command ({} = {}) is the off command: an outlet \
                     \"turned off\" with it powers on again",
                    self.name, self.off.oid, self.on.value
                ),
            ));
        }
        Ok(self)
    }

    /// The SET for an action, or `None` when this profile cannot do it.
    pub fn command(&self, action: Action) -> Option<&Command> {
        match action {
            Action::Off => Some(&self.off),
            Action::On => Some(&self.on),
            Action::Cycle => self.cycle.as_ref(),
            // An outlet has no graceful off, nor any action this profile does not know.
            _ => None,
        }
    }

    /// What a state integer means. Anything not listed is kept verbatim as unknown.
    pub fn classify(&self, value: i64) -> OutletState {
        if self.off_states.contains(&value) {
            OutletState::Off
        } else if self.on_states.contains(&value) {
            OutletState::On
        } else {
            OutletState::Other(value)
        }
    }
}

/// What one outlet's state integer means under a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutletState {
    /// One of the profile's on values.
    On,
    /// One of the profile's off values.
    Off,
    /// Anything else (transitional, error, unknown), kept raw.
    Other(i64),
}

impl fmt::Display for OutletState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutletState::On => f.write_str("on"),
            OutletState::Off => f.write_str("off"),
            OutletState::Other(v) => write!(f, "{v}"),
        }
    }
}

/// Aggregate outlet readings into one power state: `Off` only if every outlet reads off
/// (a dual-PSU host is powered while any outlet is), `On` if any reads on, and otherwise
/// `Unknown` with every raw reading, so the evidence shows what the PDU said.
pub fn aggregate(readings: &[(u32, OutletState)]) -> PowerState {
    if !readings.is_empty() && readings.iter().all(|(_, s)| *s == OutletState::Off) {
        return PowerState::Off;
    }
    if readings.iter().any(|(_, s)| *s == OutletState::On) {
        return PowerState::On;
    }
    let raw: Vec<String> = readings
        .iter()
        .map(|(outlet, s)| format!("outlet {outlet}={s}"))
        .collect();
    PowerState::Unknown(raw.join(", "))
}

/// The `generic` profile, entirely from options.
fn generic(spec: &DeviceSpec) -> Result<Profile, SpecError> {
    let required = |k: &str| {
        spec.option(k)
            .map(str::to_owned)
            .ok_or_else(|| SpecError::for_key(k, format!("the `generic` profile needs `{k}`")))
    };
    let int = |k: &str| -> Result<Option<i64>, SpecError> { spec.parsed_option::<i64>(k) };
    let state_oid = template(&required("state_oid")?, "state_oid")?;
    let control_oid = template(&required("control_oid")?, "control_oid")?;
    let on_value = int("on_value")?
        .ok_or_else(|| SpecError::for_key("on_value", "the `generic` profile needs `on_value`"))?;
    let off_value = int("off_value")?.ok_or_else(|| {
        SpecError::for_key("off_value", "the `generic` profile needs `off_value`")
    })?;
    let list = |k: &str, default: i64| -> Result<Vec<i64>, SpecError> {
        match spec.option(k) {
            None => Ok(vec![default]),
            Some(raw) => raw
                .split(',')
                .map(|v| {
                    v.trim().parse::<i64>().map_err(|e| {
                        SpecError::for_key(k, format!("invalid value {v:?} in {raw:?}: {e}"))
                    })
                })
                .collect(),
        }
    };
    let on_states = list("state_on", on_value)?;
    let off_states = list("state_off", off_value)?;
    if let Some(v) = off_states.iter().find(|v| on_states.contains(v)) {
        return Err(SpecError::for_key(
            "state_off",
            format!("{v} is listed as both an on and an off state"),
        ));
    }
    let cmd = |value| Command {
        oid: control_oid.clone(),
        value,
    };
    Profile {
        name: "generic".to_owned(),
        state_oid,
        on_states,
        off_states,
        off: cmd(off_value),
        on: cmd(on_value),
        cycle: int("reboot_value")?.map(cmd),
    }
    .check_commands("on_value", "reboot_value")
}

/// Normalize an OID template from configuration: a leading dot is dropped, the outlet
/// number is appended unless `{outlet}` appears, and every other arc must be a number.
fn template(raw: &str, key: &str) -> Result<String, SpecError> {
    let t = raw.trim().trim_start_matches('.');
    let t = if t.contains(OUTLET_PLACEHOLDER) {
        t.to_owned()
    } else {
        format!("{t}.{OUTLET_PLACEHOLDER}")
    };
    expand(&t, 1).map_err(|e| SpecError::for_key(key, format!("{raw:?}: {e}")))?;
    Ok(t)
}

/// Replace `{outlet}` and parse the result into OID arcs.
pub fn expand(template: &str, outlet: u32) -> Result<Vec<u64>, String> {
    let text = template.replace(OUTLET_PLACEHOLDER, &outlet.to_string());
    let arcs = text
        .split('.')
        .map(|a| {
            a.parse::<u64>()
                .map_err(|_| format!("{a:?} is not a numeric OID arc"))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    if arcs.len() < 2 || arcs[0] > 2 {
        return Err("an OID needs at least two arcs and starts with 0, 1 or 2".to_owned());
    }
    Ok(arcs)
}

/// Render OID arcs in dotted form, for messages.
pub fn dotted(arcs: &[u64]) -> String {
    let parts: Vec<String> = arcs.iter().map(u64::to_string).collect();
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(opts: &[(&str, &str)]) -> DeviceSpec {
        let mut s = DeviceSpec {
            name: "pdu".into(),
            driver: "snmp".into(),
            ..Default::default()
        };
        for (k, v) in opts {
            s.options.insert((*k).into(), (*v).into());
        }
        s
    }

    #[test]
    fn every_builtin_expands_and_has_distinct_on_off() {
        for name in names().into_iter().filter(|n| *n != "generic") {
            let p = Profile::from_spec(&spec(&[("profile", name)])).unwrap();
            expand(&p.state_oid, 7).unwrap();
            for a in [Action::Off, Action::On, Action::Cycle] {
                expand(&p.command(a).unwrap().oid, 7).unwrap();
            }
            assert!(
                p.off_states.iter().all(|v| !p.on_states.contains(v)),
                "{name}"
            );
        }
    }

    #[test]
    fn apc_is_default() {
        let p = Profile::from_spec(&spec(&[])).unwrap();
        assert_eq!(
            dotted(&expand(&p.state_oid, 4).unwrap()),
            "1.3.6.1.4.1.318.1.1.4.4.2.1.3.4"
        );
        assert_eq!(p.classify(2), OutletState::Off);
        assert_eq!(p.classify(4), OutletState::Other(4));
    }

    #[test]
    fn generic_appends_or_substitutes_the_outlet() {
        let p = Profile::from_spec(&spec(&[
            ("profile", "generic"),
            ("state_oid", ".1.3.6.1.4.1.9999.1.2"),
            ("control_oid", "1.3.6.1.4.1.9999.1.{outlet}.3"),
            ("on_value", "1"),
            ("off_value", "0"),
            ("state_on", "1,5"),
        ]))
        .unwrap();
        assert_eq!(
            dotted(&expand(&p.state_oid, 4).unwrap()),
            "1.3.6.1.4.1.9999.1.2.4"
        );
        assert_eq!(
            dotted(&expand(&p.off.oid, 4).unwrap()),
            "1.3.6.1.4.1.9999.1.4.3"
        );
        assert_eq!(p.classify(5), OutletState::On);
        assert!(p.cycle.is_none());
    }

    #[test]
    fn generic_options_are_checked() {
        let e = Profile::from_spec(&spec(&[("state_oid", "1.3.6")])).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("state_oid"));
        let e = Profile::from_spec(&spec(&[
            ("profile", "generic"),
            ("state_oid", "1.3.x"),
            ("control_oid", "1.3.6"),
            ("on_value", "1"),
            ("off_value", "0"),
        ]))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("state_oid"));
        let e = Profile::from_spec(&spec(&[("profile", "acme")])).unwrap_err();
        assert!(e.to_string().contains("raritan"));
    }

    fn generic_with(extra: &[(&'static str, &'static str)]) -> Result<Profile, SpecError> {
        let mut opts = vec![
            ("profile", "generic"),
            ("state_oid", "1.3.6.1.4.1.9999.1.2"),
            ("control_oid", "1.3.6.1.4.1.9999.1.3"),
            ("on_value", "1"),
            ("off_value", "2"),
        ];
        opts.extend_from_slice(extra);
        Profile::from_spec(&spec(&opts))
    }

    #[test]
    fn an_off_that_is_the_reboot_command_is_refused() {
        // An outlet "turned off" with its reboot action comes back on seconds later: the
        // fence would read off once and then the host runs again.
        let e = generic_with(&[("reboot_value", "2")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("reboot_value"), "{e}");
        assert!(e.message.contains("powers on again"), "{e}");
        // The same value on another control object is a different command.
        assert!(generic_with(&[("reboot_value", "3")]).is_ok());
        let e = generic_with(&[("on_value", "2"), ("state_on", "1")]).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("on_value"), "{e}");
    }

    #[test]
    fn a_builtin_whose_off_is_its_reboot_is_refused() {
        let mut b = Builtin { ..BUILTINS[0] };
        assert!(b.profile().is_ok());
        b.cycle = Some(b.off);
        let e = b.profile().unwrap_err();
        assert_eq!(e.key.as_deref(), Some("profile"), "{e}");
        assert!(e.message.contains("powers on again"), "{e}");
        // Eaton's commands share the value 0 but not the object: accepted.
        let eaton = BUILTINS.iter().find(|b| b.name == "eaton").unwrap();
        assert!(eaton.profile().is_ok());
    }

    #[test]
    fn aggregation_needs_every_outlet_off() {
        use OutletState::*;
        assert_eq!(aggregate(&[(1, Off), (2, Off)]), PowerState::Off);
        assert_eq!(aggregate(&[(1, Off), (2, On)]), PowerState::On);
        assert_eq!(
            aggregate(&[(1, Off), (2, Other(4))]),
            PowerState::Unknown("outlet 1=off, outlet 2=4".into())
        );
        assert!(!aggregate(&[]).is_off());
    }
}
