//! The few Redfish resources this driver reads, and how their values map onto the contract.
//!
//! Everything is read from `serde_json::Value` with explicit accessors rather than strict
//! typed structs: a BMC that sends a number where a string belongs in some unrelated property
//! must not make the power reading fail, and nothing a BMC sends may panic the driver.

use fencegate_driver::{Action, PowerState, RestorePolicy};
use serde_json::Value;

/// The longest message taken from a BMC into an error or receipt, so a chatty or hostile
/// BMC cannot flood the evidence record.
pub const MAX_MESSAGE: usize = 300;

/// The `@odata.id` of a property that links to another resource, e.g. `Systems`.
pub fn link<'a>(v: &'a Value, property: &str) -> Option<&'a str> {
    v.get(property)?.get("@odata.id")?.as_str()
}

/// What the service root tells us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRoot {
    /// The systems collection (`/redfish/v1/Systems` unless the root says otherwise).
    pub systems: String,
    /// The sessions collection, if the service advertises a SessionService.
    pub sessions: Option<String>,
}

impl ServiceRoot {
    /// Read the root; missing links fall back to the spec's fixed locations, except sessions,
    /// whose absence means "no SessionService".
    pub fn from_json(v: &Value) -> ServiceRoot {
        let systems = link(v, "Systems")
            .unwrap_or("/redfish/v1/Systems")
            .to_owned();
        let sessions = v
            .get("Links")
            .and_then(|l| link(l, "Sessions"))
            .map(str::to_owned)
            .or_else(|| {
                link(v, "SessionService").map(|_| "/redfish/v1/SessionService/Sessions".to_owned())
            });
        ServiceRoot { systems, sessions }
    }
}

/// The member links of a collection, in the order given.
pub fn members(v: &Value) -> Vec<String> {
    v.get("Members")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|e| e.get("@odata.id").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The last path segment of a resource link: a system's id as the collection names it.
pub fn last_segment(link: &str) -> &str {
    link.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(link)
}

/// Map a system's `PowerState` property. Only the exact string `Off` becomes
/// [`PowerState::Off`]; `null`, a missing property and any other value (`Reset`, `Unknown`,
/// `Paused`, a lowercase `off`) are kept verbatim as [`PowerState::Unknown`].
pub fn power_state(system: &Value) -> PowerState {
    match system.get("PowerState") {
        None => PowerState::Unknown("PowerState missing".to_owned()),
        Some(Value::Null) => PowerState::Unknown("PowerState null".to_owned()),
        Some(Value::String(s)) => match s.as_str() {
            "On" => PowerState::On,
            "Off" => PowerState::Off,
            "PoweringOn" => PowerState::PoweringOn,
            "PoweringOff" => PowerState::PoweringOff,
            other => PowerState::Unknown(clip(other)),
        },
        Some(other) => PowerState::Unknown(clip(&other.to_string())),
    }
}

/// What a system says about its `PowerRestorePolicy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreSetting {
    /// The property is absent (or `null`): the system has no such setting.
    Absent,
    /// One of the schema's values.
    Known(RestorePolicy),
    /// Something else, kept (clipped) for the error.
    Other(String),
}

/// Read a system's `PowerRestorePolicy`. Only the schema's exact words are understood.
pub fn restore_setting(system: &Value) -> RestoreSetting {
    match system.get("PowerRestorePolicy") {
        None | Some(Value::Null) => RestoreSetting::Absent,
        Some(Value::String(s)) => match s.as_str() {
            "AlwaysOn" => RestoreSetting::Known(RestorePolicy::AlwaysOn),
            "AlwaysOff" => RestoreSetting::Known(RestorePolicy::AlwaysOff),
            "LastState" => RestoreSetting::Known(RestorePolicy::LastState),
            other => RestoreSetting::Other(clip(other)),
        },
        Some(other) => RestoreSetting::Other(clip(&other.to_string())),
    }
}

/// The schema's word for a restore policy, as PATCHed; `None` for a policy this driver has
/// no word for (the contract's list may grow), which must never be PATCHed as another.
pub fn restore_word(policy: RestorePolicy) -> Option<&'static str> {
    match policy {
        RestorePolicy::AlwaysOn => Some("AlwaysOn"),
        RestorePolicy::AlwaysOff => Some("AlwaysOff"),
        RestorePolicy::LastState => Some("LastState"),
        _ => None,
    }
}

/// The system's UUID and serial number, when it states them as strings.
pub fn identity(system: &Value) -> (Option<String>, Option<String>) {
    let text = |k: &str| {
        system
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(clip)
    };
    (text("UUID"), text("SerialNumber"))
}

/// The most power supplies one chassis may list. Real ones have two to eight; a longer list
/// is a broken or hostile BMC, and each collection member costs a request.
pub const MAX_SUPPLIES: usize = 64;

/// The chassis a system says it is in (`Links.Chassis[0]`): `Ok(None)` when it names none
/// (no `Links`, no `Chassis`, `null` or an empty list), `Err` when the list is malformed.
pub fn chassis_link(system: &Value) -> Result<Option<&str>, String> {
    match system.get("Links").and_then(|l| l.get("Chassis")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(list)) => match list.first() {
            None => Ok(None),
            Some(first) => first
                .get("@odata.id")
                .and_then(Value::as_str)
                .map(Some)
                .ok_or_else(|| "Links.Chassis[0] has no @odata.id link".to_owned()),
        },
        Some(other) => Err(format!(
            "Links.Chassis is not a list: {}",
            clip(&other.to_string())
        )),
    }
}

/// Whether a power supply is installed: every supply counts unless its `Status.State` is
/// exactly `Absent` (an empty bay). `StandbyOffline`, `UnavailableOffline`, `Disabled`, an
/// unknown word or no `Status` at all still count, because a supply that is there can be fed
/// by an outlet: counting one too many only makes `check` ask for another outlet, counting
/// one too few would let a single outlet pass for the whole host.
pub fn supply_installed(supply: &Value) -> bool {
    supply
        .get("Status")
        .and_then(|s| s.get("State"))
        .and_then(Value::as_str)
        != Some("Absent")
}

/// The member links of a `PowerSupplies` collection, checked: `Members` must be a list of
/// links, agree with `Members@odata.count` when that is given, fit on one page and stay under
/// [`MAX_SUPPLIES`]. `Err` says what is wrong.
pub fn supply_members(collection: &Value) -> Result<Vec<String>, String> {
    let Some(list) = collection.get("Members").and_then(Value::as_array) else {
        return Err("no Members list".to_owned());
    };
    if collection.get("Members@odata.nextLink").is_some() {
        return Err("the list is paged (Members@odata.nextLink)".to_owned());
    }
    if list.len() > MAX_SUPPLIES {
        return Err(format!(
            "{} members, more than the {MAX_SUPPLIES} a chassis may have",
            list.len()
        ));
    }
    if let Some(count) = collection.get("Members@odata.count")
        && count.as_u64() != Some(list.len() as u64)
    {
        return Err(format!(
            "Members@odata.count is {} but {} members are listed",
            clip(&count.to_string()),
            list.len()
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            m.get("@odata.id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("member {i} has no @odata.id link"))
        })
        .collect()
}

/// The installed supplies listed inline by a legacy `Power` resource's `PowerSupplies`:
/// `Ok(None)` when it has no such list (nothing to count), `Err` when the list is malformed,
/// disagrees with `PowerSupplies@odata.count` or is longer than [`MAX_SUPPLIES`].
pub fn legacy_supplies(power: &Value) -> Result<Option<usize>, String> {
    let list = match power.get("PowerSupplies") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(format!(
                "PowerSupplies is not a list: {}",
                clip(&other.to_string())
            ));
        }
    };
    if list.len() > MAX_SUPPLIES {
        return Err(format!(
            "{} power supplies, more than the {MAX_SUPPLIES} a chassis may have",
            list.len()
        ));
    }
    if let Some(count) = power.get("PowerSupplies@odata.count")
        && count.as_u64() != Some(list.len() as u64)
    {
        return Err(format!(
            "PowerSupplies@odata.count is {} but {} supplies are listed",
            clip(&count.to_string()),
            list.len()
        ));
    }
    if let Some(i) = list.iter().position(|s| !s.is_object()) {
        return Err(format!("PowerSupplies[{i}] is not an object"));
    }
    Ok(Some(list.iter().filter(|s| supply_installed(s)).count()))
}

/// The `#ComputerSystem.Reset` action of a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetAction {
    /// Where to POST.
    pub target: String,
    /// The inline `ResetType@Redfish.AllowableValues`, if present.
    pub allowed: Option<Vec<String>>,
    /// The `@Redfish.ActionInfo` link, if present (its parameters list the allowed values).
    pub action_info: Option<String>,
}

impl ResetAction {
    /// Read the reset action of a system resource, if it has one.
    pub fn from_system(system: &Value) -> Option<ResetAction> {
        let action = system.get("Actions")?.get("#ComputerSystem.Reset")?;
        let target = action.get("target")?.as_str()?.to_owned();
        let allowed = action
            .get("ResetType@Redfish.AllowableValues")
            .and_then(Value::as_array)
            .map(|v| strings(v));
        let action_info = action
            .get("@Redfish.ActionInfo")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some(ResetAction {
            target,
            allowed,
            action_info,
        })
    }
}

fn strings(v: &[Value]) -> Vec<String> {
    v.iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The `ResetType` allowable values listed by an ActionInfo resource.
pub fn action_info_allowed(info: &Value) -> Option<Vec<String>> {
    info.get("Parameters")?
        .as_array()?
        .iter()
        .find(|p| p.get("Name").and_then(Value::as_str) == Some("ResetType"))?
        .get("AllowableValues")?
        .as_array()
        .map(|v| strings(v))
}

/// Pick the `ResetType` for `action` from what the system allows (`None`: the system did not
/// say, so the preferred value is tried). `Err` says why no value fits.
pub fn choose_reset_type(
    action: Action,
    allowed: Option<&[String]>,
) -> Result<&'static str, String> {
    let preferences: &[&'static str] = match action {
        // ForceOff is the only standard hard power-off. GracefulShutdown needs the (possibly
        // hung) OS and PushPowerButton is a soft press on most hardware: neither fences.
        Action::Off => &["ForceOff"],
        Action::On => &["On", "ForceOn"],
        Action::Cycle => &["PowerCycle", "ForceRestart"],
        Action::GracefulOff => &["GracefulShutdown"],
        // An action this driver does not know has no ResetType: nothing is sent.
        _ => return Err(format!("this driver knows no ResetType for {action}")),
    };
    let Some(allowed) = allowed else {
        return Ok(preferences[0]);
    };
    if let Some(hit) = preferences.iter().find(|p| allowed.iter().any(|a| a == *p)) {
        return Ok(hit);
    }
    let listed = if allowed.is_empty() {
        "none".to_owned()
    } else {
        allowed.join(", ")
    };
    Err(match action {
        Action::Off if allowed.iter().any(|a| a == "GracefulShutdown") => format!(
            "the system allows no hard power-off (ForceOff); GracefulShutdown is refused for \
             fencing because it needs the operating system to cooperate (allowed: {listed})"
        ),
        _ => format!(
            "the system allows none of {} for {action} (allowed: {listed})",
            preferences.join(", ")
        ),
    })
}

/// The human part of a Redfish `error` body: the message and the extended-info messages
/// with their ids, clipped. `None` when the body has no Redfish error.
pub fn error_message(body: &Value) -> Option<String> {
    let err = body.get("error")?;
    let mut parts = Vec::new();
    if let Some(m) = err.get("message").and_then(Value::as_str) {
        parts.push(m.to_owned());
    }
    if let Some(infos) = err.get("@Message.ExtendedInfo").and_then(Value::as_array) {
        for info in infos {
            let id = info.get("MessageId").and_then(Value::as_str);
            let msg = info.get("Message").and_then(Value::as_str);
            match (id, msg) {
                (Some(id), Some(msg)) => parts.push(format!("{msg} [{id}]")),
                (None, Some(msg)) => parts.push(msg.to_owned()),
                (Some(id), None) => parts.push(format!("[{id}]")),
                (None, None) => {}
            }
        }
    }
    if parts.is_empty()
        && let Some(code) = err.get("code").and_then(Value::as_str)
    {
        parts.push(code.to_owned());
    }
    (!parts.is_empty()).then(|| clip(&parts.join("; ")))
}

/// Whether a BMC's message says it is out of sessions (Redfish `SessionLimitExceeded`, iDRAC
/// `RAC0218`, or words to that effect).
pub fn is_session_limit(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("sessionlimitexceeded")
        || m.contains("rac0218")
        || (m.contains("session")
            && (m.contains("limit") || m.contains("maximum") || m.contains("exceed")))
}

/// Whether a 400 answer to a reset says the system is already in the requested state
/// (iLO: "Power is off"; others: "already off", "already powered off").
pub fn says_already_in_state(message: &str, action: Action) -> bool {
    let m = message.to_ascii_lowercase();
    let target = match action {
        Action::Off | Action::GracefulOff => "off",
        Action::On => "on",
        // A cycle (or an action this driver does not know) has no state to be "already" in.
        _ => return false,
    };
    m.contains(&format!("power is {target}"))
        || m.contains(&format!("already {target}"))
        || m.contains(&format!("already powered {target}"))
        || m.contains(&format!("already in the powered {target}"))
}

/// Keep at most [`MAX_MESSAGE`] characters, without control characters.
pub fn clip(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE)
        .collect();
    if s.chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn power_states_map_exactly() {
        let ps = |v: Value| power_state(&json!({ "PowerState": v }));
        assert_eq!(ps(json!("On")), PowerState::On);
        assert_eq!(ps(json!("Off")), PowerState::Off);
        assert_eq!(ps(json!("PoweringOn")), PowerState::PoweringOn);
        assert_eq!(ps(json!("PoweringOff")), PowerState::PoweringOff);
        for raw in ["Reset", "Unknown", "Paused", "off", "OFF", ""] {
            assert_eq!(ps(json!(raw)), PowerState::Unknown(raw.to_owned()));
        }
        assert!(!ps(Value::Null).is_off());
        assert!(!ps(json!(0)).is_off());
        assert!(!ps(json!({"State": "Off"})).is_off());
        assert!(!power_state(&json!({})).is_off());
    }

    #[test]
    fn restore_policies_map_exactly() {
        let rs = |v: Value| restore_setting(&json!({ "PowerRestorePolicy": v }));
        for p in [
            RestorePolicy::AlwaysOn,
            RestorePolicy::AlwaysOff,
            RestorePolicy::LastState,
        ] {
            assert_eq!(
                rs(json!(restore_word(p).unwrap())),
                RestoreSetting::Known(p)
            );
        }
        assert_eq!(rs(Value::Null), RestoreSetting::Absent);
        assert_eq!(restore_setting(&json!({})), RestoreSetting::Absent);
        assert_eq!(
            rs(json!("alwaysoff")),
            RestoreSetting::Other("alwaysoff".into())
        );
        assert_eq!(rs(json!(1)), RestoreSetting::Other("1".into()));
    }

    #[test]
    fn service_root_links() {
        let root = ServiceRoot::from_json(&json!({
            "Systems": {"@odata.id": "/redfish/v1/Systems"},
            "Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}
        }));
        assert_eq!(
            root.sessions.as_deref(),
            Some("/redfish/v1/SessionService/Sessions")
        );
        let bare = ServiceRoot::from_json(&json!({"Systems": "not an object"}));
        assert_eq!(bare.systems, "/redfish/v1/Systems");
        assert_eq!(bare.sessions, None);
    }

    #[test]
    fn reset_action_inline_and_action_info() {
        let sys = json!({"Actions": {"#ComputerSystem.Reset": {
            "target": "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            "ResetType@Redfish.AllowableValues": ["On", "ForceOff", 7]
        }}});
        let a = ResetAction::from_system(&sys).unwrap();
        assert_eq!(
            a.allowed.as_deref(),
            Some(&["On".to_owned(), "ForceOff".to_owned()][..])
        );
        let sys = json!({"Actions": {"#ComputerSystem.Reset": {
            "target": "/t", "@Redfish.ActionInfo": "/redfish/v1/Systems/1/ResetActionInfo"
        }}});
        let a = ResetAction::from_system(&sys).unwrap();
        assert_eq!(a.allowed, None);
        assert_eq!(
            a.action_info.as_deref(),
            Some("/redfish/v1/Systems/1/ResetActionInfo")
        );
        let info = json!({"Parameters": [
            {"Name": "Other", "AllowableValues": ["X"]},
            {"Name": "ResetType", "AllowableValues": ["On", "GracefulShutdown"]}
        ]});
        assert_eq!(
            action_info_allowed(&info),
            Some(vec!["On".to_owned(), "GracefulShutdown".to_owned()])
        );
        assert_eq!(ResetAction::from_system(&json!({"Actions": {}})), None);
        assert_eq!(
            ResetAction::from_system(&json!({"Actions": {"#ComputerSystem.Reset": {"target": 1}}})),
            None
        );
    }

    #[test]
    fn reset_type_choice() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_reset_type(Action::Off, None), Ok("ForceOff"));
        assert_eq!(
            choose_reset_type(Action::Off, Some(&v(&["On", "ForceOff"]))),
            Ok("ForceOff")
        );
        let e = choose_reset_type(Action::Off, Some(&v(&["On", "GracefulShutdown"]))).unwrap_err();
        assert!(e.contains("needs the operating system"), "{e}");
        assert!(choose_reset_type(Action::Off, Some(&v(&["PushPowerButton"]))).is_err());
        assert_eq!(
            choose_reset_type(Action::On, Some(&v(&["ForceOn", "ForceOff"]))),
            Ok("ForceOn")
        );
        assert_eq!(
            choose_reset_type(Action::Cycle, Some(&v(&["ForceRestart"]))),
            Ok("ForceRestart")
        );
        assert_eq!(
            choose_reset_type(Action::Cycle, Some(&v(&["PowerCycle", "ForceRestart"]))),
            Ok("PowerCycle")
        );
        assert_eq!(
            choose_reset_type(Action::GracefulOff, None),
            Ok("GracefulShutdown")
        );
    }

    #[test]
    fn error_bodies_and_quirk_phrases() {
        let body = json!({"error": {"code": "Base.1.0.GeneralError", "message": "A general error",
            "@Message.ExtendedInfo": [{"MessageId": "iLO.2.14.InvalidOperationForSystemState",
            "Message": "Power is off"}]}});
        let m = error_message(&body).unwrap();
        assert_eq!(
            m,
            "A general error; Power is off [iLO.2.14.InvalidOperationForSystemState]"
        );
        assert!(says_already_in_state(&m, Action::Off));
        assert!(!says_already_in_state(&m, Action::On));
        assert!(!says_already_in_state(&m, Action::Cycle));
        assert!(says_already_in_state(
            "Server is already powered OFF",
            Action::Off
        ));
        assert_eq!(error_message(&json!({"x": 1})), None);
        assert_eq!(
            error_message(&json!({"error": {"code": "Base.1.8.GeneralError"}})).as_deref(),
            Some("Base.1.8.GeneralError")
        );
        assert!(is_session_limit(
            "RAC0218: The maximum number of user sessions is reached."
        ));
        assert!(is_session_limit("[Base.1.8.SessionLimitExceeded]"));
        assert!(!is_session_limit("The session is invalid"));
        let long = "x\n".repeat(400);
        let c = clip(&long);
        assert!(!c.contains('\n') && c.chars().count() == MAX_MESSAGE + 1);
    }

    #[test]
    fn chassis_links() {
        let sys = |links: Value| json!({ "Links": links });
        assert_eq!(
            chassis_link(&sys(
                json!({"Chassis": [{"@odata.id": "/redfish/v1/Chassis/A"},
                {"@odata.id": "/redfish/v1/Chassis/B"}]})
            )),
            Ok(Some("/redfish/v1/Chassis/A"))
        );
        for none in [
            json!({}),
            sys(json!({})),
            sys(json!({"Chassis": null})),
            sys(json!({"Chassis": []})),
            sys(json!("text")),
        ] {
            assert_eq!(chassis_link(&none), Ok(None), "{none}");
        }
        for bad in [
            sys(json!({"Chassis": {"@odata.id": "/redfish/v1/Chassis/A"}})),
            sys(json!({"Chassis": ["/redfish/v1/Chassis/A"]})),
            sys(json!({"Chassis": [{"@odata.id": 7}]})),
        ] {
            assert!(chassis_link(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_an_absent_supply_is_not_installed() {
        let st = |state: Value| json!({"Status": {"State": state}});
        assert!(!supply_installed(&st(json!("Absent"))));
        for state in [
            json!("Enabled"),
            json!("StandbyOffline"),
            json!("UnavailableOffline"),
            json!("Disabled"),
            json!("absent"),
            json!(null),
            json!(0),
        ] {
            assert!(supply_installed(&st(state.clone())), "{state}");
        }
        assert!(supply_installed(&json!({})));
        assert!(supply_installed(&json!({"Status": "Absent"})));
    }

    #[test]
    fn supply_collections_are_checked() {
        let m = |n: usize| {
            (0..n)
                .map(|i| json!({"@odata.id": format!("/p/{i}")}))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            supply_members(&json!({"Members@odata.count": 2, "Members": m(2)})),
            Ok(vec!["/p/0".to_owned(), "/p/1".to_owned()])
        );
        assert_eq!(supply_members(&json!({"Members": m(1)})).unwrap().len(), 1);
        assert!(supply_members(&json!({"Members": []})).unwrap().is_empty());
        for bad in [
            json!({}),
            json!({"Members@odata.count": 2}),
            json!({"Members": {"@odata.id": "/p/0"}}),
            json!({"Members@odata.count": 3, "Members": m(2)}),
            json!({"Members@odata.count": "2", "Members": m(2)}),
            json!({"Members": m(2), "Members@odata.nextLink": "/p?$skip=2"}),
            json!({"Members": [{"@odata.id": "/p/0"}, {"Id": "1"}]}),
            json!({ "Members": m(MAX_SUPPLIES + 1) }),
        ] {
            assert!(supply_members(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn legacy_power_lists_count_installed_supplies() {
        let absent = json!({"Status": {"State": "Absent"}});
        assert_eq!(
            legacy_supplies(
                &json!({"PowerSupplies": [{}, absent, {"Status": {"State": "Enabled"}}],
                "PowerSupplies@odata.count": 3})
            ),
            Ok(Some(2))
        );
        assert_eq!(legacy_supplies(&json!({"PowerSupplies": []})), Ok(Some(0)));
        assert_eq!(legacy_supplies(&json!({})), Ok(None));
        assert_eq!(legacy_supplies(&json!({"PowerSupplies": null})), Ok(None));
        let many: Vec<Value> = (0..=MAX_SUPPLIES).map(|_| json!({})).collect();
        for bad in [
            json!({"PowerSupplies": 2}),
            json!({"PowerSupplies": [{}, "PSU2"]}),
            json!({"PowerSupplies": [{}], "PowerSupplies@odata.count": 2}),
            json!({ "PowerSupplies": many }),
        ] {
            assert!(legacy_supplies(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn members_and_segments() {
        let c = json!({"Members": [{"@odata.id": "/redfish/v1/Systems/a"}, {"x": 1},
            {"@odata.id": "/redfish/v1/Systems/b/"}]});
        assert_eq!(
            members(&c),
            ["/redfish/v1/Systems/a", "/redfish/v1/Systems/b/"]
        );
        assert_eq!(last_segment("/redfish/v1/Systems/b/"), "b");
        assert!(members(&json!({"Members": null})).is_empty());
    }
}
