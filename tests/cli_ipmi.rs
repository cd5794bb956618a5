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
    // A short hold keeps these tests quick; the hold itself is tested where it matters.
    let hold = if policy.contains("off_hold") {
        ""
    } else {
        "off_hold = \"300ms\"\n"
    };
    let mut toml = format!("state_dir = \"state\"\n[policy]\nstorm_limit = 0\n{hold}{policy}\n");
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
        .args([
            "fence",
            "n0",
            "--timeout",
            "3s",
            "--attempt-timeout",
            "3s",
            "--off-hold",
            "500ms",
        ])
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
        .args([
            "fence",
            "n0",
            "--attempt-timeout",
            "2s",
            "--off-hold",
            "500ms",
        ])
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

/// A UDP relay on 127.0.0.1 forwarding to a target that the test can switch: what sits at a
/// BMC's address and forwards to a sibling BMC with the same fleet-wide password.
struct Relay {
    addr: std::net::SocketAddr,
    target: std::sync::Arc<std::sync::Mutex<std::net::SocketAddr>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    fn start(target: std::net::SocketAddr) -> Relay {
        use std::net::UdpSocket;
        use std::sync::atomic::Ordering;
        let front = UdpSocket::bind("127.0.0.1:0").unwrap();
        let back = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tick = Some(std::time::Duration::from_millis(50));
        front.set_read_timeout(tick).unwrap();
        back.set_read_timeout(tick).unwrap();
        let relay = Relay {
            addr: front.local_addr().unwrap(),
            target: std::sync::Arc::new(std::sync::Mutex::new(target)),
            stop: Default::default(),
        };
        let client = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (f2, b2) = (front.try_clone().unwrap(), back.try_clone().unwrap());
        let (target, stop, c2) = (relay.target.clone(), relay.stop.clone(), client.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = f2.recv_from(&mut buf) {
                    *c2.lock().unwrap() = Some(from);
                    let to = *target.lock().unwrap();
                    let _ = back.send_to(&buf[..n], to);
                }
            }
        });
        let stop = relay.stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, _)) = b2.recv_from(&mut buf)
                    && let Some(c) = *client.lock().unwrap()
                {
                    let _ = front.send_to(&buf[..n], c);
                }
            }
        });
        relay
    }

    fn point_at(&self, target: std::net::SocketAddr) {
        *self.target.lock().unwrap() = target;
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn a_relay_to_a_sibling_bmc_is_refused_until_trusted() {
    let sim = start(vec![BmcConfig::new("admin", PASSWORD); 2]);
    let relay = Relay::start(sim.lab.addr(0));
    let dir = tempfile::tempdir().unwrap();
    let config = inventory(dir.path(), &sim, &[("n0", vec![vec![0]])], "");
    // kvm01's BMC address is the relay's: first contact goes through to the real BMC.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("address = \"{}\"", sim.lab.addr(0)),
        &format!("address = \"{}\"", relay.addr),
    );
    std::fs::write(&config, text).unwrap();
    fencegate(&config).args(["fence", "n0"]).assert().code(0);
    assert!(!sim.lab.power_on(0));

    // Now the relay forwards to the sibling (same password): it must get no command, and
    // the fence must say which box answered.
    sim.lab.set_power(0, true);
    relay.point_at(sim.lab.addr(1));
    fencegate(&config)
        .args(["fence", "n0"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "another box answers at this address",
        ))
        .stdout(predicate::str::contains("fencegate trust"));
    assert!(sim.lab.power_on(1), "the sibling must not be powered off");
    assert!(
        sim.lab.command_log(1).is_empty(),
        "nothing may reach the sibling"
    );

    // An operator who knows the board was swapped accepts it; then it is fenced.
    fencegate(&config)
        .args(["trust", "n0"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("accepted the identity"));
    fencegate(&config).args(["fence", "n0"]).assert().code(0);
    assert!(!sim.lab.power_on(1));
}

#[test]
fn a_pinned_guid_refuses_any_other_box_and_check_prints_pins() {
    let sim = start(vec![BmcConfig::new("admin", PASSWORD); 2]);
    let dir = tempfile::tempdir().unwrap();
    let config = inventory(
        dir.path(),
        &sim,
        &[("n0", vec![vec![0]]), ("n1", vec![vec![1]])],
        "",
    );
    let out = fencegate(&config)
        .args(["check", "--probe"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let line = out
        .lines()
        .find(|l| l.starts_with("[devices.bmc1]  guid = "))
        .unwrap_or_else(|| panic!("no pin line for bmc1 in: {out}"));
    let guid1 = line.split('"').nth(1).unwrap().to_owned();
    // Pin bmc0's device to bmc1's GUID: the real bmc0 now is "another box".
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[devices.bmc0]\n",
        &format!("[devices.bmc0]\nguid = \"{guid1}\"\n"),
    );
    std::fs::write(&config, text).unwrap();
    fencegate(&config)
        .args(["fence", "n0"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("pinned guid"));
    assert!(sim.lab.power_on(0));
    assert!(sim.lab.command_log(0).is_empty());
}

#[test]
fn an_off_that_does_not_last_is_not_reported_fenced() {
    // The BMC powers the host back on 1.5 s after it went off (a cycle or reset instead of
    // an off): two back-to-back Off readings would have called it fenced.
    let mut cfg = BmcConfig::new("admin", PASSWORD);
    cfg.faults = FaultProfile {
        power_returns_after_ms: Some(1_500),
        ..FaultProfile::default()
    };
    let sim = start(vec![cfg]);
    let dir = tempfile::tempdir().unwrap();
    let config = inventory(
        dir.path(),
        &sim,
        &[("n0", vec![vec![0]])],
        "off_hold = \"3s\"\nattempt_timeout = \"6s\"\n",
    );
    fencegate(&config)
        .args(["fence", "n0"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("power came back"));
    assert!(
        sim.lab.power_on(0),
        "the simulator says the host is on again"
    );

    // The same BMC without the fault: proven, and the proof says how long Off held.
    sim.lab.set_faults(0, FaultProfile::default());
    sim.lab.set_power(0, true);
    fencegate(&config)
        .args(["off", "n0"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("off held 3."));
}

#[test]
fn a_fence_keeps_the_host_off_when_power_returns_until_unfence() {
    use fencegate_driver::RestorePolicy;
    let sim = start(vec![BmcConfig::new("admin", PASSWORD)]);
    sim.lab
        .set_restore_policy(0, Some(RestorePolicy::LastState));
    let dir = tempfile::tempdir().unwrap();
    let config = inventory(dir.path(), &sim, &[("n0", vec![vec![0]])], "");
    fencegate(&config)
        .args(["--json", "fence", "n0"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("\"previous\": \"last-state\""))
        .stdout(predicate::str::contains("\"set\": \"always-off\""));
    assert_eq!(
        sim.lab.restore_policy(0),
        Some(RestorePolicy::AlwaysOff),
        "the BMC's own setting: stay off when AC returns"
    );
    fencegate(&config)
        .args(["unfence", "n0"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("power restore policy put back"));
    assert_eq!(sim.lab.restore_policy(0), Some(RestorePolicy::LastState));
    // A maintenance off leaves it alone.
    sim.lab.set_power(0, true);
    fencegate(&config).args(["off", "n0"]).assert().code(0);
    assert_eq!(sim.lab.restore_policy(0), Some(RestorePolicy::LastState));
}

/// A power-on lock holds for the box, whatever name or URL reaches it: an ad-hoc URL to the
/// fenced BMC's address is refused before anything is sent, and the same BMC reached by
/// another address (pinned to its GUID) is refused after it proves who it is.
#[test]
fn any_name_or_url_that_reaches_a_locked_box_meets_the_lock() {
    let sim = start(vec![BmcConfig::new("admin", PASSWORD)]);
    let dir = tempfile::tempdir().unwrap();
    let config = inventory(dir.path(), &sim, &[("n0", vec![vec![0]])], "");
    let out = fencegate(&config)
        .args(["--json", "fence", "n0"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let proofs: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let guid = proofs[0]["levels"][0]["devices"][0]["identity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "ipmi-guid")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let pw = dir.path().join("bmc.pw");
    let port = sim.lab.addr(0).port();

    // The same address as an ad-hoc URL: refused by the lock, nothing sent.
    let url = format!("ipmi://admin@127.0.0.1:{port}");
    fencegate(&config)
        .args(["on", "--device", &url, "--password-file"])
        .arg(&pw)
        .assert()
        .code(3)
        .stdout(predicate::str::contains("power-on lock"));
    assert!(!sim.lab.power_on(0));

    // Another address for the same BMC, pinned to its GUID: refused once it proves it.
    let url = format!("ipmi://admin@localhost:{port}?guid={guid}");
    fencegate(&config)
        .args(["on", "--device", &url, "--password-file"])
        .arg(&pw)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("power-on lock: this box"));
    assert!(!sim.lab.power_on(0), "the fenced box stays off");
    assert!(
        sim.lab
            .command_log(0)
            .iter()
            .all(|c| c.command != fencegate_bmcsim::power::PowerCommand::On),
        "no power-on reached the BMC: {:?}",
        sim.lab.command_log(0)
    );

    // Lifted for the host, lifted for the box.
    fencegate(&config).args(["unfence", "n0"]).assert().code(0);
    fencegate(&config)
        .args(["on", "--device", &url, "--password-file"])
        .arg(&pw)
        .assert()
        .code(0);
    assert!(sim.lab.power_on(0));
}
