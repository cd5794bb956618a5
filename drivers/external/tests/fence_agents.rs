//! The fence-agent adapter with Debian's stock agents against third-party emulators:
//! `fence_ipmilan` → OpenIPMI `ipmi_sim`, `fence_apc_snmp` → net-snmp `snmpd` (APC table).

mod common;
mod emulators;

use common::*;
use emulators::*;
use fencegate_driver::{
    Action, DeviceSpec, DriverFactory, ErrorKind, PowerDriver, PowerState, SecretString,
};
use fencegate_external::FenceAgentFactory;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Generous: a fence agent is a Python start-up plus a few tool runs.
const CALL_MS: u64 = 30_000;

fn agent_spec(
    agent: &str,
    user: Option<&str>,
    options: &[(&str, &str)],
    secrets: &[(&str, &str)],
) -> DeviceSpec {
    let mut spec = DeviceSpec {
        name: "interop".into(),
        driver: "fence-agent".into(),
        address: agent.into(),
        user: user.map(str::to_owned),
        ..Default::default()
    };
    for (k, v) in options {
        spec.options.insert((*k).into(), (*v).into());
    }
    for (k, v) in secrets {
        spec.secrets.insert((*k).into(), SecretString::from(*v));
    }
    spec
}

fn build(spec: &DeviceSpec) -> Arc<dyn PowerDriver> {
    FenceAgentFactory::new().build(spec).expect("valid spec")
}

fn ipmilan(sim: &IpmiSim, password: &str, extra: &[(&str, &str)]) -> Arc<dyn PowerDriver> {
    fencegate_test_kit::tools::require("fence_ipmilan");
    let port = sim.port().to_string();
    let mut options = vec![
        ("ip", "127.0.0.1"),
        ("ipport", port.as_str()),
        ("lanplus", "1"),
        ("cipher", "3"),
        ("power_wait", "0"),
    ];
    options.extend_from_slice(extra);
    build(&agent_spec(
        "fence_ipmilan",
        Some("admin"),
        &options,
        &[("password", password)],
    ))
}

#[tokio::test]
async fn fence_ipmilan_status_off_on_against_ipmi_sim() {
    let sim = ipmi_sim();
    let driver = ipmilan(&sim, "password", &[]);
    assert_eq!(
        driver.endpoint(),
        format!("fence_ipmilan://127.0.0.1:{}", sim.port())
    );

    assert_eq!(
        driver.status(deadline(CALL_MS)).await.unwrap(),
        PowerState::On
    );
    assert_eq!(ipmi_power(&sim), "1");

    let receipt = driver
        .set_power(Action::Off, deadline(CALL_MS))
        .await
        .unwrap();
    assert!(receipt.detail.contains("Success"), "{}", receipt.detail);
    assert_eq!(ipmi_power(&sim), "0", "the emulator's relay is open");
    assert_eq!(
        driver.status(deadline(CALL_MS)).await.unwrap(),
        PowerState::Off
    );

    driver
        .set_power(Action::On, deadline(CALL_MS))
        .await
        .unwrap();
    assert_eq!(ipmi_power(&sim), "1");
    assert_eq!(
        driver.status(deadline(CALL_MS)).await.unwrap(),
        PowerState::On
    );

    // A device-side cycle: ipmi_sim switches off, then on again a second later.
    driver
        .set_power(Action::Cycle, deadline(CALL_MS))
        .await
        .unwrap();
    let log_path = sim.dir().join("power.0x20.log");
    let sets = || -> Vec<String> {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' ').map(|x| x.1.to_owned()))
            .collect()
    };
    let until = Instant::now() + Duration::from_secs(5);
    while sets().len() < 4 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sets = sets();
    assert_eq!(sets, ["power=0", "power=1", "power=0", "power=1"]);
    assert_eq!(ipmi_power(&sim), "1");

    // The metadata has been read by now: capabilities are the agent's own.
    let caps = driver.capabilities();
    assert!(caps.reads_power_state);
    assert_eq!(caps.actions, [Action::Off, Action::On, Action::Cycle]);
}

#[tokio::test]
async fn fence_ipmilan_wrong_password_is_an_error_without_the_password() {
    let sim = ipmi_sim();
    let driver = ipmilan(&sim, "Wr0ngPassw0rd", &[]);
    let e = driver.status(deadline(CALL_MS)).await.unwrap_err();
    assert!(e.detail.contains("the agent failed (exit status 1)"), "{e}");
    assert!(!e.detail.contains("Wr0ngPassw0rd"), "{e}");
    let e = driver
        .set_power(Action::Off, deadline(CALL_MS))
        .await
        .unwrap_err();
    assert!(!e.detail.contains("Wr0ngPassw0rd"), "{e}");
    assert_eq!(ipmi_power(&sim), "1", "nothing was switched");
}

#[tokio::test]
async fn fence_ipmilan_past_its_deadline_is_killed_with_its_ipmitool() {
    // Nothing answers on this port (held by a socket that never reads, so no other test can
    // take it): fence_ipmilan would retry for about 20 s.
    let silent = fencegate_test_kit::ports::udp_socket();
    let port = silent.local_addr().unwrap().port().to_string();
    fencegate_test_kit::tools::require("fence_ipmilan");
    let driver = build(&agent_spec(
        "fence_ipmilan",
        Some("admin"),
        &[
            ("ip", "127.0.0.1"),
            ("ipport", &port),
            ("lanplus", "1"),
            ("cipher", "3"),
        ],
        &[("password", "password")],
    ));
    let started = Instant::now();
    let e = driver
        .status(started + Duration::from_millis(1500))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(took < Duration::from_millis(3000), "{took:?}");
    // No agent and no ipmitool aimed at that port may survive.
    let until = Instant::now() + Duration::from_secs(2);
    loop {
        let left = processes_mentioning(&format!("-p {port}"));
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Live (non-zombie) processes whose command line contains `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| !process_gone(*pid))
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            cmd.contains(needle).then(|| format!("{pid}: {cmd}"))
        })
        .collect()
}

#[tokio::test]
async fn a_hanging_agent_is_killed_at_the_deadline_and_its_words_are_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let agent = fixture("fake-agent-hang.sh");
    let driver = build(&agent_spec(
        &agent.to_string_lossy(),
        Some("admin"),
        &[("pidfile", &pidfile.to_string_lossy())],
        &[("password", "Hunter2Hunter2")],
    ));
    let started = Instant::now();
    let e = driver
        .set_power(Action::Off, started + Duration::from_millis(1000))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert!(
        e.detail.contains("logging in with password [redacted]"),
        "{e}"
    );
    assert!(!e.detail.contains("Hunter2"), "{e}");
    let pids = read_pids(&pidfile);
    assert_eq!(pids.len(), 2, "the agent and its child: {pids:?}");
    assert!(
        wait_gone(&pids, Duration::from_secs(2)),
        "left behind: {pids:?}"
    );
}

#[tokio::test]
async fn unknown_options_are_refused_by_name_from_the_agents_metadata() {
    fencegate_test_kit::tools::require("fence_apc_snmp");
    let driver = build(&agent_spec(
        "fence_apc_snmp",
        None,
        &[
            ("ip", "127.0.0.1"),
            ("plug", "1"),
            ("cipherr", "3"),
            ("power-wait", "0"),
        ],
        &[("community", "private")],
    ));
    let e = driver.status(deadline(CALL_MS)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
    assert!(e.detail.contains("`cipherr`"), "{e}");
    assert!(
        !e.detail.contains("power-wait") && !e.detail.contains("community"),
        "{e}"
    );
    let e = driver
        .set_power(Action::GracefulOff, deadline(CALL_MS))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported, "{e}");
}

fn apc_v3(pdu: &ApcPdu, auth_password: &str) -> Arc<dyn PowerDriver> {
    fencegate_test_kit::tools::require("fence_apc_snmp");
    let port = pdu.port().to_string();
    build(&agent_spec(
        "/usr/sbin/fence_apc_snmp",
        Some("fenceuser"),
        &[
            ("ip", "127.0.0.1"),
            ("ipport", &port),
            ("plug", "1"),
            ("snmp_version", "3"),
            ("snmp_sec_level", "authPriv"),
            ("snmp_auth_prot", "SHA"),
            ("snmp_priv_prot", "AES"),
        ],
        &[
            ("password", auth_password),
            ("priv_password", "privpass123"),
        ],
    ))
}

#[tokio::test]
async fn fence_apc_snmp_status_off_on_against_snmpd() {
    let pdu = snmpd_apc();
    let driver = apc_v3(&pdu, "authpass123");
    assert_eq!(
        driver.status(deadline(CALL_MS)).await.unwrap(),
        PowerState::On
    );

    let receipt = driver
        .set_power(Action::Off, deadline(CALL_MS))
        .await
        .unwrap();
    assert!(receipt.detail.contains("Success"), "{}", receipt.detail);
    assert_eq!(apc_outlet(&pdu, 1), 2, "outlet 1 is off in the emulator");
    assert_eq!(apc_outlet(&pdu, 2), 1, "outlet 2 untouched");
    assert_eq!(
        driver.status(deadline(CALL_MS)).await.unwrap(),
        PowerState::Off
    );

    driver
        .set_power(Action::On, deadline(CALL_MS))
        .await
        .unwrap();
    assert_eq!(apc_outlet(&pdu, 1), 1);
    assert_eq!(
        driver.status(deadline(CALL_MS)).await.unwrap(),
        PowerState::On
    );
}

#[tokio::test]
async fn fence_apc_snmp_wrong_password_is_auth() {
    let pdu = snmpd_apc();
    let driver = apc_v3(&pdu, "wrongpass1");
    let e = driver.status(deadline(CALL_MS)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.detail.contains("Authentication failure"), "{e}");
    assert!(
        !e.detail.contains("wrongpass1") && !e.detail.contains("privpass123"),
        "{e}"
    );
    let e = driver
        .set_power(Action::Off, deadline(CALL_MS))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert_eq!(apc_outlet(&pdu, 1), 1, "nothing was switched");
}

#[tokio::test]
async fn fence_apc_snmp_v2c_with_the_community_as_a_secret() {
    let pdu = snmpd_apc();
    let port = pdu.port().to_string();
    let driver = build(&agent_spec(
        "fence_apc_snmp",
        None,
        &[
            ("ip", "127.0.0.1"),
            ("ipport", &port),
            ("plug", "3"),
            ("snmp_version", "2c"),
        ],
        &[("community", "private")],
    ));
    driver
        .set_power(Action::Off, deadline(CALL_MS))
        .await
        .unwrap();
    assert_eq!(apc_outlet(&pdu, 3), 2);
    assert_eq!(
        driver.status(deadline(CALL_MS)).await.unwrap(),
        PowerState::Off
    );
}
