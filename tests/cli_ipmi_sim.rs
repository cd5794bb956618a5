//! The real binary against OpenIPMI's ipmi_sim (an independent BMC implementation; cipher
//! suite 3). ipmi_sim's power file is the emulator-side truth.

use predicates::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// ipmi_sim from the test kit, with what these tests add: secret files and calls of the
/// binary against it.
struct IpmiSim {
    sim: fencegate_test_kit::ipmi_sim::IpmiSim,
}

impl IpmiSim {
    /// The test kit's ipmi_sim: started, and holding its port, when this returns.
    fn start() -> IpmiSim {
        IpmiSim {
            sim: fencegate_test_kit::ipmi_sim::IpmiSim::start(),
        }
    }

    fn dir(&self) -> &Path {
        self.sim.dir()
    }

    fn password_file(&self) -> PathBuf {
        self.secret("pw", "password")
    }

    fn secret(&self, name: &str, value: &str) -> PathBuf {
        let p = self.dir().join(name);
        std::fs::write(&p, format!("{value}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    /// `fencegate … --device ipmi://admin@127.0.0.1:PORT?cipher=3 --password-file PW`, with
    /// the subcommand's other arguments added by the caller before `.args(...)` is run.
    fn fencegate(&self, password_file: &Path) -> FencegateCall {
        FencegateCall {
            sim_dir: self.dir().to_owned(),
            url: format!("ipmi://admin@127.0.0.1:{}?cipher=3", self.sim.port()),
            pw: password_file.to_owned(),
        }
    }

    /// The emulator-side truth: ipmi_sim's power file (1 = on, created as on).
    fn power(&self) -> String {
        self.sim.power()
    }

    fn knob(&self, name: &str, content: &str) {
        self.sim.knob(name, content);
    }
}

struct FencegateCall {
    sim_dir: PathBuf,
    url: String,
    pw: PathBuf,
}

impl FencegateCall {
    fn args(&self, args: &[&str]) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
        c.env_remove("FENCEGATE_CONFIG")
            .env("FENCEGATE_STATE_DIR", self.sim_dir.join("journal"))
            .args(args)
            .args(["--device", &self.url, "--password-file"])
            .arg(&self.pw)
            .args(["--name", "sim-host"])
            .timeout(Duration::from_secs(60));
        // A short hold and no storm settle keep these runs quick where neither is tested.
        if args
            .iter()
            .any(|a| matches!(*a, "fence" | "off" | "on" | "reboot"))
            && !args.contains(&"--off-hold")
        {
            c.args(["--off-hold", "300ms", "--storm-settle", "0s"]);
        }
        c
    }
}

#[test]
fn status_off_already_off_and_on() {
    let sim = IpmiSim::start();
    let pw = sim.password_file();
    let call = sim.fencegate(&pw);
    call.args(&["status"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(" on"));
    call.args(&["fence"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("power_verified_off"))
        .stdout(predicate::str::contains("ipmi-"));
    assert_eq!(sim.power(), "0");
    // Already off: re-confirmed by fresh readings, no command sent.
    let out = call.args(&["--json", "fence"]).assert().code(0);
    let proofs: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let device = &proofs[0]["levels"][0]["devices"][0];
    assert!(
        device["detail"].as_str().unwrap().contains("already off"),
        "{device}"
    );
    assert!(
        !device["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "command_intent")
    );
    assert!(proofs[0]["confirms"].is_string());
    // The power-on lock holds until unfence.
    call.args(&["on"]).assert().code(3);
    assert_eq!(sim.power(), "0");
    let mut unfence = assert_cmd::Command::cargo_bin("fencegate").unwrap();
    unfence
        .env_remove("FENCEGATE_CONFIG")
        .env("FENCEGATE_STATE_DIR", sim.dir().join("journal"))
        .args(["unfence", "sim-host"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("lifted"));
    call.args(&["on"]).assert().code(0);
    assert_eq!(sim.power(), "1");
}

#[test]
fn a_stuck_relay_fails_within_the_deadline_and_the_proof_says_why() {
    let sim = IpmiSim::start();
    let pw = sim.password_file();
    sim.knob("stuck", "");
    let t0 = Instant::now();
    sim.fencegate(&pw)
        .args(&[
            "fence",
            "--timeout",
            "3s",
            "--attempt-timeout",
            "3s",
            "--off-hold",
            "500ms",
        ])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("failed"))
        .stdout(predicate::str::contains("verification-failed"))
        .stdout(predicate::str::contains("last: on"));
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    assert_eq!(sim.power(), "1");
}

#[test]
fn a_delayed_off_is_verified_after_the_delay() {
    let sim = IpmiSim::start();
    let pw = sim.password_file();
    sim.knob("delay", "1.5");
    let t0 = Instant::now();
    sim.fencegate(&pw)
        .args(&["fence"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("power_verified_off"));
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "verified before the relay opened"
    );
    assert_eq!(sim.power(), "0");
}

#[test]
fn a_wrong_password_fails_as_auth() {
    let sim = IpmiSim::start();
    let wrong = sim.secret("wrong", "not-the-password");
    sim.fencegate(&wrong)
        .args(&["fence"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("auth"))
        .stdout(predicate::str::contains("not-the-password").not());
    assert_eq!(sim.power(), "1");
}
