//! The IPMI commands a fencing driver needs, with their request and response data layouts.
//! Both directions are here so the simulator answers exactly what the client parses.

use crate::error::DecodeError;
use crate::wire::Reader;
use fencegate_driver::RestorePolicy;

/// Network function "chassis".
pub const NETFN_CHASSIS: u8 = 0x00;
/// Network function "application".
pub const NETFN_APP: u8 = 0x06;

/// Chassis: Get Chassis Status.
pub const CMD_GET_CHASSIS_STATUS: u8 = 0x01;
/// Chassis: Chassis Control.
pub const CMD_CHASSIS_CONTROL: u8 = 0x02;
/// Chassis: Set Power Restore Policy.
pub const CMD_SET_POWER_RESTORE_POLICY: u8 = 0x06;
/// App: Get Device GUID.
pub const CMD_GET_DEVICE_GUID: u8 = 0x08;
/// App: Get System GUID (what BMCs without a device GUID, such as ipmi_sim, answer).
pub const CMD_GET_SYSTEM_GUID: u8 = 0x37;
/// App: Get Channel Authentication Capabilities.
pub const CMD_GET_CHANNEL_AUTH_CAPS: u8 = 0x38;
/// App: Set Session Privilege Level.
pub const CMD_SET_SESSION_PRIVILEGE: u8 = 0x3B;
/// App: Close Session.
pub const CMD_CLOSE_SESSION: u8 = 0x3C;
/// App: Get Channel Cipher Suites.
pub const CMD_GET_CHANNEL_CIPHER_SUITES: u8 = 0x54;

/// Channel number meaning "the channel this request arrived on".
pub const CHANNEL_CURRENT: u8 = 0x0E;

/// Completion code: node busy.
pub const CC_NODE_BUSY: u8 = 0xC0;
/// Completion code: invalid command.
pub const CC_INVALID_COMMAND: u8 = 0xC1;
/// Completion code: request data length invalid.
pub const CC_BAD_LENGTH: u8 = 0xC7;
/// Completion code: invalid data field in request.
pub const CC_INVALID_DATA: u8 = 0xCC;
/// Completion code: insufficient privilege level.
pub const CC_INSUFFICIENT_PRIVILEGE: u8 = 0xD4;
/// Set Session Privilege Level: requested level not available for this user.
pub const CC_PRIVILEGE_NOT_AVAILABLE: u8 = 0x80;
/// Set Session Privilege Level: requested level exceeds the session's limit.
pub const CC_PRIVILEGE_EXCEEDS_LIMIT: u8 = 0x81;

/// IPMI privilege levels (the ones a power driver can ask for, plus User for the simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    /// User: may read status, not control power.
    User = 2,
    /// Operator: enough for Chassis Control. The least privilege fencing needs.
    Operator = 3,
    /// Administrator.
    Administrator = 4,
}

impl Privilege {
    /// The wire value.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The privilege for a wire value (levels outside User..=Administrator are `None`).
    pub fn from_code(code: u8) -> Option<Privilege> {
        match code & 0x0F {
            2 => Some(Privilege::User),
            3 => Some(Privilege::Operator),
            4 => Some(Privilege::Administrator),
            _ => None,
        }
    }
}

/// Chassis Control sub-commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChassisControl {
    /// Power down (hard off): the fencing command.
    PowerDown,
    /// Power up.
    PowerUp,
    /// Power cycle.
    PowerCycle,
    /// Hard reset.
    HardReset,
    /// Soft shutdown via ACPI: needs the operating system's cooperation.
    SoftShutdown,
}

impl ChassisControl {
    /// The wire value.
    pub fn code(self) -> u8 {
        match self {
            ChassisControl::PowerDown => 0,
            ChassisControl::PowerUp => 1,
            ChassisControl::PowerCycle => 2,
            ChassisControl::HardReset => 3,
            ChassisControl::SoftShutdown => 5,
        }
    }

    /// The sub-command for a wire value.
    pub fn from_code(code: u8) -> Option<ChassisControl> {
        Some(match code & 0x0F {
            0 => ChassisControl::PowerDown,
            1 => ChassisControl::PowerUp,
            2 => ChassisControl::PowerCycle,
            3 => ChassisControl::HardReset,
            5 => ChassisControl::SoftShutdown,
            _ => return None,
        })
    }
}

/// Request data of Get Channel Authentication Capabilities, asking for IPMI 2.0 data.
pub fn auth_caps_request(privilege: Privilege) -> [u8; 2] {
    [0x80 | CHANNEL_CURRENT, privilege.code()]
}

/// What Get Channel Authentication Capabilities says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthCapabilities {
    /// The channel number that answered.
    pub channel: u8,
    /// Whether the channel supports IPMI 2.0 (RMCP+) sessions.
    pub ipmi20: bool,
    /// Whether the BMC has a non-zero Kg (then the driver needs the same Kg).
    pub kg_set: bool,
    /// Whether users with non-null names are enabled.
    pub non_null_users: bool,
    /// Whether a user with a null (empty) name is enabled.
    pub null_user: bool,
    /// Whether anonymous login (null name and null password) is enabled.
    pub anonymous: bool,
}

impl AuthCapabilities {
    /// Response data (after the completion code).
    pub fn encode(&self) -> [u8; 8] {
        let logins = u8::from(self.non_null_users) << 2
            | u8::from(self.null_user) << 1
            | u8::from(self.anonymous);
        [
            self.channel,
            0x80, // IPMI 2.0 extended data present; no IPMI 1.5 auth types offered
            u8::from(self.kg_set) << 5 | logins,
            if self.ipmi20 { 0x02 } else { 0x01 },
            0,
            0,
            0,
            0,
        ]
    }

    /// Parse response data (after the completion code).
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        let channel = r.u8("channel")?;
        let types = r.u8("auth type support")?;
        let status = r.u8("auth status")?;
        // Without the extended-data bit, the BMC predates IPMI 2.0.
        let ext = if types & 0x80 != 0 {
            r.u8("extended capabilities")?
        } else {
            0
        };
        Ok(AuthCapabilities {
            channel,
            ipmi20: ext & 0x02 != 0,
            kg_set: status & 0x20 != 0,
            non_null_users: status & 0x04 != 0,
            null_user: status & 0x02 != 0,
            anonymous: status & 0x01 != 0,
        })
    }
}

/// Request data of Get Channel Cipher Suites for the IPMI payload, listing by suite.
pub fn cipher_suites_request(index: u8) -> [u8; 3] {
    [CHANNEL_CURRENT, 0x00, 0x80 | (index & 0x3F)]
}

/// Response data of Get Channel Cipher Suites for one list index: 16-byte pages of the
/// record list (each record `0xC0, id, auth, integrity, confidentiality`).
pub fn cipher_suites_page(channel: u8, suites: &[u8], index: u8) -> Vec<u8> {
    let mut records = Vec::with_capacity(suites.len() * 5);
    for id in suites {
        let algs = crate::crypto::CipherSuite::from_id(*id)
            .map(|s| {
                [
                    s.auth_algorithm(),
                    0x40 | s.integrity_algorithm(),
                    0x80 | s.confidentiality_algorithm(),
                ]
            })
            .unwrap_or([0x00, 0x40, 0x80]);
        records.extend_from_slice(&[0xC0, *id]);
        records.extend_from_slice(&algs);
    }
    let start = usize::from(index & 0x3F) * 16;
    let mut out = vec![channel];
    if let Some(page) = records.get(start..) {
        out.extend_from_slice(&page[..page.len().min(16)]);
    }
    out
}

/// Parse the concatenated record pages of Get Channel Cipher Suites into suite ids.
/// Unknown (OEM) records end the parse; what was understood so far is kept.
pub fn parse_cipher_suite_records(records: &[u8]) -> Vec<u8> {
    let mut ids = Vec::new();
    let mut r = Reader::new(records);
    while let Ok(start) = r.u8("record start") {
        match start {
            0xC0 => {
                let Ok(id) = r.u8("suite id") else { break };
                ids.push(id);
                // Skip the algorithm bytes (tagged 0x00/0x40/0x80 in bits 7:6).
                while let Some(&b) = r.peek_rest().first() {
                    if b == 0xC0 || b == 0xC1 {
                        break;
                    }
                    let _ = r.u8("algorithm");
                }
            }
            _ => break,
        }
    }
    ids
}

/// The power restore policy code meaning "unknown" in Get Chassis Status (bits 6:5 = 11b),
/// and "no change, just list the supported policies" in Set Power Restore Policy.
pub const RESTORE_POLICY_UNKNOWN: u8 = 0x03;

/// The 2-bit wire code of a power restore policy (Get Chassis Status bits 6:5, Set Power
/// Restore Policy data bits 2:0): 00 always off, 01 previous state, 10 always on.
pub fn restore_policy_code(policy: RestorePolicy) -> u8 {
    match policy {
        RestorePolicy::AlwaysOff => 0x00,
        RestorePolicy::LastState => 0x01,
        RestorePolicy::AlwaysOn => 0x02,
    }
}

/// The policy for a 2-bit wire code; `None` for 11b, which the BMC uses for "unknown".
pub fn restore_policy_from_code(code: u8) -> Option<RestorePolicy> {
    match code & 0x03 {
        0x00 => Some(RestorePolicy::AlwaysOff),
        0x01 => Some(RestorePolicy::LastState),
        0x02 => Some(RestorePolicy::AlwaysOn),
        _ => None,
    }
}

/// Response data of Set Power Restore Policy: the bitmap of supported policies (bit 0
/// always off, bit 1 previous state, bit 2 always on).
pub fn restore_policy_support(supported: &[RestorePolicy]) -> u8 {
    supported
        .iter()
        .fold(0, |bits, p| bits | 1 << restore_policy_code(*p))
}

/// What Get Chassis Status says about power.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChassisStatus {
    /// Bit 0 of the current power state byte: system power is on.
    pub power_on: bool,
    /// Bit 1: a power overload caused the last power-off.
    pub overload: bool,
    /// Bit 4: a power control fault is active (the BMC could not switch the power).
    pub control_fault: bool,
    /// Bits 6:5: the power restore policy as its wire code (see
    /// [`restore_policy_from_code`]; 11b is "unknown"). Kept raw so that an answer the
    /// driver cannot map is reported as what it was, not guessed.
    pub restore_policy: u8,
}

impl ChassisStatus {
    /// Response data (after the completion code).
    pub fn encode(&self) -> [u8; 3] {
        [
            u8::from(self.power_on)
                | u8::from(self.overload) << 1
                | u8::from(self.control_fault) << 4
                | (self.restore_policy & 0x03) << 5,
            0,
            0,
        ]
    }

    /// Parse response data (after the completion code).
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        let state = r.u8("current power state")?;
        r.skip(2, "last power event and misc state")?;
        Ok(ChassisStatus {
            power_on: state & 0x01 != 0,
            overload: state & 0x02 != 0,
            control_fault: state & 0x10 != 0,
            restore_policy: (state >> 5) & 0x03,
        })
    }
}

/// Format a GUID as 32 lowercase hex digits in the byte order it was sent.
pub fn guid_hex(guid: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(guid.len() * 2);
    for b in guid {
        let _ = write!(s, "{b:02x}");
    }
    s
}
