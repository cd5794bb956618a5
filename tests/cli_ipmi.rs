//! The real binary against simulated IPMI BMCs (fencegate-bmcsim, in this test process):
//! inventory fences, faults, level fall-through and a rack-sized hostrange.

use fencegate_bmcsim::FaultProfile;
use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const PASSWORD: &str = "sim-password";

/// The simulated BMCs, served by a runtime that lives as long as the lab.
struct SimLab {
    lab: IpmiLab,
    _rt: tokio::runtime::Runtime,
}

fn start(configs: Vec<BmcConfig>) -> SimLab {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let lab = rt.block_on(IpmiLab::start(configs)).unwrap();
    SimLab { lab, _rt: rt }
}

/// Write an inventory: host i is fenced through the BMCs listed for it, level by level.
fn inventory(
    dir: &Path,
    sim: &SimLab,
    hosts: &[(&str, Vec<Vec<usize>>)],
    policy: &str,
) -> std::path::PathBuf {
    let pw = dir.join("bmc.pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut toml = format!("state_dir = \"state\"\n[policy]\nstorm_limit = 0\n{policy}\n");
    for i in 0..sim.lab.len() {
        toml.push_str(&format!(
            "[devices.bmc{i}]\ndriver = \"ipmi\"\naddress = \"{}\"\nuser = \"admin\"\npassword_file = \"{}\"\n",
            sim.lab.addr(i),
            pw.display()
        ));
    }
    for (name, levels) in hosts {
        let levels: Vec<String> = levels
            .iter()
            .map(|l| {
                format!(
                    "[{}]",
                    l.iter()
                        .map(|i| format!("\"bmc{i}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .collect();
        toml.push_str(&format!(
            "[hosts.{name}]\nlevels = [{}]\n",
            levels.join(", ")
        ));
    }
    let path = dir.join("fencegate.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn fencegate(config: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    c.env_remove("FENCEGATE_STATE_DIR")
        .env("FENCEGATE_CONFIG", config)
        .timeout(std::time::Duration::from_secs(60));
    c
}

#[test]
fn fence_verifies_against_the_simulator_state() {
    let sim = start(vec![BmcConfig::new("admin", PASSWORD); 2]);
    let dir = tempfile::tempdir().unwrap();
    let config = inventory(
        dir.path(),
        &sim,
        &[("n0", vec![vec![0]]), ("n1", vec![vec![1]])],
        "",
    );
    fencegate(&config)
        .args(["fence", "n0"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("fence n0: power_verified_off"))
        .stdout(predicate::str::contains("ipmi-guid="));
    assert!(!sim.lab.power_on(0), "the simulator must say n0 is off");
    assert!(sim.lab.power_on(1), "n1 must be untouched");
}

#[test]
fn a_stuck_relay_fails_within_the_deadline() {
    let mut cfg = BmcConfig::new("admin", PASSWORD);
    cfg.faults = FaultProfile {
        stuck: true,
        ..FaultProfile::default()
    };
    let sim = start(vec![cfg]);
    let dir = tempfile::tempdir().unwrap();
    let config = inventory(dir.path(), &sim, &[("n0", vec![vec![0]])], "");
    let t0 = std::time::Instant::now();
    fencegate(&config)
        .args(["fence", "n0", "--timeout", "3s", "--attempt-timeout", "3s"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("verification-failed"));
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    assert!(sim.lab.power_on(0));
}

#[test]
fn a_wrong_password_is_an_auth_failure_and_never_leaks() {
    let sim = start(vec![BmcConfig::new("admin", "other-password")]);
    let dir = tempfile::tempdir().unwrap();
    let config = inventory(dir.path(), &sim, &[("n0", vec![vec![0]])], "");
    let out = fencegate(&config)
        .args(["fence", "n0"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("auth"));
    let o = out.get_output();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        !text.contains(PASSWORD) && !text.contains("other-password"),
        "{text}"
    );
}

#[test]
fn a_dead_bmc_falls_through_to_the_next_level() {
    let mut dead = BmcConfig::new("admin", PASSWORD);
    dead.faults = FaultProfile {
        dead: true,
        ..FaultProfile::default()
    };
    let sim = start(vec![
        dead,
        BmcConfig::new("admin", PASSWORD),
        BmcConfig::new("admin", PASSWORD),
    ]);
    let dir = tempfile::tempdir().unwrap();
    // Level 2 stands for the two PDU outlets of a dual-PSU host: both must verify.
    let config = inventory(dir.path(), &sim, &[("n0", vec![vec![0], vec![1, 2]])], "");
    fencegate(&config)
        .args(["fence", "n0", "--attempt-timeout", "2s"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "level 2: power verified off by bmc1 + bmc2",
        ));
    assert!(!sim.lab.power_on(1) && !sim.lab.power_on(2));
}

#[test]
fn a_rack_in_one_call() {
    let n = 60;
    let sim = start(vec![BmcConfig::new("admin", PASSWORD); n]);
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("node{i:02}")).collect();
    let hosts: Vec<(&str, Vec<Vec<usize>>)> = names
        .iter()
        .enumerate()
        .map(|(i, h)| (h.as_str(), vec![vec![i]]))
        .collect();
    let config = inventory(dir.path(), &sim, &hosts, "");
    let out = fencegate(&config)
        .args([
            "--json",
            "fence",
            &format!("node[00-{}]", n - 1),
            "--fanout",
            "32",
        ])
        .assert()
        .code(0);
    let proofs: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(proofs.as_array().unwrap().len(), n);
    assert!(
        proofs
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["verdict"] == "power_verified_off")
    );
    assert!((0..n).all(|i| !sim.lab.power_on(i)));
}
