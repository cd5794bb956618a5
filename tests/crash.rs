//! A fence killed with SIGKILL mid-operation: the journal keeps what was recorded, and the
//! next start reconciles the open attempt by reading the device again, never assuming.

mod common;

use common::{Behaviour, Lab};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A lab with host `n1` behaving as `b`, and `fencegate fence n1` running against it with
/// deadlines long enough to be killed mid-way.
fn fencing_n1(b: Behaviour) -> (Lab, Child) {
    let lab = Lab::new(&[("n1", b)], "");
    let child = Command::new(assert_cmd::cargo::cargo_bin("fencegate"))
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
    (lab, child)
}

#[test]
fn sigkill_mid_fence_is_reconciled_on_restart() {
    // The device acknowledges power-off but only turns off after 20 s: the fence is still
    // polling when it is killed.
    let (lab, mut child) = fencing_n1(Behaviour {
        off_delay_ms: 20_000,
        ..Behaviour::default()
    });
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

/// The processes whose parent is `pid`, with their command lines.
fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state, ppid, …
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        let ppid = after.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(pid) {
            let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
            out.push((child, String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    out
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: it can no longer act).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
            after.split_whitespace().next() == Some("Z")
        }
    }
}

#[test]
fn sigkill_of_fencegate_takes_its_driver_process_along() {
    // The driver sits on its answer for 30 s: a driver outliving fencegate could still act
    // on a command nobody will record.
    let (_lab, mut child) = fencing_n1(Behaviour {
        reply_delay_ms: 30_000,
        ..Behaviour::default()
    });
    let t0 = Instant::now();
    let driver = loop {
        if let Some((pid, _)) = children_of(child.id())
            .into_iter()
            .find(|(_, cmd)| cmd.contains("scripted-driver"))
        {
            break pid;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the driver never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!gone(driver), "the driver should be waiting on its reply");
    child.kill().unwrap();
    child.wait().unwrap();
    let t0 = Instant::now();
    while !gone(driver) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "driver {driver} outlived fencegate"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
