//! The OpenNebula door: `fencegate opennebula fence-host` as fence_host.sh runs it.

mod common;

use common::{Behaviour, Lab, base64, host_xml};
use predicates::prelude::*;

/// Two hosts, node1 (ID 100) and node2 (ID 101, its power stuck on).
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
    let input = base64(host_xml(100, "node1", 3, "").as_bytes());
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

    // With no IDs in the inventory, the template mapping alone names the host.
    let lab = lab_without_ids();
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
    let input = base64(host_xml(101, "node2", 3, "").as_bytes());
    lab.cmd()
        .args([
            "opennebula",
            "fence-host",
            "--timeout",
            "2s",
            "--attempt-timeout",
            "2s",
            "--off-hold",
            "500ms",
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
            "NAME \"node9\" -> no host",
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
    let input = base64(host_xml(100, "node1", 2, "").as_bytes());
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
    let input = base64(host_xml(100, "node1", 3, "").as_bytes());
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
    let input = base64(host_xml(101, "node2", 3, "").as_bytes());
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
    // Signal once the fence is under way (its stuck relay was sent the power-off), not
    // after a fixed sleep that a loaded machine may not honour.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !commands_sent(&lab, "node2").contains("off") {
        assert!(
            std::time::Instant::now() < until,
            "the fence never sent its power-off"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
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

/// What the host's simulated device was asked to do: the scripted driver logs every
/// `set_power` it receives next to its power file.
fn commands_sent(lab: &Lab, host: &str) -> String {
    std::fs::read_to_string(lab.dir.path().join(format!("{host}.power.log"))).unwrap_or_default()
}

/// Assert that neither lab host was powered off nor even sent a command.
fn nothing_sent(lab: &Lab) {
    for host in ["node1", "node2"] {
        assert_eq!(lab.power(host), "on", "{host} was powered off");
        let log = commands_sent(lab, host);
        assert!(
            !log.contains("set_power"),
            "{host} was sent a command: {log}"
        );
    }
}

/// Run the door on `xml` (base64-encoded as host_error.rb does) with extra arguments.
fn door(lab: &Lab, xml: &str, args: &[&str]) -> assert_cmd::assert::Assert {
    lab.cmd()
        .args(["opennebula", "fence-host"])
        .args(args)
        .write_stdin(base64(xml.as_bytes()))
        .assert()
}

/// A lab whose inventory maps no OpenNebula IDs (only names).
fn lab_without_ids() -> Lab {
    let lab = lab();
    let toml = std::fs::read_to_string(lab.config()).unwrap();
    let toml: String = toml
        .lines()
        .filter(|l| !l.starts_with("opennebula_id"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(lab.config(), toml).unwrap();
    lab
}

#[test]
fn a_template_mapping_cannot_redirect_the_fence_to_another_host() {
    // node1 (ID 100) failed; whoever edits its template (or its monitoring probes) names node2.
    let lab = lab();
    let mapping = "<FENCEGATE_HOST><![CDATA[node2]]></FENCEGATE_HOST>";
    door(&lab, &host_xml(100, "node1", 3, mapping), &[])
        .code(2)
        .stderr(predicate::str::contains("disagree"))
        .stderr(predicate::str::contains("ID 100 -> host \"node1\""))
        .stderr(predicate::str::contains("NAME \"node1\" -> host \"node1\""))
        .stderr(predicate::str::contains(
            "FENCEGATE_HOST \"node2\" -> host \"node2\"",
        ))
        .stderr(predicate::str::contains("nothing was powered off"));
    nothing_sent(&lab);

    // A mapping that agrees with the inventory is fine.
    let mapping = "<FENCEGATE_HOST>node1</FENCEGATE_HOST>";
    door(&lab, &host_xml(100, "node1", 3, mapping), &[]).code(0);
    assert_eq!(lab.power("node1"), "off");
    assert_eq!(lab.power("node2"), "on");
}

#[test]
fn an_id_and_a_name_of_two_different_hosts_are_refused() {
    let lab = lab();
    // ID 101 is node2 in the inventory, the NAME is node1.
    door(&lab, &host_xml(101, "node1", 3, ""), &[])
        .code(2)
        .stderr(predicate::str::contains("ID 101 -> host \"node2\""))
        .stderr(predicate::str::contains("NAME \"node1\" -> host \"node1\""));
    nothing_sent(&lab);
}

#[test]
fn an_id_the_inventory_does_not_give_the_named_host_is_refused() {
    // No inventory host has ID 7, but node1 is ID 100: the document is not about node1.
    let lab = lab();
    door(&lab, &host_xml(7, "node1", 3, ""), &[])
        .code(2)
        .stderr(predicate::str::contains("ID 7 -> no host"))
        .stderr(predicate::str::contains("opennebula_id = 100"));
    nothing_sent(&lab);
}

#[test]
fn without_ids_in_the_inventory_the_name_decides() {
    let lab = lab_without_ids();
    door(&lab, &host_xml(7, "node1", 3, ""), &[]).code(0);
    assert_eq!(lab.power("node1"), "off");
    assert_eq!(lab.power("node2"), "on");

    // Still, a template mapping that names another host is refused.
    let lab = lab_without_ids();
    let mapping = "<FENCEGATE_HOST>node2</FENCEGATE_HOST>";
    door(&lab, &host_xml(7, "node1", 3, mapping), &[])
        .code(2)
        .stderr(predicate::str::contains("disagree"));
    nothing_sent(&lab);
}

#[test]
fn a_mapping_that_names_no_inventory_host_is_refused() {
    let lab = lab();
    let mapping = "<FENCEGATE_HOST>node9</FENCEGATE_HOST>";
    door(&lab, &host_xml(100, "node1", 3, mapping), &[])
        .code(2)
        .stderr(predicate::str::contains(
            "FENCEGATE_HOST \"node9\" -> no host",
        ));
    nothing_sent(&lab);
}

#[test]
fn ambiguous_or_forged_door_input_is_refused() {
    const H: &str = "<ID>100</ID><NAME>node1</NAME>";
    let cases: Vec<(String, &str)> = vec![
        (format!("<HOST>{H}</HOST>"), "no /HOST/STATE"),
        (
            format!("<HOST>{H}<STATE></STATE></HOST>"),
            "/HOST/STATE is empty",
        ),
        (format!("<HOST>{H}<STATE/></HOST>"), "/HOST/STATE is empty"),
        (
            format!("<HOST>{H}<STATE>3</STATE><STATE>2</STATE></HOST>"),
            "/HOST/STATE appears twice",
        ),
        (
            format!("<HOST>{H}<STATE>2</STATE><STATE>3</STATE></HOST>"),
            "/HOST/STATE appears twice",
        ),
        (
            format!("<HOST>{H}<STATE>ERROR</STATE></HOST>"),
            "/HOST/STATE",
        ),
        (format!("<HOST>{H}<STATE>+3</STATE></HOST>"), "/HOST/STATE"),
        (
            format!("<HOST>{H}<STATE>3<B/></STATE></HOST>"),
            "split by a child element",
        ),
        (
            format!("<HOST>{H}<STATE>3<!-- x -->3</STATE></HOST>"),
            "split by a comment",
        ),
        (
            "<HOST><ID>100</ID><NAME>node<X/>1</NAME><STATE>3</STATE></HOST>".into(),
            "split by a child element",
        ),
        (
            format!("<HOST>{H}<STATE>3</STATE></HOST><HOST><ID>101</ID></HOST>"),
            "second <HOST>",
        ),
        (
            format!("<HOST>{H}<STATE>3</STATE></HOST><VM/>"),
            "after </HOST>",
        ),
        (
            format!("<HOST>{H}<STATE>3</STATE><VMS><HOST>{H}</HOST></VMS></HOST>"),
            "second <HOST>",
        ),
        (
            format!("<HOST>{H}<ID>101</ID><STATE>3</STATE></HOST>"),
            "/HOST/ID appears twice",
        ),
        (
            format!("<HOST>{H}<NAME>node2</NAME><STATE>3</STATE></HOST>"),
            "/HOST/NAME appears twice",
        ),
        (
            format!(
                "<HOST>{H}<STATE>3</STATE><TEMPLATE><FENCEGATE_HOST>node1</FENCEGATE_HOST><FENCEGATE_HOST>node2</FENCEGATE_HOST></TEMPLATE></HOST>"
            ),
            "/HOST/TEMPLATE/FENCEGATE_HOST appears twice",
        ),
        (
            "<HOST><NAME>node1</NAME><STATE>3</STATE></HOST>".into(),
            "no /HOST/ID",
        ),
    ];
    let lab = lab();
    for (xml, message) in cases {
        // `--any-state` skips the ERROR check, never the reading of a single, whole STATE.
        for args in [&[][..], &["--any-state"][..]] {
            door(&lab, &xml, args)
                .code(2)
                .stderr(predicate::str::contains(message))
                .stderr(predicate::str::contains("nothing was powered off"));
        }
    }
    nothing_sent(&lab);
}

#[test]
fn deep_nesting_is_refused_without_stalling() {
    let lab = lab();
    let depth = 200_000;
    let xml = format!(
        "<HOST><ID>100</ID><NAME>node1</NAME><STATE>3</STATE><TEMPLATE>{}{}</TEMPLATE></HOST>",
        "<A>".repeat(depth),
        "</A>".repeat(depth)
    );
    let started = std::time::Instant::now();
    door(&lab, &xml, &[])
        .code(2)
        .stderr(predicate::str::contains("nested deeper than"));
    // Generous: the old reader rebuilt the element path at every end tag and took minutes.
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    nothing_sent(&lab);
}

#[test]
fn control_characters_in_the_name_cannot_forge_log_lines() {
    // stdout and stderr are copied into host_error.log: a NAME carrying a newline and a
    // terminal escape must not add a line that reads like another host's verdict.
    let forged = "node1\nfencegate: fence node2: power_verified_off\u{1b}[2K";
    let one_escaped_line = |out: &std::process::Output| {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(all.lines().count(), 1, "{all}");
        assert!(!all.contains('\u{1b}'), "{all}");
        assert!(
            all.contains(r#""node1\nfencegate: fence node2: power_verified_off\u{1b}[2K""#),
            "{all}"
        );
    };
    let lab = lab();
    // The state refusal echoes the name.
    let out = door(&lab, &host_xml(100, forged, 2, ""), &[]).code(3);
    one_escaped_line(out.get_output());
    // So does the mapping refusal (ID 7 is no host's, the name is no host's).
    let out = door(&lab, &host_xml(7, forged, 3, ""), &[]).code(2);
    one_escaped_line(out.get_output());
    nothing_sent(&lab);
}
