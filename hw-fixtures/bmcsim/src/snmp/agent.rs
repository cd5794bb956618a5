//! The agent: APC PowerNet-MIB outlet semantics over decoded messages, with no I/O.
//!
//! It serves `sPDUOutletControlTableSize`, `sPDUOutletCtl` (GET 1 on / 2 off; SET 1 on,
//! 2 off, 3 reboot), `sPDUOutletCtlName` and the system group, the way an APC MasterSwitch
//! (and the net-snmp fixture in `hw-fixtures/snmpd`) answers: a read-only community may
//! read, a read-write one may also SET, an unknown community gets no answer at all.

use super::ber::{Message, PduKind, Value};
use crate::faults::FaultProfile;
use crate::power::{CommandRecord, PowerCommand, PowerModel};
use std::time::Instant;

/// `sPDUOutletControl` (PowerNet-MIB), the subtree every object below lives in.
pub const OUTLET_CONTROL: [u32; 11] = [1, 3, 6, 1, 4, 1, 318, 1, 1, 4, 4];
/// `masterSwitchV2`, the sysObjectID reported (what fence_apc_snmp treats as the fallback
/// MasterSwitch model).
pub const SYS_OBJECT_ID: [u32; 10] = [1, 3, 6, 1, 4, 1, 318, 1, 3, 4];
const SYS_OBJECT_ID_LEAF: u32 = 2;

/// The columns of `sPDUOutletControlEntry` served.
const COL_INDEX: u32 = 1;
const COL_CTL: u32 = 3;
const COL_NAME: u32 = 4;

/// SNMP error-status values.
mod status {
    pub const NO_SUCH_NAME: i64 = 2;
    pub const BAD_VALUE: i64 = 3;
    pub const NO_ACCESS: i64 = 6;
    pub const WRONG_TYPE: i64 = 7;
    pub const WRONG_VALUE: i64 = 10;
    pub const NO_CREATION: i64 = 11;
    pub const NOT_WRITABLE: i64 = 17;
}

/// One power command an outlet received, for tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OutletCommand {
    /// The outlet (1-based).
    pub outlet: u32,
    /// What was asked and what the power model did.
    #[serde(flatten)]
    pub record: CommandRecord,
}

/// The state of one simulated PDU, shared between its task and the lab.
#[derive(Debug)]
pub struct PduState {
    /// One power model per outlet (index 0 is outlet 1).
    pub outlets: Vec<PowerModel>,
    /// The faults in force.
    pub faults: FaultProfile,
    /// Every SET that switched (or tried to switch) an outlet.
    pub log: Vec<OutletCommand>,
}

/// Who may do what.
#[derive(Clone)]
pub struct Communities {
    /// May GET.
    pub read_only: Vec<u8>,
    /// May GET and SET.
    pub read_write: Vec<u8>,
}

/// What the agent serves besides the outlets.
#[derive(Clone)]
pub struct AgentIdentity {
    /// sysName.0.
    pub sys_name: String,
}

/// Answer one decoded request, or `None` when a real agent would stay silent (unknown
/// community, unsupported version, a message that is not a request).
pub fn handle(
    req: &Message,
    communities: &Communities,
    identity: &AgentIdentity,
    state: &mut PduState,
    now: Instant,
) -> Option<Message> {
    if !(0..=1).contains(&req.version) {
        return None;
    }
    let v1 = req.version == 0;
    let writable = if req.community == communities.read_write {
        true
    } else if req.community == communities.read_only {
        false
    } else {
        return None;
    };
    let mut resp = Message {
        version: req.version,
        community: req.community.clone(),
        kind: PduKind::Response,
        request_id: req.request_id,
        error_status: 0,
        error_index: 0,
        varbinds: req.varbinds.clone(),
    };
    let fail = |resp: &mut Message, i: usize, v2_status: i64, v1_status: i64| {
        resp.error_status = if v1 { v1_status } else { v2_status };
        resp.error_index = i as i64 + 1;
        resp.varbinds = req.varbinds.clone();
    };
    match req.kind {
        PduKind::Response => return None,
        PduKind::Get => {
            for (i, (oid, _)) in req.varbinds.iter().enumerate() {
                match lookup(oid, identity, state, now) {
                    Lookup::Value(v) => resp.varbinds[i].1 = v,
                    Lookup::NoInstance if !v1 => resp.varbinds[i].1 = Value::NoSuchInstance,
                    Lookup::NoObject if !v1 => resp.varbinds[i].1 = Value::NoSuchObject,
                    Lookup::NoInstance | Lookup::NoObject => {
                        fail(&mut resp, i, 0, status::NO_SUCH_NAME);
                        break;
                    }
                }
            }
        }
        PduKind::GetNext | PduKind::GetBulk => {
            let all = walk(identity, state, now);
            for (i, (oid, _)) in req.varbinds.iter().enumerate() {
                match all.iter().find(|(o, _)| o > oid) {
                    Some((o, v)) => resp.varbinds[i] = (o.clone(), v.clone()),
                    None if !v1 => resp.varbinds[i].1 = Value::EndOfMibView,
                    None => {
                        fail(&mut resp, i, 0, status::NO_SUCH_NAME);
                        break;
                    }
                }
            }
        }
        PduKind::Set => {
            if !writable {
                fail(&mut resp, 0, status::NO_ACCESS, status::NO_SUCH_NAME);
                return Some(resp);
            }
            // Check every varbind before applying any: a SET is all or nothing.
            let mut plan = Vec::with_capacity(req.varbinds.len());
            for (i, (oid, value)) in req.varbinds.iter().enumerate() {
                match check_set(oid, value, state.outlets.len()) {
                    Ok(step) => plan.push(step),
                    Err((v2, v1s)) => {
                        fail(&mut resp, i, v2, v1s);
                        return Some(resp);
                    }
                }
            }
            for (outlet, command) in plan {
                let faults = state.faults.clone();
                if let Some(model) = state.outlets.get_mut(outlet as usize - 1) {
                    let outcome = model.command(command, &faults, now);
                    state.log.push(OutletCommand {
                        outlet,
                        record: CommandRecord {
                            protocol: "snmp",
                            command,
                            outcome,
                        },
                    });
                }
            }
        }
    }
    Some(resp)
}

enum Lookup {
    Value(Value),
    NoObject,
    NoInstance,
}

fn outlet_value(state: &mut PduState, col: u32, n: u32, now: Instant) -> Option<Value> {
    let idx = usize::try_from(n).ok()?.checked_sub(1)?;
    let model = state.outlets.get_mut(idx)?;
    Some(match col {
        COL_INDEX => Value::Integer(i64::from(n)),
        COL_CTL => Value::Integer(if model.is_on(now) { 1 } else { 2 }),
        _ => Value::OctetString(format!("outlet{n}").into_bytes()),
    })
}

fn lookup(oid: &[u32], identity: &AgentIdentity, state: &mut PduState, now: Instant) -> Lookup {
    const SYSTEM: [u32; 7] = [1, 3, 6, 1, 2, 1, 1];
    if let Some(rest) = oid.strip_prefix(&SYSTEM[..]) {
        return match rest {
            [1, 0] => Lookup::Value(Value::OctetString(
                b"APC Web/SNMP Management Card emulated by fencegate-bmcsim".to_vec(),
            )),
            [2, 0] => {
                let mut o = SYS_OBJECT_ID.to_vec();
                o.push(SYS_OBJECT_ID_LEAF);
                Lookup::Value(Value::Oid(o))
            }
            [5, 0] => Lookup::Value(Value::OctetString(identity.sys_name.clone().into_bytes())),
            [1 | 2 | 5, ..] => Lookup::NoInstance,
            _ => Lookup::NoObject,
        };
    }
    let Some(rest) = oid.strip_prefix(&OUTLET_CONTROL[..]) else {
        return Lookup::NoObject;
    };
    match rest {
        [1, 0] => Lookup::Value(Value::Integer(state.outlets.len() as i64)),
        [2, 1, col @ (COL_INDEX | COL_CTL | COL_NAME), n] => {
            match outlet_value(state, *col, *n, now) {
                Some(v) => Lookup::Value(v),
                None => Lookup::NoInstance,
            }
        }
        [1, ..] | [2, 1, COL_INDEX | COL_CTL | COL_NAME, ..] => Lookup::NoInstance,
        _ => Lookup::NoObject,
    }
}

/// Every object in OID order, for GetNext.
fn walk(identity: &AgentIdentity, state: &mut PduState, now: Instant) -> Vec<(Vec<u32>, Value)> {
    let mut oids: Vec<Vec<u32>> = vec![
        vec![1, 3, 6, 1, 2, 1, 1, 1, 0],
        vec![1, 3, 6, 1, 2, 1, 1, 2, 0],
        vec![1, 3, 6, 1, 2, 1, 1, 5, 0],
    ];
    let mut base = OUTLET_CONTROL.to_vec();
    base.extend([1, 0]);
    oids.push(base);
    for col in [COL_INDEX, COL_CTL, COL_NAME] {
        for n in 1..=state.outlets.len() as u32 {
            let mut o = OUTLET_CONTROL.to_vec();
            o.extend([2, 1, col, n]);
            oids.push(o);
        }
    }
    oids.into_iter()
        .filter_map(|o| match lookup(&o, identity, state, now) {
            Lookup::Value(v) => Some((o, v)),
            _ => None,
        })
        .collect()
}

/// Validate one SET varbind: `Ok((outlet, command))` or the error-status (v2c, v1).
fn check_set(
    oid: &[u32],
    value: &Value,
    outlets: usize,
) -> Result<(u32, PowerCommand), (i64, i64)> {
    let Some(rest) = oid.strip_prefix(&OUTLET_CONTROL[..]) else {
        return Err((status::NOT_WRITABLE, status::NO_SUCH_NAME));
    };
    let n = match rest {
        [2, 1, COL_CTL, n] => *n,
        _ => return Err((status::NOT_WRITABLE, status::NO_SUCH_NAME)),
    };
    if n == 0 || n as usize > outlets {
        return Err((status::NO_CREATION, status::NO_SUCH_NAME));
    }
    let Value::Integer(v) = value else {
        return Err((status::WRONG_TYPE, status::BAD_VALUE));
    };
    let command = match v {
        1 => PowerCommand::On,
        2 => PowerCommand::Off,
        3 => PowerCommand::Cycle,
        _ => return Err((status::WRONG_VALUE, status::BAD_VALUE)),
    };
    Ok((n, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Communities, AgentIdentity, PduState) {
        (
            Communities {
                read_only: b"public".to_vec(),
                read_write: b"private".to_vec(),
            },
            AgentIdentity {
                sys_name: "pdu0".into(),
            },
            PduState {
                outlets: vec![PowerModel::new(true); 4],
                faults: FaultProfile::default(),
                log: Vec::new(),
            },
        )
    }

    fn ctl(n: u32) -> Vec<u32> {
        let mut o = OUTLET_CONTROL.to_vec();
        o.extend([2, 1, COL_CTL, n]);
        o
    }

    fn req(version: i64, community: &str, kind: PduKind, vbs: Vec<(Vec<u32>, Value)>) -> Message {
        Message {
            version,
            community: community.as_bytes().to_vec(),
            kind,
            request_id: 7,
            error_status: 0,
            error_index: 0,
            varbinds: vbs,
        }
    }

    #[test]
    fn set_then_get() {
        let (c, id, mut st) = setup();
        let now = Instant::now();
        let r = handle(
            &req(
                1,
                "private",
                PduKind::Set,
                vec![(ctl(2), Value::Integer(2))],
            ),
            &c,
            &id,
            &mut st,
            now,
        )
        .unwrap();
        assert_eq!((r.error_status, r.request_id), (0, 7));
        let r = handle(
            &req(1, "public", PduKind::Get, vec![(ctl(2), Value::Null)]),
            &c,
            &id,
            &mut st,
            now,
        )
        .unwrap();
        assert_eq!(r.varbinds[0].1, Value::Integer(2));
        assert_eq!(st.log.len(), 1);
    }

    #[test]
    fn refusals_look_like_net_snmp() {
        let (c, id, mut st) = setup();
        let now = Instant::now();
        let mut ask =
            |v, comm: &str, kind, vb| handle(&req(v, comm, kind, vec![vb]), &c, &id, &mut st, now);
        assert!(ask(1, "nope", PduKind::Get, (ctl(1), Value::Null)).is_none());
        assert_eq!(
            ask(1, "public", PduKind::Set, (ctl(1), Value::Integer(2)))
                .unwrap()
                .error_status,
            6
        );
        assert_eq!(
            ask(0, "public", PduKind::Set, (ctl(1), Value::Integer(2)))
                .unwrap()
                .error_status,
            2
        );
        assert_eq!(
            ask(1, "private", PduKind::Set, (ctl(1), Value::Integer(9)))
                .unwrap()
                .error_status,
            10
        );
        assert_eq!(
            ask(1, "private", PduKind::Set, (ctl(9), Value::Integer(2)))
                .unwrap()
                .error_status,
            11
        );
        assert_eq!(
            ask(1, "private", PduKind::Get, (ctl(9), Value::Null))
                .unwrap()
                .varbinds[0]
                .1,
            Value::NoSuchInstance
        );
        assert_eq!(
            ask(0, "private", PduKind::Get, (ctl(9), Value::Null))
                .unwrap()
                .error_status,
            2
        );
        assert_eq!(
            ask(
                1,
                "private",
                PduKind::Get,
                (vec![1, 3, 6, 1, 4, 1, 9], Value::Null)
            )
            .unwrap()
            .varbinds[0]
                .1,
            Value::NoSuchObject
        );
    }

    #[test]
    fn getnext_walks_in_order() {
        let (c, id, mut st) = setup();
        let r = handle(
            &req(1, "public", PduKind::GetNext, vec![(ctl(4), Value::Null)]),
            &c,
            &id,
            &mut st,
            Instant::now(),
        )
        .unwrap();
        let mut want = OUTLET_CONTROL.to_vec();
        want.extend([2, 1, COL_NAME, 1]);
        assert_eq!(r.varbinds[0].0, want);
    }
}
