//! Dynamic-library plugins from the command line: `plugin check`, and a fence through the
//! example plugin with verification by the engine.

use fencegate_acme_plugin::sim::Simulator;
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

/// The example plugin's library, built into the same target directory as this test.
fn acme_plugin() -> PathBuf {
    fencegate_test_kit::built_library("fencegate_acme_plugin", "fencegate-acme-plugin")
}

fn token_file(dir: &std::path::Path) -> PathBuf {
    let p = dir.join("token");
    std::fs::write(&p, "acme-token\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

#[test]
fn plugin_check_reports_and_never_powers_anything() {
    let sim = Simulator::start("acme-token", Duration::from_millis(50)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    assert_cmd::Command::cargo_bin("fencegate")
        .unwrap()
        .args(["plugin", "check"])
        .arg(acme_plugin())
        .args(["-o", &format!("target={}", sim.addr())])
        .arg("--secret-file")
        .arg(format!("token={}", token.display()))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("plugin acme-powerctl"))
        .stdout(predicate::str::contains("abi:     1.0"))
        .stdout(predicate::str::contains("passed"));
    assert!(
        sim.commands().is_empty(),
        "check must not send power commands"
    );
    // A secret on the command line is refused; a missing library is a usage error.
    assert_cmd::Command::cargo_bin("fencegate")
        .unwrap()
        .args(["plugin", "check", "/nonexistent/x.so", "-o", "token=abc"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "secrets never go on the command line",
        ));
    assert_cmd::Command::cargo_bin("fencegate")
        .unwrap()
        .args(["plugin", "check", "/nonexistent/x.so"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/x.so"));
}

#[test]
fn a_host_fenced_through_a_plugin_is_verified_by_the_engine() {
    let sim = Simulator::start("acme-token", Duration::from_millis(300)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let config = dir.path().join("fencegate.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\n[policy]\noff_hold = \"300ms\"\nstorm_settle = \"0s\"\n[devices.acme]\ndriver = \"plugin\"\naddress = \"{}\"\ntarget = \"{}\"\ntoken_file = \"{}\"\n[hosts.n1]\nlevels = [[\"acme\"]]\n",
            acme_plugin().display(),
            sim.addr(),
            token.display()
        ),
    )
    .unwrap();
    let out = assert_cmd::Command::cargo_bin("fencegate")
        .unwrap()
        .env("FENCEGATE_CONFIG", &config)
        .args(["--json", "fence", "n1"])
        .timeout(Duration::from_secs(60))
        .assert()
        .code(0);
    let proofs: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let p = &proofs[0];
    assert_eq!(p["verdict"], "power_verified_off");
    // The plugin only reported readings: the engine saw the transition and confirmed Off.
    let events = p["levels"][0]["devices"][0]["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["state"] == "PoweringOff"),
        "{events:?}"
    );
    assert_eq!(sim.state(), "off");
    assert_eq!(sim.commands(), ["off"]);
}
