//! Attacks on the guards (power-on locks by box, doors, storm guard, ownership by flock),
//! each written as the walk-around a hostile reviewer would try. A test that fails here is
//! a guard that can still be walked around; see each test's comment for what it shows.

mod support;

use fencegate_core::journal::{Begin, Claim};
use fencegate_core::proof::{Door, Operation};
use fencegate_core::{Engine, Journal, Policy, Request, SqliteJournal, Verdict};
use fencegate_driver::{Action, ErrorKind, IdentityFact, PowerState};
use std::sync::Arc;
use std::time::Duration;
use support::scripted::{Scripted, Step, now};

fn policy() -> Policy {
    Policy {
        attempt_timeout: Duration::from_secs(2),
        overall_timeout: Duration::from_secs(5),
        off_hold: Duration::ZERO,
        storm_limit: 0,
        storm_settle: Duration::ZERO,
        ..Policy::default()
    }
}

fn req(door: Door, force: bool) -> Request {
    Request {
        requester: format!("attacker via {}", door.as_str()),
        reason: "attack".into(),
        force,
        door,
    }
}

fn guid() -> IdentityFact {
    IdentityFact::authenticated("ipmi-guid", "7c1e2a4b-93d0-4f6e-a1b2-c3d4e5f60718")
}

fn claim(id: &str, host: &str) -> Claim {
    Claim {
        request_id: id.into(),
        host: host.into(),
        operation: Operation::Fence,
        requester: "attacker".into(),
        reason: "attack".into(),
        target: "t".into(),
        door: Door::Cli,
        lock_keys: vec![format!("scripted|{host}")],
        identity_endpoints: Vec::new(),
        storm: Some((3, Duration::from_secs(600))),
        tolerance: Duration::ZERO,
        lease: Duration::from_secs(30),
        sets_lock: true,
        blocked_by_lock: false,
    }
}

fn lock_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("op-"))
        .collect()
}

/// The same box fenced under another name (an ad-hoc `fence --device URL`, default name
/// `adhoc:URL`) keeps the box locked for the inventory host. The refusal of `on h` tells
/// the operator to run `fencegate unfence h`; doing exactly that lifts nothing (the lock is
/// `adhoc:…`'s), and `on h` is refused again with the same advice: the box stays locked
/// for as long as the operator follows what fencegate says. The refusal must name the
/// host (or fence) whose unfence lifts the lock, or unfence h must lift box locks too.
#[tokio::test]
async fn the_unfence_a_lock_refusal_names_lifts_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let bmc = Scripted::new(
        "bmc-1",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let adhoc = support::host("adhoc:bmc-1", vec![vec![bmc.device("bmc")]], policy());
    let fenced = engine.fence(adhoc, req(Door::Cli, false)).await.unwrap();
    assert_eq!(
        fenced.verdict,
        Verdict::PowerVerifiedOff,
        "{}",
        fenced.detail
    );

    let h = support::host("h", vec![vec![bmc.device("bmc")]], policy());
    let refused = engine
        .on(Arc::clone(&h), req(Door::Cli, false))
        .await
        .unwrap();
    assert_eq!(refused.verdict, Verdict::Refused, "{}", refused.detail);
    let advice = refused
        .detail
        .split("fencegate unfence ")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .unwrap_or_else(|| panic!("no unfence advice in: {}", refused.detail))
        .to_owned();
    // Follow the advice literally.
    let named = support::host(&advice, vec![vec![bmc.device("bmc")]], policy());
    assert!(
        engine
            .unfence(named, req(Door::Cli, false))
            .await
            .unwrap()
            .success
    );
    let again = engine.on(h, req(Door::Cli, false)).await.unwrap();
    assert!(
        !again.detail.contains("power-on lock"),
        "after `fencegate unfence {advice}`, as the refusal said, the box is still locked: {}",
        again.detail
    );
}

/// A re-addressed BMC (issue 11.1: the lock "survives a re-addressed BMC"): h is fenced
/// through its BMC at its old address, which proves GUID G (identity lock on G). The BMC
/// moves; the hook fires again for h while the old address no longer answers, so that
/// fence fails, but through the same door it replaces h's lock row (ON CONFLICT(host,door)
/// DO UPDATE request_id), orphaning the first fence's box and identity locks (they join
/// host_locks by request_id). The operator moves the identity (`trust --moved`) to the new
/// address. Now any other name for the new address powers the fenced box on: its key was
/// never locked and G is no longer locked.
#[tokio::test]
async fn a_failed_refence_does_not_unlock_the_box_the_first_fence_proved() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let old = Scripted::new(
        "bmc-old",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    old.set_identity(vec![guid()]);
    let h = support::host("h", vec![vec![old.device("bmc")]], policy());
    let first = engine.fence(h, req(Door::Opennebula, false)).await.unwrap();
    assert_eq!(first.verdict, Verdict::PowerVerifiedOff, "{}", first.detail);

    // The BMC moved: the old address is silent; the hook fires again for h.
    let gone = Scripted::new(
        "bmc-old",
        vec![Step::Fail(ErrorKind::Unreachable, Duration::ZERO)],
        vec![Step::Fail(ErrorKind::Unreachable, Duration::ZERO)],
    );
    let h = support::host("h", vec![vec![gone.device("bmc")]], policy());
    let second = engine.fence(h, req(Door::Opennebula, false)).await.unwrap();
    assert!(!second.success, "{}", second.detail);

    // The inventory now says the new address; the operator accepts the move.
    let new = Scripted::new("bmc-new", vec![now(PowerState::Off)], vec![now(())]);
    new.set_identity(vec![guid()]);
    let h = support::host("h", vec![vec![new.device("bmc")]], policy());
    let trusted = engine.trust(h, req(Door::Cli, false), true).await.unwrap();
    assert!(trusted.success, "{}", trusted.detail);

    // Another name for the new address (an ad-hoc URL, another tool's inventory).
    let other = Scripted::new(
        "bmc-new",
        vec![now(PowerState::Off), now(PowerState::On)],
        vec![now(())],
    );
    other.set_identity(vec![guid()]);
    let adhoc = support::host("adhoc:bmc-new", vec![vec![other.device("x")]], policy());
    let on = engine.on(adhoc, req(Door::Cli, false)).await.unwrap();
    assert_eq!(
        other.accepted(Action::On),
        0,
        "the fenced box (GUID G, still locked by h's fence) was powered on: {} / {}",
        on.verdict,
        on.detail
    );
}

/// Control for the test above (holds today): without the failed re-fence, the same
/// power-on through another name for the new address meets the identity lock. So the
/// walk-around above is the orphaning of the first fence's locks, nothing else.
#[tokio::test]
async fn control_without_the_failed_refence_the_moved_box_stays_locked() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let old = Scripted::new(
        "bmc-old",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    old.set_identity(vec![guid()]);
    let h = support::host("h", vec![vec![old.device("bmc")]], policy());
    let first = engine.fence(h, req(Door::Opennebula, false)).await.unwrap();
    assert_eq!(first.verdict, Verdict::PowerVerifiedOff, "{}", first.detail);
    let new = Scripted::new("bmc-new", vec![now(PowerState::Off)], vec![now(())]);
    new.set_identity(vec![guid()]);
    let h = support::host("h", vec![vec![new.device("bmc")]], policy());
    assert!(
        engine
            .trust(h, req(Door::Cli, false), true)
            .await
            .unwrap()
            .success
    );
    let other = Scripted::new(
        "bmc-new",
        vec![now(PowerState::Off), now(PowerState::On)],
        vec![now(())],
    );
    other.set_identity(vec![guid()]);
    let adhoc = support::host("adhoc:bmc-new", vec![vec![other.device("x")]], policy());
    let on = engine.on(adhoc, req(Door::Cli, false)).await.unwrap();
    assert!(on.detail.contains("power-on lock"), "{}", on.detail);
    assert_eq!(other.accepted(Action::On), 0);
}

/// Two doors, one lock (issue 11.8), walked around through single-flight across processes:
/// Pacemaker's agent door fences h; OpenNebula's hook asks to fence h while that runs, joins
/// it (InFlight, same target) and reports h fenced, recording no lock of its own door. The
/// agent door then lifts "its own" lock, the only one there is, and powers h on while
/// OpenNebula is recovering h's VMs elsewhere. A request that shares a fence's verdict must
/// leave its door's lock too.
#[tokio::test]
async fn a_fence_joined_through_another_door_keeps_that_doors_lock() {
    let dir = tempfile::tempdir().unwrap();
    let pacemaker = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let opennebula = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let bmc = Scripted::new(
        "bmc",
        vec![
            now(PowerState::On),
            Step::Answer(PowerState::Off, Duration::from_millis(300)),
        ],
        vec![now(())],
    );
    let h = support::host("h", vec![vec![bmc.device("bmc")]], policy());
    let agent_fence = tokio::spawn({
        let (e, h) = (pacemaker.clone(), Arc::clone(&h));
        async move { e.fence(h, req(Door::Agent, false)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The other process has its own driver instance for the same BMC.
    let twin = Scripted::new("bmc", vec![now(PowerState::Off)], vec![now(())]);
    let h_one = support::host("h", vec![vec![twin.device("bmc")]], policy());
    let hook = opennebula
        .fence(h_one, req(Door::Opennebula, false))
        .await
        .unwrap();
    assert_eq!(hook.verdict, Verdict::PowerVerifiedOff, "{}", hook.detail);
    let agent = agent_fence.await.unwrap().unwrap();
    assert_eq!(agent.verdict, Verdict::PowerVerifiedOff, "{}", agent.detail);
    assert!(
        twin.log().is_empty(),
        "the hook joined, it did not run its own fence"
    );

    // Pacemaker's `on`: lift the agent door's lock, then power on.
    let _ = pacemaker
        .unfence(Arc::clone(&h), req(Door::Agent, false))
        .await
        .unwrap();
    let on = pacemaker.on(h, req(Door::Agent, false)).await.unwrap();
    assert_eq!(
        bmc.accepted(Action::On),
        0,
        "the agent door powered on a host OpenNebula fenced (and reported fenced): {} / {}",
        on.verdict,
        on.detail
    );
}

/// Policy says a host re-confirmed within the tolerance window "does not count against the
/// storm guard". It does: the re-confirmation is recorded as a new fence, so its start time
/// renews the host's place in the storm window. One dead host whose hook (or cluster
/// manager) asks again and again keeps the storm window open for ever: with storm_limit = 1
/// every other host is refused as a storm although only one host was ever powered off.
#[tokio::test]
async fn a_reconfirmation_does_not_count_against_the_storm_guard() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let p = Policy {
        storm_limit: 1,
        storm_window: Duration::from_millis(1_500),
        tolerance: Duration::from_secs(60),
        ..policy()
    };
    let a = Scripted::new(
        "a",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let b = Scripted::new(
        "b",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let host_a = support::host("a", vec![vec![a.device("bmc")]], p.clone());
    let host_b = support::host("b", vec![vec![b.device("bmc")]], p.clone());
    let first = engine
        .fence(Arc::clone(&host_a), req(Door::Opennebula, false))
        .await
        .unwrap();
    assert_eq!(first.verdict, Verdict::PowerVerifiedOff, "{}", first.detail);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let again = engine
        .fence(host_a, req(Door::Opennebula, false))
        .await
        .unwrap();
    assert!(
        again.confirms.is_some(),
        "a re-confirmation: {}",
        again.detail
    );
    // a's only power-off is now out of the window; its re-confirmation is not.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let fence_b = engine
        .fence(host_b, req(Door::Opennebula, false))
        .await
        .unwrap();
    assert_eq!(
        fence_b.verdict,
        Verdict::PowerVerifiedOff,
        "one host powered off 2 s ago (window 1.5 s) and re-confirmed since: {}",
        fence_b.detail
    );
}

/// Every command reconciles whatever dead processes left open before doing its own work,
/// one abandoned operation after another, each re-read with up to attempt_timeout, and
/// outside the request's own deadline. After a crash in the middle of a rack fence the next
/// hook (or Pacemaker's `off`) spends N × attempt_timeout on other hosts before it starts:
/// its own fence does not end by its deadline. Reconciliation must be bounded as a whole
/// (concurrent, one shared deadline) or not stand in front of the request.
#[tokio::test]
async fn reconciling_many_abandoned_operations_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    {
        let dead = SqliteJournal::open(dir.path()).unwrap();
        for i in 0..4 {
            let begun = dead
                .begin(Claim {
                    storm: None,
                    ..claim(&format!("1-1-{i}"), &format!("h{i}"))
                })
                .await
                .unwrap();
            assert!(matches!(begun, Begin::Started { .. }), "{begun:?}");
        }
        // The process dies: the kernel drops its locks.
    }
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let p = Policy {
        attempt_timeout: Duration::from_secs(1),
        ..policy()
    };
    let t0 = std::time::Instant::now();
    let reconciled = engine
        .reconcile(|name| {
            let silent = Scripted::new(name, vec![Step::Hang], vec![Step::Hang]);
            Some(support::host(
                name,
                vec![vec![silent.device("bmc")]],
                p.clone(),
            ))
        })
        .await
        .unwrap();
    let took = t0.elapsed();
    assert_eq!(reconciled.len(), 4);
    assert!(
        took < Duration::from_millis(2_000),
        "reconciling 4 silent hosts took {took:?} (attempt_timeout 1 s) before the request could begin"
    );
}

/// Liveness is "is the lock file's flock held", and a missing lock file means "gone". A lock
/// file removed while its owner runs (an operator or a cleanup job removing the op-*.lock
/// files that dead announcers leave behind, see below) makes a live fence look abandoned:
/// another process reconciles it beside it, and the live one's verdict is then refused.
#[tokio::test]
async fn a_live_operation_whose_lock_file_was_removed_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let live = SqliteJournal::open(dir.path()).unwrap();
    let begun = live.begin(claim("1-2-3", "h")).await.unwrap();
    assert!(matches!(begun, Begin::Started { .. }), "{begun:?}");
    for f in lock_files(dir.path()) {
        std::fs::remove_file(dir.path().join(f)).unwrap();
    }
    let other = SqliteJournal::open(dir.path()).unwrap();
    let taken = other.take_abandoned().await.unwrap();
    assert!(
        taken.is_empty(),
        "a live operation was handed over for reconciliation: {:?}",
        taken.iter().map(|a| &a.request_id).collect::<Vec<_>>()
    );
    drop(live);
}

/// An announced fence whose process dies before it begins (killed during the settle, the
/// hook's timeout) leaves its op-*.lock file and its pending_fences row for ever: no
/// operation record points at them, so no reconciliation or later fence removes them. The
/// state directory fills with lock files nobody owns.
#[tokio::test]
async fn an_announcer_that_dies_leaves_no_lock_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    {
        let dying = SqliteJournal::open(dir.path()).unwrap();
        dying.announce(&claim("9-9-9", "x")).await.unwrap();
    }
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    engine.reconcile(|_| None).await.unwrap();
    let bmc = Scripted::new(
        "y",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let p = Policy {
        storm_limit: 3,
        storm_settle: Duration::from_millis(50),
        ..policy()
    };
    let y = support::host("y", vec![vec![bmc.device("bmc")]], p);
    let fenced = engine.fence(y, req(Door::Cli, false)).await.unwrap();
    assert_eq!(
        fenced.verdict,
        Verdict::PowerVerifiedOff,
        "{}",
        fenced.detail
    );
    assert_eq!(
        lock_files(dir.path()),
        Vec::<String>::new(),
        "lock files left behind by a dead announcer"
    );
}
