//! The driver against OpenIPMI's `ipmi_sim` (Debian package `openipmi`): an independent BMC
//! implementation of RMCP+ (cipher suite 3 only), with its chassis helper's power file as the
//! truth. The test kit starts it from `hw-fixtures/ipmi_sim/` in a temporary directory on a
//! loopback UDP port. A missing `ipmi_sim` fails the tests.

use fencegate_driver::{
    Action, DeviceSpec, DriverFactory, ErrorKind, IdentityFact, PowerDriver, PowerState,
    RestorePolicy, SecretString,
};
use fencegate_ipmi::IpmiFactory;
use fencegate_test_kit::ipmi_sim::{FIXTURE_GUID, IpmiSim};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A driver for the simulator's administrator, with `password` and these options.
fn driver(sim: &IpmiSim, password: &str, opts: &[(&str, &str)]) -> Arc<dyn PowerDriver> {
    let mut spec = DeviceSpec {
        name: "ipmi_sim".into(),
        driver: "ipmi".into(),
        address: format!("127.0.0.1:{}", sim.port()),
        user: Some("admin".into()),
        ..Default::default()
    };
    spec.secrets
        .insert("password".into(), SecretString::from(password));
    for (k, v) in opts {
        spec.options.insert((*k).into(), (*v).into());
    }
    IpmiFactory.build(&spec).unwrap()
}

fn soon(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

#[tokio::test]
async fn status_off_on_already_off() {
    let sim = IpmiSim::start();
    let d = driver(&sim, "password", &[("cipher", "3")]);
    assert_eq!(
        d.status(soon(3000)).await.unwrap(),
        PowerState::On,
        "{}",
        sim.log()
    );
    d.set_power(Action::Off, soon(3000)).await.unwrap();
    assert_eq!(sim.power_file().as_deref(), Some("0"));
    assert_eq!(d.status(soon(3000)).await.unwrap(), PowerState::Off);
    // Already off: accepted again, still off.
    d.set_power(Action::Off, soon(3000)).await.unwrap();
    assert_eq!(sim.power_file().as_deref(), Some("0"));
    assert_eq!(d.status(soon(3000)).await.unwrap(), PowerState::Off);
    d.set_power(Action::On, soon(3000)).await.unwrap();
    assert_eq!(sim.power_file().as_deref(), Some("1"));
    assert_eq!(d.status(soon(3000)).await.unwrap(), PowerState::On);
    // ipmi_sim sends lan.conf's system GUID in RAKP 2.
    assert_eq!(
        d.identity(),
        [IdentityFact::authenticated("ipmi-guid", FIXTURE_GUID)]
    );
}

/// The GUID comes from the BMC that answered, proved in RAKP 2 before the first reading:
/// another ipmi_sim with another GUID (and the same password) is told apart.
#[tokio::test]
async fn the_rakp2_guid_names_the_bmc_before_any_command() {
    let other = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let sim = IpmiSim::start_with(other, "");
    let d = driver(&sim, "password", &[("cipher", "3")]);
    assert!(d.identity().is_empty());
    assert_eq!(
        d.status(soon(3000)).await.unwrap(),
        PowerState::On,
        "{}",
        sim.log()
    );
    assert_eq!(
        d.identity(),
        [IdentityFact::authenticated("ipmi-guid", other)]
    );
}

/// ipmitool's own view of the chassis, with the password in the environment.
fn ipmitool(sim: &IpmiSim, args: &[&str]) -> String {
    let out = Command::new(fencegate_test_kit::tools::require("ipmitool"))
        .env("IPMI_PASSWORD", "password")
        .args(["-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p"])
        .arg(sim.port().to_string())
        .args(["-U", "admin", "-E", "-N", "1", "-R", "2"])
        .args(args)
        .output()
        .expect("ipmitool runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// ipmi_sim reports "always off" in Get Chassis Status (bits 6:5 = 00) and has no Set Power
/// Restore Policy: our reading agrees with ipmitool's, and setting is `Unsupported`, as
/// ipmitool's `chassis policy always-off` fails with "Invalid command".
#[tokio::test]
async fn restore_policy_agrees_with_ipmitool() {
    let sim = IpmiSim::start();
    let d = driver(&sim, "password", &[("cipher", "3")]);
    assert_eq!(
        d.restore_policy(soon(3000)).await.unwrap(),
        RestorePolicy::AlwaysOff,
        "{}",
        sim.log()
    );
    let status = ipmitool(&sim, &["chassis", "status"]);
    assert!(
        status.contains("Power Restore Policy : always-off"),
        "{status}"
    );
    let e = d
        .set_restore_policy(RestorePolicy::AlwaysOff, soon(3000))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("Set Power Restore Policy"), "{e}");
    let policy = ipmitool(&sim, &["chassis", "policy", "always-off"]);
    assert!(policy.contains("Invalid command"), "{policy}");
    // A refusal says nothing about the BMC's health: the next reading works.
    assert_eq!(d.status(soon(3000)).await.unwrap(), PowerState::On);
}

#[tokio::test]
async fn default_suite_list_falls_back_to_3() {
    // ipmi_sim answers no sessionless cipher suite probe and refuses suite 17 in Open
    // Session; the default `17,3` must still get in, within the probe's time box. The box is
    // long (1.5 s) so that "the probe was skipped" stands far apart from "it was waited out"
    // even on a loaded machine.
    let sim = IpmiSim::start();
    let d = driver(&sim, "password", &[("cipher_probe_ms", "1500")]);
    let t0 = Instant::now();
    assert_eq!(
        d.status(soon(10_000)).await.unwrap(),
        PowerState::On,
        "{}",
        sim.log()
    );
    assert!(
        t0.elapsed() < Duration::from_millis(1500 + 2500),
        "{:?}",
        t0.elapsed()
    );
    // The working suite is remembered: no probe the second time.
    let t0 = Instant::now();
    d.status(soon(10_000)).await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "a second probe would take 1.5 s: {:?}",
        t0.elapsed()
    );
    // Suite 17 alone is refused as unsupported.
    let e = driver(&sim, "password", &[("cipher", "17")])
        .status(soon(3000))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
}

#[tokio::test]
async fn wrong_password_is_auth() {
    let sim = IpmiSim::start();
    let d = driver(&sim, "not-the-password", &[("cipher", "3")]);
    let t0 = Instant::now();
    let deadline = Duration::from_secs(10);
    let e = d.status(t0 + deadline).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    // A refused password is final at once, not retried until the deadline.
    assert!(
        t0.elapsed() < deadline / 2,
        "refused, yet returned only after {:?}",
        t0.elapsed()
    );
    assert!(!e.detail.contains("not-the-password"));
}

#[tokio::test]
async fn stuck_relay_stays_on() {
    let sim = IpmiSim::start();
    sim.knob("stuck", "");
    let d = driver(&sim, "password", &[("cipher", "3")]);
    d.set_power(Action::Off, soon(3000)).await.unwrap();
    assert_eq!(d.status(soon(3000)).await.unwrap(), PowerState::On);
    assert_ne!(sim.power_file().as_deref(), Some("0"));
}

#[tokio::test]
async fn delayed_off_shows_after_the_delay() {
    let sim = IpmiSim::start();
    sim.knob("delay", "0.6");
    let d = driver(&sim, "password", &[("cipher", "3")]);
    d.set_power(Action::Off, soon(3000)).await.unwrap();
    assert_eq!(d.status(soon(3000)).await.unwrap(), PowerState::On);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(d.status(soon(3000)).await.unwrap(), PowerState::Off);
    assert_eq!(sim.power_file().as_deref(), Some("0"));
}

/// `main_sdr_add` line for ipmi_sim: the record's bytes in hex.
fn sdr_line(record: &[u8]) -> String {
    let bytes: Vec<String> = record.iter().map(|b| format!("0x{b:02x}")).collect();
    format!("main_sdr_add 0x20 {}\n", bytes.join(" "))
}

/// The fixture's SDR repository is empty: ipmi_sim says so and the driver answers
/// Unsupported. With two supply status sensors and a redundancy sensor added, the driver
/// reads ipmi_sim's own Get SDR answers and counts two.
#[tokio::test]
async fn ipmi_sim_power_supplies_from_its_sdr() {
    use fencegate_ipmi_codec::commands::{
        ENTITY_POWER_SUPPLY, READING_TYPE_REDUNDANCY, READING_TYPE_SENSOR_SPECIFIC,
        SENSOR_TYPE_POWER_SUPPLY, sensor_record,
    };
    let sim = IpmiSim::start();
    let d = driver(&sim, "password", &[("cipher", "3")]);
    let e = d.power_supplies(soon(3000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}: {}", sim.log());
    assert!(e.detail.contains("SDR repository is empty"), "{e}");
    drop(sim);

    let mut emu = String::new();
    for (id, full, n) in [(1u16, true, 1u8), (2, false, 2)] {
        emu += &sdr_line(&sensor_record(
            id,
            full,
            0x30 + n,
            (ENTITY_POWER_SUPPLY, n),
            SENSOR_TYPE_POWER_SUPPLY,
            READING_TYPE_SENSOR_SPECIFIC,
            &format!("PS{n} Status"),
        ));
    }
    emu += &sdr_line(&sensor_record(
        3,
        false,
        0x2F,
        (0x13, 1),
        SENSOR_TYPE_POWER_SUPPLY,
        READING_TYPE_REDUNDANCY,
        "PS Redundancy",
    ));
    let sim = IpmiSim::start_with(FIXTURE_GUID, &emu);
    let d = driver(&sim, "password", &[("cipher", "3")]);
    assert_eq!(
        d.power_supplies(soon(3000)).await.unwrap(),
        2,
        "{}",
        sim.log()
    );
    d.release(soon(2000)).await.unwrap();
}
