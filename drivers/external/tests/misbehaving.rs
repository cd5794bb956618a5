//! Drivers that crash, lie, hang or flood: each must become one clear error, never a hang or
//! a panic, and fencegate must keep working afterwards.

mod common;

use common::*;
use fencegate_driver::{Action, DriverError, ErrorKind, PowerState};
use std::time::{Duration, Instant};

/// After every misbehaviour, a fresh well-behaved driver still works.
async fn assert_fencegate_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let (driver, _) = scripted(dir.path(), "off", &[]);
    assert_eq!(
        driver.status(deadline(5000)).await.unwrap(),
        PowerState::Off
    );
}

async fn status_error(script: &str, args: &str, ms: u64) -> DriverError {
    let spec = with_secret(
        external_spec(&fixture(script), &[("args", args)]),
        "password",
        "Sup3rSecretValue",
    );
    let driver = external(&spec);
    let e = driver.status(deadline(ms)).await.unwrap_err();
    eprintln!("{script} {args}: {e}");
    e
}

#[tokio::test]
async fn exit_mid_request_is_unreachable_with_the_last_words() {
    let e = status_error("crash-mid-request.sh", "", 5000).await;
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(
        e.detail.contains("closed its output (exit status 3)"),
        "{e}"
    );
    assert!(e.detail.contains("fatal: lost the device"), "{e}");
    assert_fencegate_still_works().await;
}

#[tokio::test]
async fn exit_before_hello_is_unreachable() {
    let e = status_error("exit-at-once.sh", "", 5000).await;
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(
        e.detail.contains("exit status 7") && e.detail.contains("/dev/ipmi0"),
        "{e}"
    );
}

#[tokio::test]
async fn a_missing_program_is_refused_at_build_or_reported_at_the_call() {
    use fencegate_driver::DriverFactory;
    let spec = external_spec(std::path::Path::new("/nonexistent/driver"), &[]);
    let Err(e) = fencegate_external::ExternalFactory.build(&spec) else {
        panic!("a program that is not there cannot be checked, so it is refused");
    };
    assert_eq!(e.key.as_deref(), Some("address"), "{e}");
    assert!(e.message.contains("/nonexistent/driver"), "{e}");

    // Removed after the build: one clear error at the call, not a panic.
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("driver");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        &program,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let driver = external(&external_spec(&program, &[]));
    std::fs::remove_file(&program).unwrap();
    let e = driver.status(deadline(2000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(
        e.detail
            .contains(&format!("cannot start {}", program.display())),
        "{e}"
    );
}

#[tokio::test]
async fn crashes_are_restarted_a_bounded_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    let starts = dir.path().join("starts");
    let spec = external_spec(
        &fixture("crash-mid-request.sh"),
        &[("args", &starts.to_string_lossy()), ("max_respawns", "2")],
    );
    let driver = external(&spec);
    for _ in 0..3 {
        let e = driver.status(deadline(5000)).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    }
    let refused_at = Instant::now();
    let e = driver.status(deadline(5000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(e.detail.contains("failed 3 times in a row"), "{e}");
    // Refused without starting the program again (the count below says so from the
    // program's side): well before the 5 s deadline.
    assert!(
        refused_at.elapsed() < Duration::from_millis(2500),
        "fails fast, not at the deadline: {:?}",
        refused_at.elapsed()
    );
    let count = || std::fs::read_to_string(&starts).unwrap().lines().count();
    assert_eq!(count(), 3, "one start and two re-spawns");

    // Releasing the device gives the budget back.
    driver.release(deadline(2000)).await.unwrap();
    assert!(driver.status(deadline(5000)).await.is_err());
    assert_eq!(count(), 4);
    assert_fencegate_still_works().await;
}

#[tokio::test]
async fn garbage_instead_of_hello_or_answer_is_a_protocol_error() {
    for when in ["hello", "request"] {
        let started = Instant::now();
        let e = status_error("garbage.sh", when, 5000).await;
        assert_eq!(e.kind, ErrorKind::Protocol, "{when}: {e}");
        assert!(e.detail.contains("not a JSON message"), "{e}");
        assert!(
            !e.detail.contains("html") && !e.detail.contains("friendly"),
            "{e}"
        );
        // The program sleeps 5 s after its garbage and the deadline is 5 s: an error well
        // before either was not waiting for them.
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "no waiting for the sleep: {:?}",
            started.elapsed()
        );
    }
    assert_fencegate_still_works().await;
}

#[tokio::test]
async fn a_made_up_state_is_refused() {
    let e = status_error("lies.sh", "", 5000).await;
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(
        e.detail.contains("Fenced"),
        "serde names the bad variant: {e}"
    );
}

#[tokio::test]
async fn wrong_major_is_refused_before_any_secret_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let received = dir.path().join("received");
    let e = status_error("wrong-major.sh", &received.to_string_lossy(), 5000).await;
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(
        e.detail.contains("2.0") && e.detail.contains("major"),
        "{e}"
    );
    let got = std::fs::read_to_string(&received).unwrap_or_default();
    assert!(got.contains(r#""type":"hello""#), "it saw our hello: {got}");
    assert!(
        !got.contains("configure") && !got.contains("Sup3rSecretValue"),
        "{got}"
    );
    assert_fencegate_still_works().await;
}

#[tokio::test]
async fn a_hang_is_a_timeout_at_the_deadline_and_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let spec = external_spec(&fixture("hang.sh"), &[("args", &pids.to_string_lossy())]);
    let driver = external(&spec);
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);

    let started = Instant::now();
    let e = driver
        .set_power(Action::Off, started + Duration::from_millis(800))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(took >= Duration::from_millis(790), "{took:?}");
    assert!(
        took < Duration::from_millis(2000),
        "returned close to the deadline: {took:?}"
    );
    let pids = read_pids(&pids);
    assert_eq!(pids.len(), 2, "the shell and its sleep: {pids:?}");
    assert!(
        wait_gone(&pids, Duration::from_secs(2)),
        "left behind: {pids:?}"
    );
    assert_fencegate_still_works().await;
}

#[tokio::test]
async fn dropping_a_driver_kills_its_child() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let spec = external_spec(&fixture("hang.sh"), &[("args", &pids.to_string_lossy())]);
    let driver = external(&spec);
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
    let pids = read_pids(&pids);
    assert_eq!(pids.len(), 1);
    assert!(!process_gone(pids[0]), "alive between calls");
    drop(driver);
    assert!(
        wait_gone(&pids, Duration::from_secs(2)),
        "left behind: {pids:?}"
    );
}

#[tokio::test]
async fn release_stops_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let spec = external_spec(&fixture("hang.sh"), &[("args", &pids.to_string_lossy())]);
    let driver = external(&spec);
    driver.status(deadline(5000)).await.unwrap();
    driver.release(deadline(3000)).await.unwrap();
    assert!(wait_gone(&read_pids(&pids), Duration::from_secs(1)));
    // And the next call starts a new one.
    assert_eq!(driver.status(deadline(5000)).await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn a_stderr_flood_is_drained_bounded_and_redacted() {
    let spec = with_secret(
        external_spec(&fixture("stderr-flood.sh"), &[]),
        "password",
        "Sup3rSecretValue",
    );
    let driver = external(&spec);
    // Megabytes of stderr must not block the driver (a full pipe) nor fill our memory.
    assert_eq!(
        driver.status(deadline(10_000)).await.unwrap(),
        PowerState::On
    );
    let e = driver.status(deadline(5000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(e.detail.contains("configure was:"), "{e}");
    assert!(e.detail.contains("[redacted]"), "{e}");
    assert!(!e.detail.contains("Sup3rSecretValue"), "{e}");
    assert!(e.detail.len() < 4096, "bounded: {} bytes", e.detail.len());
    assert!(e.detail.contains("bytes)"), "says it kept only a tail: {e}");
    assert_fencegate_still_works().await;
}

#[tokio::test]
async fn an_endless_line_is_cut_off() {
    let started = Instant::now();
    let e = status_error("long-line.sh", "", 5000).await;
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.detail.contains("longer than 65536 bytes"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_fencegate_still_works().await;
}

#[tokio::test]
async fn drivers_inherit_only_a_minimal_environment() {
    // Cargo runs tests with CARGO_* variables set; a secret given by `password_env` would
    // sit in fencegate's environment just the same.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO_")));
    let driver = external(&external_spec(&fixture("env-probe.sh"), &[]));
    let PowerState::Unknown(names) = driver.status(deadline(5000)).await.unwrap() else {
        panic!("the probe answers with an Unknown reading");
    };
    let names: Vec<&str> = names.split(',').filter(|n| !n.is_empty()).collect();
    assert!(names.contains(&"PATH"), "{names:?}");
    for name in &names {
        assert!(
            fencegate_external::INHERITED_ENV.contains(name)
                || ["PWD", "SHLVL", "_"].contains(name),
            "{name} leaked into the driver's environment: {names:?}"
        );
    }
}
