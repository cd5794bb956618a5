//! README's main command must keep working: the demo proves three failed hosts off through
//! IPMI, two PDU outlets and Redfish, and the guards hold.

use predicates::prelude::*;

fn fencegate(state: &std::path::Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    c.env_remove("FENCEGATE_CONFIG")
        .arg("--state-dir")
        .arg(state)
        .timeout(std::time::Duration::from_secs(90));
    c
}

#[test]
fn demo_proves_the_failed_hosts_off() {
    let dir = tempfile::tempdir().unwrap();
    fencegate(dir.path())
        .arg("demo")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("fence node3: power_verified_off"))
        .stdout(predicate::str::contains(
            "level 2: power verified off by pdu-a-4 + pdu-b-4",
        ))
        .stdout(predicate::str::contains("fence node5: power_verified_off"))
        .stdout(predicate::str::contains("reading: powering-off"))
        .stdout(predicate::str::contains(
            "node1, node2 and every other outlet: untouched, on",
        ))
        .stdout(predicate::str::contains("refused: power-on lock"))
        .stdout(predicate::str::contains("refused: storm guard"))
        .stdout(predicate::str::contains("the guards held"))
        .stderr(predicate::str::is_empty());
    // The proofs are durable, with each channel's identity: a later process reads them.
    fencegate(dir.path())
        .arg("history")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ipmi-guid="))
        .stdout(predicate::str::contains("tls-sha256="))
        .stdout(predicate::str::contains("snmp-sysname="));
}

/// The demo's simulated fences must never land in a real journal: they would count against
/// the storm guard and refuse the next real fence.
#[test]
fn the_demo_never_touches_a_journal_it_did_not_create() {
    let real = tempfile::tempdir().unwrap();
    // A real journal with history in it.
    let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    c.env_remove("FENCEGATE_CONFIG")
        .env("FENCEGATE_STATE_DIR", real.path())
        .args(["unfence", "somehost"])
        .assert()
        .code(0);

    // Inherited from the environment: ignored.
    let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    c.env_remove("FENCEGATE_CONFIG")
        .env("FENCEGATE_STATE_DIR", real.path())
        .arg("demo")
        .timeout(std::time::Duration::from_secs(90))
        .assert()
        .code(0);
    let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    c.env_remove("FENCEGATE_CONFIG")
        .env("FENCEGATE_STATE_DIR", real.path())
        .args(["history"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("node3").not());

    // Named explicitly while it holds a journal: refused before anything runs.
    fencegate(real.path())
        .env_remove("FENCEGATE_STATE_DIR")
        .arg("demo")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already holds a journal"));
}
