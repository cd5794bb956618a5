//! The fence-agents door: `fencegate agent` as Pacemaker calls a fence agent.

mod common;

use common::{Behaviour, Lab};
use predicates::prelude::*;

fn lab() -> Lab {
    Lab::new(
        &[
            ("node1", Behaviour::default()),
            ("node2", Behaviour::default()),
        ],
        "",
    )
}

fn agent(lab: &Lab, stdin: &str) -> assert_cmd::assert::Assert {
    let stdin = format!(
        "# from pacemaker\nconfig={}\n{stdin}",
        lab.config().display()
    );
    lab.cmd()
        .env_remove("FENCEGATE_CONFIG")
        .arg("agent")
        .write_stdin(stdin)
        .assert()
}

#[test]
fn off_status_on_with_the_agents_exit_codes() {
    let lab = lab();
    agent(&lab, "action=status\nport=node1\n")
        .code(0)
        .stdout(predicate::str::contains("Status: ON"));
    agent(&lab, "action=off\nnodename=ignored\nport=node1\n").code(0);
    assert_eq!(lab.power("node1"), "off");
    agent(&lab, "action=status\nplug=node1\n")
        .code(2)
        .stdout(predicate::str::contains("Status: OFF"));
    // The cluster manager brings the node back: the power-on lock is lifted for it.
    agent(&lab, "action=on\nplug=node1\n").code(0);
    assert_eq!(lab.power("node1"), "on");
    assert_eq!(lab.power("node2"), "on");
}

#[test]
fn reboot_is_verified_off_then_on() {
    let lab = lab();
    agent(&lab, "action=reboot\nplug=node2\n").code(0);
    assert_eq!(lab.power("node2"), "on");
    lab.cmd()
        .args(["history", "node2", "--details"])
        .assert()
        .code(0)
        // A verified off (a fence, with its hold), the agent door's own lock lifted, then on.
        .stdout(predicate::str::contains("fence node2: power_verified_off"))
        .stdout(predicate::str::contains("unfence node2: done"))
        .stdout(predicate::str::contains("on node2: done"))
        .stdout(predicate::str::contains("reading: off"));
}

#[test]
fn list_monitor_metadata_validate() {
    let lab = lab();
    agent(&lab, "action=list\n")
        .code(0)
        .stdout(predicate::str::contains("node1,\nnode2,"));
    agent(&lab, "action=monitor\n").code(0);
    agent(&lab, "action=validate-all\n").code(0);
    lab.cmd()
        .args(["agent", "-o", "metadata"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            r#"<resource-agent name="fence_fencegate""#,
        ));
    std::fs::write(lab.config(), "[hosts.x]\nlevels = 3\n").unwrap();
    agent(&lab, "action=validate-all\n")
        .code(1)
        .stderr(predicate::str::contains("fencegate.toml:2"));
}

#[test]
fn unknown_host_or_action_fails() {
    let lab = lab();
    agent(&lab, "action=off\nplug=node9\n")
        .code(1)
        .stderr(predicate::str::contains("node9"));
    agent(&lab, "action=explode\nplug=node1\n").code(1);
    agent(&lab, "action=off\n")
        .code(1)
        .stderr(predicate::str::contains("plug"));
    assert_eq!(lab.power("node1"), "on");
}

/// A caller cannot pick a fresh journal (no lock, no storm history) for an inventory host.
#[test]
fn the_inventory_journal_cannot_be_swapped_from_stdin() {
    let lab = lab();
    let other = lab.dir.path().join("elsewhere");
    agent(
        &lab,
        &format!("action=off\nport=node1\nstate_dir={}\n", other.display()),
    )
    .code(1)
    .stderr(predicate::str::contains("is not the journal of inventory"));
    assert_eq!(lab.power("node1"), "on", "nothing was powered off");
    assert!(!other.exists(), "no journal was created there");
}

/// Exit 2 means "status: off" to every fence-agents caller: no error of the door may exit 2.
#[test]
fn no_failure_of_the_door_reads_as_off() {
    let lab = lab();
    let mut stdin = format!(
        "config={}\naction=status\nport=node1\n",
        lab.config().display()
    )
    .into_bytes();
    stdin.extend_from_slice(b"\xff\xfe not text\n");
    lab.cmd()
        .env_remove("FENCEGATE_CONFIG")
        .arg("agent")
        .write_stdin(stdin)
        .assert()
        .code(1);
    assert_eq!(lab.power("node1"), "on");
}

/// Two doors, one lock: a lock set through another door (an operator's or OpenNebula's
/// fence) is not the cluster manager's to lift.
#[test]
fn the_agent_door_lifts_only_the_locks_it_set() {
    let lab = lab();
    lab.cmd().args(["fence", "node1"]).assert().code(0);
    agent(&lab, "action=on\nport=node1\n")
        .code(1)
        .stderr(predicate::str::contains("lifts only locks it set"));
    assert_eq!(lab.power("node1"), "off", "the other door's lock held");

    // A reboot through the agent door: the off is verified (the fence it asks for), the on
    // is refused by the other door's lock: success with a warning, as fence-agents do.
    agent(&lab, "action=reboot\nport=node1\n")
        .code(0)
        .stderr(predicate::str::contains(
            "verified off but not powered on again",
        ));
    assert_eq!(lab.power("node1"), "off");

    // Its own lock it lifts.
    agent(&lab, "action=off\nport=node2\n").code(0);
    agent(&lab, "action=on\nport=node2\n").code(0);
    assert_eq!(lab.power("node2"), "on");

    // The operator lifts any lock.
    lab.cmd().args(["unfence", "node1"]).assert().code(0);
    agent(&lab, "action=on\nport=node1\n").code(0);
    assert_eq!(lab.power("node1"), "on");
}

/// A host whose policy shares its locks with the cluster manager.
#[test]
fn a_shared_lock_may_be_lifted_by_the_cluster_manager() {
    let lab = Lab::new(
        &[("node1", Behaviour::default())],
        "cluster_manager_may_unfence = true",
    );
    lab.cmd().args(["fence", "node1"]).assert().code(0);
    agent(&lab, "action=on\nport=node1\n").code(0);
    assert_eq!(lab.power("node1"), "on");
}
