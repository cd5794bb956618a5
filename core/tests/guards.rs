//! Guards that must hold on every path that may send a command, on the real SQLite journal.

mod support;

use fencegate_core::{Engine, Policy, Request, SqliteJournal, Verdict};
use fencegate_driver::{Action, PowerState};
use std::sync::Arc;
use std::time::Duration;
use support::scripted::{Scripted, now};

fn guarded() -> Policy {
    Policy {
        attempt_timeout: Duration::from_secs(2),
        overall_timeout: Duration::from_secs(5),
        off_hold: Duration::ZERO,
        storm_limit: 1,
        storm_settle: Duration::ZERO,
        ..Policy::default()
    }
}

fn req(force: bool) -> Request {
    Request {
        requester: "test".into(),
        reason: "guards".into(),
        force,
        door: Default::default(),
    }
}

/// Fence A; fence B with --force; unfence B; power B on; fence B without --force. The last
/// fence used to "re-confirm" B's earlier proof, skip the storm guard and power B off.
#[tokio::test]
async fn a_proof_followed_by_a_power_on_is_not_reconfirmed_past_the_storm_guard() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let a = Scripted::new(
        "a",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let b = Scripted::new(
        "b",
        vec![
            now(PowerState::On),  // fence B: pre-read
            now(PowerState::Off), // fence B: after the command
            now(PowerState::Off),
            now(PowerState::Off), // on B: pre-read
            now(PowerState::On),  // on B: read back; from here on B runs
        ],
        vec![now(())],
    );
    let host_a = support::host("a", vec![vec![a.device("a-bmc")]], guarded());
    let host_b = support::host("b", vec![vec![b.device("b-bmc")]], guarded());
    assert_eq!(
        engine.fence(host_a, req(false)).await.unwrap().verdict,
        Verdict::PowerVerifiedOff
    );
    let forced = engine.fence(Arc::clone(&host_b), req(true)).await.unwrap();
    assert_eq!(
        forced.verdict,
        Verdict::PowerVerifiedOff,
        "{}",
        forced.detail
    );
    assert!(
        engine
            .unfence(Arc::clone(&host_b), req(false))
            .await
            .unwrap()
            .success
    );
    let on = engine.on(Arc::clone(&host_b), req(false)).await.unwrap();
    assert_eq!(on.verdict, Verdict::Done, "{}", on.detail);
    assert_eq!(b.accepted(Action::Off), 1);

    let again = engine.fence(host_b, req(false)).await.unwrap();
    assert_eq!(again.verdict, Verdict::Refused, "{}", again.detail);
    assert!(again.detail.contains("storm guard"), "{}", again.detail);
    assert_eq!(
        b.accepted(Action::Off),
        1,
        "no power-off may pass the storm guard"
    );
}

/// Within the tolerance window and past the storm limit, a re-confirmation of a host that
/// still reads off succeeds without a command; one that reads on sends nothing.
#[tokio::test]
async fn a_reconfirmation_past_the_storm_limit_may_only_read() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let a = Scripted::new(
        "a",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let b = Scripted::new(
        "b",
        vec![
            now(PowerState::On),
            now(PowerState::Off),
            now(PowerState::Off),
            now(PowerState::Off), // re-confirmation 1: still off
            now(PowerState::Off),
            now(PowerState::On), // re-confirmation 2: something powered it on
        ],
        vec![now(())],
    );
    let host_b = support::host("b", vec![vec![b.device("b-bmc")]], guarded());
    // B first (no storm yet), then A: now one other host (A) was fenced.
    assert!(
        engine
            .fence(Arc::clone(&host_b), req(false))
            .await
            .unwrap()
            .success
    );
    let host_a = support::host("a", vec![vec![a.device("a-bmc")]], guarded());
    assert!(engine.fence(host_a, req(true)).await.unwrap().success);

    let still = engine.fence(Arc::clone(&host_b), req(false)).await.unwrap();
    assert_eq!(still.verdict, Verdict::PowerVerifiedOff, "{}", still.detail);
    assert!(still.confirms.is_some());
    assert_eq!(b.accepted(Action::Off), 1);

    let back_on = engine.fence(host_b, req(false)).await.unwrap();
    assert_eq!(back_on.verdict, Verdict::Failed, "{}", back_on.detail);
    assert!(
        back_on.detail.contains("may only read"),
        "{}",
        back_on.detail
    );
    assert_eq!(
        b.accepted(Action::Off),
        1,
        "a re-confirmation past the storm limit sends nothing"
    );
}

/// After a front-end partition heals, every hook fires at once. Judged one by one, the first
/// `storm_limit` healthy hosts were powered off before the guard tripped; judged together
/// after the settle time, they are all refused, and so is a straggler while the storm lasts.
#[tokio::test]
async fn a_burst_of_fences_is_judged_together() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(SqliteJournal::open(dir.path()).unwrap()));
    let policy = Policy {
        storm_limit: 2,
        storm_settle: Duration::from_millis(300),
        ..guarded()
    };
    let mut drivers = Vec::new();
    let mut calls = Vec::new();
    for i in 0..4 {
        let d = Scripted::new(
            &format!("bmc{i}"),
            vec![now(PowerState::On), now(PowerState::Off)],
            vec![now(())],
        );
        let host = support::host(
            &format!("h{i}"),
            vec![vec![d.device("bmc")]],
            policy.clone(),
        );
        drivers.push(d);
        let engine = engine.clone();
        calls.push(tokio::spawn(
            async move { engine.fence(host, req(false)).await },
        ));
    }
    for c in calls {
        let p = c.await.unwrap().unwrap();
        assert_eq!(p.verdict, Verdict::Refused, "{}: {}", p.host, p.detail);
        assert!(p.detail.contains("fence --force"), "{}", p.detail);
    }
    assert!(
        drivers.iter().all(|d| d.accepted(Action::Off) == 0),
        "no host of the burst was powered off"
    );

    // A straggler a moment later: the storm is still on.
    let late = Scripted::new(
        "late",
        vec![now(PowerState::On), now(PowerState::Off)],
        vec![now(())],
    );
    let host = support::host("h9", vec![vec![late.device("bmc")]], policy.clone());
    assert_eq!(
        engine
            .fence(Arc::clone(&host), req(false))
            .await
            .unwrap()
            .verdict,
        Verdict::Refused
    );
    // The operator who knows the cloud lost them forces it.
    let forced = engine.fence(host, req(true)).await.unwrap();
    assert_eq!(
        forced.verdict,
        Verdict::PowerVerifiedOff,
        "{}",
        forced.detail
    );
    assert_eq!(late.accepted(Action::Off), 1);
}
