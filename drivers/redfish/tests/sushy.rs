//! Interoperability with OpenStack's sushy-emulator (fake systems driver), a Redfish service
//! written by others: TLS 1.2 only, basic authentication only, name aliases that redirect.
//!
//! Needs `sushy-emulator` on `PATH` whose Python imports `sushy_tools` and `bcrypt` (a venv
//! with `pip install sushy-tools==2.2.0`, its `bin` first on `PATH`) and `openssl`. Without
//! them the tests fail and say what to install (the test kit's rule): an interop test that
//! skips proves nothing.

use fencegate_driver::{
    Action, DeviceSpec, ErrorKind, IdentityFact, PowerDriver, PowerState, RestorePolicy,
    SecretString,
};
use fencegate_redfish::RedfishDriver;
use fencegate_test_kit::daemon::{Daemon, Proto};
use fencegate_test_kit::tools;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PASSWORD: &str = "sushy-pw-42";
const NODE1_UUID: &str = "27946b59-9e44-4fa7-8e91-f3527a1ef094";

/// One private sushy-emulator process (the kit's [`Daemon`]: it holds its port when
/// started); killed and its directory removed on drop.
struct Sushy {
    daemon: Daemon,
    pin: String,
}

impl Sushy {
    fn start(env: &[(&str, &str)]) -> Sushy {
        // The fixture wraps the emulator's modules, so it runs under the emulator's own
        // Python, which prepare.sh also uses to hash the password (bcrypt).
        let python = tools::require_python_of("sushy-emulator", &["sushy_tools", "bcrypt"]);
        tools::require("openssl");
        let fixture = fencegate_test_kit::fixture_dir("sushy");
        let dir = tempfile::tempdir().unwrap();
        let mut pin = String::new();
        let daemon = Daemon::start("sushy", Proto::Tcp, dir, |dir, port| {
            // A fresh certificate and configuration for each port tried.
            let pw_file = dir.join("password");
            std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
            pin = prepare(&fixture, dir, port, &pw_file, &python);
            let mut cmd = Command::new(&python);
            cmd.arg(fixture.join("sushy_fast.py"))
                .arg("--config")
                .arg(dir.join("sushy.conf"))
                .env("SUSHY_FAKE_DELAY", "0");
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd
        });
        Sushy { daemon, pin }
    }

    /// What it logged so far: one line per HTTP request it served.
    fn log(&self) -> String {
        self.daemon.log()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.daemon.port())
    }

    fn spec(&self, options: &[(&str, &str)]) -> DeviceSpec {
        let mut s = DeviceSpec {
            name: "sushy".into(),
            driver: "redfish".into(),
            address: self.addr(),
            user: Some("admin".into()),
            ..Default::default()
        };
        s.secrets
            .insert("password".into(), SecretString::from(PASSWORD));
        s.options.insert("pin".into(), self.pin.clone());
        s.options.insert("system".into(), NODE1_UUID.into());
        for (k, v) in options {
            s.options.insert((*k).into(), (*v).into());
        }
        s
    }

    fn driver(&self, options: &[(&str, &str)]) -> RedfishDriver {
        RedfishDriver::from_spec(&self.spec(options)).unwrap()
    }
}

/// Run the fixture's `prepare.sh` for `port` in `dir` (certificate, password file, the
/// emulator's configuration) and return the certificate's pin.
fn prepare(fixture: &Path, dir: &Path, port: u16, pw_file: &Path, python: &Path) -> String {
    let out = Command::new("sh")
        .arg(fixture.join("prepare.sh"))
        .arg(dir)
        .arg(port.to_string())
        .arg(pw_file)
        .arg(python)
        .output()
        .unwrap_or_else(|e| panic!("cannot run prepare.sh: {e}"));
    assert!(
        out.status.success(),
        "prepare.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn deadline(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

#[tokio::test]
async fn sushy_status_off_verified_and_identity() {
    let sushy = Sushy::start(&[]);
    let d = sushy.driver(&[]);
    assert_eq!(d.status(deadline(10_000)).await.unwrap(), PowerState::On);
    let r = d.set_power(Action::Off, deadline(10_000)).await.unwrap();
    assert!(
        r.detail.contains("ResetType=ForceOff") && r.detail.contains("204"),
        "{r:?}"
    );
    // The verification read is a second, fresh GET.
    assert_eq!(d.status(deadline(10_000)).await.unwrap(), PowerState::Off);
    let ids = d.identity();
    assert!(
        ids.contains(&IdentityFact::authenticated("redfish-uuid", NODE1_UUID)),
        "{ids:?}"
    );
    assert!(ids.contains(&IdentityFact::new(
        "tls-sha256",
        sushy.pin.trim_start_matches("sha256:")
    )));
    d.set_power(Action::On, deadline(10_000)).await.unwrap();
    assert_eq!(d.status(deadline(10_000)).await.unwrap(), PowerState::On);
    d.release(deadline(2000)).await.unwrap();

    // A name alias answers with a redirect, which the driver resolves on the same origin.
    let d = sushy.driver(&[("system", "node1")]);
    assert_eq!(d.status(deadline(10_000)).await.unwrap(), PowerState::On);

    // Two systems and none chosen: the error lists them.
    let mut s = sushy.spec(&[]);
    s.options.remove("system");
    let d = RedfishDriver::from_spec(&s).unwrap();
    let e = d.status(deadline(10_000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains(NODE1_UUID), "{e}");

    // Wrong password: Auth, and the secret is not in the message.
    let mut s = sushy.spec(&[]);
    s.secrets
        .insert("password".into(), SecretString::from("not-the-password"));
    let d = RedfishDriver::from_spec(&s).unwrap();
    let e = d.status(deadline(10_000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(!e.detail.contains("not-the-password"), "{e}");

    // Wrong pin: refused during the handshake, before any HTTP request.
    let before = sushy.log().matches("HTTP/1.1\"").count();
    let wrong = format!("sha256:{}", "11".repeat(32));
    let d = sushy.driver(&[("pin", &wrong)]);
    let e = d.status(deadline(10_000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(
        e.detail.contains("does not match the configured pin"),
        "{e}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        sushy.log().matches("HTTP/1.1\"").count(),
        before,
        "{}",
        sushy.log()
    );
}

#[tokio::test]
async fn sushy_has_no_power_restore_policy_and_the_driver_says_so() {
    // sushy-tools 2.2.0 serves no PowerRestorePolicy and PATCHes only Boot and AssetTag:
    // both calls are Unsupported, and nothing is PATCHed.
    let sushy = Sushy::start(&[]);
    let d = sushy.driver(&[]);
    let e = d.restore_policy(deadline(10_000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    let e = d
        .set_restore_policy(RestorePolicy::AlwaysOff, deadline(10_000))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("PowerRestorePolicy"), "{e}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!sushy.log().contains("\"PATCH "), "{}", sushy.log());
}

#[tokio::test]
async fn sushy_delayed_off_reads_on_until_applied() {
    let sushy = Sushy::start(&[("SUSHY_FAKE_DELAY", "2")]);
    let d = sushy.driver(&[]);
    assert_eq!(d.status(deadline(10_000)).await.unwrap(), PowerState::On);
    let t0 = Instant::now();
    d.set_power(Action::Off, deadline(10_000)).await.unwrap();
    let mut first_off = None;
    while t0.elapsed() < Duration::from_secs(6) {
        let s = d.status(deadline(10_000)).await.unwrap();
        if s == PowerState::Off {
            first_off = Some(t0.elapsed());
            break;
        }
        assert_eq!(s, PowerState::On);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let at = first_off.expect("sushy never reported Off within 6 s");
    assert!(
        at >= Duration::from_millis(900),
        "Off came too early: {at:?}"
    );
}

#[tokio::test]
async fn sushy_stuck_power_state_never_changes() {
    let sushy = Sushy::start(&[("SUSHY_FAKE_STUCK", "1")]);
    let d = sushy.driver(&[]);
    d.set_power(Action::Off, deadline(10_000)).await.unwrap();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(1500) {
        assert_eq!(d.status(deadline(10_000)).await.unwrap(), PowerState::On);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn sushy_links_a_chassis_without_power_supplies_and_the_driver_says_so() {
    // sushy-tools 2.2.0 links the system's chassis, whose resource has Thermal but neither
    // PowerSubsystem nor Power: the count is Unsupported, naming the chassis, and no power
    // resource path is guessed.
    let sushy = Sushy::start(&[]);
    let d = sushy.driver(&[]);
    let e = d.power_supplies(deadline(10_000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("/redfish/v1/Chassis/"), "{e}");
    assert!(e.detail.contains("PowerSubsystem"), "{e}");
    // The system was read afresh on the way: its identity is known as after a status.
    assert!(
        d.identity()
            .contains(&IdentityFact::authenticated("redfish-uuid", NODE1_UUID)),
        "{:?}",
        d.identity()
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = sushy.log();
    assert!(log.contains("GET /redfish/v1/Chassis/"), "{log}");
    assert!(!log.contains("/Power"), "{log}");
}
