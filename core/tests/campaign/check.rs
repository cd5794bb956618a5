//! The invariants, checked after a schedule from the boxes' truth and logs and from what the
//! journal decided and holds, never from what the engine claims:
//!
//! 1. `verified-off`: a `power_verified_off` verdict is recorded only when the box's truth
//!    was Off throughout the hold before it;
//! 2. `lock`: no box accepts a power-on while a power-on lock covers it, through any name or
//!    address;
//! 3. `storm`: no guarded fence begins while `storm_limit` other hosts were fenced within the
//!    window (as far as the clocks let anyone know: across a reboot, only by a wall clock
//!    that was not stepped forward);
//! 4. `deadline`: every call ends by its overall deadline (simulated time);
//! 5. `crash`: every operation a killed process left open is closed by reconciliation as
//!    failed, never assumed; an operation it closed keeps its verdict; no operation is
//!    closed twice; none is left open;
//! 6. `target`: a caller only ever gets the verdict of an operation on its own target.

use super::observed::{LockChange, Observed};
use super::schedule::{Op, World, bmc, relay, second};
use super::sim::{Answer, ClockReading, SimBox};
use fencegate_core::journal::Begin;
use fencegate_core::proof::{Door, Operation, Proof, Verdict};
use fencegate_driver::Action;
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

    fn box_of_key(&self, key: &str) -> Option<usize> {
        self.world.box_of_address(key.strip_prefix("sim|")?)
    }

    fn boxes_of_facts(&self, facts: &[fencegate_driver::IdentityFact]) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        for b in 0..self.world.boxes.len() {
            for address in [bmc(b), second(b), relay(b)] {
                let mine = super::run::fact_for(&address, b);
                if facts
                    .iter()
                    .any(|f| f.kind == mine.kind && f.value.eq_ignore_ascii_case(&mine.value))
                {
                    out.insert(b);
                }
            }
        }
        out
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
    crashes(f, &mut v);
    targets(f, &mut v);
    v
}

fn verified_off(f: &Facts<'_>, v: &mut Vec<String>) {
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
        let from = fin.at.checked_sub(hold).filter(|t| *t >= f.t0);
        let held = from.is_some_and(|from| f.boxes[spec.target].off_throughout(from, fin.at));
        if !held {
            let timeline: Vec<String> = f.boxes[spec.target]
                .timeline()
                .iter()
                .map(|(t, s)| format!("{s:?}@{}ms", ms(*t, f.t0)))
                .collect();
            v.push(format!(
                "verified-off: {:?} of {} (process {}) recorded power_verified_off at t={}ms, but box {} was not off throughout the {}ms before (truth: {})",
                begin.claim.operation,
                spec.name,
                fin.process,
                ms(fin.at, f.t0),
                spec.target,
                hold.as_millis(),
                timeline.join(", ")
            ));
        }
    }
}

enum LockEvent<'a> {
    Begin(&'a super::observed::BeginSeen),
    Change(&'a LockChange),
    PowerOn {
        target: usize,
        at: Instant,
        process: usize,
        endpoint: String,
    },
}

fn locks(f: &Facts<'_>, v: &mut Vec<String>) {
    let mut events: Vec<(u64, LockEvent<'_>)> = Vec::new();
    for b in f.started().filter(|b| b.claim.sets_lock) {
        events.push((b.seq, LockEvent::Begin(b)));
    }
    for (seq, c) in &f.observed.locks {
        events.push((*seq, LockEvent::Change(c)));
    }
    for (target, b) in f.boxes.iter().enumerate() {
        for e in b.log() {
            let on = matches!(
                e.answer,
                Answer::Command(Action::On, true) | Answer::Vanished("on", Some(true))
            );
            if on {
                events.push((
                    e.seq,
                    LockEvent::PowerOn {
                        target,
                        at: e.at,
                        process: e.process,
                        endpoint: e.endpoint.clone(),
                    },
                ));
            }
        }
    }
    events.sort_by_key(|(s, _)| *s);
    // The journal's lock model: a lock per (host, door) naming a fence; each fence locks boxes.
    let mut host_locks: BTreeMap<(String, &'static str), String> = BTreeMap::new();
    let mut fence_boxes: HashMap<String, BTreeSet<usize>> = HashMap::new();
    for (_, e) in &events {
        match e {
            LockEvent::Begin(b) => {
                let mut boxes: BTreeSet<usize> = b
                    .claim
                    .lock_keys
                    .iter()
                    .filter_map(|k| f.box_of_key(k))
                    .collect();
                let key = (b.claim.host.clone(), b.claim.door.as_str());
                if let Some(earlier) = host_locks.get(&key)
                    && let Some(old) = fence_boxes.remove(earlier)
                {
                    boxes.extend(old);
                }
                fence_boxes
                    .entry(b.claim.request_id.clone())
                    .or_default()
                    .extend(boxes);
                host_locks.insert(key, b.claim.request_id.clone());
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
                        fence_boxes.remove(&l.request_id);
                    }
                }
            }
            LockEvent::Change(LockChange::Identities { request_id, facts }) => {
                if host_locks.values().any(|r| r == request_id) {
                    let boxes = f.boxes_of_facts(facts);
                    fence_boxes
                        .entry(request_id.clone())
                        .or_default()
                        .extend(boxes);
                }
            }
            LockEvent::PowerOn {
                target,
                at,
                process,
                endpoint,
            } => {
                let holders: Vec<(&(String, &'static str), &String)> = host_locks
                    .iter()
                    .filter(|(_, r)| fence_boxes.get(*r).is_some_and(|b| b.contains(target)))
                    .collect();
                if let Some(((host, door), _)) = holders.first() {
                    v.push(format!(
                        "lock: box {target} accepted a power-on through {endpoint} from process {process} at t={}ms while locked (fence of {host} through the {} door)",
                        ms(*at, f.t0),
                        door
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

fn crashes(f: &Facts<'_>, v: &mut Vec<String>) {
    let rows = match rows(f.journal) {
        Ok(r) => r,
        Err(e) => {
            v.push(format!("crash: the journal cannot be read back: {e}"));
            return;
        }
    };
    let mut closed: HashMap<&str, usize> = HashMap::new();
    for fin in &f.observed.finishes {
        *closed.entry(fin.request_id.as_str()).or_default() += 1;
    }
    for (rid, n) in &closed {
        if *n > 1 {
            v.push(format!("crash: operation {rid} was closed {n} times"));
        }
    }
    for (rid, (_, finished, _, _)) in &rows {
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

fn targets(f: &Facts<'_>, v: &mut Vec<String>) {
    let rows = match rows(f.journal) {
        Ok(r) => r,
        Err(_) => return,
    };
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
    for b in f.boxes {
        for e in b.log() {
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
