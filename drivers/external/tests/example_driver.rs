//! The example scripted driver end to end through `ExternalFactory`.

mod common;

use common::*;
use fencegate_driver::{Action, ErrorKind, PowerState};
use std::time::Duration;

#[tokio::test]
async fn status_off_on_through_the_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, state) = scripted(dir.path(), "on", &[]);
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);

    let receipt = driver.set_power(Action::Off, deadline(5000)).await.unwrap();
    assert_eq!(receipt.detail, "off done");
    assert_eq!(read_state(&state), "off");
    assert_eq!(
        driver.status(deadline(5000)).await.unwrap(),
        PowerState::Off
    );

    driver.set_power(Action::On, deadline(5000)).await.unwrap();
    assert_eq!(read_state(&state), "on");
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);

    let identity = driver.identity();
    assert_eq!(identity.len(), 1, "{identity:?}");
    assert_eq!(identity[0].kind, "scripted-state-file");
    assert_eq!(
        std::path::Path::new(&identity[0].value),
        state.canonicalize().unwrap()
    );

    let caps = driver.capabilities();
    assert!(caps.reads_power_state);
    assert_eq!(caps.actions, [Action::Off, Action::On, Action::Cycle]);
    driver.release(deadline(3000)).await.unwrap();
}

#[tokio::test]
async fn the_file_is_the_truth_between_calls() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, state) = scripted(dir.path(), "off", &[]);
    assert_eq!(
        driver.status(deadline(5000)).await.unwrap(),
        PowerState::Off
    );
    std::fs::write(&state, "on\n").unwrap();
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
    std::fs::write(&state, "smoke\n").unwrap();
    assert_eq!(
        driver.status(deadline(5000)).await.unwrap(),
        PowerState::Unknown("smoke".into())
    );
}

#[tokio::test]
async fn delayed_off_reads_on_until_the_delay_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, state) = scripted(dir.path(), "on", &[("off_delay_ms", "600")]);
    let receipt = driver.set_power(Action::Off, deadline(5000)).await.unwrap();
    assert!(receipt.detail.contains("600 ms"), "{}", receipt.detail);
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
    assert_eq!(read_state(&state), "on");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        driver.status(deadline(5000)).await.unwrap(),
        PowerState::Off
    );
    assert_eq!(read_state(&state), "off");
}

#[tokio::test]
async fn stuck_relay_acknowledges_but_stays_on() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, state) = scripted(dir.path(), "on", &[("stuck", "1")]);
    driver.set_power(Action::Off, deadline(5000)).await.unwrap();
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
    assert_eq!(read_state(&state), "on");

    // The sidecar file makes a device stuck without reconfiguring it.
    let (driver, state) = scripted(dir.path(), "on", &[]);
    std::fs::write(dir.path().join("power.stuck"), "").unwrap();
    driver.set_power(Action::Off, deadline(5000)).await.unwrap();
    assert_eq!(read_state(&state), "on");
    let log = std::fs::read_to_string(dir.path().join("power.log")).unwrap();
    assert!(log.contains("set_power off ignored(stuck)"), "{log}");
}

#[tokio::test]
async fn cycle_ends_on_and_injected_failures_keep_their_kind() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, state) = scripted(dir.path(), "off", &[]);
    driver
        .set_power(Action::Cycle, deadline(5000))
        .await
        .unwrap();
    assert_eq!(read_state(&state), "on");
    let e = driver
        .set_power(Action::GracefulOff, deadline(5000))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");

    let (driver, _) = scripted(dir.path(), "on", &[("fail", "busy")]);
    let e = driver.status(deadline(5000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Busy);
    assert!(
        e.detail
            .starts_with("scripted-driver for device `dev-under-test`: injected failure"),
        "{e}"
    );
    // A driver's own error is an answer, not a crash: the same child keeps serving.
    let e = driver.status(deadline(5000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Busy);
}

#[tokio::test]
async fn configure_errors_come_back_from_the_driver() {
    let spec = external_spec(&example_driver(), &[("fail", "not-a-kind")]);
    let e = external(&spec).status(deadline(5000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("refused its configuration"), "{e}");
}

#[tokio::test]
async fn a_driver_without_status_is_never_asked_for_a_reading() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, _) = scripted(dir.path(), "off", &[("args", "--no-status")]);
    driver.set_power(Action::Off, deadline(5000)).await.unwrap();
    assert!(!driver.capabilities().reads_power_state);
    let e = driver.status(deadline(5000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
}

#[tokio::test]
async fn a_slow_answer_past_the_deadline_is_a_timeout_and_the_next_call_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, _) = scripted(dir.path(), "on", &[("reply_delay_ms", "3000")]);
    let started = std::time::Instant::now();
    let e = driver.status(deadline(1500)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(2800),
        "{:?}",
        started.elapsed()
    );

    let (driver, _) = scripted(dir.path(), "on", &[]);
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn a_deadline_already_past_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, state) = scripted(dir.path(), "on", &[]);
    let e = driver
        .set_power(Action::Off, std::time::Instant::now())
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert_eq!(read_state(&state), "on");
    assert!(
        !dir.path().join("power.log").exists(),
        "the driver never saw a request"
    );
}

#[tokio::test]
async fn a_call_abandoned_by_its_caller_does_not_confuse_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, _) = scripted(dir.path(), "on", &[("reply_delay_ms", "400")]);
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
    // The engine may drop a call's future at its own deadline, mid-request.
    let abandoned =
        tokio::time::timeout(Duration::from_millis(100), driver.status(deadline(5000))).await;
    assert!(abandoned.is_err(), "the call was cut off");
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn concurrent_callers_are_served_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, _) = scripted(dir.path(), "on", &[]);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let driver = driver.clone();
            tokio::spawn(async move { driver.status(deadline(10_000)).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), PowerState::On);
    }
}
