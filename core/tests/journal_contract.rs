//! The [`Journal`] contract, written once and run against every backend.
//!
//! The guards are one pure function (`guards::decide`); what a backend owes the engine is
//! everything around it: records in the order they were asked for and durable when promised,
//! one verdict per operation, the join of an operation in flight across processes, power-on
//! locks per door and by box, identities remembered, changed or claimed elsewhere, abandoned
//! operations handed over only when their owner is dead and only once, storm refusals on
//! record, re-confirmation within the tolerance window, and windows that a wall-clock step
//! back never opens. Each rule is one async function over a [`Store`] (a place several
//! journal instances, standing for several processes, share), and the `suite!` lines at the
//! bottom run every function against every backend.
//!
//! Adding a backend is one line: `suite!(name, Backend::clocked(|dir, clock| …))`, where the
//! closure opens an instance on the store named by `dir` (a backend without files may take the
//! directory as its namespace) that reads time from `clock`.
//!
//! Time: every instance reads a [`Clock`]. Windows are tested with instances whose clocks the
//! test sets and steps ([`ManualClock`]), placed relative to what the instance under test
//! reads, so the same test holds for a backend on the system clock (the writer-thread
//! SQLite journal) and for one on a manual clock.

mod support;

use fencegate_core::journal::{
    Begin, Claim, DeviceMeta, IdentitySeen, Journal, KnownIdentity, PowerLock, Trusted,
};
use fencegate_core::proof::Door;
use fencegate_core::time::{Clock, Moment, SystemClock, Timestamp};
use fencegate_core::{Event, Operation, Proof, SqliteJournal, Verdict};
use fencegate_driver::{Action, IdentityFact, PowerState};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::clock::ManualClock;

/// Opens an instance on the store in a directory, reading time from a clock.
type OpenAt = fn(&Path, Arc<dyn Clock>) -> Arc<dyn Journal>;

/// A backend whose instances read a clock of their own: that clock, and how such an
/// instance is opened on the store in a directory.
#[derive(Clone, Copy)]
struct OwnClock {
    clock: fn() -> Arc<dyn Clock>,
    open: fn(&Path) -> Arc<dyn Journal>,
}

/// How the suite opens a backend's instances.
#[derive(Clone, Copy)]
struct Backend {
    /// An instance on the store in `dir` that reads time from `clock`: another process on
    /// the same store, whose clock the test decides.
    open_at: OpenAt,
    /// Set when the backend's instances read a clock of their own rather than one they are
    /// given. Unset: the suite gives each store one [`ManualClock`] and opens every instance
    /// with `open_at`.
    own: Option<OwnClock>,
}

impl Backend {
    /// A backend that reads whatever clock it is given.
    fn clocked(open_at: OpenAt) -> Self {
        Backend { open_at, own: None }
    }
}

/// The inline SQLite journal: statements run on the caller's thread.
fn sqlite_inline(dir: &Path, clock: Arc<dyn Clock>) -> Arc<dyn Journal> {
    Arc::new(SqliteJournal::open_inline(dir, clock).unwrap())
}

/// The production SQLite journal: a writer thread with group commit, on the system clock.
/// Its constructor takes no clock, so the other processes with clocks of their own that the
/// window tests need are inline instances on the same file: the same statements and guards,
/// with time the test decides.
fn sqlite_thread() -> Backend {
    Backend {
        open_at: sqlite_inline,
        own: Some(OwnClock {
            clock: || Arc::new(SystemClock),
            open: |dir| Arc::new(SqliteJournal::open(dir).unwrap()),
        }),
    }
}

/// One shared journal store, and the clock its instances read.
struct Store {
    backend: Backend,
    clock: Arc<dyn Clock>,
    dir: tempfile::TempDir,
}

impl Store {
    fn new(backend: Backend) -> Self {
        let clock = match backend.own {
            Some(own) => (own.clock)(),
            None => Arc::new(ManualClock::new()),
        };
        Store {
            backend,
            clock,
            dir: support::journal::scratch_dir(),
        }
    }

    /// A new instance on this store, as another process would open it.
    fn journal(&self) -> Arc<dyn Journal> {
        match self.backend.own {
            Some(own) => (own.open)(self.dir.path()),
            None => (self.backend.open_at)(self.dir.path(), Arc::clone(&self.clock)),
        }
    }

    /// A new instance on this store reading time from `clock`.
    fn at(&self, clock: &Arc<ManualClock>) -> Arc<dyn Journal> {
        (self.backend.open_at)(self.dir.path(), Arc::clone(clock) as Arc<dyn Clock>)
    }

    /// What the instances of [`Store::journal`] read as now.
    fn now(&self) -> Moment {
        self.clock.now()
    }

    /// A manual clock placed relative to now: `wall_ms` on the wall clock, `up_ms` on the
    /// boot clock (on this boot, or on `boot` when given).
    fn clock_at(&self, wall_ms: i64, up_ms: i64, boot: Option<&str>) -> Arc<ManualClock> {
        let now = self.now();
        Arc::new(ManualClock::at(Moment {
            wall: Timestamp(now.wall.0 + wall_ms),
            boot: boot.map_or(now.boot, str::to_owned),
            up_ms: match boot {
                Some(_) => up_ms,
                None => now.up_ms + up_ms,
            },
        }))
    }
}

const MINUTE: i64 = 60_000;

fn claim(id: &str, host: &str, operation: Operation) -> Claim {
    Claim {
        request_id: id.into(),
        host: host.into(),
        operation,
        requester: "contract".into(),
        reason: "contract test".into(),
        target: format!("target-of-{host}"),
        door: Door::Cli,
        lock_keys: vec![format!("box-of-{host}")],
        identity_endpoints: Vec::new(),
        storm: None,
        tolerance: Duration::ZERO,
        lease: Duration::from_secs(600),
        sets_lock: operation == Operation::Fence,
        blocked_by_lock: matches!(operation, Operation::On | Operation::Reboot),
    }
}

/// A fence guarded by the storm guard: refused when `limit` other hosts were fenced within
/// ten minutes.
fn guarded(id: &str, host: &str, limit: u32) -> Claim {
    Claim {
        storm: Some((limit, Duration::from_secs(600))),
        ..claim(id, host, Operation::Fence)
    }
}

fn verdict(claim: &Claim, verdict: Verdict) -> Proof {
    Proof {
        request_id: claim.request_id.clone(),
        host: claim.host.clone(),
        operation: claim.operation,
        requester: claim.requester.clone(),
        reason: claim.reason.clone(),
        started_at: Timestamp(0),
        finished_at: Timestamp(0),
        verdict,
        success: matches!(verdict, Verdict::PowerVerifiedOff | Verdict::Done),
        detail: format!("{} by the contract test", verdict.as_str()),
        levels: Vec::new(),
        duration_ms: 0,
        confirms: None,
        target: Some(claim.target.clone()),
        inventory: None,
    }
}

fn started(begin: &Begin) -> bool {
    matches!(begin, Begin::Started { .. })
}

fn confirms(begin: Begin) -> Option<String> {
    match begin {
        Begin::Started { confirms, .. } => confirms,
        other => panic!("not started: {other:?}"),
    }
}

/// Begin `claim` and expect it to start.
async fn start(journal: &dyn Journal, claim: &Claim) {
    let begun = journal.begin(claim.clone()).await.unwrap();
    assert!(started(&begun), "{}: {begun:?}", claim.request_id);
}

/// Begin and finish a fence of `host` with `v`.
async fn fenced(journal: &dyn Journal, id: &str, host: &str, v: Verdict) -> Claim {
    let c = claim(id, host, Operation::Fence);
    start(journal, &c).await;
    journal.finish(&verdict(&c, v)).await.unwrap();
    c
}

fn meta(device: &str) -> DeviceMeta {
    DeviceMeta {
        level: 1,
        device: device.into(),
        driver: "scripted".into(),
        endpoint: format!("scripted://{device}"),
    }
}

fn reading(ms: i64, state: PowerState) -> Event {
    Event::Reading {
        at: Timestamp(ms),
        state,
    }
}

fn guid(value: &str) -> IdentityFact {
    IdentityFact::authenticated("ipmi-guid", value)
}

fn facts(known: &KnownIdentity) -> Vec<String> {
    known.facts.iter().map(|f| f.value.clone()).collect()
}

/// Run `work` to completion on a thread of its own with its own runtime: a process.
fn on_thread<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    work: impl Future<Output = T> + Send + 'scope,
) -> impl FnOnce() -> T + 'scope {
    let handle = scope.spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(work)
    });
    move || handle.join().unwrap()
}

// --- Records: order, durability, one verdict ------------------------------------------------

/// Events are kept in the order `record` was called, whether or not each call was awaited,
/// and what was recorded survives its process: the next one takes the open operation over
/// with every event in order.
async fn records_keep_call_order_and_outlive_their_process(s: Store) {
    let one = s.journal();
    let c = claim("order-1", "h1", Operation::Fence);
    start(&*one, &c).await;
    let bmc = meta("bmc");
    let events = vec![
        reading(1, PowerState::On),
        Event::CommandIntent {
            at: Timestamp(2),
            action: Action::Off,
        },
        Event::CommandAccepted {
            at: Timestamp(3),
            action: Action::Off,
            detail: "accepted".into(),
        },
        reading(4, PowerState::PoweringOff),
        reading(5, PowerState::Off),
    ];
    // Only the last call is awaited: the earlier ones are enqueued when called.
    let (last, earlier) = events.split_last().unwrap();
    for e in earlier {
        drop(one.record(&c.request_id, &bmc, e));
    }
    one.record(&c.request_id, &bmc, last).await.unwrap();
    drop(one);

    let next = s.journal();
    let taken = next.take_abandoned().await.unwrap();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(taken[0].request_id, c.request_id);
    assert_eq!(taken[0].host, "h1");
    assert_eq!(taken[0].operation, Operation::Fence);
    let got: Vec<Event> = taken[0].events.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(got, events);
    assert!(taken[0].events.iter().all(|(m, _)| *m == bmc));
}

/// A finished record is durable when `finish` resolves: another process reads it back at
/// once, in the history, newest first.
async fn a_verdict_is_durable_when_finish_resolves(s: Store) {
    let one = s.journal();
    let first = fenced(&*one, "durable-1", "h1", Verdict::PowerVerifiedOff).await;
    let second = fenced(&*one, "durable-2", "h1", Verdict::Failed).await;
    let other = s.journal();
    let proof = other.proof(&first.request_id).await.unwrap().unwrap();
    assert_eq!(proof.verdict, Verdict::PowerVerifiedOff);
    assert_eq!(proof.host, "h1");
    let history = other.history(Some("h1"), 10).await.unwrap();
    let ids: Vec<&str> = history.iter().map(|p| p.request_id.as_str()).collect();
    assert_eq!(ids, [second.request_id.as_str(), first.request_id.as_str()]);
    assert_eq!(other.history(Some("h1"), 1).await.unwrap().len(), 1);
    assert!(other.history(Some("h2"), 10).await.unwrap().is_empty());
    // An operation still open has no record yet.
    let open = claim("durable-3", "h2", Operation::Off);
    start(&*one, &open).await;
    assert_eq!(other.proof(&open.request_id).await.unwrap(), None);
    assert_eq!(other.history(None, 10).await.unwrap().len(), 2);
}

/// An operation has one verdict: a second `finish`, from the same process or another, is an
/// error and changes nothing; so is a verdict for an operation never begun.
async fn one_verdict_per_operation(s: Store) {
    let one = s.journal();
    let c = fenced(&*one, "once-1", "h1", Verdict::Failed).await;
    assert!(
        one.finish(&verdict(&c, Verdict::PowerVerifiedOff))
            .await
            .is_err()
    );
    let other = s.journal();
    assert!(
        other
            .finish(&verdict(&c, Verdict::PowerVerifiedOff))
            .await
            .is_err()
    );
    let kept = other.proof(&c.request_id).await.unwrap().unwrap();
    assert_eq!(kept.verdict, Verdict::Failed);
    let never = claim("once-never", "h1", Operation::Fence);
    assert!(
        other
            .finish(&verdict(&never, Verdict::PowerVerifiedOff))
            .await
            .is_err()
    );
    assert_eq!(other.proof(&never.request_id).await.unwrap(), None);
}

/// A refusal recorded before any begin is on record like any verdict, and is final.
async fn refusals_are_on_record(s: Store) {
    let one = s.journal();
    let c = claim("refused-1", "h1", Operation::On);
    one.refused(&verdict(&c, Verdict::Refused)).await.unwrap();
    let other = s.journal();
    let p = other.proof(&c.request_id).await.unwrap().unwrap();
    assert_eq!(p.verdict, Verdict::Refused);
    assert!(!p.success);
    assert_eq!(other.history(Some("h1"), 10).await.unwrap().len(), 1);
    assert!(other.finish(&verdict(&c, Verdict::Done)).await.is_err());
    // Nothing is open: the host is free for the next operation.
    start(&*other, &claim("refused-2", "h1", Operation::On)).await;
}

// --- Single flight across processes ---------------------------------------------------------

/// An operation in flight in one process is joined by another asking for the same host, or
/// for another name reaching one of its boxes; once it has its verdict the host is free.
async fn an_operation_in_flight_is_joined_across_processes(s: Store) {
    let (one, two) = (s.journal(), s.journal());
    let fence = claim("flight-1", "h1", Operation::Fence);
    start(&*one, &fence).await;
    let expect = Begin::InFlight {
        request_id: fence.request_id.clone(),
        operation: Operation::Fence,
        target: fence.target.clone(),
    };
    assert_eq!(
        two.begin(claim("flight-2", "h1", Operation::Off))
            .await
            .unwrap(),
        expect
    );
    // Another name for the same box.
    let alias = Claim {
        lock_keys: fence.lock_keys.clone(),
        ..claim("flight-3", "adhoc:h1", Operation::On)
    };
    assert_eq!(two.begin(alias.clone()).await.unwrap(), expect);
    // Unrelated hosts are not held up.
    start(&*two, &claim("flight-4", "h2", Operation::Off)).await;
    // Nothing was recorded for the requests that joined.
    assert_eq!(two.proof("flight-2").await.unwrap(), None);
    one.finish(&verdict(&fence, Verdict::PowerVerifiedOff))
        .await
        .unwrap();
    start(&*two, &claim("flight-5", "h1", Operation::Off)).await;
}

/// Many processes at once: for each host exactly one begin starts and every other one joins
/// it, and every verdict is kept.
async fn concurrent_processes_start_one_operation_per_host_and_lose_nothing(s: Store) {
    const PROCESSES: usize = 4;
    const HOSTS: usize = 8;
    let journals: Vec<Arc<dyn Journal>> = (0..PROCESSES).map(|_| s.journal()).collect();
    let results: Vec<Vec<(String, Begin)>> = std::thread::scope(|scope| {
        let runs: Vec<_> = journals
            .iter()
            .enumerate()
            .map(|(p, journal)| {
                on_thread(scope, async move {
                    let mut out = Vec::new();
                    for h in 0..HOSTS {
                        let c = claim(&format!("race-{p}-{h}"), &format!("h{h}"), Operation::Off);
                        out.push((c.request_id.clone(), journal.begin(c).await.unwrap()));
                    }
                    out
                })
            })
            .collect();
        runs.into_iter().map(|join| join()).collect()
    });
    for h in 0..HOSTS {
        let begins: Vec<&(String, Begin)> = results.iter().map(|r| &r[h]).collect();
        let winners: Vec<&String> = begins
            .iter()
            .filter(|(_, b)| started(b))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(winners.len(), 1, "host h{h}: {begins:?}");
        for (_, b) in &begins {
            assert!(
                started(b)
                    || matches!(b, Begin::InFlight { request_id, .. } if request_id == winners[0]),
                "host h{h}: {b:?}"
            );
        }
    }
    // Every winner finishes from its own process, all at once.
    std::thread::scope(|scope| {
        let runs: Vec<_> = results
            .iter()
            .zip(&journals)
            .map(|(mine, journal)| {
                on_thread(scope, async move {
                    for (id, b) in mine {
                        if started(b) {
                            let h = id.rsplit('-').next().unwrap();
                            let c = claim(id, &format!("h{h}"), Operation::Off);
                            journal
                                .finish(&verdict(&c, Verdict::PowerVerifiedOff))
                                .await
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        runs.into_iter().for_each(|join| join());
    });
    let history = s.journal().history(None, 1000).await.unwrap();
    assert_eq!(history.len(), HOSTS, "{history:#?}");
    assert!(
        history
            .iter()
            .all(|p| p.verdict == Verdict::PowerVerifiedOff)
    );
}

// --- Abandoned operations -------------------------------------------------------------------

/// An open operation is handed over for reconciliation only once its owner is dead, and to
/// exactly one process; a dead owner's operation blocks nothing.
async fn abandoned_operations_are_taken_only_from_dead_owners_and_only_once(s: Store) {
    let owner = s.journal();
    let c = claim("dead-1", "h1", Operation::Fence);
    start(&*owner, &c).await;
    let (one, two) = (s.journal(), s.journal());
    assert!(
        one.take_abandoned().await.unwrap().is_empty(),
        "owner alive"
    );
    assert!(
        matches!(
            one.begin(claim("dead-2", "h1", Operation::Fence)).await.unwrap(),
            Begin::InFlight { request_id, .. } if request_id == c.request_id
        ),
        "a live owner is joined"
    );
    drop(owner);
    // A dead owner's record blocks nothing.
    let next = claim("dead-3", "h1", Operation::Off);
    start(&*two, &next).await;
    let taken = one.take_abandoned().await.unwrap();
    let ids: Vec<&str> = taken.iter().map(|a| a.request_id.as_str()).collect();
    assert_eq!(ids, [c.request_id.as_str()], "only the dead owner's");
    assert!(two.take_abandoned().await.unwrap().is_empty(), "taken once");
    assert!(s.journal().take_abandoned().await.unwrap().is_empty());
    // The taker closes it; its verdict is the one kept.
    one.finish(&verdict(&c, Verdict::Failed)).await.unwrap();
    assert_eq!(
        two.proof(&c.request_id).await.unwrap().unwrap().verdict,
        Verdict::Failed
    );
}

// --- Power-on locks -------------------------------------------------------------------------

/// A fence locks the host against power-on, one lock per door, and locks its boxes under any
/// name; lifting one door's lock leaves the others; a door that joined a fence shares its
/// lock; the boxes a fence proved (by identity) are locked with it.
async fn power_on_locks_hold_per_door_and_by_box(s: Store) {
    let (one, two) = (s.journal(), s.journal());
    let cli = fenced(&*one, "lock-1", "h1", Verdict::PowerVerifiedOff).await;
    let hook = Claim {
        door: Door::Opennebula,
        requester: "oneadmin".into(),
        ..claim("lock-2", "h1", Operation::Fence)
    };
    start(&*two, &hook).await;
    two.finish(&verdict(&hook, Verdict::PowerVerifiedOff))
        .await
        .unwrap();
    let g = guid("6f1c2d3e-4a5b-4c6d-8e7f-0a1b2c3d4e5f");
    one.lock_identities(&cli.request_id, std::slice::from_ref(&g))
        .await
        .unwrap();

    let locks = two.power_locks("h1").await.unwrap();
    let doors: Vec<Option<Door>> = locks.iter().map(|l| l.door).collect();
    assert_eq!(doors, [Some(Door::Cli), Some(Door::Opennebula)]);
    assert_eq!(locks[0].request_id, cli.request_id);
    assert_eq!(locks[1].requester, "oneadmin");
    assert!(locks.iter().all(|l| l.host == "h1"));

    let locked = |b: Begin| matches!(b, Begin::Locked(PowerLock { host, .. }) if host == "h1");
    assert!(locked(
        two.begin(claim("on-1", "h1", Operation::On)).await.unwrap()
    ));
    assert!(locked(
        two.begin(claim("on-2", "h1", Operation::Reboot))
            .await
            .unwrap()
    ));
    // Another name for the fenced box.
    let alias = Claim {
        lock_keys: cli.lock_keys.clone(),
        ..claim("on-3", "adhoc:h1", Operation::On)
    };
    assert!(locked(two.begin(alias.clone()).await.unwrap()));
    assert!(
        two.identity_locked(std::slice::from_ref(&g))
            .await
            .unwrap()
            .is_some()
    );
    // The lock guards power-on only.
    start(&*two, &claim("off-1", "h1", Operation::Off)).await;
    two.finish(&verdict(
        &claim("off-1", "h1", Operation::Off),
        Verdict::PowerVerifiedOff,
    ))
    .await
    .unwrap();

    // Lifting the CLI's lock leaves OpenNebula's: still locked, by name and by box.
    let lifted = one.clear_power_locks("h1", Some(Door::Cli)).await.unwrap();
    assert_eq!(lifted.len(), 1);
    assert_eq!(lifted[0].door, Some(Door::Cli));
    assert!(locked(
        two.begin(claim("on-4", "h1", Operation::On)).await.unwrap()
    ));
    // A door that joined OpenNebula's fence shares its lock.
    two.share_lock("h1", Door::Agent, &hook.request_id, "pacemaker")
        .await
        .unwrap();
    let doors: Vec<Option<Door>> = one
        .power_locks("h1")
        .await
        .unwrap()
        .iter()
        .map(|l| l.door)
        .collect();
    assert_eq!(doors, [Some(Door::Opennebula), Some(Door::Agent)]);
    two.clear_power_locks("h1", Some(Door::Opennebula))
        .await
        .unwrap();
    assert!(locked(
        two.begin(claim("on-5", "h1", Operation::On)).await.unwrap()
    ));

    // Every lock lifted: power-on goes ahead under any name, and the box is free.
    let rest = one.clear_power_locks("h1", None).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(two.power_locks("h1").await.unwrap().is_empty());
    assert_eq!(
        two.identity_locked(std::slice::from_ref(&g)).await.unwrap(),
        None
    );
    start(&*two, &alias).await;
    two.finish(&verdict(&alias, Verdict::Done)).await.unwrap();
    start(&*one, &claim("on-6", "h1", Operation::On)).await;
}

/// Only a fence sets a lock, and a lock on one host leaves the others alone.
async fn only_a_fence_locks_and_only_its_own_host(s: Store) {
    let one = s.journal();
    let off = claim("only-1", "h1", Operation::Off);
    start(&*one, &off).await;
    one.finish(&verdict(&off, Verdict::PowerVerifiedOff))
        .await
        .unwrap();
    assert!(one.power_locks("h1").await.unwrap().is_empty());
    start(&*one, &claim("only-2", "h1", Operation::On)).await;
    fenced(&*one, "only-3", "h2", Verdict::PowerVerifiedOff).await;
    start(&*one, &claim("only-4", "h3", Operation::On)).await;
    assert!(one.power_locks("h3").await.unwrap().is_empty());
    assert_eq!(one.power_locks("h2").await.unwrap().len(), 1);
}

// --- Identities -----------------------------------------------------------------------------

/// An endpoint's identity is remembered at first use, matched, found changed, and refused
/// when another endpoint claims the same box; `trust` accepts a change, never an empty one
/// nor a box held elsewhere unless it moved; a pin claims its box for its endpoint.
async fn identities_are_remembered_changed_and_claimed_once(s: Store) {
    let (one, two) = (s.journal(), s.journal());
    let (g1, g2, g3) = (guid("g-one"), guid("g-two"), guid("g-three"));
    let e1 = "ipmi://10.0.0.1";
    let e2 = "ipmi://10.0.0.2";

    assert_eq!(
        one.identity_seen(e1, std::slice::from_ref(&g1))
            .await
            .unwrap(),
        IdentitySeen::FirstUse
    );
    // Remembered for every process.
    match two
        .identity_seen(e1, std::slice::from_ref(&g1))
        .await
        .unwrap()
    {
        IdentitySeen::Matches(k) => {
            assert_eq!(facts(&k), ["g-one"]);
            assert_eq!(k.accepted_by, None);
        }
        other => panic!("{other:?}"),
    }
    match two
        .identity_seen(e1, std::slice::from_ref(&g2))
        .await
        .unwrap()
    {
        IdentitySeen::Changed(k) => assert_eq!(facts(&k), ["g-one"]),
        other => panic!("{other:?}"),
    }
    // An endpoint that stops presenting its identity has changed too.
    assert!(matches!(
        two.identity_seen(e1, &[]).await.unwrap(),
        IdentitySeen::Changed(_)
    ));
    // The same box at a second address.
    assert_eq!(
        two.identity_seen(e2, std::slice::from_ref(&g1))
            .await
            .unwrap(),
        IdentitySeen::ClaimedElsewhere {
            endpoint: e1.into(),
            fact: g1.clone(),
        }
    );
    // A first contact without any identity remembers nothing.
    assert_eq!(
        one.identity_seen(e2, &[]).await.unwrap(),
        IdentitySeen::FirstUse
    );
    let known: Vec<String> = one
        .known_identities()
        .await
        .unwrap()
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(known, [e1]);

    // Trust.
    assert_eq!(
        one.trust_identity(e1, &[], "operator", false)
            .await
            .unwrap(),
        Trusted::Nothing
    );
    match one
        .trust_identity(e1, std::slice::from_ref(&g2), "operator", false)
        .await
        .unwrap()
    {
        Trusted::Accepted(Some(before)) => assert_eq!(facts(&before), ["g-one"]),
        other => panic!("{other:?}"),
    }
    match two
        .identity_seen(e1, std::slice::from_ref(&g2))
        .await
        .unwrap()
    {
        IdentitySeen::Matches(k) => assert_eq!(k.accepted_by.as_deref(), Some("operator")),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        two.trust_identity(e2, std::slice::from_ref(&g2), "operator", false)
            .await
            .unwrap(),
        Trusted::HeldElsewhere {
            endpoint: e1.into(),
            fact: g2.clone(),
        }
    );
    // The box really moved: the old address forgets it.
    assert_eq!(
        two.trust_identity(e2, std::slice::from_ref(&g2), "operator", true)
            .await
            .unwrap(),
        Trusted::Accepted(None)
    );
    assert!(matches!(
        one.identity_seen(e2, std::slice::from_ref(&g2))
            .await
            .unwrap(),
        IdentitySeen::Matches(_)
    ));
    assert_eq!(
        one.identity_seen(e1, std::slice::from_ref(&g3))
            .await
            .unwrap(),
        IdentitySeen::FirstUse,
        "the old address remembers nothing any more"
    );

    // A pin claims its box: the address that remembered it first is refused from then on.
    let e3 = "ipmi://10.0.0.3";
    one.pin_identity(e3, std::slice::from_ref(&g3))
        .await
        .unwrap();
    assert_eq!(
        two.identity_seen(e1, std::slice::from_ref(&g3))
            .await
            .unwrap(),
        IdentitySeen::ClaimedElsewhere {
            endpoint: e3.into(),
            fact: g3.clone(),
        }
    );
    let pinned: Vec<(String, Vec<String>)> = two
        .known_identities()
        .await
        .unwrap()
        .iter()
        .map(|(e, k)| (e.clone(), facts(k)))
        .filter(|(e, _)| e == e3)
        .collect();
    assert_eq!(pinned, [(e3.to_owned(), vec!["g-three".to_owned()])]);
}

// --- Tolerance ------------------------------------------------------------------------------

/// A verified-off proof of the same target within the tolerance window is re-confirmed,
/// named by the new operation; not one outside the window, of another target, with another
/// verdict, or followed by anything that may have powered the host on.
async fn a_recent_proof_of_the_same_target_is_reconfirmed(s: Store) {
    let journal = s.journal();
    let within = |id: &str, host: &str| Claim {
        tolerance: Duration::from_secs(60),
        ..claim(id, host, Operation::Fence)
    };
    let proof = fenced(&*journal, "tol-1", "h1", Verdict::PowerVerifiedOff).await;
    let again = within("tol-2", "h1");
    assert_eq!(
        confirms(journal.begin(again.clone()).await.unwrap()).as_deref(),
        Some(proof.request_id.as_str())
    );
    journal
        .finish(&verdict(&again, Verdict::PowerVerifiedOff))
        .await
        .unwrap();
    // The newest proof is the one named.
    assert_eq!(
        confirms(journal.begin(within("tol-3", "h1")).await.unwrap()).as_deref(),
        Some(again.request_id.as_str())
    );
    journal
        .finish(&verdict(&within("tol-3", "h1"), Verdict::Failed))
        .await
        .unwrap();
    // Another target is another proof's business.
    let other_target = Claim {
        target: "another-target".into(),
        ..within("tol-4", "h1")
    };
    assert_eq!(
        confirms(journal.begin(other_target.clone()).await.unwrap()),
        None
    );
    journal
        .finish(&verdict(&other_target, Verdict::Failed))
        .await
        .unwrap();
    // A failed fence proves nothing.
    fenced(&*journal, "tol-5", "h2", Verdict::Failed).await;
    assert_eq!(
        confirms(journal.begin(within("tol-6", "h2")).await.unwrap()),
        None
    );

    // A power-on since the proof ends re-confirmation.
    fenced(&*journal, "tol-7", "h3", Verdict::PowerVerifiedOff).await;
    journal.clear_power_locks("h3", None).await.unwrap();
    let on = claim("tol-8", "h3", Operation::On);
    start(&*journal, &on).await;
    journal.finish(&verdict(&on, Verdict::Done)).await.unwrap();
    assert_eq!(
        confirms(journal.begin(within("tol-9", "h3")).await.unwrap()),
        None
    );
    // A power-on refused by a lock powered nothing on.
    fenced(&*journal, "tol-10", "h4", Verdict::PowerVerifiedOff).await;
    journal
        .refused(&verdict(
            &claim("tol-11", "h4", Operation::On),
            Verdict::Refused,
        ))
        .await
        .unwrap();
    assert_eq!(
        confirms(journal.begin(within("tol-12", "h4")).await.unwrap()).as_deref(),
        Some("tol-10")
    );

    // Windows: a proof recorded by another process whose clock reads two minutes before
    // this one's (on this boot), and which the test then moves on.
    let clock = s.clock_at(-2 * MINUTE, -2 * MINUTE, None);
    let other = s.at(&clock);
    fenced(&*other, "tol-13", "h5", Verdict::PowerVerifiedOff).await;
    // By the clock that recorded it, the proof is fresh.
    let c = within("tol-14", "h5");
    assert_eq!(
        confirms(other.begin(c.clone()).await.unwrap()).as_deref(),
        Some("tol-13")
    );
    other.finish(&verdict(&c, Verdict::Failed)).await.unwrap();
    // By this process's clock it is two minutes old: outside a one-minute window, inside a
    // three-minute one.
    let c = within("tol-15", "h5");
    assert_eq!(confirms(journal.begin(c.clone()).await.unwrap()), None);
    journal.finish(&verdict(&c, Verdict::Failed)).await.unwrap();
    let wide = Claim {
        tolerance: Duration::from_secs(180),
        ..within("tol-16", "h5")
    };
    assert_eq!(
        confirms(journal.begin(wide.clone()).await.unwrap()).as_deref(),
        Some("tol-13")
    );
    journal
        .finish(&verdict(&wide, Verdict::Failed))
        .await
        .unwrap();
    // Two minutes later by the other process's clock, it is outside for that one too.
    clock.advance(Duration::from_secs(120));
    assert_eq!(
        confirms(other.begin(within("tol-17", "h5")).await.unwrap()),
        None
    );
}

// --- Storm guard ----------------------------------------------------------------------------

/// The storm guard refuses a fence when `limit` other hosts were fenced within its window;
/// the refusal is recorded and counts as a storm in progress. Forced fences count; refusals
/// of other kinds and re-confirmations do not.
async fn storm_refusals_are_recorded_and_keep_counting(s: Store) {
    let (one, two) = (s.journal(), s.journal());
    // A forced fence (no guard) still counts for the others.
    fenced(&*one, "storm-1", "h1", Verdict::PowerVerifiedOff).await;
    let refused = two.begin(guarded("storm-2", "h2", 1)).await.unwrap();
    let Begin::Refused { reason } = refused else {
        panic!("{refused:?}")
    };
    assert!(reason.contains("storm guard"), "{reason}");
    // On record, closed, for every process.
    let p = one.proof("storm-2").await.unwrap().unwrap();
    assert_eq!(p.verdict, Verdict::Refused);
    assert!(!p.success);
    assert_eq!(p.host, "h2");
    assert!(one.power_locks("h2").await.unwrap().is_empty(), "no lock");
    // h1 fenced and h2 refused as a storm: two others for h3.
    assert!(matches!(
        one.begin(guarded("storm-3", "h3", 2)).await.unwrap(),
        Begin::Refused { .. }
    ));
    // A host's own fences never count against it: two others, not three.
    start(&*two, &guarded("storm-4", "h1", 3)).await;
}

/// What does not count: another host's operation that is no fence, a fence refused by
/// anything but the storm guard, a re-confirmation, and a fence outside the window.
async fn the_storm_guard_counts_only_new_fences_within_its_window(s: Store) {
    let journal = s.journal();
    // Eleven minutes ago by this boot's clock: outside a ten-minute window.
    let past = s.at(&s.clock_at(-11 * MINUTE, -11 * MINUTE, None));
    let earlier = fenced(&*past, "quiet-1", "h1", Verdict::PowerVerifiedOff).await;
    fenced(&*past, "quiet-2", "h2", Verdict::PowerVerifiedOff).await;
    start(&*journal, &claim("quiet-3", "h3", Operation::Off)).await;
    journal
        .refused(&verdict(
            &claim("quiet-4", "h4", Operation::Fence),
            Verdict::Refused,
        ))
        .await
        .unwrap();
    // A re-confirmation of h1's earlier proof is no new power-off.
    let reconfirm = Claim {
        tolerance: Duration::from_secs(15 * 60),
        ..claim("quiet-5", "h1", Operation::Fence)
    };
    assert_eq!(
        confirms(journal.begin(reconfirm).await.unwrap()).as_deref(),
        Some(earlier.request_id.as_str())
    );
    start(&*journal, &guarded("quiet-6", "h6", 1)).await;
    // A new fence does count.
    assert!(matches!(
        journal.begin(guarded("quiet-7", "h7", 1)).await.unwrap(),
        Begin::Refused { .. }
    ));
}

/// Under a storm, a re-confirmation of a recent proof may still read, never power off.
async fn under_a_storm_a_reconfirmation_may_only_read(s: Store) {
    let journal = s.journal();
    fenced(&*journal, "ro-1", "h1", Verdict::PowerVerifiedOff).await;
    start(&*journal, &claim("ro-2", "h2", Operation::Fence)).await;
    let c = Claim {
        tolerance: Duration::from_secs(60),
        ..guarded("ro-3", "h1", 1)
    };
    match journal.begin(c).await.unwrap() {
        Begin::Started {
            confirms: Some(id),
            read_only: Some(why),
        } => {
            assert_eq!(id, "ro-1");
            assert!(why.contains("storm guard"), "{why}");
        }
        other => panic!("{other:?}"),
    }
}

/// A fence announced by a live process counts for the others before it begins; once its
/// process is gone it counts no more.
async fn an_announced_fence_counts_while_its_process_lives(s: Store) {
    let announcer = s.journal();
    announcer
        .announce(&guarded("ann-1", "h1", 1))
        .await
        .unwrap();
    let (one, two) = (s.journal(), s.journal());
    assert!(matches!(
        one.begin(guarded("ann-2", "h2", 1)).await.unwrap(),
        Begin::Refused { .. }
    ));
    drop(announcer);
    // Only h2's refusal counts now (h1 would make two).
    start(&*two, &guarded("ann-3", "h3", 2)).await;
}

/// A wall-clock step never opens the storm window: records dated in the future (the clock
/// was stepped back since) count as recent; on one boot the boot clock decides, whatever the
/// wall clock says; only a record old by the clock that decides falls out of the window.
async fn a_wall_clock_step_back_never_opens_the_storm_window(s: Store) {
    // Fences recorded on an earlier boot by a clock an hour ahead of today's: recent.
    let ahead = s.at(&s.clock_at(60 * MINUTE, 5_000, Some("earlier-boot")));
    fenced(&*ahead, "step-1", "h1", Verdict::PowerVerifiedOff).await;
    fenced(&*ahead, "step-2", "h2", Verdict::PowerVerifiedOff).await;
    assert!(matches!(
        s.journal().begin(guarded("step-3", "h3", 2)).await.unwrap(),
        Begin::Refused { .. }
    ));

    // On this boot, a minute ago by the boot clock, an hour ahead by the wall clock: the
    // wall clock was stepped back by an hour since. Recent.
    let same_boot = Store::new(s.backend);
    let clock = same_boot.clock_at(60 * MINUTE, -MINUTE, None);
    let stepped = same_boot.at(&clock);
    fenced(&*stepped, "step-4", "h4", Verdict::PowerVerifiedOff).await;
    // The same process after its wall clock stepped back by two hours, a second later.
    clock.step_wall(-120 * MINUTE);
    clock.advance(Duration::from_secs(1));
    fenced(&*stepped, "step-5", "h5", Verdict::PowerVerifiedOff).await;
    assert!(matches!(
        same_boot
            .journal()
            .begin(guarded("step-6", "h6", 2))
            .await
            .unwrap(),
        Begin::Refused { .. }
    ));
    // And judged by the stepped-back process itself.
    assert!(matches!(
        stepped.begin(guarded("step-7", "h7", 2)).await.unwrap(),
        Begin::Refused { .. }
    ));

    // Controls, so the guard above is seen to close at all, with a two-second window: on
    // this boot, five seconds ago by the boot clock (an hour ahead by the wall clock) is
    // outside it; on another boot, an hour ago by the wall clock is too. (Seconds, not
    // minutes: the system clock's boot may be young.)
    let old = Store::new(s.backend);
    let before = old.at(&old.clock_at(60 * MINUTE, -5_000, None));
    fenced(&*before, "step-8", "h8", Verdict::PowerVerifiedOff).await;
    let rebooted = old.at(&old.clock_at(-60 * MINUTE, 5_000, Some("earlier-boot")));
    fenced(&*rebooted, "step-9", "h9", Verdict::PowerVerifiedOff).await;
    let short = Claim {
        storm: Some((1, Duration::from_secs(2))),
        ..claim("step-10", "h10", Operation::Fence)
    };
    start(&*old.journal(), &short).await;
}

/// Every contract test, for one backend.
macro_rules! suite {
    ($name:ident, $backend:expr) => {
        mod $name {
            use super::*;

            fn backend() -> Backend {
                $backend
            }

            suite!(@tests
                records_keep_call_order_and_outlive_their_process,
                a_verdict_is_durable_when_finish_resolves,
                one_verdict_per_operation,
                refusals_are_on_record,
                an_operation_in_flight_is_joined_across_processes,
                concurrent_processes_start_one_operation_per_host_and_lose_nothing,
                abandoned_operations_are_taken_only_from_dead_owners_and_only_once,
                power_on_locks_hold_per_door_and_by_box,
                only_a_fence_locks_and_only_its_own_host,
                identities_are_remembered_changed_and_claimed_once,
                a_recent_proof_of_the_same_target_is_reconfirmed,
                storm_refusals_are_recorded_and_keep_counting,
                the_storm_guard_counts_only_new_fences_within_its_window,
                under_a_storm_a_reconfirmation_may_only_read,
                an_announced_fence_counts_while_its_process_lives,
                a_wall_clock_step_back_never_opens_the_storm_window,
            );
        }
    };
    (@tests $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                super::$test(Store::new(backend())).await
            }
        )*
    };
}

suite!(sqlite_thread, super::sqlite_thread());
suite!(sqlite_inline, Backend::clocked(super::sqlite_inline));
