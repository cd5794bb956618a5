//! The OpenNebula door: `fencegate opennebula fence-host` as fence_host.sh runs it.

mod common;

use common::{Behaviour, Lab, base64, host_xml};
use predicates::prelude::*;

fn lab() -> Lab {
    Lab::new(
        &[
            ("node1", Behaviour::default()),
            (
                "node2",
                Behaviour {
                    stuck: true,
                    ..Behaviour::default()
                },
            ),
        ],
        "",
    )
}

#[test]
fn fences_the_host_named_in_the_xml_and_exits_zero() {
    let lab = lab();
    let input = base64(host_xml(7, "node1", 3, "").as_bytes());
    lab.cmd()
        .args(["opennebula", "fence-host"])
        .write_stdin(input)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("fence node1: power_verified_off"));
    assert_eq!(lab.power("node1"), "off");
    assert_eq!(lab.power("node2"), "on");
}

#[test]
fn tolerates_a_trailing_newline_and_maps_by_id_and_template() {
    let lab = lab();
    // The name is unknown to the inventory, but the OpenNebula ID 100 maps to node1.
    let input = format!(
        "{}\n",
        base64(host_xml(100, "kvm-07.example", 3, "").as_bytes())
    );
    lab.cmd()
        .args(["opennebula", "fence-host"])
        .write_stdin(input)
        .assert()
        .code(0);
    assert_eq!(lab.power("node1"), "off");

    let lab = self::lab();
    let mapping = "<FENCEGATE_HOST><![CDATA[node1]]></FENCEGATE_HOST>";
    let input = base64(host_xml(9, "other-name", 3, mapping).as_bytes());
    lab.cmd()
        .args(["opennebula", "fence-host"])
        .write_stdin(input)
        .assert()
        .code(0);
    assert_eq!(lab.power("node1"), "off");
}

#[test]
fn stuck_power_fails_nonzero_and_says_why() {
    let lab = lab();
    let input = base64(host_xml(8, "node2", 3, "").as_bytes());
    lab.cmd()
        .args([
            "opennebula",
            "fence-host",
            "--timeout",
            "2s",
            "--attempt-timeout",
            "2s",
        ])
        .write_stdin(input)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("fence node2: failed"))
        .stdout(predicate::str::contains("verification-failed"));
}

#[test]
fn bad_input_powers_nothing_off() {
    let lab = lab();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "empty input"),
        ("not*base64".into(), "not base64"),
        ("PEhPU1Q+".into(), "ends inside"),
        (base64(b"<VM><ID>1</ID></VM>"), "<HOST>"),
        (base64(b"<HOST><ID>1</ID><NAME>node1</NAME>"), "ends inside"),
        (
            format!("{} -m -p 5", base64(host_xml(1, "node1", 3, "").as_bytes())),
            "one base64 word",
        ),
        (
            base64(host_xml(1, "node9", 3, "").as_bytes()),
            "no host named \"node9\"",
        ),
    ];
    for (input, message) in cases {
        lab.cmd()
            .args(["opennebula", "fence-host"])
            .write_stdin(input.clone())
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message))
            .stderr(predicate::str::contains("nothing was powered off"));
    }
    assert_eq!(lab.power("node1"), "on");
    assert_eq!(lab.power("node2"), "on");
}

#[test]
fn a_host_that_is_not_in_error_is_not_fenced() {
    let lab = lab();
    let input = base64(host_xml(7, "node1", 2, "").as_bytes());
    lab.cmd()
        .args(["opennebula", "fence-host"])
        .write_stdin(input)
        .assert()
        .code(3)
        .stdout(predicate::str::contains("not ERROR"));
    assert_eq!(lab.power("node1"), "on");
}

#[test]
fn config_errors_exit_two_without_acting() {
    let lab = lab();
    std::fs::write(lab.config(), "[hosts.node1]\nlevels = [[\"missing\"]]\n").unwrap();
    let input = base64(host_xml(7, "node1", 3, "").as_bytes());
    lab.cmd()
        .args(["opennebula", "fence-host"])
        .write_stdin(input)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "fencegate.toml:2: hosts.node1.levels",
        ));
}

#[test]
fn sigterm_stops_cleanly_with_a_journal_entry() {
    let lab = lab();
    let input = base64(host_xml(8, "node2", 3, "").as_bytes());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("fencegate"))
        .env("FENCEGATE_CONFIG", lab.config())
        .args([
            "opennebula",
            "fence-host",
            "--timeout",
            "30s",
            "--attempt-timeout",
            "30s",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("SIGTERM"));
    lab.cmd()
        .args(["history", "node2"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("interrupted"));
}
