//! Third-party emulators for the fence-agent interop tests: OpenIPMI `ipmi_sim` and net-snmp
//! `snmpd` with the APC pass_persist table, each from `hw-fixtures/` in a temporary directory
//! on a loopback UDP port (started by the test kit, which checks the emulator itself holds
//! the port), killed when dropped.

use fencegate_test_kit::daemon::Proto;
use fencegate_test_kit::tools;
use std::fs;
use std::path::Path;
use std::process::Command;

pub use fencegate_test_kit::daemon::Daemon;
pub use fencegate_test_kit::ipmi_sim::IpmiSim;

/// OpenIPMI `ipmi_sim` as one BMC (users admin/password), power in `power.0x20`. The fence
/// agent drives it through ipmitool, so that must be there too.
pub fn ipmi_sim() -> IpmiSim {
    tools::require("ipmitool");
    IpmiSim::start()
}

/// The BMC's power as the emulator holds it: `1` on, `0` off (on before the first set).
pub fn ipmi_power(sim: &IpmiSim) -> String {
    sim.power()
}

fn copy_fixture(from: &Path, to: &Path, files: &[&str]) {
    for file in files {
        fs::copy(from.join(file), to.join(file))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.join(file).display()));
    }
}

/// Replace the first line starting with `prefix` (after indentation) by `replacement`.
fn rewrite_line(text: &str, prefix: &str, replacement: &str) -> String {
    let mut done = false;
    let out: Vec<String> = text
        .lines()
        .map(|line| {
            if !done && line.trim_start().starts_with(prefix) {
                done = true;
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}{replacement}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(done, "no `{prefix}` line in the fixture");
    out.join("\n") + "\n"
}

/// net-snmp `snmpd` serving the APC outlet table; v3 user fenceuser/authpass123/privpass123.
pub fn snmpd_apc() -> Daemon {
    let program = tools::require("snmpd");
    tools::require("snmpget");
    tools::require("python3");
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = fencegate_test_kit::fixture_dir("snmpd");
    copy_fixture(&fixture, dir.path(), &["apc_pdu_pass.py"]);
    let conf = fs::read_to_string(fixture.join("snmpd.conf")).expect("read snmpd.conf");
    Daemon::start("snmpd", Proto::Udp, dir, |dir, port| {
        let conf = rewrite_line(
            &conf,
            "agentAddress ",
            &format!("agentAddress udp:127.0.0.1:{port}"),
        );
        fs::write(dir.join("snmpd.conf"), conf).expect("write snmpd.conf");
        let mut command = Command::new(&program);
        command
            .args(["-f", "-Lo", "-C", "-c", "./snmpd.conf", "-p", "./snmpd.pid"])
            .env("SNMP_PERSISTENT_DIR", dir.join("persist"))
            .env("MIBS", "")
            .env("MIBDIRS", "/nonexistent")
            .env("APC_STATE", dir.join("apc_state.json"));
        command
    })
}

/// Outlet `n`'s state as the emulator holds it: 1 on, 2 off (on before the first request).
pub fn apc_outlet(pdu: &Daemon, n: u32) -> u64 {
    let Ok(text) = fs::read_to_string(pdu.dir().join("apc_state.json")) else {
        return 1;
    };
    let state: serde_json::Value = serde_json::from_str(&text).expect("apc_state.json is JSON");
    state["outlets"][n.to_string()]["state"]
        .as_u64()
        .expect("outlet state")
}
