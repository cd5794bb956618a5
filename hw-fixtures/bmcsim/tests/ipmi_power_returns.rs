//! The power-returns fault through the `fencegate-bmcsim` binary, as a demo or an external
//! test sets it: on the command line and in the control protocol's fault profile JSON, seen
//! from an IPMI client (fencegate's own driver) and from the control channel's power truth.

use fencegate_driver::{Action, DeviceSpec, DriverFactory, PowerState, SecretString};
use fencegate_ipmi::IpmiFactory;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

struct Sim {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    ipmi: String,
}

impl Sim {
    fn start(pw: &std::path::Path, extra: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fencegate-bmcsim"))
            .args(["--ipmi", "1", "--password-file"])
            .arg(pw)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        let ipmi = ready["ipmi"][0].as_str().unwrap().to_owned();
        Sim {
            child,
            stdin,
            lines,
            ipmi,
        }
    }

    fn ask(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        serde_json::from_str(&self.lines.next().unwrap().unwrap()).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(3)
}

#[tokio::test]
async fn power_comes_back_as_the_fault_profile_says() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret-pw\n").unwrap();

    // On the command line.
    let mut sim = Sim::start(&pw, &["--power-returns-after-ms", "60000"]);
    assert_eq!(
        sim.ask(json!({"cmd":"faults","bmc":0}))["faults"]["power_returns_after_ms"],
        json!(60000)
    );
    // In the control protocol's fault profile.
    assert_eq!(
        sim.ask(json!({"cmd":"set_faults","bmc":0,"power_returns_after_ms":300})),
        json!({"ok":true})
    );
    assert_eq!(
        sim.ask(json!({"cmd":"faults","bmc":0}))["faults"]["power_returns_after_ms"],
        json!(300)
    );

    let mut spec = DeviceSpec {
        name: "bmcsim".into(),
        driver: "ipmi".into(),
        address: sim.ipmi.clone(),
        user: Some("admin".into()),
        ..Default::default()
    };
    spec.secrets
        .insert("password".into(), SecretString::from("s3cret-pw"));
    let d = IpmiFactory.build(&spec).unwrap();
    d.set_power(Action::Off, soon()).await.unwrap();
    assert_eq!(d.status(soon()).await.unwrap(), PowerState::Off);
    assert_eq!(
        sim.ask(json!({"cmd":"power","bmc":0})),
        json!({"power":"off"})
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        sim.ask(json!({"cmd":"power","bmc":0})),
        json!({"power":"on"})
    );
    assert_eq!(d.status(soon()).await.unwrap(), PowerState::On);
    let log = sim.ask(json!({"cmd":"log","bmc":0}));
    assert_eq!(log["log"].as_array().unwrap().len(), 1, "{log}");
    d.release(soon()).await.unwrap();

    // Without the fault, an off stays off.
    assert_eq!(
        sim.ask(json!({"cmd":"set_faults","bmc":0})),
        json!({"ok":true})
    );
    assert!(sim.ask(json!({"cmd":"faults","bmc":0}))["faults"]["power_returns_after_ms"].is_null());
    d.set_power(Action::Off, soon()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(d.status(soon()).await.unwrap(), PowerState::Off);
}
