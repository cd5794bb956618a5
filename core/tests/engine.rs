//! Engine scenarios with named behaviours (the property tests cover random schedules).

mod support;

use fencegate_core::{
    DeviceOutcome, Engine, Event, Host, Operation, Policy, Proof, Request, SqliteJournal, Verdict,
};
use fencegate_driver::{ErrorKind, PowerState};
use std::sync::Arc;
use std::time::Duration;
use support::journal::inline_engine;
use support::scripted::{Logged, Scripted, Step, now};
use tokio::task::JoinHandle;

/// The scenarios' policy: no hold, so their reading sequences stay short; the hold has
/// scenarios of its own (`hold.rs`).
fn policy() -> Policy {
    Policy {
        attempt_timeout: Duration::from_secs(2),
        overall_timeout: Duration::from_secs(5),
        storm_limit: 0,
        off_hold: Duration::ZERO,
        ..Policy::default()
    }
}

fn req() -> Request {
    Request {
        requester: "test".into(),
        reason: "scenario".into(),
        force: false,
        door: Default::default(),
    }
}

#[tokio::test(start_paused = true)]
async fn already_off_needs_no_command() {
    let bmc = Scripted::new("bmc", vec![now(PowerState::Off)], vec![now(())]);
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let engine = inline_engine();
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff);
    assert_eq!(bmc.commands_accepted(), 0);
    assert!(p.levels[0].devices[0].detail.contains("already off"));
}

#[tokio::test(start_paused = true)]
async fn powering_off_then_off_is_verified_only_after_k_offs() {
    let bmc = Scripted::new(
        "bmc",
        vec![
            now(PowerState::On),
            now(PowerState::PoweringOff),
            now(PowerState::Unknown("Reset".into())),
            now(PowerState::Off),
        ],
        vec![now(())],
    );
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let engine = inline_engine();
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff);
    let reads: Vec<_> = p.levels[0].devices[0].readings().cloned().collect();
    assert_eq!(
        reads,
        [
            PowerState::On,
            PowerState::PoweringOff,
            PowerState::Unknown("Reset".into()),
            PowerState::Off,
            PowerState::Off
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn drivers_are_released_after_every_operation() {
    let bmc = Scripted::new(
        "bmc",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let dead = Scripted::new("dead", vec![Step::Hang], vec![Step::Hang]);
    let host = support::host(
        "n1",
        vec![vec![dead.device("dead")], vec![bmc.device("bmc")]],
        policy(),
    );
    let engine = inline_engine();
    assert!(
        engine
            .fence(Arc::clone(&host), req())
            .await
            .unwrap()
            .success
    );
    assert_eq!((bmc.releases(), dead.releases()), (1, 1));
    engine.status(&host).await;
    assert_eq!((bmc.releases(), dead.releases()), (2, 2));
}

#[tokio::test(start_paused = true)]
async fn stuck_relay_fails_within_the_deadline() {
    let bmc = Scripted::new("bmc", vec![now(PowerState::On)], vec![now(())]);
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let engine = inline_engine();
    let t0 = tokio::time::Instant::now();
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed);
    assert!(!p.success);
    assert!(t0.elapsed() <= Duration::from_secs(2));
    assert!(p.detail.contains("verification-failed"), "{}", p.detail);
}

#[tokio::test(start_paused = true)]
async fn conflict_409_is_not_proof_but_a_fresh_read_is() {
    let bmc = Scripted::new(
        "bmc",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![Step::Fail(ErrorKind::StateConflict, Duration::ZERO)],
    );
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let engine = inline_engine();
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff);
    // The 409 came first, the two Off readings after it.
    assert_eq!(
        bmc.log(),
        [
            Logged::Read(PowerState::On),
            Logged::CommandFailed(fencegate_driver::Action::Off, ErrorKind::StateConflict),
            Logged::Read(PowerState::Off),
            Logged::Read(PowerState::Off),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn dead_bmc_falls_through_to_both_pdu_outlets() {
    let bmc = Scripted::new("bmc", vec![Step::Hang], vec![Step::Hang]);
    let a = Scripted::new(
        "pdu-a",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let b = Scripted::new(
        "pdu-b",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let host = support::host(
        "n1",
        vec![
            vec![bmc.device("bmc")],
            vec![a.device("pdu-a-4"), b.device("pdu-b-4")],
        ],
        policy(),
    );
    let engine = inline_engine();
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff);
    assert_eq!(p.levels[0].devices[0].outcome, DeviceOutcome::Failed);
    assert_eq!(p.levels[1].devices.len(), 2);
    assert!(p.detail.contains("pdu-a-4 + pdu-b-4"), "{}", p.detail);
}

#[tokio::test(start_paused = true)]
async fn one_stuck_outlet_fails_the_dual_psu_level() {
    let a = Scripted::new(
        "pdu-a",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let b = Scripted::new("pdu-b", vec![now(PowerState::On)], vec![now(())]);
    let host = support::host("n1", vec![vec![a.device("a"), b.device("b")]], policy());
    let engine = inline_engine();
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed);
}

#[tokio::test(start_paused = true)]
async fn ssh_alone_is_liveness_lost_and_not_success_by_default() {
    let ssh = Scripted::blind("ssh", vec![now(())]);
    let host = support::host("n1", vec![vec![ssh.device("ssh")]], policy());
    let engine = inline_engine();
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::LivenessLost);
    assert!(!p.success);

    let ssh = Scripted::blind("ssh", vec![now(())]);
    let accepting = Policy {
        accept_liveness_loss: true,
        ..policy()
    };
    let host = support::host("n2", vec![vec![ssh.device("ssh")]], accepting);
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::LivenessLost);
    assert!(p.success);
    assert!(p.detail.contains("not proven"), "{}", p.detail);
}

#[tokio::test(start_paused = true)]
async fn ssh_beside_a_bmc_does_not_count_but_does_not_block() {
    let ssh = Scripted::blind(
        "ssh",
        vec![Step::Fail(ErrorKind::Unreachable, Duration::ZERO)],
    );
    let bmc = Scripted::new(
        "bmc",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let host = support::host(
        "n1",
        vec![vec![ssh.device("ssh"), bmc.device("bmc")]],
        policy(),
    );
    let engine = inline_engine();
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff);
}

#[tokio::test(start_paused = true)]
async fn a_declared_reader_found_blind_fails_its_level_beside_a_reader() {
    // The attack: "both PDU outlets must read off" passing with one reading, because the
    // other outlet's driver learned at first contact that it cannot read and dropped out.
    let outlet_a = Scripted::late_blind("pdu-a", vec![now(())]);
    let outlet_b = Scripted::new(
        "pdu-b",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let host = support::host(
        "n1",
        vec![vec![outlet_a.device("pdu-a-7"), outlet_b.device("pdu-b-7")]],
        policy(),
    );
    let engine = inline_engine();
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::LivenessLost, "{}", p.detail);
    assert!(!p.success, "one reading must not prove a two-outlet level");
    assert!(p.detail.contains("found blind"), "{}", p.detail);
    let rec = &p.levels[0].devices[0];
    assert!(rec.declared_reader && !rec.reads_power_state);
    assert_eq!(rec.outcome, DeviceOutcome::LivenessLost);
    assert_eq!(outlet_a.commands_accepted(), 1);

    // Only a host policy that accepts liveness loss lets it count, and says so.
    let outlet_a = Scripted::late_blind("pdu-a", vec![now(())]);
    let outlet_b = Scripted::new(
        "pdu-b",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let host = support::host(
        "n2",
        vec![vec![outlet_a.device("pdu-a-7"), outlet_b.device("pdu-b-7")]],
        Policy {
            accept_liveness_loss: true,
            ..policy()
        },
    );
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::LivenessLost);
    assert!(p.success);

    // Alone: liveness lost at best, never proof.
    let inband = Scripted::late_blind("inband", vec![now(())]);
    let host = support::host("n3", vec![vec![inband.device("inband")]], policy());
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::LivenessLost);
    assert!(!p.success);
}

#[tokio::test(start_paused = true)]
async fn busy_is_retried_a_bounded_number_of_times() {
    let bmc = Scripted::new(
        "bmc",
        vec![now(PowerState::On)],
        vec![Step::Fail(ErrorKind::Busy, Duration::ZERO)],
    );
    let host = support::host(
        "n1",
        vec![vec![bmc.device("bmc")]],
        Policy {
            retries: 2,
            ..policy()
        },
    );
    let engine = inline_engine();
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed);
    let tries = bmc
        .log()
        .iter()
        .filter(|l| matches!(l, Logged::CommandFailed(..)))
        .count();
    assert_eq!(tries, 3);
}

#[tokio::test(start_paused = true)]
async fn auth_failure_is_not_retried() {
    let bmc = Scripted::new(
        "bmc",
        vec![Step::Fail(ErrorKind::Auth, Duration::ZERO)],
        vec![now(())],
    );
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let engine = inline_engine();
    let p = engine.fence(host, req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Failed);
    assert_eq!(bmc.log().len(), 1);
    assert!(p.detail.contains("auth"), "{}", p.detail);
}

#[tokio::test(start_paused = true)]
async fn shutdown_records_an_interrupted_verdict() {
    let bmc = Scripted::new("bmc", vec![now(PowerState::On)], vec![now(())]);
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let engine = inline_engine();
    let stop = engine.shutdown();
    let run = tokio::spawn({
        let engine = engine.clone();
        async move { engine.fence(host, req()).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.trigger();
    let p = run.await.unwrap().unwrap();
    assert_eq!(p.verdict, Verdict::Failed);
    assert!(p.detail.contains("SIGTERM"));
    // The record is in the journal, with the readings taken before the stop.
    let h = engine.history("n1").await;
    assert_eq!(h[0].request_id, p.request_id);
    assert_eq!(h[0].verdict, Verdict::Failed);
    assert!(h[0].levels[0].devices[0].readings().count() >= 1);
    assert!(
        engine
            .events_of(&p.request_id)
            .iter()
            .any(|e| matches!(e, Event::Reading { .. })),
        "the readings' events are durable too"
    );
}

// --- with the real SQLite journal (real time, short deadlines) ---

fn sqlite_engine(dir: &std::path::Path) -> Engine {
    Engine::new(Arc::new(SqliteJournal::open(dir).unwrap()))
}

#[tokio::test]
async fn storm_guard_refuses_the_fourth_host_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let engine = sqlite_engine(dir.path());
    let guarded = Policy {
        storm_limit: 3,
        // Judged one by one here; bursts have their own test (guards.rs).
        storm_settle: Duration::ZERO,
        ..policy()
    };
    for i in 0..3 {
        let bmc = Scripted::new("bmc", vec![now(PowerState::Off)], vec![now(())]);
        let host = support::host(
            &format!("n{i}"),
            vec![vec![bmc.device("bmc")]],
            guarded.clone(),
        );
        assert!(engine.fence(host, req()).await.unwrap().success);
    }
    let bmc = Scripted::new(
        "bmc",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let host = support::host("n3", vec![vec![bmc.device("bmc")]], guarded.clone());
    let p = engine.fence(Arc::clone(&host), req()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Refused);
    assert!(p.detail.contains("storm guard"));
    assert_eq!(bmc.log(), [], "a refused fence sends nothing");
    let forced = Request {
        force: true,
        ..req()
    };
    assert_eq!(
        engine.fence(host, forced).await.unwrap().verdict,
        Verdict::PowerVerifiedOff
    );
    // The refusal is on record.
    let h = engine.history(Some("n3"), 10).await.unwrap();
    assert!(h.iter().any(|p| p.verdict == Verdict::Refused));
}

#[tokio::test]
async fn fenced_host_stays_locked_until_unfence() {
    let dir = tempfile::tempdir().unwrap();
    let engine = sqlite_engine(dir.path());
    let bmc = Scripted::new(
        "bmc",
        vec![
            now(PowerState::Off),
            now(PowerState::Off),
            now(PowerState::On),
        ],
        vec![now(())],
    );
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    assert!(
        engine
            .fence(Arc::clone(&host), req())
            .await
            .unwrap()
            .success
    );
    let on = engine.on(Arc::clone(&host), req()).await.unwrap();
    assert_eq!(on.verdict, Verdict::Refused);
    assert!(on.detail.contains("unfence"));
    assert_eq!(bmc.commands_accepted(), 0);
    // The attempt is on record.
    let h = engine.history(Some("n1"), 10).await.unwrap();
    assert!(
        h.iter()
            .any(|p| p.request_id == on.request_id && p.verdict == Verdict::Refused)
    );
    let u = engine.unfence(Arc::clone(&host), req()).await.unwrap();
    assert!(u.detail.contains("lifted"), "{}", u.detail);
    let on = engine.on(host, req()).await.unwrap();
    assert_eq!(on.verdict, Verdict::Done, "{}", on.detail);
    assert_eq!(bmc.commands_accepted(), 1);
}

#[tokio::test]
async fn tolerance_window_reconfirms_an_earlier_proof() {
    let dir = tempfile::tempdir().unwrap();
    let engine = sqlite_engine(dir.path());
    let bmc = Scripted::new("bmc", vec![now(PowerState::Off)], vec![now(())]);
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let first = engine.fence(Arc::clone(&host), req()).await.unwrap();
    let second = engine.fence(host, req()).await.unwrap();
    assert_eq!(second.confirms.as_deref(), Some(first.request_id.as_str()));
    assert_eq!(second.verdict, Verdict::PowerVerifiedOff);
    assert_eq!(
        bmc.log().len(),
        4,
        "two fresh readings each time, no command"
    );
}

#[tokio::test]
async fn concurrent_callers_share_one_operation() {
    let dir = tempfile::tempdir().unwrap();
    let engine = sqlite_engine(dir.path());
    let bmc = Scripted::new(
        "bmc",
        vec![
            now(PowerState::On),
            Step::Answer(PowerState::Off, Duration::from_millis(100)),
        ],
        vec![now(())],
    );
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let mut calls = Vec::new();
    for _ in 0..8 {
        let (engine, host) = (engine.clone(), Arc::clone(&host));
        calls.push(tokio::spawn(async move {
            engine.fence(host, req()).await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    for c in calls {
        ids.push(c.await.unwrap().request_id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(bmc.commands_accepted(), 1);
}

// --- operations of different kinds on one host ---

/// A BMC whose first reading takes a while, so a second caller arrives mid-operation.
fn slow_first_read() -> Arc<Scripted> {
    Scripted::new(
        "bmc",
        vec![
            Step::Answer(PowerState::On, Duration::from_millis(200)),
            now(PowerState::Off),
        ],
        vec![now(())],
    )
}

/// Start `op` on `host` in the background and let it get under way.
async fn started(engine: &Engine, host: &Arc<Host>, op: Operation) -> JoinHandle<Proof> {
    let (engine, host) = (engine.clone(), Arc::clone(host));
    let task = tokio::spawn(async move {
        match op {
            Operation::Fence => engine.fence(host, req()).await,
            Operation::Off => engine.off(host, req()).await,
            Operation::On => engine.on(host, req()).await,
            other => panic!("not used in these scenarios: {other:?}"),
        }
        .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    task
}

async fn locked(engine: &Engine, host: &str) -> bool {
    !engine.journal().power_locks(host).await.unwrap().is_empty()
}

#[tokio::test(start_paused = true)]
async fn an_off_shares_a_running_fence() {
    let bmc = slow_first_read();
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let engine = inline_engine();
    let fence = started(&engine, &host, Operation::Fence).await;
    let off = engine.off(host, req()).await.unwrap();
    let fence = fence.await.unwrap();
    assert_eq!(off.request_id, fence.request_id, "one operation");
    assert_eq!(off.verdict, Verdict::PowerVerifiedOff);
    assert_eq!(bmc.commands_accepted(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_fence_never_takes_an_offs_verdict_for_its_own() {
    let bmc = slow_first_read();
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let engine = inline_engine();
    let off = started(&engine, &host, Operation::Off).await;
    let fence = engine.fence(host, req()).await.unwrap();
    let off = off.await.unwrap();
    assert_ne!(off.request_id, fence.request_id, "the fence ran on its own");
    assert_eq!(fence.operation, Operation::Fence);
    assert_eq!(fence.verdict, Verdict::PowerVerifiedOff, "{}", fence.detail);
    assert!(fence.started_at >= off.finished_at, "it waited for the off");
    assert!(
        locked(&engine, "n1").await,
        "the fence left its power-on lock"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fence_waits_for_a_running_power_on_then_fences() {
    let bmc = Scripted::new(
        "bmc",
        vec![
            now(PowerState::On),
            now(PowerState::On),
            now(PowerState::Off),
        ],
        vec![Step::Answer((), Duration::from_millis(200)), now(())],
    );
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let engine = inline_engine();
    let on = started(&engine, &host, Operation::On).await;
    let fence = engine.fence(host, req()).await.unwrap();
    let on = on.await.unwrap();
    assert_eq!(on.verdict, Verdict::Done, "{}", on.detail);
    assert_eq!(fence.operation, Operation::Fence);
    assert_eq!(fence.verdict, Verdict::PowerVerifiedOff, "{}", fence.detail);
    assert!(fence.success);
    assert!(locked(&engine, "n1").await);
}

#[tokio::test(start_paused = true)]
async fn a_power_on_waiting_for_a_fence_is_refused_by_its_lock() {
    let bmc = slow_first_read();
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let engine = inline_engine();
    let fence = started(&engine, &host, Operation::Fence).await;
    let on = engine.on(host, req()).await.unwrap();
    assert!(fence.await.unwrap().success);
    assert_eq!(on.verdict, Verdict::Refused);
    assert!(on.detail.contains("power-on lock"), "{}", on.detail);
    assert!(
        !bmc.log()
            .contains(&Logged::Command(fencegate_driver::Action::On)),
        "no power-on was sent"
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_for_another_operation_counts_against_the_deadline() {
    // A power-on that hangs until its own deadline holds the host past the fence's.
    let bmc = Scripted::new(
        "bmc",
        vec![now(PowerState::On)],
        vec![Step::Answer((), Duration::from_secs(60))],
    );
    let slow_on = Policy {
        attempt_timeout: Duration::from_secs(20),
        overall_timeout: Duration::from_secs(30),
        ..policy()
    };
    let on_host = support::host("n1", vec![vec![bmc.device("bmc")]], slow_on);
    let fence_host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let engine = inline_engine();
    let on = started(&engine, &on_host, Operation::On).await;
    let t0 = tokio::time::Instant::now();
    let fence = engine.fence(fence_host, req()).await.unwrap();
    assert!(t0.elapsed() <= policy().overall_timeout + Duration::from_millis(100));
    assert_eq!(fence.verdict, Verdict::Refused);
    assert!(fence.detail.contains("did not end"), "{}", fence.detail);
    assert_eq!(
        bmc.log()
            .iter()
            .filter(|l| matches!(l, Logged::Command(fencegate_driver::Action::Off)))
            .count(),
        0,
        "nothing was sent for the fence"
    );
    on.abort();
}

#[tokio::test]
async fn across_processes_a_fence_waits_for_an_off_and_sets_its_own_lock() {
    // Two engines on one journal file stand for two processes.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (sqlite_engine(dir.path()), sqlite_engine(dir.path()));
    let bmc = slow_first_read();
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let off = started(&a, &host, Operation::Off).await;
    tokio::time::sleep(Duration::from_millis(40)).await;
    let fence = b.fence(Arc::clone(&host), req()).await.unwrap();
    let off = off.await.unwrap();
    assert_ne!(fence.request_id, off.request_id);
    assert_eq!(fence.operation, Operation::Fence);
    assert_eq!(fence.verdict, Verdict::PowerVerifiedOff, "{}", fence.detail);
    let on = b.on(host, req()).await.unwrap();
    assert_eq!(on.verdict, Verdict::Refused, "{}", on.detail);
    assert!(on.detail.contains("power-on lock"), "{}", on.detail);
}
