//! The deterministic fault campaign: randomized schedules through the real engine and the
//! real SQLite journal code, under a simulated clock, deterministic for a seed.
//!
//! Each schedule draws a world (boxes; the names, aliases, ad-hoc URLs and relays that
//! reach them; two or three fencegate processes sharing one journal file) and timed steps
//! (fence/off/on/unfence/reboot through the three front doors, device faults, wall-clock
//! steps, a reboot, a kill -9 of a process and its restart), runs them on a paused
//! current-thread runtime, and checks the invariants of `campaign/check.rs` against the
//! boxes' truth and the journal. A failing schedule is shrunk by dropping steps while it
//! still fails, and printed with its seed and index.
//!
//! `scripts/campaign --schedules N --seed S [--jobs J]` runs it at scale (release build);
//! a plain `cargo test` runs a small campaign. Settings come from the environment:
//! `FENCEGATE_CAMPAIGN_SCHEDULES`, `FENCEGATE_CAMPAIGN_SEED`, `FENCEGATE_CAMPAIGN_JOBS`,
//! `FENCEGATE_CAMPAIGN_ONLY` (one schedule index, with its trace). See docs/RELIABILITY.md.

mod campaign {
    pub mod check;
    pub mod observed;
    pub mod rng;
    pub mod run;
    pub mod schedule;
    pub mod sim;
}

use campaign::rng::{Rng, mix};
use campaign::run::{Report, run};
use campaign::schedule::{self, Action, Op, Reach, Step, World};
use campaign::sim::{CallFault, Fault, Truth};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The seed a plain `cargo test` uses.
const DEFAULT_SEED: u64 = 13;
/// How many schedules a plain `cargo test` runs (a debug build; CI runs 10,000 in release).
const DEFAULT_SCHEDULES: u64 = 40;

/// Where journals go: tmpfs when there is one (the settings stay the production ones).
fn journal_base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let writable = shm.is_dir()
        && tempfile::Builder::new()
            .prefix("campaign-probe-")
            .tempdir_in(shm)
            .is_ok();
    if writable {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
    .or_else(|| panic!("{name}={v:?} is not a number"))
}

/// Schedule `index` of the campaign seeded `seed`.
fn schedule_of(seed: u64, index: u64) -> (World, Vec<Step>) {
    let mut rng = Rng::for_schedule(seed, index);
    let world = schedule::world(&mut rng);
    let steps = schedule::steps(&mut rng, &world);
    (world, steps)
}

/// Drop steps while the schedule still fails: what is left is a minimal reproduction.
fn shrink(world: &World, mut steps: Vec<Step>, base: &Path) -> Vec<Step> {
    loop {
        let mut changed = false;
        let mut i = 0;
        while i < steps.len() {
            let mut candidate = steps.clone();
            candidate.remove(i);
            if !run(world, &candidate, base).violations.is_empty() {
                steps = candidate;
                changed = true;
            } else {
                i += 1;
            }
        }
        if !changed {
            return steps;
        }
    }
}

fn describe_world(world: &World) -> String {
    let mut out = format!(
        "  world: {} processes; policy confirmations={} off_hold={}s storm_limit={} storm_settle={}s retries={}\n",
        world.engines,
        world.policy.confirmations,
        world.policy.off_hold.as_secs(),
        world.policy.storm_limit,
        world.policy.storm_settle.as_secs(),
        world.policy.retries
    );
    for (i, b) in world.boxes.iter().enumerate() {
        out.push_str(&format!("  box {i}: {b:?}\n"));
    }
    for (i, h) in world.hosts.iter().enumerate() {
        out.push_str(&format!(
            "  host#{i} {:?} {:?} -> box {} via {:?}\n",
            h.name, h.reach, h.target, h.levels
        ));
    }
    out
}

/// The kind of a violation: its words without the numbers, up to the first parenthesis.
fn class_of(violation: &str) -> String {
    let words: String = violation
        .split('(')
        .next()
        .unwrap_or(violation)
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    let mut out = String::new();
    for c in words.chars() {
        if !(c == '#' && out.ends_with('#')) {
            out.push(c);
        }
    }
    out.trim().to_owned()
}

/// A campaign's result.
struct Summary {
    schedules: u64,
    violating: u64,
    failures: Vec<String>,
    digest: u64,
    elapsed: Duration,
}

/// Run schedules `0..n` of `seed` on `jobs` threads; each schedule is independent of the
/// others and of the thread that runs it.
fn campaign(seed: u64, n: u64, jobs: usize, base: &Path) -> Summary {
    let started = Instant::now();
    let done = AtomicU64::new(0);
    let mut results: Vec<(u64, Report)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs as u64)
            .map(|w| {
                let done = &done;
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut i = w;
                    while i < n {
                        let (world, steps) = schedule_of(seed, i);
                        let mut report = run(&world, &steps, base);
                        if report.violations.is_empty() {
                            // Only a failing schedule's trace is kept.
                            report.trace = Vec::new();
                        }
                        out.push((i, report));
                        let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                        if d.is_multiple_of(10_000) {
                            let secs = started.elapsed().as_secs_f64();
                            eprintln!(
                                "campaign: {d} of {n} schedules in {secs:.0}s ({:.0}/s)",
                                d as f64 / secs
                            );
                        }
                        i += jobs as u64;
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a campaign worker panicked"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    let mut digest = 0u64;
    let mut failures = Vec::new();
    let mut classes: Vec<(String, u64)> = Vec::new();
    for (i, report) in results {
        digest = mix(digest ^ report.digest);
        if report.violations.is_empty() {
            continue;
        }
        let class = class_of(&report.violations[0]);
        let first_of_class = match classes.iter_mut().find(|(c, _)| *c == class) {
            Some((_, n)) => {
                *n += 1;
                false
            }
            None => {
                classes.push((class, 1));
                true
            }
        };
        // Every failing schedule is named; the first of each kind is shrunk and traced.
        let mut text = format!(
            "VIOLATION seed {seed} schedule {i}:\n  {}\n",
            report.violations.join("\n  ")
        );
        if first_of_class {
            let (world, steps) = schedule_of(seed, i);
            let minimal = shrink(&world, steps, base);
            let again = run(&world, &minimal, base);
            text.push_str(&describe_world(&world));
            text.push_str(&format!(
                "  minimal reproduction ({} steps; scripts/campaign --seed {seed} --only {i} replays the whole schedule):\n",
                minimal.len()
            ));
            for s in &minimal {
                text.push_str(&format!("    {s}\n"));
            }
            text.push_str(&format!(
                "  which still breaks: {}\n  its trace:\n",
                again.violations.join("; ")
            ));
            for l in &again.trace {
                text.push_str(&format!("    {l}\n"));
            }
        }
        failures.push(text);
    }
    for (class, n) in &classes {
        failures.push(format!("{n} schedule(s) broke: {class}"));
    }
    Summary {
        schedules: n,
        violating: classes.iter().map(|(_, n)| n).sum(),
        failures,
        digest,
        elapsed: started.elapsed(),
    }
}

#[test]
fn campaign_of_random_schedules_breaks_no_invariant() {
    let seed = env_u64("FENCEGATE_CAMPAIGN_SEED").unwrap_or(DEFAULT_SEED);
    let base = journal_base();
    if let Some(i) = env_u64("FENCEGATE_CAMPAIGN_ONLY") {
        let (world, steps) = schedule_of(seed, i);
        let report = run(&world, &steps, &base);
        println!("seed {seed} schedule {i}\n{}", describe_world(&world));
        for s in &steps {
            println!("  {s}");
        }
        for l in &report.trace {
            println!("  {l}");
        }
        println!("digest {:016x}", report.digest);
        assert!(
            report.violations.is_empty(),
            "{}",
            report.violations.join("\n")
        );
        return;
    }
    let n = env_u64("FENCEGATE_CAMPAIGN_SCHEDULES").unwrap_or(DEFAULT_SCHEDULES);
    let jobs = env_u64("FENCEGATE_CAMPAIGN_JOBS").unwrap_or(1).max(1) as usize;
    let summary = campaign(seed, n, jobs, &base);
    for f in &summary.failures {
        println!("{f}");
    }
    let secs = summary.elapsed.as_secs_f64();
    println!(
        "seed {seed}, {jobs} job(s), journals in {}: {:.1}s, {:.0} schedules/s, digest {:016x}",
        base.display(),
        secs,
        summary.schedules as f64 / secs,
        summary.digest
    );
    println!(
        "{} schedules, {} violations",
        summary.schedules, summary.violating
    );
    assert!(
        summary.violating == 0,
        "{} of {} schedules broke an invariant (seed {seed}); see above",
        summary.violating,
        summary.schedules
    );
}

#[test]
fn a_seed_replays_exactly() {
    let base = journal_base();
    let mut digests = Vec::new();
    for i in 0..12 {
        let (world, steps) = schedule_of(7, i);
        let first = run(&world, &steps, &base);
        let second = run(&world, &steps, &base);
        assert_eq!(
            first.trace, second.trace,
            "schedule {i} of seed 7 ran differently twice"
        );
        assert_eq!(first.digest, second.digest);
        digests.push(first.digest);
    }
    // Different schedules do different things: the digest is not a constant.
    digests.sort_unstable();
    digests.dedup();
    assert!(digests.len() > 6, "schedules hardly differ: {digests:x?}");
    // And the multi-threaded campaign gives the same digest as one thread.
    assert_eq!(
        campaign(7, 6, 1, &base).digest,
        campaign(7, 6, 2, &base).digest
    );
    // Schedule 399 of seed 1 has three calls of one process waiting for a reboot of the same
    // host to end: which of them goes next must not vary from run to run (each run is a new
    // runtime, and tokio seeds each runtime's random choices anew).
    let (world, steps) = schedule_of(1, 399);
    let first = run(&world, &steps, &base);
    for _ in 0..7 {
        let again = run(&world, &steps, &base);
        assert_eq!(
            first.trace, again.trace,
            "schedule 399 of seed 1 ran differently twice"
        );
    }
}

/// A world of one box behind one inventory name, for the checker's own tests.
fn small_world() -> World {
    let mut rng = Rng::for_schedule(1, 1);
    let mut world = schedule::world(&mut rng);
    world.boxes.truncate(2);
    for b in &mut world.boxes {
        b.on = true;
        b.conflict_if_already = false;
    }
    world.hosts = vec![
        schedule::HostSpec {
            name: "kvm00".into(),
            target: 0,
            reach: Reach::Inventory,
            levels: vec![vec![schedule::bmc(0)]],
        },
        schedule::HostSpec {
            name: "kvm01".into(),
            target: 1,
            reach: Reach::Inventory,
            levels: vec![vec![schedule::bmc(1)]],
        },
    ];
    world.engines = 2;
    world.policy.confirmations = 2;
    world.policy.off_hold = Duration::from_secs(2);
    world
}

fn fence(at_ms: u64, host: usize) -> Step {
    Step {
        at_ms,
        action: Action::Op {
            engine: 0,
            host,
            op: Op::Fence,
            door: fencegate_core::proof::Door::Cli,
            force: true,
        },
    }
}

/// The checker is not blind: a BMC that lies "off" for longer than any hold (which the
/// engine cannot tell from a real off) is reported as a false proof, and the schedule
/// shrinks to the lie and the fence.
#[test]
fn a_lie_longer_than_the_hold_is_caught_and_shrunk() {
    let base = journal_base();
    let world = small_world();
    let steps = vec![
        Step {
            at_ms: 0,
            action: Action::Fault {
                target: 0,
                fault: Fault::LyingOff(60_000),
            },
        },
        Step {
            at_ms: 10,
            action: Action::ClockStep(-5_000),
        },
        Step {
            at_ms: 20,
            action: Action::Fault {
                target: 1,
                fault: Fault::Calls(CallFault::Busy, 2),
            },
        },
        fence(100, 0),
        fence(200, 1),
    ];
    let report = run(&world, &steps, &base);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.starts_with("verified-off:")),
        "a lie past the hold went unnoticed: {:?}",
        report.violations
    );
    let minimal = shrink(&world, steps.clone(), &base);
    assert_eq!(minimal, vec![steps[0].clone(), steps[3].clone()]);
}

/// Without the lie, the same schedule is clean: the violation above is the lie's.
#[test]
fn the_same_schedule_without_the_lie_is_clean() {
    let base = journal_base();
    let world = small_world();
    let report = run(&world, &[fence(100, 0), fence(200, 1)], &base);
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    assert!(
        report
            .trace
            .iter()
            .any(|l| l.contains("verdict power_verified_off")),
        "the fence should have been proven: {:#?}",
        report.trace
    );
}

/// A hand-written history for the `lock` check: box 0 behind `kvm00` (a BMC, and a Redfish
/// service as its second level) and behind `relay00`, a relay to the same BMC.
struct LockHistory {
    world: World,
    observed: campaign::observed::Observed,
    log: Vec<campaign::sim::Entry>,
    seq: u64,
    t0: tokio::time::Instant,
}

impl LockHistory {
    fn new() -> Self {
        let mut world = small_world();
        world.boxes.truncate(1);
        world.hosts = vec![
            schedule::HostSpec {
                name: "kvm00".into(),
                target: 0,
                reach: Reach::Inventory,
                levels: vec![vec![schedule::bmc(0)], vec![schedule::second(0)]],
            },
            schedule::HostSpec {
                name: "relay00".into(),
                target: 0,
                reach: Reach::Relay,
                levels: vec![vec![schedule::relay(0)]],
            },
        ];
        LockHistory {
            world,
            observed: Default::default(),
            log: Vec::new(),
            seq: 0,
            t0: tokio::time::Instant::now(),
        }
    }

    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Process `process` begins operation `id` on name `host` (a fence sets a lock).
    fn begin(&mut self, id: &str, host: usize, op: fencegate_core::Operation, process: usize) {
        use fencegate_core::journal::{Begin, Claim};
        let seq = self.next();
        let name = self.world.hosts[host].name.clone();
        self.observed.begins.push(campaign::observed::BeginSeen {
            seq,
            at: self.t0,
            process,
            claim: Claim {
                request_id: id.into(),
                host: name.clone(),
                operation: op,
                requester: String::new(),
                reason: String::new(),
                target: format!("target-of-{name}"),
                door: fencegate_core::proof::Door::Cli,
                lock_keys: Vec::new(),
                identity_endpoints: Vec::new(),
                storm: None,
                tolerance: Duration::ZERO,
                lease: Duration::from_secs(60),
                sets_lock: op == fencegate_core::Operation::Fence,
                blocked_by_lock: false,
            },
            begin: Begin::Started {
                confirms: None,
                read_only: None,
            },
        });
    }

    /// Box 0 answers a reading through `address` to `process`.
    fn read(&mut self, address: &str, process: usize) {
        let seq = self.next();
        self.entry(
            address,
            process,
            seq,
            seq,
            campaign::sim::Answer::Read(fencegate_driver::PowerState::Off),
        );
    }

    /// Box 0 powers on through `address`, as `process` asked at `asked`.
    fn on(&mut self, address: &str, process: usize, asked: u64) {
        let seq = self.next();
        self.entry(
            address,
            process,
            seq,
            asked,
            campaign::sim::Answer::Command(fencegate_driver::Action::On, true),
        );
    }

    fn entry(
        &mut self,
        address: &str,
        process: usize,
        seq: u64,
        asked: u64,
        answer: campaign::sim::Answer,
    ) {
        let truth = match answer {
            campaign::sim::Answer::Command(fencegate_driver::Action::On, _) => Truth::On,
            _ => Truth::Off,
        };
        self.log.push(campaign::sim::Entry {
            seq,
            asked,
            at: self.t0,
            process,
            endpoint: address.into(),
            answer,
            truth,
        });
    }

    /// The journal is shown `address`'s identity (first use remembers it).
    fn shown(&mut self, address: &str) {
        let seq = self.next();
        self.observed
            .identities
            .push(campaign::observed::IdentityShown {
                seq,
                endpoint: format!("sim|{address}"),
                facts: vec![campaign::run::fact_for(address, 0)],
            });
    }

    fn violations(&self) -> Vec<String> {
        let logs = vec![self.log.clone()];
        let facts = campaign::check::Facts {
            world: &self.world,
            t0: self.t0,
            boxes: &[],
            logs: &logs,
            observed: &self.observed,
            calls: &[],
            crashes: &[],
            clock: &[],
            journal: Path::new("unused"),
            targets: self
                .world
                .hosts
                .iter()
                .map(|h| format!("target-of-{}", h.name))
                .collect(),
        };
        let mut v = Vec::new();
        campaign::check::locks(&facts, &mut v);
        v
    }
}

/// The `lock` check is neither blind nor stricter than what the journal can know: a relay's
/// fence ties box 0 to itself once its device is answered, and from then on a power-on
/// through the BMC is caught, but not before; a power-on through the fence's own keys is
/// caught at once; a power-on sent before the tie is not blamed.
#[test]
fn the_lock_check_follows_what_the_journal_can_know() {
    use fencegate_core::Operation::{Fence, On};
    let mut h = LockHistory::new();
    h.begin("fence-relay", 1, Fence, 0);
    h.begin("on-kvm", 0, On, 1);
    h.read(&schedule::bmc(0), 1);
    let sent_early = h.seq;
    h.on(&schedule::bmc(0), 1, sent_early);
    assert!(h.violations().is_empty(), "{:?}", h.violations());
    // The fence's device is answered: box 0's GUID is locked from now on.
    h.read(&schedule::relay(0), 0);
    h.on(&schedule::bmc(0), 1, sent_early);
    assert!(
        h.violations().is_empty(),
        "an On sent before the tie is blamed: {:?}",
        h.violations()
    );
    let asked = h.next();
    h.on(&schedule::bmc(0), 1, asked);
    let v = h.violations();
    assert!(
        v.len() == 1 && v[0].contains("its device presented"),
        "{v:?}"
    );
    // Through the second channel: its own identity is not locked, but the BMC of the same
    // host answered during the operation, so the box is known.
    let asked = h.next();
    h.on(&schedule::second(0), 1, asked);
    assert_eq!(h.violations().len(), 2, "{:?}", h.violations());

    // Through the relay itself: by key.
    let mut h = LockHistory::new();
    h.begin("fence-relay", 1, Fence, 0);
    let asked = h.next();
    h.on(&schedule::relay(0), 1, asked);
    assert!(h.violations()[0].contains("by key"), "{:?}", h.violations());
}

/// The identity memory is modelled as the journal promises: what a fence's endpoint
/// remembers when it begins is locked; an address whose box another address claimed first
/// remembers nothing, so a fence through it locks nothing at its begin.
#[test]
fn the_lock_check_models_the_identity_memory() {
    use fencegate_core::Operation::{Fence, On};
    let mut h = LockHistory::new();
    h.shown(&schedule::relay(0));
    h.begin("fence-relay", 1, Fence, 0);
    h.begin("on-kvm", 0, On, 1);
    let asked = h.next();
    h.on(&schedule::bmc(0), 1, asked);
    let v = h.violations();
    assert!(v.len() == 1 && v[0].contains("remembered"), "{v:?}");

    let mut h = LockHistory::new();
    h.shown(&schedule::bmc(0));
    h.shown(&schedule::relay(0));
    h.begin("fence-relay", 1, Fence, 0);
    h.begin("on-kvm", 0, On, 1);
    let asked = h.next();
    h.on(&schedule::bmc(0), 1, asked);
    assert!(h.violations().is_empty(), "{:?}", h.violations());
    // The second channel's own identity is another one: nothing links it to the fence.
    let asked = h.next();
    h.on(&schedule::second(0), 1, asked);
    assert!(h.violations().is_empty(), "{:?}", h.violations());
}

/// A hand-written history for the `verified-off` check: box 0 behind `kvm00` (a BMC) and
/// `relay00` (a relay to it), hold 2 s. Process 0 powers it off through the BMC at 100 ms
/// and records `power_verified_off` at 2,050 ms, after readings that all said Off; someone
/// switches the box on at 600 ms and it is off again at 900 ms.
fn verified_off_violations(
    off_again_by_command: bool,
    reading_at_700: Option<Truth>,
) -> Vec<String> {
    use campaign::observed::{BeginSeen, FinishSeen, Observed};
    use campaign::sim::{Answer, Entry, Seq, SimBox};
    use fencegate_core::journal::{Begin, Claim};
    use fencegate_driver::{Action, PowerState};
    let mut world = small_world();
    world.boxes.truncate(1);
    world.hosts = vec![
        schedule::HostSpec {
            name: "kvm00".into(),
            target: 0,
            reach: Reach::Inventory,
            levels: vec![vec![schedule::bmc(0)]],
        },
        schedule::HostSpec {
            name: "relay00".into(),
            target: 0,
            reach: Reach::Relay,
            levels: vec![vec![schedule::relay(0)]],
        },
    ];
    let t0 = tokio::time::Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let b = SimBox::with_history(
        0,
        Seq::new(),
        &[
            (at(0), Truth::On),
            (at(100), Truth::Off),
            (at(600), Truth::On),
            (at(900), Truth::Off),
        ],
    );
    let mut log = Vec::new();
    let mut seq = 1;
    let mut entry = |ms: u64, process: usize, address: String, answer: Answer, truth: Truth| {
        seq += 1;
        log.push(Entry {
            seq,
            asked: seq,
            at: at(ms),
            process,
            endpoint: address,
            answer,
            truth,
        });
    };
    let off = Answer::Read(PowerState::Off);
    entry(
        50,
        0,
        schedule::bmc(0),
        Answer::Read(PowerState::On),
        Truth::On,
    );
    entry(
        100,
        0,
        schedule::bmc(0),
        Answer::Command(Action::Off, true),
        Truth::Off,
    );
    for ms in [150, 500, 1000, 1500, 2000, 2050] {
        entry(ms, 0, schedule::bmc(0), off.clone(), Truth::Off);
    }
    if let Some(truth) = reading_at_700 {
        entry(700, 0, schedule::bmc(0), off.clone(), truth);
    }
    if off_again_by_command {
        // Another process's fence through the relay, which nothing ties to kvm00.
        entry(
            900,
            1,
            schedule::relay(0),
            Answer::Command(Action::Off, true),
            Truth::Off,
        );
    }
    log.sort_by_key(|e| e.at);
    for (i, e) in log.iter_mut().enumerate() {
        e.seq = i as u64 + 1;
        e.asked = e.seq;
    }
    let mut observed = Observed::default();
    observed.begins.push(BeginSeen {
        seq: 0,
        at: at(0),
        process: 0,
        claim: Claim {
            request_id: "fence-kvm00".into(),
            host: "kvm00".into(),
            operation: fencegate_core::Operation::Fence,
            requester: String::new(),
            reason: String::new(),
            target: "target-of-kvm00".into(),
            door: fencegate_core::proof::Door::Cli,
            lock_keys: Vec::new(),
            identity_endpoints: Vec::new(),
            storm: None,
            tolerance: Duration::ZERO,
            lease: Duration::from_secs(60),
            sets_lock: true,
            blocked_by_lock: false,
        },
        begin: Begin::Started {
            confirms: None,
            read_only: None,
        },
    });
    observed.finishes.push(FinishSeen {
        seq: 1000,
        at: at(2050),
        process: 0,
        request_id: "fence-kvm00".into(),
        verdict: fencegate_core::proof::Verdict::PowerVerifiedOff,
        success: true,
    });
    let boxes = [b];
    let logs = vec![log];
    let facts = campaign::check::Facts {
        world: &world,
        t0,
        boxes: &boxes,
        logs: &logs,
        observed: &observed,
        calls: &[],
        crashes: &[],
        clock: &[],
        journal: Path::new("unused"),
        targets: world
            .hosts
            .iter()
            .map(|h| format!("target-of-{}", h.name))
            .collect(),
    };
    let mut v = Vec::new();
    campaign::check::verified_off(&facts, &mut v);
    v
}

/// The `verified-off` check judges the hold after the box's last command, from any process:
/// a box on between two readings and powered off again by another process's command is off
/// because of that command, so a proof whose hold after it is off is not blamed; the same
/// moment on with nothing switching it off but the hand that switched it on is a false
/// proof; and a reading within the hold that said Off while the box was on is one too.
#[test]
fn the_verified_off_check_holds_the_hold_after_the_last_command() {
    let v = verified_off_violations(true, None);
    assert!(
        v.is_empty(),
        "a blip undone by a later command is blamed: {v:?}"
    );
    let v = verified_off_violations(false, None);
    assert!(
        v.len() == 1 && v[0].contains("not off throughout the hold after the last command"),
        "a blip after the last command went unnoticed: {v:?}"
    );
    let v = verified_off_violations(true, Some(Truth::Off));
    assert!(v.is_empty(), "a true reading is blamed: {v:?}");
    let v = verified_off_violations(true, Some(Truth::On));
    assert!(
        v.len() == 1 && v[0].contains("said Off while the box was On"),
        "a false reading within the hold went unnoticed: {v:?}"
    );
}
