//! What a fence agent's run may and may not become: fake agents (small shell scripts each
//! test writes) that exit 2 in silence, crash with a traceback, or print `Status: OFF` from
//! an isolation agent must never produce an `Off` reading.

mod common;

use common::*;
use fencegate_driver::{
    Action, Channel, DeviceSpec, DriverFactory, ErrorKind, PowerDriver, PowerState, SecretString,
};
use fencegate_external::FenceAgentFactory;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The metadata every fake agent prints: the parameters the tests use and all actions.
const METADATA: &str = r#"<?xml version="1.0" ?>
<resource-agent name="fake" shortdesc="a fake agent written by a test">
<parameters>
	<parameter name="ip" unique="0" required="0"><content type="string"/></parameter>
	<parameter name="username" unique="0" required="0"><content type="string"/></parameter>
	<parameter name="password" unique="0" required="0"><content type="string"/></parameter>
</parameters>
<actions>
	<action name="on"/>
	<action name="off"/>
	<action name="reboot"/>
	<action name="status"/>
</actions>
</resource-agent>"#;

/// A fake agent called `name` in `dir`: metadata for `-o metadata`; otherwise it reads its
/// stdin, appends the action to `<name>.log` and runs `body` (shell).
fn fake_agent(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let log = dir.join(format!("{name}.log"));
    let script = format!(
        "#!/bin/sh\n\
         if [ \"$1\" = \"-o\" ] && [ \"$2\" = \"metadata\" ]; then\n\
         cat <<'XML'\n{METADATA}\nXML\n\
         exit 0\nfi\n\
         action=\n\
         while IFS='=' read -r key value; do\n\
         [ \"$key\" = action ] && action=$value\n\
         done\n\
         echo \"$action\" >> '{log}'\n\
         {body}\n",
        log = log.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The actions a fake agent was run with, in order.
fn actions_run(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("{name}.log")))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn agent_spec(agent: &Path, options: &[(&str, &str)]) -> DeviceSpec {
    let mut spec = DeviceSpec {
        name: "n1-agent".into(),
        driver: "fence-agent".into(),
        address: agent.display().to_string(),
        user: Some("admin".into()),
        ..Default::default()
    };
    for (k, v) in options {
        spec.options.insert((*k).into(), (*v).into());
    }
    spec.secrets
        .insert("password".into(), SecretString::from("Hunter2Hunter2"));
    spec
}

fn build(spec: &DeviceSpec) -> Arc<dyn PowerDriver> {
    FenceAgentFactory::new().build(spec).expect("valid spec")
}

/// Read `status` from a power agent (named as one, so it is asked) running `body`.
async fn status_of(body: &str) -> Result<PowerState, fencegate_driver::DriverError> {
    let dir = tempfile::tempdir().unwrap();
    let agent = fake_agent(dir.path(), "fence_ipmilan", body);
    build(&agent_spec(&agent, &[("ip", "127.0.0.1")]))
        .status(deadline(10_000))
        .await
}

#[tokio::test]
async fn a_silent_exit_2_is_not_off() {
    let e = status_of("exit 2").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.detail.contains("without a \"Status:\" line"), "{e}");
    assert!(e.detail.contains("printed nothing"), "{e}");
}

#[tokio::test]
async fn a_traceback_with_exit_2_is_not_off_and_is_quoted_without_secrets() {
    let body = r#"echo 'Traceback (most recent call last):' >&2
echo '  File "/usr/sbin/fence_ipmilan", line 9, in <module>' >&2
echo "ModuleNotFoundError: No module named 'fencing' (password Hunter2Hunter2)" >&2
exit 2"#;
    let e = status_of(body).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
    assert!(e.detail.contains("ModuleNotFoundError"), "{e}");
    assert!(!e.detail.contains("Hunter2"), "{e}");
    assert!(e.detail.contains("[redacted]"), "{e}");
    assert!(e.detail.len() < 1000, "brief: {e}");
}

#[tokio::test]
async fn a_silent_exit_0_is_not_on() {
    let e = status_of("exit 0").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
}

#[tokio::test]
async fn a_shell_error_exiting_2_is_not_off() {
    // dash exits 2 on a syntax error, as does Python's argparse on a usage error.
    let e = status_of("if then fi").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
}

#[tokio::test]
async fn explicit_status_lines_with_matching_exit_codes_are_readings() {
    assert_eq!(
        status_of("echo 'Status: OFF'; exit 2").await.unwrap(),
        PowerState::Off
    );
    assert_eq!(
        status_of("echo 'Status: ON'; exit 0").await.unwrap(),
        PowerState::On
    );
    let e = status_of("echo 'Status: OFF'; exit 0").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Protocol, "{e}");
}

#[tokio::test]
async fn an_isolation_agent_printing_status_off_gives_no_reading() {
    let dir = tempfile::tempdir().unwrap();
    let agent = fake_agent(
        dir.path(),
        "fence_scsi",
        r#"case "$action" in status) echo 'Status: OFF'; exit 2 ;; esac
echo 'Success: Powered OFF'; exit 0"#,
    );
    let driver = build(&agent_spec(&agent, &[("ip", "127.0.0.1")]));
    let caps = driver.capabilities();
    assert!(!caps.reads_power_state);
    assert_eq!(caps.channel, Channel::Isolation);
    assert!(!caps.authenticated_identity);

    let e = driver.status(deadline(10_000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("not a power reading"), "{e}");
    // Its `off` is delivered: the engine reports it as isolation, not as power off.
    let receipt = driver
        .set_power(Action::Off, deadline(10_000))
        .await
        .unwrap();
    assert!(receipt.detail.contains("Success"), "{receipt:?}");
    let caps = driver.capabilities();
    assert!(!caps.reads_power_state, "still none after the metadata");
    assert_eq!(caps.channel, Channel::Isolation);
    assert_eq!(
        actions_run(dir.path(), "fence_scsi"),
        ["off"],
        "status was never asked"
    );
}

#[tokio::test]
async fn fence_ipmilan_is_a_bmc_that_reads() {
    let dir = tempfile::tempdir().unwrap();
    let agent = fake_agent(dir.path(), "fence_ipmilan", "echo 'Status: ON'; exit 0");
    let driver = build(&agent_spec(&agent, &[("ip", "127.0.0.1")]));
    assert_eq!(driver.capabilities().channel, Channel::Bmc);
    assert!(driver.capabilities().reads_power_state);
    assert_eq!(
        driver.status(deadline(10_000)).await.unwrap(),
        PowerState::On
    );
    assert_eq!(driver.capabilities().channel, Channel::Bmc);
    assert!(driver.capabilities().reads_power_state);
    assert_eq!(actions_run(dir.path(), "fence_ipmilan"), ["status"]);
}

#[tokio::test]
async fn an_unknown_agent_is_read_only_when_the_operator_vouches_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let agent = fake_agent(dir.path(), "fence_vendor_x", "echo 'Status: OFF'; exit 2");
    let unknown = build(&agent_spec(&agent, &[("ip", "127.0.0.1")]));
    assert_eq!(unknown.capabilities().channel, Channel::Isolation);
    assert!(!unknown.capabilities().reads_power_state);
    let e = unknown.status(deadline(10_000)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("switches_power = true"), "{e}");
    assert!(actions_run(dir.path(), "fence_vendor_x").is_empty());

    let vouched = build(&agent_spec(
        &agent,
        &[("ip", "127.0.0.1"), ("switches_power", "true")],
    ));
    assert_eq!(vouched.capabilities().channel, Channel::Other);
    assert_eq!(
        vouched.status(deadline(10_000)).await.unwrap(),
        PowerState::Off,
        "the option is fencegate's: the agent's metadata check does not see it"
    );
}

#[test]
fn agents_that_fence_nothing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let agent = fake_agent(dir.path(), "fence_ack_manual", "exit 0");
    let e = FenceAgentFactory::new()
        .build(&agent_spec(&agent, &[("switches_power", "true")]))
        .err()
        .unwrap();
    assert_eq!(e.key.as_deref(), Some("address"), "{e}");
    let scsi = fake_agent(dir.path(), "fence_scsi", "exit 0");
    let e = FenceAgentFactory::new()
        .build(&agent_spec(&scsi, &[("switches_power", "true")]))
        .err()
        .unwrap();
    assert_eq!(e.key.as_deref(), Some("switches_power"), "{e}");
}
