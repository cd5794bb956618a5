//! Independent clients against the simulator: Debian's `ipmitool` (package `ipmitool`) and
//! FreeIPMI's `ipmipower` (package `freeipmi-tools`), cipher suites 3 and 17.
//!
//! These are separate implementations of RMCP+; when they can log in, read and switch power,
//! the simulator (and so the shared codec and key schedule) is right from the outside.
//! Passwords go through the environment (`ipmitool -E`) or a config file, never argv.
//! A missing tool fails the test with the package to install.

use fencegate_bmcsim::ipmi::{BmcConfig, IpmiLab};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

async fn run(mut cmd: tokio::process::Command) -> Output {
    cmd.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("tool finished within 30 s")
        .expect("tool started")
}

async fn ipmitool(lab: &IpmiLab, suite: u8, password: &str, args: &[&str]) -> Output {
    ipmitool_kg(lab, suite, password, None, args).await
}

/// ipmitool with the password in `IPMI_PASSWORD` (`-E`) and Kg in `IPMI_KGKEY` (`-K`).
async fn ipmitool_kg(
    lab: &IpmiLab,
    suite: u8,
    password: &str,
    kg: Option<&str>,
    args: &[&str],
) -> Output {
    let addr = lab.addr(0);
    let mut cmd = tokio::process::Command::new(fencegate_test_kit::tools::require("ipmitool"));
    if let Some(kg) = kg {
        cmd.env("IPMI_KGKEY", kg).arg("-K");
    }
    cmd.env("IPMI_PASSWORD", password)
        .args(["-I", "lanplus", "-C", &suite.to_string(), "-H"])
        .arg(addr.ip().to_string())
        .args([
            "-p",
            &addr.port().to_string(),
            "-U",
            "admin",
            "-E",
            "-N",
            "1",
            "-R",
            "2",
        ])
        .args(args);
    run(cmd).await
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

async fn ipmitool_round(suite: u8) {
    let lab = IpmiLab::start(vec![BmcConfig::new("admin", "s3cret-pw")])
        .await
        .unwrap();
    let o = ipmitool(&lab, suite, "s3cret-pw", &["chassis", "power", "status"]).await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Chassis Power is on"),
        "{}",
        text(&o)
    );
    let o = ipmitool(&lab, suite, "s3cret-pw", &["chassis", "power", "off"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(!lab.power_on(0), "ipmitool's power off reached the model");
    let o = ipmitool(&lab, suite, "s3cret-pw", &["chassis", "power", "status"]).await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Chassis Power is off"),
        "{}",
        text(&o)
    );
    let o = ipmitool(&lab, suite, "s3cret-pw", &["chassis", "power", "on"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(lab.power_on(0));
    // ipmitool closes its sessions.
    assert_eq!(lab.open_sessions(0), 0);
    // A wrong password must not get in.
    let o = ipmitool(&lab, suite, "wrong-pw", &["chassis", "power", "off"]).await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(lab.power_on(0));
}

#[tokio::test]
async fn ipmitool_suite3() {
    ipmitool_round(3).await;
}

#[tokio::test]
async fn ipmitool_suite17() {
    ipmitool_round(17).await;
}

async fn ipmipower(lab: &IpmiLab, dir: &Path, suite: u8, password: &str, op: &str) -> Output {
    ipmipower_kg(lab, dir, suite, password, None, op).await
}

/// ipmipower with user, password and Kg in a FreeIPMI config file.
async fn ipmipower_kg(
    lab: &IpmiLab,
    dir: &Path,
    suite: u8,
    password: &str,
    kg: Option<&str>,
    op: &str,
) -> Output {
    let ipmipower = fencegate_test_kit::tools::require("ipmipower");
    let conf = dir.join(format!("freeipmi-{suite}-{password}-{}.conf", kg.is_some()));
    let kg_line = kg.map(|k| format!("k_g {k}\n")).unwrap_or_default();
    std::fs::write(
        &conf,
        format!("username admin\npassword {password}\n{kg_line}"),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(ipmipower);
    cmd.args([
        "-D",
        "LAN_2_0",
        "-h",
        &lab.addr(0).to_string(),
        "--config-file",
    ])
    .arg(&conf)
    .args(["-I", &suite.to_string(), op]);
    run(cmd).await
}

async fn ipmipower_round(suite: u8) {
    let lab = IpmiLab::start(vec![BmcConfig::new("admin", "s3cret-pw")])
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = ipmipower(&lab, dir.path(), suite, "s3cret-pw", "--stat").await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": on"),
        "{}",
        text(&o)
    );
    let o = ipmipower(&lab, dir.path(), suite, "s3cret-pw", "--off").await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": ok"),
        "{}",
        text(&o)
    );
    assert!(!lab.power_on(0), "ipmipower's power off reached the model");
    let o = ipmipower(&lab, dir.path(), suite, "s3cret-pw", "--stat").await;
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": off"),
        "{}",
        text(&o)
    );
    let o = ipmipower(&lab, dir.path(), suite, "wrong-pw", "--on").await;
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(": ok"),
        "{}",
        text(&o)
    );
    assert!(!lab.power_on(0));
}

#[tokio::test]
async fn ipmipower_suite3() {
    ipmipower_round(3).await;
}

#[tokio::test]
async fn ipmipower_suite17() {
    ipmipower_round(17).await;
}

/// Kg changes the session keys: both tools must get in with it and fail without it.
#[tokio::test]
async fn kg_with_both_tools_and_suites() {
    let mut cfg = BmcConfig::new("admin", "s3cret-pw");
    cfg.kg = Some(b"kgkey-0123456789abc".to_vec());
    let lab = IpmiLab::start(vec![cfg]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for suite in [3, 17] {
        let kg = Some("kgkey-0123456789abc");
        let o = ipmitool_kg(
            &lab,
            suite,
            "s3cret-pw",
            kg,
            &["chassis", "power", "status"],
        )
        .await;
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Chassis Power is on"),
            "{}",
            text(&o)
        );
        let o = ipmitool(&lab, suite, "s3cret-pw", &["chassis", "power", "status"]).await;
        assert!(!o.status.success(), "no Kg must fail: {}", text(&o));
        // FreeIPMI takes the same key in hex.
        let hex = format!(
            "0x{}",
            b"kgkey-0123456789abc"
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let o = ipmipower_kg(&lab, dir.path(), suite, "s3cret-pw", Some(&hex), "--stat").await;
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(": on"),
            "{}",
            text(&o)
        );
        let o = ipmipower(&lab, dir.path(), suite, "s3cret-pw", "--stat").await;
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains(": on"),
            "no Kg must fail: {}",
            text(&o)
        );
    }
}

/// The simulated power restore policy from outside: ipmitool decodes the simulator's Get
/// Chassis Status bits 6:5 and sets the policy with its own Set Power Restore Policy.
#[tokio::test]
async fn ipmitool_reads_and_sets_the_restore_policy() {
    use fencegate_driver::RestorePolicy;
    let lab = IpmiLab::start(vec![BmcConfig::new("admin", "s3cret-pw")])
        .await
        .unwrap();
    let policy_line = |o: &Output| -> String {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.starts_with("Power Restore Policy"))
            .unwrap_or_default()
            .to_owned()
    };
    for suite in [3, 17] {
        lab.set_restore_policy(0, Some(RestorePolicy::AlwaysOn));
        let o = ipmitool(&lab, suite, "s3cret-pw", &["chassis", "status"]).await;
        assert!(policy_line(&o).ends_with(": always-on"), "{}", text(&o));
        for (arg, policy) in [
            ("always-off", RestorePolicy::AlwaysOff),
            ("previous", RestorePolicy::LastState),
            ("always-on", RestorePolicy::AlwaysOn),
        ] {
            let o = ipmitool(&lab, suite, "s3cret-pw", &["chassis", "policy", arg]).await;
            assert!(o.status.success(), "{}", text(&o));
            assert_eq!(lab.restore_policy(0), Some(policy), "{}", text(&o));
            let o = ipmitool(&lab, suite, "s3cret-pw", &["chassis", "status"]).await;
            assert!(
                policy_line(&o).ends_with(&format!(": {arg}")),
                "{}",
                text(&o)
            );
        }
        // "list" asks with "no change" and reads the supported-policies bitmap.
        let o = ipmitool(&lab, suite, "s3cret-pw", &["chassis", "policy", "list"]).await;
        let out = String::from_utf8_lossy(&o.stdout);
        for p in ["always-on", "always-off", "previous"] {
            assert!(out.contains(p), "{}", text(&o));
        }
        assert_eq!(lab.restore_policy(0), Some(RestorePolicy::AlwaysOn));
        lab.set_restore_policy(0, None);
        let o = ipmitool(&lab, suite, "s3cret-pw", &["chassis", "status"]).await;
        assert!(policy_line(&o).ends_with(": unknown"), "{}", text(&o));
    }
    assert!(lab.command_log(0).is_empty(), "no power command on the way");
}
