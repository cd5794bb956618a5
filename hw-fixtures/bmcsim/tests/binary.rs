//! The `fencegate-bmcsim` binary: readiness line, JSON-lines control protocol, exit on EOF.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn control_protocol_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret-pw\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fencegate-bmcsim"))
        .args(["--ipmi", "3", "--password-file"])
        .arg(&pw)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        move || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let ready = next();
    let addrs = ready["ipmi"].as_array().unwrap();
    assert_eq!(addrs.len(), 3);
    assert!(
        addrs
            .iter()
            .all(|a| a.as_str().unwrap().starts_with("127.0.0.1:"))
    );

    let mut ask = |cmd: Value| -> Value {
        writeln!(stdin, "{cmd}").unwrap();
        next()
    };
    assert_eq!(ask(json!({"cmd":"power","bmc":1})), json!({"power":"on"}));
    assert_eq!(
        ask(json!({"cmd":"set_power","bmc":1,"power":"off"})),
        json!({"ok":true})
    );
    assert_eq!(ask(json!({"cmd":"power","bmc":1})), json!({"power":"off"}));
    assert_eq!(
        ask(json!({"cmd":"set_power","bmc":1,"on":true})),
        json!({"ok":true})
    );
    assert_eq!(ask(json!({"cmd":"power","bmc":1})), json!({"power":"on"}));
    assert!(ask(json!({"cmd":"set_power","bmc":1,"power":"of"}))["error"].is_string());
    assert_eq!(ask(json!({"cmd":"power","bmc":0})), json!({"power":"on"}));
    assert_eq!(
        ask(json!({"cmd":"set_faults","bmc":2,"stuck":true,"drop_rate":0.5})),
        json!({"ok":true})
    );
    let faults = ask(json!({"cmd":"faults","bmc":2}));
    assert_eq!(faults["faults"]["stuck"], json!(true));
    assert_eq!(faults["faults"]["off_delay_ms"], json!(0));
    assert!(ask(json!({"cmd":"set_faults","bmc":2,"stuk":true}))["error"].is_string());
    assert!(ask(json!({"cmd":"power","bmc":3}))["error"].is_string());
    assert_eq!(ask(json!({"cmd":"log","bmc":0})), json!({"log":[]}));
    assert_eq!(
        ask(json!({"cmd":"sessions","bmc":0})),
        json!({"sessions":0})
    );
    assert!(ask(json!({"cmd":"nope"}))["error"].is_string());

    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(Instant::now() < deadline, "did not exit on EOF");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn missing_password_file_fails_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_fencegate-bmcsim"))
        .args(["--password-file", "/nonexistent/pw"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password file"));
}
