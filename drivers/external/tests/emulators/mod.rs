//! Third-party emulators for the fence-agent interop tests: OpenIPMI `ipmi_sim` and net-snmp
//! `snmpd` with the APC pass_persist table, each from `hw-fixtures/` copied into a temporary
//! directory, on a free loopback UDP port, killed when dropped.

use crate::common::{repo_root, require_tool};
use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running emulator in its own temporary directory.
pub struct Emulator {
    child: Child,
    /// Where its files (and its truth) live.
    pub dir: tempfile::TempDir,
    /// The UDP port it serves on 127.0.0.1.
    pub port: u16,
    name: &'static str,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    /// The emulator's log so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }

    /// Wait until something holds our UDP port (the emulator bound it), failing the test
    /// with the emulator's log if it exits or takes too long.
    fn wait_bound(mut self) -> Self {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if UdpSocket::bind(("127.0.0.1", self.port)).is_err() {
                return self;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before serving:\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < until,
                "{} did not bind udp/{} within 10 s:\n{}",
                self.name,
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral port");
    socket.local_addr().expect("local address").port()
}

fn copy_fixture(from: &Path, to: &Path, files: &[&str]) {
    for file in files {
        fs::copy(from.join(file), to.join(file))
            .unwrap_or_else(|e| panic!("copy {}: {e}", from.join(file).display()));
    }
}

/// Replace the first line starting with `prefix` (after indentation) by `replacement`.
fn rewrite_line(path: &Path, prefix: &str, replacement: &str) {
    let text = fs::read_to_string(path).expect("read config");
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
    assert!(done, "no `{prefix}` line in {}", path.display());
    fs::write(path, out.join("\n") + "\n").expect("write config");
}

fn spawn(name: &'static str, mut command: Command, dir: tempfile::TempDir, port: u16) -> Emulator {
    let log = fs::File::create(dir.path().join("emulator.log")).expect("log file");
    let log2 = log.try_clone().expect("log file");
    let child = command
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    Emulator {
        child,
        dir,
        port,
        name,
    }
    .wait_bound()
}

/// OpenIPMI `ipmi_sim` as one BMC (users admin/password), power in `power.0x20`.
pub fn ipmi_sim() -> Emulator {
    let program = require_tool("ipmi_sim", "openipmi");
    require_tool("ipmitool", "ipmitool");
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = repo_root().join("hw-fixtures/ipmi_sim");
    copy_fixture(
        &fixture,
        dir.path(),
        &["lan.conf", "fencebmc.emu", "chassis_control.sh"],
    );
    fs::create_dir(dir.path().join("state")).expect("state dir");
    let port = free_udp_port();
    rewrite_line(
        &dir.path().join("lan.conf"),
        "addr ",
        &format!("addr 127.0.0.1 {port}"),
    );
    let mut command = Command::new(program);
    command.args([
        "-c",
        "lan.conf",
        "-f",
        "fencebmc.emu",
        "-s",
        "./state",
        "-n",
    ]);
    spawn("ipmi_sim", command, dir, port)
}

/// The BMC's power as the emulator holds it: `1` on, `0` off (on before the first set).
pub fn ipmi_power(sim: &Emulator) -> String {
    fs::read_to_string(sim.dir.path().join("power.0x20"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "1".to_owned())
}

/// net-snmp `snmpd` serving the APC outlet table; v3 user fenceuser/authpass123/privpass123.
pub fn snmpd_apc() -> Emulator {
    let program = require_tool("snmpd", "snmpd");
    require_tool("snmpget", "snmp");
    require_tool("python3", "python3");
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = repo_root().join("hw-fixtures/snmpd");
    copy_fixture(&fixture, dir.path(), &["snmpd.conf", "apc_pdu_pass.py"]);
    let port = free_udp_port();
    rewrite_line(
        &dir.path().join("snmpd.conf"),
        "agentAddress ",
        &format!("agentAddress udp:127.0.0.1:{port}"),
    );
    let mut command = Command::new(program);
    command
        .args(["-f", "-Lo", "-C", "-c", "./snmpd.conf", "-p", "./snmpd.pid"])
        .env("SNMP_PERSISTENT_DIR", dir.path().join("persist"))
        .env("MIBS", "")
        .env("MIBDIRS", "/nonexistent")
        .env("APC_STATE", dir.path().join("apc_state.json"));
    spawn("snmpd", command, dir, port)
}

/// Outlet `n`'s state as the emulator holds it: 1 on, 2 off (on before the first request).
pub fn apc_outlet(pdu: &Emulator, n: u32) -> u64 {
    let path: PathBuf = pdu.dir.path().join("apc_state.json");
    let Ok(text) = fs::read_to_string(&path) else {
        return 1;
    };
    let state: serde_json::Value = serde_json::from_str(&text).expect("apc_state.json is JSON");
    state["outlets"][n.to_string()]["state"]
        .as_u64()
        .expect("outlet state")
}
