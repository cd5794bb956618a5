//! README's main command must keep working: the demo proves a simulated host off.

use predicates::prelude::*;

#[test]
fn demo_proves_the_failed_host_off() {
    let dir = tempfile::tempdir().unwrap();
    assert_cmd::Command::cargo_bin("fencegate")
        .unwrap()
        .env_remove("FENCEGATE_CONFIG")
        .args(["--state-dir"])
        .arg(dir.path())
        .arg("demo")
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("fence node3: power_verified_off"))
        .stdout(predicate::str::contains(
            "node3 is off; the other hosts are still on",
        ))
        .stdout(predicate::str::contains("refused: power-on lock"));
    // The proof is durable: a later process reads it from the journal.
    assert_cmd::Command::cargo_bin("fencegate")
        .unwrap()
        .args(["--state-dir"])
        .arg(dir.path())
        .args(["history", "node3"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ipmi-guid="));
}
