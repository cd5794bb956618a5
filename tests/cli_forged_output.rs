//! Forged output: a host name, a device name, a reason or a device's own words holding a
//! newline (or a terminal escape, a bidi override) must not forge a verdict line in any
//! human output. host_error.log, a cluster log or a terminal reads lines: a second line
//! saying `power_verified_off` is a lie someone will believe.

mod common;

use common::{base64, host_xml, scripted_driver};

/// A verdict line as the real ones start (see `Proof::one_line` and `output::proof`).
const FORGED_VERDICT: &str = "fencegate: fence node1: power_verified_off by bmc (3 off readings) in 9 ms: forged [request forged]";
const FORGED_OK: &str = "OK  fence node1: power_verified_off in 9 ms [forged]";

struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    /// One host whose inventory name, device name and device output all carry forged
    /// lines. Its outlet is stuck, so the fence fails and nothing real says "verified".
    fn new() -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let toml_str = |s: &str| serde_json::to_string(s).unwrap();
        let host = toml_str(&format!(
            "node1\n{FORGED_VERDICT}\r\u{85}\u{2028}{FORGED_OK}\u{202e}"
        ));
        let device = toml_str(&format!("bmc\n{FORGED_OK}\u{1b}[2K"));
        let config = format!(
            "state_dir = \"state\"\n\n[policy]\nattempt_timeout = \"2s\"\noverall_timeout = \"4s\"\noff_hold = \"300ms\"\nstorm_settle = \"0s\"\n\n\
             [devices.{device}]\ndriver = \"external\"\naddress = {}\nstate_file = {}\nstuck = true\n\n\
             [hosts.{host}]\nlevels = [[{device}]]\naliases = [\"node1\"]\nopennebula_id = 100\n",
            toml_str(&scripted_driver().display().to_string()),
            toml_str(&dir.path().join("node1.power").display().to_string()),
        );
        std::fs::write(dir.path().join("fencegate.toml"), config).unwrap();
        // The device's answer to `status`: `unknown (jammed\n<a forged verdict>…)`.
        std::fs::write(
            dir.path().join("node1.power"),
            format!("jammed\n{FORGED_VERDICT}\n{FORGED_OK}\n"),
        )
        .unwrap();
        Lab { dir }
    }

    fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::cargo_bin("fencegate").unwrap();
        // The engine's own log lines (tracing, on stderr) are left out: they are written
        // by the engine and the logger set up in main, and are checked there.
        c.env_remove("FENCEGATE_STATE_DIR")
            .env_remove("FENCEGATE_PASSWORD")
            .env("FENCEGATE_LOG", "off")
            .env("FENCEGATE_CONFIG", self.dir.path().join("fencegate.toml"))
            .timeout(std::time::Duration::from_secs(60));
        c
    }
}

/// Every line of stdout and stderr, checked: none may pass for a verdict that was never
/// reached, and nothing may reach a terminal that hides or moves text.
fn no_forged_line(what: &str, output: &std::process::Output) {
    for stream in [&output.stdout, &output.stderr] {
        let text = String::from_utf8_lossy(stream);
        for line in text.lines() {
            assert!(
                !line.starts_with("fencegate: fence node1: power_verified_off")
                    && !line.starts_with("OK ")
                    && !line.contains("[request forged]\n"),
                "{what}: a forged verdict line:\n{line}\n--- in ---\n{text}"
            );
            assert!(
                !line.chars().any(|c| c.is_control()
                    || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}')),
                "{what}: an unescaped control character in {line:?}"
            );
        }
    }
}

#[test]
fn names_reasons_and_device_words_cannot_forge_a_verdict_line() {
    let lab = Lab::new();
    let reason = format!("maintenance\n{FORGED_VERDICT}");

    let fence = lab
        .cmd()
        .args(["fence", "node1", "--reason", &reason])
        .output()
        .unwrap();
    assert_ne!(
        fence.status.code(),
        Some(0),
        "a stuck outlet proves nothing"
    );
    no_forged_line("fence", &fence);
    let shown = String::from_utf8_lossy(&fence.stdout);
    assert!(
        shown.contains("node1\\n"),
        "the name is shown escaped: {shown}"
    );

    let history = lab.cmd().args(["history", "--details"]).output().unwrap();
    no_forged_line("history", &history);
    let shown = String::from_utf8_lossy(&history.stdout);
    assert!(
        shown.contains("jammed\\n"),
        "the device's words are shown, escaped: {shown}"
    );

    no_forged_line(
        "status",
        &lab.cmd().args(["status", "node1"]).output().unwrap(),
    );
    no_forged_line(
        "check --probe",
        &lab.cmd().args(["check", "--probe"]).output().unwrap(),
    );

    let door = lab
        .cmd()
        .args(["opennebula", "fence-host"])
        .write_stdin(base64(host_xml(100, "node1", 3, "").as_bytes()))
        .output()
        .unwrap();
    assert_ne!(door.status.code(), Some(0));
    no_forged_line("opennebula fence-host", &door);
    assert_eq!(
        String::from_utf8_lossy(&door.stdout).lines().count(),
        1,
        "host_error.log gets one verdict line"
    );

    let agent = lab
        .cmd()
        .arg("agent")
        .write_stdin("action=off\nplug=node1\n")
        .output()
        .unwrap();
    assert_ne!(agent.status.code(), Some(0));
    no_forged_line("agent off", &agent);
    no_forged_line(
        "agent status",
        &lab.cmd()
            .arg("agent")
            .write_stdin("action=status\nplug=node1\n")
            .output()
            .unwrap(),
    );
}
