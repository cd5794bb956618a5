//! The simulated PDUs from outside: net-snmp's command-line tools as the client (so the
//! hand-written codec is checked against an independent implementation), and the
//! `fencegate-bmcsim --pdu N --outlets M` control protocol.
//!
//! Needs the Debian package `snmp` (snmpget, snmpset, snmpwalk); a missing tool fails the
//! test with the package name.

use fencegate_bmcsim::FaultProfile;
use fencegate_bmcsim::snmp::{PduConfig, PduLab, V3User};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const CTL: &str = ".1.3.6.1.4.1.318.1.1.4.4.2.1.3";

/// A net-snmp tool (package `snmp`), or a failure naming the package.
fn tool(name: &str) -> PathBuf {
    fencegate_test_kit::tools::require(name)
}

/// Run a net-snmp tool without blocking the runtime that serves the PDUs.
async fn net_snmp(name: &str, args: &[&str], addr: SocketAddr) -> (bool, String) {
    let out = tokio::process::Command::new(tool(name))
        .args(["-On", "-r", "1", "-t", "1"])
        .args(args.iter().take(2))
        .arg(addr.to_string())
        .args(args.iter().skip(2))
        .env("MIBS", "")
        .env("MIBDIRS", "/nonexistent")
        .output()
        .await
        .expect("run a net-snmp tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn net_snmp_tools_read_and_switch_outlets() {
    let lab = PduLab::start(vec![PduConfig::new(4)]).await.unwrap();
    let a = lab.addr(0);
    let (ok, out) = net_snmp("snmpget", &["-v2c", "-cpublic", &format!("{CTL}.3")], a).await;
    assert!(ok && out.contains("INTEGER: 1"), "{out}");
    let (ok, out) = net_snmp(
        "snmpset",
        &["-v2c", "-cprivate", &format!("{CTL}.3"), "i", "2"],
        a,
    )
    .await;
    assert!(ok && out.contains("INTEGER: 2"), "{out}");
    assert!(!lab.outlet_on(0, 3));
    let (ok, out) = net_snmp("snmpget", &["-v1", "-cpublic", &format!("{CTL}.3")], a).await;
    assert!(ok && out.contains("INTEGER: 2"), "{out}");
    // Read-only community: noAccess in v2c, noSuchName in v1; nothing changes.
    let (ok, out) = net_snmp(
        "snmpset",
        &["-v2c", "-cpublic", &format!("{CTL}.1"), "i", "2"],
        a,
    )
    .await;
    assert!(!ok && out.contains("noAccess"), "{out}");
    let (ok, out) = net_snmp(
        "snmpset",
        &["-v1", "-cpublic", &format!("{CTL}.1"), "i", "2"],
        a,
    )
    .await;
    assert!(!ok && out.contains("noSuchName"), "{out}");
    assert!(lab.outlet_on(0, 1));
    let (ok, out) = net_snmp(
        "snmpset",
        &["-v2c", "-cprivate", &format!("{CTL}.1"), "i", "9"],
        a,
    )
    .await;
    assert!(!ok && out.contains("wrongValue"), "{out}");
    let (_, out) = net_snmp("snmpget", &["-v2c", "-cpublic", &format!("{CTL}.9")], a).await;
    assert!(out.contains("No Such Instance"), "{out}");
    // A wrong community gets no answer at all.
    let (ok, out) = net_snmp("snmpget", &["-v2c", "-cnope", &format!("{CTL}.1")], a).await;
    assert!(!ok && out.contains("Timeout"), "{out}");
    let (ok, out) = net_snmp(
        "snmpwalk",
        &["-v2c", "-cpublic", ".1.3.6.1.4.1.318.1.1.4.4"],
        a,
    )
    .await;
    assert!(ok, "{out}");
    // Table size, then index, control and name columns of 4 outlets; the walk ends with
    // endOfMibView because the outlet table is the last object this agent serves.
    let objects = out
        .lines()
        .filter(|l| l.contains("INTEGER") || l.contains("STRING"))
        .count();
    assert_eq!(objects, 1 + 3 * 4, "{out}");
    let (ok, out) = net_snmp("snmpget", &["-v2c", "-cpublic", ".1.3.6.1.2.1.1.5.0"], a).await;
    assert!(ok && out.contains("\"pdu0\""), "{out}");
    assert_eq!(
        lab.command_log(0).len(),
        1,
        "only the accepted SET is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_discovery_is_answered_and_every_user_is_unknown() {
    let lab = PduLab::start(vec![PduConfig::new(2)]).await.unwrap();
    // net-snmp's client discovers the engine, then sends as the user: the sim's report for
    // the unknown user must decode as one for net-snmp.
    let (ok, out) = net_snmp(
        "snmpget",
        &["-v3", "-lnoAuthNoPriv", "-unobody", &format!("{CTL}.1")],
        lab.addr(0),
    )
    .await;
    assert!(!ok && out.contains("Unknown user name"), "{out}");
    assert!(lab.outlet_on(0, 1));
}

/// A PDU with one read-write and one read-only SNMPv3 user and a fixed engine ID.
fn v3_pdu() -> PduConfig {
    let mut cfg = PduConfig::new(4);
    cfg.engine_id = Some(b"\x80\x00\x01\x3e\x04sim-v3".to_vec());
    cfg.v3_users = vec![
        V3User::read_write("fenceuser", "authpass256"),
        V3User {
            write: false,
            ..V3User::read_write("watcher", "watchpass256")
        },
    ];
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_users_are_authenticated_as_net_snmp_expects() {
    let lab = PduLab::start(vec![v3_pdu()]).await.unwrap();
    let a = lab.addr(0);
    let user = |u: &'static str, pw: &'static str| {
        ["-v3", "-lauthNoPriv", "-aSHA-256"]
            .into_iter()
            .map(str::to_owned)
            .chain([format!("-u{u}"), format!("-A{pw}")])
            .collect::<Vec<_>>()
    };
    // Unlike net_snmp(), the caller places the address itself (after options like -d).
    let run = |name: &'static str, mut args: Vec<String>, rest: &[&str]| {
        args.extend(rest.iter().map(|s| (*s).to_owned()));
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = tokio::process::Command::new(tool(name))
                .args(["-On", "-r", "1", "-t", "1"])
                .args(&refs)
                .env("MIBS", "")
                .env("MIBDIRS", "/nonexistent")
                .output()
                .await
                .expect("run a net-snmp tool");
            (
                out.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        }
    };
    let ctl3 = format!("{CTL}.3");
    let (ok, out) = run(
        "snmpget",
        user("fenceuser", "authpass256"),
        &[&a.to_string(), &ctl3],
    )
    .await;
    assert!(ok && out.contains("INTEGER: 1"), "{out}");
    let (ok, out) = run(
        "snmpset",
        user("fenceuser", "authpass256"),
        &[&a.to_string(), &ctl3, "i", "2"],
    )
    .await;
    assert!(ok && out.contains("INTEGER: 2"), "{out}");
    assert!(!lab.outlet_on(0, 3));
    // The read-only user reads the change.
    let (ok, out) = run(
        "snmpget",
        user("watcher", "watchpass256"),
        &[&a.to_string(), &ctl3],
    )
    .await;
    assert!(ok && out.contains("INTEGER: 2"), "{out}");
    // A wrong password: the MAC fails, the agent says so without authenticating.
    let (ok, out) = run(
        "snmpget",
        user("fenceuser", "wrongpass256"),
        &[&a.to_string(), &ctl3],
    )
    .await;
    assert!(!ok && out.contains("Authentication failure"), "{out}");
    // The read-only user cannot switch.
    let (ok, out) = run(
        "snmpset",
        user("watcher", "watchpass256"),
        &[&a.to_string(), &format!("{CTL}.1"), "i", "2"],
    )
    .await;
    assert!(!ok, "{out}");
    assert!(lab.outlet_on(0, 1));
    // Privacy is not simulated: refused as an unsupported security level.
    let mut priv_args = user("fenceuser", "authpass256");
    priv_args[1] = "-lauthPriv".into();
    priv_args.extend(["-xAES".to_owned(), "-Xprivpass256".to_owned()]);
    let (ok, out) = run("snmpget", priv_args, &[&a.to_string(), &ctl3]).await;
    assert!(!ok && out.contains("Unsupported security level"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_pdu_is_silent() {
    let lab = PduLab::start(vec![PduConfig::new(2)]).await.unwrap();
    lab.set_faults(
        0,
        FaultProfile {
            dead: true,
            ..Default::default()
        },
    );
    let (ok, out) = net_snmp(
        "snmpget",
        &["-v2c", "-cpublic", &format!("{CTL}.1")],
        lab.addr(0),
    )
    .await;
    assert!(!ok && out.contains("Timeout"), "{out}");
}

#[test]
fn binary_serves_pdus_and_their_control_commands() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret-pw\n").unwrap();
    let community = dir.path().join("community");
    std::fs::write(&community, "rw-s3cret\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fencegate-bmcsim"))
        .args([
            "--ipmi",
            "0",
            "--pdu",
            "2",
            "--outlets",
            "4",
            "--password-file",
        ])
        .arg(&pw)
        .arg("--community-file")
        .arg(&community)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        move || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let ready = next();
    let pdus = ready["snmp"].as_array().unwrap();
    assert_eq!(pdus.len(), 2);
    let addr = pdus[1].as_str().unwrap().to_owned();
    let mut ask = |cmd: Value| -> Value {
        writeln!(stdin, "{cmd}").unwrap();
        next()
    };
    assert_eq!(
        ask(json!({"cmd":"outlet","pdu":1,"outlet":3})),
        json!({"power":"on"})
    );
    assert_eq!(
        ask(json!({"cmd":"set_outlet","pdu":1,"outlet":3,"power":"off"})),
        json!({"ok":true})
    );
    assert_eq!(
        ask(json!({"cmd":"outlet","pdu":1,"outlet":3})),
        json!({"power":"off"})
    );
    assert_eq!(
        ask(json!({"cmd":"outlet","pdu":0,"outlet":3})),
        json!({"power":"on"})
    );
    assert!(ask(json!({"cmd":"outlet","pdu":1,"outlet":5}))["error"].is_string());
    assert!(ask(json!({"cmd":"outlet","pdu":2,"outlet":1}))["error"].is_string());
    assert_eq!(
        ask(json!({"cmd":"set_faults","pdu":1,"stuck":true})),
        json!({"ok":true})
    );
    assert_eq!(
        ask(json!({"cmd":"faults","pdu":1}))["faults"]["stuck"],
        json!(true)
    );
    // The community from the file switches; the state shows through SNMP.
    let out = Command::new(tool("snmpset"))
        .args(["-On", "-r", "1", "-t", "1", "-v2c", "-crw-s3cret", &addr])
        .args([&format!("{CTL}.2"), "i", "2"])
        .env("MIBS", "")
        .env("MIBDIRS", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = ask(json!({"cmd":"log","pdu":1}));
    assert_eq!(log["log"][0]["outlet"], json!(2));
    assert_eq!(log["log"][0]["protocol"], json!("snmp"));
    assert_eq!(log["log"][0]["outcome"], json!("ignored"), "{log}");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
