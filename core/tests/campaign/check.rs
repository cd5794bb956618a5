//! The invariants, checked after a schedule from the boxes' truth and logs and from what the
//! journal decided and holds, never from what the engine claims:
//!
//! 1. `verified-off`: a `power_verified_off` verdict is recorded only when the box's truth
//!    was Off throughout the hold after the last command: from the later of (verdict −
//!    hold) and the box's last power command that took effect (from any process, through
//!    any address) until the verdict, and Off at every reading of the proof;
//! 2. `lock`: no box accepts a power-on while a fence's lock covers it: through the fence's
//!    lock keys, or through any name or address once the box is tied to the fence by
//!    identity (remembered for the fence's device when it began, answered its device, or
//!    locked by it) — everything the journal can know;
//! 3. `storm`: no guarded fence begins while `storm_limit` other hosts were fenced within the
//!    window (as far as the clocks let anyone know: across a reboot, only by a wall clock
//!    that was not stepped forward);
//! 4. `deadline`: every call ends by its overall deadline (simulated time);
//! 5. `crash`: every operation a killed process left open is closed by reconciliation as
//!    failed, never assumed; an operation it closed keeps its verdict; no operation is
//!    closed twice; none is left open;
//! 6. `target`: a caller only ever gets the verdict of an operation on its own target.

use super::observed::{IdentityShown, LockChange, Observed};
use super::schedule::{Op, World};
use super::sim::{Answer, ClockReading, Entry, SimBox, Truth};
use fencegate_core::journal::Begin;
use fencegate_core::proof::{Door, Operation, Proof, Verdict};
use fencegate_driver::{Action, PowerState};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How a call ended.
#[derive(Debug, Clone)]
pub enum Called {
    /// With a proof (a verdict or a refusal).
    Proof(Box<Proof>),
    /// A reconciliation closed this many operations.
    Reconciled(usize),
    /// With an engine error (no record).
    Error(String),
}

/// A call that ended.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The process.
    pub process: usize,
    /// The name (`None`: a reconciliation).
    pub host: Option<usize>,
    /// The operation (`None`: a reconciliation).
    pub op: Option<Op>,
    /// When it was asked.
    pub started: Instant,
    /// When it answered.
    pub ended: Instant,
    /// What it answered.
    pub called: Called,
}

/// A process killed.
#[derive(Debug, Clone, Copy)]
pub struct Crash {
    /// Which.
    pub process: usize,
    /// When, in the global order.
    pub seq: u64,
}

/// What the checker reads.
pub struct Facts<'a> {
    /// The world.
    pub world: &'a World,
    /// The start.
    pub t0: Instant,
    /// The boxes.
    pub boxes: &'a [Arc<SimBox>],
    /// Every call each box answered, in order (taken once from `boxes`).
    pub logs: &'a [Vec<Entry>],
    /// What the journals decided.
    pub observed: &'a Observed,
    /// Every call that ended.
    pub calls: &'a [CallRecord],
    /// Every kill.
    pub crashes: &'a [Crash],
    /// The journal clock's history: (order, true time, reading), from the start.
    pub clock: &'a [(u64, Instant, ClockReading)],
    /// The journal file.
    pub journal: &'a Path,
    /// Each name's target digest.
    pub targets: Vec<String>,
}

fn ms(t: Instant, t0: Instant) -> u128 {
    (t - t0).as_millis()
}

impl Facts<'_> {
    /// The name a claim was for.
    fn host_of(&self, host: &str, target: &str) -> Option<usize> {
        self.world.hosts.iter().enumerate().position(|(i, h)| {
            h.name == host && self.targets.get(i).map(String::as_str) == Some(target)
        })
    }

    fn clock_at(&self, seq: u64) -> ClockReading {
        self.clock
            .iter()
            .take_while(|(s, _, _)| *s < seq)
            .last()
            .map(|(_, _, r)| *r)
            .unwrap_or(self.clock[0].2)
    }

    fn started(&self) -> impl Iterator<Item = &super::observed::BeginSeen> {
        self.observed
            .begins
            .iter()
            .filter(|b| matches!(b.begin, Begin::Started { .. }))
    }
}

/// Every invariant; one line per violation.
pub fn all(f: &Facts<'_>) -> Vec<String> {
    let mut v = Vec::new();
    verified_off(f, &mut v);
    locks(f, &mut v);
    storm(f, &mut v);
    deadlines(f, &mut v);
    match rows(f.journal) {
        Ok(rows) => {
            crashes(f, &rows, &mut v);
            targets(f, &rows, &mut v);
        }
        Err(e) => v.push(format!("crash: the journal cannot be read back: {e}")),
    }
    v
}

/// The hold a `power_verified_off` verdict must rest on: the box's truth is Off from the
/// later of (verdict − hold) and the box's last power command that took effect before the
/// verdict, whoever sent it through whatever address, until the verdict; and every `Off`
/// reading the operation was given within the hold was true when the box gave it.
///
/// Why from the last command: a box that was on for a moment and then powered off again by
/// a command (another process's fence through an address nothing ties to this host) is off
/// because of that command, and has been since; any engine's proof can only speak for the
/// time after it. A blip after the last command, or a reading that was a lie, is a false
/// proof.
pub fn verified_off(f: &Facts<'_>, v: &mut Vec<String>) {
    for fin in f
        .observed
        .finishes
        .iter()
        .filter(|x| x.verdict == Verdict::PowerVerifiedOff)
    {
        let Some(begin) = f.started().find(|b| b.claim.request_id == fin.request_id) else {
            v.push(format!(
                "verified-off: a verdict at t={}ms for an operation the journal never began",
                ms(fin.at, f.t0)
            ));
            continue;
        };
        let Some(h) = f.host_of(&begin.claim.host, &begin.claim.target) else {
            v.push(format!(
                "verified-off: unknown target of {}",
                begin.claim.host
            ));
            continue;
        };
        let spec = &f.world.hosts[h];
        let hold = f.world.policy_of(spec).off_hold;
        let log = &f.logs[spec.target];
        let last_command = log
            .iter()
            .filter(|e| e.seq < fin.seq && e.at <= fin.at)
            .filter(|e| {
                matches!(
                    e.answer,
                    Answer::Command(_, true) | Answer::Vanished(_, Some(true))
                )
            })
            .map(|e| e.at)
            .max();
        let nominal = fin.at.checked_sub(hold).filter(|t| *t >= f.t0);
        let from = match (nominal, last_command) {
            (Some(n), Some(c)) => Some(n.max(c)),
            (Some(n), None) => Some(n),
            // Before the hold could have passed since the start, only a command tells.
            (None, c) => c,
        };
        let held = from.is_some_and(|from| f.boxes[spec.target].off_throughout(from, fin.at));
        let readings_from = nominal.unwrap_or(f.t0).max(begin.at);
        let false_reading = log.iter().find(|e| {
            e.process == fin.process
                && e.seq < fin.seq
                && e.at >= readings_from
                && e.at <= fin.at
                && e.answer == Answer::Read(PowerState::Off)
                && spec.levels.iter().flatten().any(|a| *a == e.endpoint)
                && e.truth != Truth::Off
        });
        if !held || false_reading.is_some() {
            let timeline: Vec<String> = f.boxes[spec.target]
                .timeline()
                .iter()
                .map(|(t, s)| format!("{s:?}@{}ms", ms(*t, f.t0)))
                .collect();
            let why = match false_reading {
                Some(e) if held => format!(
                    "its reading through {} at t={}ms said Off while the box was {:?}",
                    e.endpoint,
                    ms(e.at, f.t0),
                    e.truth
                ),
                _ => format!(
                    "box {} was not off throughout the hold after the last command (from t={}; hold {}ms, last command {})",
                    spec.target,
                    from.map_or("the start".to_owned(), |t| format!("{}ms", ms(t, f.t0))),
                    hold.as_millis(),
                    last_command.map_or("none".to_owned(), |t| format!("at t={}ms", ms(t, f.t0)))
                ),
            };
            v.push(format!(
                "verified-off: {:?} of {} (process {}) recorded power_verified_off at t={}ms, but {why} (truth: {})",
                begin.claim.operation,
                spec.name,
                fin.process,
                ms(fin.at, f.t0),
                timeline.join(", ")
            ));
        }
    }
}

enum LockEvent<'a> {
    Begin(&'a super::observed::BeginSeen),
    Change(&'a LockChange),
    Shown(&'a IdentityShown),
    /// A box answered a reading through `endpoint` to `process`.
    Answered {
        target: usize,
        process: usize,
        endpoint: &'a str,
    },
    /// A power-on, as of when it was sent.
    PowerOn {
        target: usize,
        at: Instant,
        process: usize,
        endpoint: &'a str,
    },
}

/// An identity fact, compared as the journal compares them.
type Fact = (String, String);

fn fact_of(f: &fencegate_driver::IdentityFact) -> Fact {
    (f.kind.clone(), f.value.clone())
}

/// The identity box `target` proves through `address`.
fn proves(address: &str, target: usize) -> Fact {
    fact_of(&super::run::fact_for(address, target))
}

/// What one fence's power-on lock covers, as far as the journal can know.
struct FenceLock {
    /// The process that runs it.
    process: usize,
    /// Its whole-host devices' addresses (every simulated channel is a BMC's).
    addresses: Vec<String>,
    /// When its verdict was recorded (global order), if it was.
    finished: Option<u64>,
    /// The lock keys of its devices (and of the earlier fence through its door it took
    /// over): a power-on through any of them is refused by key.
    keys: BTreeSet<String>,
    /// The identities it locks, and how each came to be locked.
    facts: BTreeMap<Fact, &'static str>,
}

/// The key a power-on lock and the identity memory use for a simulated address.
fn key_of(address: &str) -> String {
    format!("sim|{address}")
}

/// The identities the journal remembers, per endpoint key: modelled from every identity
/// shown to it (`identity_seen`), by the rule it promises. An endpoint remembers the first
/// facts shown for it, unless another endpoint already remembers one of them (two addresses
/// claiming one box: refused, nothing stored); what an endpoint remembers never changes
/// (another box answering there is refused). Nothing else changes it in a schedule (no pins,
/// no `trust`; the checker says so if that changes).
#[derive(Default)]
struct IdentityMemory(BTreeMap<String, Vec<Fact>>);

impl IdentityMemory {
    fn shown(&mut self, endpoint: &str, facts: &[fencegate_driver::IdentityFact]) {
        if facts.is_empty() || self.0.contains_key(endpoint) {
            return;
        }
        let facts: Vec<Fact> = facts.iter().map(fact_of).collect();
        let claimed = self
            .0
            .iter()
            .any(|(other, known)| other != endpoint && known.iter().any(|k| facts.contains(k)));
        if !claimed {
            self.0.insert(endpoint.to_owned(), facts);
        }
    }

    fn remembers(&self, address: &str, fact: &Fact) -> bool {
        self.0
            .get(&key_of(address))
            .is_some_and(|k| k.contains(fact))
    }
}

/// The power-on lock (`lock`), judged by what the journal can know. While fence F's lock stands
/// (from F's begin until an `unfence` lifts its last door's lock), a power-on sent through
/// endpoint E is a violation when E's lock key is among F's, or when F locks an identity the
/// power-on's host is known to reach at that moment: the identity E proves, or the identity
/// another whole-host device of that host proves if that device answered during the
/// operation or the journal remembers that identity for it. F locks an identity (a) that the
/// journal remembered for one of F's whole-host endpoints when F began, (b) that one of F's
/// devices presented when a box answered it (first contact locks it), or (c) that F locked
/// (`lock_identities`). A relay nothing has tied to F yet, or another channel to the same
/// box whose identity nothing links to the locked one, may power the box on: no journal
/// could know it reaches a fenced box.
pub fn locks(f: &Facts<'_>, v: &mut Vec<String>) {
    for what in &f.observed.unmodelled {
        v.push(format!(
            "lock: the journal was asked to {what}, which the checker's identity model does not cover"
        ));
    }
    let started: Vec<&super::observed::BeginSeen> = f.started().collect();
    let finished = |rid: &str| {
        f.observed
            .finishes
            .iter()
            .find(|x| x.request_id == rid)
            .map(|x| x.seq)
    };
    let addresses_of = |b: &super::observed::BeginSeen| {
        f.host_of(&b.claim.host, &b.claim.target).map(|h| {
            f.world.hosts[h]
                .levels
                .iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    let mut events: Vec<(u64, LockEvent<'_>)> = Vec::new();
    for b in started.iter().filter(|b| b.claim.sets_lock) {
        events.push((b.seq, LockEvent::Begin(b)));
    }
    for (seq, c) in &f.observed.locks {
        events.push((*seq, LockEvent::Change(c)));
    }
    for shown in &f.observed.identities {
        events.push((shown.seq, LockEvent::Shown(shown)));
    }
    for (target, log) in f.logs.iter().enumerate() {
        for e in log {
            match e.answer {
                Answer::Command(Action::On, true) | Answer::Vanished("on", Some(true)) => {
                    events.push((
                        e.asked,
                        LockEvent::PowerOn {
                            target,
                            at: e.at,
                            process: e.process,
                            endpoint: &e.endpoint,
                        },
                    ));
                }
                Answer::Read(_) => events.push((
                    e.seq,
                    LockEvent::Answered {
                        target,
                        process: e.process,
                        endpoint: &e.endpoint,
                    },
                )),
                _ => {}
            }
        }
    }
    events.sort_by_key(|(s, _)| *s);
    // The journal's lock model: a lock per (host, door) naming a fence; each fence locks
    // keys and identities.
    let mut host_locks: BTreeMap<(String, &'static str), String> = BTreeMap::new();
    let mut fences: HashMap<String, FenceLock> = HashMap::new();
    let mut memory = IdentityMemory::default();
    // The last reading each (process, address) was answered.
    let mut answered: HashMap<(usize, &str), u64> = HashMap::new();
    for (seq, e) in &events {
        match e {
            LockEvent::Begin(b) => {
                let Some(addresses) = addresses_of(b) else {
                    v.push(format!(
                        "lock: a fence of {} began for a target no name has",
                        b.claim.host
                    ));
                    continue;
                };
                let mut lock = FenceLock {
                    process: b.process,
                    keys: addresses.iter().map(|a| key_of(a)).collect(),
                    facts: BTreeMap::new(),
                    finished: finished(&b.claim.request_id),
                    addresses,
                };
                // (a) The identities remembered for its endpoints are locked as it begins.
                for a in &lock.addresses {
                    for fact in memory.0.get(&key_of(a)).into_iter().flatten() {
                        lock.facts
                            .entry(fact.clone())
                            .or_insert("remembered for its device when it began");
                    }
                }
                // A door's new fence takes over the keys and identities of its earlier one.
                let door = (b.claim.host.clone(), b.claim.door.as_str());
                if let Some(earlier) = host_locks.get(&door)
                    && let Some(old) = fences.remove(earlier)
                {
                    lock.keys.extend(old.keys);
                    for (fact, how) in old.facts {
                        lock.facts.entry(fact).or_insert(how);
                    }
                }
                fences.insert(b.claim.request_id.clone(), lock);
                host_locks.insert(door, b.claim.request_id.clone());
            }
            LockEvent::Change(LockChange::Shared {
                host,
                door,
                request_id,
            }) => {
                if host_locks.values().any(|r| r == request_id) {
                    host_locks
                        .entry((host.clone(), door.as_str()))
                        .or_insert_with(|| request_id.clone());
                }
            }
            LockEvent::Change(LockChange::Lifted(lifted)) => {
                for l in lifted {
                    host_locks.remove(&(l.host.clone(), l.door.map_or("", Door::as_str)));
                    if !host_locks.values().any(|r| *r == l.request_id) {
                        fences.remove(&l.request_id);
                    }
                }
            }
            LockEvent::Change(LockChange::Identities { request_id, facts }) => {
                // (c) Only a fence whose lock still stands locks more.
                if host_locks.values().any(|r| r == request_id)
                    && let Some(lock) = fences.get_mut(request_id)
                {
                    for fact in facts {
                        lock.facts.entry(fact_of(fact)).or_insert("it locked");
                    }
                }
            }
            LockEvent::Shown(shown) => memory.shown(&shown.endpoint, &shown.facts),
            LockEvent::Answered {
                target,
                process,
                endpoint,
            } => {
                answered.insert((*process, endpoint), *seq);
                // (b) A fence's device that a box answered locks that box's identity at first
                // contact. While a fence is open and its process lives, no other operation
                // on its keys runs (it would join the fence), so what its process reads
                // through its addresses is its own devices' reading.
                for (rid, lock) in fences.iter_mut() {
                    if lock.process == *process
                        && lock.finished.is_none_or(|fin| *seq < fin)
                        && lock.addresses.iter().any(|a| a == endpoint)
                        && host_locks.values().any(|r| r == rid)
                    {
                        lock.facts
                            .entry(proves(endpoint, *target))
                            .or_insert("its device presented");
                    }
                }
            }
            LockEvent::PowerOn {
                target,
                at,
                process,
                endpoint,
            } => {
                let key = key_of(endpoint);
                // What the powering operation's host is known to reach: the identity E
                // proves, and that of each other device of its host that answered during
                // the operation or that the journal remembers.
                let mut reaches = vec![(proves(endpoint, *target), endpoint.to_string())];
                let operation = started
                    .iter()
                    .filter(|b| {
                        b.process == *process
                            && b.seq < *seq
                            && finished(&b.claim.request_id).is_none_or(|fin| fin > *seq)
                    })
                    .filter_map(|b| Some((b.seq, addresses_of(b)?)))
                    .filter(|(_, addresses)| addresses.iter().any(|a| a == endpoint))
                    .max_by_key(|(began, _)| *began);
                if let Some((began, addresses)) = operation {
                    for d in addresses.iter().filter(|d| *d != endpoint) {
                        let fact = proves(d, *target);
                        let read = answered
                            .get(&(*process, d.as_str()))
                            .is_some_and(|at| *at > began);
                        if read || memory.remembers(d, &fact) {
                            reaches.push((fact, d.clone()));
                        }
                    }
                }
                let holder = host_locks.iter().find_map(|((host, door), rid)| {
                    let lock = fences.get(rid)?;
                    if lock.keys.contains(&key) {
                        return Some((host, door, "by key".to_owned()));
                    }
                    reaches.iter().find_map(|(fact, through)| {
                        lock.facts.get(fact).map(|how| {
                            (
                                host,
                                door,
                                format!("by {}={} which {through} proves, {how}", fact.0, fact.1),
                            )
                        })
                    })
                });
                if let Some((host, door, how)) = holder {
                    v.push(format!(
                        "lock: box {target} accepted a power-on through {endpoint} from process {process} at t={}ms while locked (fence of {host} through the {door} door, {how})",
                        ms(*at, f.t0),
                    ));
                }
            }
        }
    }
}

fn storm(f: &Facts<'_>, v: &mut Vec<String>) {
    let fences: Vec<&super::observed::BeginSeen> = f
        .started()
        .filter(|b| b.claim.operation == Operation::Fence)
        .collect();
    for n in &fences {
        let Some((limit, window)) = n.claim.storm.filter(|(l, _)| *l > 0) else {
            continue;
        };
        if !matches!(
            n.begin,
            Begin::Started {
                read_only: None,
                ..
            }
        ) {
            continue;
        }
        let now = f.clock_at(n.seq);
        let mut others: BTreeSet<&str> = BTreeSet::new();
        for o in &fences {
            if o.seq >= n.seq
                || o.claim.host == n.claim.host
                || matches!(
                    o.begin,
                    Begin::Started {
                        confirms: Some(_),
                        ..
                    }
                )
            {
                continue;
            }
            let elapsed = n.at - o.at;
            let then = f.clock_at(o.seq);
            // On one boot the boot clock is exact; across a reboot only the wall clock can
            // tell, and only if it was not stepped forward in between.
            let knowable = then.boot == now.boot || now.offset_ms <= then.offset_ms;
            if knowable && elapsed + Duration::from_millis(2) < window {
                others.insert(o.claim.host.as_str());
            }
        }
        if others.len() >= limit as usize {
            v.push(format!(
                "storm: a fence of {} began at t={}ms (limit {limit}) although {} other hosts were fenced within {}s: {:?}",
                n.claim.host,
                ms(n.at, f.t0),
                others.len(),
                window.as_secs(),
                others
            ));
        }
    }
}

fn deadlines(f: &Facts<'_>, v: &mut Vec<String>) {
    // A joiner looks for another process's verdict every 50 ms.
    let slack = Duration::from_millis(51);
    for c in f.calls {
        if let Called::Error(e) = &c.called {
            v.push(format!("engine error in process {}: {e}", c.process));
        }
        let bound = match (c.host, c.op) {
            (Some(h), Some(op)) => {
                let p = f.world.policy_of(&f.world.hosts[h]);
                let settle = if op == Op::Fence {
                    p.storm_settle
                } else {
                    Duration::ZERO
                };
                p.overall_timeout + settle + slack
            }
            // A reconciliation re-reads every abandoned operation at once, within one attempt
            // timeout, then releases the drivers (bounded).
            _ => f.world.policy.attempt_timeout + Duration::from_secs(2) + slack,
        };
        let took = c.ended - c.started;
        if took > bound {
            v.push(format!(
                "deadline: {:?} on {:?} by process {} asked at t={}ms took {}ms (bound {}ms)",
                c.op.map_or("reconciliation".to_owned(), |o| format!("{o:?}")),
                c.host.map(|h| f.world.hosts[h].name.as_str()),
                c.process,
                ms(c.started, f.t0),
                took.as_millis(),
                bound.as_millis()
            ));
        }
    }
}

/// The journal's operations: request id → (target, finished, verdict, success).
type Rows = HashMap<String, (String, bool, Option<String>, Option<bool>)>;

fn rows(path: &Path) -> Result<Rows, String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| e.to_string())?;
    let mut stmt = conn
        .prepare(
            "SELECT request_id, target, finished_ms IS NOT NULL, verdict, success FROM operations",
        )
        .map_err(|e| e.to_string())?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?),
            ))
        })
        .map_err(|e| e.to_string())?
        .collect::<Result<Rows, _>>()
        .map_err(|e| e.to_string())?;
    Ok(rows)
}

fn crashes(f: &Facts<'_>, rows: &Rows, v: &mut Vec<String>) {
    let mut closed: HashMap<&str, usize> = HashMap::new();
    for fin in &f.observed.finishes {
        *closed.entry(fin.request_id.as_str()).or_default() += 1;
    }
    for (rid, n) in &closed {
        if *n > 1 {
            v.push(format!("crash: operation {rid} was closed {n} times"));
        }
    }
    for (rid, (_, finished, _, _)) in rows {
        if !finished {
            let what = f
                .observed
                .begins
                .iter()
                .find(|b| b.claim.request_id == *rid)
                .map(|b| format!("{:?} of {}", b.claim.operation, b.claim.host))
                .unwrap_or_default();
            v.push(format!(
                "crash: operation {what} is still open after the last reconciliation"
            ));
        }
    }
    for crash in f.crashes {
        for b in f
            .started()
            .filter(|b| b.process == crash.process && b.seq < crash.seq)
        {
            let rid = b.claim.request_id.as_str();
            let fins: Vec<_> = f
                .observed
                .finishes
                .iter()
                .filter(|x| x.request_id == rid)
                .collect();
            let row = rows.get(rid);
            match fins.first() {
                Some(fin) if fin.seq < crash.seq => {
                    // Closed before the kill: the verdict stays.
                    if row.and_then(|r| r.2.as_deref()) != Some(fin.verdict.as_str()) {
                        v.push(format!(
                            "crash: {:?} of {} was closed as {} before process {} died, but the journal now says {:?}",
                            b.claim.operation, b.claim.host, fin.verdict, crash.process, row.and_then(|r| r.2.clone())
                        ));
                    }
                }
                Some(fin) => {
                    if fin.verdict != Verdict::Failed || fin.success {
                        v.push(format!(
                            "crash: {:?} of {} left open by killed process {} was closed as {} (success {}), not failed",
                            b.claim.operation, b.claim.host, crash.process, fin.verdict, fin.success
                        ));
                    }
                }
                None => v.push(format!(
                    "crash: {:?} of {} left open by killed process {} was never reconciled",
                    b.claim.operation, b.claim.host, crash.process
                )),
            }
        }
    }
}

fn targets(f: &Facts<'_>, rows: &Rows, v: &mut Vec<String>) {
    for c in f.calls {
        let (Some(h), Called::Proof(p)) = (c.host, &c.called) else {
            continue;
        };
        if p.verdict == Verdict::Refused {
            continue;
        }
        let mine = &f.targets[h];
        match rows.get(&p.request_id) {
            Some((target, ..)) if target == mine => {}
            Some((target, ..)) => v.push(format!(
                "target: {:?} of {} by process {} was answered with the verdict ({}) of an operation on another target ({} vs {})",
                c.op, f.world.hosts[h].name, c.process, p.verdict, target, mine
            )),
            None => v.push(format!(
                "target: {:?} of {} was answered with a verdict ({}) the journal does not hold",
                c.op, f.world.hosts[h].name, p.verdict
            )),
        }
    }
}

/// The trace a digest covers: what every box answered and every caller was told, in
/// simulated time, without request ids or real timestamps.
pub fn trace(f: &Facts<'_>, out: &mut Vec<String>) {
    let mut lines: Vec<(u64, String)> = Vec::new();
    for (b, log) in f.boxes.iter().zip(f.logs) {
        for e in log {
            lines.push((
                e.seq,
                format!(
                    "t={:>6}ms box {} <- process {} via {}: {:?}",
                    ms(e.at, f.t0),
                    b.index,
                    e.process,
                    e.endpoint,
                    e.answer
                ),
            ));
        }
    }
    for b in &f.observed.begins {
        let what = match &b.begin {
            Begin::Started {
                confirms,
                read_only,
            } => format!(
                "started{}{}",
                if confirms.is_some() {
                    " (re-confirms)"
                } else {
                    ""
                },
                if read_only.is_some() {
                    " (read only)"
                } else {
                    ""
                }
            ),
            Begin::InFlight { operation, .. } => format!("joins a running {operation:?}"),
            Begin::Refused { .. } => "refused by the storm guard".to_owned(),
            Begin::Locked(_) => "refused by a power-on lock".to_owned(),
        };
        lines.push((
            b.seq,
            format!(
                "t={:>6}ms journal: {:?} of {} by process {}: {what}",
                ms(b.at, f.t0),
                b.claim.operation,
                b.claim.host,
                b.process
            ),
        ));
    }
    for fin in &f.observed.finishes {
        lines.push((
            fin.seq,
            format!(
                "t={:>6}ms journal: verdict {} (success {}) by process {}",
                ms(fin.at, f.t0),
                fin.verdict,
                fin.success,
                fin.process
            ),
        ));
    }
    lines.sort_by_key(|(s, _)| *s);
    out.extend(lines.into_iter().map(|(_, l)| l));
    for c in f.calls {
        let what = match &c.called {
            Called::Proof(p) => format!("{} (success {})", p.verdict, p.success),
            Called::Reconciled(n) => format!("reconciled {n} operation(s)"),
            Called::Error(e) => format!("error: {e}"),
        };
        out.push(format!(
            "call: process {} {} {} asked t={}ms answered t={}ms: {what}",
            c.process,
            c.op.map_or("reconcile".to_owned(), |o| format!("{o:?}")),
            c.host.map_or("", |h| f.world.hosts[h].name.as_str()),
            ms(c.started, f.t0),
            ms(c.ended, f.t0),
        ));
    }
    for b in f.boxes {
        let timeline: Vec<String> = b
            .timeline()
            .iter()
            .map(|(t, s)| format!("{s:?}@{}ms", ms(*t, f.t0)))
            .collect();
        out.push(format!("box {} truth: {}", b.index, timeline.join(", ")));
    }
}
