//! Interoperability with OpenStack's sushy-emulator (fake systems driver), a Redfish service
//! written by others: TLS 1.2 only, basic authentication only, name aliases that redirect.
//!
//! Needs a Python on `PATH` that imports `sushy_tools` and `bcrypt` (a venv with
//! `pip install sushy-tools==2.2.0`, its `bin` first on `PATH`) and `openssl`. Without them
//! the tests fail and say so: an interop test that skips proves nothing.

use fencegate_driver::{
    Action, DeviceSpec, ErrorKind, IdentityFact, PowerDriver, PowerState, RestorePolicy,
    SecretString,
};
use fencegate_redfish::RedfishDriver;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "sushy-pw-42";
const NODE1_UUID: &str = "27946b59-9e44-4fa7-8e91-f3527a1ef094";
const INSTALL: &str = "sushy-emulator is needed for the Redfish interop tests: \
    `python3 -m venv VENV && VENV/bin/pip install sushy-tools==2.2.0`, then put VENV/bin first \
    on PATH (openssl must be installed too)";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hw-fixtures/sushy")
}

/// A Python that imports sushy_tools and bcrypt: the interpreter of `sushy-emulator` on PATH,
/// else `python3`/`python` on PATH.
fn sushy_python() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut candidates = Vec::new();
    for dir in std::env::split_paths(&path) {
        let emulator = dir.join("sushy-emulator");
        if let Ok(text) = std::fs::read_to_string(&emulator)
            && let Some(interp) = text.lines().next().and_then(|l| l.strip_prefix("#!"))
        {
            candidates.push(PathBuf::from(interp.trim()));
        }
    }
    for dir in std::env::split_paths(&path) {
        candidates.push(dir.join("python3"));
        candidates.push(dir.join("python"));
    }
    candidates
        .into_iter()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import sushy_tools, bcrypt"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .unwrap_or_else(|| panic!("{INSTALL}"))
}

/// One private sushy-emulator process; killed and its directory removed on drop.
struct Sushy {
    child: Child,
    addr: SocketAddr,
    pin: String,
    dir: tempfile::TempDir,
}

impl Sushy {
    fn start(env: &[(&str, &str)]) -> Sushy {
        let python = sushy_python();
        let dir = tempfile::tempdir().unwrap();
        let pw_file = dir.path().join("password");
        std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new("sh")
            .arg(fixture_dir().join("prepare.sh"))
            .arg(dir.path())
            .arg(port.to_string())
            .arg(&pw_file)
            .arg(&python)
            .output()
            .unwrap_or_else(|e| panic!("cannot run prepare.sh: {e}; {INSTALL}"));
        assert!(
            out.status.success(),
            "prepare.sh failed: {}; {INSTALL}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let log = std::fs::File::create(dir.path().join("sushy.log")).unwrap();
        let mut cmd = Command::new(&python);
        cmd.arg(fixture_dir().join("sushy_fast.py"))
            .arg("--config")
            .arg(dir.path().join("sushy.conf"))
            .current_dir(dir.path())
            .env("SUSHY_FAKE_DELAY", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start sushy: {e}"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut s = Sushy {
            child,
            addr,
            pin,
            dir,
        };
        let t0 = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("sushy-emulator exited ({status}): {}", s.log());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "sushy-emulator did not listen within 30 s: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.path().join("sushy.log")) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    fn spec(&self, options: &[(&str, &str)]) -> DeviceSpec {
        let mut s = DeviceSpec {
            name: "sushy".into(),
            driver: "redfish".into(),
            address: self.addr.to_string(),
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

impl Drop for Sushy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
