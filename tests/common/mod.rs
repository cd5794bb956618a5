//! A lab for CLI tests: a temp directory with an inventory whose hosts are fenced through
//! the example scripted driver (an out-of-process driver whose "power" is a file).

#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};

pub struct Lab {
    pub dir: tempfile::TempDir,
}

/// How one host's device behaves.
#[derive(Clone, Default)]
pub struct Behaviour {
    pub stuck: bool,
    pub off_delay_ms: u64,
    pub reply_delay_ms: u64,
}

pub fn scripted_driver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins-example/scripted-driver/scripted-driver")
}

impl Lab {
    /// A lab with the given hosts (`name`, behaviour) and extra policy lines.
    pub fn new(hosts: &[(&str, Behaviour)], policy: &str) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        let mut toml = format!(
            "state_dir = \"state\"\n\n[policy]\nattempt_timeout = \"5s\"\noverall_timeout = \"8s\"\noff_hold = \"300ms\"\nstorm_settle = \"0s\"\n{policy}\n"
        );
        for (i, (name, b)) in hosts.iter().enumerate() {
            toml.push_str(&format!(
                "\n[devices.{name}-bmc]\ndriver = \"external\"\naddress = \"{}\"\nstate_file = \"{}\"\nstuck = {}\noff_delay_ms = {}\nreply_delay_ms = {}\n",
                scripted_driver().display(),
                dir.path().join(format!("{name}.power")).display(),
                b.stuck,
                b.off_delay_ms,
                b.reply_delay_ms,
            ));
            toml.push_str(&format!(
                "\n[hosts.{name}]\nlevels = [[\"{name}-bmc\"]]\nopennebula_id = {}\n",
                100 + i
            ));
        }
        std::fs::write(dir.path().join("fencegate.toml"), toml).unwrap();
        Lab { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("fencegate.toml")
    }

    /// The emulator-side truth: what the host's power file says (`on` until first touched).
    pub fn power(&self, host: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{host}.power")))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "on".into())
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("fencegate").unwrap();
        c.env_remove("FENCEGATE_STATE_DIR")
            .env_remove("FENCEGATE_PASSWORD")
            .env("FENCEGATE_CONFIG", self.config())
            .timeout(std::time::Duration::from_secs(60));
        c
    }
}

/// Strict base64 (RFC 4648), as OpenNebula's host_error.rb encodes the host XML.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An OpenNebula host document like `one.host.info` returns (abridged but real in shape).
pub fn host_xml(id: u64, name: &str, state: u32, extra_template: &str) -> String {
    format!(
        r#"<HOST><ID>{id}</ID><NAME>{name}</NAME><STATE>{state}</STATE><PREV_STATE>2</PREV_STATE><IM_MAD><![CDATA[kvm]]></IM_MAD><VM_MAD><![CDATA[kvm]]></VM_MAD><CLUSTER_ID>0</CLUSTER_ID><CLUSTER>default</CLUSTER><HOST_SHARE><MEM_USAGE>0</MEM_USAGE><CPU_USAGE>0</CPU_USAGE><TOTAL_MEM>16252928</TOTAL_MEM><TOTAL_CPU>800</TOTAL_CPU><RUNNING_VMS>2</RUNNING_VMS></HOST_SHARE><VMS><ID>12</ID><ID>13</ID></VMS><TEMPLATE><ARCH><![CDATA[x86_64]]></ARCH><CPUSPEED><![CDATA[2400]]></CPUSPEED><HOSTNAME><![CDATA[{name}]]></HOSTNAME><FENCE_IP><![CDATA[192.0.2.10]]></FENCE_IP><HYPERVISOR><![CDATA[kvm]]></HYPERVISOR>{extra_template}</TEMPLATE><MONITORING/></HOST>"#
    )
}
