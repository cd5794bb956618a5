//! The IPMI commands a fencing driver needs, with their request and response data layouts.
//! Both directions are here so the simulator answers exactly what the client parses.

use crate::error::DecodeError;
use crate::wire::Reader;
use fencegate_driver::RestorePolicy;

/// Network function "chassis".
pub const NETFN_CHASSIS: u8 = 0x00;
/// Network function "application".
pub const NETFN_APP: u8 = 0x06;
/// Network function "storage" (SDR, SEL, FRU).
pub const NETFN_STORAGE: u8 = 0x0A;

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

/// Storage: Get SDR Repository Info.
pub const CMD_GET_SDR_REPO_INFO: u8 = 0x20;
/// Storage: Reserve SDR Repository (a reservation makes partial reads consistent).
pub const CMD_RESERVE_SDR_REPO: u8 = 0x22;
/// Storage: Get SDR (one record, or part of one).
pub const CMD_GET_SDR: u8 = 0x23;

/// Channel number meaning "the channel this request arrived on".
pub const CHANNEL_CURRENT: u8 = 0x0E;

/// Completion code: node busy.
pub const CC_NODE_BUSY: u8 = 0xC0;
/// Completion code: invalid command.
pub const CC_INVALID_COMMAND: u8 = 0xC1;
/// Completion code: request data length invalid.
pub const CC_BAD_LENGTH: u8 = 0xC7;
/// Completion code: the SDR reservation was cancelled (the repository changed) or is not
/// the current one.
pub const CC_RESERVATION_CANCELLED: u8 = 0xC5;
/// Completion code: cannot return the number of requested data bytes.
pub const CC_CANNOT_RETURN_BYTES: u8 = 0xCA;
/// Completion code: requested sensor, data or record not present.
pub const CC_NOT_PRESENT: u8 = 0xCB;
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
/// Restore Policy data bits 2:0): 00 always off, 01 previous state, 10 always on. `None`
/// for a policy IPMI has no code for (the contract's list may grow beyond IPMI's three).
pub fn restore_policy_code(policy: RestorePolicy) -> Option<u8> {
    match policy {
        RestorePolicy::AlwaysOff => Some(0x00),
        RestorePolicy::LastState => Some(0x01),
        RestorePolicy::AlwaysOn => Some(0x02),
        _ => None,
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
/// always off, bit 1 previous state, bit 2 always on). Policies without an IPMI code are
/// left out: the bitmap has no bit for them.
pub fn restore_policy_support(supported: &[RestorePolicy]) -> u8 {
    supported
        .iter()
        .filter_map(|p| restore_policy_code(*p))
        .fold(0, |bits, code| bits | 1 << code)
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

/// Get SDR's record id for "the first record", and the next-record id meaning "no more".
pub const SDR_FIRST: u16 = 0x0000;
/// The next-record id after the last record.
pub const SDR_LAST: u16 = 0xFFFF;
/// SDR record type: full sensor record.
pub const SDR_FULL_SENSOR: u8 = 0x01;
/// SDR record type: compact sensor record.
pub const SDR_COMPACT_SENSOR: u8 = 0x02;
/// SDR record type: management controller device locator.
pub const SDR_MC_LOCATOR: u8 = 0x12;
/// The length of an SDR record header (id, version, type, length of the rest).
pub const SDR_HEADER_LEN: u8 = 5;
/// The bytes after the header of a full or compact sensor record up to and including the
/// event/reading type code: key (owner id, owner LUN, number), entity id and instance,
/// initialization, capabilities, sensor type, event/reading type. Both record types share
/// this layout.
pub const SDR_SENSOR_PREFIX_LEN: u8 = 9;
/// Sensor type "Power Supply".
pub const SENSOR_TYPE_POWER_SUPPLY: u8 = 0x08;
/// Event/reading type "sensor-specific": a supply's own status sensor (presence, failure,
/// input lost).
pub const READING_TYPE_SENSOR_SPECIFIC: u8 = 0x6F;
/// Event/reading type "redundancy": a sensor about the set of supplies, not one of them.
pub const READING_TYPE_REDUNDANCY: u8 = 0x0B;
/// Entity id "power supply".
pub const ENTITY_POWER_SUPPLY: u8 = 0x0A;

/// What Get SDR Repository Info says (the fields the driver uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdrRepoInfo {
    /// The SDR version (0x51 for IPMI 1.5 and 2.0).
    pub version: u8,
    /// How many records the repository holds.
    pub record_count: u16,
}

impl SdrRepoInfo {
    /// Response data (after the completion code): version, count, free space (reported as
    /// "unspecified"), two zero timestamps, and operation support "reserve supported".
    pub fn encode(&self) -> [u8; 14] {
        let mut out = [0u8; 14];
        out[0] = self.version;
        out[1..3].copy_from_slice(&self.record_count.to_le_bytes());
        out[3..5].copy_from_slice(&0xFFFFu16.to_le_bytes());
        out[13] = 0x02;
        out
    }

    /// Parse response data (after the completion code); the fields after the count are not
    /// needed and may be missing.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        Ok(SdrRepoInfo {
            version: r.u8("SDR version")?,
            record_count: r.u16("SDR record count")?,
        })
    }
}

/// Request data of Get SDR: reservation, record id, offset into the record, bytes to read.
pub fn get_sdr_request(reservation: u16, record: u16, offset: u8, len: u8) -> [u8; 6] {
    let [r0, r1] = reservation.to_le_bytes();
    let [i0, i1] = record.to_le_bytes();
    [r0, r1, i0, i1, offset, len]
}

/// A Get SDR request, parsed (the simulator's side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetSdr {
    /// The reservation id (0: none, allowed only for reads at offset 0).
    pub reservation: u16,
    /// The record id ([`SDR_FIRST`] for the first record).
    pub record: u16,
    /// The offset into the record.
    pub offset: u8,
    /// The bytes to read (0xFF: the whole record).
    pub len: u8,
}

impl GetSdr {
    /// Parse request data.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        Ok(GetSdr {
            reservation: r.u16("reservation id")?,
            record: r.u16("record id")?,
            offset: r.u8("offset")?,
            len: r.u8("bytes to read")?,
        })
    }
}

/// Split Get SDR response data (after the completion code) into the next record's id and
/// the record bytes read.
pub fn decode_sdr_chunk(data: &[u8]) -> Result<(u16, &[u8]), DecodeError> {
    let mut r = Reader::new(data);
    let next = r.u16("next record id")?;
    Ok((next, r.rest()))
}

/// The header of an SDR record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdrHeader {
    /// The record's id.
    pub id: u16,
    /// The SDR version.
    pub version: u8,
    /// The record type ([`SDR_FULL_SENSOR`], [`SDR_COMPACT_SENSOR`], …).
    pub record_type: u8,
    /// How many bytes follow the header.
    pub length: u8,
}

impl SdrHeader {
    /// Parse the first [`SDR_HEADER_LEN`] bytes of a record.
    pub fn decode(data: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(data);
        Ok(SdrHeader {
            id: r.u16("SDR record id")?,
            version: r.u8("SDR version")?,
            record_type: r.u8("SDR record type")?,
            length: r.u8("SDR record length")?,
        })
    }

    /// Whether the record is a full or compact sensor record, the two kinds that describe a
    /// sensor with a type.
    pub fn is_sensor(&self) -> bool {
        matches!(self.record_type, SDR_FULL_SENSOR | SDR_COMPACT_SENSOR)
    }
}

/// The sensor type and event/reading type code from the [`SDR_SENSOR_PREFIX_LEN`] bytes
/// after a sensor record's header.
pub fn sensor_types(prefix: &[u8]) -> Result<(u8, u8), DecodeError> {
    let mut r = Reader::new(prefix);
    r.skip(7, "sensor key, entity, initialization and capabilities")?;
    Ok((r.u8("sensor type")?, r.u8("event/reading type")?))
}

/// Whether a sensor stands for one power supply: sensor type Power Supply, except
/// redundancy sensors, which describe the set. Other reading types (sensor-specific status,
/// or an OEM's generic one) count, because one too many only makes `check` ask for another
/// outlet while one too few would let a single outlet pass for a dual-supply host.
pub fn is_supply_sensor(sensor_type: u8, reading_type: u8) -> bool {
    sensor_type == SENSOR_TYPE_POWER_SUPPLY && reading_type != READING_TYPE_REDUNDANCY
}

/// One sensor record as the simulator serves it: a full (`full`) or compact record with
/// the given key, entity, sensor type, event/reading type and name, every other field zero.
pub fn sensor_record(
    id: u16,
    full: bool,
    number: u8,
    entity: (u8, u8),
    sensor_type: u8,
    reading_type: u8,
    name: &str,
) -> Vec<u8> {
    let name = &name.as_bytes()[..name.len().min(16)];
    // Fixed fields after the header, up to the id string type/length byte.
    let fixed = if full { 42 } else { 26 };
    let record_type = if full {
        SDR_FULL_SENSOR
    } else {
        SDR_COMPACT_SENSOR
    };
    let mut out = Vec::with_capacity(5 + fixed + 1 + name.len());
    out.extend_from_slice(&id.to_le_bytes());
    out.push(0x51);
    out.push(record_type);
    out.push((fixed + 1 + name.len()) as u8);
    out.extend_from_slice(&[0x20, 0x00, number, entity.0, entity.1, 0x7F, 0x68]);
    out.extend_from_slice(&[sensor_type, reading_type]);
    out.resize(5 + fixed, 0);
    out.push(0xC0 | name.len() as u8);
    out.extend_from_slice(name);
    out
}

/// A management controller device locator record (no sensor), as BMCs list themselves.
pub fn mc_locator_record(id: u16, name: &str) -> Vec<u8> {
    let name = &name.as_bytes()[..name.len().min(16)];
    let mut out = Vec::with_capacity(16 + name.len());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&[0x51, SDR_MC_LOCATOR, (11 + name.len()) as u8]);
    out.extend_from_slice(&[0x20, 0x00, 0x00, 0x00, 0xBF, 0, 0, 0, 0x2E, 0x01]);
    out.push(0xC0 | name.len() as u8);
    out.extend_from_slice(name);
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdr_records_parse_as_they_are_built() {
        for full in [true, false] {
            let rec = sensor_record(
                7,
                full,
                0x31,
                (ENTITY_POWER_SUPPLY, 2),
                SENSOR_TYPE_POWER_SUPPLY,
                READING_TYPE_SENSOR_SPECIFIC,
                "PS2 Status",
            );
            let h = SdrHeader::decode(&rec).unwrap();
            assert_eq!((h.id, h.version), (7, 0x51));
            assert!(h.is_sensor());
            assert_eq!(usize::from(h.length) + 5, rec.len());
            let start = usize::from(SDR_HEADER_LEN);
            let prefix = &rec[start..start + usize::from(SDR_SENSOR_PREFIX_LEN)];
            assert_eq!(
                sensor_types(prefix).unwrap(),
                (SENSOR_TYPE_POWER_SUPPLY, READING_TYPE_SENSOR_SPECIFIC)
            );
            // The id string's type/length byte sits where the specification puts it
            // (byte 48 of a full record, 32 of a compact one, counting from 1).
            let at = if full { 47 } else { 31 };
            assert_eq!(rec[at], 0xC0 | 10);
            assert_eq!(&rec[at + 1..], b"PS2 Status");
        }
        let mc = SdrHeader::decode(&mc_locator_record(1, "BMC")).unwrap();
        assert!(!mc.is_sensor());
        assert_eq!(
            usize::from(mc.length) + 5,
            mc_locator_record(1, "BMC").len()
        );
        assert!(sensor_types(&[0; 8]).is_err());
        assert!(SdrHeader::decode(&[1, 0, 0x51, 1]).is_err());
    }

    #[test]
    fn only_single_supply_sensors_count() {
        assert!(is_supply_sensor(
            SENSOR_TYPE_POWER_SUPPLY,
            READING_TYPE_SENSOR_SPECIFIC
        ));
        assert!(is_supply_sensor(SENSOR_TYPE_POWER_SUPPLY, 0x03));
        assert!(!is_supply_sensor(
            SENSOR_TYPE_POWER_SUPPLY,
            READING_TYPE_REDUNDANCY
        ));
        // Power Unit (0x09) and temperature (0x01) sensors are not supplies.
        assert!(!is_supply_sensor(0x09, READING_TYPE_SENSOR_SPECIFIC));
        assert!(!is_supply_sensor(0x01, 0x01));
    }

    #[test]
    fn sdr_messages_round_trip() {
        let info = SdrRepoInfo {
            version: 0x51,
            record_count: 300,
        };
        assert_eq!(SdrRepoInfo::decode(&info.encode()).unwrap(), info);
        assert!(SdrRepoInfo::decode(&[0x51, 1]).is_err());
        let req = get_sdr_request(0x1234, 0x0102, 5, 9);
        assert_eq!(
            GetSdr::decode(&req).unwrap(),
            GetSdr {
                reservation: 0x1234,
                record: 0x0102,
                offset: 5,
                len: 9
            }
        );
        assert!(GetSdr::decode(&req[..5]).is_err());
        assert_eq!(
            decode_sdr_chunk(&[0xFF, 0xFF, 1, 2]).unwrap(),
            (SDR_LAST, &[1u8, 2][..])
        );
        assert!(decode_sdr_chunk(&[0xFF]).is_err());
    }
}
