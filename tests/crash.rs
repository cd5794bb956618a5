//! A fence killed with SIGKILL mid-operation: the journal keeps what was recorded, and the
//! next start reconciles the open attempt by reading the device again, never assuming.

mod common;

use common::{Behaviour, Lab};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigkill_mid_fence_is_reconciled_on_restart() {
    // The device acknowledges power-off but only turns off after 20 s: the fence is still
    // polling when it is killed.
    let lab = Lab::new(
        &[(
            "n1",
            Behaviour {
                off_delay_ms: 20_000,
                ..Behaviour::default()
            },
        )],
        "",
    );
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("fencegate"))
        .env("FENCEGATE_CONFIG", lab.config())
        .args([
            "fence",
            "n1",
            "--timeout",
            "60s",
            "--attempt-timeout",
            "60s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the command is journaled (the device's pending file appears once it got it).
    let pending = lab.dir.path().join("n1.power.pending");
    let t0 = Instant::now();
    while !pending.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the off command never reached the device"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();

    // Restart: any command reconciles first.
    let out = lab.cmd().args(["--json", "history", "n1"]).assert().code(0);
    let history: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let p = &history[0];
    assert_eq!(p["verdict"], "failed");
    assert_eq!(p["success"], false);
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("interrupted before a verdict"), "{detail}");
    assert!(detail.contains("does not read off"), "{detail}");
    // What the dead process recorded is intact: its intent, the accepted command, readings.
    let events = p["levels"][0]["devices"][0]["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"command_intent"), "{kinds:?}");
    assert!(kinds.contains(&"command_accepted"), "{kinds:?}");
    // …followed by the reconciliation's own fresh reading.
    assert!(events.iter().any(|e| e["event"] == "note"
        && e["text"].as_str().unwrap().contains("reconciliation")));
    assert_eq!(events.last().unwrap()["event"], "reading");
    // Reconciled once: a second start finds nothing more to do.
    let out = lab.cmd().args(["--json", "history", "n1"]).assert().code(0);
    let again: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(again.as_array().unwrap().len(), 1);
}
