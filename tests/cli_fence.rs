//! The inventory CLI: fence, status, on/off, unfence, history, check, list; exit codes and
//! JSON output; guards across processes.

mod common;

use common::{Behaviour, Lab, scripted_driver};
use predicates::prelude::*;

#[test]
fn fence_a_hostrange_with_json_proofs() {
    let hosts: Vec<(String, Behaviour)> = (1..=3)
        .map(|i| (format!("node{i:02}"), Behaviour::default()))
        .collect();
    let refs: Vec<(&str, Behaviour)> = hosts.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let lab = Lab::new(&refs, "storm_limit = 10");
    let out = lab
        .cmd()
        .args(["--json", "fence", "node[01-03]", "--reason", "test"])
        .assert()
        .code(0);
    let proofs: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let proofs = proofs.as_array().unwrap();
    assert_eq!(proofs.len(), 3);
    for p in proofs {
        assert_eq!(p["verdict"], "power_verified_off");
        assert_eq!(p["success"], true);
        assert_eq!(p["reason"], "test");
        let events = p["levels"][0]["devices"][0]["events"].as_array().unwrap();
        assert!(events.iter().any(|e| e["event"] == "command_intent"));
        let offs = events
            .iter()
            .filter(|e| e["event"] == "reading" && e["state"] == "Off")
            .count();
        assert!(offs >= 2, "{offs} off readings");
        let held = p["levels"][0]["devices"][0]["off_held_ms"]
            .as_u64()
            .unwrap();
        assert!(held >= 300, "the proof states the hold: {held}");
    }
    for i in 1..=3 {
        assert_eq!(lab.power(&format!("node{i:02}")), "off");
    }
}

#[test]
fn storm_guard_holds_across_processes_and_force_overrides_it() {
    let names = ["a", "b", "c"];
    let hosts: Vec<(&str, Behaviour)> = names.iter().map(|n| (*n, Behaviour::default())).collect();
    let lab = Lab::new(&hosts, "storm_limit = 2");
    lab.cmd().args(["fence", "a"]).assert().code(0);
    lab.cmd().args(["fence", "b"]).assert().code(0);
    lab.cmd()
        .args(["fence", "c"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("storm guard"));
    assert_eq!(lab.power("c"), "on");
    lab.cmd().args(["fence", "c", "--force"]).assert().code(0);
    assert_eq!(lab.power("c"), "off");
}

#[test]
fn power_on_lock_until_unfence() {
    let lab = Lab::new(&[("n1", Behaviour::default())], "");
    lab.cmd().args(["fence", "n1"]).assert().code(0);
    lab.cmd()
        .args(["on", "n1"])
        .assert()
        .code(3)
        .stdout(predicate::str::contains("unfence"));
    assert_eq!(lab.power("n1"), "off");
    lab.cmd()
        .args(["unfence", "n1"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("lifted"));
    lab.cmd().args(["on", "n1"]).assert().code(0);
    assert_eq!(lab.power("n1"), "on");
    // `off` is maintenance: verified, but no lock.
    lab.cmd().args(["off", "n1"]).assert().code(0);
    lab.cmd().args(["on", "n1"]).assert().code(0);
    lab.cmd()
        .args(["history", "n1"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("unfence n1: done"));
}

#[test]
fn status_reads_without_acting() {
    let lab = Lab::new(&[("n1", Behaviour::default())], "");
    lab.cmd()
        .args(["status", "n1"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("n1-bmc"));
    let out = lab.cmd().args(["--json", "status", "n1"]).assert().code(0);
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v[0]["devices"][0]["state"], "On");
    assert_eq!(lab.power("n1"), "on");
}

#[test]
fn ad_hoc_devices_without_an_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let power = dir.path().join("p");
    let url = format!(
        "external://{}?state_file={}",
        scripted_driver().display(),
        power.display()
    );
    let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    c.env_remove("FENCEGATE_CONFIG")
        .env("FENCEGATE_STATE_DIR", dir.path().join("state"))
        .args(["fence", "--device", &url])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("power_verified_off"));
    assert_eq!(std::fs::read_to_string(&power).unwrap().trim(), "off");
    let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    c.env("FENCEGATE_STATE_DIR", dir.path().join("state"))
        .args(["fence", "--device", "ipmi://admin:secret@127.0.0.1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("must not carry a password"))
        .stderr(predicate::str::contains("secret").count(0));
    let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    c.env("FENCEGATE_STATE_DIR", dir.path().join("state"))
        .args(["fence", "--device", "warp://admin@127.0.0.1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown driver `warp`"));
}

#[test]
fn check_names_file_line_and_key() {
    let lab = Lab::new(&[("n1", Behaviour::default())], "");
    lab.cmd()
        .args(["check", "--probe"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("0 problems"));
    let cases = [
        ("[policy]\nconfirmations = 0\n", ":1: policy", "fresh Off"),
        (
            "[policy]\nconfirmatons = 2\n",
            ":2: policy.confirmatons",
            "unknown policy key",
        ),
        (
            "[devices.d]\ndriver = \"ipmi\"\naddress = \"127.0.0.1\"\npassword = \"x\"\n",
            ":4: devices.d.password",
            "password_file",
        ),
        (
            "[devices.d]\ndriver = \"ipmi\"\naddress = \"127.0.0.1\"\nciper = \"3\"\npassword_env = \"HOME\"\n",
            ":4: devices.d.ciper",
            "unknown option",
        ),
        (
            "[devices.d]\ndriver = \"warp\"\naddress = \"x\"\n",
            ":2: devices.d.driver",
            "unknown driver",
        ),
        (
            "[hosts.h]\nlevels = [[\"nope\"]]\n",
            ":2: hosts.h.levels",
            "not defined",
        ),
        ("[hosts.h]\nlevels = \"x\"\n", ":2:", "invalid type"),
        ("x = = 1\n", ":1:", ""),
    ];
    for (toml, at, message) in cases {
        std::fs::write(lab.config(), toml).unwrap();
        // Structural errors refuse the file (stderr); device problems are listed (stdout).
        let out = lab.cmd().arg("check").assert().code(2);
        let o = out.get_output();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            text.contains("fencegate.toml") && text.contains(at) && text.contains(message),
            "{toml:?}: {text}"
        );
    }
}

#[test]
fn world_readable_secret_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new(&[], "");
    let pw = lab.dir.path().join("pw");
    std::fs::write(&pw, "password\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        lab.config(),
        format!("[devices.d]\ndriver = \"ipmi\"\naddress = \"127.0.0.1\"\nuser = \"admin\"\npassword_file = \"{}\"\n", pw.display()),
    )
    .unwrap();
    lab.cmd()
        .arg("check")
        .assert()
        .code(2)
        .stdout(predicate::str::contains("chmod 600"));
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    lab.cmd().arg("check").assert().code(0);
}

#[test]
fn list_shows_levels_and_drivers() {
    let lab = Lab::new(&[("n1", Behaviour::default())], "");
    lab.cmd()
        .arg("list")
        .assert()
        .code(0)
        .stdout(predicate::str::contains("n1-bmc"));
    lab.cmd()
        .args(["list", "--drivers"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("ipmi"))
        .stdout(predicate::str::contains("external"));
}

#[test]
fn the_example_inventory_is_valid_but_for_its_secrets() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fencegate.toml");
    let out = assert_cmd::Command::cargo_bin("fencegate")
        .unwrap()
        .env_remove("KVM02_BMC_PASSWORD")
        .arg("--config")
        .arg(&example)
        .arg("check")
        .assert()
        .code(2);
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let problems: Vec<&str> = text.lines().filter(|l| l.starts_with("problem:")).collect();
    assert_eq!(problems.len(), 4, "{text}");
    for p in problems {
        assert!(
            p.contains("No such file") || p.contains("is not set"),
            "{p}"
        );
    }
    assert!(text.contains("2 hosts, 4 devices"), "{text}");
}

#[test]
fn a_device_that_cannot_read_power_is_not_a_status_failure() {
    let lab = Lab::new(&[("n1", Behaviour::default())], "");
    let blind = lab.dir.path().join("blind.power");
    let mut toml = std::fs::read_to_string(lab.config()).unwrap();
    toml = toml.replace(
        "levels = [[\"n1-bmc\"]]",
        "levels = [[\"n1-inband\", \"n1-bmc\"]]",
    );
    toml.push_str(&format!(
        "\n[devices.n1-inband]\ndriver = \"external\"\naddress = \"{}\"\nargs = \"--no-status\"\nreads_power_state = false\nstate_file = \"{}\"\n",
        scripted_driver().display(),
        blind.display()
    ));
    std::fs::write(lab.config(), toml).unwrap();
    lab.cmd()
        .args(["status", "n1"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "cannot read power state (in-band only)",
        ));
    lab.cmd().args(["check", "--probe"]).assert().code(0);
    // The in-band step never counts as proof, but the BMC beside it does.
    lab.cmd()
        .args(["fence", "n1"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("power verified off by n1-bmc"));
}

#[test]
fn an_undeclared_blind_device_fails_its_level_and_check_says_so() {
    // The same in-band device, not declared blind: at first contact its level loses a
    // reader, and the BMC's reading alone must not prove the level.
    let lab = Lab::new(&[("n1", Behaviour::default())], "");
    let blind = lab.dir.path().join("blind.power");
    let mut toml = std::fs::read_to_string(lab.config()).unwrap();
    toml = toml.replace(
        "levels = [[\"n1-bmc\"]]",
        "levels = [[\"n1-inband\", \"n1-bmc\"]]",
    );
    toml.push_str(&format!(
        "\n[devices.n1-inband]\ndriver = \"external\"\naddress = \"{}\"\nargs = \"--no-status\"\nstate_file = \"{}\"\n",
        scripted_driver().display(),
        blind.display()
    ));
    std::fs::write(lab.config(), toml).unwrap();
    lab.cmd()
        .args(["check", "--probe"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("found blind at first contact"));
    lab.cmd()
        .args(["fence", "n1"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("liveness_lost"));
}

/// `--state-dir` or `FENCEGATE_STATE_DIR` naming another journal than the inventory's would
/// give a fence no power-on lock and no storm history: refused, naming both paths.
#[test]
fn an_inventory_hosts_journal_is_the_inventorys() {
    let lab = Lab::new(&[("n1", Behaviour::default())], "");
    let other = lab.dir.path().join("other-state");
    lab.cmd()
        .args(["--state-dir"])
        .arg(&other)
        .args(["fence", "n1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not the journal of inventory"))
        .stderr(predicate::str::contains("other-state"));
    lab.cmd()
        .env("FENCEGATE_STATE_DIR", &other)
        .args(["unfence", "n1"])
        .assert()
        .code(2);
    assert!(!other.exists());
    assert_eq!(lab.power("n1"), "on");
    // Naming the inventory's own journal is fine.
    lab.cmd()
        .args(["--state-dir"])
        .arg(lab.dir.path().join("state"))
        .args(["off", "n1"])
        .assert()
        .code(0);
}

/// Hooks firing at once on a host that never fenced before: every process opens the new
/// journal, none fails with "database is locked".
#[test]
fn first_use_of_a_journal_by_many_processes_at_once() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let bin = assert_cmd::cargo::cargo_bin("fencegate");
        let children: Vec<_> = (0..8)
            .map(|_| {
                std::process::Command::new(&bin)
                    .env_remove("FENCEGATE_CONFIG")
                    .env_remove("FENCEGATE_STATE_DIR")
                    .arg("--state-dir")
                    .arg(dir.path())
                    .arg("history")
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
