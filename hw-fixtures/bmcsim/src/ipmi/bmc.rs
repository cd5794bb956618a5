//! The BMC side of IPMI 2.0 as a sans-IO responder: one datagram in, at most one out.
//!
//! It answers the discovery commands sessionless, runs the RMCP+ handshake (suites 3 and
//! 17), and inside a session serves privilege, GUID, chassis status, chassis control and the
//! power restore policy against the shared power model, and a small SDR repository whose
//! power supply sensors tell clients how many supplies feed the host.

use crate::faults::FaultProfile;
use crate::power::{CommandOutcome, CommandRecord, PowerCommand, PowerModel};
use fencegate_driver::RestorePolicy;
use fencegate_ipmi_codec::commands::{
    self, AuthCapabilities, CC_BAD_LENGTH, CC_INSUFFICIENT_PRIVILEGE, CC_INVALID_COMMAND,
    CC_INVALID_DATA, CC_PRIVILEGE_EXCEEDS_LIMIT, CMD_CHASSIS_CONTROL, CMD_CLOSE_SESSION,
    CMD_GET_CHANNEL_AUTH_CAPS, CMD_GET_CHANNEL_CIPHER_SUITES, CMD_GET_CHASSIS_STATUS,
    CMD_GET_DEVICE_GUID, CMD_GET_SDR, CMD_GET_SDR_REPO_INFO, CMD_GET_SYSTEM_GUID,
    CMD_RESERVE_SDR_REPO, CMD_SET_POWER_RESTORE_POLICY, CMD_SET_SESSION_PRIVILEGE, ChassisControl,
    ChassisStatus, NETFN_APP, NETFN_CHASSIS, NETFN_STORAGE, Privilege, RESTORE_POLICY_UNKNOWN,
};
use fencegate_ipmi_codec::crypto::{CipherSuite, GUID_LEN, Handshake, Identity, Mac32, RANDOM_LEN};
use fencegate_ipmi_codec::message::{self, RequestHeader};
use fencegate_ipmi_codec::rakp::{
    self, Algorithms, OpenSessionRequest, OpenSessionResponse, Rakp1, Rakp2, Rakp3, Rakp4,
};
use fencegate_ipmi_codec::rmcp::{self, Packet, PayloadType};
use fencegate_ipmi_codec::session::{Credentials, Session};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The channel number the simulated LAN channel reports.
const CHANNEL: u8 = 1;
/// Sessions a BMC holds at most when the fault profile sets no limit.
pub const DEFAULT_MAX_SESSIONS: usize = 32;
/// An active session with no traffic for this long is dropped (IPMI's usual 60 s).
const ACTIVE_IDLE: Duration = Duration::from_secs(60);
/// A half-open session (handshake not finished) is dropped after this long.
const PENDING_IDLE: Duration = Duration::from_secs(10);

/// The mutable state a protocol front end shares with the lab: power, faults, log.
#[derive(Debug)]
pub struct BmcState {
    /// The power model (the truth).
    pub power: PowerModel,
    /// The fault profile in force.
    pub faults: FaultProfile,
    /// Every power command received.
    pub log: Vec<CommandRecord>,
    /// The power restore policy (Get Chassis Status bits 6:5); `None` is reported as
    /// "unknown" (11b), as BMCs that cannot tell do.
    pub restore_policy: Option<RestorePolicy>,
    /// The SDR repository's records, whole (header included), in order; each record's id is
    /// the one in its header.
    pub sdr: Vec<Vec<u8>>,
    /// The current SDR reservation id; a change of the repository moves it on, cancelling
    /// the reservation a client holds, as the specification requires.
    pub sdr_reservation: u16,
}

impl BmcState {
    /// Replace the SDR repository (cancels any reservation).
    pub fn replace_sdr(&mut self, records: Vec<Vec<u8>>) {
        self.sdr = records;
        self.sdr_reservation = self.sdr_reservation.wrapping_add(1).max(1);
    }
}

/// A plausible SDR repository for a host with `power_supplies` supplies: the BMC's own
/// locator, an inlet temperature sensor, one status sensor per supply (full and compact
/// records alternating, sensor type Power Supply, sensor-specific readings) and a supply
/// redundancy sensor, which describes the set and is not a supply.
pub fn standard_sdr(power_supplies: usize) -> Vec<Vec<u8>> {
    let mut records = vec![
        commands::mc_locator_record(1, "BMC"),
        commands::sensor_record(2, true, 0x01, (0x37, 1), 0x01, 0x01, "Inlet Temp"),
    ];
    for n in 0..power_supplies {
        let id = 3 + n as u16;
        let instance = (n + 1) as u8;
        records.push(commands::sensor_record(
            id,
            n % 2 == 0,
            0x30 + instance,
            (commands::ENTITY_POWER_SUPPLY, instance),
            commands::SENSOR_TYPE_POWER_SUPPLY,
            commands::READING_TYPE_SENSOR_SPECIFIC,
            &format!("PS{instance} Status"),
        ));
    }
    records.push(commands::sensor_record(
        3 + power_supplies as u16,
        false,
        0x2F,
        (0x13, 1),
        commands::SENSOR_TYPE_POWER_SUPPLY,
        commands::READING_TYPE_REDUNDANCY,
        "PS Redundancy",
    ));
    records
}

/// The id a record's header states (0 for a record too short to have one).
fn record_id(record: &[u8]) -> u16 {
    match record {
        [a, b, ..] => u16::from_le_bytes([*a, *b]),
        _ => 0,
    }
}

/// Answer Get SDR from the repository: reads at an offset need the current reservation;
/// a read past a record's end is refused, as BMCs do (0xCA), unless it asks for the whole
/// record (0xFF).
fn get_sdr(state: &BmcState, data: &[u8]) -> (u8, Vec<u8>) {
    let Ok(req) = commands::GetSdr::decode(data) else {
        return (CC_BAD_LENGTH, vec![]);
    };
    if req.offset != 0 && req.reservation != state.sdr_reservation {
        return (commands::CC_RESERVATION_CANCELLED, vec![]);
    }
    let at = if req.record == commands::SDR_FIRST {
        (!state.sdr.is_empty()).then_some(0)
    } else {
        state.sdr.iter().position(|r| record_id(r) == req.record)
    };
    let Some(at) = at else {
        return (commands::CC_NOT_PRESENT, vec![]);
    };
    let record = &state.sdr[at];
    let start = usize::from(req.offset);
    let end = if req.len == 0xFF {
        record.len()
    } else {
        start + usize::from(req.len)
    };
    let Some(bytes) = record.get(start..end) else {
        return (commands::CC_CANNOT_RETURN_BYTES, vec![]);
    };
    let next = state
        .sdr
        .get(at + 1)
        .map_or(commands::SDR_LAST, |r| record_id(r));
    let mut out = next.to_le_bytes().to_vec();
    out.extend_from_slice(bytes);
    (0, out)
}

/// Every policy the simulated BMC accepts, for Set Power Restore Policy's answer.
const SUPPORTED_POLICIES: [RestorePolicy; 3] = [
    RestorePolicy::AlwaysOff,
    RestorePolicy::LastState,
    RestorePolicy::AlwaysOn,
];

/// Static identity of one simulated IPMI BMC.
pub struct BmcIdentity {
    /// The single user's credentials (name, password, optional Kg).
    pub creds: Credentials,
    /// The highest privilege the user may take.
    pub max_privilege: Privilege,
    /// The cipher suites the BMC accepts.
    pub suites: Vec<CipherSuite>,
    /// The device/system GUID (wire order).
    pub guid: [u8; GUID_LEN],
}

struct RakpState {
    console_random: [u8; RANDOM_LEN],
    bmc_random: [u8; RANDOM_LEN],
    role: u8,
}

enum SimSession {
    Pending {
        console_sid: u32,
        suite: CipherSuite,
        rakp: Option<RakpState>,
        touched: Instant,
    },
    Active {
        session: Session,
        privilege: Privilege,
        limit: Privilege,
        rakp3_code: Mac32,
        rakp4: Vec<u8>,
        touched: Instant,
    },
}

impl SimSession {
    fn expired(&self, now: Instant) -> bool {
        match self {
            SimSession::Pending { touched, .. } => now.duration_since(*touched) > PENDING_IDLE,
            SimSession::Active { touched, .. } => now.duration_since(*touched) > ACTIVE_IDLE,
        }
    }
}

/// One simulated IPMI BMC's protocol state.
pub struct IpmiBmc {
    id: BmcIdentity,
    sessions: HashMap<u32, SimSession>,
    next_sid: u32,
    scratch: Vec<u8>,
    msg: Vec<u8>,
}

impl IpmiBmc {
    /// A BMC with no sessions; `sid_base` spreads session ids across simulated BMCs.
    pub fn new(id: BmcIdentity, sid_base: u32) -> Self {
        IpmiBmc {
            id,
            sessions: HashMap::new(),
            next_sid: sid_base.wrapping_mul(0x0001_0001).max(1),
            scratch: Vec::with_capacity(128),
            msg: Vec::with_capacity(128),
        }
    }

    /// Sessions currently held (half-open ones included).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Handle one datagram; returns true when `out` holds a reply to send.
    pub fn handle(
        &mut self,
        packet: &[u8],
        now: Instant,
        state: &mut BmcState,
        out: &mut Vec<u8>,
    ) -> bool {
        out.clear();
        match rmcp::decode(packet) {
            Ok(Packet::Sessionless(msg)) => self.sessionless(msg, out),
            Ok(Packet::Rmcpp(p)) if p.session_id == 0 => match p.payload_type {
                PayloadType::OpenSessionRequest => self.open_session(p.payload, now, state, out),
                PayloadType::Rakp1 => self.rakp1(p.payload, now, out),
                PayloadType::Rakp3 => self.rakp3(p.payload, now, out),
                _ => false,
            },
            Ok(Packet::Rmcpp(p)) => self.in_session(p.session_id, packet, now, state, out),
            Err(_) => false,
        }
    }

    fn sessionless(&mut self, msg: &[u8], out: &mut Vec<u8>) -> bool {
        let Ok((h, data)) = message::decode_request(msg) else {
            return false;
        };
        let (cc, body) = discovery(&self.id, &h, data).unwrap_or((CC_INVALID_COMMAND, Vec::new()));
        self.msg.clear();
        message::encode_response(&mut self.msg, &h, cc, &body);
        rmcp::encode_sessionless(out, &self.msg).is_ok()
    }

    fn expire(&mut self, now: Instant) {
        self.sessions.retain(|_, s| !s.expired(now));
    }

    fn open_session(
        &mut self,
        payload: &[u8],
        now: Instant,
        state: &BmcState,
        out: &mut Vec<u8>,
    ) -> bool {
        let Ok(req) = OpenSessionRequest::decode(payload) else {
            return false;
        };
        self.expire(now);
        let mut resp = OpenSessionResponse {
            tag: req.tag,
            status: rakp::STATUS_OK,
            max_privilege: 0,
            console_sid: req.console_sid,
            bmc_sid: 0,
            algorithms: None,
        };
        let algs = req.algorithms;
        let offered = |f: fn(CipherSuite) -> u8, v: u8| self.id.suites.iter().any(|s| f(*s) == v);
        let suite = algs.suite().filter(|s| self.id.suites.contains(s));
        let limit = state.faults.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS);
        // A retransmitted request for a still half-open session reuses it.
        let existing = self.sessions.iter().find_map(|(sid, s)| match s {
            SimSession::Pending {
                console_sid,
                rakp: None,
                ..
            } if *console_sid == req.console_sid => Some(*sid),
            _ => None,
        });
        let requested = req.max_privilege;
        if !offered(CipherSuite::auth_algorithm, algs.auth) {
            resp.status = rakp::STATUS_INVALID_AUTH_ALG;
        } else if !offered(CipherSuite::integrity_algorithm, algs.integrity) {
            resp.status = rakp::STATUS_INVALID_INTEGRITY_ALG;
        } else if !offered(CipherSuite::confidentiality_algorithm, algs.confidentiality) {
            resp.status = rakp::STATUS_INVALID_CONF_ALG;
        } else if suite.is_none() {
            resp.status = rakp::STATUS_NO_CIPHER_MATCH;
        } else if requested > self.id.max_privilege.code() {
            resp.status = rakp::STATUS_UNAUTHORIZED_ROLE;
        } else if existing.is_none() && self.sessions.len() >= limit {
            resp.status = rakp::STATUS_NO_RESOURCES;
        }
        if let (rakp::STATUS_OK, Some(suite)) = (resp.status, suite) {
            let sid = existing.unwrap_or_else(|| self.allocate_sid());
            self.sessions.insert(
                sid,
                SimSession::Pending {
                    console_sid: req.console_sid,
                    suite,
                    rakp: None,
                    touched: now,
                },
            );
            resp.bmc_sid = sid;
            resp.max_privilege = if requested == 0 {
                self.id.max_privilege.code()
            } else {
                requested
            };
            resp.algorithms = Some(Algorithms::of(suite));
        }
        self.msg.clear();
        resp.encode(&mut self.msg);
        rmcp::encode_plain(out, PayloadType::OpenSessionResponse, 0, 0, &self.msg).is_ok()
    }

    fn allocate_sid(&mut self) -> u32 {
        loop {
            self.next_sid = self.next_sid.wrapping_add(1);
            if self.next_sid != 0 && !self.sessions.contains_key(&self.next_sid) {
                return self.next_sid;
            }
        }
    }

    fn rakp1(&mut self, payload: &[u8], now: Instant, out: &mut Vec<u8>) -> bool {
        let Ok(req) = Rakp1::decode(payload) else {
            return false;
        };
        let guid = self.id.guid;
        let mut reply = Rakp2 {
            tag: req.tag,
            status: rakp::STATUS_OK,
            console_sid: 0,
            bmc_random: [0; RANDOM_LEN],
            bmc_guid: guid,
            auth_code: &[],
        };
        let code;
        match self.sessions.get_mut(&req.bmc_sid) {
            Some(SimSession::Pending {
                console_sid,
                suite,
                rakp,
                touched,
            }) => {
                *touched = now;
                reply.console_sid = *console_sid;
                let role_priv = req.role & 0x0F;
                if req.user != self.id.creds.user() {
                    reply.status = rakp::STATUS_UNAUTHORIZED_NAME;
                } else if role_priv > self.id.max_privilege.code() || role_priv == 0 {
                    reply.status = rakp::STATUS_UNAUTHORIZED_ROLE;
                } else {
                    // A retransmitted RAKP 1 with the same Rm keeps the same Rc, so whichever
                    // RAKP 2 the console ends up using matches our state.
                    let bmc_random = match rakp {
                        Some(r) if r.console_random == req.console_random && r.role == req.role => {
                            r.bmc_random
                        }
                        _ => {
                            let mut rc = [0u8; RANDOM_LEN];
                            if fencegate_ipmi_codec::crypto::random_bytes(&mut rc).is_err() {
                                return false;
                            }
                            rc
                        }
                    };
                    *rakp = Some(RakpState {
                        console_random: req.console_random,
                        bmc_random,
                        role: req.role,
                    });
                    reply.bmc_random = bmc_random;
                    let hs = Handshake {
                        suite: *suite,
                        console_sid: *console_sid,
                        bmc_sid: req.bmc_sid,
                        console_random: &req.console_random,
                        bmc_random: &bmc_random,
                        bmc_guid: &guid,
                        identity: Identity {
                            role: req.role,
                            user: req.user,
                        },
                    };
                    code = self.id.creds.rakp2_code(&hs);
                    reply.auth_code = code.as_bytes();
                }
                if reply.status != rakp::STATUS_OK {
                    self.sessions.remove(&req.bmc_sid);
                }
            }
            _ => reply.status = rakp::STATUS_INVALID_SESSION,
        }
        self.msg.clear();
        reply.encode(&mut self.msg);
        rmcp::encode_plain(out, PayloadType::Rakp2, 0, 0, &self.msg).is_ok()
    }

    fn rakp3(&mut self, payload: &[u8], now: Instant, out: &mut Vec<u8>) -> bool {
        let Ok(req) = Rakp3::decode(payload) else {
            return false;
        };
        let guid = self.id.guid;
        let (console_sid, suite, console_random, bmc_random, role) =
            match self.sessions.get_mut(&req.bmc_sid) {
                None => return self.rakp4_error(req.tag, 0, rakp::STATUS_INVALID_SESSION, out),
                Some(SimSession::Active {
                    rakp3_code,
                    rakp4,
                    touched,
                    ..
                }) => {
                    // A duplicate RAKP 3 (its RAKP 4 was lost) gets the same answer again.
                    if req.status == rakp::STATUS_OK && rakp3_code.matches(req.auth_code) {
                        *touched = now;
                        out.clear();
                        out.extend_from_slice(rakp4);
                        return true;
                    }
                    return false;
                }
                Some(SimSession::Pending { rakp: None, .. }) => return false,
                Some(SimSession::Pending {
                    console_sid,
                    suite,
                    rakp: Some(r),
                    ..
                }) => (*console_sid, *suite, r.console_random, r.bmc_random, r.role),
            };
        if req.status != rakp::STATUS_OK {
            // The console aborts (it did not trust our RAKP 2): forget the session.
            self.sessions.remove(&req.bmc_sid);
            return false;
        }
        let hs = Handshake {
            suite,
            console_sid,
            bmc_sid: req.bmc_sid,
            console_random: &console_random,
            bmc_random: &bmc_random,
            bmc_guid: &guid,
            identity: Identity {
                role,
                user: self.id.creds.user(),
            },
        };
        let expected = self.id.creds.rakp3_code(&hs);
        if !expected.matches(req.auth_code) {
            self.sessions.remove(&req.bmc_sid);
            return self.rakp4_error(req.tag, console_sid, rakp::STATUS_INVALID_ICV, out);
        }
        let keys = self.id.creds.session_keys(&hs);
        let icv = keys.rakp4_icv(&console_random, req.bmc_sid, &guid);
        let limit = Privilege::from_code(role)
            .unwrap_or(Privilege::User)
            .min(self.id.max_privilege);
        self.msg.clear();
        Rakp4 {
            tag: req.tag,
            status: rakp::STATUS_OK,
            console_sid,
            icv: icv.as_bytes(),
        }
        .encode(&mut self.msg);
        if rmcp::encode_plain(out, PayloadType::Rakp4, 0, 0, &self.msg).is_err() {
            return false;
        }
        self.sessions.insert(
            req.bmc_sid,
            SimSession::Active {
                session: Session::new(keys, req.bmc_sid, console_sid, false),
                // Sessions start at User; Set Session Privilege raises them.
                privilege: Privilege::User.min(limit),
                limit,
                rakp3_code: expected,
                rakp4: out.clone(),
                touched: now,
            },
        );
        true
    }

    fn rakp4_error(&mut self, tag: u8, console_sid: u32, status: u8, out: &mut Vec<u8>) -> bool {
        self.msg.clear();
        Rakp4 {
            tag,
            status,
            console_sid,
            icv: &[],
        }
        .encode(&mut self.msg);
        rmcp::encode_plain(out, PayloadType::Rakp4, 0, 0, &self.msg).is_ok()
    }

    fn in_session(
        &mut self,
        sid: u32,
        packet: &[u8],
        now: Instant,
        state: &mut BmcState,
        out: &mut Vec<u8>,
    ) -> bool {
        let Some(SimSession::Active {
            session,
            privilege,
            limit,
            touched,
            ..
        }) = self.sessions.get_mut(&sid)
        else {
            return false;
        };
        if session.open(packet, &mut self.scratch).is_err() {
            return false;
        }
        *touched = now;
        let Ok((h, data)) = message::decode_request(&self.scratch) else {
            return false;
        };
        let mut close = false;
        let (cc, body): (u8, Vec<u8>) = match (h.netfn, h.cmd) {
            (NETFN_APP, CMD_SET_SESSION_PRIVILEGE) => match data.first().map(|b| b & 0x0F) {
                None => (CC_BAD_LENGTH, vec![]),
                Some(0) => (0, vec![privilege.code()]),
                Some(level) => match Privilege::from_code(level) {
                    Some(p) if p <= *limit => {
                        *privilege = p;
                        (0, vec![p.code()])
                    }
                    _ => (CC_PRIVILEGE_EXCEEDS_LIMIT, vec![]),
                },
            },
            (NETFN_APP, CMD_CLOSE_SESSION) => match data.get(..4) {
                Some(b) if b == sid.to_le_bytes() => {
                    close = true;
                    (0, vec![])
                }
                Some(_) => (0x87, vec![]),
                None => (CC_BAD_LENGTH, vec![]),
            },
            (NETFN_APP, CMD_GET_DEVICE_GUID | CMD_GET_SYSTEM_GUID) => (0, self.id.guid.to_vec()),
            (NETFN_APP, 0x01) => (
                // Get Device ID: enough for tools that ask who they talk to.
                0,
                vec![0x20, 0x01, 0x01, 0x00, 0x02, 0x01, 0, 0, 0, 0, 0],
            ),
            (NETFN_CHASSIS, CMD_GET_CHASSIS_STATUS) => {
                let on = state.power.is_on(now);
                let status = ChassisStatus {
                    power_on: on,
                    overload: false,
                    control_fault: false,
                    restore_policy: state
                        .restore_policy
                        .and_then(commands::restore_policy_code)
                        .unwrap_or(RESTORE_POLICY_UNKNOWN),
                };
                (0, status.encode().to_vec())
            }
            (NETFN_CHASSIS, CMD_SET_POWER_RESTORE_POLICY) => {
                let supported = commands::restore_policy_support(&SUPPORTED_POLICIES);
                match data.first().map(|b| b & 0x07) {
                    None => (CC_BAD_LENGTH, vec![]),
                    Some(_) if *privilege < Privilege::Operator => {
                        (CC_INSUFFICIENT_PRIVILEGE, vec![])
                    }
                    // "No change": only the list of supported policies is asked for.
                    Some(RESTORE_POLICY_UNKNOWN) => (0, vec![supported]),
                    Some(code) => match commands::restore_policy_from_code(code) {
                        Some(policy) if code <= 0x02 => {
                            state.restore_policy = Some(policy);
                            (0, vec![supported])
                        }
                        _ => (CC_INVALID_DATA, vec![]),
                    },
                }
            }
            (NETFN_STORAGE, CMD_GET_SDR_REPO_INFO) => {
                let info = commands::SdrRepoInfo {
                    version: 0x51,
                    record_count: u16::try_from(state.sdr.len()).unwrap_or(u16::MAX),
                };
                (0, info.encode().to_vec())
            }
            (NETFN_STORAGE, CMD_RESERVE_SDR_REPO) => {
                state.sdr_reservation = state.sdr_reservation.wrapping_add(1).max(1);
                (0, state.sdr_reservation.to_le_bytes().to_vec())
            }
            (NETFN_STORAGE, CMD_GET_SDR) => get_sdr(state, data),
            (NETFN_CHASSIS, CMD_CHASSIS_CONTROL) => {
                if *privilege < Privilege::Operator {
                    (CC_INSUFFICIENT_PRIVILEGE, vec![])
                } else {
                    match data.first().and_then(|b| ChassisControl::from_code(*b)) {
                        None => (CC_INVALID_DATA, vec![]),
                        Some(ctl) => {
                            let command = match ctl {
                                ChassisControl::PowerDown => PowerCommand::Off,
                                ChassisControl::PowerUp => PowerCommand::On,
                                ChassisControl::PowerCycle => PowerCommand::Cycle,
                                ChassisControl::HardReset => PowerCommand::Reset,
                                ChassisControl::SoftShutdown => PowerCommand::SoftOff,
                            };
                            let outcome: CommandOutcome =
                                state.power.command(command, &state.faults, now);
                            state.log.push(CommandRecord {
                                protocol: "ipmi",
                                command,
                                outcome,
                            });
                            (0, vec![])
                        }
                    }
                }
            }
            _ => discovery(&self.id, &h, data).unwrap_or((CC_INVALID_COMMAND, vec![])),
        };
        self.msg.clear();
        message::encode_response(&mut self.msg, &h, cc, &body);
        let Some(SimSession::Active { session, .. }) = self.sessions.get_mut(&sid) else {
            return false;
        };
        let sent = session.seal(&self.msg, out).is_ok();
        if close {
            self.sessions.remove(&sid);
        }
        sent
    }
}

fn auth_caps(id: &BmcIdentity) -> AuthCapabilities {
    let named = !id.creds.user().is_empty();
    AuthCapabilities {
        channel: CHANNEL,
        ipmi20: true,
        kg_set: id.creds.has_kg(),
        non_null_users: named,
        null_user: !named,
        anonymous: false,
    }
}

/// Answer a discovery command; `None` for a command not served there.
fn discovery(id: &BmcIdentity, h: &RequestHeader, data: &[u8]) -> Option<(u8, Vec<u8>)> {
    match (h.netfn, h.cmd) {
        (NETFN_APP, CMD_GET_CHANNEL_AUTH_CAPS) => Some((0, auth_caps(id).encode().to_vec())),
        (NETFN_APP, CMD_GET_CHANNEL_CIPHER_SUITES) => {
            let [_, _, index, ..] = data else {
                return Some((CC_BAD_LENGTH, Vec::new()));
            };
            let ids: Vec<u8> = id.suites.iter().map(|s| s.id()).collect();
            Some((0, commands::cipher_suites_page(CHANNEL, &ids, *index)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(supplies: usize) -> BmcState {
        BmcState {
            power: PowerModel::new(true),
            faults: FaultProfile::default(),
            log: Vec::new(),
            restore_policy: None,
            sdr: standard_sdr(supplies),
            sdr_reservation: 7,
        }
    }

    #[test]
    fn the_sdr_walks_from_first_to_last_with_reserved_partial_reads() {
        let s = state(3);
        let mut next = commands::SDR_FIRST;
        let mut supplies = 0;
        let mut records = 0;
        while next != commands::SDR_LAST {
            let (cc, data) = get_sdr(&s, &commands::get_sdr_request(0, next, 0, 5));
            assert_eq!(cc, 0);
            let (following, head) = commands::decode_sdr_chunk(&data).unwrap();
            let header = commands::SdrHeader::decode(head).unwrap();
            if header.is_sensor() {
                let (cc, data) = get_sdr(&s, &commands::get_sdr_request(7, header.id, 5, 9));
                assert_eq!(cc, 0);
                let (_, prefix) = commands::decode_sdr_chunk(&data).unwrap();
                let (t, r) = commands::sensor_types(prefix).unwrap();
                supplies += usize::from(commands::is_supply_sensor(t, r));
            }
            records += 1;
            next = following;
        }
        assert_eq!((records, supplies), (6, 3));
        // Partial reads need the current reservation; reads past the end and unknown ids
        // are refused.
        let cc = |data: [u8; 6]| get_sdr(&s, &data).0;
        assert_eq!(
            cc(commands::get_sdr_request(6, 3, 5, 9)),
            commands::CC_RESERVATION_CANCELLED
        );
        assert_eq!(
            cc(commands::get_sdr_request(7, 1, 5, 200)),
            commands::CC_CANNOT_RETURN_BYTES
        );
        assert_eq!(cc(commands::get_sdr_request(7, 1, 5, 0xFF)), 0);
        assert_eq!(
            cc(commands::get_sdr_request(7, 99, 0, 5)),
            commands::CC_NOT_PRESENT
        );
        assert_eq!(get_sdr(&s, &[0, 0, 1]).0, CC_BAD_LENGTH);
        let mut empty = state(0);
        empty.replace_sdr(Vec::new());
        assert_ne!(empty.sdr_reservation, 7);
        assert_eq!(
            get_sdr(&empty, &commands::get_sdr_request(0, 0, 0, 5)).0,
            commands::CC_NOT_PRESENT
        );
    }
}
