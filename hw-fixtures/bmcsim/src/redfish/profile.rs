//! Vendor behaviour as data: what a simulated Redfish service offers and how it answers the
//! awkward cases that real BMCs disagree on.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a service answers a reset that asks for the state the system is already in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlreadyInState {
    /// Accept it (204) and do nothing: most services.
    Accept,
    /// HTTP 409 Conflict (iDRAC9 on ForceOff of an off host).
    Conflict409,
    /// HTTP 400 with the message "Power is off" / "Power is on" (iLO).
    PowerIs400,
}

/// How a service refuses a session beyond its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionLimitAnswer {
    /// HTTP 503 with `Base.1.x.SessionLimitExceeded`.
    Unavailable503,
    /// HTTP 400 with iDRAC's `RAC0218` "maximum number of user sessions".
    Rac0218Bad400,
}

/// The behaviour of one simulated Redfish service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VendorProfile {
    /// A name for logs and the ready line.
    pub name: String,
    /// The `ResetType` values the system accepts (others get 400).
    pub reset_types: Vec<String>,
    /// Whether the reset action lists `ResetType@Redfish.AllowableValues` inline.
    pub inline_allowable_values: bool,
    /// Whether the reset action links an ActionInfo resource listing the values.
    pub action_info: bool,
    /// The answer to a reset towards the state the system is already in.
    pub already_in_state: AlreadyInState,
    /// Whether a reset answers 202 with a task monitor instead of 204.
    pub reset_task: bool,
    /// Whether the service has a SessionService (sessions and X-Auth-Token).
    pub session_service: bool,
    /// The answer to a login beyond the session limit.
    pub session_limit: SessionLimitAnswer,
    /// Whether the chassis offers the newer `PowerSubsystem/PowerSupplies` collection as well
    /// as the legacy `Power` resource; firmware older than Redfish 2020.4 has only the latter,
    /// and clients must fall back to it.
    pub power_subsystem: bool,
}

impl Default for VendorProfile {
    fn default() -> Self {
        Profile::Generic.profile()
    }
}

/// The named presets of [`VendorProfile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Inline allowable values, 204 on reset (also when already in state), sessions.
    Generic,
    /// 409 on ForceOff of an off system; 400 `RAC0218` beyond the session limit.
    IdracLike,
    /// 400 "Power is off" on ForceOff of an off system.
    IloLike,
    /// Allowable values only through `@Redfish.ActionInfo`.
    ActionInfoOnly,
    /// Reset answers 202 with a task monitor.
    Task202,
    /// No SessionService: basic authentication only (as sushy-emulator).
    NoSessionService,
    /// The chassis has only the legacy `Power` resource, no `PowerSubsystem`.
    LegacyPower,
}

impl Profile {
    /// Every preset, for `--help` and tests.
    pub const ALL: [Profile; 7] = [
        Profile::Generic,
        Profile::IdracLike,
        Profile::IloLike,
        Profile::ActionInfoOnly,
        Profile::Task202,
        Profile::NoSessionService,
        Profile::LegacyPower,
    ];

    /// The preset's name as used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Generic => "generic",
            Profile::IdracLike => "idrac-like",
            Profile::IloLike => "ilo-like",
            Profile::ActionInfoOnly => "action-info-only",
            Profile::Task202 => "task202",
            Profile::NoSessionService => "no-session-service",
            Profile::LegacyPower => "legacy-power",
        }
    }

    /// The behaviour the preset stands for.
    pub fn profile(self) -> VendorProfile {
        let standard = [
            "On",
            "ForceOff",
            "GracefulShutdown",
            "GracefulRestart",
            "ForceRestart",
            "PowerCycle",
            "Nmi",
        ];
        let mut p = VendorProfile {
            name: self.as_str().to_owned(),
            reset_types: standard.iter().map(|s| (*s).to_owned()).collect(),
            inline_allowable_values: true,
            action_info: false,
            already_in_state: AlreadyInState::Accept,
            reset_task: false,
            session_service: true,
            session_limit: SessionLimitAnswer::Unavailable503,
            power_subsystem: true,
        };
        match self {
            Profile::Generic => {}
            Profile::IdracLike => {
                p.reset_types = [
                    "On",
                    "ForceOff",
                    "ForceRestart",
                    "GracefulShutdown",
                    "PushPowerButton",
                    "Nmi",
                ]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
                p.already_in_state = AlreadyInState::Conflict409;
                p.session_limit = SessionLimitAnswer::Rac0218Bad400;
            }
            Profile::IloLike => p.already_in_state = AlreadyInState::PowerIs400,
            Profile::ActionInfoOnly => {
                p.inline_allowable_values = false;
                p.action_info = true;
            }
            Profile::Task202 => p.reset_task = true,
            Profile::NoSessionService => p.session_service = false,
            Profile::LegacyPower => p.power_subsystem = false,
        }
        p
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown Redfish profile {s:?} (known: {})",
                    Profile::ALL.map(Profile::as_str).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_round_trip_by_name() {
        for p in Profile::ALL {
            assert_eq!(p.as_str().parse::<Profile>(), Ok(p));
            assert_eq!(p.profile().name, p.as_str());
        }
        assert!("idrac".parse::<Profile>().is_err());
        assert!(!Profile::NoSessionService.profile().session_service);
        assert!(!Profile::ActionInfoOnly.profile().inline_allowable_values);
        assert!(Profile::Generic.profile().power_subsystem);
        assert!(!Profile::LegacyPower.profile().power_subsystem);
    }
}
