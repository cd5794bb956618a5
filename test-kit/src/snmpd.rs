//! net-snmp's `snmpd` (Debian package `snmpd`) as an APC MasterSwitch PDU: the repository's
//! `hw-fixtures/snmpd` configuration and its pass_persist outlet handler, in a temporary
//! directory on a loopback UDP port. The handler keeps the outlets in `apc_state.json`
//! there, which is the emulator-side truth the tests compare the drivers' answers with.
//!
//! When [`ApcPdu::start`] returns, snmpd holds its port. The outlet handler is a Python
//! process that snmpd starts at the first request for the outlet table and waits for, so
//! that first request is answered late on a loaded machine: a test gives it a generous
//! timeout (or warms the agent up with one) instead of expecting a quick answer.

use crate::daemon::{Daemon, Proto};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The outlets the handler serves (its default, `APC_OUTLETS`).
pub const OUTLETS: u32 = 8;
/// The state file the outlet handler reads on every request and writes on every SET.
const STATE_FILE: &str = "apc_state.json";

/// How the fixture is varied for one test.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// snmpd's SNMPv3 engine ID (`exactEngineID`, hex digits without `0x`), so a test can
    /// compare the ID a driver proved with a known one; `None` lets snmpd derive its own.
    pub engine_id: Option<String>,
    /// How long a reboot (SET 3) keeps an outlet off, in seconds; `None` keeps the handler's
    /// default of 3 s.
    pub reboot_secs: Option<u32>,
}

/// A running snmpd serving the APC outlet table on a loopback UDP port; killed, and its
/// directory removed, on drop. Every outlet starts on.
#[derive(Debug)]
pub struct ApcPdu {
    daemon: Daemon,
    program: PathBuf,
    options: Options,
}

impl ApcPdu {
    /// The fixture as it is.
    pub fn start() -> ApcPdu {
        ApcPdu::start_with(Options::default())
    }

    /// The fixture varied by `options`.
    pub fn start_with(options: Options) -> ApcPdu {
        let program = crate::tools::require("snmpd");
        // The fixture's pass_persist line runs the handler with the system Python.
        crate::tools::require("python3");
        if let Some(id) = &options.engine_id {
            assert!(
                !id.is_empty() && id.len() % 2 == 0 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "an engine ID is an even number of hex digits, not {id:?}"
            );
        }
        let fixture = crate::fixture_dir("snmpd");
        let dir = tempfile::tempdir().expect("temp dir");
        let handler = "apc_pdu_pass.py";
        fs::copy(fixture.join(handler), dir.path().join(handler))
            .unwrap_or_else(|e| panic!("copy {}: {e}", fixture.join(handler).display()));
        fs::write(dir.path().join(STATE_FILE), initial_state()).expect("write apc_state.json");
        let conf = fs::read_to_string(fixture.join("snmpd.conf")).expect("read snmpd.conf");
        let daemon = Daemon::start("snmpd", Proto::Udp, dir, |dir, port| {
            let conf = rewrite_conf(&conf, port, options.engine_id.as_deref());
            fs::write(dir.join("snmpd.conf"), conf).expect("write snmpd.conf");
            command(&program, dir, &options)
        });
        ApcPdu {
            daemon,
            program,
            options,
        }
    }

    /// Kill snmpd and start it again on the same port, configuration and persistent
    /// directory (so the same engine ID, its boot counter one higher), as a PDU's management
    /// card reboot would. The outlets keep their state.
    pub fn restart(&mut self) {
        let command = command(&self.program, self.daemon.dir(), &self.options);
        self.daemon.restart(command, Proto::Udp);
    }

    /// The UDP port it serves on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.daemon.port()
    }

    /// Its working directory (configuration, persistent USM state and the outlet state).
    pub fn dir(&self) -> &Path {
        self.daemon.dir()
    }

    /// The outlet handler's state file, the emulator-side truth (JSON:
    /// `{"outlets": {"1": {"name": "node1", "state": 1, "stuck": false}, …}}`, state 1 on, 2
    /// off). A test that edits it writes a new file and renames it over this one, so the
    /// handler never reads half a file.
    pub fn state_file(&self) -> PathBuf {
        self.dir().join(STATE_FILE)
    }

    /// Its output so far, for failure messages.
    pub fn log(&self) -> String {
        self.daemon.log()
    }
}

/// The command that runs snmpd in `dir`: in the foreground, logging to stdout (the daemon's
/// log), reading only the fixture's configuration and no MIB files (Debian ships none, and
/// each missing one is a line of noise).
fn command(program: &Path, dir: &Path, options: &Options) -> Command {
    let mut command = Command::new(program);
    command
        .args(["-f", "-Lo", "-C", "-c", "./snmpd.conf", "-p", "./snmpd.pid"])
        .env("SNMP_PERSISTENT_DIR", dir.join("persist"))
        .env("MIBS", "")
        .env("MIBDIRS", "/nonexistent")
        .env("APC_STATE", dir.join(STATE_FILE));
    if let Some(secs) = options.reboot_secs {
        command.env("APC_REBOOT_SECS", secs.to_string());
    }
    command
}

/// Every outlet on, named `node<N>`, none stuck.
fn initial_state() -> String {
    let outlets: Vec<String> = (1..=OUTLETS)
        .map(|i| format!(r#""{i}": {{"name": "node{i}", "state": 1, "stuck": false}}"#))
        .collect();
    format!(r#"{{"outlets": {{{}}}}}"#, outlets.join(", "))
}

/// The fixture's `snmpd.conf` with its `agentAddress` line pointed at `port` and, if given,
/// an `exactEngineID` after it. Fails the test if the fixture lost the line, rather than
/// starting an agent on the manual default port.
fn rewrite_conf(conf: &str, port: u16, engine_id: Option<&str>) -> String {
    let mut found = false;
    let mut out = String::new();
    for line in conf.lines() {
        if line.starts_with("agentAddress") {
            found = true;
            out.push_str(&format!("agentAddress udp:127.0.0.1:{port}\n"));
            if let Some(id) = engine_id {
                out.push_str(&format!("exactEngineID 0x{id}\n"));
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(
        found,
        "hw-fixtures/snmpd/snmpd.conf lost its agentAddress line"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conf_is_pointed_at_the_port_and_engine_id() {
        let conf = "# c\nagentAddress udp:127.0.0.1:1163\nrocommunity public\n";
        assert_eq!(
            rewrite_conf(conf, 4242, Some("80001f88")),
            "# c\nagentAddress udp:127.0.0.1:4242\nexactEngineID 0x80001f88\nrocommunity public\n"
        );
        assert_eq!(
            rewrite_conf(conf, 4242, None),
            "# c\nagentAddress udp:127.0.0.1:4242\nrocommunity public\n"
        );
    }

    #[test]
    fn every_outlet_starts_on_in_json_the_handler_reads() {
        // The handler parses the file with Python's json module: so does this check.
        let check = "import json, sys\n\
            o = json.load(sys.stdin)['outlets']\n\
            assert sorted(o, key=int) == [str(i) for i in range(1, 9)], o\n\
            assert all(v == {'name': 'node' + k, 'state': 1, 'stuck': False} \
                       for k, v in o.items()), o\n";
        let mut python = Command::new(crate::tools::require("python3"))
            .args(["-c", check])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("start python3");
        std::io::Write::write_all(
            &mut python.stdin.take().expect("stdin"),
            initial_state().as_bytes(),
        )
        .expect("write the state");
        assert!(python.wait().expect("python3 ran").success());
    }

    #[test]
    fn the_fixture_starts_holds_its_port_and_again_after_a_restart() {
        let mut pdu = ApcPdu::start_with(Options {
            engine_id: Some("80001f8804".into()),
            reboot_secs: Some(1),
        });
        let (port, first) = (pdu.port(), pdu.daemon.pid());
        assert!(crate::daemon::holds_port(first, Proto::Udp, port));
        let conf = fs::read_to_string(pdu.dir().join("snmpd.conf")).unwrap();
        assert!(conf.contains("exactEngineID 0x80001f8804"), "{conf}");
        pdu.restart();
        assert_ne!(pdu.daemon.pid(), first, "a new process");
        assert_eq!(pdu.port(), port);
        assert!(crate::daemon::holds_port(
            pdu.daemon.pid(),
            Proto::Udp,
            port
        ));
        assert!(pdu.state_file().is_file());
    }
}
