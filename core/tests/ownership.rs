//! Who owns a running operation is decided by a lock the OS holds while the owner lives,
//! never by wall clocks or PIDs; windows survive wall-clock steps. Each test tampers with
//! what the old rules trusted (a lease, a PID, a wall-clock time) and checks that nothing
//! changes.

mod support;

use fencegate_core::{Engine, Journal, Policy, Request, SqliteJournal, Verdict};
use fencegate_driver::{Action, PowerState};
use std::sync::Arc;
use std::time::Duration;
use support::scripted::{Scripted, Step, now};

fn policy() -> Policy {
    Policy {
        attempt_timeout: Duration::from_secs(3),
        overall_timeout: Duration::from_secs(5),
        off_hold: Duration::ZERO,
        storm_limit: 0,
        ..Policy::default()
    }
}

fn tamper(dir: &std::path::Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join(SqliteJournal::FILE_NAME)).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(sql).unwrap();
}

/// A live fence whose record says its lease ran out (a clock running ahead elsewhere) and
/// whose PID nobody can see (another PID namespace): another process must neither reconcile
/// it nor run a second fence beside it, and the first one's verdict stands.
#[tokio::test]
async fn a_live_owner_is_alive_whatever_its_lease_and_pid_say() {
    let dir = tempfile::tempdir().unwrap();
    let one = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let bmc = Scripted::new(
        "bmc",
        vec![
            now(PowerState::On),
            Step::Answer(PowerState::Off, Duration::from_millis(600)),
        ],
        vec![now(())],
    );
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let first = tokio::spawn({
        let (one, host) = (one.clone(), Arc::clone(&host));
        async move { one.fence(host, Request::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    tamper(
        dir.path(),
        "UPDATE operations SET owner_pid = 2147483646, lease_until_ms = 0 WHERE finished_ms IS NULL",
    );

    let two = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let reconciled = two.reconcile(|_| Some(Arc::clone(&host))).await.unwrap();
    assert!(
        reconciled.is_empty(),
        "a live fence was reconciled: {reconciled:?}"
    );
    let second = two
        .fence(Arc::clone(&host), Request::default())
        .await
        .unwrap();

    let p = first.await.unwrap().unwrap();
    assert_eq!(p.verdict, Verdict::PowerVerifiedOff, "{}", p.detail);
    assert_eq!(
        second.request_id, p.request_id,
        "the second fence joins the first"
    );
    assert_eq!(
        bmc.accepted(Action::Off),
        1,
        "no second fence ran beside the first"
    );
    let recorded = two.journal().proof(&p.request_id).await.unwrap().unwrap();
    assert_eq!(recorded.verdict, Verdict::PowerVerifiedOff);
}

/// A verdict only closes an operation that is still open.
#[tokio::test]
async fn finish_closes_only_an_open_operation() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(SqliteJournal::open(dir.path()).unwrap());
    let engine = Engine::new(journal.clone());
    let bmc = Scripted::new("bmc", vec![now(PowerState::Off)], vec![now(())]);
    let host = support::host("n1", vec![vec![bmc.device("bmc")]], policy());
    let p = engine.off(host, Request::default()).await.unwrap();
    let mut overwrite = p.clone();
    overwrite.verdict = Verdict::Failed;
    let e = journal.finish(&overwrite).await.unwrap_err();
    assert!(e.to_string().contains("not open"), "{e}");
    let kept = journal.proof(&p.request_id).await.unwrap().unwrap();
    assert_eq!(kept.verdict, Verdict::PowerVerifiedOff);
}

/// The clock steps forward two hours after a fence: by the wall clock that fence left the
/// storm window, by the boot clock it did not.
#[tokio::test]
async fn a_wall_clock_step_does_not_erase_the_storm_window() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let guarded = Policy {
        storm_limit: 1,
        storm_settle: Duration::ZERO,
        ..policy()
    };
    let a = Scripted::new("a", vec![now(PowerState::Off)], vec![now(())]);
    let host_a = support::host("a", vec![vec![a.device("a")]], guarded.clone());
    assert!(
        engine
            .fence(host_a, Request::default())
            .await
            .unwrap()
            .success
    );
    tamper(
        dir.path(),
        "UPDATE operations SET started_ms = started_ms - 7200000, finished_ms = finished_ms - 7200000",
    );
    let b = Scripted::new(
        "b",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let host_b = support::host("b", vec![vec![b.device("b")]], guarded.clone());
    let p = engine.fence(host_b, Request::default()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Refused, "{}", p.detail);
    assert_eq!(b.accepted(Action::Off), 0);

    // Without a boot clock for the record (another boot, say), a time in the future (the
    // clock stepped back since) still counts as recent.
    tamper(
        dir.path(),
        "UPDATE operations SET started_up_ms = -1, started_ms = started_ms + 7200000 + 3600000
         WHERE host = 'a'",
    );
    let c = Scripted::new(
        "c",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let host_c = support::host("c", vec![vec![c.device("c")]], guarded);
    let p = engine.fence(host_c, Request::default()).await.unwrap();
    assert_eq!(p.verdict, Verdict::Refused, "{}", p.detail);
}
