//! Running one schedule: a current-thread tokio runtime with paused time (the simulated
//! clock of the engine and the devices), a fresh journal directory, one [`Engine`] and one
//! inline [`SqliteJournal`] per simulated process, and a director that applies the steps at
//! their times. Then every process's operations are let end, a last process reconciles,
//! and the checker reads the truth.

use super::check::{self, CallRecord, Called, Crash, Facts};
use super::observed::{Observed, ProcJournal};
use super::rng::Digest;
use super::schedule::{Action, HostSpec, Op, Reach, Step, World};
use super::sim::{ClockReading, Seq, SimBox, SimClock, SimDriver};
use fencegate_core::{Device, Engine, Host, Request, SqliteJournal};
use fencegate_driver::{IdentityFact, PowerDriver};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What one schedule came to.
#[derive(Debug, Clone)]
pub struct Report {
    /// Digest of everything the boxes answered and every caller was told.
    pub digest: u64,
    /// Broken invariants, one line each.
    pub violations: Vec<String>,
    /// The trace (what the digest covers), for a reproduction.
    pub trace: Vec<String>,
}

/// The authenticated identity a box proves through `address`.
pub fn fact_for(address: &str, target: usize) -> IdentityFact {
    if address.starts_with("sim://rf-") {
        IdentityFact::authenticated(
            "redfish-uuid",
            format!("6e1f2a3b-0042-3510-8052-b4c04f4e{:04x}", 0x3200 + target),
        )
    } else {
        // The BMC, and a relay to it, prove the BMC's GUID.
        IdentityFact::authenticated(
            "ipmi-guid",
            format!("4c4c4544004235108052b4c04f4e{:04x}", 0x3200 + target),
        )
    }
}

struct Process {
    id: usize,
    engine: Engine,
    journal: Arc<ProcJournal>,
    hosts: Vec<Arc<Host>>,
}

struct Ctx<'a> {
    world: &'a World,
    dir: &'a Path,
    clock: Arc<SimClock>,
    seq: Arc<Seq>,
    seen: Arc<Mutex<Observed>>,
    boxes: Vec<Arc<SimBox>>,
}

impl Ctx<'_> {
    fn host(&self, spec: &HostSpec, process: usize, dead: &Arc<AtomicBool>) -> Arc<Host> {
        let levels = spec
            .levels
            .iter()
            .map(|level| {
                level
                    .iter()
                    .map(|address| {
                        let driver = SimDriver {
                            endpoint: address.clone(),
                            target: Arc::clone(&self.boxes[spec.target]),
                            process,
                            dead: Arc::clone(dead),
                            fact: fact_for(address, spec.target),
                        };
                        Arc::new(Device::new(
                            address,
                            "sim",
                            Arc::new(driver) as Arc<dyn PowerDriver>,
                        ))
                    })
                    .collect()
            })
            .collect();
        Arc::new(Host {
            name: spec.name.clone(),
            aliases: Vec::new(),
            opennebula_id: None,
            levels,
            policy: self.world.policy_of(spec).clone(),
            inventory: matches!(spec.reach, Reach::Inventory | Reach::SecondName)
                .then(|| "sim-inventory".to_owned()),
        })
    }

    fn start(&self, id: usize) -> Result<Process, String> {
        let dead = Arc::new(AtomicBool::new(false));
        let clock: Arc<dyn fencegate_core::time::Clock> = self.clock.clone();
        let journal = SqliteJournal::open_inline(self.dir, clock)
            .map_err(|e| format!("process {id}: the journal would not open: {e}"))?;
        let journal = Arc::new(ProcJournal::new(
            journal,
            id,
            Arc::clone(&dead),
            Arc::clone(&self.seq),
            Arc::clone(&self.seen),
        ));
        let hosts = self
            .world
            .hosts
            .iter()
            .map(|h| self.host(h, id, &dead))
            .collect();
        Ok(Process {
            id,
            engine: Engine::new(journal.clone()),
            journal,
            hosts,
        })
    }
}

/// A call in flight.
struct Pending {
    process: usize,
    host: Option<usize>,
    op: Option<Op>,
    started: Instant,
    handle: JoinHandle<(Called, Instant)>,
    killed: bool,
}

fn spawn_op(
    p: &Process,
    host: usize,
    op: Op,
    door: fencegate_core::proof::Door,
    force: bool,
) -> Pending {
    let engine = p.engine.clone();
    let h = Arc::clone(&p.hosts[host]);
    let request = Request {
        requester: format!("campaign-p{}", p.id),
        reason: String::new(),
        force,
        door,
    };
    let handle = tokio::spawn(async move {
        let r = match op {
            Op::Fence => engine.fence(h, request).await,
            Op::Off => engine.off(h, request).await,
            Op::On => engine.on(h, request).await,
            Op::Unfence => engine.unfence(h, request).await,
            Op::Reboot => engine.reboot(h, request).await,
        };
        let end = Instant::now();
        (
            match r {
                Ok(proof) => Called::Proof(Box::new(proof)),
                Err(e) => Called::Error(e.to_string()),
            },
            end,
        )
    });
    Pending {
        process: p.id,
        host: Some(host),
        op: Some(op),
        started: Instant::now(),
        handle,
        killed: false,
    }
}

fn spawn_reconcile(p: &Process, world: &World) -> Pending {
    let engine = p.engine.clone();
    // A restarted process reconciles with its inventory: ad-hoc names are not in it.
    let inventory: Vec<Arc<Host>> = world
        .hosts
        .iter()
        .zip(&p.hosts)
        .filter(|(spec, _)| matches!(spec.reach, Reach::Inventory | Reach::SecondName))
        .map(|(_, h)| Arc::clone(h))
        .collect();
    let handle = tokio::spawn(async move {
        let r = engine
            .reconcile(|name| inventory.iter().find(|h| h.name == name).cloned())
            .await;
        let end = Instant::now();
        (
            match r {
                Ok(proofs) => Called::Reconciled(proofs.len()),
                Err(e) => Called::Error(e.to_string()),
            },
            end,
        )
    });
    Pending {
        process: p.id,
        host: None,
        op: None,
        started: Instant::now(),
        handle,
        killed: false,
    }
}

/// How long, in simulated time, the end of a schedule waits for any call: far beyond every
/// deadline, so only an operation that never ends reaches it.
const NEVER: Duration = Duration::from_secs(3600);

/// A journal file as fencegate's first open leaves it (schema created, migrations run,
/// its write-ahead log checkpointed and gone), made once: each schedule starts from a copy,
/// instead of paying for creating the schema again. Every process of a schedule still
/// opens it with the production code, pragmas and checks.
struct Template {
    bytes: Vec<u8>,
    mode: u32,
}

fn template(base: &Path) -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::Builder::new()
            .prefix("campaign-template-")
            .tempdir_in(base)
            .expect("a directory for the template journal");
        let clock: Arc<dyn fencegate_core::time::Clock> =
            Arc::new(fencegate_core::time::SystemClock);
        drop(SqliteJournal::open_inline(dir.path(), clock).expect("the template journal opens"));
        let path = dir.path().join(SqliteJournal::FILE_NAME);
        assert!(
            !dir.path()
                .join(format!("{}-wal", SqliteJournal::FILE_NAME))
                .exists(),
            "the template journal's write-ahead log was not checkpointed on close"
        );
        Template {
            bytes: std::fs::read(&path).expect("the template journal reads back"),
            mode: std::fs::metadata(&path)
                .expect("the template journal's mode")
                .permissions()
                .mode(),
        }
    })
}

/// Run `steps` in `world`, with the journal in a fresh directory under `base`.
pub fn run(world: &World, steps: &[Step], base: &Path) -> Report {
    let template = template(base);
    let dir = tempfile::Builder::new()
        .prefix("campaign-")
        .tempdir_in(base)
        .expect("a journal directory for the schedule");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(template.mode)
            .open(dir.path().join(SqliteJournal::FILE_NAME))
            .and_then(|mut f| f.write_all(&template.bytes))
            .expect("the schedule's journal from the template");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let report = rt.block_on(direct(world, steps, dir.path()));
    // Every task (and every dead process's hung call) goes with the runtime.
    drop(rt);
    report
}

async fn direct(world: &World, steps: &[Step], dir: &Path) -> Report {
    let t0 = Instant::now();
    let seq = Seq::new();
    let clock = SimClock::new(t0);
    let boxes: Vec<Arc<SimBox>> = world
        .boxes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            SimBox::new(
                i,
                Arc::clone(&seq),
                b.on,
                b.conflict_if_already,
                b.latency_ms,
            )
        })
        .collect();
    let ctx = Ctx {
        world,
        dir,
        clock: Arc::clone(&clock),
        seq: Arc::clone(&seq),
        seen: Arc::new(Mutex::new(Observed::default())),
        boxes,
    };
    let mut violations = Vec::new();
    let mut trace = Vec::new();
    let mut clock_history: Vec<(u64, Instant, ClockReading)> =
        vec![(seq.next(), t0, clock.reading())];
    let mut crashes: Vec<Crash> = Vec::new();
    let mut next_id = 0;
    let mut slots: Vec<Option<Process>> = Vec::new();
    for _ in 0..world.engines {
        match ctx.start(next_id) {
            Ok(p) => slots.push(Some(p)),
            Err(e) => {
                violations.push(format!("setup: {e}"));
                slots.push(None);
            }
        }
        next_id += 1;
    }
    let mut calls: Vec<Pending> = Vec::new();
    let kill = |p: Process, calls: &mut Vec<Pending>, crashes: &mut Vec<Crash>| {
        p.journal.kill();
        for c in calls.iter_mut().filter(|c| c.process == p.id) {
            c.handle.abort();
            c.killed = true;
        }
        crashes.push(Crash {
            process: p.id,
            seq: ctx.seq.next(),
        });
    };
    for step in steps {
        tokio::time::sleep_until(t0 + Duration::from_millis(step.at_ms)).await;
        match &step.action {
            Action::Op {
                engine,
                host,
                op,
                door,
                force,
            } => match &slots[*engine] {
                Some(p) => calls.push(spawn_op(p, *host, *op, *door, *force)),
                None => trace.push(format!("{step}: skipped, the process is down")),
            },
            Action::Fault { target, fault } => ctx.boxes[*target].arm(*fault),
            Action::ClockStep(delta) => {
                clock.step(*delta);
                clock_history.push((seq.next(), Instant::now(), clock.reading()));
            }
            Action::Reboot => {
                for slot in &mut slots {
                    if let Some(p) = slot.take() {
                        kill(p, &mut calls, &mut crashes);
                    }
                }
                clock.reboot();
                clock_history.push((seq.next(), Instant::now(), clock.reading()));
            }
            Action::Crash(engine) => {
                if let Some(p) = slots[*engine].take() {
                    kill(p, &mut calls, &mut crashes);
                }
            }
            Action::Restart(engine) => {
                if slots[*engine].is_none() {
                    match ctx.start(next_id) {
                        Ok(p) => {
                            calls.push(spawn_reconcile(&p, world));
                            slots[*engine] = Some(p);
                        }
                        Err(e) => violations.push(format!("restart: {e}")),
                    }
                    next_id += 1;
                }
            }
        }
    }
    // Let every live call end (each within its deadline; the checker says if not).
    let mut records = Vec::new();
    finish_calls(calls, &mut records, &mut violations).await;
    // Whatever a live process still runs on its own ends within its deadline too.
    tokio::time::sleep(Duration::from_secs(120)).await;
    // The next start of fencegate reconciles whatever a killed process left open.
    match ctx.start(next_id) {
        Ok(p) => {
            finish_calls(
                vec![spawn_reconcile(&p, world)],
                &mut records,
                &mut violations,
            )
            .await;
            slots.push(Some(p));
        }
        Err(e) => violations.push(format!("final start: {e}")),
    }
    let observed = std::mem::take(&mut *ctx.seen.lock().unwrap());
    let logs: Vec<_> = ctx.boxes.iter().map(|b| b.log()).collect();
    let facts = Facts {
        world,
        t0,
        boxes: &ctx.boxes,
        logs: &logs,
        observed: &observed,
        calls: &records,
        crashes: &crashes,
        clock: &clock_history,
        journal: &dir.join(SqliteJournal::FILE_NAME),
        targets: slots
            .iter()
            .flatten()
            .next()
            .map(|p| p.hosts.iter().map(|h| h.target_digest()).collect())
            .unwrap_or_default(),
    };
    violations.extend(check::all(&facts));
    check::trace(&facts, &mut trace);
    let mut digest = Digest::default();
    for line in &trace {
        digest.add(line.as_bytes());
    }
    Report {
        digest: digest.0,
        violations,
        trace,
    }
}

/// Wait for every call that was not killed; record how each ended.
async fn finish_calls(
    calls: Vec<Pending>,
    records: &mut Vec<CallRecord>,
    violations: &mut Vec<String>,
) {
    for c in calls {
        if c.killed {
            continue;
        }
        match tokio::time::timeout(NEVER, c.handle).await {
            Ok(Ok((called, end))) => records.push(CallRecord {
                process: c.process,
                host: c.host,
                op: c.op,
                started: c.started,
                ended: end,
                called,
            }),
            Ok(Err(e)) => violations.push(format!("a call of process {} panicked: {e}", c.process)),
            Err(_) => violations.push(format!(
                "deadline: a {:?} by process {} did not end within an hour",
                c.op, c.process
            )),
        }
    }
}
