//! OpenIPMI's `ipmi_sim` (Debian package `openipmi`): an independent BMC implementation of
//! RMCP+ (cipher suite 3), started from the repository's `hw-fixtures/ipmi_sim` files in a
//! temporary directory. Its chassis helper keeps the power in a file there, which is the
//! emulator-side truth the tests compare fencegate's answers with.

use crate::daemon::{Daemon, Proto};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The system GUID in the fixture's `lan.conf`, which ipmi_sim proves in RAKP 2.
pub const FIXTURE_GUID: &str = "a123456789abcdefa123456789abcdef";
/// The administrator the fixture defines (password [`PASSWORD`]).
pub const USER: &str = "admin";
/// The administrator's password in the fixture.
pub const PASSWORD: &str = "password";
/// The file the chassis helper keeps the power in (`1` on, `0` off), for the BMC at IPMB
/// address 0x20.
const POWER_FILE: &str = "power.0x20";

/// A running ipmi_sim on a loopback UDP port; killed and its directory removed on drop.
#[derive(Debug)]
pub struct IpmiSim {
    daemon: Daemon,
}

impl IpmiSim {
    /// The fixture as it is.
    pub fn start() -> IpmiSim {
        IpmiSim::start_with(FIXTURE_GUID, "")
    }

    /// The fixture with another system GUID (32 hex digits) and `extra_emu` appended to its
    /// emulator commands (SDR records, sensors), so a test can stand up a different box.
    pub fn start_with(guid: &str, extra_emu: &str) -> IpmiSim {
        let program = crate::tools::require("ipmi_sim");
        let fixture = crate::fixture_dir("ipmi_sim");
        let dir = tempfile::tempdir().expect("temp dir");
        for file in ["fencebmc.emu", "chassis_control.sh"] {
            fs::copy(fixture.join(file), dir.path().join(file))
                .unwrap_or_else(|e| panic!("copy {}: {e}", fixture.join(file).display()));
        }
        // ipmi_sim runs the helper itself: it must be executable whatever the checkout did.
        fs::set_permissions(
            dir.path().join("chassis_control.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .expect("make the chassis helper executable");
        if !extra_emu.is_empty() {
            let emu_path = dir.path().join("fencebmc.emu");
            let emu = fs::read_to_string(&emu_path).expect("read fencebmc.emu");
            fs::write(&emu_path, emu + extra_emu).expect("write fencebmc.emu");
        }
        fs::create_dir(dir.path().join("state")).expect("state directory");
        let lan_conf = fs::read_to_string(fixture.join("lan.conf")).expect("read lan.conf");
        let daemon = Daemon::start("ipmi_sim", Proto::Udp, dir, |dir, port| {
            let conf = rewrite_lan_conf(&lan_conf, port, guid);
            fs::write(dir.join("lan.conf"), conf).expect("write lan.conf");
            let mut command = Command::new(&program);
            command.args([
                "-c",
                "lan.conf",
                "-f",
                "fencebmc.emu",
                "-s",
                "./state",
                "-n",
            ]);
            command
        });
        IpmiSim { daemon }
    }

    /// The UDP port it serves on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.daemon.port()
    }

    /// Its working directory (configuration, state and the chassis helper's files).
    pub fn dir(&self) -> &Path {
        self.daemon.dir()
    }

    /// Its output so far, for failure messages.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// The power as the chassis helper last wrote it (`"1"` on, `"0"` off); `None` before the
    /// helper first ran (it then creates the file as on).
    pub fn power_file(&self) -> Option<String> {
        fs::read_to_string(self.dir().join(POWER_FILE))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// The emulator-side truth: `"1"` on, `"0"` off, on before anything asked.
    pub fn power(&self) -> String {
        self.power_file().unwrap_or_else(|| "1".to_owned())
    }

    /// Write one of the chassis helper's knobs, `power.0x20.<name>` (`stuck`, `delay`, …;
    /// see the fixture's `chassis_control.sh`).
    pub fn knob(&self, name: &str, content: &str) {
        let path = self.dir().join(format!("{POWER_FILE}.{name}"));
        fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// The fixture's `lan.conf` with its `addr` and `guid` lines replaced. Fails the test if the
/// fixture lost either line, rather than starting a BMC on the manual default port.
fn rewrite_lan_conf(conf: &str, port: u16, guid: &str) -> String {
    let (mut addr, mut guid_seen) = (false, false);
    let mut out: String = conf
        .lines()
        .map(|line| {
            let indent = &line[..line.len() - line.trim_start().len()];
            if line.trim_start().starts_with("addr ") {
                addr = true;
                format!("{indent}addr 127.0.0.1 {port}")
            } else if line.trim_start().starts_with("guid ") {
                guid_seen = true;
                format!("{indent}guid {guid}")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    assert!(
        addr && guid_seen,
        "hw-fixtures/ipmi_sim/lan.conf lost its addr or guid line"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lan_conf_is_pointed_at_the_port_and_guid() {
        let conf = "name \"x\"\n  startlan 1\n    addr 127.0.0.1 9623\n    guid 00\n  endlan\n";
        let out = rewrite_lan_conf(conf, 4242, "ff");
        assert_eq!(
            out,
            "name \"x\"\n  startlan 1\n    addr 127.0.0.1 4242\n    guid ff\n  endlan\n"
        );
    }

    #[test]
    fn the_fixture_starts_and_holds_its_port() {
        let sim = IpmiSim::start();
        assert!(crate::daemon::holds_port(
            sim.daemon.pid(),
            Proto::Udp,
            sim.port()
        ));
        assert_eq!(sim.power(), "1", "on before anything asked");
    }
}
